//! Admission limits: `max_connections_per_ip` (IPv4, IPv6 prefixes) and
//! `LimitPolicy::Refuse`, seen by real clients, with the refusals counted by reason.

mod support;

use std::net::SocketAddr;

use tcpserver_core::{LimitPolicy, Server};
use tokio::net::{TcpSocket, TcpStream};

use support::{config, connect, read_to_close, round_trip, v4, wait_until, within};

/// Connects from `local` (an address of this host) to `addr`.
async fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
    let local = SocketAddr::new(local.parse().unwrap(), 0);
    let socket = if local.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .unwrap();
    socket.bind(local).unwrap();
    within("connect", socket.connect(addr)).await.unwrap()
}

/// An echo server whose handler runs until the client closes.
fn echo(config: &tcpserver_core::ServerConfig) -> Server {
    support::echo_server(config)
}

/// A refused client is accepted and closed at once: it reads EOF (or a reset) and nothing else.
async fn assert_refused(stream: &mut TcpStream) {
    assert_eq!(
        read_to_close(stream).await,
        b"",
        "a refused client got data"
    );
}

#[tokio::test]
async fn per_ip_limit_refuses_the_extra_connection_of_one_address_only() {
    let mut c = config(v4());
    c.max_connections_per_ip(2, None);
    let server = echo(&c);
    let addr = server.local_addrs()[0];

    let mut a = connect_from("127.0.0.1", addr).await;
    let mut b = connect_from("127.0.0.1", addr).await;
    round_trip(&mut a, b"a").await;
    round_trip(&mut b, b"b").await;
    let mut third = connect_from("127.0.0.1", addr).await;
    assert_refused(&mut third).await;
    // Another address of the same host has its own share.
    let mut other = connect_from("127.0.0.2", addr).await;
    round_trip(&mut other, b"other").await;
    let stats = server.stats();
    assert_eq!((stats.refused_per_ip, stats.refused()), (1, 1));

    // A closed connection gives its share back.
    drop(a);
    wait_until("share given back", || server.active_connections() == 2).await;
    let mut again = connect_from("127.0.0.1", addr).await;
    round_trip(&mut again, b"again").await;
    server.halt().await;
}

/// IPv6 clients are counted per /64 by default, so a host cannot dodge the limit by using
/// many addresses of its prefix; a narrower grouping is an option.
/// Moves the calling thread into a new network namespace with only `lo` (up) and the given
/// IPv6 addresses on it. A current-thread Tokio test runs entirely on this thread, and the
/// `ip` commands inherit the namespace of the thread that spawns them. `false` if not allowed
/// (not root).
#[cfg(target_os = "linux")]
fn private_netns_with(addrs: &[&str]) -> bool {
    // SAFETY: unshare(2) takes no pointers; it changes only this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return false;
    }
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip").args(args).status();
        assert!(ok.is_ok_and(|s| s.success()), "ip {args:?}");
    };
    ip(&["link", "set", "lo", "up"]);
    for a in addrs {
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{a}/128"),
            "dev",
            "lo",
            "nodad",
        ]);
    }
    true
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn per_ip_limit_groups_ipv6_by_prefix() {
    if !private_netns_with(&["fd00:1::1", "fd00:1::2", "fd00:2::1"]) {
        eprintln!("skipped: creating a network namespace needs root (CAP_SYS_ADMIN)");
        return;
    }
    for (prefix, second_same_prefix_ok) in [(None, false), (Some(128), true)] {
        let mut c = config("[::]:0".parse().unwrap());
        c.max_connections_per_ip(1, prefix);
        let server = echo(&c);
        let addr: SocketAddr = format!("[fd00:1::1]:{}", server.local_addrs()[0].port())
            .parse()
            .unwrap();
        let mut first = connect_from("fd00:1::1", addr).await;
        round_trip(&mut first, b"1").await;
        let mut same_prefix = connect_from("fd00:1::2", addr).await;
        if second_same_prefix_ok {
            round_trip(&mut same_prefix, b"2").await;
        } else {
            assert_refused(&mut same_prefix).await;
        }
        let mut other_prefix = connect_from("fd00:2::1", addr).await;
        round_trip(&mut other_prefix, b"3").await;
        assert_eq!(
            server.stats().refused_per_ip,
            u64::from(!second_same_prefix_ok)
        );
        server.halt().await;
    }
}

#[tokio::test]
async fn refuse_policy_closes_new_clients_while_full() {
    let mut c = config(v4());
    c.max_connections(1).limit_policy(LimitPolicy::Refuse);
    let server = echo(&c);
    let addr = server.local_addrs()[0];

    let mut first = connect(addr).await;
    round_trip(&mut first, b"first").await;
    for _ in 0..3 {
        let mut extra = connect(addr).await;
        assert_refused(&mut extra).await;
    }
    let stats = server.stats();
    assert_eq!((stats.refused_max_connections, stats.accepted), (3, 1));

    drop(first);
    wait_until("slot freed", || server.active_connections() == 0).await;
    let mut next = connect(addr).await;
    round_trip(&mut next, b"next").await;
    server.halt().await;
}
