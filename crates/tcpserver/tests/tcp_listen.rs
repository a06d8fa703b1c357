//! Listening: addresses and ports, `SO_REUSEPORT` loops, bind errors, Linux listener options,
//! and option validation.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tcpserver_core::{Error, ErrorKind, InvalidKind, KeepAlive, MAX_LOOPS, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{assert_echoes, config, connect, echo_server, round_trip, v4, v6, within};

#[tokio::test]
async fn ipv4_port_zero_reports_the_real_port() {
    let _serial = support::one_at_a_time().await;
    let server = echo_server(&config(v4()));
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 1);
    assert_eq!(addrs[0].ip(), v4().ip());
    assert_ne!(addrs[0].port(), 0);
    assert_echoes(addrs[0]).await;
    server.halt().await;
}

#[tokio::test]
async fn ipv6_loopback_port_zero_reports_the_real_port() {
    let _serial = support::one_at_a_time().await;
    let server = echo_server(&config(v6()));
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 1);
    assert!(addrs[0].is_ipv6());
    assert_eq!(addrs[0].ip(), v6().ip());
    assert_ne!(addrs[0].port(), 0);
    assert_echoes(addrs[0]).await;
    server.halt().await;
}

#[tokio::test]
async fn one_server_serves_two_addresses() {
    let _serial = support::one_at_a_time().await;
    let mut config = config(v4());
    config.address(v6());
    let server = echo_server(&config);
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    assert!(addrs.iter().all(|a| a.port() != 0));
    for addr in &addrs {
        assert_echoes(*addr).await;
    }
    assert_eq!(server.accepted_connections(), 2);
    server.halt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_port_loops_share_the_port_and_all_accept() {
    let _serial = support::one_at_a_time().await;
    let mut config = ServerConfig::new(v4());
    config.loops(2).reuse_port(true);
    let server = echo_server(&config);
    // Both loops' sockets are reported as one address: the second reused the first's port.
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    let addr = addrs[0];

    #[cfg(target_os = "linux")]
    {
        let sockets = support::listeners_on(addr);
        assert_eq!(sockets.len(), 2, "expected two listening sockets on {addr}");
        assert!(sockets.iter().all(|s| s.reuse_port().unwrap()));
    }

    // The kernel hashes each client to one of the two sockets. If a loop were not accepting,
    // the clients that hash to its socket would wait in its backlog and never be echoed; with
    // 64 clients the chance that all land on the same socket is 2^-63.
    let mut clients = Vec::new();
    for _ in 0..64 {
        clients.push(connect(addr).await);
    }
    for client in &mut clients {
        round_trip(client, b"hello").await;
    }
    assert_eq!(server.accepted_connections(), 64);
    server.halt().await;
}

#[tokio::test]
async fn bind_without_reuse_port_on_a_busy_port_is_eaddrinuse() {
    let _serial = support::one_at_a_time().await;
    // SO_REUSEPORT shares a port only when every socket on it has the option.
    for (first_reuses, second_reuses) in [(true, false), (false, true)] {
        let mut first = config(v4());
        first.reuse_port(first_reuses);
        let first = echo_server(&first);
        let busy = first.local_addrs()[0];

        let mut second = config(busy);
        second.reuse_port(second_reuses);
        let err = Server::bind(&second, support::echo).unwrap_err();
        assert!(matches!(err, Error::Listen { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Os);
        assert_eq!(err.syscall(), Some("bind"));
        assert_eq!(err.address(), Some(busy));
        assert_eq!(
            err.os_error().and_then(|e| e.raw_os_error()),
            Some(libc::EADDRINUSE)
        );

        // The failed bind must not disturb the first server.
        assert_echoes(busy).await;
        first.halt().await;
    }
}

/// Issue 16: with `reusePort` left at its default, a port someone else holds is `EADDRINUSE`
/// (as with `node:net`), whether the holder has `SO_REUSEPORT` or not; the server's own loops
/// still share their port.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_reuse_port_refuses_a_port_held_by_a_stranger() {
    let _serial = support::one_at_a_time().await;
    use socket2::{Domain, Socket, Type};

    for stranger_reuses in [false, true] {
        let stranger = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        stranger.set_reuse_port(stranger_reuses).unwrap();
        stranger.bind(&v4().into()).unwrap();
        stranger.listen(16).unwrap();
        let busy = stranger.local_addr().unwrap().as_socket().unwrap();

        let mut defaults = ServerConfig::new(busy);
        defaults.loops(4);
        let err = Server::bind(&defaults, support::echo).unwrap_err();
        assert_eq!(err.syscall(), Some("bind"), "{err:?}");
        assert_eq!(
            err.os_error().and_then(|e| e.raw_os_error()),
            Some(libc::EADDRINUSE),
            "stranger with SO_REUSEPORT={stranger_reuses}: {err:?}"
        );
    }

    // Its own four loops share one port, each socket with SO_REUSEPORT (set after bind on
    // the first one), and all of them accept.
    let mut own = ServerConfig::new(v4());
    own.loops(4);
    let server = echo_server(&own);
    let addr = server.local_addrs()[0];
    let sockets = support::listeners_on(addr);
    assert_eq!(
        sockets.len(),
        4,
        "expected four listening sockets on {addr}"
    );
    assert!(sockets.iter().all(|s| s.reuse_port().unwrap()));
    let mut clients = Vec::new();
    for _ in 0..64 {
        clients.push(connect(addr).await);
    }
    for client in &mut clients {
        round_trip(client, b"hello").await;
    }
    // A second server with default options is a stranger too.
    let err = Server::bind(&ServerConfig::new(addr), support::echo).unwrap_err();
    assert_eq!(
        err.os_error().and_then(|e| e.raw_os_error()),
        Some(libc::EADDRINUSE)
    );
    server.halt().await;
}

/// A server's own addresses may overlap (IPv4 wildcard and a dual-stack IPv6 wildcard on one
/// port, as the README's quick start does): they join each other like its loops, while a
/// stranger on that port is still refused.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn own_overlapping_addresses_share_their_port() {
    let _serial = support::one_at_a_time().await;
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let mut both = ServerConfig::new(format!("0.0.0.0:{port}").parse().unwrap());
    both.address(format!("[::]:{port}").parse().unwrap());
    let server = echo_server(&both);
    assert_eq!(server.local_addrs().len(), 2);
    assert_echoes(format!("127.0.0.1:{port}").parse().unwrap()).await;
    assert_echoes(format!("[::1]:{port}").parse().unwrap()).await;
    let err = Server::bind(
        &ServerConfig::new(format!("[::]:{port}").parse().unwrap()),
        support::echo,
    )
    .unwrap_err();
    assert_eq!(
        err.os_error().and_then(|e| e.raw_os_error()),
        Some(libc::EADDRINUSE)
    );
    server.halt().await;
}

#[tokio::test]
async fn explicit_reuse_port_on_both_servers_shares_the_port() {
    let _serial = support::one_at_a_time().await;
    let mut first = ServerConfig::new(v4());
    first.reuse_port(true).loops(1);
    let first = echo_server(&first);
    let addr = first.local_addrs()[0];
    let mut second = ServerConfig::new(addr);
    second.reuse_port(true).loops(1);
    let second = echo_server(&second);
    assert_eq!(second.local_addrs(), &[addr]);
    let mut clients = Vec::new();
    for _ in 0..64 {
        clients.push(connect(addr).await);
    }
    for client in &mut clients {
        round_trip(client, b"hello").await;
    }
    // The kernel spread the clients over both (all on one: chance 2^-63).
    assert!(first.accepted_connections() > 0 && second.accepted_connections() > 0);
    assert_eq!(
        first.accepted_connections() + second.accepted_connections(),
        64
    );
    first.halt().await;
    second.halt().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn reuse_port_lets_another_socket_bind_the_same_port() {
    let _serial = support::one_at_a_time().await;
    use socket2::{Domain, Socket, Type};

    let server = echo_server(&config(v4()));
    let addr = server.local_addrs()[0];
    let socket = || Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();

    // Control: without SO_REUSEPORT the port is taken...
    let plain = socket();
    let err = plain.bind(&addr.into()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));

    // ...so binding it with SO_REUSEPORT proves the server's socket has the option too.
    let shared = socket();
    shared.set_reuse_port(true).unwrap();
    shared.bind(&addr.into()).unwrap();
    shared.listen(16).unwrap();
    assert_eq!(shared.local_addr().unwrap().as_socket(), Some(addr));
    drop(shared);

    assert_echoes(addr).await;
    server.halt().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn fast_open_and_defer_accept_are_set_on_the_listener() {
    let _serial = support::one_at_a_time().await;
    let mut config = config(v4());
    config.fast_open(256).defer_accept(1);
    let server = echo_server(&config);
    let addr = server.local_addrs()[0];

    let sockets = support::listeners_on(addr);
    assert_eq!(sockets.len(), 1, "expected one listening socket on {addr}");
    let fast_open = support::sockopt_int(&sockets[0], libc::IPPROTO_TCP, libc::TCP_FASTOPEN);
    assert_eq!(fast_open, 256, "TCP_FASTOPEN queue length");
    let defer = support::sockopt_int(&sockets[0], libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT);
    assert_eq!(defer, 1, "TCP_DEFER_ACCEPT seconds");

    // A client that speaks first is served as usual.
    assert_echoes(addr).await;
    server.halt().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn defer_accept_holds_silent_clients_back() {
    let _serial = support::one_at_a_time().await;
    // Linux turns the seconds into SYN-ACK retransmissions: 5 s keeps a silent client out of
    // `accept` for several seconds (1 s would let it in after the first retransmission).
    let mut config = config(v4());
    config.defer_accept(5);
    let server = echo_server(&config);
    let addr = server.local_addrs()[0];

    // The client's handshake completes, but the server side waits for data.
    let mut silent = connect(addr).await;
    let mut talker = connect(addr).await;
    talker.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    within("echo of the talker's byte", talker.read_exact(&mut byte))
        .await
        .unwrap();
    assert_eq!(&byte, b"x");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.accepted_connections(),
        1,
        "the silent client was accepted"
    );

    // Once it speaks, it is accepted and served.
    round_trip(&mut silent, b"late").await;
    assert_eq!(server.accepted_connections(), 2);
    server.halt().await;
}

#[tokio::test]
async fn listener_options_bind_together() {
    let _serial = support::one_at_a_time().await;
    // Every listener option at once on a dual-stack address; the server still serves IPv4
    // clients because `ipv6_only` is off.
    let mut config = ServerConfig::new("[::]:0".parse().unwrap());
    config
        .loops(2)
        .backlog(128)
        .ipv6_only(false)
        .no_delay(true)
        .keep_alive(Some(KeepAlive {
            time: Some(Duration::from_secs(30)),
            interval: Some(Duration::from_secs(5)),
            retries: Some(3),
        }));
    let server = echo_server(&config);
    let port = server.local_addrs()[0].port();
    assert_echoes(SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert_echoes(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))).await;
    server.halt().await;
}

#[tokio::test]
async fn accepted_sockets_get_no_delay_and_keep_alive() {
    let _serial = support::one_at_a_time().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut config = config(v4());
    config
        .no_delay(true)
        .keep_alive(keep_alive(Some(30), Some(5), Some(3)));
    let server = Server::bind(&config, move |conn| {
        let s = socket2::SockRef::from(conn.stream());
        let seen = (
            s.tcp_nodelay().unwrap(),
            s.keepalive().unwrap(),
            s.tcp_keepalive_time().unwrap(),
            s.tcp_keepalive_interval().unwrap(),
            s.tcp_keepalive_retries().unwrap(),
        );
        tx.send(seen).unwrap();
        async {}
    })
    .unwrap();
    let _client = connect(server.local_addrs()[0]).await;
    let seen = within("handler", rx.recv()).await.unwrap();
    assert_eq!(
        seen,
        (
            true,
            true,
            Duration::from_secs(30),
            Duration::from_secs(5),
            3
        )
    );
    server.halt().await;
}

#[tokio::test]
async fn ipv6_only_refuses_ipv4_clients() {
    let _serial = support::one_at_a_time().await;
    let mut config = config("[::]:0".parse().unwrap());
    config.ipv6_only(true);
    let server = echo_server(&config);
    let port = server.local_addrs()[0].port();
    assert_echoes(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))).await;
    let v4 = within(
        "connect",
        TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await;
    assert_eq!(
        v4.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    server.halt().await;
}

/// An option name, how its value is wrong, and a setter that makes it wrong.
type Case = (&'static str, InvalidKind, fn(&mut ServerConfig));

#[tokio::test]
async fn each_invalid_option_is_named() {
    let _serial = support::one_at_a_time().await;
    use InvalidKind::{Range, Value};
    let cases: [Case; 13] = [
        ("loops", Range, |c| _ = c.loops(0)),
        ("loops", Range, |c| _ = c.loops(MAX_LOOPS + 1)),
        ("loops", Value, |c| _ = c.loops(2).reuse_port(false)),
        ("backlog", Range, |c| _ = c.backlog(0)),
        ("backlog", Range, |c| _ = c.backlog(65536)),
        ("fastOpen", Range, |c| _ = c.fast_open(65536)),
        ("deferAccept", Range, |c| _ = c.defer_accept(3601)),
        ("maxConnections", Range, |c| _ = c.max_connections(0)),
        ("maxAcceptConnections", Range, |c| {
            _ = c.max_accept_connections(0)
        }),
        ("keepAlive.initialDelay", Range, |c| {
            _ = c.keep_alive(keep_alive(Some(0), None, None))
        }),
        ("keepAlive.initialDelay", Range, |c| {
            _ = c.keep_alive(keep_alive(Some(32768), None, None))
        }),
        ("keepAlive.interval", Range, |c| {
            _ = c.keep_alive(keep_alive(None, Some(0), None))
        }),
        ("keepAlive.count", Range, |c| {
            _ = c.keep_alive(keep_alive(None, None, Some(128)))
        }),
    ];
    for (option, invalid, set) in cases {
        let mut config = config(v4());
        set(&mut config);
        let err = Server::bind(&config, support::echo).unwrap_err();
        assert!(
            matches!(err, Error::InvalidOption { .. }),
            "{option}: {err:?}"
        );
        assert_eq!(err.option(), Some(option), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument(invalid), "{err}");
    }

    // No address at all.
    let err = Server::bind(&ServerConfig::default(), support::echo).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "address",
                ..
            }
        ),
        "{err:?}"
    );

    // The boundaries themselves are valid.
    let mut edge = config(v4());
    edge.backlog(65535)
        .fast_open(65535)
        .defer_accept(3600)
        .max_connections(1)
        .max_accept_connections(1);
    edge.validate().unwrap();
}

