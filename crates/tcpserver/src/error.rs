//! The core's error type. It knows nothing about JavaScript: bindings classify errors with
//! [`Error::kind`] and [`Error::os_error`], never by parsing messages.

use std::io;
use std::net::SocketAddr;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an invalid option value is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    /// The value has the wrong type (for example a fraction where an integer is expected).
    Type,
    /// The value is outside the allowed range.
    Range,
    /// The value is malformed or contradicts another option.
    Value,
}

/// Everything that can go wrong in the core.
///
/// Match on [`Error::kind`] (stable, coarse) and read the details with [`Error::option`],
/// [`Error::os_error`], [`Error::address`] and [`Error::syscall`]; the message is for people.
///
/// ```
/// use tcpserver_core::{ErrorKind, InvalidKind, ServerConfig};
///
/// let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
/// config.backlog(0);
/// let err = config.validate().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidArgument(InvalidKind::Range));
/// assert_eq!(err.option(), Some("backlog"));
///
/// // Names ending in a number are refused rather than read as legacy IPv4 forms.
/// let err = tcpserver_core::parse_address("127.1:80").unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::InvalidArgument(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option has an invalid value; `option` names it as users spell it (`backlog`, `loops`).
    #[error("invalid value for option `{option}`: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// Why the value was refused.
        reason: String,
        /// Type, range or value problem.
        invalid: InvalidKind,
    },
    /// A listen or connect address could not be parsed or resolved.
    #[error("invalid address `{input}`: {reason}")]
    InvalidAddress {
        /// The address as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A system call on a listening socket failed (`socket`, `bind`, `listen`, `setsockopt`).
    #[error("{syscall} {addr} failed: {source}")]
    Listen {
        /// The system call that failed.
        syscall: &'static str,
        /// The address being listened on.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A system call on a listening Unix domain socket failed (`socket`, `bind`, `listen`,
    /// `chmod`); `EADDRINUSE` also when the path is taken by a live socket or another file.
    #[error("{syscall} unix:{} failed: {source}", path.display())]
    ListenUnix {
        /// The system call that failed.
        syscall: &'static str,
        /// The socket's path.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A socket option could not be applied.
    #[error("setting {option} on {addr} failed: {source}")]
    SocketOption {
        /// The option's name (`fastOpen`, `deferAccept`, ...).
        option: &'static str,
        /// The socket's address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The option exists but this platform cannot provide it.
    #[error("option `{option}` is not supported on this platform")]
    Unsupported {
        /// The option's name.
        option: &'static str,
    },
    /// The server was already shut down.
    #[error("server is closed")]
    ServerClosed,
    /// The connection is closed (or unknown).
    #[error("connection is closed")]
    ConnectionClosed,
    /// A write after `end()`.
    #[error("write after end")]
    WriteAfterEnd,
    /// The connection was closed by a forced shutdown (deadline or halt).
    #[error("connection aborted by server shutdown")]
    Shutdown,
    /// Idle timeout: no bytes moved in either direction for the configured time.
    #[error("connection idle timeout")]
    IdleTimeout,
    /// Write timeout: queued output waited for the configured time without the peer taking
    /// a byte of it.
    #[error("write timed out: the peer took no data for the configured time")]
    WriteTimeout,
    /// A connection task panicked; the panic was caught and only this connection was closed.
    #[error("connection task panicked: {0}")]
    Panic(String),
    /// The connection is already piping or sending a file, or is not paused for a pipe.
    #[error("connection is busy with a pipe or a file")]
    Busy,
    /// The file ended before the requested range was sent.
    #[error("file ended after {sent} of {expected} bytes")]
    FileTruncated {
        /// Bytes sent.
        sent: u64,
        /// Bytes that were to be sent.
        expected: u64,
    },
    /// A file to send could not be opened or checked (`open`, `fstat`, `read`): `ENOENT`,
    /// `EACCES`, `EISDIR`, `ENAMETOOLONG`...
    #[error("{syscall} {}: {source}", path.display())]
    File {
        /// The system call that failed.
        syscall: &'static str,
        /// The file's path as given.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file to send is not a regular file whose size is known: a FIFO, socket, device, or a
    /// pseudo-file (`/proc`) that reports 0 bytes but has content. Only regular files are sent.
    #[error("{target} is {what}: only regular files of known size can be sent")]
    NotAFile {
        /// The path as given, or `descriptor N`.
        target: String,
        /// The file's path, when it was given by path.
        path: Option<std::path::PathBuf>,
        /// What it is instead (`a FIFO`, `a character device`...).
        what: &'static str,
    },
    /// A TLS setting is invalid (bad PEM, key not matching the certificate, bad SNI pattern).
    #[error("invalid TLS option `{option}`: {reason}")]
    Tls {
        /// The option at fault (`tls.cert`, `tls.key`, `tls.sni`...).
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// A TLS handshake failed or timed out.
    #[error("TLS handshake failed ({reason}): {message}")]
    TlsHandshake {
        /// A stable reason: `timeout`, `peer_closed`, `bad_record`, `peer_incompatible`,
        /// `no_application_protocol`, `no_client_certificate`, `bad_certificate`, ...
        reason: &'static str,
        /// What rustls said.
        message: String,
    },
    /// An outbound connection to `addr` failed (refused, unreachable, or past its deadline:
    /// `ETIMEDOUT`).
    #[error("connect {addr} failed: {source}")]
    Connect {
        /// The address tried last (after resolving).
        addr: crate::Address,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A host name could not be resolved.
    #[error("cannot resolve `{host}`: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// Any other I/O error on a connection.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A coarse classification of [`Error`], stable for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::InvalidOption`] and [`Error::InvalidAddress`].
    InvalidArgument(InvalidKind),
    /// An OS error; see [`Error::os_error`].
    Os,
    /// See [`Error::Unsupported`].
    Unsupported,
    /// See [`Error::ServerClosed`].
    ServerClosed,
    /// See [`Error::ConnectionClosed`].
    ConnectionClosed,
    /// See [`Error::WriteAfterEnd`].
    WriteAfterEnd,
    /// See [`Error::Shutdown`].
    Shutdown,
    /// See [`Error::IdleTimeout`].
    IdleTimeout,
    /// See [`Error::WriteTimeout`].
    WriteTimeout,
    /// See [`Error::Panic`].
    Panic,
    /// See [`Error::Busy`].
    Busy,
    /// See [`Error::FileTruncated`].
    FileTruncated,
    /// See [`Error::Resolve`].
    Resolve,
    /// See [`Error::TlsHandshake`].
    TlsHandshake,
    /// See [`Error::NotAFile`].
    NotAFile,
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidOption { invalid, .. } => ErrorKind::InvalidArgument(*invalid),
            Self::InvalidAddress { .. } => ErrorKind::InvalidArgument(InvalidKind::Value),
            Self::Listen { .. }
            | Self::ListenUnix { .. }
            | Self::SocketOption { .. }
            | Self::Connect { .. }
            | Self::File { .. }
            | Self::Io(_) => ErrorKind::Os,
            Self::NotAFile { .. } => ErrorKind::NotAFile,
            Self::Unsupported { .. } => ErrorKind::Unsupported,
            Self::ServerClosed => ErrorKind::ServerClosed,
            Self::ConnectionClosed => ErrorKind::ConnectionClosed,
            Self::WriteAfterEnd => ErrorKind::WriteAfterEnd,
            Self::Shutdown => ErrorKind::Shutdown,
            Self::IdleTimeout => ErrorKind::IdleTimeout,
            Self::WriteTimeout => ErrorKind::WriteTimeout,
            Self::Panic(_) => ErrorKind::Panic,
            Self::Busy => ErrorKind::Busy,
            Self::FileTruncated { .. } => ErrorKind::FileTruncated,
            Self::Resolve { .. } => ErrorKind::Resolve,
            Self::Tls { .. } => ErrorKind::InvalidArgument(InvalidKind::Value),
            Self::TlsHandshake { .. } => ErrorKind::TlsHandshake,
        }
    }

    /// The underlying OS error, if any.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            Self::Listen { source, .. }
            | Self::ListenUnix { source, .. }
            | Self::SocketOption { source, .. }
            | Self::Connect { source, .. }
            | Self::File { source, .. }
            | Self::Resolve { source, .. } => Some(source),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }

    /// The name of the option or address argument at fault, if this is an argument error.
    pub fn option(&self) -> Option<&'static str> {
        match self {
            Self::InvalidOption { option, .. }
            | Self::Tls { option, .. }
            | Self::SocketOption { option, .. }
            | Self::Unsupported { option } => Some(option),
            Self::InvalidAddress { .. } => Some("address"),
            _ => None,
        }
    }

    /// The socket address involved, if any.
    pub fn address(&self) -> Option<SocketAddr> {
        match self {
            Self::Listen { addr, .. } | Self::SocketOption { addr, .. } => Some(*addr),
            Self::Connect { addr, .. } => addr.as_ip(),
            _ => None,
        }
    }

    /// The Unix domain socket path involved, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::ListenUnix { path, .. } => Some(path),
            Self::Connect {
                addr: crate::Address::Unix(path),
                ..
            } => Some(path),
            _ => None,
        }
    }

    /// The path of the file involved ([`Error::File`], [`Error::NotAFile`]), if any.
    pub fn file_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::File { path, .. } => Some(path),
            Self::NotAFile { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// The system call that failed, if known.
    pub fn syscall(&self) -> Option<&'static str> {
        match self {
            Self::Listen { syscall, .. }
            | Self::ListenUnix { syscall, .. }
            | Self::File { syscall, .. } => Some(syscall),
            Self::SocketOption { .. } => Some("setsockopt"),
            Self::Connect { .. } => Some("connect"),
            _ => None,
        }
    }

    /// An [`Error::InvalidOption`] for a value out of range.
    pub fn range(option: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            option,
            reason: reason.into(),
            invalid: InvalidKind::Range,
        }
    }

    /// An [`Error::InvalidOption`] for a malformed or contradictory value.
    pub fn value(option: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            option,
            reason: reason.into(),
            invalid: InvalidKind::Value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_and_exposes_fields() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let e = Error::Listen {
            syscall: "bind",
            addr,
            source: io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        assert_eq!(e.kind(), ErrorKind::Os);
        assert_eq!(e.os_error().unwrap().raw_os_error(), Some(libc::EADDRINUSE));
        assert_eq!(e.address(), Some(addr));
        assert_eq!(e.syscall(), Some("bind"));
        let e = Error::range("backlog", "must be between 1 and 65535");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument(InvalidKind::Range));
        assert_eq!(e.option(), Some("backlog"));
        assert!(
            e.to_string()
                .starts_with("invalid value for option `backlog`")
        );
    }
}
