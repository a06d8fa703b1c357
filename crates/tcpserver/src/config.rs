//! Server configuration: `&mut self` setters, `Default`, and one `validate()` that every
//! front end (Rust users and the Node binding alike) goes through. The ranges of the
//! per-connection settings ([`DriveOptions::validate`], [`check_timeout`]) live here too: this
//! file is the one place for every option's range.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::proxy_protocol::ProxyProtocol;

mod settings;
pub use settings::{MAX_HIGH_WATER_MARK, MAX_TIMEOUT, MIN_HIGH_WATER_MARK, check_timeout};

/// Options applied to listening sockets before `bind`/`listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerOptions {
    /// `None`: the default, where the server's own accept loops share the port but a socket
    /// of anyone else already on it makes `bind` fail (`EADDRINUSE`), as with `node:net`.
    /// `Some(true)`: explicitly shared with other processes (hand-over). `Some(false)`: off.
    pub(crate) reuse_port: Option<bool>,
    pub(crate) loops: Option<usize>,
    pub(crate) fast_open: Option<u32>,
    pub(crate) defer_accept: Option<u32>,
    pub(crate) backlog: u32,
    pub(crate) ipv6_only: bool,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            reuse_port: None,
            loops: None,
            fast_open: None,
            defer_accept: None,
            backlog: 511,
            ipv6_only: false,
        }
    }
}

