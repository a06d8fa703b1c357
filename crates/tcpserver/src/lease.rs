//! A connection's place in its server: its count in `active` and its admission slots
//! (`maxConnections`, the per-IP share). Given back exactly once, by whichever comes first:
//! the end of the server's task for the connection, or a consumer loop that closed it
//! (`driver/local/`), so that `stats().active` and the limits agree with the close the
//! consumer just saw rather than with a task that ends a moment later on another thread.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::gate::Admission;
use crate::stats::Counters;

#[derive(Debug)]
pub(crate) struct Lease {
    counters: Arc<Counters>,
    admission: Mutex<Option<Admission>>,
    returned: AtomicBool,
}

impl Lease {
    /// A lease on a connection already counted in `active`.
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        Self {
            counters,
            admission: Mutex::new(None),
            returned: AtomicBool::new(false),
        }
    }

    /// Keeps the connection's admission slots until the lease is given back.
    pub(crate) fn hold(&self, admission: Admission) {
        *self.admission.lock().unwrap_or_else(|e| e.into_inner()) = Some(admission);
    }

    /// Gives the place back: the first call counts, later ones do nothing.
    pub(crate) fn give_back(&self) {
        if !self.returned.swap(true, SeqCst) {
            self.counters.active.fetch_sub(1, SeqCst);
            drop(
                self.admission
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(),
            );
        }
    }
}
