//! Echo through `Connection`'s `AsyncRead`/`AsyncWrite`: many concurrent clients with bulk
//! data, the connection counters, and `ConnectionInfo`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tcpserver_core::{ConnectionInfo, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use support::{config, connect, echo_server, round_trip, v4, v6, wait_until, within};

const CLIENTS: usize = 200;
const PER_CLIENT: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echoes_200_concurrent_clients_byte_for_byte() {
    let mut config = ServerConfig::new(v4());
    config.loops(2);
    let server = echo_server(&config);
    let addr = server.local_addrs()[0];

    let mut clients = tokio::task::JoinSet::new();
    for seed in 0..CLIENTS as u64 {
        clients.spawn(async move {
            let data = support::random_bytes(seed, PER_CLIENT);
            let (mut rd, mut wr) = connect(addr).await.into_split();
            // Write and read at once: the echo would stall if the client only wrote.
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                wr.write_all(&sent).await.unwrap();
                wr.shutdown().await.unwrap();
            });
            let mut back = Vec::with_capacity(PER_CLIENT);
            rd.read_to_end(&mut back).await.unwrap();
            writer.await.unwrap();
            // Compare lengths first so a mismatch does not print 256 KiB.
            assert_eq!(back.len(), data.len(), "client {seed}: echoed length");
            assert!(back == data, "client {seed}: echoed bytes differ");
        });
    }
    within("all echo clients", async {
        while let Some(res) = clients.join_next().await {
            res.unwrap();
        }
    })
    .await;

    assert_eq!(server.accepted_connections(), CLIENTS as u64);
    // Each handler returns after the client's FIN; the counter follows.
    wait_until("active connections to drop to 0", || {
        server.active_connections() == 0
    })
    .await;
    let stats = server.stats();
    assert_eq!(
        (stats.accepted, stats.active, stats.panics, stats.forced),
        (CLIENTS as u64, 0, 0, 0)
    );
    let report = within("shutdown", server.shutdown(None)).await;
    assert_eq!((report.completed, report.forced), (0, 0));
}

#[tokio::test]
async fn counters_follow_connections() {
    let server = echo_server(&config(v4()));
    let addr = server.local_addrs()[0];
    assert_eq!(
        (server.accepted_connections(), server.active_connections()),
        (0, 0)
    );

    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = connect(addr).await;
        // A reply means the handler is running, so it is counted.
        round_trip(&mut client, b"hi").await;
        clients.push(client);
    }
    assert_eq!(server.accepted_connections(), 3);
    assert_eq!(server.active_connections(), 3);

    drop(clients.pop());
    wait_until("active to drop to 2", || server.active_connections() == 2).await;
    assert_eq!(server.accepted_connections(), 3, "accepted never goes down");

    clients.clear();
    wait_until("active to drop to 0", || server.active_connections() == 0).await;
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.active, stats.refused()), (3, 0, 0));
    assert!(stats.accept_errors.is_empty(), "{:?}", stats.accept_errors);
    server.halt().await;
}

/// A server whose handler reports each connection's info, then echoes.
fn info_server(addr: SocketAddr) -> (Server, mpsc::UnboundedReceiver<ConnectionInfo>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::bind(&config(addr), move |conn| {
        tx.send(conn.info().clone()).unwrap();
        support::echo(conn)
    })
    .unwrap();
    (server, rx)
}

#[tokio::test]
async fn connection_info_has_both_addresses() {
    for addr in [v4(), v6()] {
        let (server, mut infos) = info_server(addr);
        let server_addr = server.local_addrs()[0];
        let before = std::time::SystemTime::now();

        let client = connect(server_addr).await;
        let info = within("connection info", infos.recv()).await.unwrap();
        assert_eq!(info.peer_addr, client.local_addr().unwrap());
        assert_eq!(info.local_addr, client.peer_addr().unwrap());
        assert_eq!(info.local_addr, server_addr);
        assert_eq!(info.id, 1);
        assert!(info.start_time >= before - Duration::from_secs(1));
        assert!(info.started.elapsed() < support::TIMEOUT);

        // Ids count up per server.
        let second = connect(server_addr).await;
        let info = within("second connection info", infos.recv())
            .await
            .unwrap();
        assert_eq!(info.id, 2);
        assert_eq!(info.peer_addr, second.local_addr().unwrap());
        server.halt().await;
    }
}
