//! One driven connection's shared state ([`Shared`]): its socket, reading mode, output queue,
//! timers' settings and counters, and the small door through which jobs (pipe, file, StartTLS)
//! take its output in turn.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use socket2::SockRef;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[cfg(doc)]
use super::Connections;
use super::counters::millis;
use super::event::{DriveOptions, Event, EventSink, READ_CHUNK, TimeoutKind, Timeouts};
use super::outbox::{Closing, Outbox, Start};
use crate::connection::ConnectionInfo;
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::tls::TlsInfo;
use crate::tls_io::{lock_tls, try_write_tls};

/// Reading states of a driven connection (`Shared::mode`).
pub(crate) const READING: u8 = 0;
/// A pipe asked the driver to stop reading; it reports `Paused` next.
pub(crate) const PAUSING: u8 = 1;
/// The driver stopped reading; a pipe task may own the input.
pub(crate) const PAUSED: u8 = 2;
/// The input was consumed to its end by a pipe: nothing more to read.
pub(crate) const INPUT_DONE: u8 = 3;
/// The consumer reads on its own thread ([`Connections::read_now`]); the driver does not read
/// until the consumer finds the socket empty and hands reading back.
pub(crate) const CONSUMER_READING: u8 = 4;

/// When bytes last moved on a connection, for its idle timeout: microseconds since the
/// connection began. Every read and write stores it (a clock read and one atomic, nothing
/// on the timer wheel); the driver's idle deadline reads it only when it comes.
#[derive(Debug)]
pub(crate) struct Activity {
    since: tokio::time::Instant,
    micros: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
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
    pub(crate) info: ConnectionInfo,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) abort: CancellationToken,
    pub(crate) mode: AtomicU8,
    /// The TLS session, for connections that negotiated one.
    /// Set once: at accept, at connect, or by a StartTLS upgrade.
    /// Boxed: a rustls session is over a kilobyte, and plain connections should not carry
    /// its space.
    pub(crate) tls: OnceLock<Box<Mutex<rustls::Connection>>>,
    pub(crate) tls_info: OnceLock<TlsInfo>,
    /// Set (and `gone_notify` woken) when the driver ended: pipe and file tasks stop then.
    pub(crate) gone: AtomicBool,
    pub(crate) gone_notify: Notify,
    /// Woken when a job ends: the next reservation may start.
    pub(crate) job_turn: Notify,
    pub(crate) out: Mutex<Outbox>,
    pub(crate) wake: Notify,
    pub(crate) credit: AtomicI64,
    /// Held across a read and its report (the driver's and `read_now`'s): bytes reach the
    /// consumer in socket order.
    pub(crate) read_lock: Mutex<()>,
    pub(crate) high_water_mark: usize,
    /// The timeouts by kind, in ms (0: off); the consumer changes them, the driver reads them.
    pub(crate) timeout_ms: Timeouts<AtomicU64>,
    /// A job (a file) timed out writing: the driver ends with [`Error::WriteTimeout`].
    pub(crate) write_timed_out: AtomicBool,
    pub(crate) activity: Activity,
    pub(crate) bytes_read: AtomicU64,
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
    /// A new connection's state (registered by [`Connections::drive`](super::Connections::drive)).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u32,
        stream: Stream,
        info: ConnectionInfo,
        sink: Arc<dyn EventSink>,
        abort: CancellationToken,
        tls: Option<Box<Mutex<rustls::Connection>>>,
        tls_info: Option<TlsInfo>,
        opts: DriveOptions,
    ) -> Self {
        Self {
            id,
            stream,
            info,
            sink,
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
            timeout_ms: Timeouts(opts.timeouts.0.map(|t| AtomicU64::new(millis(t)))),
            write_timed_out: AtomicBool::new(false),
            activity: Activity::new(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        }
    }

    pub(crate) fn out(&self) -> MutexGuard<'_, Outbox> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Timeout `kind`, if set.
    pub(crate) fn timeout(&self, kind: TimeoutKind) -> Option<Duration> {
        let ms = self.timeout_ms[kind].load(Relaxed);
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// The TLS session, if this connection has one.
    pub(crate) fn tls(&self) -> Option<&Mutex<rustls::Connection>> {
        self.tls.get().map(|t| &**t)
    }

    /// TLS records waiting for the socket.
    pub(crate) fn tls_pending(&self) -> bool {
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

impl Shared {
    pub(crate) fn stream_shutdown_write(&self) {
        // ENOTCONN here means the peer is already gone; the read side reports it.
        let _ = SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
    }
}

pub(crate) fn flush(sh: &Shared, sink: &dyn EventSink) -> Result<()> {
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
