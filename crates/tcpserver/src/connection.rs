//! An accepted connection: the stream plus what is known about it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::lease::Lease;
use crate::stream::Stream;

pub(crate) mod info;
pub use info::ConnectionInfo;

/// One client connection, handed to the handler. It is closed when the handler's future
/// completes (the future owns it) or when a forced shutdown aborts the handler.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    info: ConnectionInfo,
    shutdown: CancellationToken,
    draining: CancellationToken,
    /// Its place in its server (accepted connections), for a driver that ends it early.
    lease: Option<Arc<Lease>>,
}

impl Connection {
    pub(crate) fn new(
        stream: Stream,
        info: ConnectionInfo,
        shutdown: CancellationToken,
        draining: CancellationToken,
    ) -> Self {
        Self {
            stream,
            info,
            shutdown,
            draining,
            lease: None,
        }
    }

    pub(crate) fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Its place in its server, given back when the consumer loop closes it.
    pub(crate) fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
    }

    /// Completes when the server stopped accepting (a graceful shutdown began). Work that has
    /// not started serving the client yet, like a TLS handshake, can give up then.
    pub fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// What is known about the connection.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    #[cfg(unix)] // Only connect_unix() sets a field after construction.
    pub(crate) fn info_mut(&mut self) -> &mut ConnectionInfo {
        &mut self.info
    }

    /// The underlying stream: TCP or Unix domain socket.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The underlying stream, mutably.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Completes when a forced shutdown (deadline passed, or halt) aborts connections.
    /// Handlers that hold long-lived connections can watch it to finish cleanly first.
    pub fn abort_signal(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Splits the connection into its parts.
    pub fn into_parts(self) -> (Stream, ConnectionInfo, CancellationToken) {
        (self.stream, self.info, self.shutdown)
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
