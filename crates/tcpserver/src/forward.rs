//! Forwarding between two driven connections, entirely in Rust: `splice(2)` through a pooled
//! pipe pair on Linux (bytes never enter user space), a copy loop elsewhere. Half-close is
//! propagated (FIN one way keeps the other open); an error on either side closes both.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::stream::Stream;
use socket2::SockRef;
#[cfg(target_os = "linux")]
use tokio::io::Interest;

use crate::driver::{Connections, Event, Shared, lock_tls, tls_read};
use crate::error::{Error, Result};
use crate::sys;
use crate::tls::try_write_tls;

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
    conns: Arc<Connections>,
    a: Arc<Shared>,
    b: Arc<Shared>,
    opts: PipeOptions,
    tickets: (u64, u64),
) {
    let moved = [AtomicU64::new(0), AtomicU64::new(0)];
    let result = pipe(&conns, &a, &b, opts, &moved, tickets).await;
    let (ab, ba) = (moved[0].load(Relaxed), moved[1].load(Relaxed));
    conns.counters.bytes_piped.fetch_add(ab + ba, Relaxed);
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
    conns: &Connections,
    a: &Shared,
    b: &Shared,
    opts: PipeOptions,
    moved: &[AtomicU64; 2],
    tickets: (u64, u64),
) -> Result<()> {
    let work = async {
        a.begin_job(tickets.0).await?;
        b.begin_job(tickets.1).await?;
        write_plain(b, &opts.head_to_other).await?;
        moved[0].fetch_add(opts.head_to_other.len() as u64, Relaxed);
        write_plain(a, &opts.head_to_this).await?;
        moved[1].fetch_add(opts.head_to_this.len() as u64, Relaxed);
        if use_splice() && a.tls().is_none() && b.tls().is_none() {
            conns.counters.pipes_spliced.fetch_add(1, Relaxed);
            both_ways(a, b, moved, true).await
        } else {
            conns.counters.pipes_copied.fetch_add(1, Relaxed);
            both_ways(a, b, moved, false).await
        }
    };
    let idle = async {
        let Some(period) = opts.idle_timeout else {
            return std::future::pending().await;
        };
        let mut seen = u64::MAX;
        loop {
            tokio::time::sleep(period).await;
            let now = moved[0].load(Relaxed) + moved[1].load(Relaxed);
            if now == seen {
                return Error::IdleTimeout;
            }
            seen = now;
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
        flush_tls(dst).await?;
    }
    // ENOTCONN: the peer is gone; the other direction reports what matters.
    let _ = SockRef::from(&dst.stream).shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Copies plaintext `src` → `dst`, either side possibly TLS.
async fn copy_plain(src: &Shared, dst: &Shared, moved: &AtomicU64) -> io::Result<()> {
    let mut buf = Vec::with_capacity(crate::driver::READ_CHUNK);
    loop {
        buf.clear();
        if read_plain(src, &mut buf, crate::driver::READ_CHUNK).await? == 0 {
            return Ok(());
        }
        write_plain(dst, &buf).await?;
        moved.fetch_add(buf.len() as u64, Relaxed);
        // Both ends moved bytes: neither is idle for its own idle timeout.
        src.activity.fetch_add(1, Relaxed);
        dst.activity.fetch_add(1, Relaxed);
    }
}

/// Appends up to `max` plaintext bytes of `sh` to `buf`, waiting for the socket; 0 at the end.
pub(crate) async fn read_plain(sh: &Shared, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    loop {
        let r = match sh.tls() {
            Some(tls) => tls_read(&sh.stream, tls, buf, max),
            None => {
                let start = buf.len();
                buf.resize(start + max, 0);
                let r = sh.stream.try_read(&mut buf[start..]);
                buf.truncate(start + *r.as_ref().unwrap_or(&0));
                r
            }
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sh.stream.readable().await?,
            other => return other,
        }
    }
}

/// Writes all of `data` as plaintext of `sh` (encrypted for TLS), waiting for the socket.
pub(crate) async fn write_plain(sh: &Shared, data: &[u8]) -> io::Result<()> {
    let Some(tls) = sh.tls() else {
        return write_all(&sh.stream, data, &AtomicU64::new(0)).await;
    };
    let mut off = 0;
    loop {
        // The lock is never held across an await.
        let blocked = {
            let mut t = lock_tls(tls);
            loop {
                if try_write_tls(&mut *t, &sh.stream)? {
                    break true;
                }
                if off == data.len() {
                    break false;
                }
                let n = io::Write::write(&mut t.writer(), &data[off..])?;
                off += n;
                if n == 0 {
                    break true;
                }
            }
        };
        if !blocked {
            return Ok(());
        }
        sh.stream.writable().await?;
    }
}

/// Sends every pending TLS record of `sh`.
async fn flush_tls(sh: &Shared) -> io::Result<()> {
    let Some(tls) = sh.tls() else { return Ok(()) };
    while try_write_tls(&mut *lock_tls(tls), &sh.stream)? {
        sh.stream.writable().await?;
    }
    Ok(())
}

/// Returns whether the pipe pair ended empty (reusable).
#[cfg(target_os = "linux")]
async fn splice_one_way(
    src: &Stream,
    dst: &Stream,
    pipe: &sys::PipePair,
    moved: &AtomicU64,
    activity: [&AtomicU64; 2],
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
                activity.iter().for_each(|a| _ = a.fetch_add(1, Relaxed));
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
    activity: [&AtomicU64; 2],
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
        activity.iter().for_each(|a| _ = a.fetch_add(1, Relaxed));
    }
}

/// Writes all of `data` with readiness, counting into `moved`.
pub(crate) async fn write_all(dst: &Stream, data: &[u8], moved: &AtomicU64) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        dst.writable().await?;
        match dst.try_write(&data[off..]) {
            Ok(n) => {
                off += n;
                moved.fetch_add(n as u64, Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
