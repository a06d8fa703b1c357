//! The only Rust file that knows JavaScript error codes. Core errors become a
//! `BindingError` value (for calls that return one) or a thrown error with `code` set.

use napi_derive::napi;
use tcpserver::{Error, ErrorKind, InvalidKind};

/// An error crossing to JavaScript as a value; `packages/tcpserver/src/errors.ts` turns it
/// into a thrown `Error`/`TypeError`/`RangeError` with these fields.
#[napi(object)]
pub struct BindingError {
    /// Node-style code: `EADDRINUSE`, `ERR_INVALID_ARG_VALUE`, `ERR_TCPSERVER_*`.
    pub code: String,
    /// Human-readable message (not a contract).
    pub message: String,
    /// Which built-in class to throw: `Error`, `TypeError` or `RangeError`.
    pub class: String,
    /// The failing system call, for OS errors.
    pub syscall: Option<String>,
    /// The OS error number (positive), for OS errors.
    pub errno: Option<i32>,
    /// The address involved.
    pub address: Option<String>,
    /// The port involved.
    pub port: Option<u32>,
    /// The option at fault, for argument errors.
    pub option: Option<String>,
}

/// A thrown error's `code` (napi sets `err.code` from it).
pub struct Code(pub(crate) String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

pub(crate) fn code(e: &Error) -> String {
    match e.kind() {
        ErrorKind::InvalidArgument(_) => "ERR_INVALID_ARG_VALUE".into(),
        ErrorKind::Os => e.os_error().map_or_else(|| "EIO".into(), io_code),
        ErrorKind::Unsupported => "ERR_TCPSERVER_UNSUPPORTED".into(),
        ErrorKind::ServerClosed => "ERR_TCPSERVER_CLOSED".into(),
        ErrorKind::ConnectionClosed => "ERR_SOCKET_CLOSED".into(),
        ErrorKind::WriteAfterEnd => "ERR_STREAM_WRITE_AFTER_END".into(),
        ErrorKind::Shutdown => "ERR_TCPSERVER_SHUTDOWN".into(),
        ErrorKind::IdleTimeout => "ERR_TCPSERVER_IDLE_TIMEOUT".into(),
        ErrorKind::WriteTimeout => "ERR_TCPSERVER_WRITE_TIMEOUT".into(),
        ErrorKind::Panic => "ERR_TCPSERVER_PANIC".into(),
        ErrorKind::Busy => "ERR_TCPSERVER_BUSY".into(),
        ErrorKind::FileTruncated => "ERR_TCPSERVER_FILE_TRUNCATED".into(),
        // Node's name for a host that does not resolve (dns.lookup → getaddrinfo).
        ErrorKind::Resolve => "ENOTFOUND".into(),
        ErrorKind::TlsHandshake => "ERR_TCPSERVER_TLS_HANDSHAKE".into(),
        _ => "ERR_TCPSERVER_INTERNAL".into(),
    }
}

pub(crate) fn to_binding(e: &Error) -> BindingError {
    let class = match e.kind() {
        ErrorKind::InvalidArgument(InvalidKind::Range) => "RangeError",
        ErrorKind::InvalidArgument(_) => "TypeError",
        _ => "Error",
    };
    BindingError {
        code: code(e),
        message: e.to_string(),
        class: class.into(),
        syscall: e.syscall().map(Into::into),
        errno: e.os_error().and_then(std::io::Error::raw_os_error),
        address: e
            .address()
            .map(|a| a.ip().to_string())
            .or_else(|| e.path().map(|p| p.to_string_lossy().into_owned())),
        port: e.address().map(|a| u32::from(a.port())),
        option: e.option().map(Into::into),
    }
}

pub(crate) fn throw(e: &Error) -> napi::Error<Code> {
    napi::Error::new(Code(code(e)), e.to_string())
}

/// Node's names for OS errors (`util.getSystemErrorName`), for the errors a socket server meets.
pub(crate) fn io_code(e: &std::io::Error) -> String {
    let Some(n) = e.raw_os_error() else {
        return match e.kind() {
            std::io::ErrorKind::Unsupported => "ERR_TCPSERVER_UNSUPPORTED".into(),
            std::io::ErrorKind::TimedOut => "ETIMEDOUT".into(),
            std::io::ErrorKind::UnexpectedEof => "ECONNRESET".into(),
            // A TLS protocol violation by the peer after the handshake (rustls).
            std::io::ErrorKind::InvalidData => "ERR_TCPSERVER_TLS".into(),
            _ => "EIO".into(),
        };
    };
    let name = match n {
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EINVAL => "EINVAL",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EPIPE => "EPIPE",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENOTCONN => "ENOTCONN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENETDOWN => "ENETDOWN",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EPROTO => "EPROTO",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EBADF => "EBADF",
        libc::ENOENT => "ENOENT",
        libc::EISDIR => "EISDIR",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        _ => return format!("E{n}"),
    };
    name.into()
}
