//! Event-mode connections, for front ends that live on another thread (the Node binding).
//!
//! A Tokio task per connection reads only while the consumer has *credit* (so a slow consumer
//! turns into TCP backpressure, never into unbounded memory) and reads straight into a buffer
//! the [`EventSink`] provides (one buffer for many connections' events). Writes are
//! synchronous calls from the consumer's thread: they try the socket at once and queue only
//! the remainder, which the task flushes when the socket becomes writable.
//!
//! **Who it is for**: bindings and event loops that cannot `.await` on a connection, and
//! programs that need what only lives here: server-side TLS ([`TlsStart::Accept`],
//! [`Connections::start_tls`]), zero-copy forwarding ([`Connections::pipe`], `splice(2)` on
//! Linux), file sending ([`Connections::send_file`], `sendfile(2)` on Linux), idle and write
//! timeouts. A Rust program that is happy with `AsyncRead`/`AsyncWrite` should use the
//! handler's [`Connection`] directly.
//!
//! The flow: a [`Server`](crate::Server) handler (or [`connect`](crate::connect)) hands its
//! [`Connection`] to [`Connections::drive`], whose future is the connection's life. The
//! driver reports [`Event::Open`], then data through [`EventSink::read`], [`Event::End`] at
//! the peer's FIN, and exactly one [`Event::Closed`]. The consumer writes with
//! [`Connections::write`], returns credit with [`Connections::ack`] as it consumes input, and
//! ends with [`Connections::release`] (flush, FIN, close) or [`Connections::close`]. While the
//! peer streams, the consumer may also take what the socket holds on its own thread with
//! [`Connections::read_now`], which saves the driver's read and a thread hop per chunk.
//!
//! ```
//! use std::io;
//! use std::sync::{Arc, Mutex};
//! use tcpserver::driver::{Connections, DriveOptions, Event, EventSink, TlsStart};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! /// Upper-cases what it reads and sends it back.
//! struct Shout(Arc<Connections>, Mutex<Vec<u8>>);
//!
//! impl EventSink for Shout {
//!     fn read(&self, id: u32, _max: usize, read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>)
//!         -> io::Result<usize>
//!     {
//!         let mut buf = self.1.lock().unwrap();
//!         buf.clear();
//!         let n = read(&mut buf)?;
//!         let _ = self.0.write(id, &buf.to_ascii_uppercase());
//!         let _ = self.0.ack(id, n); // consumed: the driver may read that much more
//!         Ok(n)
//!     }
//!
//!     fn event(&self, id: u32, event: Event<'_>) {
//!         if let Event::End = event {
//!             let _ = self.0.release(id);
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conns = Arc::new(Connections::new());
//! let sink = Arc::new(Shout(conns.clone(), Mutex::new(Vec::new())));
//! let config = tcpserver::ServerConfig::new("127.0.0.1:0".parse()?);
//! let server = tcpserver::Server::bind(&config, move |conn| {
//!     conns.clone().drive(conn, sink.clone(), DriveOptions::default(), 0, TlsStart::None)
//! })?;
//!
//! let mut client = tokio::net::TcpStream::connect(server.local_addrs()[0]).await?;
//! client.write_all(b"hello").await?;
//! client.shutdown().await?;
//! let mut reply = String::new();
//! client.read_to_string(&mut reply).await?;
//! assert_eq!(reply, "HELLO");
//! server.shutdown(None).await;
//! # Ok(()) }
//! ```

use crate::addr::Address;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::stream::Stream;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::KeepAlive;
use crate::connection::{Connection, ConnectionInfo};
use crate::error::{Error, Result};
use crate::panic::{CatchUnwind, panic_message};
use crate::tls::{SocketIo, TlsAcceptor, TlsInfo, try_write_tls};

/// Largest single read.
pub const READ_CHUNK: usize = 64 * 1024;
/// How long a closing connection drains unread input before it is closed anyway.
const LINGER: Duration = Duration::from_secs(2);

/// Something a connection reports to its consumer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The connection was registered; `tag` is the one given to [`Connections::drive`]
    /// (0 for accepted connections; outbound ones use it to match their `connect` call).
    Open {
        /// The caller's tag.
        tag: u32,
    },
    /// Reading stopped for [`Connections::pipe`]: every byte read before was reported.
    Paused,
    /// A pipe started on this connection ended.
    PipeDone {
        /// Bytes read from this connection and written to the other.
        bytes_in: u64,
        /// Bytes read from the other connection and written to this one.
        bytes_out: u64,
        /// Why it ended early, if it did (both connections are then closed).
        error: Option<&'a Error>,
    },
    /// A [`Connections::start_tls`] upgrade ended (the connection is closed on failure).
    TlsStarted {
        /// Why the handshake failed, if it did.
        error: Option<&'a Error>,
    },
    /// A [`Connections::send_file`] ended.
    FileDone {
        /// Bytes of the file written to the socket.
        bytes: u64,
        /// Why it ended early, if it did.
        error: Option<&'a Error>,
    },
    /// The peer sent FIN: no more data will arrive (writes still work).
    End,
    /// The write queue, which had reached the high-water mark, is empty again.
    Drain,
    /// The connection is gone.
    Closed {
        /// Why, or `None` after an orderly close.
        error: Option<&'a Error>,
        /// Accept-time facts, for a consumer that still wants the addresses: they cannot be
        /// asked for once this event is out.
        info: &'a ConnectionInfo,
    },
}

