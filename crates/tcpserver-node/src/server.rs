//! `BindingServer`: the JavaScript-facing handle of one `tcpserver_core::Server` (or of a worker
//! thread's share of one): creating it (`listen`, `attachWorker`) and its lifecycle, settings
//! and counters. Its per-connection operations are `BindingConnections` (`connections.rs`);
//! the outbound hub is `BindingHub` (`hub.rs`). Every method is synchronous; results of long
//! operations arrive as events.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either, FnArgs, Function};
use napi::{Env, Result};
use napi_derive::napi;

use tcpserver_core::driver::{Connections, TlsStart};
use tcpserver_core::{Error, Server};
use tokio_util::sync::CancellationToken;

use crate::connections::BindingConnections;
use crate::error::{BindingError, Code, or_throw, to_binding};
use crate::events::JsSink;
use crate::options::{BindingListenOptions, BindingTlsOptions, integer, to_config, to_tls};
use crate::runtime::runtime;
use crate::sni::SniBridge;
use crate::types::*;
use crate::workers::{Slot, Workers, add_data, add_timeouts};
use tcpserver_core::tls::TlsAcceptor;

/// A listening server, or a worker thread's handle on one: its lifecycle, settings and
/// counters. Its connections' operations are `connections` (`connections.rs`).
#[napi]
pub struct BindingServer {
    pub(crate) server: Option<Server>,
    pub(crate) ops: BindingConnections,
    pub(crate) sni: SniBridge,
    /// A server with worker threads: where its connections go (`ops.conns` stays empty).
    pub(crate) workers: Option<Arc<Workers>>,
    /// A worker thread's handle: its place among its server's workers.
    pub(crate) slot: Option<(Arc<Workers>, Arc<Slot>)>,
}

impl BindingServer {
    /// Timeout counters of this server's connections, its workers' included.
    fn timeout_totals(&self) -> tcpserver_core::driver::TimeoutStats {
        let mut t = self.ops.conns.timeout_stats();
        if let Some(w) = &self.workers {
            add_timeouts(&mut t, &w.totals().0);
        }
        t
    }
}

/// The sockets of systemd socket activation (`LISTEN_PID`/`LISTEN_FDS`) meant for this process.
#[napi(catch_unwind)]
pub fn systemd_listen_fds() -> Either<Vec<BindingListenFd>, BindingError> {
    match tcpserver_core::systemd_listen_fds() {
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
    // Weak: JavaScript keeps the process alive while the server runs, with a timer that
    // `server.unref()` lets go of.
    let sink = JsSink::weak_to(&on_events)?;
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
    let conns = Arc::new(Connections::new());
    let drive = settings.drive;
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
    // Plain TCP on this thread's own loop, unless TLS (records stay off this thread) or
    // workers (each has its own) serve the connections, or the loop cannot start here.
    #[cfg(target_os = "linux")]
    let local = (workers.is_none() && tls.is_none() && crate::uv_watch::enabled())
        .then(|| crate::uv_watch::local_loop(&env, &conns, &sink, &on_events))
        .flatten();
    #[cfg(not(target_os = "linux"))]
    let local: Option<()> = None;
    let bound = match (&workers, &local) {
        #[cfg(target_os = "linux")]
        (None, Some(local)) => {
            // The loop accepts on its own when admission decides at once; other connections
            // (held by `maxConnections`, behind a PROXY header, on Unix sockets) it adopts.
            let adopting = local.clone();
            Server::bind_on_loop(&config, local, drive, move |conn| {
                adopting.adopt(conn, drive, 0)
            })
        }
        (None, _) => {
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
        (Some(workers), _) => {
            let (workers, handler_tls) = (workers.clone(), tls.clone());
            Server::bind(&config, move |conn| {
                let (workers, tls) = (workers.clone(), start_tls(&handler_tls));
                async move {
                    let abort = conn.abort_signal().clone();
                    let Some(slot) = workers.pick(&abort).await else {
                        return; // the server closed first: the connection is dropped
                    };
                    #[cfg(target_os = "linux")]
                    if let (Some(local), TlsStart::None) = (&slot.local, &tls) {
                        return local.adopt(conn, drive, 0).await;
                    }
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
            #[cfg(target_os = "linux")]
            if let Some(l) = &local {
                l.finish();
            }
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
    #[cfg(target_os = "linux")]
    let final_local = local.clone();
    rt.spawn(async move {
        let report = watched.closed().await;
        if let Some(w) = &final_workers {
            w.close();
        }
        // The loop's connections report their close (a forced one too) before the server's.
        #[cfg(target_os = "linux")]
        if let Some(l) = &final_local {
            l.drained().await;
            l.finish();
        }
        final_sink.server_closed(report.completed, report.forced);
        final_sink.release();
        crate::teardown::unregister(registration);
    });
    Ok(Either::B(BindingServer {
        server: Some(server),
        ops: BindingConnections::new(
            conns,
            drive,
            settings.read_timeout,
            tls,
            #[cfg(target_os = "linux")]
            local,
        ),
        sni,
        workers,
        slot: None,
    }))
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
    let sink = JsSink::keeping_alive_to(&on_events)?;
    runtime().spawn(sink.clone().flusher());
    let conns = Arc::new(Connections::new());
    #[cfg(target_os = "linux")]
    let local = crate::uv_watch::enabled()
        .then(|| crate::uv_watch::local_loop(&env, &conns, &sink, &on_events))
        .flatten();
    let slot = workers.attach(
        index,
        conns.clone(),
        sink.clone(),
        #[cfg(target_os = "linux")]
        local.clone(),
    );
    // The thread may end without saying so (terminate(), an uncaught error): its connections
    // must not outlive it.
    let (hook_workers, hook_slot) = (workers.clone(), slot.clone());
    env.add_env_cleanup_hook((), move |()| hook_workers.detach(&hook_slot))?;
    Ok(Either::B(BindingServer {
        server: None,
        ops: BindingConnections::new(
            conns,
            workers.drive,
            workers.read_timeout,
            None,
            #[cfg(target_os = "linux")]
            local,
        ),
        sni: SniBridge::new(&sink),
        workers: None,
        slot: Some((workers, slot)),
    }))
}

#[napi]
impl BindingServer {
    /// The operations on this server's connections (read once: each read makes a new handle
    /// on the same connections).
    #[napi(getter)]
    pub fn connections(&self) -> BindingConnections {
        self.ops.clone()
    }

    /// The bound addresses (real ports).
    #[napi]
    pub fn addresses(&self) -> Vec<BindingAddress> {
        let Some(s) = &self.server else {
            return Vec::new();
        };
        let unix = s
            .unix_paths()
            .iter()
            .map(|p| (&tcpserver_core::Address::Unix(p.clone())).into());
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

    /// Swaps the TLS certificates for new handshakes; open connections keep theirs.
    #[napi(catch_unwind)]
    pub fn set_tls(&self, options: BindingTlsOptions) -> Option<BindingError> {
        let Some(acceptor) = &self.ops.tls else {
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
            (Some(cert), Some(key)) => Some(tcpserver_core::tls::PemIdentity {
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
        let (handshakes, failures) = self
            .ops
            .tls
            .as_ref()
            .map(|t| t.counts())
            .unwrap_or_default();
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
        let mut d = self.ops.conns.data_stats();
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
}
