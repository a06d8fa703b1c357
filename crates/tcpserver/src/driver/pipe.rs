//! Forwarding between two driven connections, entirely in Rust: `splice(2)` through a pooled
//! pipe pair on Linux (bytes never enter user space), a copy loop elsewhere. Half-close is
//! propagated (FIN one way keeps the other open); an error on either side closes both.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use socket2::SockRef;
#[cfg(target_os = "linux")]
use tokio::io::Interest;

#[cfg(doc)]
use super::Connections;
use super::conn::{Activity, Shared};
use super::counters::DataCounters;
use super::event::{Event, READ_CHUNK};
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::sys;
use crate::tls_io::{flush_tls, lock_tls, read_plain, write_all, write_plain};

/// Options of [`Connections::pipe`].
#[derive(Debug, Default, Clone)]
pub struct PipeOptions {
    /// Bytes to send to the *other* connection before forwarding (e.g. a header already read).
    pub head_to_other: Vec<u8>,
    /// Bytes to send to *this* connection before forwarding.
    pub head_to_this: Vec<u8>,
    /// End the pipe (closing both sides) after this long without a byte moving.
    pub idle_timeout: Option<Duration>,
}

/// Whether forwarding uses `splice` (Linux), unless `TCPSERVER_ZERO_COPY=0` forces the copy loop.
fn use_splice() -> bool {
    sys::ZERO_COPY && std::env::var("TCPSERVER_ZERO_COPY").as_deref() != Ok("0")
}

pub(crate) async fn run_pipe(
    counters: Arc<DataCounters>,
    a: Arc<Shared>,
    b: Arc<Shared>,
    opts: PipeOptions,
    tickets: (u64, u64),
) {
    let moved = [AtomicU64::new(0), AtomicU64::new(0)];
    let result = pipe(&counters, &a, &b, opts, &moved, tickets).await;
    let (ab, ba) = (moved[0].load(Relaxed), moved[1].load(Relaxed));
    counters.bytes_piped.fetch_add(ab + ba, Relaxed);
    // Reported before the connections close, so the consumer sees the result first.
    a.sink.event(
        a.id,
        Event::PipeDone {
            bytes_in: ab,
            bytes_out: ba,
            error: result.as_ref().err(),
        },
    );
    a.end_job(tickets.0);
    b.end_job(tickets.1);
    match &result {
        Ok(()) => {
            a.input_done();
            b.input_done();
        }
        Err(_) => {
            a.close_now();
            b.close_now();
        }
    }
}

async fn pipe(
    counters: &DataCounters,
    a: &Shared,
    b: &Shared,
    opts: PipeOptions,
    moved: &[AtomicU64; 2],
    tickets: (u64, u64),
) -> Result<()> {
    let work = async {
        a.begin_job(tickets.0).await?;
        b.begin_job(tickets.1).await?;
        write_plain(&b.stream, b.tls(), &opts.head_to_other).await?;
        moved[0].fetch_add(opts.head_to_other.len() as u64, Relaxed);
        write_plain(&a.stream, a.tls(), &opts.head_to_this).await?;
        moved[1].fetch_add(opts.head_to_this.len() as u64, Relaxed);
        if use_splice() && a.tls().is_none() && b.tls().is_none() {
            counters.pipes_spliced.fetch_add(1, Relaxed);
            both_ways(a, b, moved, true).await
        } else {
            counters.pipes_copied.fetch_add(1, Relaxed);
            both_ways(a, b, moved, false).await
        }
    };
    // Like the driver's idle timeout: a deadline re-armed from the ends' last activity, so
    // the pipe ends at last byte + timeout (a check once per period ended it up to a whole
    // period late).
    let idle = async {
        let Some(period) = opts.idle_timeout else {
            return std::future::pending().await;
        };
        let started = tokio::time::Instant::now();
        let mut deadline = started + period;
        loop {
            tokio::time::sleep_until(deadline).await;
            let last = a.activity.last().max(b.activity.last()).max(started);
            deadline = last + period;
            if deadline <= tokio::time::Instant::now() {
                return Error::IdleTimeout;
            }
        }
    };
    tokio::select! {
        r = work => r,
        e = idle => Err(e),
        () = a.abort.cancelled() => Err(Error::Shutdown),
        () = b.abort.cancelled() => Err(Error::Shutdown),
        () = a.gone() => Err(Error::ConnectionClosed),
        () = b.gone() => Err(Error::ConnectionClosed),
    }
}