/// Where a driven connection's data and events go.
pub trait EventSink: Send + Sync + 'static {
    /// Appends up to `max` bytes read by `read` to the sink's buffer and records them as data
    /// of connection `id`. `read` appends to the `Vec` it is given and returns the count
    /// (0 at end of stream); nothing is recorded unless it returns at least one byte.
    fn read(
        &self,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize>;

    /// Records an event of connection `id`.
    fn event(&self, id: u32, event: Event<'_>);

    /// A TLS handshake failed: the connection never opened.
    fn tls_error(&self, _peer: &Address, _error: &Error) {}
}

/// How a driven connection starts TLS.
#[derive(Debug)]
pub enum TlsStart {
    /// Plain TCP.
    None,
    /// Run the server side of a handshake first (failures go to [`EventSink::tls_error`]).
    Accept(Arc<TlsAcceptor>),
    /// An already established session (e.g. an outbound connection's client handshake).
    Session(Box<rustls::Connection>),
}

/// Per-connection settings of a driven connection.
#[derive(Debug, Clone, Copy)]
pub struct DriveOptions {
    /// Bound on unconsumed input and on queued output, in bytes.
    pub high_water_mark: usize,
    /// Close the connection after this long without a byte moving either way.
    pub idle_timeout: Option<Duration>,
    /// Close the connection ([`Error::WriteTimeout`]) when output waits this long without
    /// the peer taking a byte of it: a peer that does not read.
    pub write_timeout: Option<Duration>,
}

impl Default for DriveOptions {
    fn default() -> Self {
        Self {
            high_water_mark: 64 * 1024,
            idle_timeout: None,
            write_timeout: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    No,
    /// Flush, then FIN; reading goes on.
    End,
    /// Flush, FIN, drain unread input briefly, close: the handler finished.
    Release,
    /// Close now, dropping queued output.
    Now,
}

#[derive(Debug)]
struct Outbox {
    buf: Vec<u8>,
    pos: usize,
    closing: Closing,
    want_drain: bool,
    write_shut: bool,
    /// A pipe or file task owns the socket's output: writes queue behind it.
    job: bool,
    /// TLS: `close_notify` was queued.
    close_notify_sent: bool,
    /// Bytes ever appended to / flushed from `buf`: reservations are positions in this stream.
    queued: u64,
    flushed: u64,
    /// Jobs (file, pipe, TLS upgrade) in call order: `(ticket, mark)`. A job starts when it is
    /// first and everything queued before `mark` is flushed; writes made after it wait for it.
    reservations: VecDeque<(u64, u64)>,
    next_ticket: u64,
    /// A read error met by [`Connections::read_now`]: the kernel reports it once, so it is
    /// kept here for the driver, which ends the connection with it.
    read_error: Option<io::Error>,
}

/// Reading states of a driven connection (`Shared::mode`).
const READING: u8 = 0;
/// A pipe asked the driver to stop reading; it reports `Paused` next.
const PAUSING: u8 = 1;
/// The driver stopped reading; a pipe task may own the input.
const PAUSED: u8 = 2;
/// The input was consumed to its end by a pipe: nothing more to read.
const INPUT_DONE: u8 = 3;
/// The consumer reads on its own thread ([`Connections::read_now`]); the driver does not read
/// until the consumer finds the socket empty and hands reading back.
const CONSUMER_READING: u8 = 4;

impl Outbox {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            closing: Closing::No,
            want_drain: false,
            write_shut: false,
            job: false,
            close_notify_sent: false,
            queued: 0,
            flushed: 0,
            reservations: VecDeque::new(),
            next_ticket: 0,
            read_error: None,
        }
    }

    /// Nothing queued, no job running or waiting: writes may go straight to the socket, and
    /// (TLS records aside) nothing is left to send before a FIN.
    fn idle(&self) -> bool {
        self.pending() == 0 && !self.job && self.reservations.is_empty()
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Queued bytes that may go out now: those before the first reservation.
    fn flushable(&self) -> usize {
        match self.reservations.front() {
            Some(&(_, mark)) => self
                .pending()
                .min(mark.saturating_sub(self.flushed) as usize),
            None => self.pending(),
        }
    }

    fn append(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.queued += data.len() as u64;
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.flushed += n as u64;
    }

    /// Books the output for a job, behind everything queued so far; returns its ticket.
    fn reserve(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.reservations.push_back((ticket, self.queued));
        ticket
    }

    /// Whether job `ticket` may take the output now; taking it when it may.
    fn try_start(&mut self, ticket: u64) -> Start {
        if self.closing == Closing::Now || self.write_shut {
            return Start::Ended;
        }
        match self.reservations.front() {
            Some(&(t, mark)) if t == ticket && !self.job => {
                if self.flushed >= mark {
                    self.job = true;
                    Start::Started
                } else {
                    Start::Flush
                }
            }
            Some(_) => Start::WaitTurn,
            None => Start::Gone,
        }
    }

    /// Job `ticket` is over (done, failed, or never started): the output goes back to the
    /// driver, or to the next job in line.
    fn finish(&mut self, ticket: u64) {
        if self.reservations.front().is_some_and(|&(t, _)| t == ticket) {
            self.job = false;
        }
        self.reservations.retain(|&(t, _)| t != ticket);
    }
}

/// What [`Outbox::try_start`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The job owns the output now.
    Started,
    /// It is next, once the bytes queued before it are flushed.
    Flush,
    /// Another job is before it.
    WaitTurn,
    /// The output is closed or half-closed: the job cannot write.
    Ended,
    /// Its reservation is gone (the connection closed).
    Gone,
}

/// When bytes last moved on a connection, for its idle timeout: microseconds since the
/// connection began. Every read and write stores it (a clock read and one atomic, nothing
/// on the timer wheel); the driver's idle deadline reads it only when it comes.
#[derive(Debug)]
pub(crate) struct Activity {
    since: tokio::time::Instant,
    micros: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            since: tokio::time::Instant::now(),
            micros: AtomicU64::new(0),
        }
    }

    /// Bytes moved now. `fetch_max`: a write on the consumer's thread and a read on the
    /// driver's may store out of order; the later time wins.
    pub(crate) fn touch(&self) {
        let micros = self.since.elapsed().as_micros() as u64;
        self.micros.fetch_max(micros, Relaxed);
    }

    /// When bytes last moved.
    pub(crate) fn last(&self) -> tokio::time::Instant {
        self.since + Duration::from_micros(self.micros.load(Relaxed))
    }
}

