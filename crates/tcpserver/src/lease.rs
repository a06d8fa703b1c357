//! A connection's place in its server: its count in `active` and its admission slots
//! (`maxConnections`, the per-IP share). Given back exactly once, by whichever comes first:
//! the end of the server's task for the connection, a consumer loop that closed it
//! (`driver/local/`), or the last holder dropping it; so `stats().active` and the limits
//! agree with the close the consumer just saw rather than with a task that ends a moment
//! later on another thread.

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

/// A lease nobody gave back is given back as it goes: a connection the consumer loop accepted
/// itself and dropped without closing it (its environment ended, `close_all`) still leaves
/// `active` and its admission slots.
impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_back_once_by_a_call_or_by_the_drop() {
        let counters = Arc::new(Counters::default());
        counters.active.store(2, SeqCst);
        let called = Lease::new(counters.clone());
        called.give_back();
        called.give_back();
        assert_eq!(
            counters.active.load(SeqCst),
            1,
            "a second call counts nothing"
        );
        drop(called);
        assert_eq!(counters.active.load(SeqCst), 1, "nor the drop after a call");
        drop(Lease::new(counters.clone()));
        assert_eq!(
            counters.active.load(SeqCst),
            0,
            "a lease dropped unreturned"
        );
    }
}
