//! `BindingServer`: the JavaScript-facing handle of one `tcpserver::Server` plus its driven
//! connections. Every method is synchronous; results of long operations arrive as events.

use std::sync::Arc;
use std::time::Duration;

use napi::Result;
use napi::bindgen_prelude::{Buffer, Either, FnArgs, Function, Uint8ArraySlice};
use napi_derive::napi;
use tcpserver::driver::{Connections, DriveOptions};
use tcpserver::{Error, Server};

use crate::error::{BindingError, Code, throw, to_binding};
use crate::events::{JsBytes, JsSink};
use crate::options::{BindingListenOptions, integer, keep_alive_from, to_config};
use crate::runtime::runtime;

/// An address as Node reports it.
#[napi(object)]
pub struct BindingAddress {
    /// IP address text.
    pub address: String,
    /// Port.
    pub port: u32,
    /// `IPv4` or `IPv6`.
    pub family: String,
}

impl From<std::net::SocketAddr> for BindingAddress {
    fn from(a: std::net::SocketAddr) -> Self {
        Self {
            address: a.ip().to_string(),
            port: u32::from(a.port()),
            family: if a.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        }
    }
}

/// Accept-time facts and counters of one connection.
#[napi(object)]
pub struct BindingConnectionInfo {
    /// The client.
    pub remote: BindingAddress,
    /// The server side.
    pub local: BindingAddress,
    /// Accept time, ms since the epoch.
    pub start_time: f64,
    /// Bytes read from the socket.
    pub bytes_read: f64,
    /// Bytes in the kernel.
    pub bytes_written: f64,
    /// Bytes queued in the process.
    pub queued: f64,
}

/// Counters of a server.
#[napi(object)]
pub struct BindingStats {
    /// Connections accepted.
    pub accepted: f64,
    /// Connections open.
    pub active: f64,
    /// Connections closed at once by `maxAcceptConnections`.
    pub refused: f64,
    /// Connections closed by a forced shutdown.
    pub forced: f64,
    /// Connection tasks that panicked.
    pub panics: f64,
    /// Accept errors: `[code, count]` pairs.
    pub accept_errors: Vec<BindingCount>,
}

/// A named counter.
#[napi(object)]
pub struct BindingCount {
    /// Error code (`EMFILE`...).
    pub code: String,
    /// How many times.
    pub count: f64,
}

/// A listening server.
#[napi]
pub struct BindingServer {
    server: Server,
    conns: Arc<Connections>,
    drive: DriveOptions,
}

fn or_throw<T>(r: std::result::Result<T, Error>) -> Result<T, Code> {
    r.map_err(|e| throw(&e))
}

/// Listens. `onEvents(events, payload)` receives every event batch of this server.
#[napi(catch_unwind)]
pub fn listen(
    options: BindingListenOptions,
    on_events: Function<'_, FnArgs<(Buffer, Buffer)>, ()>,
) -> Result<Either<BindingError, BindingServer>> {
    let (config, settings) = match to_config(&options) {
        Ok(c) => c,
        Err(e) => return Ok(Either::A(to_binding(&e))),
    };
    let sink = Arc::new(JsSink::new());
    let taker = sink.clone();
    let wake = on_events
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .build_callback(move |_ctx| {
            let (events, payload) = taker.take();
            Ok(FnArgs::from((JsBytes(events), JsBytes(payload))))
        })?;
    sink.set_wake(wake);
    let conns = Arc::new(Connections::new());
    let drive = DriveOptions {
        high_water_mark: settings.high_water_mark,
        idle_timeout: settings.idle_timeout,
    };
    let rt = runtime();
    let _entered = rt.enter();
    let (handler_conns, handler_sink) = (conns.clone(), sink.clone());
    let bound = Server::bind(&config, move |conn| {
        handler_conns
            .clone()
            .drive(conn, handler_sink.clone(), drive)
    });
    let server = match bound {
        Ok(s) => s,
        Err(e) => {
            sink.release();
            return Ok(Either::A(to_binding(&e)));
        }
    };
    rt.spawn(sink.clone().flusher());
    // The final event: after it the wake-up function is released and Node may exit.
    let watched = server.clone();
    rt.spawn(async move {
        let report = watched.closed().await;
        sink.server_closed(report.completed, report.forced);
        sink.release();
    });
    Ok(Either::B(BindingServer {
        server,
        conns,
        drive,
    }))
}

#[napi]
impl BindingServer {
    /// The bound addresses (real ports).
    #[napi]
    pub fn addresses(&self) -> Vec<BindingAddress> {
        self.server
            .local_addrs()
            .iter()
            .map(|&a| a.into())
            .collect()
    }

    /// The effective per-connection high-water mark, bytes.
    #[napi(getter)]
    pub fn high_water_mark(&self) -> u32 {
        u32::try_from(self.drive.high_water_mark).unwrap_or(u32::MAX)
    }