pub(crate) struct Shared {
    pub(crate) id: u32,
    pub(crate) stream: Stream,
    info: ConnectionInfo,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) abort: CancellationToken,
    mode: AtomicU8,
    /// The TLS session, for connections that negotiated one.
    /// Set once: at accept, at connect, or by a StartTLS upgrade.
    /// Boxed: a rustls session is over a kilobyte, and plain connections should not carry
    /// its space.
    tls: OnceLock<Box<Mutex<rustls::Connection>>>,
    tls_info: OnceLock<TlsInfo>,
    /// Set (and `gone_notify` woken) when the driver ended: pipe and file tasks stop then.
    gone: AtomicBool,
    gone_notify: Notify,
    /// Woken when a job ends: the next reservation may start.
    job_turn: Notify,
    out: Mutex<Outbox>,
    wake: Notify,
    credit: AtomicI64,
    /// Held across a read and its report (the driver's and `read_now`'s): bytes reach the
    /// consumer in socket order.
    read_lock: Mutex<()>,
    high_water_mark: usize,
    idle_ms: AtomicU64,
    write_timeout_ms: AtomicU64,
    /// A job (a file) timed out writing: the driver ends with [`Error::WriteTimeout`].
    write_timed_out: AtomicBool,
    pub(crate) activity: Activity,
    bytes_read: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn out(&self) -> MutexGuard<'_, Outbox> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The write timeout, if set.
    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        let ms = self.write_timeout_ms.load(Relaxed);
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// The TLS session, if this connection has one.
    pub(crate) fn tls(&self) -> Option<&Mutex<rustls::Connection>> {
        self.tls.get().map(|t| &**t)
    }

    /// TLS records waiting for the socket.
    fn tls_pending(&self) -> bool {
        self.tls.get().is_some_and(|t| lock_tls(t).wants_write())
    }

    /// Reserves the output for a job now, behind what is already queued.
    pub(crate) fn reserve(&self) -> u64 {
        self.out().reserve()
    }

    /// Takes the socket's output for job `ticket`: when it is first in line and everything
    /// queued before it is flushed.
    pub(crate) async fn begin_job(&self, ticket: u64) -> Result<()> {
        loop {
            let turn = self.job_turn.notified();
            // Decided under the lock; the waiting happens after it is released.
            let start = self.out().try_start(ticket);
            match start {
                Start::Started => return Ok(()),
                Start::Ended => return Err(Error::WriteAfterEnd),
                Start::Gone => return Err(Error::ConnectionClosed),
                Start::Flush => {
                    self.stream.writable().await?;
                    flush(self, &*self.sink)?;
                }
                Start::WaitTurn => turn.await,
            }
        }
    }

    /// Completes once the connection's driver ended (closed by the consumer, reset, aborted).
    pub(crate) async fn gone(&self) {
        loop {
            let notified = self.gone_notify.notified();
            if self.gone.load(Relaxed) {
                return;
            }
            notified.await;
        }
    }

    /// Gives the output back to the driver (which flushes what queued meanwhile).
    pub(crate) fn end_job(&self, ticket: u64) {
        self.out().finish(ticket);
        self.job_turn.notify_waiters();
        self.wake.notify_one();
    }

    /// The output was half-closed by a pipe: later writes fail.
    pub(crate) fn mark_write_shut(&self) {
        self.out().write_shut = true;
    }

    /// The pipe consumed the input to its end.
    pub(crate) fn input_done(&self) {
        self.mode.store(INPUT_DONE, Relaxed);
        self.wake.notify_one();
    }

    /// Ends the connection now with [`Error::WriteTimeout`] (a stalled file).
    pub(crate) fn fail_write_timeout(&self) {
        self.write_timed_out.store(true, Relaxed);
        self.close_now();
    }

    /// Ends the connection now (a failed pipe closes both sides).
    pub(crate) fn close_now(&self) {
        self.out().closing = Closing::Now;
        self.wake.notify_one();
    }
}

/// Counters and addresses of one driven connection.
#[derive(Debug, Clone)]
pub struct DrivenInfo {
    /// Accept-time facts.
    pub info: ConnectionInfo,
    /// Bytes read from the socket.
    pub bytes_read: u64,
    /// Bytes written to the socket (in the kernel).
    pub bytes_written: u64,
    /// Bytes queued in user space, not yet in the kernel.
    pub queued: usize,
    /// What TLS negotiated, for TLS connections.
    pub tls: Option<TlsInfo>,
}

/// The registry of driven connections of one server, addressed by a `u32` id (the low 32
/// bits of [`ConnectionInfo::id`]). Keep it in an `Arc`: [`Connections::drive`] and the
/// zero-copy jobs hold it. Every method taking an id fails with
/// [`Error::ConnectionClosed`] once that connection is gone. See the [module docs](self) for
/// a complete example.
#[derive(Debug, Default)]
pub struct Connections {
    map: Mutex<HashMap<u32, Arc<Shared>>>,
    pub(crate) counters: DataCounters,
}

/// Counters of the zero-copy paths, so users can tell whether `splice`/`sendfile` were used.
#[derive(Debug, Default)]
pub(crate) struct DataCounters {
    pub(crate) pipes_spliced: AtomicU64,
    pub(crate) pipes_copied: AtomicU64,
    pub(crate) bytes_piped: AtomicU64,
    pub(crate) files_sent: AtomicU64,
    pub(crate) file_bytes_zero_copy: AtomicU64,
    pub(crate) file_bytes_copied: AtomicU64,
    pub(crate) direct_reads: AtomicU64,
    pub(crate) idle_timeouts: AtomicU64,
    pub(crate) read_timeouts: AtomicU64,
    pub(crate) write_timeouts: AtomicU64,
}

/// A snapshot of [`Connections::timeout_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutStats {
    /// Connections closed by the idle timeout.
    pub idle: u64,
    /// Reads that timed out (counted by the consumer with [`Connections::count_read_timeout`]).
    pub read: u64,
    /// Connections closed by the write timeout.
    pub write: u64,
}

/// A duration as whole milliseconds for the atomics, 0 meaning off (and at least 1 if on).
fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis().clamp(1, u128::from(u64::MAX)) as u64)
}

