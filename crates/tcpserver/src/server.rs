//! The server: a cheap `Clone` handle over shared state, with an explicit lifecycle.
//! Stop accepting at once (listeners closed, port free), wait for handlers, and at a deadline
//! abort the rest. `CancellationToken`s and `TaskTracker`s keep that logic in one place.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept;
use crate::addr::Address;
use crate::config::{ServerConfig, SocketOptions};
use crate::connection::{Connection, ConnectionInfo};
#[cfg(target_os = "linux")]
use crate::driver::{Admit, Admitted, DriveOptions, LocalLoop};
use crate::error::Result;
use crate::gate::{Admission, Gate};
use crate::lease::Lease;
use crate::listener::{self, Listener};
use crate::panic::CatchUnwind;
use crate::socket::apply_socket_options;
#[cfg(target_os = "linux")]
use crate::socket::apply_socket_options_on;
use crate::stats::{Counters, Stats};
use crate::stream::Stream;
#[cfg(target_os = "linux")]
use socket2::SockRef;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An accepted connection on its way to its handler.
struct Accepted {
    stream: Stream,
    info: ConnectionInfo,
    admission: Admission,
}
type Handler = dyn Fn(Connection) -> BoxFuture + Send + Sync;

/// What a shutdown found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections active when shutdown began that finished by themselves.
    pub completed: u64,
    /// Connections closed by force (deadline reached, or halt).
    pub forced: u64,
}

/// A running server. Cloning it is cheap; every clone controls the same server.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addresses", &self.inner.addresses)
            .field("unix_paths", &self.inner.unix_paths)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    addresses: Vec<SocketAddr>,
    unix_paths: Vec<PathBuf>,
    counters: Arc<Counters>,
    gate: Arc<Gate>,
    stop_accepting: CancellationToken,
    abort: CancellationToken,
    loops: TaskTracker,
    connections: TaskTracker,
    handler: Box<Handler>,
    socket: SocketOptions,
    max_accept: Option<u64>,
    active_at_shutdown: AtomicU64,
    shutdown_started: AtomicBool,
    /// The consumer loop accepting for this server, if one does (`bind_on_loop`). It holds
    /// the server too (its listeners' admission) until the server stops accepting.
    #[cfg(target_os = "linux")]
    local: std::sync::OnceLock<Arc<LocalLoop>>,
}

