//! The consumer loop: see [`LocalLoop`].

mod conn;
mod handover;
mod join;
mod listen;
mod ops;
pub use ops::Released;
mod output;
mod timers;

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::{Notify, oneshot};

use super::{Connections, DriveOptions, Event, EventSink, IdMap, TlsStart};
use crate::connection::Connection;
use crate::driver::outbox::Closing;
use crate::error::Error;
use conn::{Life, LocalConn, Report, Step};
pub(crate) use listen::{Admit, Admitted};
use listen::{LISTENER_BASE, LoopListener};
use timers::{Kind, Timers};

const WAKER: Token = Token(usize::MAX);
const TIMER: Token = Token(usize::MAX - 1);
/// Rounds of "run what is ready, call the consumer" per turn: the consumer's calls (credit
/// returned, a close) are served in the same turn, without another wake-up.
const ROUNDS: usize = 8;
/// Readiness events taken per `epoll_wait`; more stay ready for the next turn.
const EVENTS: usize = 1024;

/// Plain-TCP connections served on the consumer's own thread (Linux): the common case of the
/// Node binding, where every byte is read and written by JavaScript anyway.
///
/// The Tokio driver (`run.rs`) reads on a worker thread and hands each batch to the consumer's
/// thread: two wake-ups per request and a task per connection. A [`LocalLoop`] instead keeps
/// its connections in one map on the consumer's thread, in an edge-triggered epoll set whose
/// descriptor ([`LocalLoop::fd`]) the consumer's own event loop watches (Node: `uv_poll`).
/// When it is readable, the consumer calls [`LocalLoop::turn`], which reads every ready
/// socket into the sink (the same events and format as the Tokio driver), runs due deadlines
/// (a heap and a `timerfd` in the same set), and calls the consumer back once per round.
///
/// A server whose admission decides at once puts its TCP listeners in the same set
/// (`Server::bind_on_loop`, `listen.rs`): the loop accepts, admits and reads its clients in
/// one turn, and nothing per connection lives in Tokio. Other servers' accept loops hand
/// sockets over through [`LocalLoop::adopt`], with a small task per connection that holds its
/// admission until it ends.
///
/// Tokio keeps what it is best at: TLS, the jobs, and accepting for servers that must wait
/// (a held `maxConnections`, a PROXY header). A connection that starts a pipe, a file or
/// StartTLS is handed over to the Tokio driver (`handover.rs`) with its queue, credit and
/// counters, under the same id, and stays there.
///
/// Every operation takes `&self` and locks the loop's state briefly: the consumer's thread is
/// the only one that turns the loop, and accept threads only queue new connections.
pub struct LocalLoop {
    state: Mutex<State>,
    /// `None` once the loop closed its descriptors ([`LocalLoop::close_io`]).
    waker: Mutex<Option<Waker>>,
    queue: Mutex<Vec<Request>>,
    /// The consumer is inside [`LocalLoop::turn`]: what its calls leave to do is done before
    /// the turn ends, without a wake-up.
    busy: AtomicBool,
    woken: AtomicBool,
    /// The loop no longer takes connections (its consumer is gone or its server closed).
    closed: AtomicBool,
    /// Connections queued or open here, for [`LocalLoop::drained`].
    live: AtomicUsize,
    emptied: Notify,
    poll_fd: RawFd,
    /// Connections handed over to the Tokio driver, and where their events go.
    registry: Arc<Connections>,
    tokio_sink: Arc<dyn EventSink>,
    /// Where this loop's events go: the consumer takes them in [`LocalLoop::turn`]'s callback.
    sink: Arc<dyn EventSink>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for LocalLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLoop")
            .field("fd", &self.poll_fd)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

enum Request {
    /// Boxed: a connection and its facts are a few hundred bytes, an abort is four.
    Adopt(Box<Adopted>),
    /// The server aborted the connection (a forced shutdown).
    Abort(u32),
    /// The server aborted every connection.
    AbortAll,
    /// Look at every listener's backlog (accepting resumed, or a listener was added).
    AcceptAgain,
}

struct Adopted {
    conn: Connection,
    opts: DriveOptions,
    tag: u32,
    done: oneshot::Sender<()>,
}

struct State {
    /// `None` once the loop closed its descriptors.
    poll: Option<Poll>,
    events: Events,
    /// Boxed: the map keeps room for more entries than it holds, and an empty slot of a
    /// connection's size would cost every connection hundreds of bytes.
    conns: IdMap<Box<LocalConn>>,
    timers: Timers,
    /// Connections to look at in the next round.
    dirty: Vec<u32>,
    due: Vec<(Instant, u32, Kind)>,
    scratch: Vec<u8>,
    /// The server's listeners when the loop accepts for it (`listen.rs`).
    listeners: Vec<LoopListener>,
    /// A listener stopped at its accepts-per-turn bound: the next turn goes on.
    more_to_accept: bool,
}

impl LocalLoop {
    /// A loop whose connections report to `sink`; connections handed over to Tokio join
    /// `registry` and report to `tokio_sink` (which must wake the consumer itself).
    pub fn new(
        registry: Arc<Connections>,
        sink: Arc<dyn EventSink>,
        tokio_sink: Arc<dyn EventSink>,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let timers = Timers::new()?;
        poll.registry()
            .register(&mut SourceFd(&timers.fd()), TIMER, Interest::READABLE)?;
        Ok(Self {
            poll_fd: poll.as_raw_fd(),
            state: Mutex::new(State {
                poll: Some(poll),
                events: Events::with_capacity(EVENTS),
                conns: IdMap::default(),
                timers,
                dirty: Vec::new(),
                due: Vec::new(),
                scratch: vec![0; 4096],
                listeners: Vec::new(),
                more_to_accept: false,
            }),
            waker: Mutex::new(Some(waker)),
            queue: Mutex::new(Vec::new()),
            busy: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            emptied: Notify::new(),
            registry,
            tokio_sink,
            sink,
            runtime,
        })
    }