fn keep_alive(time: Option<u64>, interval: Option<u64>, retries: Option<u32>) -> Option<KeepAlive> {
    Some(KeepAlive {
        time: time.map(Duration::from_secs),
        interval: interval.map(Duration::from_secs),
        retries,
    })
}

/// The handler's local address: the listener's own for a specific address (no `getsockname`
/// per connection), the one the client reached for a wildcard listener.
#[tokio::test]
async fn local_addr_is_the_address_the_client_reached() {
    let _serial = support::one_at_a_time().await;
    async fn reported_local(reach: SocketAddr) -> String {
        let mut s = connect(reach).await;
        let mut line = String::new();
        within("local address", s.read_to_string(&mut line))
            .await
            .unwrap();
        line
    }
    let report = |mut conn: tcpserver_core::Connection| async move {
        let local = conn.info().local_addr.to_string();
        let _ = conn.write_all(local.as_bytes()).await;
    };
    let specific = Server::bind(&config(v4()), report).unwrap();
    let addr = specific.local_addrs()[0];
    assert_eq!(reported_local(addr).await, addr.to_string());

    let wildcard = Server::bind(&config("0.0.0.0:0".parse().unwrap()), report).unwrap();
    let port = wildcard.local_addrs()[0].port();
    let reached: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(reported_local(reached).await, reached.to_string());
    specific.halt().await;
    wildcard.halt().await;
}
