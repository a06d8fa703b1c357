//! `BindingServer`: the JavaScript-facing handle of one `tcpserver::Server` plus its driven
//! connections. Every method is synchronous; results of long operations arrive as events.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either, FnArgs, Function, Uint8ArraySlice};
use napi::{Env, Result};
use napi_derive::napi;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tcpserver::driver::{Connections, DriveOptions, TlsStart};
use tcpserver::{ConnectOptions, Error, PipeOptions, Server};
use tokio_util::sync::CancellationToken;

use crate::error::{BindingError, Code, throw, to_binding};
use crate::events::{JsBytes, JsSink};
use crate::options::{
    BindingClientTlsOptions, BindingListenOptions, BindingTlsOptions, MAX_SAFE, integer,
    keep_alive_from, to_client_tls, to_config, to_tls,
};
use crate::runtime::runtime;
use crate::sni::SniBridge;
use crate::workers::{Slot, Workers, add_data, add_timeouts};
use tcpserver::tls::TlsAcceptor;

/// An address as Node reports it.
#[napi(object)]
pub struct BindingAddress {
    /// IP address text, or the Unix socket path (empty for an unnamed socket).
    pub address: String,
    /// Port (0 for Unix sockets).
    pub port: u32,
    /// `IPv4`, `IPv6` or `unix`.
    pub family: String,
}

impl From<&tcpserver::Address> for BindingAddress {
    fn from(a: &tcpserver::Address) -> Self {
        match a {
            tcpserver::Address::Ip(a) => (*a).into(),
            tcpserver::Address::Unix(p) => Self {
                address: p.to_string_lossy().into_owned(),
                port: 0,
                family: "unix".into(),
            },
        }
    }
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
    /// The load balancer, on PROXY protocol listeners.
    pub proxied_by: Option<BindingAddress>,
    /// Accept time, ms since the epoch.
    pub start_time: f64,
    /// Bytes read from the socket.
    pub bytes_read: f64,
    /// Bytes in the kernel.
    pub bytes_written: f64,
    /// Bytes queued in the process.
    pub queued: f64,
    /// What TLS negotiated (`null` for plain TCP).
    pub tls: Option<BindingTlsInfo>,
}

/// Counters of a server.
#[napi(object)]
pub struct BindingStats {
    /// Connections accepted.
    pub accepted: f64,
    /// Connections open.
    pub active: f64,
    /// Connections closed at once by any limit.
    pub refused: f64,
    /// ... because `maxConnections` were open (`onLimit: 'refuse'`).
    pub refused_max_connections: f64,
    /// ... because the client's address held its `maxConnectionsPerIp`.
    pub refused_per_ip: f64,
    /// ... because `maxAcceptConnections` was reached.
    pub refused_max_accept: f64,
    /// Connections closed by the idle timeout.
    pub idle_timeouts: f64,
    /// Reads that timed out.
    pub read_timeouts: f64,
    /// Connections closed by the write timeout.
    pub write_timeouts: f64,
    /// PROXY protocol headers accepted.
    pub proxy_headers: f64,
    /// PROXY protocol refusals: `[reason, count]` pairs.
    pub proxy_failures: Vec<BindingCount>,
    /// Connections closed by a forced shutdown.
    pub forced: f64,
    /// Connection tasks that panicked.
    pub panics: f64,
    /// Accept errors: `[code, count]` pairs.
    pub accept_errors: Vec<BindingCount>,
}

/// One worker thread of a server.
#[napi(object)]
pub struct BindingWorker {
    /// Its index (0..workers).
    pub index: u32,
    /// Connections it has open.
    pub active: f64,
    /// Connections handed to it (by this thread; a restarted worker counts from 0).
    pub accepted: f64,
}

/// The worker threads of a server.
#[napi(object)]
pub struct BindingWorkerStats {
    /// Attached workers, by index.
    pub workers: Vec<BindingWorker>,
    /// Connections closed because the worker serving them ended.
    pub orphaned: f64,
}

