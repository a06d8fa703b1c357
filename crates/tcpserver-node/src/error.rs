//! The only Rust file that knows JavaScript error codes. Core errors become a
//! `BindingError` value (for calls that return one) or a thrown error with `code` set.

use napi_derive::napi;
use tcpserver_core::{Error, ErrorKind, InvalidKind};

/// An error crossing to JavaScript as a value; `packages/tcpserver/src/errors.ts` turns it
/// into a thrown `Error`/`TypeError`/`RangeError` with these fields.
#[napi(object)]
pub struct BindingError {
    /// Node-style code: `EADDRINUSE`, `ERR_INVALID_ARG_VALUE`, `ERR_TCPSERVER_*`.
    pub code: String,
    /// Human-readable message (not a contract): Node's `connect ECONNREFUSED 127.0.0.1:1`
    /// for system errors.
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
    /// For argument errors: what the value must be (`must be between 1 and 65535`); the
    /// TypeScript side words the message around it with the value it received.
    pub reason: Option<String>,
    /// The file involved (`sendFile()`), like the `path` of Node's fs errors.
    pub path: Option<String>,
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
        // Node's codes and classes: ERR_SOCKET_BAD_PORT and ERR_OUT_OF_RANGE are RangeErrors,
        // ERR_INVALID_ARG_TYPE and ERR_INVALID_ARG_VALUE TypeErrors (see `class`).
        ErrorKind::InvalidArgument(InvalidKind::Range) if e.option() == Some("port") => {
            "ERR_SOCKET_BAD_PORT".into()
        }
        ErrorKind::InvalidArgument(InvalidKind::Range) => "ERR_OUT_OF_RANGE".into(),
        ErrorKind::InvalidArgument(InvalidKind::Type) => "ERR_INVALID_ARG_TYPE".into(),
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
        ErrorKind::NotAFile => "ERR_TCPSERVER_NOT_A_FILE".into(),
        _ => "ERR_TCPSERVER_INTERNAL".into(),
    }
}

/// The system call an OS error came from. The core names it where it knows (`bind`,
/// `connect`, `setsockopt`); a connection's socket errors reach the driver without it, and
/// are named as libuv meets them in Node: resets and timeouts on `read`, a closed pipe on
/// `write`.
fn syscall(e: &Error) -> Option<&'static str> {
    if let Some(s) = e.syscall() {
        return Some(s);
    }
    if e.kind() == ErrorKind::Resolve {
        return Some("getaddrinfo");
    }
    if e.kind() != ErrorKind::Os {
        return None;
    }
    match e.os_error()?.raw_os_error()? {
        libc::ECONNRESET | libc::ECONNABORTED | libc::ETIMEDOUT | libc::ENOTCONN => Some("read"),
        libc::EPIPE => Some("write"),
        _ => None,
    }
}

/// The address of an error as Node reports it: the IP or the Unix socket path, and the port.
fn address(e: &Error) -> (Option<String>, Option<u32>) {
    if let Error::Resolve { host, .. } = e {
        return (Some(host.clone()), None);
    }
    match (e.address(), e.path()) {
        (Some(a), _) => (Some(a.ip().to_string()), Some(u32::from(a.port()))),
        (None, Some(p)) => (Some(p.to_string_lossy().into_owned()), None),
        (None, None) => (None, None),
    }
}

/// The message: Node's `<syscall> <CODE>[ <address>[:<port>]]` for system errors (as
/// `connect ECONNREFUSED 127.0.0.1:1`, `read ECONNRESET`), the core's words otherwise.
fn message(e: &Error, code: &str) -> String {
    match syscall(e) {
        Some(call) if matches!(e.kind(), ErrorKind::Os | ErrorKind::Resolve) => match address(e) {
            (Some(a), Some(p)) if p > 0 => format!("{call} {code} {a}:{p}"),
            (Some(a), _) => format!("{call} {code} {a}"),
            _ => format!("{call} {code}"),
        },
        _ => e.to_string(),
    }
}

/// Why an argument was refused, without the option's name (JavaScript words the message).
fn reason(e: &Error) -> Option<String> {
    match e {
        Error::InvalidOption { reason, .. } | Error::Tls { reason, .. } => Some(reason.clone()),
        Error::InvalidAddress { input, reason } => {
            Some(format!("is not a valid address ('{input}': {reason})"))
        }
        _ => None,
    }
}

pub(crate) fn to_binding(e: &Error) -> BindingError {
    let class = match e.kind() {
        ErrorKind::InvalidArgument(InvalidKind::Range) => "RangeError",
        ErrorKind::InvalidArgument(_) => "TypeError",
        _ => "Error",
    };
    let code = code(e);
    let (address, port) = address(e);
    BindingError {
        message: message(e, &code),
        code,
        class: class.into(),
        syscall: syscall(e).map(Into::into),
        errno: e.os_error().and_then(std::io::Error::raw_os_error),
        address,
        port,
        option: e.option().map(Into::into),
        reason: reason(e),
        path: e.file_path().map(|p| p.to_string_lossy().into_owned()),
    }
}

pub(crate) fn throw(e: &Error) -> napi::Error<Code> {
    let code = code(e);
    // Argument errors carry only why: the JavaScript caller knows the argument's name and
    // value and words the message (`fromNative` in errors.ts).
    let message = reason(e).unwrap_or_else(|| message(e, &code));
    napi::Error::new(Code(code), message)
}

/// The fields of [`to_binding`] as event text lines (code, errno, syscall, address, port,
/// option, then the message, which may hold newlines): `parseEventText` in
/// packages/tcpserver/src/errors.ts reads them back. Empty lines are absent fields.
pub(crate) fn event_fields(e: &Error) -> String {
    let b = to_binding(e);
    let opt = |v: Option<String>| v.unwrap_or_default().replace('\n', " ");
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}",
        b.code,
        b.errno.map(|n| n.to_string()).unwrap_or_default(),
        opt(b.syscall),
        opt(b.address),
        b.port.map(|p| p.to_string()).unwrap_or_default(),
        opt(b.option),
        b.message
    )
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
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTDIR => "ENOTDIR",
        libc::ELOOP => "ELOOP",
        libc::ENXIO => "ENXIO",
        libc::ESPIPE => "ESPIPE",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EROFS => "EROFS",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::ENODEV => "ENODEV",
        _ => return format!("E{n}"),
    };
    name.into()
}

/// A core result as a call's: its error thrown as JavaScript's (see [`throw`]).
pub(crate) fn or_throw<T>(r: Result<T, Error>) -> napi::Result<T, Code> {
    r.map_err(|e| throw(&e))
}