    /// The effective idle timeout, ms (0 = off).
    #[napi(getter)]
    pub fn idle_timeout(&self) -> f64 {
        self.drive
            .idle_timeout
            .map_or(0.0, |d| d.as_millis() as f64)
    }

    /// A snapshot of the counters.
    #[napi]
    pub fn stats(&self) -> BindingStats {
        let s = self.server.stats();
        BindingStats {
            accepted: s.accepted as f64,
            active: s.active as f64,
            refused: s.refused as f64,
            forced: s.forced as f64,
            panics: s.panics as f64,
            accept_errors: s
                .accept_errors
                .iter()
                .map(|&(errno, count)| BindingCount {
                    code: crate::error::io_code(&std::io::Error::from_raw_os_error(errno)),
                    count: count as f64,
                })
                .collect(),
        }
    }

    /// Stops accepting; returns once every listening socket is closed (the port is free).
    /// With `timeoutMs`, connections still open at the deadline are aborted. The
    /// `SERVER_CLOSED` event reports the end.
    #[napi(catch_unwind)]
    pub fn shutdown(&self, timeout_ms: Option<f64>) -> Result<(), Code> {
        let deadline = match timeout_ms {
            Some(ms) => Some(Duration::from_millis(or_throw(integer(
                "timeout", ms, 0.0, 9.0e15,
            ))?)),
            None => None,
        };
        let rt = runtime();
        rt.block_on(self.server.stop_accepting());
        let server = self.server.clone();
        rt.spawn(async move { server.shutdown(deadline).await });
        Ok(())
    }

    /// Stops accepting and aborts every connection now.
    #[napi(catch_unwind)]
    pub fn halt(&self) {
        let rt = runtime();
        rt.block_on(self.server.stop_accepting());
        let server = self.server.clone();
        rt.spawn(async move { server.halt().await });
    }

    /// Stops calling `accept` until `resume()`.
    #[napi]
    pub fn pause(&self) {
        self.server.pause();
    }

    /// Undoes `pause()`.
    #[napi]
    pub fn resume(&self) {
        self.server.resume();
    }

    /// Writes to connection `id`; returns the bytes still queued in the process.
    #[napi(catch_unwind)]
    pub fn write(&self, id: u32, data: Uint8ArraySlice<'_>) -> Result<u32, Code> {
        or_throw(self.conns.write(id, &data)).map(|q| u32::try_from(q).unwrap_or(u32::MAX))
    }

    /// Writes a string (UTF-8) to connection `id`.
    #[napi(catch_unwind)]
    pub fn write_string(&self, id: u32, data: String) -> Result<u32, Code> {
        or_throw(self.conns.write(id, data.as_bytes()))
            .map(|q| u32::try_from(q).unwrap_or(u32::MAX))
    }

    /// Returns `n` bytes of read credit to connection `id`.
    #[napi]
    pub fn ack(&self, id: u32, n: u32) {
        // A connection that is already gone needs no credit.
        let _ = self.conns.ack(id, n as usize);
    }

    /// Half-close after flushing.
    #[napi(catch_unwind)]
    pub fn end(&self, id: u32) -> Result<(), Code> {
        or_throw(self.conns.end(id))
    }

    /// The handler finished: flush, FIN, close.
    #[napi]
    pub fn release(&self, id: u32) {
        let _ = self.conns.release(id);
    }

    /// Close now, dropping queued output.
    #[napi]
    pub fn close(&self, id: u32) {
        let _ = self.conns.close(id);
    }

    /// Addresses and counters of a live connection (`null` once it is closed).
    #[napi]
    pub fn info(&self, id: u32) -> Option<BindingConnectionInfo> {
        let d = self.conns.info(id).ok()?;
        let start_time = d
            .info
            .start_time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |t| t.as_secs_f64() * 1000.0);
        Some(BindingConnectionInfo {
            remote: d.info.peer_addr.into(),
            local: d.info.local_addr.into(),
            start_time,
            bytes_read: d.bytes_read as f64,
            bytes_written: d.bytes_written as f64,
            queued: d.queued as f64,
        })
    }

    /// `TCP_NODELAY` on connection `id`.
    #[napi(catch_unwind)]
    pub fn set_no_delay(&self, id: u32, on: bool) -> Result<(), Code> {
        or_throw(self.conns.set_no_delay(id, on))
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
        if !enable {
            return or_throw(self.conns.set_keep_alive(id, None));
        }
        let k = or_throw(keep_alive_from(initial_delay, interval, count))?;
        or_throw(self.conns.set_keep_alive(id, Some(&k)))
    }

    /// Idle timeout of connection `id`, ms (0 turns it off).
    #[napi(catch_unwind)]
    pub fn set_idle_timeout(&self, id: u32, ms: f64) -> Result<(), Code> {
        let t = or_throw(crate::options::idle_timeout(Some(ms)))?;
        or_throw(self.conns.set_idle_timeout(id, t))
    }
}