async fn both_ways(a: &Shared, b: &Shared, moved: &[AtomicU64; 2], splice: bool) -> Result<()> {
    let ab = one_way(a, b, &moved[0], splice);
    let ba = one_way(b, a, &moved[1], splice);
    tokio::pin!(ab, ba);
    let (mut ab_done, mut ba_done) = (false, false);
    while !(ab_done && ba_done) {
        tokio::select! {
            r = &mut ab, if !ab_done => { r?; ab_done = true; }
            r = &mut ba, if !ba_done => { r?; ba_done = true; }
        }
    }
    Ok(())
}

/// Forwards `src` → `dst` until `src` sends FIN, then half-closes `dst`.
async fn one_way(src: &Shared, dst: &Shared, moved: &AtomicU64, splice: bool) -> Result<()> {
    if src.tls().is_some() || dst.tls().is_some() {
        // TLS bytes must be decrypted and encrypted: the copy path, through rustls.
        copy_plain(src, dst, moved).await?;
        return finish(dst).await;
    }
    #[cfg(target_os = "linux")]
    if splice {
        let pipe = sys::take_pipe()?;
        let r = splice_one_way(
            &src.stream,
            &dst.stream,
            &pipe,
            moved,
            [&src.activity, &dst.activity],
        )
        .await;
        if let Ok(true) = r {
            sys::give_back_pipe(pipe);
        }
        r?;
        return finish(dst).await;
    }
    let _ = splice;
    copy_one_way(
        &src.stream,
        &dst.stream,
        moved,
        [&src.activity, &dst.activity],
    )
    .await?;
    finish(dst).await
}

/// Half-closes `dst` (after a TLS `close_notify`), passing on the FIN that ended the input.
async fn finish(dst: &Shared) -> Result<()> {
    dst.mark_write_shut();
    if let Some(tls) = dst.tls() {
        lock_tls(tls).send_close_notify();
        flush_tls(&dst.stream, dst.tls()).await?;
    }
    // ENOTCONN: the peer is gone; the other direction reports what matters.
    let _ = SockRef::from(&dst.stream).shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Copies plaintext `src` → `dst`, either side possibly TLS.
async fn copy_plain(src: &Shared, dst: &Shared, moved: &AtomicU64) -> io::Result<()> {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    loop {
        buf.clear();
        if read_plain(&src.stream, src.tls(), &mut buf, READ_CHUNK).await? == 0 {
            return Ok(());
        }
        write_plain(&dst.stream, dst.tls(), &buf).await?;
        moved.fetch_add(buf.len() as u64, Relaxed);
        // Both ends moved bytes: neither is idle for its own idle timeout.
        src.activity.touch();
        dst.activity.touch();
    }
}

/// Returns whether the pipe pair ended empty (reusable).
#[cfg(target_os = "linux")]
async fn splice_one_way(
    src: &Stream,
    dst: &Stream,
    pipe: &sys::PipePair,
    moved: &AtomicU64,
    activity: [&Activity; 2],
) -> io::Result<bool> {
    let mut in_pipe = 0usize;
    loop {
        if in_pipe == 0 {
            src.readable().await?;
            // EAGAIN here can only mean the socket is drained (the pipe is empty).
            match src.try_io(Interest::READABLE, || {
                sys::splice(src, &pipe.write, sys::pipe_capacity())
            }) {
                Ok(0) => return Ok(true),
                Ok(n) => in_pipe = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        dst.writable().await?;
        match dst.try_io(Interest::WRITABLE, || sys::splice(&pipe.read, dst, in_pipe)) {
            Ok(n) => {
                in_pipe -= n;
                moved.fetch_add(n as u64, Relaxed);
                activity.iter().for_each(|a| a.touch());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn copy_one_way(
    src: &Stream,
    dst: &Stream,
    moved: &AtomicU64,
    activity: [&Activity; 2],
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        src.readable().await?;
        let n = match src.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        write_all(dst, &buf[..n], moved).await?;
        activity.iter().for_each(|a| a.touch());
    }
}
