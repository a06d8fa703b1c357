//! Counters: atomics updated on the hot path, read as one snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) refused_max_accept: AtomicU64,
    pub(crate) refused_max_connections: AtomicU64,
    pub(crate) refused_per_ip: AtomicU64,
    pub(crate) forced: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) accept_errors: Mutex<BTreeMap<i32, u64>>,
    pub(crate) proxy_headers: AtomicU64,
    pub(crate) proxy_failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub(crate) fn accept_error(&self, errno: i32) {
        *self
            .accept_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(errno)
            .or_default() += 1;
    }

    pub(crate) fn proxy_failure(&self, reason: &'static str) {
        *self
            .proxy_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            refused_max_accept: self.refused_max_accept.load(Relaxed),
            refused_max_connections: self.refused_max_connections.load(Relaxed),
            refused_per_ip: self.refused_per_ip.load(Relaxed),
            forced: self.forced.load(Relaxed),
            panics: self.panics.load(Relaxed),
            accept_errors: self
                .accept_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(&errno, &count)| (errno, count))
                .collect(),
            proxy_headers: self.proxy_headers.load(Relaxed),
            proxy_failures: self
                .proxy_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(&reason, &count)| (reason, count))
                .collect(),
        }
    }
}

impl Stats {
    /// Connections refused by any limit.
    pub fn refused(&self) -> u64 {
        self.refused_max_accept + self.refused_max_connections + self.refused_per_ip
    }
}

/// A snapshot of the server's counters, from [`Server::stats`](crate::Server::stats). The
/// fields are public; new ones may be added (`#[non_exhaustive]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and handed to the handler.
    pub accepted: u64,
    /// Connections whose handler is still running.
    pub active: u64,
    /// Connections closed at once because `maxAcceptConnections` was reached by another loop.
    pub refused_max_accept: u64,
    /// Connections closed at once because `maxConnections` were open
    /// ([`LimitPolicy::Refuse`](crate::LimitPolicy::Refuse)).
    pub refused_max_connections: u64,
    /// Connections closed at once because their address held its `maxConnectionsPerIp`.
    pub refused_per_ip: u64,
    /// Connections closed by a forced shutdown (deadline or halt).
    pub forced: u64,
    /// Connection tasks that panicked (each closed only its own connection).
    pub panics: u64,
    /// Accept errors by errno (`EMFILE`, `ECONNABORTED`, ...), counted, never fatal.
    pub accept_errors: Vec<(i32, u64)>,
    /// PROXY protocol headers accepted.
    pub proxy_headers: u64,
    /// Connections refused on PROXY protocol listeners, by reason: `untrusted` (source not
    /// trusted), `not_proxy` (no header), `malformed` (v2: also TLVs that do not fill the
    /// header exactly), `bad_checksum` (a v2 CRC32C TLV that does not match), `unsupported_version`,
    /// `unsupported_command`, `timeout`, `closed` (gone before a complete header), `io`.
    pub proxy_failures: Vec<(&'static str, u64)>,
}