/// A named counter.
#[napi(object)]
pub struct BindingCount {
    /// Error code (`EMFILE`...).
    pub code: String,
    /// How many times.
    pub count: f64,
}

/// A listening server, or the process-wide hub of outbound connections (no listeners).
#[napi]
pub struct BindingServer {
    server: Option<Server>,
    conns: Arc<Connections>,
    drive: DriveOptions,
    sink: Arc<JsSink>,
    /// Outbound connections: their ids and abort signal (cancelled only when the environment
    /// ends: JavaScript closes them otherwise).
    next_id: AtomicU64,
    abort: CancellationToken,
    tls: Option<Arc<TlsAcceptor>>,
    sni: SniBridge,
    /// New connections' read timeout, which JavaScript applies.
    read_timeout: Option<Duration>,
    /// Outbound attempts not yet connected, by tag: `cancelConnect` stops one (an aborted
    /// `signal` in JavaScript).
    attempts: Arc<std::sync::Mutex<std::collections::HashMap<u32, CancellationToken>>>,
    /// A server with worker threads: where its connections go (`conns` stays empty).
    workers: Option<Arc<Workers>>,
    /// A worker thread's handle: its place among its server's workers.
    slot: Option<(Arc<Workers>, Arc<Slot>)>,
}

/// Options of an outbound connection.
#[napi(object)]
pub struct BindingConnectOptions {
    /// `"host:port"` or `"unix:/path"`.
    pub address: Option<String>,
    /// Host name or IP literal.
    pub host: Option<String>,
    /// Port.
    pub port: Option<f64>,
    /// Give up after this many ms.
    pub timeout: Option<f64>,
    /// `TCP_NODELAY` (default on).
    pub no_delay: Option<bool>,
    /// Local IP address to bind.
    pub local_address: Option<String>,
    /// TLS (client side).
    pub tls: Option<BindingClientTlsOptions>,
}

/// TLS counters.
#[napi(object)]
pub struct BindingTlsStats {
    /// Handshakes completed.
    pub handshakes: f64,
    /// Failed handshakes by reason.
    pub failures: Vec<BindingCount>,
}

/// What a TLS connection negotiated.
#[napi(object)]
pub struct BindingTlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// Cipher suite (IANA name).
    pub cipher: String,
    /// Negotiated ALPN protocol.
    pub alpn_protocol: Option<String>,
    /// SNI name the client sent.
    pub server_name: Option<String>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// The peer's verified certificate chain (DER), leaf first.
    pub peer_certificates: Vec<Buffer>,
}

/// Counters of the zero-copy paths.
#[napi(object)]
pub struct BindingDataStats {
    /// Pipes forwarded with `splice(2)`.
    pub pipes_spliced: f64,
    /// Pipes forwarded with a copy loop.
    pub pipes_copied: f64,
    /// Bytes forwarded by pipes.
    pub bytes_piped: f64,
    /// Files sent completely.
    pub files_sent: f64,
    /// File bytes sent with `sendfile(2)`.
    pub file_bytes_zero_copy: f64,
    /// File bytes sent with a read/write loop.
    pub file_bytes_copied: f64,
    /// Chunks read on the JavaScript thread (`readNow`).
    pub direct_reads: f64,
}

impl BindingServer {
    /// Timeout counters of this server's connections, its workers' included.
    fn timeout_totals(&self) -> tcpserver::driver::TimeoutStats {
        let mut t = self.conns.timeout_stats();
        if let Some(w) = &self.workers {
            add_timeouts(&mut t, &w.totals().0);
        }
        t
    }
}

fn or_throw<T>(r: std::result::Result<T, Error>) -> Result<T, Code> {
    r.map_err(|e| throw(&e))
}

/// A listening socket systemd passed.
#[napi(object)]
pub struct BindingListenFd {
    /// The descriptor.
    pub fd: i32,
    /// Its name from `LISTEN_FDNAMES`, if given.
    pub name: Option<String>,
}