impl Server {
    /// Opens every listener of `config` and starts its accept loops; each accepted connection
    /// runs `handler` in its own task and is closed when the handler's future completes.
    /// Must be called inside a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() -> tcpserver_core::Result<()> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let config = tcpserver_core::ServerConfig::new("127.0.0.1:0".parse().unwrap());
    /// let server = tcpserver_core::Server::bind(&config, |mut conn| async move {
    ///     let mut buf = [0u8; 1024];
    ///     while let Ok(n @ 1..) = conn.read(&mut buf).await {
    ///         if conn.write_all(&buf[..n]).await.is_err() { break }
    ///     }
    /// })?;
    /// println!("listening on {:?}", server.local_addrs());
    /// server.shutdown(Some(std::time::Duration::from_secs(5))).await;
    /// # Ok(()) }
    /// ```
    pub fn bind<F, Fut>(config: &ServerConfig, handler: F) -> Result<Self>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::bind_with(config, handler, None)
    }

    /// [`Server::bind`], with the TCP listeners accepting on the consumer loop `lp` (Linux):
    /// their clients are accepted, admitted and served on the loop's thread, without a task or
    /// a thread hop, with `opts`. Only when the server's admission decides at once (no
    /// `maxConnections` under [`LimitPolicy::Hold`](crate::LimitPolicy::Hold), no PROXY
    /// protocol); otherwise, and for Unix sockets, `handler` serves the connections as in
    /// [`Server::bind`] (it may [adopt](LocalLoop::adopt) them into the loop).
    #[cfg(target_os = "linux")]
    pub fn bind_on_loop<F, Fut>(
        config: &ServerConfig,
        lp: &Arc<LocalLoop>,
        opts: DriveOptions,
        handler: F,
    ) -> Result<Self>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::bind_with(config, handler, Some((lp, opts)))
    }

    fn bind_with<F, Fut>(
        config: &ServerConfig,
        handler: F,
        #[cfg(target_os = "linux")] on_loop: Option<(&Arc<LocalLoop>, DriveOptions)>,
        #[cfg(not(target_os = "linux"))] _on_loop: Option<()>,
    ) -> Result<Self>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        config.validate()?;
        let listeners = listener::open_all(config)?;
        let mut addresses: Vec<SocketAddr> = Vec::new();
        let mut unix_paths: Vec<PathBuf> = Vec::new();
        for (addr, _) in &listeners {
            match addr {
                Address::Ip(a) if !addresses.contains(a) => addresses.push(*a),
                Address::Unix(p) => unix_paths.push(p.clone()),
                Address::Ip(_) => {}
            }
        }
        let counters = Arc::new(Counters::default());
        let inner = Arc::new(Inner {
            addresses,
            unix_paths,
            gate: Arc::new(Gate::new(config, counters.clone())),
            counters,
            stop_accepting: CancellationToken::new(),
            abort: CancellationToken::new(),
            loops: TaskTracker::new(),
            connections: TaskTracker::new(),
            handler: Box::new(move |conn| Box::pin(handler(conn))),
            socket: config.socket.clone(),
            max_accept: config.max_accept_connections,
            active_at_shutdown: AtomicU64::new(0),
            shutdown_started: AtomicBool::new(false),
            #[cfg(target_os = "linux")]
            local: std::sync::OnceLock::new(),
        });
        for (addr, l) in listeners {
            #[cfg(target_os = "linux")]
            let l = match (on_loop, l) {
                (Some((lp, opts)), Listener::Tcp(tcp)) if inner.gate.decides_at_once() => {
                    if inner.local.set(lp.clone()).is_ok() {
                        inner.loops.spawn(watch_loop(inner.clone(), lp.clone()));
                    }
                    lp.listen(tcp, &addr, inner.clone(), opts)?;
                    continue;
                }
                (_, l) => l,
            };
            let server = inner.clone();
            let dispatch = move |stream, peer, local: Option<&Address>, admission| {
                server.dispatch(stream, peer, local, admission);
            };
            let (gate, stop) = (inner.gate.clone(), inner.stop_accepting.clone());
            let counters = inner.counters.clone();
            inner
                .loops
                .spawn(accept::run(l, addr, gate, counters, stop, dispatch));
        }
        inner.loops.close();
        Ok(Self { inner })
    }

    /// The bound TCP addresses, with the real port where 0 was asked for.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.inner.addresses
    }

    /// The paths of the Unix domain sockets listened on. Their files are removed once
    /// [`Server::stop_accepting`] (or a shutdown) closed the listeners.
    pub fn unix_paths(&self) -> &[PathBuf] {
        &self.inner.unix_paths
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Connections whose handler is running.
    pub fn active_connections(&self) -> u64 {
        self.inner.counters.active.load(Relaxed)
    }

    /// Connections accepted so far.
    pub fn accepted_connections(&self) -> u64 {
        self.inner.counters.accepted.load(Relaxed)
    }

    /// `true` until shutdown or halt began (or `maxAcceptConnections` was reached).
    pub fn is_accepting(&self) -> bool {
        !self.inner.stop_accepting.is_cancelled()
    }

    /// Stops calling `accept` (the kernel backlog holds new clients) until [`Server::resume`].
    pub fn pause(&self) {
        self.inner.gate.pause();
    }

    /// Undoes [`Server::pause`].
    pub fn resume(&self) {
        self.inner.gate.resume();
    }

    /// Stops accepting and waits until every listening socket is closed, so the port is free
    /// when this returns. Running handlers are not touched.
    pub async fn stop_accepting(&self) {
        self.inner.begin_shutdown();
        self.inner.loops.wait().await;
    }

    /// Graceful shutdown: stop accepting at once, wait for running handlers, and when
    /// `deadline` passes abort those still running. `None` waits forever.
    pub async fn shutdown(&self, deadline: Option<Duration>) -> ShutdownReport {
        self.stop_accepting().await;
        if let Some(deadline) = deadline
            && tokio::time::timeout(deadline, self.inner.connections.wait())
                .await
                .is_err()
        {
            self.inner.abort_all();
        }
        self.closed().await
    }

    /// Stops accepting and aborts every connection now.
    pub async fn halt(&self) -> ShutdownReport {
        self.stop_accepting().await;
        self.inner.abort_all();
        self.closed().await
    }

    /// Completes once the server stopped accepting (by shutdown, halt or
    /// `maxAcceptConnections`) and every connection task finished.
    pub async fn closed(&self) -> ShutdownReport {
        self.inner.stop_accepting.cancelled().await;
        self.inner.loops.wait().await;
        self.inner.connections.wait().await;
        let forced = self.inner.counters.forced.load(Relaxed);
        let at_start = self.inner.active_at_shutdown.load(Relaxed);
        ShutdownReport {
            completed: at_start.saturating_sub(forced),
            forced,
        }
    }
}

