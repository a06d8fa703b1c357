//! `BindingHub`: the process-wide hub of outbound connections (`connect()`): the target, TLS on
//! top, then driven like accepted ones. Its connections' operations are `connections`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::Env;
use napi::bindgen_prelude::{Buffer, FnArgs, Function};
use napi_derive::napi;

use tcpserver_core::driver::{Connections, DriveOptions, TlsStart};
use tcpserver_core::{ConnectOptions, Error};
use tokio_util::sync::CancellationToken;

use crate::connections::BindingConnections;
use crate::error::{BindingError, to_binding};
use crate::events::JsSink;
use crate::options::{MAX_SAFE, integer, to_client_tls};
use crate::runtime::runtime;
use crate::types::*;

/// The hub of outbound connections: no listeners, and a wake-up function that does not keep
/// the process alive (JavaScript does, while connections exist).
#[napi]
pub struct BindingHub {
    ops: BindingConnections,
    sink: Arc<JsSink>,
    /// Outbound connections' ids.
    next_id: AtomicU64,
    /// Cancelled only when the environment ends: JavaScript closes the connections otherwise.
    abort: CancellationToken,
    /// Attempts not yet connected, by tag: `cancelConnect` stops one (an aborted `signal` in
    /// JavaScript).
    attempts: Arc<Mutex<HashMap<u32, CancellationToken>>>,
}

/// Creates the hub; `onEvents(events, payload)` receives its event batches.
#[napi(catch_unwind)]
pub fn create_hub(
    env: Env,
    on_events: Function<'_, FnArgs<(Buffer, Buffer)>, ()>,
) -> napi::Result<BindingHub> {
    let sink = JsSink::weak_to(&on_events)?;
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
    Ok(BindingHub {
        ops: BindingConnections::new(
            conns,
            DriveOptions::default(),
            None,
            None,
            #[cfg(target_os = "linux")]
            None,
        ),
        sink,
        next_id: AtomicU64::new(1),
        abort,
        attempts: Arc::default(),
    })
}

#[napi]
impl BindingHub {
    /// The operations on the hub's connections (read once: each read makes a new handle on
    /// the same connections).
    #[napi(getter)]
    pub fn connections(&self) -> BindingConnections {
        self.ops.clone()
    }

    /// Opens an outbound connection on this hub; OPEN (with `tag`) or CONNECT_FAILED follows.
    #[napi(catch_unwind)]
    pub fn connect(&self, options: BindingConnectOptions, tag: u32) -> Option<BindingError> {
        type Prepared = (
            Target,
            ConnectOptions,
            Option<(Arc<rustls::ClientConfig>, String, Duration)>,
        );
        let prepare = || -> Result<Prepared, Error> {
            let target = match (&options.address, &options.host, options.port) {
                (Some(a), None, None) => match a.strip_prefix(tcpserver_core::UNIX_PREFIX) {
                    Some(path) => {
                        Target::Unix(tcpserver_core::parse_listen_address(a).map(|_| path.into())?)
                    }
                    None => {
                        let (host, port) = tcpserver_core::split_host_port(a)?;
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
                        .unwrap_or(tcpserver_core::tls::DEFAULT_HANDSHAKE_TIMEOUT);
                    Some((
                        tcpserver_core::tls::client_config(&settings)?,
                        name,
                        timeout,
                    ))
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
            self.ops.conns.clone(),
            self.sink.clone(),
            self.abort.clone(),
            self.ops.drive,
        );
        let cancel = CancellationToken::new();
        lock(&self.attempts).insert(tag, cancel.clone());
        let attempts = self.attempts.clone();
        runtime().spawn(async move {
            let attempt = async {
                let conn = match &target {
                    Target::Tcp(host, port) => {
                        tcpserver_core::connect(host, *port, &opts, id, abort).await?
                    }
                    Target::Unix(path) => {
                        tcpserver_core::connect_unix(path, &opts, id, abort).await?
                    }
                };
                let start = match tls {
                    None => TlsStart::None,
                    Some((config, name, timeout)) => {
                        let session =
                            tcpserver_core::tls::connect(conn.stream(), config, &name, timeout)
                                .await?;
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
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where an outbound connection goes.
enum Target {
    Tcp(String, u16),
    Unix(std::path::PathBuf),
}
