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
//! handler's [`Connection`](crate::Connection) directly.
//!
//! The flow: a [`Server`](crate::Server) handler (or [`connect`](crate::connect)) hands its
//! [`Connection`](crate::Connection) to [`Connections::drive`], whose future is the connection's life. The
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
//! use tcpserver_core::driver::{Connections, DriveOptions, Event, EventSink, TlsStart};
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
//! let config = tcpserver_core::ServerConfig::new("127.0.0.1:0".parse()?);
//! let server = tcpserver_core::Server::bind(&config, move |conn| {
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

mod conn;
mod counters;
mod event;
mod file;
mod id_map;
#[cfg(target_os = "linux")]
mod local;
mod outbox;
mod pipe;
mod run;

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socket2::SockRef;

use crate::addr::Address;
use crate::config::KeepAlive;
use crate::connection::ConnectionInfo;
use crate::error::{Error, Result};
use crate::tls::{TlsAcceptor, TlsInfo};

pub(crate) use crate::tls_io::lock_tls;
use crate::tls_io::try_write_tls;
pub(crate) use conn::Shared;
use conn::{CONSUMER_READING, PAUSED, PAUSING, READING};
pub(crate) use counters::DataCounters;
use counters::millis;
pub use counters::{DataStats, TimeoutStats};
pub use event::{DriveOptions, Event, EventSink, READ_CHUNK, TimeoutKind, Timeouts, TlsStart};
pub(crate) use id_map::IdMap;
#[cfg(target_os = "linux")]
pub(crate) use local::{Admit, Admitted};
#[cfg(target_os = "linux")]
pub use local::{LocalLoop, Released};
use outbox::Closing;
pub use pipe::PipeOptions;
use run::upgrade;

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
    map: Mutex<IdMap<Arc<Shared>>>,
    pub(crate) counters: Arc<DataCounters>,
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, IdMap<Arc<Shared>>> {
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
        opts: PipeOptions,
    ) -> Result<impl Future<Output = ()> + Send + 'static> {
        crate::config::check_timeout("idleTimeout", opts.idle_timeout)?;
        let a = self.get(id)?;
        let b = other.get(other_id)?;
        if Arc::ptr_eq(&a, &b) || a.mode.load(Relaxed) != PAUSED || b.mode.load(Relaxed) != PAUSED {
            return Err(Error::Busy);
        }
        let tickets = (a.reserve(), b.reserve());
        Ok(pipe::run_pipe(self.counters.clone(), a, b, opts, tickets))
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
        let (offset, length) = file::range(&file, offset, length)?;
        let ticket = sh.reserve();
        Ok(file::run_send(
            self.counters.clone(),
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
        out.close_at_least(how);
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

    /// Turns TCP keep-alive on (with probe settings, see [`KeepAlive::validate`]) or off.
    pub fn set_keep_alive(&self, id: u32, keep_alive: Option<&KeepAlive>) -> Result<()> {
        keep_alive.map_or(Ok(()), KeepAlive::validate)?;
        let sh = self.get(id)?;
        match keep_alive {
            Some(k) => crate::socket::set_keep_alive(&sh.stream, k)?,
            None => SockRef::from(&sh.stream).set_keepalive(false)?,
        }
        Ok(())
    }

    /// Changes timeout `kind` of connection `id` (`None` turns it off; see [`TimeoutKind`]).
    /// A value out of range ([`check_timeout`](crate::check_timeout)) is refused, named by
    /// [`TimeoutKind::option`].
    pub fn set_timeout(&self, id: u32, kind: TimeoutKind, timeout: Option<Duration>) -> Result<()> {
        crate::config::check_timeout(kind.option(), timeout)?;
        let sh = self.get(id)?;
        sh.timeout_ms[kind].store(millis(timeout), Relaxed);
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