impl Inner {
    /// Aborts every running connection; they count as forced.
    fn abort_all(&self) {
        if !self.abort.is_cancelled() {
            self.counters
                .forced
                .fetch_add(self.counters.active.load(SeqCst), SeqCst);
            self.abort.cancel();
            // The loop's own connections have no task to cancel.
            #[cfg(target_os = "linux")]
            if let Some(lp) = self.local.get() {
                lp.abort_all();
            }
        }
    }

    fn begin_shutdown(&self) {
        if !self.shutdown_started.swap(true, SeqCst) {
            self.active_at_shutdown
                .store(self.counters.active.load(SeqCst), SeqCst);
            self.stop_accepting.cancel();
            self.connections.close();
        }
    }

    /// Serves an accepted connection. `local` is its local address when the listener's own
    /// says it (a specific IP or a path), which saves a `getsockname` per connection.
    fn dispatch(
        self: &Arc<Self>,
        stream: Stream,
        peer: Address,
        local: Option<&Address>,
        admission: Admission,
    ) {
        let Some(id) = self.count_in() else {
            return;
        };
        apply_socket_options(&stream, &self.socket);
        let local_addr = match local {
            Some(local) => local.clone(),
            None => stream.local_addr().unwrap_or_else(|_| peer.clone()),
        };
        let info = ConnectionInfo::starting_now(id, peer, local_addr);
        let accepted = Box::new(Accepted {
            stream,
            info,
            admission,
        });
        self.connections.spawn(Self::serve(self.clone(), accepted));
    }

    /// Counts an accepted client in `accepted` and `active`, and returns its id; `None`: it
    /// is past `maxAcceptConnections` (counted), to be closed at once. The last one allowed
    /// begins the shutdown.
    fn count_in(&self) -> Option<u64> {
        Some(match self.max_accept {
            None => {
                self.counters.active.fetch_add(1, SeqCst);
                self.counters.accepted.fetch_add(1, Relaxed) + 1
            }
            Some(max) => {
                match self
                    .counters
                    .accepted
                    .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
                {
                    Ok(prev) => {
                        // Counted before a shutdown it triggers snapshots the active count.
                        self.counters.active.fetch_add(1, SeqCst);
                        if prev + 1 == max {
                            self.begin_shutdown();
                        }
                        prev + 1
                    }
                    Err(_) => {
                        // A racing loop accepted past the limit: close it at once.
                        self.counters.refused_max_accept.fetch_add(1, Relaxed);
                        return None;
                    }
                }
            }
        })
    }

    /// Runs one connection: its PROXY protocol header if any, then the handler, until the
    /// handler completes, panics, or a forced shutdown aborts it; then gives its place back.
    ///
    /// This future lives as long as the connection, so it holds only boxes: a future keeps
    /// its arguments for its whole life, and the socket and facts (hundreds of bytes) would
    /// stay in it, dead, after they became the handler's `Connection`.
    async fn serve(self: Arc<Self>, accepted: Box<Accepted>) {
        let lease = Arc::new(Lease::new(self.counters.clone()));
        // Boxed for the same reason: admitting holds the socket and facts for a while (across
        // a PROXY header), and only the box's pointer stays in this future's layout.
        let admitted = Box::pin(self.admit(accepted, &lease)).await;
        if let Some(conn) = admitted {
            self.run(Box::new(conn)).await;
        }
        lease.give_back();
    }