/// A snapshot of [`Connections::data_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataStats {
    /// Pipes that forwarded with `splice(2)` (Linux, plain TCP both sides).
    pub pipes_spliced: u64,
    /// Pipes that forwarded with a copy loop (other platforms).
    pub pipes_copied: u64,
    /// Bytes forwarded by pipes, both directions.
    pub bytes_piped: u64,
    /// Files (or ranges) sent completely.
    pub files_sent: u64,
    /// File bytes sent with `sendfile(2)`.
    pub file_bytes_zero_copy: u64,
    /// File bytes sent with a read/write loop.
    pub file_bytes_copied: u64,
    /// Reads made by the consumer on its own thread ([`Connections::read_now`]), each of them
    /// a chunk that needed no driver read and no event.
    pub direct_reads: u64,
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Arc<Shared>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, id: u32) -> Result<Arc<Shared>> {
        self.lock().get(&id).cloned().ok_or(Error::ConnectionClosed)
    }

    /// Counters of the zero-copy paths.
    pub fn data_stats(&self) -> DataStats {
        let c = &self.counters;
        DataStats {
            pipes_spliced: c.pipes_spliced.load(Relaxed),
            pipes_copied: c.pipes_copied.load(Relaxed),
            bytes_piped: c.bytes_piped.load(Relaxed),
            files_sent: c.files_sent.load(Relaxed),
            file_bytes_zero_copy: c.file_bytes_zero_copy.load(Relaxed),
            file_bytes_copied: c.file_bytes_copied.load(Relaxed),
            direct_reads: c.direct_reads.load(Relaxed),
        }
    }

    /// Timeouts by kind.
    pub fn timeout_stats(&self) -> TimeoutStats {
        let c = &self.counters;
        TimeoutStats {
            idle: c.idle_timeouts.load(Relaxed),
            read: c.read_timeouts.load(Relaxed),
            write: c.write_timeouts.load(Relaxed),
        }
    }

    /// Forwards both ways between `id` (in this registry) and `other_id` (in `other`) until
    /// both directions ended, then reports [`Event::PipeDone`] on `id`. Both connections must
    /// have been paused with [`Connections::pause_reading`] (and their `Paused` events seen),
    /// so that no byte read before is lost: the consumer passes what it still holds as heads.
    /// The returned future does the work; spawn it.
    pub fn pipe(
        self: &Arc<Self>,
        id: u32,
        other: &Connections,
        other_id: u32,
        opts: crate::forward::PipeOptions,
    ) -> Result<impl Future<Output = ()> + Send + 'static> {
        let a = self.get(id)?;
        let b = other.get(other_id)?;
        if Arc::ptr_eq(&a, &b) || a.mode.load(Relaxed) != PAUSED || b.mode.load(Relaxed) != PAUSED {
            return Err(Error::Busy);
        }
        let tickets = (a.reserve(), b.reserve());
        Ok(crate::forward::run_pipe(self.clone(), a, b, opts, tickets))
    }

    /// Sends `length` bytes (default: to the end) of `file` from `offset` on connection `id`,
    /// after the bytes already queued; writes made meanwhile follow it. Reports
    /// [`Event::FileDone`]. The range is checked now; the returned future does the work.
    pub fn send_file(
        self: &Arc<Self>,
        id: u32,
        file: std::fs::File,
        offset: u64,
        length: Option<u64>,
    ) -> Result<impl Future<Output = ()> + Send + 'static> {
        let sh = self.get(id)?;
        let (offset, length) = crate::file::range(&file, offset, length)?;
        let ticket = sh.reserve();
        Ok(crate::file::run_send(
            self.clone(),
            sh,
            file,
            offset,
            length,
            ticket,
        ))
    }

    /// Upgrades plain connection `id` to TLS in place (StartTLS, as in SMTP/IMAP/Postgres):
    /// `head` is what the consumer read past the point of the upgrade (the first bytes of the
    /// ClientHello). The connection must be paused ([`Connections::pause_reading`]). Queued
    /// writes go out in plaintext first; later ones are encrypted. Reports
    /// [`Event::TlsStarted`]. The returned future does the work; spawn it.
    pub fn start_tls(
        self: &Arc<Self>,
        id: u32,
        head: Vec<u8>,
        acceptor: Arc<TlsAcceptor>,
    ) -> Result<impl Future<Output = ()> + Send + 'static> {
        let sh = self.get(id)?;
        if sh.tls.get().is_some() {
            return Err(Error::value(
                "startTls",
                "the connection already speaks TLS",
            ));
        }
        if sh.mode.load(Relaxed) != PAUSED {
            return Err(Error::Busy);
        }
        let ticket = sh.reserve();
        Ok(async move {
            let result = upgrade(&sh, &head, &acceptor, ticket).await;
            // Reading resumes before end_job() wakes the driver: stored after the wake-up, the
            // driver could see PAUSED, wait for readiness, and never deliver what rustls
            // already decrypted (a client's first data sent with its Finished).
            sh.mode.store(READING, Relaxed);
            sh.end_job(ticket);
            sh.sink.event(
                sh.id,
                Event::TlsStarted {
                    error: result.as_ref().err(),
                },
            );
            if result.is_err() {
                sh.close_now();
            }
        })
    }

    /// Stops reading `id` so that it can be piped; [`Event::Paused`] follows once every byte
    /// read before has been reported.
    pub fn pause_reading(&self, id: u32) -> Result<()> {
        let sh = self.get(id)?;
        let paused = [READING, CONSUMER_READING].into_iter().any(|from| {
            sh.mode
                .compare_exchange(from, PAUSING, Relaxed, Relaxed)
                .is_ok()
        });
        if !paused {
            return Err(Error::Busy);
        }
        sh.wake.notify_one();
        Ok(())
    }

    /// Number of registered connections.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// `true` when no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drives `conn` until it is closed: registers it, reports [`Event::Open`], moves bytes,
    /// and always ends with exactly one [`Event::Closed`] (also on panic or abort).
    pub async fn drive<S: EventSink>(
        self: Arc<Self>,
        conn: Connection,
        sink: Arc<S>,
        opts: DriveOptions,
        tag: u32,
        tls: TlsStart,
    ) {
        let draining = conn.draining().clone();
        let (stream, info, abort) = conn.into_parts();
        // TLS first: a failed or timed-out handshake never reaches the consumer.
        let tls = match tls {
            TlsStart::None => None,
            TlsStart::Session(session) => Some(Box::new(Mutex::new(*session))),
            TlsStart::Accept(acceptor) => {
                // Boxed: inline, the handshake's state would make every connection's task
                // (plain ones too) kilobytes larger.
                let handshake = Box::pin(accept_tls(&acceptor, &stream, &abort, &draining, opts));
                match handshake.await {
                    None => return,
                    Some(Ok(session)) => Some(session),
                    Some(Err(e)) => {
                        sink.tls_error(&info.peer_addr, &e);
                        return;
                    }
                }
            }
        };
        let tls_info = tls.as_ref().map(|t| crate::tls::info(&lock_tls(t)));
        // Ids are the low 32 bits of the server's connection counter: unique among live
        // connections unless four billion connections separate two of them.
        let id = info.id as u32;
        let shared = Arc::new(Shared {
            id,
            stream,
            info,
            sink: sink.clone(),
            abort,
            mode: AtomicU8::new(READING),
            tls: tls.map_or_else(OnceLock::new, OnceLock::from),
            tls_info: tls_info.map_or_else(OnceLock::new, OnceLock::from),
            gone: AtomicBool::new(false),
            gone_notify: Notify::new(),
            job_turn: Notify::new(),
            out: Mutex::new(Outbox::new()),
            wake: Notify::new(),
            credit: AtomicI64::new(opts.high_water_mark as i64),
            read_lock: Mutex::new(()),
            high_water_mark: opts.high_water_mark,
            idle_ms: AtomicU64::new(millis(opts.idle_timeout)),
            write_timeout_ms: AtomicU64::new(millis(opts.write_timeout)),
            write_timed_out: AtomicBool::new(false),
            activity: Activity::new(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        });
        self.lock().insert(id, shared.clone());
        let mut guard = Unregister {
            conns: &self,
            shared: &shared,
            sink: &*sink,
            reported: false,
        };
        sink.event(id, Event::Open { tag });
        let result = match CatchUnwind(Box::pin(run(&shared, &*sink))).await {
            Ok(r) => r,
            Err(panic) => Err(Error::Panic(panic_message(&*panic))),
        };
        guard.finish(result.as_ref().err());
    }

    /// Writes `data`: straight into the socket when nothing is queued, the rest into the
    /// queue. Returns the bytes now queued; at or above the high-water mark a
    /// [`Event::Drain`] follows once the queue is empty.
    pub fn write(&self, id: u32, data: &[u8]) -> Result<usize> {
        let sh = self.get(id)?;
        let mut out = sh.out();
        if out.closing != Closing::No || out.write_shut {
            return Err(Error::WriteAfterEnd);
        }
        let mut written = 0;
        let direct = out.idle();
        if direct && let Some(tls) = sh.tls() {
            // Into rustls (up to its buffer limit), then as many records as the socket takes;
            // records left over are flushed by the driver when the socket is writable.
            let mut t = lock_tls(tls);
            written = io::Write::write(&mut t.writer(), data)?;
            if try_write_tls(&mut *t, &sh.stream)? {
                sh.wake.notify_one();
            }
            sh.bytes_written.fetch_add(written as u64, Relaxed);
            sh.activity.touch();
        } else if direct {
            while written < data.len() {
                match sh.stream.try_write(&data[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Io(e)),
                }
            }
            if written > 0 {
                sh.bytes_written.fetch_add(written as u64, Relaxed);
                sh.activity.touch();
            }
        }
        if written < data.len() {
            let was_empty = out.pending() == 0;
            out.append(&data[written..]);
            if was_empty {
                sh.wake.notify_one();
            }
        }
        let queued = out.pending();
        if queued >= sh.high_water_mark {
            out.want_drain = true;
        }
        Ok(queued)
    }

    /// Returns `n` bytes of read credit: the consumer has taken that much input.
    pub fn ack(&self, id: u32, n: usize) -> Result<()> {
        let sh = self.get(id)?;
        let before = sh.credit.fetch_add(n as i64, Relaxed);
        if before <= 0 && before + n as i64 > 0 {
            sh.wake.notify_one();
        }
        Ok(())
    }

    /// Reads into `buf` on the caller's thread when the socket already holds bytes, skipping
    /// the driver's read and the event that would carry it: a consumer that streams input
    /// (uploads, echo, a proxy in user code) then reads like a single-threaded event loop,
    /// with no thread hop per chunk. `delivered` is how many bytes the consumer has received
    /// so far (events and earlier `read_now` calls): while bytes reported by the driver are
    /// still on their way, it reads nothing, so input always arrives in order.
    ///
    /// Returns the bytes read. After a read, the driver stops reading until a call returns 0
    /// (the consumer takes the bytes it wants itself); 0 means "wait for events": the socket
    /// is empty, at its end, failed (the driver reports the end or the error as events), or
    /// reading is not the consumer's to do now (TLS, a pause, bytes in flight). Read credit
    /// is not used: the bytes are consumed by the time they are returned.
    pub fn read_now(&self, id: u32, delivered: u64, buf: &mut [u8]) -> Result<usize> {
        let sh = self.get(id)?;
        // Held by the driver only across one read and its report.
        let _order = sh.read_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mode = sh.mode.load(Relaxed);
        let mut failed = false;
        if (mode == READING || mode == CONSUMER_READING)
            && sh.tls().is_none()
            && sh.bytes_read.load(Relaxed) == delivered
        {
            let max = buf.len().min(READ_CHUNK);
            match sh.stream.try_read(&mut buf[..max]) {
                Ok(n) if n > 0 => {
                    sh.mode.store(CONSUMER_READING, Relaxed);
                    sh.bytes_read.fetch_add(n as u64, Relaxed);
                    sh.activity.touch();
                    self.counters.direct_reads.fetch_add(1, Relaxed);
                    return Ok(n);
                }
                // The end: the driver reads it again (a FIN stays readable) and reports it.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    sh.out().read_error = Some(e);
                    failed = true;
                }
            }
        }
        // Reading goes back to the driver, which waits for the socket (or reports the error).
        if mode == CONSUMER_READING {
            sh.mode.store(READING, Relaxed);
        }
        if mode == CONSUMER_READING || failed {
            sh.wake.notify_one();
        }
        Ok(0)
    }

    /// Half-closes: FIN after the queue is flushed; reading goes on.
    pub fn end(&self, id: u32) -> Result<()> {
        self.set_closing(id, Closing::End)
    }

    /// The consumer is done: flush the queue, then FIN and close.
    pub fn release(&self, id: u32) -> Result<()> {
        self.set_closing(id, Closing::Release)
    }

    /// Closes now; queued output is dropped.
    pub fn close(&self, id: u32) -> Result<()> {
        self.set_closing(id, Closing::Now)
    }

    /// Closes every registered connection now, dropping queued output: for a consumer that is
    /// gone (the thread that handled them ended). Returns how many were open.
    pub fn close_all(&self) -> usize {
        let ids: Vec<u32> = self.lock().keys().copied().collect();
        ids.into_iter()
            .filter(|&id| self.set_closing(id, Closing::Now).is_ok())
            .count()
    }

    fn set_closing(&self, id: u32, how: Closing) -> Result<()> {
        let sh = self.get(id)?;
        let mut out = sh.out();
        let rank = |c: Closing| match c {
            Closing::No => 0,
            Closing::End => 1,
            Closing::Release => 2,
            Closing::Now => 3,
        };
        if rank(how) > rank(out.closing) {
            out.closing = how;
        }
        // Nothing left to send: the FIN goes out now, from the caller's thread, right behind
        // the last write (as `socket.end()` does). Left to the driver, it would leave a thread
        // hop later, after the peer had often reacted to the answer already, and the close
        // handshake would then run in the server's time.
        if matches!(how, Closing::End | Closing::Release)
            && !out.write_shut
            && out.idle()
            && sh.tls().is_none()
        {
            out.write_shut = true;
            sh.stream_shutdown_write();
        }
        drop(out);
        sh.wake.notify_one();
        Ok(())
    }

    /// Addresses and counters of a live connection.
    pub fn info(&self, id: u32) -> Result<DrivenInfo> {
        let sh = self.get(id)?;
        let queued = sh.out().pending();
        Ok(DrivenInfo {
            info: sh.info.clone(),
            bytes_read: sh.bytes_read.load(Relaxed),
            bytes_written: sh.bytes_written.load(Relaxed),
            queued,
            tls: sh.tls_info.get().cloned(),
        })
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_no_delay(&self, id: u32, on: bool) -> Result<()> {
        Ok(self.get(id)?.stream.set_nodelay(on)?)
    }

    /// Turns TCP keep-alive on (with probe settings) or off.
    pub fn set_keep_alive(&self, id: u32, keep_alive: Option<&KeepAlive>) -> Result<()> {
        let sh = self.get(id)?;
        match keep_alive {
            Some(k) => crate::socket::set_keep_alive(&sh.stream, k)?,
            None => SockRef::from(&sh.stream).set_keepalive(false)?,
        }
        Ok(())
    }

    /// Changes the idle timeout (`None` turns it off).
    pub fn set_idle_timeout(&self, id: u32, timeout: Option<Duration>) -> Result<()> {
        let sh = self.get(id)?;
        sh.idle_ms.store(millis(timeout), Relaxed);
        sh.wake.notify_one();
        Ok(())
    }

    /// Changes the write timeout (`None` turns it off); see [`DriveOptions::write_timeout`].
    pub fn set_write_timeout(&self, id: u32, timeout: Option<Duration>) -> Result<()> {
        let sh = self.get(id)?;
        sh.write_timeout_ms.store(millis(timeout), Relaxed);
        sh.wake.notify_one();
        Ok(())
    }

    /// Counts a read timeout that the consumer applied (reads wait on its side).
    pub fn count_read_timeout(&self) {
        self.counters.read_timeouts.fetch_add(1, Relaxed);
    }

    /// The peer's address.
    pub fn peer_addr(&self, id: u32) -> Result<Address> {
        Ok(self.get(id)?.info.peer_addr.clone())
    }
}

