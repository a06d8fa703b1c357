//! `BindingConnections`: the per-connection operations (write, read credit, close, settings,
//! and the pipe, file and StartTLS jobs) of one source of connections (a server, a worker
//! thread's handle, the hub of outbound ones): each one call into the core's `Connections`,
//! or into the consumer loop that serves the connection.

use std::sync::Arc;
use std::time::Duration;

use napi::Result;
use napi::bindgen_prelude::{Buffer, Uint8ArraySlice};
use napi_derive::napi;

use tcpserver_core::driver::{Connections, DriveOptions, TimeoutKind};
use tcpserver_core::{Error, PipeOptions};

use crate::error::{BindingError, Code, or_throw, to_binding};
use crate::options::{BindingTlsOptions, MAX_SAFE, integer, keep_alive_from, to_tls};
use crate::runtime::runtime;

use crate::types::*;
use tcpserver_core::tls::TlsAcceptor;

/// `$local` on the consumer loop when it serves the connection (`Option`: `None` when it
/// does not), else `$tokio`, the Tokio driver's registry.
macro_rules! route {
    ($self:ident, |$l:ident| $local:expr, $tokio:expr) => {{
        #[cfg(target_os = "linux")]
        let on_loop = $self.local.as_deref().and_then(|$l| $local);
        #[cfg(not(target_os = "linux"))]
        let on_loop = None;
        match on_loop {
            Some(r) => r,
            None => $tokio,
        }
    }};
}

/// The operations on the connections of one source (`BindingServer.connections`,
/// `BindingHub.connections`): what JavaScript's `Connection` calls, by connection id.
#[napi]
#[derive(Clone)]
pub struct BindingConnections {
    pub(crate) conns: Arc<Connections>,
    /// New connections' settings.
    pub(crate) drive: DriveOptions,
    /// New connections' read timeout, which JavaScript applies.
    pub(crate) read_timeout: Option<Duration>,
    /// The server's TLS settings: the default of `startTls`.
    pub(crate) tls: Option<Arc<TlsAcceptor>>,
    /// Plain connections served on this thread's own event loop (`uv_watch.rs`); the others
    /// (TLS, Unix sockets, connections running a job) are in `conns`.
    #[cfg(target_os = "linux")]
    pub(crate) local: Option<Arc<tcpserver_core::driver::LocalLoop>>,
}

impl BindingConnections {
    /// Operations on `conns` (and on `local`'s connections) with these defaults.
    pub(crate) fn new(
        conns: Arc<Connections>,
        drive: DriveOptions,
        read_timeout: Option<Duration>,
        tls: Option<Arc<TlsAcceptor>>,
        #[cfg(target_os = "linux")] local: Option<Arc<tcpserver_core::driver::LocalLoop>>,
    ) -> Self {
        Self {
            conns,
            drive,
            read_timeout,
            tls,
            #[cfg(target_os = "linux")]
            local,
        }
    }
}

/// The per-request operations, called through `hot_calls.rs`.
impl BindingConnections {
    /// Writes to connection `id`; returns the bytes still queued in the process.
    pub(crate) fn write_bytes(&self, id: u32, data: &[u8]) -> std::result::Result<usize, Error> {
        route!(self, |l| l.write(id, data), self.conns.write(id, data))
    }

    /// Reads what the socket of connection `id` already holds into `buf`, on this thread;
    /// `delivered` is the bytes the connection has received so far. 0: wait for events.
    pub(crate) fn read_into(&self, id: u32, delivered: f64, buf: &mut [u8]) -> u32 {
        // A connection that is already gone has nothing to read now; its events tell the rest.
        let n = route!(
            self,
            |l| l.read_now(id, delivered as u64, buf),
            self.conns.read_now(id, delivered as u64, buf).unwrap_or(0)
        );
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Returns `n` bytes of read credit to connection `id`.
    pub(crate) fn ack(&self, id: u32, n: u32) {
        // A connection that is already gone needs no credit.
        route!(self, |l| l.ack(id, n as usize), {
            let _ = self.conns.ack(id, n as usize);
        });
    }

    /// The handler finished: flush, FIN, close. `Some`: the consumer loop closed it during
    /// this call (inside a turn, with nothing left to send), and no CLOSED event comes for it.
    pub(crate) fn release(&self, id: u32) -> Option<tcpserver_core::ConnectionInfo> {
        #[cfg(target_os = "linux")]
        if let Some(released) = self.local.as_deref().and_then(|l| l.release_or_close(id)) {
            return match released {
                tcpserver_core::driver::Released::Closed(info) => Some(info),
                tcpserver_core::driver::Released::Closing => None,
            };
        }
        let _ = self.conns.release(id);
        None
    }
}

#[napi]
impl BindingConnections {
    /// The effective per-connection high-water mark, bytes.
    #[napi(getter)]
    pub fn high_water_mark(&self) -> u32 {
        u32::try_from(self.drive.high_water_mark).unwrap_or(u32::MAX)
    }