    /// The handler, until it completes, panics, or a forced shutdown aborts it.
    async fn run(&self, conn: Box<Connection>) {
        // The handler's synchronous part (creating its future) is under catch_unwind too.
        let call = std::panic::AssertUnwindSafe(|| (self.handler)(*conn));
        let Ok(future) = std::panic::catch_unwind(call) else {
            self.counters.panics.fetch_add(1, Relaxed);
            return;
        };
        tokio::select! {
            biased;
            outcome = CatchUnwind(future) => {
                if outcome.is_err() {
                    self.counters.panics.fetch_add(1, Relaxed);
                }
            }
            // Counted as forced by `abort_all`; dropping the future closes the connection.
            () = self.abort.cancelled() => {}
        }
    }

    /// The connection as its handler gets it, after its PROXY header if the server expects
    /// one (`None`: closed for it, counted, or the server aborted meanwhile).
    async fn admit(&self, accepted: Box<Accepted>, lease: &Arc<Lease>) -> Option<Connection> {
        let Accepted {
            mut stream,
            mut info,
            mut admission,
        } = *accepted;
        if self.gate.expects_proxy_header() {
            // Boxed: inline, the header's reading state would enlarge every connection's task.
            let header = CatchUnwind(Box::pin(self.gate.proxy_header(
                &mut stream,
                &mut info,
                &mut admission,
                &self.stop_accepting,
            )));
            let admitted = tokio::select! {
                biased;
                r = header => r,
                () = self.abort.cancelled() => return None,
            };
            match admitted {
                Ok(true) => {}
                Ok(false) => return None,
                Err(_) => {
                    self.counters.panics.fetch_add(1, Relaxed);
                    return None;
                }
            }
        }
        lease.hold(admission);
        Some(
            Connection::new(
                stream,
                info,
                self.abort.clone(),
                self.stop_accepting.clone(),
            )
            .with_lease(lease.clone()),
        )
    }
}

/// Accepting on a consumer loop: the loop checks [`Admit::accepting`] before each accept;
/// this task tells it when a pause ends, and closes its listeners when the server stops
/// accepting (which also ends the loop's hold on the server).
#[cfg(target_os = "linux")]
async fn watch_loop(inner: Arc<Inner>, lp: Arc<LocalLoop>) {
    loop {
        tokio::select! {
            biased;
            () = inner.stop_accepting.cancelled() => break,
            () = inner.gate.pausing() => {}
        }
        tokio::select! {
            biased;
            () = inner.stop_accepting.cancelled() => break,
            () = inner.gate.unpaused() => {}
        }
        lp.accept_again();
    }
    lp.close_listeners();
}

#[cfg(target_os = "linux")]
impl Admit for Inner {
    fn accepting(&self) -> bool {
        !self.stop_accepting.is_cancelled() && !self.gate.is_paused()
    }

    fn admit(&self, sock: SockRef<'_>, peer: Address, local: Option<&Address>) -> Option<Admitted> {
        let admission = self.gate.admit_now(&peer)?;
        let id = self.count_in()?;
        let local_addr = match local {
            Some(local) => local.clone(),
            None => sock
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map_or_else(|| peer.clone(), Address::Ip),
        };
        apply_socket_options_on(sock, &self.socket);
        let lease = Arc::new(Lease::new(self.counters.clone()));
        lease.hold(admission);
        Some(Admitted {
            info: ConnectionInfo::starting_now(id, peer, local_addr),
            lease,
            token: self.connections.token(),
            abort: self.abort.clone(),
        })
    }

    fn accept_error(&self, errno: i32) {
        self.counters.accept_error(errno);
    }
}