/// Removes the connection from the registry and reports `Closed` exactly once, also when the
/// driving future is dropped by a forced shutdown.
struct Unregister<'a, S: EventSink> {
    conns: &'a Connections,
    shared: &'a Shared,
    sink: &'a S,
    reported: bool,
}

impl<S: EventSink> Unregister<'_, S> {
    fn finish(&mut self, error: Option<&Error>) {
        let id = self.shared.id;
        self.conns.lock().remove(&id);
        let timeouts = &self.conns.counters;
        match error {
            Some(Error::IdleTimeout) => _ = timeouts.idle_timeouts.fetch_add(1, Relaxed),
            Some(Error::WriteTimeout) => _ = timeouts.write_timeouts.fetch_add(1, Relaxed),
            _ => {}
        }
        self.reported = true;
        self.shared.gone.store(true, Relaxed);
        self.shared.gone_notify.notify_waiters();
        self.sink.event(
            id,
            Event::Closed {
                error,
                info: &self.shared.info,
            },
        );
    }
}

impl<S: EventSink> Drop for Unregister<'_, S> {
    fn drop(&mut self) {
        if !self.reported {
            self.finish(Some(&Error::Shutdown));
        }
    }
}

async fn run(sh: &Shared, sink: &dyn EventSink) -> Result<()> {
    let abort = &sh.abort;
    let mut read_open = true;
    // The idle deadline: armed once per timeout, not per byte. When it comes, the last
    // activity tells whether the connection was quiet all along (close) or when it will be
    // due at the earliest (re-armed there), so the close comes at last byte + timeout.
    let mut idle_ms_armed = 0u64;
    let idle_deadline = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(idle_deadline);
    // Output that waits: the flushed count when it last moved, and the deadline from then.
    let mut write_stall: Option<u64> = None;
    let write_deadline = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(write_deadline);
    // Created once: every connection shares the server's token, and a fresh `cancelled()` per
    // iteration would lock the token's waiter list twice per read.
    let aborted = abort.cancelled();
    tokio::pin!(aborted);
    loop {
        let (flushable, idle_out, closing, write_shut, job, flushed) = {
            let mut out = sh.out();
            if let Some(e) = out.read_error.take() {
                return Err(Error::Io(e));
            }
            let idle_out = out.idle();
            (
                out.flushable(),
                idle_out,
                out.closing,
                out.write_shut,
                out.job,
                out.flushed,
            )
        };
        if closing == Closing::Now {
            if sh.write_timed_out.load(Relaxed) {
                return Err(Error::WriteTimeout);
            }
            return Ok(());
        }
        match sh.mode.load(Relaxed) {
            PAUSING => {
                // Every DATA event of this connection is in the sink before this one.
                sh.mode.store(PAUSED, Relaxed);
                sink.event(sh.id, Event::Paused);
            }
            INPUT_DONE => read_open = false,
            _ => {}
        }
        // A job (pipe, file) owns the output: the driver neither flushes nor closes meanwhile.
        // What can go out now (a job owns the output while it runs), and whether nothing at all
        // is left to send: only then may the connection half-close or close.
        let tls_pending = !job && sh.tls_pending();
        let pending = if job {
            0
        } else {
            flushable + usize::from(tls_pending)
        };
        let idle_out = idle_out && !tls_pending;
        if idle_out
            && closing != Closing::No
            && let Some(tls) = sh.tls()
        {
            let mut out = sh.out();
            if !out.close_notify_sent {
                // A clean TLS close: the alert goes out (flushed below) before the FIN.
                out.close_notify_sent = true;
                drop(out);
                lock_tls(tls).send_close_notify();
                continue;
            }
        }
        if idle_out {
            match closing {
                Closing::End if !write_shut => {
                    sh.out().write_shut = true;
                    sh.stream_shutdown_write();
                }
                Closing::Release => return linger_close(sh, read_open, write_shut).await,
                _ => {}
            }
        }
        let idle_ms = sh.idle_ms.load(Relaxed);
        if idle_ms != idle_ms_armed {
            // A new timeout counts from now, like Node's `socket.setTimeout()`.
            idle_ms_armed = idle_ms;
            if idle_ms > 0 {
                sh.activity.touch();
                idle_deadline
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_millis(idle_ms));
            }
        }
        // The write timeout runs only while output waits for the socket, and is re-armed only
        // when the peer took some of it: nothing per byte on the fast path.
        let write_ms = sh.write_timeout_ms.load(Relaxed);
        if write_ms > 0 && pending > 0 {
            if write_stall != Some(flushed) {
                write_stall = Some(flushed);
                write_deadline
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_millis(write_ms));
            }
        } else {
            write_stall = None;
        }
        let want_read =
            read_open && sh.mode.load(Relaxed) == READING && sh.credit.load(Relaxed) > 0;
        // rustls may already hold decrypted bytes: readiness would not announce them.
        if want_read && sh.tls().is_some() {
            match read_once(sh, sink, &mut read_open) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Err(e),
            }
        }
        tokio::select! {
            biased;
            () = &mut aborted => return Err(Error::Shutdown),
            () = sh.wake.notified() => {}
            ready = sh.stream.writable(), if pending > 0 => {
                ready?;
                flush(sh, sink)?;
            }
            ready = sh.stream.readable(), if want_read => {
                ready?;
                read_once(sh, sink, &mut read_open)?;
            }
            () = &mut write_deadline, if write_stall.is_some() => return Err(Error::WriteTimeout),
            () = &mut idle_deadline, if idle_ms_armed > 0 => {
                let due = sh.activity.last() + Duration::from_millis(idle_ms_armed);
                if due <= tokio::time::Instant::now() {
                    return Err(Error::IdleTimeout);
                }
                idle_deadline.as_mut().reset(due);
            }
        }
    }
}