    /// The read timeout for new connections, ms (0 = off).
    #[napi(getter)]
    pub fn read_timeout(&self) -> f64 {
        self.read_timeout.map_or(0.0, |d| d.as_millis() as f64)
    }

    /// Checks a per-connection read timeout (JavaScript applies it): the error the
    /// `readTimeout` option would give, if any.
    #[napi(catch_unwind)]
    pub fn check_read_timeout(&self, ms: f64) -> Option<BindingError> {
        crate::options::read_timeout(Some(ms))
            .err()
            .map(|e| to_binding(&e))
    }

    /// The effective timeouts for new connections, ms (0 = off), indexed as the core's
    /// `TimeoutKind::ALL`.
    #[napi(getter)]
    pub fn timeouts(&self) -> Vec<f64> {
        let ms = |t: Option<Duration>| t.map_or(0.0, |d| d.as_millis() as f64);
        self.drive.timeouts.0.map(ms).to_vec()
    }

    /// Writes a string (UTF-8) to connection `id`.
    #[napi(catch_unwind)]
    pub fn write_string(&self, id: u32, data: String) -> Result<u32, Code> {
        let bytes = data.as_bytes();
        let queued = route!(self, |l| l.write(id, bytes), self.conns.write(id, bytes));
        or_throw(queued).map(|q| u32::try_from(q).unwrap_or(u32::MAX))
    }

    /// Half-close after flushing.
    #[napi(catch_unwind)]
    pub fn end(&self, id: u32) -> Result<(), Code> {
        or_throw(route!(self, |l| l.end(id), self.conns.end(id)))
    }

    /// Close now, dropping queued output.
    #[napi]
    pub fn close(&self, id: u32) {
        let _ = route!(self, |l| l.close_now(id), self.conns.close(id));
    }

    /// Addresses and counters of a live connection (`null` once it is closed).
    #[napi]
    pub fn info(&self, id: u32) -> Option<BindingConnectionInfo> {
        let d = route!(self, |l| l.info(id).map(Some), self.conns.info(id).ok())?;
        let start_time = d
            .info
            .start_time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |t| t.as_secs_f64() * 1000.0);
        Some(BindingConnectionInfo {
            remote: (&d.info.peer_addr).into(),
            local: (&d.info.local_addr).into(),
            proxied_by: d.info.proxied_by.map(Into::into),
            start_time,
            bytes_read: d.bytes_read as f64,
            bytes_written: d.bytes_written as f64,
            queued: d.queued as f64,
            tls: d.tls.map(|t| BindingTlsInfo {
                protocol: t.protocol,
                cipher: t.cipher,
                alpn_protocol: t.alpn_protocol,
                server_name: t.server_name,
                resumed: t.resumed,
                peer_certificates: t.peer_certificates.into_iter().map(Buffer::from).collect(),
            }),
        })
    }

    /// `TCP_NODELAY` on connection `id`.
    #[napi(catch_unwind)]
    pub fn set_no_delay(&self, id: u32, on: bool) -> Result<(), Code> {
        or_throw(route!(
            self,
            |l| l.set_no_delay(id, on),
            self.conns.set_no_delay(id, on)
        ))
    }

    /// Keep-alive on (with optional probe settings, ms) or off.
    #[napi(catch_unwind)]
    pub fn set_keep_alive(
        &self,
        id: u32,
        enable: bool,
        initial_delay: Option<f64>,
        interval: Option<f64>,
        count: Option<f64>,
    ) -> Result<(), Code> {
        let k = match enable {
            false => None,
            true => Some(or_throw(keep_alive_from(initial_delay, interval, count))?),
        };
        let k = k.as_ref();
        or_throw(route!(
            self,
            |l| l.set_keep_alive(id, k),
            self.conns.set_keep_alive(id, k)
        ))
    }

