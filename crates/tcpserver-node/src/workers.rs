//! Worker threads of one server (`listen({ workers })`): the server's Rust accept loops hand
//! each accepted connection to the worker thread with the fewest open connections (ties go
//! round-robin), whose own event sink and connection registry then serve it exactly as a
//! single-threaded server's do. Workers attach from their threads with `attachWorker(key)`;
//! one that ends (returns, throws, is terminated) is detached by its environment's cleanup
//! hook: its connections are closed and counted, and new ones go to the others.
//!
//! The policy (which worker, how many, restarts) is TypeScript's `workers.ts`; this file only
//! routes connections and keeps the counters that must outlive a worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use std::time::Duration;

use tcpserver_core::driver::{Connections, DataStats, DriveOptions, TimeoutStats};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::events::JsSink;

/// One attached worker thread.
pub(crate) struct Slot {
    /// The worker's index (0..workers): stable across restarts of that worker.
    pub(crate) index: u32,
    pub(crate) conns: Arc<Connections>,
    pub(crate) sink: Arc<JsSink>,
    /// The worker thread's own loop for plain connections (`uv_watch.rs`), if it has one.
    #[cfg(target_os = "linux")]
    pub(crate) local: Option<Arc<tcpserver_core::driver::LocalLoop>>,
    /// Connections handed to this worker.
    accepted: AtomicU64,
}

impl Slot {
    /// Connections open on this worker (on its loop and in its registry).
    fn open(&self) -> usize {
        #[cfg(target_os = "linux")]
        if let Some(l) = &self.local {
            return self.conns.len() + l.len();
        }
        self.conns.len()
    }

    /// Closes every connection of this worker now; returns how many were open.
    fn close_all(&self) -> usize {
        #[cfg(target_os = "linux")]
        if let Some(l) = &self.local {
            return self.conns.close_all() + l.close_all();
        }
        self.conns.close_all()
    }
}

/// Counters of workers that are gone, folded together so they outlive them.
#[derive(Default)]
struct Retired {
    timeouts: TimeoutStats,
    data: DataStats,
}

/// The worker threads of one server.
pub(crate) struct Workers {
    key: u64,
    /// The server's per-connection settings, which every worker's handle reports.
    pub(crate) drive: DriveOptions,
    pub(crate) read_timeout: Option<Duration>,
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Woken when a worker attaches or the server closes: connections waiting for one go on.
    changed: Notify,
    closed: AtomicBool,
    /// Where the next tie-break starts (round-robin among the least loaded).
    turn: AtomicUsize,
    /// Connections closed because the worker serving them ended.
    orphaned: AtomicU64,
    retired: Mutex<Retired>,
}

/// Live servers with workers, by key: how a worker thread (which cannot receive a native
/// object from the main thread) finds its server.
static REGISTRY: LazyLock<Mutex<HashMap<u64, Weak<Workers>>>> = LazyLock::new(Mutex::default);
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