/// The server side of a TLS handshake; `None` when the server is shutting down (a graceful
/// shutdown does not wait for clients still shaking hands).
async fn accept_tls(
    acceptor: &TlsAcceptor,
    stream: &Stream,
    abort: &CancellationToken,
    draining: &CancellationToken,
    opts: DriveOptions,
) -> Option<Result<Box<Mutex<rustls::Connection>>>> {
    let handshake = tokio::select! {
        r = acceptor.accept(stream) => r,
        () = abort.cancelled() => return None,
        () = draining.cancelled() => return None,
    };
    Some(handshake.map(|session| {
        let mut session = rustls::Connection::Server(session);
        // Bounds the plaintext rustls accepts from write() like the queue's.
        session.set_buffer_limit(Some(opts.high_water_mark));
        Box::new(Mutex::new(session))
    }))
}

async fn upgrade(sh: &Shared, head: &[u8], acceptor: &TlsAcceptor, ticket: u64) -> Result<()> {
    sh.begin_job(ticket).await?;
    let session = tokio::select! {
        r = acceptor.accept_with(&sh.stream, head) => r?,
        () = sh.abort.cancelled() => return Err(Error::Shutdown),
        () = sh.gone() => return Err(Error::ConnectionClosed),
    };
    let mut session = rustls::Connection::Server(session);
    session.set_buffer_limit(Some(sh.high_water_mark));
    let _ = sh.tls_info.set(crate::tls::info(&session));
    let _ = sh.tls.set(Box::new(Mutex::new(session)));
    Ok(())
}