/// The sockets of systemd socket activation (`LISTEN_PID`/`LISTEN_FDS`) meant for this process.
#[napi(catch_unwind)]
pub fn systemd_listen_fds() -> Either<Vec<BindingListenFd>, BindingError> {
    match tcpserver::systemd_listen_fds() {
        Ok(fds) => Either::A(
            fds.into_iter()
                .map(|(fd, name)| BindingListenFd { fd, name })
                .collect(),
        ),
        Err(e) => Either::B(to_binding(&e)),
    }
}

/// Listens. `onEvents(events, payload)` receives every event batch of this server.
#[napi(catch_unwind)]
pub fn listen(
    env: Env,
    options: BindingListenOptions,
    on_events: Function<'_, FnArgs<(Buffer, Buffer)>, ()>,
) -> Result<Either<BindingError, BindingServer>> {
    let (config, settings) = match to_config(&options) {
        Ok(c) => c,
        Err(e) => return Ok(Either::A(to_binding(&e))),
    };
    let sink = Arc::new(JsSink::new());
    let sni = SniBridge::new(&sink);
    let tls = match options
        .tls
        .as_ref()
        .map(|t| to_tls(t).and_then(|s| TlsAcceptor::new(&sni.attach(t, s))))
    {
        None => None,
        Some(Ok(acceptor)) => Some(Arc::new(acceptor)),
        Some(Err(e)) => return Ok(Either::A(to_binding(&e))),
    };
    let taker = sink.clone();
    // Weak: JavaScript keeps the process alive while the server runs, with a timer that
    // `server.unref()` lets go of.
    let wake = on_events
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(move |_ctx| {
            let (events, payload) = taker.take();
            Ok(FnArgs::from((JsBytes(events), JsBytes(payload))))
        })?;
    sink.set_weak_wake(wake);
    let conns = Arc::new(Connections::new());
    let drive = DriveOptions {
        high_water_mark: settings.high_water_mark,
        idle_timeout: settings.idle_timeout,
        write_timeout: settings.write_timeout,
    };
    let rt = runtime();
    let _entered = rt.enter();
    let workers = options
        .workers
        .unwrap_or(false)
        .then(|| Workers::new(drive, settings.read_timeout));
    let start_tls = move |tls: &Option<Arc<TlsAcceptor>>| match tls {
        Some(acceptor) => TlsStart::Accept(acceptor.clone()),
        None => TlsStart::None,
    };
    let bound = match &workers {
        None => {
            let (handler_conns, handler_sink, handler_tls) =
                (conns.clone(), sink.clone(), tls.clone());
            Server::bind(&config, move |conn| {
                handler_conns.clone().drive(
                    conn,
                    handler_sink.clone(),
                    drive,
                    0,
                    start_tls(&handler_tls),
                )
            })
        }
        // Each connection waits for a worker (while one starts), then is driven into that
        // worker's registry and sink, as a single-threaded server's would be into its own.
        Some(workers) => {
            let (workers, handler_tls) = (workers.clone(), tls.clone());
            Server::bind(&config, move |conn| {
                let (workers, tls) = (workers.clone(), start_tls(&handler_tls));
                async move {
                    let abort = conn.abort_signal().clone();
                    let Some(slot) = workers.pick(&abort).await else {
                        return; // the server closed first: the connection is dropped
                    };
                    slot.conns
                        .clone()
                        .drive(conn, slot.sink.clone(), drive, 0, tls)
                        .await;
                }
            })
        }
    };
    let server = match bound {
        Ok(s) => s,
        Err(e) => {
            sink.release();
            return Ok(Either::A(to_binding(&e)));
        }
    };
    // Released with its environment if that ends first (a worker thread terminated).
    let registration = match crate::teardown::register(
        &env,
        crate::teardown::Owned {
            server: Some(server.clone()),
            abort: CancellationToken::new(),
            sink: sink.clone(),
            conns: conns.clone(),
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            rt.spawn(async move { server.halt().await });
            sink.release();
            return Err(e);
        }
    };
    rt.spawn(sink.clone().flusher());
    // The final event: after it the wake-up function is released and Node may exit.
    let watched = server.clone();
    let final_sink = sink.clone();
    let final_workers = workers.clone();
    rt.spawn(async move {
        let report = watched.closed().await;
        if let Some(w) = &final_workers {
            w.close();
        }
        final_sink.server_closed(report.completed, report.forced);
        final_sink.release();
        crate::teardown::unregister(registration);
    });
    Ok(Either::B(BindingServer {
        server: Some(server),
        conns,
        drive,
        sink,
        next_id: AtomicU64::new(1),
        abort: CancellationToken::new(),
        attempts: Arc::default(),
        tls,
        sni,
        read_timeout: settings.read_timeout,
        workers,
        slot: None,
    }))
}