    /// The descriptor to watch for readability: when it is readable, call [`LocalLoop::turn`].
    pub fn fd(&self) -> RawFd {
        self.poll_fd
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        if !self.busy.load(Relaxed) && !self.woken.swap(true, Relaxed) {
            self.wake_now();
        }
    }

    fn wake_now(&self) {
        if let Some(w) = &*self.waker.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = w.wake();
        }
    }

    fn push(&self, request: Request) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
        if !self.woken.swap(true, Relaxed) {
            self.wake_now();
        }
    }

    /// Serves `conn` on this loop: the returned future is the connection's life for its
    /// server (it completes when the connection closes, and closes it when dropped by a
    /// forced shutdown). Connections this loop does not serve (Unix sockets), and every
    /// connection once the loop closed, go to the Tokio driver.
    pub fn adopt(
        self: &Arc<Self>,
        conn: Connection,
        opts: DriveOptions,
        tag: u32,
    ) -> impl Future<Output = ()> + Send + 'static + use<> {
        // The work is done here, not in the future: it would keep the connection (hundreds
        // of bytes) for its whole life otherwise. The future only waits.
        let this = self.clone();
        let waiting = if !conn.stream().is_tcp() || this.closed.load(Relaxed) {
            let (registry, sink) = (this.registry.clone(), this.tokio_sink.clone());
            let driven: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(registry.drive_dyn(conn, sink, opts, tag, TlsStart::None));
            Err(driven)
        } else {
            let id = conn.info().id as u32;
            let (done, closed) = oneshot::channel();
            this.live.fetch_add(1, Relaxed);
            this.push(Request::Adopt(Box::new(Adopted {
                conn,
                opts,
                tag,
                done,
            })));
            Ok((id, closed))
        };
        async move {
            match waiting {
                Err(driven) => driven.await,
                Ok((id, closed)) => {
                    let mut guard = AbortOnDrop {
                        lp: &this,
                        id,
                        armed: true,
                    };
                    // Err: the sender was dropped, which is how a connection's end is told.
                    let _ = closed.await;
                    guard.armed = false;
                }
            }
        }
    }

    /// Completes once no connection is queued or open here (after a forced shutdown, once
    /// the loop turned and reported each one closed).
    pub async fn drained(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.live.load(Relaxed) == 0 {
                return;
            }
            emptied.await;
        }
    }

    /// Runs what is ready: new connections, readable and writable sockets, due deadlines, and
    /// what the consumer's calls left to do. `deliver` is called after each round that
    /// reported something (the consumer takes the events from its sink then); rounds repeat
    /// while the consumer's calls leave work.
    pub fn turn(&self, deliver: &mut dyn FnMut()) {
        self.busy.store(true, Relaxed);
        self.woken.store(false, Relaxed);
        let mut first = true;
        for _ in 0..ROUNDS {
            let produced = {
                let mut st = self.lock();
                let mut report = Report {
                    sink: &*self.sink,
                    produced: false,
                };
                let now = Instant::now();
                if first {
                    first = false;
                    self.poll_ready(&mut st, &mut report, now);
                }
                self.run_dirty(&mut st, &mut report, now);
                report.produced
            };
            if !produced {
                break;
            }
            deliver();
        }
        self.busy.store(false, Relaxed);
        let mut st = self.lock();
        if !st.dirty.is_empty() || st.more_to_accept {
            // Rounds ran out: the rest is for the next turn.
            drop(st);
            self.wake();
            return;
        }
        st.timers.rearm(Instant::now());
    }

    fn poll_ready(&self, st: &mut State, report: &mut Report<'_>, now: Instant) {
        let State {
            poll,
            events,
            conns,
            dirty,
            timers,
            listeners,
            ..
        } = &mut *st;
        // Readiness only: the wait is the consumer's (it watches `fd()`).
        let Some(poll) = poll else {
            return;
        };
        if poll.poll(events, Some(Duration::ZERO)).is_err() {
            events.clear();
        }
        for ev in events.iter() {
            match ev.token() {
                WAKER => {}
                TIMER => timers.clear(),
                Token(t) if t >= LISTENER_BASE => listen::listener_ready(listeners, t),
                Token(t) => {
                    let id = t as u32;
                    if let Some(c) = conns.get_mut(&id) {
                        let failed = ev.is_error();
                        c.read_closed |= ev.is_read_closed() || failed;
                        c.readable |= ev.is_readable() || c.read_closed;
                        c.writable |= ev.is_writable() || ev.is_write_closed() || failed;
                        dirty.push(id);
                    }
                }
            }
        }
        let requests = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        for request in requests {
            match request {
                Request::Adopt(a) => {
                    let Adopted {
                        conn,
                        opts,
                        tag,
                        done,
                    } = *a;
                    self.open(st, conn, opts, tag, Life::Task { _done: done }, report, now);
                }
                Request::Abort(id) => self.abort(st, id, report),
                Request::AbortAll => {
                    let ids: Vec<u32> = st.conns.keys().copied().collect();
                    for id in ids {
                        self.abort(st, id, report);
                    }
                }
                Request::AcceptAgain => listen::listeners_ready(&mut st.listeners),
            }
        }
        st.timers.due(now, &mut st.due);
        let due = std::mem::take(&mut st.due);
        for &(at, id, kind) in &due {
            let State { conns, timers, .. } = &mut *st;
            if kind == Kind::Accept {
                listen::backoff_over(&mut st.listeners, id, at);
                continue;
            }
            let Some(c) = conns.get_mut(&id) else {
                continue;
            };
            match c.deadline(at, kind, now, timers) {
                Step::Open => st.dirty.push(id),
                Step::Close(error) => self.close(st, id, error, report),
            }
        }
        st.due = due;
        st.due.clear();
        if !st.listeners.is_empty() {
            self.accept_ready(st, report, now);
        }
    }

    /// A forced shutdown of connection `id`.
    fn abort(&self, st: &mut State, id: u32, report: &mut Report<'_>) {
        if let Some(c) = st.conns.get_mut(&id) {
            // As the Tokio driver: a connection its consumer released (lingering for the
            // peer's FIN) just closes; any other was cut short.
            let released = c.lingering || c.out.closing == Closing::Release;
            let error = (!released).then_some(Error::Shutdown);
            c.out.closing = Closing::Now;
            self.close(st, id, error, report);
        }
    }

    /// Takes connection `id` out as it closes: its timeout counted, its place in its server
    /// given back (before its close is reported). The caller drops it, then `forget`s it.
    fn remove(&self, st: &mut State, id: u32, error: Option<&Error>) -> Option<Box<LocalConn>> {
        let c = st.conns.remove(&id)?;
        let counters = &self.registry.counters;
        match error {
            Some(Error::IdleTimeout) => _ = counters.idle_timeouts.fetch_add(1, Relaxed),
            Some(Error::WriteTimeout) => _ = counters.write_timeouts.fetch_add(1, Relaxed),
            _ => {}
        }
        if let Some(lease) = &c.lease {
            lease.give_back();
        }
        Some(c)
    }

    fn forget(&self) {
        if self.live.fetch_sub(1, Relaxed) == 1 {
            self.emptied.notify_waiters();
        }
    }

    fn run_dirty(&self, st: &mut State, report: &mut Report<'_>, now: Instant) {
        let mut dirty = std::mem::take(&mut st.dirty);
        for &id in &dirty {
            self.progress_one(st, id, report, now);
        }
        dirty.clear();
        if st.dirty.is_empty() {
            st.dirty = dirty; // keeps its capacity
        }
    }

    /// Reads, writes and flushes what connection `id` can now; closes it if that ended it.
    fn progress_one(&self, st: &mut State, id: u32, report: &mut Report<'_>, now: Instant) {
        let State {
            conns,
            timers,
            scratch,
            poll,
            ..
        } = &mut *st;
        let Some(c) = conns.get_mut(&id) else {
            return;
        };
        let mut step = c.progress(report, timers, now, scratch);
        if let (Step::Open, Some(poll)) = (&step, poll)
            && let Err(e) = c.ask_writable(poll.registry())
        {
            step = Step::Close(Some(Error::Io(e)));
        }
        match step {
            Step::Close(error) => self.close(st, id, error, report),
            // Stopped at its reads-per-turn bound: the rest in a later round.
            Step::Open if c.more_to_read() => st.dirty.push(id),
            Step::Open => {}
        }
    }

    /// Ends connection `id`: reports `Closed`, closes the socket, and lets its server's task
    /// complete.
    fn close(&self, st: &mut State, id: u32, error: Option<Error>, report: &mut Report<'_>) {
        let Some(c) = self.remove(st, id, error.as_ref()) else {
            return;
        };
        report.event(
            id,
            Event::Closed {
                error: error.as_ref(),
                info: &c.info,
            },
        );
        drop(c);
        self.forget();
    }

    /// Closes every connection now and takes no new ones (the consumer is gone). Their
    /// `Closed` events are not delivered. Returns how many were open.
    pub fn close_all(&self) -> usize {
        self.closed.store(true, Relaxed);
        let queued = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        for r in queued {
            if let Request::Adopt(_) = r {
                self.forget();
            }
        }
        let mut st = self.lock();
        st.listeners.clear();
        let open: Vec<u32> = st.conns.keys().copied().collect();
        for &id in &open {
            if st.conns.remove(&id).is_some() {
                self.forget();
            }
        }
        open.len()
    }

    /// Takes no new connections (they go to the Tokio driver): the server closed. Once the
    /// open ones ended, [`LocalLoop::finished`] says so, on a turn this call makes sure comes.
    pub fn finish(&self) {
        self.closed.store(true, Relaxed);
        self.woken.store(true, Relaxed);
        self.wake_now();
    }

    /// [`LocalLoop::finish`] was called (or the consumer is gone) and no connection is left:
    /// the consumer may stop watching [`LocalLoop::fd`].
    pub fn finished(&self) -> bool {
        self.closed.load(Relaxed) && self.live.load(Relaxed) == 0
    }

    /// Closes the loop's descriptors (epoll set, eventfd, timerfd): the consumer stopped
    /// watching [`LocalLoop::fd`] for good. Connections still here are closed.
    pub fn close_io(&self) {
        self.close_all();
        let mut st = self.lock();
        st.poll = None;
        st.timers.close();
        drop(st);
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Closes an adopted connection whose server task was dropped (a forced shutdown).
struct AbortOnDrop<'a> {
    lp: &'a LocalLoop,
    id: u32,
    armed: bool,
}

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.lp.push(Request::Abort(self.id));
        }
    }
}
