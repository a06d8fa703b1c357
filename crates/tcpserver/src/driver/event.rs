//! The driver's vocabulary: what a connection reports ([`Event`]), where it reports it
//! ([`EventSink`]), how it starts ([`TlsStart`], [`DriveOptions`]), and the timeouts it applies
//! itself ([`TimeoutKind`], [`Timeouts`]).

use std::io;
use std::ops::{Index, IndexMut};
use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use super::Connections;
use crate::addr::Address;
use crate::connection::ConnectionInfo;
use crate::error::Error;
use crate::tls::TlsAcceptor;

/// Largest single read.
pub const READ_CHUNK: usize = 64 * 1024;

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
    /// TLS connections only, right before [`Event::End`]: how the peer ended its TLS output.
    /// `close_notify: false` is a bare FIN after TLS data, which rustls and Node otherwise
    /// read as an ordinary end: the input may have been cut short (a truncation attack, a
    /// crashed peer). Protocols that frame by the connection's end need to know.
    TlsEnd {
        /// The peer sent a `close_notify` alert before its FIN.
        close_notify: bool,
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

/// A timeout that a driven connection applies itself, on either data path (the Tokio driver
/// and the consumer loop). Set one with [`DriveOptions::timeouts`] for new connections and
/// with [`Connections::set_timeout`] on a live one; every kind has the same range
/// ([`DriveOptions::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Close the connection ([`Error::IdleTimeout`]) after this long without a byte moving
    /// either way. A new value counts from the moment it is set, like Node's
    /// `socket.setTimeout()`.
    Idle,
    /// Close the connection ([`Error::WriteTimeout`]) when output waits this long without the
    /// peer taking a byte of it: a peer that does not read.
    Write,
}

impl TimeoutKind {
    /// Every kind, in the order of its index in [`Timeouts`].
    pub const ALL: [Self; 2] = [Self::Idle, Self::Write];

    /// The kind at `index` in [`TimeoutKind::ALL`] (how the Node binding passes a kind).
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// The option that sets it, as errors name it (`idleTimeout`, `writeTimeout`).
    pub const fn option(self) -> &'static str {
        match self {
            Self::Idle => "idleTimeout",
            Self::Write => "writeTimeout",
        }
    }
}

/// One value per [`TimeoutKind`], indexed by the kind: a connection's timeouts (and, inside the
/// driver, their state) are one array, so every kind shares one setter and one code path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts<T>(pub [T; TimeoutKind::ALL.len()]);

impl<T> Index<TimeoutKind> for Timeouts<T> {
    type Output = T;

    fn index(&self, kind: TimeoutKind) -> &T {
        &self.0[kind as usize]
    }
}

impl<T> IndexMut<TimeoutKind> for Timeouts<T> {
    fn index_mut(&mut self, kind: TimeoutKind) -> &mut T {
        &mut self.0[kind as usize]
    }
}

/// Per-connection settings of a driven connection. Their ranges are checked by
/// [`DriveOptions::validate`] (front ends call it once; [`Connections::drive`] does not).
#[derive(Debug, Clone, Copy)]
pub struct DriveOptions {
    /// Bound on unconsumed input and on queued output, in bytes.
    pub high_water_mark: usize,
    /// The timeouts by kind (`None`: off), e.g. `opts.timeouts[TimeoutKind::Idle]`.
    pub timeouts: Timeouts<Option<Duration>>,
}

impl DriveOptions {
    /// These options with timeout `kind` set to `timeout` (`None`: off).
    pub fn with_timeout(mut self, kind: TimeoutKind, timeout: Option<Duration>) -> Self {
        self.timeouts[kind] = timeout;
        self
    }
}

impl Default for DriveOptions {
    fn default() -> Self {
        Self {
            high_water_mark: 64 * 1024,
            timeouts: Timeouts::default(),
        }
    }
}