/// The hub of outbound connections: a `BindingServer` without listeners whose wake-up
/// function does not keep the process alive (JavaScript does, while connections exist).
#[napi(catch_unwind)]
pub fn create_hub(
    env: Env,
    on_events: Function<'_, FnArgs<(Buffer, Buffer)>, ()>,
) -> Result<BindingServer> {
    let sink = Arc::new(JsSink::new());
    let sni = SniBridge::new(&sink);
    let taker = sink.clone();
    let wake = on_events
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(move |_ctx| {
            let (events, payload) = taker.take();
            Ok(FnArgs::from((JsBytes(events), JsBytes(payload))))
        })?;
    sink.set_weak_wake(wake);
    let (conns, abort) = (Arc::new(Connections::new()), CancellationToken::new());
    // Its connections and attempts end with its environment (a worker thread terminated).
    crate::teardown::register(
        &env,
        crate::teardown::Owned {
            server: None,
            abort: abort.clone(),
            sink: sink.clone(),
            conns: conns.clone(),
        },
    )?;
    runtime().spawn(sink.clone().flusher());
    Ok(BindingServer {
        server: None,
        conns,
        drive: DriveOptions::default(),
        sink,
        next_id: AtomicU64::new(1),
        abort,
        attempts: Arc::default(),
        tls: None,
        sni,
        read_timeout: None,
        workers: None,
        slot: None,
    })
}

