//! Admission: who may be served, decided before a handler runs. Accepting can be paused;
//! `maxConnections` holds or refuses clients; `maxConnectionsPerIp` refuses an address over its
//! share; a PROXY protocol listener takes only trusted sources, reads their header and counts
//! the real client. Every refusal is counted. The accept loop (`accept.rs`) asks the gate; the
//! server (`server.rs`) owns it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::addr::Address;
use crate::config::{LimitPolicy, ServerConfig};
use crate::connection::info::ConnectionInfo;
use crate::per_ip::{IpSlot, PerIpTable};
use crate::proxy_protocol::{self, Header, ProxyProtocol};
use crate::stats::Counters;
use crate::stream::Stream;

/// The limits' slots a connection holds while its task runs.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Held for its `Drop`: the slot frees when the connection's task ends.
    _permit: Option<OwnedSemaphorePermit>,
    ip_slot: Option<IpSlot>,
}

/// One server's admission state.
pub(crate) struct Gate {
    counters: Arc<Counters>,
    limit: Option<Arc<Semaphore>>,
    limit_policy: LimitPolicy,
    per_ip: Option<Arc<PerIpTable>>,
    proxy: Option<ProxyProtocol>,
    paused: AtomicBool,
    resume: Notify,
    pause: Notify,
}

impl Gate {
    pub(crate) fn new(config: &ServerConfig, counters: Arc<Counters>) -> Self {
        Self {
            counters,
            limit: config.max_connections.map(|n| Arc::new(Semaphore::new(n))),
            limit_policy: config.limit_policy,
            per_ip: config.per_ip.map(PerIpTable::new),
            proxy: config.proxy_protocol.clone(),
            paused: AtomicBool::new(false),
            resume: Notify::new(),
            pause: Notify::new(),
        }
    }

    /// Stops accepting (the kernel backlog holds new clients) until [`Gate::resume`].
    pub(crate) fn pause(&self) {
        self.paused.store(true, SeqCst);
        self.pause.notify_waiters();
    }

    /// Undoes [`Gate::pause`].
    pub(crate) fn resume(&self) {
        self.paused.store(false, SeqCst);
        self.resume.notify_waiters();
    }

    /// Completes once `pause()` is in effect: lets an accept loop leave a pending `accept`.
    pub(crate) async fn pausing(&self) {
        loop {
            let paused = self.pause.notified();
            if self.paused.load(SeqCst) {
                return;
            }
            paused.await;
        }
    }

    /// Waits while accepting is paused.
    pub(crate) async fn unpaused(&self) {
        while self.paused.load(SeqCst) {
            let resumed = self.resume.notified();
            if !self.paused.load(SeqCst) {
                break;
            }
            resumed.await;
        }
    }

    /// A slot under `maxConnections`: waited for under [`LimitPolicy::Hold`]; `None` (the
    /// client is refused) under [`LimitPolicy::Refuse`] when the server is full.
    pub(crate) async fn admit(&self) -> Option<Admission> {
        let permit = match &self.limit {
            None => None,
            Some(sem) => match self.limit_policy {
                LimitPolicy::Hold => sem.clone().acquire_owned().await.ok(),
                LimitPolicy::Refuse => Some(self.slot_or_refuse(sem)?),
            },
        };
        Some(Admission {
            _permit: permit,
            ip_slot: None,
        })
    }

    /// A free slot of `sem`, or `None` when the server is full (the refusal is counted).
    fn slot_or_refuse(&self, sem: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        let slot = sem.clone().try_acquire_owned().ok();
        if slot.is_none() {
            self.counters.refused_max_connections.fetch_add(1, Relaxed);
        }
        slot
    }

    /// Whether accepting is paused, for an accept loop that checks before each `accept`
    /// rather than waiting ([`Gate::unpaused`]): the consumer loop's, `driver/local/listen.rs`.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(SeqCst)
    }

    /// Whether [`Gate::admit_now`] decides every client at once: no `maxConnections` to hold
    /// clients for, and no PROXY header to wait for.
    pub(crate) fn decides_at_once(&self) -> bool {
        self.proxy.is_none() && (self.limit.is_none() || self.limit_policy == LimitPolicy::Refuse)
    }

    /// [`Gate::admit`] and [`Gate::admit_peer`] for a gate that [decides at
    /// once](Gate::decides_at_once); `None`: refused (counted).
    pub(crate) fn admit_now(&self, peer: &Address) -> Option<Admission> {
        let permit = match &self.limit {
            None => None,
            Some(sem) => Some(self.slot_or_refuse(sem)?),
        };
        let mut admission = Admission {
            _permit: permit,
            ip_slot: None,
        };
        self.admit_peer(&mut admission, peer).then_some(admission)
    }

    /// The checks on an accepted client's socket address; `false`: refused (counted). A
    /// PROXY protocol listener takes only trusted sources, and counts a client under
    /// `maxConnectionsPerIp` once its header named it (in [`Gate::proxy_header`]).
    pub(crate) fn admit_peer(&self, admission: &mut Admission, peer: &Address) -> bool {
        match &self.proxy {
            // Configurations with both are refused by `validate`; an IP-less peer is never trusted.
            Some(p) if !peer.ip().is_some_and(|ip| p.trusts(ip)) => {
                self.counters.proxy_failure("untrusted");
                false
            }
            Some(_) => true,
            None => self.admit_ip(admission, peer),
        }
    }

    /// Takes `peer`'s share under `maxConnectionsPerIp`; `false` (the client is refused)
    /// when its address already holds its share. Unix socket clients have no IP address and
    /// are not limited per address.
    fn admit_ip(&self, admission: &mut Admission, peer: &Address) -> bool {
        let (Some(table), Some(ip)) = (&self.per_ip, peer.ip()) else {
            return true;
        };
        admission.ip_slot = table.try_acquire(ip);
        if admission.ip_slot.is_none() {
            self.counters.refused_per_ip.fetch_add(1, Relaxed);
        }
        admission.ip_slot.is_some()
    }

    /// Whether connections start with a PROXY protocol header ([`Gate::proxy_header`]).
    pub(crate) fn expects_proxy_header(&self) -> bool {
        self.proxy.is_some()
    }

    /// Reads the PROXY protocol header (within its timeout; a graceful shutdown, `stop`, does
    /// not wait for it), takes the client's addresses from it and admits the real client
    /// under `maxConnectionsPerIp`. `false`: the connection is to be closed (counted).
    pub(crate) async fn proxy_header(
        &self,
        stream: &mut Stream,
        info: &mut ConnectionInfo,
        admission: &mut Admission,
        stop: &CancellationToken,
    ) -> bool {
        let Some(proxy) = &self.proxy else {
            return true;
        };
        let header = tokio::select! {
            r = tokio::time::timeout(proxy.header_timeout, proxy_protocol::read_header(stream)) => {
                r.unwrap_or(Err("timeout"))
            }
            () = stop.cancelled() => Err("shutdown"),
        };
        match header {
            Ok(Header::Proxy { source, dest }) => {
                info.proxied_by = info.peer_addr.as_ip();
                info.peer_addr = Address::Ip(source);
                info.local_addr = Address::Ip(dest);
            }
            Ok(Header::Local) => info.proxied_by = info.peer_addr.as_ip(),
            Err(reason) => {
                self.counters.proxy_failure(reason);
                return false;
            }
        }
        self.counters.proxy_headers.fetch_add(1, Relaxed);
        self.admit_ip(admission, &info.peer_addr)
    }
}