fn registry() -> MutexGuard<'static, HashMap<u64, Weak<Workers>>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Workers {
    /// A new, registered set (no worker attached yet).
    pub(crate) fn new(drive: DriveOptions, read_timeout: Option<Duration>) -> Arc<Self> {
        let key = NEXT_KEY.fetch_add(1, Relaxed);
        let workers = Arc::new(Self {
            key,
            drive,
            read_timeout,
            slots: Mutex::default(),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
            turn: AtomicUsize::new(0),
            orphaned: AtomicU64::new(0),
            retired: Mutex::default(),
        });
        registry().insert(key, Arc::downgrade(&workers));
        workers
    }

    /// The key worker threads attach with.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// The set registered under `key`, while its server lives.
    pub(crate) fn find(key: u64) -> Option<Arc<Self>> {
        registry().get(&key).and_then(Weak::upgrade)
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a worker thread's registry and sink; connections waiting for a worker go on.
    pub(crate) fn attach(
        &self,
        index: u32,
        conns: Arc<Connections>,
        sink: Arc<JsSink>,
        #[cfg(target_os = "linux")] local: Option<Arc<tcpserver_core::driver::LocalLoop>>,
    ) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            index,
            conns,
            sink,
            #[cfg(target_os = "linux")]
            local,
            accepted: AtomicU64::new(0),
        });
        self.slots().push(slot.clone());
        self.changed.notify_waiters();
        slot
    }

    /// Removes a worker: its open connections are closed now (their handlers are gone) and
    /// counted, its counters kept, its sink released. Idempotent.
    pub(crate) fn detach(&self, slot: &Arc<Slot>) {
        let removed = {
            let mut slots = self.slots();
            let before = slots.len();
            slots.retain(|s| !Arc::ptr_eq(s, slot));
            slots.len() != before
        };
        if !removed {
            return;
        }
        let closed = slot.close_all();
        self.orphaned.fetch_add(closed as u64, Relaxed);
        let (t, d) = (slot.conns.timeout_stats(), slot.conns.data_stats());
        let mut r = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        add_timeouts(&mut r.timeouts, &t);
        add_data(&mut r.data, &d);
        drop(r);
        slot.sink.release();
    }

    /// No more connections will be handed out: the server closed. Workers stay attached until
    /// they detach (their connections may still be finishing).
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        self.changed.notify_waiters();
        registry().remove(&self.key);
    }

    /// The worker to serve a new connection: the one with the fewest open connections, ties
    /// taken in turn. Waits while no worker is attached (one is starting or restarting);
    /// `None` if the server closes or the connection is aborted meanwhile.
    pub(crate) async fn pick(&self, abort: &CancellationToken) -> Option<Arc<Slot>> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.closed.load(Relaxed) {
                return None;
            }
            {
                let slots = self.slots();
                if !slots.is_empty() {
                    let start = self.turn.fetch_add(1, Relaxed) % slots.len();
                    let best = (0..slots.len())
                        .map(|i| &slots[(start + i) % slots.len()])
                        .min_by_key(|s| s.open())
                        .cloned();
                    if let Some(slot) = best {
                        slot.accepted.fetch_add(1, Relaxed);
                        return Some(slot);
                    }
                }
            }
            tokio::select! {
                () = changed => {}
                () = abort.cancelled() => return None,
            }
        }
    }

    /// Per worker: `(index, open connections, connections handed to it)`.
    pub(crate) fn per_worker(&self) -> Vec<(u32, usize, u64)> {
        let mut out: Vec<_> = self
            .slots()
            .iter()
            .map(|s| (s.index, s.open(), s.accepted.load(Relaxed)))
            .collect();
        out.sort_unstable_by_key(|w| w.0);
        out
    }

    /// Connections closed because their worker ended.
    pub(crate) fn orphaned(&self) -> u64 {
        self.orphaned.load(Relaxed)
    }

    /// Timeout and data-path counters over every worker, live and gone.
    pub(crate) fn totals(&self) -> (TimeoutStats, DataStats) {
        let r = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let (mut t, mut d) = (r.timeouts, r.data);
        drop(r);
        for s in self.slots().iter() {
            add_timeouts(&mut t, &s.conns.timeout_stats());
            add_data(&mut d, &s.conns.data_stats());
        }
        (t, d)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        registry().remove(&self.key);
    }
}

pub(crate) fn add_timeouts(to: &mut TimeoutStats, t: &TimeoutStats) {
    to.idle += t.idle;
    to.read += t.read;
    to.write += t.write;
}

pub(crate) fn add_data(to: &mut DataStats, d: &DataStats) {
    to.pipes_spliced += d.pipes_spliced;
    to.pipes_copied += d.pipes_copied;
    to.bytes_piped += d.bytes_piped;
    to.files_sent += d.files_sent;
    to.file_bytes_zero_copy += d.file_bytes_zero_copy;
    to.file_bytes_copied += d.file_bytes_copied;
    to.direct_reads += d.direct_reads;
}