/// A worker thread's handle on the server registered under `key` (`workersKey` of the main
/// thread's server): connections the server hands to this worker arrive as events through
/// `onEvents`, and every per-connection method works as on the server itself. When this
/// thread's environment ends, the worker is detached: its connections close.
#[napi(catch_unwind)]
pub fn attach_worker(
    env: Env,
    key: f64,
    index: u32,
    on_events: Function<'_, FnArgs<(Buffer, Buffer)>, ()>,
) -> Result<Either<BindingError, BindingServer>> {
    let Some(workers) = u64::try_from(key as i64).ok().and_then(Workers::find) else {
        return Ok(Either::A(to_binding(&Error::value(
            "workersKey",
            "no running server with workers has this key (it closed, or the key is wrong)",
        ))));
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
    runtime().spawn(sink.clone().flusher());
    let conns = Arc::new(Connections::new());
    let slot = workers.attach(index, conns.clone(), sink.clone());
    // The thread may end without saying so (terminate(), an uncaught error): its connections
    // must not outlive it.
    let (hook_workers, hook_slot) = (workers.clone(), slot.clone());
    env.add_env_cleanup_hook((), move |()| hook_workers.detach(&hook_slot))?;
    Ok(Either::B(BindingServer {
        server: None,
        conns,
        drive: workers.drive,
        sni: SniBridge::new(&sink),
        sink,
        next_id: AtomicU64::new(1),
        abort: CancellationToken::new(),
        tls: None,
        read_timeout: workers.read_timeout,
        attempts: Arc::default(),
        workers: None,
        slot: Some((workers, slot)),
    }))
}

#[napi]
impl BindingServer {
    /// The bound addresses (real ports).
    #[napi]
    pub fn addresses(&self) -> Vec<BindingAddress> {
        let Some(s) = &self.server else {
            return Vec::new();
        };
        let unix = s
            .unix_paths()
            .iter()
            .map(|p| (&tcpserver::Address::Unix(p.clone())).into());
        s.local_addrs()
            .iter()
            .map(|&a| a.into())
            .chain(unix)
            .collect()
    }

    /// The key worker threads attach with (0 for a server without workers).
    #[napi(getter)]
    pub fn workers_key(&self) -> f64 {
        self.workers.as_ref().map_or(0.0, |w| w.key() as f64)
    }

    /// A worker's handle leaves its server: its open connections close now. Idempotent.
    #[napi]
    pub fn detach(&self) {
        if let Some((workers, slot)) = &self.slot {
            workers.detach(slot);
        }
    }

    /// Per worker thread: its index, open connections, and connections handed to it.
    #[napi]
    pub fn worker_stats(&self) -> BindingWorkerStats {
        let Some(w) = &self.workers else {
            return BindingWorkerStats {
                workers: Vec::new(),
                orphaned: 0.0,
            };
        };
        BindingWorkerStats {
            workers: w
                .per_worker()
                .into_iter()
                .map(|(index, active, accepted)| BindingWorker {
                    index,
                    active: active as f64,
                    accepted: accepted as f64,
                })
                .collect(),
            orphaned: w.orphaned() as f64,
        }
    }

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
        crate::options::timeout("readTimeout", Some(ms))
            .err()
            .map(|e| to_binding(&e))
    }

    /// The effective write timeout, ms (0 = off).
    #[napi(getter)]
    pub fn write_timeout(&self) -> f64 {
        self.drive
            .write_timeout
            .map_or(0.0, |d| d.as_millis() as f64)
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
        let s = self.server.as_ref().map(Server::stats).unwrap_or_default();
        let t = self.timeout_totals();
        BindingStats {
            accepted: s.accepted as f64,
            active: s.active as f64,
            refused: s.refused() as f64,
            refused_max_connections: s.refused_max_connections as f64,
            refused_per_ip: s.refused_per_ip as f64,
            refused_max_accept: s.refused_max_accept as f64,
            idle_timeouts: t.idle as f64,
            read_timeouts: t.read as f64,
            write_timeouts: t.write as f64,
            proxy_headers: s.proxy_headers as f64,
            proxy_failures: s
                .proxy_failures
                .iter()
                .map(|&(reason, count)| BindingCount {
                    code: reason.into(),
                    count: count as f64,
                })
                .collect(),
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
        let Some(server) = self.server.clone() else {
            return Ok(());
        };
        let rt = runtime();
        rt.block_on(server.stop_accepting());
        rt.spawn(async move { server.shutdown(deadline).await });
        Ok(())
    }

    /// Stops accepting and aborts every connection now.
    #[napi(catch_unwind)]
    pub fn halt(&self) {
        let Some(server) = self.server.clone() else {
            return;
        };
        let rt = runtime();
        rt.block_on(server.stop_accepting());
        rt.spawn(async move { server.halt().await });
    }

    /// Stops calling `accept` until `resume()`.
    #[napi]
    pub fn pause(&self) {
        self.server.iter().for_each(Server::pause);
    }

    /// Undoes `pause()`.
    #[napi]
    pub fn resume(&self) {
        self.server.iter().for_each(Server::resume);
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

    /// Reads what the socket of connection `id` already holds into `buf`, on this thread;
    /// `delivered` is the bytes the connection has received so far. 0: wait for events.
    #[napi]
    pub fn read_now(&self, id: u32, delivered: f64, mut buf: Uint8ArraySlice<'_>) -> u32 {
        // SAFETY: this runs synchronously on the JavaScript thread, the only one that can
        // touch `buf`, and the slice does not outlive the call.
        let bytes = unsafe { buf.as_mut() };
        // A connection that is already gone has nothing to read now; its events tell the rest.
        let n = self
            .conns
            .read_now(id, delivered as u64, bytes)
            .unwrap_or(0);
        u32::try_from(n).unwrap_or(u32::MAX)
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
        let t = or_throw(crate::options::timeout("idleTimeout", Some(ms)))?;
        or_throw(self.conns.set_idle_timeout(id, t))
    }

    /// Write timeout of connection `id`, ms (0 turns it off).
    #[napi(catch_unwind)]
    pub fn set_write_timeout(&self, id: u32, ms: f64) -> Result<(), Code> {
        let t = or_throw(crate::options::timeout("writeTimeout", Some(ms)))?;
        or_throw(self.conns.set_write_timeout(id, t))
    }

    /// Counts a read timeout (reads wait in JavaScript, which applies the timeout).
    #[napi]
    pub fn count_read_timeout(&self) {
        self.conns.count_read_timeout();
    }

    /// Swaps the TLS certificates for new handshakes; open connections keep theirs.
    #[napi(catch_unwind)]
    pub fn set_tls(&self, options: BindingTlsOptions) -> Option<BindingError> {
        let Some(acceptor) = &self.tls else {
            return Some(to_binding(&Error::value(
                "tls",
                "the server was not started with TLS",
            )));
        };
        to_tls(&options)
            .and_then(|s| acceptor.reload(&self.sni.attach(&options, s)))
            .err()
            .map(|e| to_binding(&e))
    }

    /// Answers a TLS_SNI event: the certificate for handshake `token`, or the default one.
    #[napi]
    pub fn resolve_sni(&self, token: u32, cert: Option<Buffer>, key: Option<Buffer>) {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(tcpserver::tls::PemIdentity {
                cert: cert.to_vec(),
                key: key.to_vec(),
            }),
            _ => None,
        };
        self.sni.resolve(token, identity);
    }

    /// TLS handshakes completed, and failures by reason.
    #[napi]
    pub fn tls_stats(&self) -> BindingTlsStats {
        let (handshakes, failures) = self.tls.as_ref().map(|t| t.counts()).unwrap_or_default();
        BindingTlsStats {
            handshakes: handshakes as f64,
            failures: failures
                .into_iter()
                .map(|(code, count)| BindingCount {
                    code,
                    count: count as f64,
                })
                .collect(),
        }
    }

    /// Counters of the zero-copy paths of this server's connections.
    #[napi]
    pub fn data_stats(&self) -> BindingDataStats {
        let mut d = self.conns.data_stats();
        if let Some(w) = &self.workers {
            add_data(&mut d, &w.totals().1);
        }
        BindingDataStats {
            pipes_spliced: d.pipes_spliced as f64,
            pipes_copied: d.pipes_copied as f64,
            bytes_piped: d.bytes_piped as f64,
            files_sent: d.files_sent as f64,
            file_bytes_zero_copy: d.file_bytes_zero_copy as f64,
            file_bytes_copied: d.file_bytes_copied as f64,
            direct_reads: d.direct_reads as f64,
        }
    }

    /// Stops reading connection `id` for a pipe; a PAUSED event follows.
    #[napi(catch_unwind)]
    pub fn pause_reading(&self, id: u32) -> Option<BindingError> {
        self.conns.pause_reading(id).err().map(|e| to_binding(&e))
    }

    /// Forwards between `id` and `otherId` (of `other`) in Rust; PIPE_DONE reports the end.
    #[napi(catch_unwind)]
    pub fn pipe(
        &self,
        id: u32,
        other: &BindingServer,
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
                (Some(p), None) => tcpserver::open_for_send(std::path::Path::new(&p))?,
                // A number, not an i32: napi would truncate 1.5 to 1 (stdout) silently.
                (None, Some(fd)) => {
                    tcpserver::dup_for_send(integer("file", fd, 0.0, f64::from(i32::MAX))? as i32)?
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

    /// Opens an outbound connection on this hub; OPEN (with `tag`) or CONNECT_FAILED follows.
    #[napi(catch_unwind)]
    pub fn connect(&self, options: BindingConnectOptions, tag: u32) -> Option<BindingError> {
        type Prepared = (
            Target,
            ConnectOptions,
            Option<(Arc<rustls::ClientConfig>, String, Duration)>,
        );
        let prepare = || -> std::result::Result<Prepared, Error> {
            let target = match (&options.address, &options.host, options.port) {
                (Some(a), None, None) => match a.strip_prefix(tcpserver::UNIX_PREFIX) {
                    Some(path) => {
                        Target::Unix(tcpserver::parse_listen_address(a).map(|_| path.into())?)
                    }
                    None => {
                        let (host, port) = tcpserver::split_host_port(a)?;
                        Target::Tcp(host, port)
                    }
                },
                (None, Some(h), Some(p)) => {
                    Target::Tcp(h.clone(), integer("port", p, 0.0, 65535.0)? as u16)
                }
                _ => {
                    return Err(Error::value(
                        "address",
                        "give `host:port` or { host, port }",
                    ));
                }
            };
            let mut opts = ConnectOptions::default();
            if let Some(t) = options.timeout {
                opts.timeout = Some(Duration::from_millis(integer("timeout", t, 1.0, MAX_SAFE)?));
            }
            if let Some(n) = options.no_delay {
                opts.no_delay = n;
            }
            if let Some(l) = &options.local_address {
                let ip = l
                    .parse()
                    .map_err(|_| Error::value("localAddress", "must be an IP address"))?;
                opts.local_address = Some(ip);
            }
            let tls = match &options.tls {
                None => None,
                Some(t) => {
                    let settings = to_client_tls(t)?;
                    // Unix sockets have no host name: certificates are checked for `localhost`
                    // unless `servername` says otherwise.
                    let name = settings
                        .server_name
                        .clone()
                        .unwrap_or_else(|| match &target {
                            Target::Tcp(host, _) => host.clone(),
                            Target::Unix(_) => "localhost".into(),
                        });
                    let timeout = settings
                        .handshake_timeout
                        .unwrap_or(tcpserver::tls::DEFAULT_HANDSHAKE_TIMEOUT);
                    Some((tcpserver::tls::client_config(&settings)?, name, timeout))
                }
            };
            Ok((target, opts, tls))
        };
        let (target, opts, tls) = match prepare() {
            Ok(p) => p,
            Err(e) => return Some(to_binding(&e)),
        };
        let id = self.next_id.fetch_add(1, Relaxed);
        let (conns, sink, abort, drive) = (
            self.conns.clone(),
            self.sink.clone(),
            self.abort.clone(),
            self.drive,
        );
        let cancel = CancellationToken::new();
        lock(&self.attempts).insert(tag, cancel.clone());
        let attempts = self.attempts.clone();
        runtime().spawn(async move {
            let attempt = async {
                let conn = match &target {
                    Target::Tcp(host, port) => {
                        tcpserver::connect(host, *port, &opts, id, abort).await?
                    }
                    Target::Unix(path) => tcpserver::connect_unix(path, &opts, id, abort).await?,
                };
                let start = match tls {
                    None => TlsStart::None,
                    Some((config, name, timeout)) => {
                        let session =
                            tcpserver::tls::connect(conn.stream(), config, &name, timeout).await?;
                        TlsStart::Session(Box::new(rustls::Connection::Client(session)))
                    }
                };
                Ok::<_, Error>((conn, start))
            };
            // Cancelled: JavaScript already rejected the call; dropping the attempt closes
            // its socket.
            let outcome = tokio::select! {
                () = cancel.cancelled() => None,
                r = attempt => Some(r),
            };
            lock(&attempts).remove(&tag);
            match outcome {
                None => {}
                Some(Ok((conn, start))) => conns.drive(conn, sink, drive, tag, start).await,
                Some(Err(e)) => sink.connect_failed(tag, &e),
            }
        });
        None
    }

    /// Stops the outbound attempt `tag` if it has not connected yet (no event follows).
    #[napi]
    pub fn cancel_connect(&self, tag: u32) {
        if let Some(cancel) = lock(&self.attempts).remove(&tag) {
            cancel.cancel();
        }
    }
}

/// The attempts map, also after a panic elsewhere poisoned it (it holds plain tokens).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where an outbound connection goes.
enum Target {
    Tcp(String, u16),
    Unix(std::path::PathBuf),
}
