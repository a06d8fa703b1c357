//! Counters: atomics updated on the hot path, read as one snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) forced: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) accept_errors: Mutex<BTreeMap<i32, u64>>,
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

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            refused: self.refused.load(Relaxed),
            forced: self.forced.load(Relaxed),
            panics: self.panics.load(Relaxed),
            accept_errors: self
                .accept_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(&errno, &count)| (errno, count))
                .collect(),
        }
    }
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and handed to the handler.
    pub accepted: u64,
    /// Connections whose handler is still running.
    pub active: u64,
    /// Connections closed at once because a limit was reached (`maxAcceptConnections`).
    pub refused: u64,
    /// Connections closed by a forced shutdown (deadline or halt).
    pub forced: u64,
    /// Connection tasks that panicked (each closed only its own connection).
    pub panics: u64,
    /// Accept errors by errno (`EMFILE`, `ECONNABORTED`, ...), counted, never fatal.
    pub accept_errors: Vec<(i32, u64)>,
}