/// One read into the sink (plaintext for TLS). Returns whether something happened (bytes or
/// end of input), `false` when there was nothing to read.
fn read_once(sh: &Shared, sink: &dyn EventSink, read_open: &mut bool) -> Result<bool> {
    let _order = sh.read_lock.lock().unwrap_or_else(|e| e.into_inner());
    if sh.mode.load(Relaxed) != READING {
        return Ok(false); // the consumer took reading over since the loop looked
    }
    let max = (sh.credit.load(Relaxed).max(0) as usize).min(READ_CHUNK);
    let read = match sh.tls() {
        None => sink.read(sh.id, max, &mut |buf| read_drained(&sh.stream, buf, max)),
        Some(tls) => sink.read(sh.id, max, &mut |buf| tls_read(&sh.stream, tls, buf, max)),
    };
    match read {
        Ok(0) => {
            *read_open = false;
            sink.event(sh.id, Event::End);
            Ok(true)
        }
        Ok(n) => {
            sh.credit.fetch_sub(n as i64, Relaxed);
            sh.bytes_read.fetch_add(n as u64, Relaxed);
            sh.activity.touch();
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(Error::Io(e)),
    }
}

pub(crate) fn lock_tls(tls: &Mutex<rustls::Connection>) -> MutexGuard<'_, rustls::Connection> {
    tls.lock().unwrap_or_else(|e| e.into_inner())
}