    /// Timeout `kind` of connection `id`, ms (0 turns it off). `kind` is the kind's index in
    /// the core's `TimeoutKind::ALL`: a number, so the call converts no string.
    #[napi(catch_unwind)]
    pub fn set_timeout(&self, id: u32, kind: u32, ms: f64) -> Result<(), Code> {
        let kind = or_throw(
            TimeoutKind::from_index(kind as usize)
                .ok_or_else(|| Error::value("kind", "is not a timeout kind")),
        )?;
        let t = or_throw(crate::options::timeout(kind.option(), Some(ms)))?;
        or_throw(route!(
            self,
            |l| l.set_timeout(id, kind, t),
            self.conns.set_timeout(id, kind, t)
        ))
    }

    /// Counts a read timeout (reads wait in JavaScript, which applies the timeout).
    #[napi]
    pub fn count_read_timeout(&self) {
        self.conns.count_read_timeout();
    }

    /// Stops reading connection `id` for a pipe; a PAUSED event follows.
    #[napi(catch_unwind)]
    pub fn pause_reading(&self, id: u32) -> Option<BindingError> {
        route!(self, |l| l.pause_reading(id), self.conns.pause_reading(id))
            .err()
            .map(|e| to_binding(&e))
    }

    /// Forwards between `id` and `otherId` (of `other`) in Rust; PIPE_DONE reports the end.
    #[napi(catch_unwind)]
    pub fn pipe(
        &self,
        id: u32,
        other: &BindingConnections,
        other_id: u32,
        head_to_other: Option<Uint8ArraySlice<'_>>,
        head_to_this: Option<Uint8ArraySlice<'_>>,
        idle_timeout: Option<f64>,
    ) -> Option<BindingError> {
        let start = || -> std::result::Result<(), Error> {
            let opts = PipeOptions {
                head_to_other: head_to_other.map(|h| h.to_vec()).unwrap_or_default(),
                head_to_this: head_to_this.map(|h| h.to_vec()).unwrap_or_default(),
                idle_timeout: crate::options::timeout("idleTimeout", idle_timeout)?,
            };
            runtime().spawn(self.conns.pipe(id, &other.conns, other_id, opts)?);
            Ok(())
        };
        start().err().map(|e| to_binding(&e))
    }

    /// Sends a file (by path, or by a descriptor the caller keeps) on connection `id`;
    /// FILE_DONE reports the end. Open and range errors throw at once.
    #[napi(catch_unwind)]
    pub fn send_file(
        &self,
        id: u32,
        path: Option<String>,
        fd: Option<f64>,
        offset: Option<f64>,
        length: Option<f64>,
    ) -> Option<BindingError> {
        let start = || -> std::result::Result<(), Error> {
            let file = match (path, fd) {
                (Some(p), None) => tcpserver_core::open_for_send(std::path::Path::new(&p))?,
                // A number, not an i32: napi would truncate 1.5 to 1 (stdout) silently.
                (None, Some(fd)) => {
                    tcpserver_core::dup_for_send(
                        integer("file", fd, 0.0, f64::from(i32::MAX))? as i32
                    )?
                }
                _ => return Err(Error::value("file", "give a path or a file descriptor")),
            };
            let offset = offset
                .map(|o| integer("offset", o, 0.0, MAX_SAFE))
                .transpose()?
                .unwrap_or(0);
            let length = length
                .map(|l| integer("length", l, 0.0, MAX_SAFE))
                .transpose()?;
            // A connection on the consumer loop moves to the Tokio driver, which runs jobs.
            #[cfg(target_os = "linux")]
            if let Some(l) = &self.local {
                l.hand_over_for_job(id)?;
            }
            runtime().spawn(self.conns.send_file(id, file, offset, length)?);
            Ok(())
        };
        start().err().map(|e| to_binding(&e))
    }

    /// Upgrades plain connection `id` to TLS in place (StartTLS) with `tls` or the server's
    /// settings; `head` is input the consumer already read. TLS_STARTED reports the end.
    #[napi(catch_unwind)]
    pub fn start_tls(
        &self,
        id: u32,
        head: Option<Uint8ArraySlice<'_>>,
        tls: Option<BindingTlsOptions>,
    ) -> Option<BindingError> {
        let start = || -> std::result::Result<(), Error> {
            let acceptor = match (&tls, &self.tls) {
                (Some(options), _) => Arc::new(TlsAcceptor::new(&to_tls(options)?)?),
                (None, Some(server)) => server.clone(),
                (None, None) => {
                    return Err(Error::value(
                        "tls",
                        "give TLS settings: the server has none",
                    ));
                }
            };
            let head = head.map(|h| h.to_vec()).unwrap_or_default();
            runtime().spawn(self.conns.start_tls(id, head, acceptor)?);
            Ok(())
        };
        start().err().map(|e| to_binding(&e))
    }
}