/// TCP keep-alive probe settings for accepted sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepAlive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`); `None` keeps the OS default.
    pub time: Option<Duration>,
    /// Time between probes (`TCP_KEEPINTVL`); `None` keeps the OS default.
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`); `None` keeps the OS default.
    pub retries: Option<u32>,
}

impl KeepAlive {
    /// Checks the probe settings: times of 1 to 32767 seconds, 1 to 127 probes (what Linux
    /// accepts). [`ServerConfig::validate`] and the per-connection setters call it.
    pub fn validate(&self) -> Result<()> {
        let secs_ok = |d: Option<Duration>| d.is_none_or(|d| (1..=32767).contains(&d.as_secs()));
        if !secs_ok(self.time) {
            return Err(Error::range(
                "keepAlive.initialDelay",
                "must be between 1 and 32767 seconds",
            ));
        }
        if !secs_ok(self.interval) {
            return Err(Error::range(
                "keepAlive.interval",
                "must be between 1 and 32767 seconds",
            ));
        }
        if self.retries.is_some_and(|r| !(1..=127).contains(&r)) {
            return Err(Error::range("keepAlive.count", "must be between 1 and 127"));
        }
        Ok(())
    }
}

/// Options applied to every accepted socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketOptions {
    pub(crate) no_delay: bool,
    pub(crate) keep_alive: Option<KeepAlive>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            no_delay: true,
            keep_alive: None,
        }
    }
}

/// What the server does with a new connection while `max_connections` are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimitPolicy {
    /// Stop accepting: the kernel's listen backlog holds new clients until a slot frees
    /// (clients wait; when the backlog is full the kernel drops their SYNs and they retry).
    #[default]
    Hold,
    /// Accept and close at once, counted in [`Stats::refused_max_connections`]: clients learn
    /// immediately that the server is full, and a flood cannot fill the backlog.
    ///
    /// [`Stats::refused_max_connections`]: crate::Stats::refused_max_connections
    Refuse,
}

/// A cap on concurrent connections per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerIpLimit {
    /// Connections one address (or IPv6 prefix) may hold open; more are refused.
    pub max: u32,
    /// IPv6 clients are grouped by this prefix length: one host usually owns a whole /64, so
    /// counting single addresses would let it open `max` connections per address.
    pub ipv6_prefix: u8,
}

/// The whole server configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    pub(crate) addresses: Vec<SocketAddr>,
    pub(crate) listener: ListenerOptions,
    pub(crate) socket: SocketOptions,
    pub(crate) max_connections: Option<usize>,
    pub(crate) limit_policy: LimitPolicy,
    pub(crate) per_ip: Option<PerIpLimit>,
    pub(crate) max_accept_connections: Option<u64>,
    pub(crate) proxy_protocol: Option<ProxyProtocol>,
    pub(crate) inherited: Vec<i32>,
    pub(crate) unix_paths: Vec<PathBuf>,
    pub(crate) unix_permissions: Option<u32>,
}

/// Default IPv6 grouping of [`ServerConfig::max_connections_per_ip`].
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Upper bound of `loops`: more accept loops than this only waste file descriptors.
pub const MAX_LOOPS: usize = 1024;

impl ServerConfig {
    /// A configuration that listens on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let mut config = Self::default();
        config.address(addr);
        config
    }

    /// Adds a listen address (port 0 picks a free port).
    pub fn address(&mut self, addr: SocketAddr) -> &mut Self {
        self.addresses.push(addr);
        self
    }

    /// Adds a Unix domain socket to listen on (Unix only). A stale socket file at `path`
    /// (one nobody accepts on) is replaced; a live socket or any other file is refused with
    /// `EADDRINUSE`. The file is removed at shutdown. Of the listener options only `backlog`
    /// applies: one accept loop runs per path, and the TCP options (`reuse_port`, `loops`,
    /// `fast_open`, `defer_accept`, `no_delay`, `keep_alive`) concern TCP sockets only.
    pub fn unix_address(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.unix_paths.push(path.into());
        self
    }

    /// Permission bits (like `0o660`) given to Unix socket files after `bind` (connecting
    /// needs write permission). Without it the process umask decides.
    pub fn unix_permissions(&mut self, mode: u32) -> &mut Self {
        self.unix_permissions = Some(mode);
        self
    }

    /// The configured Unix domain socket paths.
    pub fn unix_addresses(&self) -> &[PathBuf] {
        &self.unix_paths
    }

    /// Also accepts on `fd`, a listening TCP socket this process inherited (from a process
    /// manager, a parent handing over during a restart, or systemd: see
    /// [`systemd_listen_fds`](crate::systemd_listen_fds)). The server owns it from
    /// [`Server::bind`](crate::Server::bind) on and closes it at shutdown. Listener options
    /// (`reuse_port`, `backlog`, `fast_open`...) are the creator's; one accept loop runs on it.
    /// Unix only.
    pub fn listener_fd(&mut self, fd: i32) -> &mut Self {
        self.inherited.push(fd);
        self
    }

    /// `SO_REUSEPORT` on listening sockets, asked for explicitly.
    ///
    /// Left unset (the default), the server's own accept loops share each port (`loops`), but
    /// a port some other socket already holds is refused with `EADDRINUSE`, as `node:net`
    /// does: the first socket of each address is bound *without* `SO_REUSEPORT` (so `bind`
    /// fails if anyone holds the port) and gets the option only after `bind`, before
    /// `listen`, so that the server's further loop sockets (and a later process that asks for
    /// `reuse_port(true)` itself, for a hand-over) can join it.
    ///
    /// `true` binds with `SO_REUSEPORT` from the start: the port is shared with any socket of
    /// the same user that has the option too (a predecessor or successor process during a
    /// restart; the kernel spreads clients over all of them). `false` turns it off (then
    /// `loops` must be 1).
    pub fn reuse_port(&mut self, on: bool) -> &mut Self {
        self.listener.reuse_port = Some(on);
        self
    }

    /// Whether accept loops share ports through `SO_REUSEPORT` (unless turned off).
    pub(crate) fn shares_port(&self) -> bool {
        self.listener.reuse_port != Some(false)
    }

    /// Number of accept loops per address, each with its own `SO_REUSEPORT` socket so the
    /// kernel spreads connections. Default: the number of CPUs this process may run on.
    pub fn loops(&mut self, loops: usize) -> &mut Self {
        self.listener.loops = Some(loops);
        self
    }

    /// `TCP_FASTOPEN` with this queue length (0 turns it off).
    pub fn fast_open(&mut self, queue_len: u32) -> &mut Self {
        self.listener.fast_open = (queue_len > 0).then_some(queue_len);
        self
    }

    /// `TCP_DEFER_ACCEPT` in seconds (Linux): accept only once the client has sent data.
    /// Never use it for protocols where the server speaks first.
    pub fn defer_accept(&mut self, seconds: u32) -> &mut Self {
        self.listener.defer_accept = (seconds > 0).then_some(seconds);
        self
    }

    /// Listen backlog (default 511, like Node; capped by `net.core.somaxconn`).
    pub fn backlog(&mut self, backlog: u32) -> &mut Self {
        self.listener.backlog = backlog;
        self
    }

    /// `IPV6_V6ONLY` for IPv6 listeners (default off: `[::]` is dual-stack).
    pub fn ipv6_only(&mut self, on: bool) -> &mut Self {
        self.listener.ipv6_only = on;
        self
    }

    /// `TCP_NODELAY` on accepted sockets (default on).
    pub fn no_delay(&mut self, on: bool) -> &mut Self {
        self.socket.no_delay = on;
        self
    }

    /// TCP keep-alive on accepted sockets (default off).
    pub fn keep_alive(&mut self, keep_alive: Option<KeepAlive>) -> &mut Self {
        self.socket.keep_alive = keep_alive;
        self
    }

    /// Stop accepting while this many connections are active; resume below it. The kernel's
    /// backlog holds new clients meanwhile.
    pub fn max_connections(&mut self, max: usize) -> &mut Self {
        self.max_connections = Some(max);
        self
    }

    /// What happens to new clients while `max_connections` are open (default
    /// [`LimitPolicy::Hold`]).
    pub fn limit_policy(&mut self, policy: LimitPolicy) -> &mut Self {
        self.limit_policy = policy;
        self
    }

    /// At most `max` concurrent connections per client address; IPv6 addresses are grouped
    /// by `ipv6_prefix` bits (`None`: [`DEFAULT_IPV6_PREFIX`]). A client over its share is
    /// accepted and closed at once (holding it would let one address fill the backlog for
    /// everyone), counted in [`Stats::refused_per_ip`](crate::Stats::refused_per_ip).
    /// IPv4-mapped IPv6 clients count as their IPv4 address.
    pub fn max_connections_per_ip(&mut self, max: u32, ipv6_prefix: Option<u8>) -> &mut Self {
        self.per_ip = Some(PerIpLimit {
            max,
            ipv6_prefix: ipv6_prefix.unwrap_or(DEFAULT_IPV6_PREFIX),
        });
        self
    }

    /// Expects a PROXY protocol header (v1 or v2) at the start of every connection, as sent by
    /// HAProxy's `send-proxy`/`send-proxy-v2`, nginx or cloud load balancers. Connections from
    /// sources outside `trusted` are refused at once; a trusted source that sends no valid
    /// header in time is refused too. Each refusal is counted by reason in
    /// [`Stats::proxy_failures`](crate::Stats::proxy_failures). The header's client address
    /// becomes the connection's `peer_addr` (the balancer's stays in `proxied_by`), and
    /// `max_connections_per_ip` counts real clients.
    pub fn proxy_protocol(&mut self, proxy: ProxyProtocol) -> &mut Self {
        self.proxy_protocol = Some(proxy);
        self
    }

    /// After this many accepted connections the server shuts down gracefully by itself.
    pub fn max_accept_connections(&mut self, max: u64) -> &mut Self {
        self.max_accept_connections = Some(max);
        self
    }

    /// The configured addresses.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Accept loops per address after defaults are applied.
    pub fn effective_loops(&self) -> usize {
        self.listener.loops.unwrap_or_else(default_loops)
    }

    /// Checks every value once; the Node binding relies on this too.
    pub fn validate(&self) -> Result<()> {
        if self.addresses.is_empty() && self.inherited.is_empty() && self.unix_paths.is_empty() {
            return Err(Error::value(
                "address",
                "at least one address (or inherited descriptor) is required",
            ));
        }
        if !cfg!(unix) && !self.unix_paths.is_empty() {
            return Err(Error::Unsupported { option: "address" });
        }
        if self.unix_permissions.is_some_and(|m| m > 0o7777) {
            return Err(Error::range(
                "unixPermissions",
                "must be a file mode between 0 and 0o7777",
            ));
        }
        if self.proxy_protocol.is_some() && !self.unix_paths.is_empty() {
            // Its trust list and the client addresses it carries are IP addresses.
            return Err(Error::value(
                "proxyProtocol",
                "applies to TCP listeners only; listen on the Unix sockets in another server",
            ));
        }
        let l = &self.listener;
        if let Some(loops) = l.loops {
            if !(1..=MAX_LOOPS).contains(&loops) {
                return Err(Error::range(
                    "loops",
                    format!("must be between 1 and {MAX_LOOPS}"),
                ));
            }
            if loops > 1 && l.reuse_port == Some(false) {
                // Several loops on one socket would also work, but the kernel spreads
                // connections only across separate SO_REUSEPORT sockets; say so instead of
                // silently giving a slower setup.
                return Err(Error::value("loops", "loops > 1 requires reusePort: true"));
            }
        }
        if !(1..=65535).contains(&l.backlog) {
            return Err(Error::range("backlog", "must be between 1 and 65535"));
        }
        if let Some(q) = l.fast_open
            && q > 65535
        {
            return Err(Error::range(
                "fastOpen",
                "queue length must be between 0 and 65535",
            ));
        }
        if let Some(s) = l.defer_accept
            && s > 3600
        {
            return Err(Error::range(
                "deferAccept",
                "must be between 0 and 3600 seconds",
            ));
        }
        if let Some(k) = &self.socket.keep_alive {
            k.validate()?;
        }
        if self.max_connections == Some(0) {
            return Err(Error::range("maxConnections", "must be at least 1"));
        }
        if let Some(p) = self.per_ip {
            if p.max == 0 {
                return Err(Error::range("maxConnectionsPerIp", "must be at least 1"));
            }
            if !(1..=128).contains(&p.ipv6_prefix) {
                return Err(Error::range(
                    "maxConnectionsPerIp.ipv6Prefix",
                    "must be between 1 and 128",
                ));
            }
        }
        if let Some(p) = &self.proxy_protocol {
            if p.trusted.is_empty() {
                return Err(Error::value(
                    "proxyProtocol.trusted",
                    "name at least one trusted network",
                ));
            }
            if p.header_timeout.is_zero() || p.header_timeout > MAX_TIMEOUT {
                return Err(Error::range(
                    "proxyProtocol.timeout",
                    format!("must be >= 1 and <= {}", MAX_TIMEOUT.as_millis()),
                ));
            }
        }
        if self.max_accept_connections == Some(0) {
            return Err(Error::range("maxAcceptConnections", "must be at least 1"));
        }
        Ok(())
    }
}

/// One accept loop per CPU this process may run on (respects `taskset`/cgroups).
pub fn default_loops() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{DriveOptions, TimeoutKind};
    use crate::tls::{ClientTlsSettings, TlsSettings};

    fn base() -> ServerConfig {
        ServerConfig::new("127.0.0.1:0".parse().unwrap())
    }

    #[test]
    fn defaults_validate() {
        let c = base();
        c.validate().unwrap();
        assert_eq!(c.listener.reuse_port, None);
        assert!(c.shares_port());
        assert!(c.socket.no_delay);
        assert_eq!(c.listener.backlog, 511);
        assert!(c.effective_loops() >= 1);
    }

    #[test]
    fn each_range_names_its_option() {
        type Set = fn(&mut ServerConfig);
        let cases: [(&str, Set); 14] = [
            ("loops", |c| _ = c.loops(0)),
            ("loops", |c| _ = c.loops(MAX_LOOPS + 1)),
            ("loops", |c| _ = c.loops(2).reuse_port(false)),
            ("backlog", |c| _ = c.backlog(0)),
            ("backlog", |c| _ = c.backlog(70000)),
            ("fastOpen", |c| _ = c.fast_open(70000)),
            ("deferAccept", |c| _ = c.defer_accept(4000)),
            ("maxConnections", |c| _ = c.max_connections(0)),
            ("maxAcceptConnections", |c| _ = c.max_accept_connections(0)),
            ("maxConnectionsPerIp", |c| {
                _ = c.max_connections_per_ip(0, None)
            }),
            ("maxConnectionsPerIp.ipv6Prefix", |c| {
                _ = c.max_connections_per_ip(1, Some(0))
            }),
            ("maxConnectionsPerIp.ipv6Prefix", |c| {
                _ = c.max_connections_per_ip(1, Some(129))
            }),
            ("keepAlive.count", |c| {
                _ = c.keep_alive(Some(KeepAlive {
                    retries: Some(0),
                    ..Default::default()
                }))
            }),
            ("keepAlive.initialDelay", |c| {
                _ = c.keep_alive(Some(KeepAlive {
                    time: Some(Duration::ZERO),
                    ..Default::default()
                }))
            }),
        ];
        for (option, set) in cases {
            let mut c = base();
            set(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.option(), Some(option), "{err}");
        }
        assert_eq!(
            ServerConfig::default().validate().unwrap_err().option(),
            Some("address")
        );
    }

    #[test]
    fn drive_options_ranges_name_their_option() {
        DriveOptions::default().validate().unwrap();
        for high_water_mark in [MIN_HIGH_WATER_MARK - 1, MAX_HIGH_WATER_MARK + 1] {
            let o = DriveOptions {
                high_water_mark,
                ..DriveOptions::default()
            };
            assert_eq!(o.validate().unwrap_err().option(), Some("highWaterMark"));
        }
        for kind in TimeoutKind::ALL {
            let o = DriveOptions::default().with_timeout(kind, Some(MAX_TIMEOUT));
            o.validate().unwrap();
            let o = o.with_timeout(kind, Some(MAX_TIMEOUT + Duration::from_millis(1)));
            let err = o.validate().unwrap_err();
            assert_eq!(err.option(), Some(kind.option()));
            assert_eq!(
                err.kind(),
                crate::ErrorKind::InvalidArgument(crate::InvalidKind::Range)
            );
        }
    }

    #[test]
    fn tls_ranges_name_their_option() {
        use crate::tls::PemIdentity;
        let base = || {
            TlsSettings::new(PemIdentity {
                cert: Vec::new(),
                key: Vec::new(),
            })
        };
        base().validate().unwrap();
        type Set = fn(&mut TlsSettings);
        let cases: [(&str, Set); 7] = [
            ("tls.alpn", |s| s.alpn = vec![Vec::new()]),
            ("tls.alpn", |s| s.alpn = vec![vec![b'a'; 256]]),
            ("tls.handshakeTimeout", |s| {
                s.handshake_timeout = Duration::ZERO
            }),
            ("tls.handshakeTimeout", |s| {
                s.handshake_timeout = MAX_TIMEOUT + Duration::from_millis(1)
            }),
            ("tls.maxHandshakes", |s| s.max_handshakes = 0),
            ("tls.ca", |s| s.request_client_cert = true),
            ("tls.ca", |s| s.require_client_cert = true),
        ];
        for (option, set) in cases {
            let mut s = base();
            set(&mut s);
            assert_eq!(s.validate().unwrap_err().option(), Some(option));
        }
        let client = ClientTlsSettings {
            alpn: vec![Vec::new()],
            ..Default::default()
        };
        assert_eq!(client.validate().unwrap_err().option(), Some("tls.alpn"));
        let client = ClientTlsSettings {
            handshake_timeout: Some(Duration::ZERO),
            ..Default::default()
        };
        let err = client.validate().unwrap_err();
        assert_eq!(err.option(), Some("tls.handshakeTimeout"));
    }

    #[test]
    fn timeout_kinds_index_in_their_listed_order() {
        for (i, kind) in TimeoutKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
            assert_eq!(TimeoutKind::from_index(i), Some(kind));
        }
        assert_eq!(TimeoutKind::from_index(TimeoutKind::ALL.len()), None);
    }
}