/// Plaintext from a TLS session: what rustls already decrypted, else ciphertext pulled from the
/// socket and decrypted. Alerts, tickets and key updates rustls wants to send go out too.
pub(crate) fn tls_read(
    stream: &Stream,
    tls: &Mutex<rustls::Connection>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let mut t = lock_tls(tls);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let want = max.min(chunk.len());
        match io::Read::read(&mut t.reader(), &mut chunk[..want]) {
            Ok(n) => {
                // 0: the peer's close_notify.
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // EOF without close_notify: like Node, an ordinary end of input.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        let got = stream.try_io(Interest::READABLE, || t.read_tls(&mut SocketIo(stream)))?;
        if got == 0 {
            return Ok(0);
        }
        if let Err(e) = t.process_new_packets() {
            let _ = try_write_tls(&mut *t, stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        try_write_tls(&mut *t, stream)?;
    }
}

/// Reads at most `max` bytes into `buf`. A short read means the socket is drained: Tokio is
/// told so (by reporting `WouldBlock` to `try_io` after keeping the bytes), which saves the
/// extra `recv` that would otherwise only return `EAGAIN`. Tokio's readiness tick makes this
/// safe: data arriving meanwhile sets readiness again.
fn read_drained(stream: &Stream, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let mut got = 0;
    let res = stream.try_io(Interest::READABLE, || {
        let spare = &mut buf.spare_capacity_mut()[..max];
        let n = SockRef::from(stream).recv(spare)?;
        // SAFETY: `recv` initialised the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        got = n;
        if n > 0 && n < max {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match res {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

impl Shared {
    fn stream_shutdown_write(&self) {
        // ENOTCONN here means the peer is already gone; the read side reports it.
        let _ = SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
    }
}

fn flush(sh: &Shared, sink: &dyn EventSink) -> Result<()> {
    let mut out = sh.out();
    if let Some(tls) = sh.tls() {
        let mut t = lock_tls(tls);
        loop {
            if try_write_tls(&mut *t, &sh.stream)? {
                return Ok(());
            }
            let can = out.flushable();
            if can == 0 {
                break;
            }
            let pos = out.pos;
            let n = io::Write::write(&mut t.writer(), &out.buf[pos..pos + can])?;
            out.advance(n);
            sh.bytes_written.fetch_add(n as u64, Relaxed);
            sh.activity.touch();
        }
    }
    while out.flushable() > 0 {
        let (pos, can) = (out.pos, out.flushable());
        match sh.stream.try_write(&out.buf[pos..pos + can]) {
            Ok(n) => {
                out.advance(n);
                sh.bytes_written.fetch_add(n as u64, Relaxed);
                sh.activity.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    if out.pos < out.buf.len() {
        // Bytes behind a reservation wait for their job.
        return Ok(());
    }
    out.buf.clear();
    out.pos = 0;
    if out.buf.capacity() > 4 * sh.high_water_mark.max(READ_CHUNK) {
        out.buf = Vec::new();
    }
    if std::mem::take(&mut out.want_drain) {
        drop(out);
        sink.event(sh.id, Event::Drain);
    }
    Ok(())
}

/// Everything we wrote is in the kernel. Closing a socket that still holds unread input, or
/// that receives input after the close, makes the kernel send RST, which can destroy our last
/// bytes before the peer reads them. So, like Node's `end()`: send FIN, then read and discard
/// until the peer's FIN (bounded by [`LINGER`], cut short by an abort), then close.
async fn linger_close(sh: &Shared, read_open: bool, write_shut: bool) -> Result<()> {
    if !read_open {
        // The peer already finished sending: nothing more can arrive.
        return Ok(());
    }
    if !write_shut {
        sh.stream_shutdown_write();
    }
    // On the heap, and only now: in the future's state it would cost every connection 4 KiB.
    let mut scratch = vec![0u8; 4096];
    let drain = async {
        loop {
            match sh.stream.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            if sh.stream.readable().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(LINGER, drain) => {}
        () = sh.abort.cancelled() => {}
    }
    Ok(())
}

#[cfg(test)]
mod outbox_tests {
    //! The output queue's bookkeeping: what may be flushed, and the order of jobs (files,
    //! pipes, TLS upgrades) against the writes around them. The socket side is covered by
    //! `tests/driver_jobs.rs`.
    use super::{Closing, Outbox, Start};

    #[test]
    fn writes_flush_in_order_and_idle_means_nothing_left() {
        let mut out = Outbox::new();
        assert!(out.idle());
        out.append(b"hello ");
        out.append(b"world");
        assert_eq!((out.pending(), out.flushable(), out.queued), (11, 11, 11));
        assert!(!out.idle());
        out.advance(6);
        assert_eq!((out.pending(), out.flushed), (5, 6));
        assert_eq!(&out.buf[out.pos..], b"world");
        out.advance(5);
        assert!(out.idle());
    }

    #[test]
    fn a_job_waits_for_the_bytes_queued_before_it_and_holds_back_those_after() {
        let mut out = Outbox::new();
        out.append(b"head");
        let job = out.reserve();
        out.append(b"tail"); // written after the job was booked: goes out after it
        assert_eq!(out.flushable(), 4, "only the bytes before the reservation");
        assert!(!out.idle(), "a waiting job keeps the connection busy");
        assert_eq!(out.try_start(job), Start::Flush);
        out.advance(4);
        assert_eq!(out.flushable(), 0, "the tail waits for the job");
        assert_eq!(out.try_start(job), Start::Started);
        assert!(out.job);
        assert_eq!(out.try_start(job), Start::WaitTurn, "started once only");
        out.finish(job);
        assert!(!out.job);
        assert_eq!(out.flushable(), 4, "the tail may go now");
        out.advance(4);
        assert!(out.idle());
    }

    #[test]
    fn jobs_run_in_call_order() {
        let mut out = Outbox::new();
        let first = out.reserve();
        out.append(b"between");
        let second = out.reserve();
        assert_ne!(first, second);
        assert_eq!(out.try_start(second), Start::WaitTurn);
        assert_eq!(out.try_start(first), Start::Started);
        out.finish(first);
        assert_eq!(
            out.try_start(second),
            Start::Flush,
            "the bytes between first"
        );
        assert_eq!(out.flushable(), 7);
        out.advance(7);
        assert_eq!(out.try_start(second), Start::Started);
        out.finish(second);
        assert!(out.idle());
    }

    #[test]
    fn a_job_that_never_started_gives_its_place_back() {
        let mut out = Outbox::new();
        let first = out.reserve();
        let second = out.reserve();
        out.finish(second); // e.g. its file failed before it began
        assert_eq!(out.try_start(first), Start::Started);
        assert!(
            out.job,
            "finishing another job does not release the running one"
        );
        out.finish(first);
        assert!(out.idle());
        assert_eq!(out.try_start(first), Start::Gone);
    }

    #[test]
    fn no_job_starts_on_a_closed_or_half_closed_output() {
        let mut out = Outbox::new();
        let job = out.reserve();
        out.write_shut = true;
        assert_eq!(out.try_start(job), Start::Ended);
        let mut out = Outbox::new();
        let job = out.reserve();
        out.closing = Closing::Now;
        assert_eq!(out.try_start(job), Start::Ended);
        out.closing = Closing::End; // flush then FIN: jobs still run first
        assert_eq!(out.try_start(job), Start::Started);
    }
}
