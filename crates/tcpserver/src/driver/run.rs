//! The task that drives one connection: credit-based reads into the sink, flushing the output,
//! the idle and write timeouts, the TLS handshake or upgrade, and the lingering close.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;

use super::Connections;
use super::conn::{INPUT_DONE, PAUSED, PAUSING, READING, Shared, flush};
use super::event::{DriveOptions, Event, EventSink, READ_CHUNK, TimeoutKind, TlsStart};
use super::outbox::Closing;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::panic::{CatchUnwind, panic_message};
use crate::stream::Stream;
use crate::tls::TlsAcceptor;
use crate::tls_io::{lock_tls, tls_read};

/// How long a closing connection drains unread input before it is closed anyway.
const LINGER: Duration = Duration::from_secs(2);

impl Connections {
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
        self.drive_dyn(conn, sink, opts, tag, tls).await;
    }

    /// [`Connections::drive`] with a sink behind a trait object.
    pub(crate) async fn drive_dyn(
        self: Arc<Self>,
        conn: Connection,
        sink: Arc<dyn EventSink>,
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
        let shared = Arc::new(Shared::new(
            id,
            stream,
            info,
            sink.clone(),
            abort,
            tls,
            tls_info,
            opts,
        ));
        self.lock().insert(id, shared.clone());
        sink.event(id, Event::Open { tag });
        self.serve_registered(&shared, &*sink).await;
    }

    /// Runs a registered connection until it closes, then unregisters it and reports
    /// [`Event::Closed`] (also on panic or when dropped). Also the second half of a hand-over
    /// from the consumer's own loop (`local/handover.rs`), which registered the connection
    /// with the state it had there.
    pub(crate) async fn serve_registered(&self, shared: &Shared, sink: &dyn EventSink) {
        let mut guard = Unregister {
            conns: self,
            shared,
            sink,
            reported: false,
        };
        let result = match CatchUnwind(Box::pin(run(shared, sink))).await {
            Ok(r) => r,
            Err(panic) => Err(Error::Panic(panic_message(&*panic))),
        };
        guard.finish(result.as_ref().err());
    }
}

/// Removes the connection from the registry and reports `Closed` exactly once, also when the
/// driving future is dropped by a forced shutdown.
struct Unregister<'a> {
    conns: &'a Connections,
    shared: &'a Shared,
    sink: &'a dyn EventSink,
    reported: bool,
}

impl Unregister<'_> {
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

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.finish(Some(&Error::Shutdown));
        }
    }
}

pub(super) async fn run(sh: &Shared, sink: &dyn EventSink) -> Result<()> {
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
    // Set when the write deadline came with nothing flushed (`stream::write_probe`).
    let mut write_probe: Option<u64> = None;
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
        let idle_ms = sh.timeout_ms[TimeoutKind::Idle].load(Relaxed);
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
        let write_ms = sh.timeout_ms[TimeoutKind::Write].load(Relaxed);
        if write_ms > 0 && pending > 0 {
            if write_stall != Some(flushed) {
                write_stall = Some(flushed);
                write_probe = None;
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
            () = &mut write_deadline, if write_stall.is_some() => {
                let unacked = sh.stream.unacknowledged();
                match crate::stream::write_probe(&mut write_probe, unacked, write_ms) {
                    Some(wait) => write_deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + wait),
                    None => return Err(Error::WriteTimeout),
                }
            }
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
pub(super) async fn accept_tls(
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

pub(super) async fn upgrade(
    sh: &Shared,
    head: &[u8],
    acceptor: &TlsAcceptor,
    ticket: u64,
) -> Result<()> {
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
pub(super) fn read_once(sh: &Shared, sink: &dyn EventSink, read_open: &mut bool) -> Result<bool> {
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
            if let Some(tls) = sh.tls() {
                let close_notify = crate::tls_io::peer_sent_close_notify(&mut lock_tls(tls));
                sink.event(sh.id, Event::TlsEnd { close_notify });
            }
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

/// Reads at most `max` bytes into `buf`. A short read means the socket is drained: Tokio is
/// told so (by reporting `WouldBlock` to `try_io` after keeping the bytes), which saves the
/// extra `recv` that would otherwise only return `EAGAIN`. Tokio's readiness tick makes this
/// safe: data arriving meanwhile sets readiness again.
pub(super) fn read_drained(stream: &Stream, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
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

/// Everything we wrote is in the kernel. Closing a socket that still holds unread input, or
/// that receives input after the close, makes the kernel send RST, which can destroy our last
/// bytes before the peer reads them. So when input is waiting, like Node's `end()`: send FIN,
/// then read and discard until the peer's FIN (bounded by [`LINGER`], cut short by an abort),
/// then close. When nothing unread waits, it closes at once, as nginx does by default
/// (`lingering_close on`): input that comes only after the close still meets an RST, a risk
/// nginx, Go's `Close` and Bun take too, and lingering every connection cost each one a
/// second wake-up and a read of the peer's FIN.
pub(super) async fn linger_close(sh: &Shared, read_open: bool, write_shut: bool) -> Result<()> {
    if !read_open || sh.stream.nothing_unread() {
        // The peer already finished sending (nothing more can arrive), or nothing is unread.
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
