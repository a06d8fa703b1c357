//! Concurrent connections per client address (`maxConnectionsPerIp`). A slot is taken after
//! accept and given back when the connection's task ends; the table only holds addresses
//! with open connections, so its size is bounded by the open connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::addr::network_of;
use crate::config::PerIpLimit;

/// The address a client is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 cut to
/// the configured prefix.
pub(crate) fn key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_ipv4() {
        ip
    } else {
        network_of(ip, ipv6_prefix)
    }
}

#[derive(Debug)]
pub(crate) struct PerIpTable {
    limit: PerIpLimit,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection's share of its address; dropping it gives the share back.
#[derive(Debug)]
pub(crate) struct IpSlot {
    table: Arc<PerIpTable>,
    key: IpAddr,
}

impl PerIpTable {
    pub(crate) fn new(limit: PerIpLimit) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or `None` when its address (or prefix) holds `max` already.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let key = key(ip, self.limit.ipv6_prefix);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_ipv6_by_prefix_and_maps_ipv4() {
        assert_eq!(key(ip("2001:db8:1:2:a::1"), 64), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("2001:db8:1:2:a::1"), 128), ip("2001:db8:1:2:a::1"));
        assert_eq!(key(ip("2001:db8:1:2:a::1"), 48), ip("2001:db8:1::"));
        assert_eq!(key(ip("2001:db8::1"), 1), ip("::"));
        assert_eq!(key(ip("::ffff:10.1.2.3"), 64), ip("10.1.2.3"));
        assert_eq!(key(ip("10.1.2.3"), 64), ip("10.1.2.3"));
    }

    #[test]
    fn counts_per_key_and_forgets_empty_keys() {
        let t = PerIpTable::new(PerIpLimit {
            max: 2,
            ipv6_prefix: 64,
        });
        let a1 = t.try_acquire(ip("2001:db8::1")).unwrap();
        let a2 = t.try_acquire(ip("2001:db8::2")).unwrap();
        assert!(t.try_acquire(ip("2001:db8::3")).is_none(), "same /64");
        let b = t.try_acquire(ip("2001:db8:0:1::1")).unwrap();
        let v4 = t.try_acquire(ip("::ffff:127.0.0.1")).unwrap();
        let v4b = t.try_acquire(ip("127.0.0.1")).unwrap();
        assert!(
            t.try_acquire(ip("127.0.0.1")).is_none(),
            "mapped counts as IPv4"
        );
        drop(a1);
        let a3 = t.try_acquire(ip("2001:db8::3")).unwrap();
        drop((a2, a3, b, v4, v4b));
        assert_eq!(t.len(), 0);
    }
}
