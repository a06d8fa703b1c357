//! The file job: sending a file (or a range of it) on a driven connection, `sendfile(2)` on
//! Linux (the bytes go from the page cache to the socket without entering user space), a
//! read/write loop elsewhere. Never reads outside the requested range; ends with an error if
//! the file shrinks.

use std::fs::File;
#[cfg(target_os = "linux")]
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::Interest;

use super::conn::Shared;
use super::counters::DataCounters;
use super::event::{Event, TimeoutKind};
use crate::error::{Error, Result};
use crate::file::read_at;
#[cfg(target_os = "linux")]
use crate::sys;

/// The validated byte range `[offset, offset + length)` of `file`.
pub(crate) fn range(file: &File, offset: u64, length: Option<u64>) -> Result<(u64, u64)> {
    let size = file.metadata()?.len();
    if offset > size {
        return Err(Error::range(
            "offset",
            format!("{offset} is past the end of the file ({size} bytes)"),
        ));
    }
    let length = length.unwrap_or(size - offset);
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(Error::range(
            "length",
            format!("{offset} + {length} is past the end of the file ({size} bytes)"),
        ));
    }
    Ok((offset, length))
}

pub(crate) async fn run_send(
    counters: Arc<DataCounters>,
    sh: Arc<Shared>,
    file: File,
    offset: u64,
    length: u64,
    ticket: u64,
) {
    let sent = AtomicU64::new(0);
    let result = tokio::select! {
        r = send(&counters, &sh, &file, offset, length, &sent, ticket) => r,
        () = sh.abort.cancelled() => Err(Error::Shutdown),
        () = sh.gone() => Err(Error::ConnectionClosed),
    };
    if result.is_ok() {
        counters.files_sent.fetch_add(1, Relaxed);
    }
    // Reported before the turn passes on, as a pipe's result is: the next job (another file,
    // on another worker thread) or the driver (a close) could otherwise report first, and the
    // consumer matches FILE_DONE events to its calls in order.
    sh.sink.event(
        sh.id,
        Event::FileDone {
            bytes: sent.load(Relaxed),
            error: result.as_ref().err(),
        },
    );
    if matches!(result, Err(Error::WriteTimeout)) {
        // Part of the file went out and the peer stopped taking more: the stream cannot
        // go on, so the connection ends (with this error, counted like any write timeout).
        sh.fail_write_timeout();
    }
    sh.end_job(ticket);
}

async fn send(
    counters: &DataCounters,
    sh: &Shared,
    file: &File,
    offset: u64,
    length: u64,
    sent: &AtomicU64,
    ticket: u64,
) -> Result<()> {
    sh.begin_job(ticket).await?;
    let Some(timeout) = sh.timeout(TimeoutKind::Write) else {
        return send_range(counters, sh, file, offset, length, sent).await;
    };
    tokio::select! {
        r = send_range(counters, sh, file, offset, length, sent) => r,
        () = stalled(sent, timeout) => Err(Error::WriteTimeout),
    }
}

/// Completes when `sent` did not move for a whole `period` (checked once per period, so a
/// stall is noticed after one to two periods; a progressing transfer costs one timer tick per
/// period, nothing per byte).
async fn stalled(sent: &AtomicU64, period: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut seen = sent.load(Relaxed);
    loop {
        tick.tick().await;
        let now = sent.load(Relaxed);
        if now == seen {
            return;
        }
        seen = now;
    }
}

async fn send_range(
    counters: &DataCounters,
    sh: &Shared,
    file: &File,
    offset: u64,
    length: u64,
    sent: &AtomicU64,
) -> Result<()> {
    #[cfg(target_os = "linux")]
    if sh.tls().is_none() && std::env::var("TCPSERVER_ZERO_COPY").as_deref() != Ok("0") {
        let stream = &sh.stream;
        let mut pos = offset as i64;
        let end = offset + length;
        while (pos as u64) < end {
            stream.writable().await?;
            let count = ((end - pos as u64) as usize).min(1 << 30);
            match stream.try_io(Interest::WRITABLE, || {
                sys::sendfile(stream, file, &mut pos, count)
            }) {
                Ok(0) => {
                    return Err(Error::FileTruncated {
                        sent: sent.load(Relaxed),
                        expected: length,
                    });
                }
                Ok(n) => {
                    sent.fetch_add(n as u64, Relaxed);
                    sh.bytes_written.fetch_add(n as u64, Relaxed);
                    sh.activity.touch();
                    counters.file_bytes_zero_copy.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        return Ok(());
    }
    let _ = Interest::WRITABLE;
    copy_range(counters, sh, file, offset, length, sent).await
}

/// The portable path: positioned reads into a buffer, written with readiness.
async fn copy_range(
    counters: &DataCounters,
    sh: &Shared,
    file: &File,
    offset: u64,
    length: u64,
    sent: &AtomicU64,
) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = offset;
    let end = offset + length;
    while pos < end {
        let want = ((end - pos) as usize).min(buf.len());
        let n = read_at(file, &mut buf[..want], pos)?;
        if n == 0 {
            return Err(Error::FileTruncated {
                sent: sent.load(Relaxed),
                expected: length,
            });
        }
        // Through rustls for TLS connections: no kTLS here, so this is the copy path.
        crate::tls_io::write_plain(&sh.stream, sh.tls(), &buf[..n]).await?;
        sent.fetch_add(n as u64, Relaxed);
        sh.bytes_written.fetch_add(n as u64, Relaxed);
        sh.activity.touch();
        counters.file_bytes_copied.fetch_add(n as u64, Relaxed);
        pos += n as u64;
    }
    Ok(())
}
