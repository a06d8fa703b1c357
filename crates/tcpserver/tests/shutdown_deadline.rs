//! Lifecycle: graceful shutdown, the deadline, halt, `max_accept_connections`,
//! `max_connections`, and panicking handlers.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tcpserver_core::{Connection, Server, ShutdownReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use support::{config, connect, read_to_close, round_trip, v4, wait_until, within};

/// A server whose handler reports that it started, then runs `body`.
fn started_server<F, Fut>(
    config: &tcpserver_core::ServerConfig,
    body: F,
) -> (Server, mpsc::UnboundedReceiver<u64>)
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::bind(config, move |conn| {
        tx.send(conn.info().id).unwrap();
        body(conn)
    })
    .unwrap();
    (server, rx)
}

/// The handler never returns on its own.
async fn stuck(conn: Connection) {
    let _conn = conn;
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn graceful_shutdown_waits_for_the_handler_and_frees_the_port_at_once() {
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let (server, mut started) = started_server(&config(v4()), move |mut conn| {
        let done = done.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            conn.write_all(b"done").await.unwrap();
            done.store(true, Ordering::SeqCst);
        }
    });
    let addr = server.local_addrs()[0];
    let mut client = connect(addr).await;
    within("handler start", started.recv()).await.unwrap();

    within("stop accepting", server.stop_accepting()).await;
    assert!(!server.is_accepting());
    assert!(
        !finished.load(Ordering::SeqCst),
        "stop_accepting must not wait for handlers"
    );
    // The listener is closed: nobody answers, and a new server can take the port, even
    // without SO_REUSEPORT, while the old connection is still open.
    let refused = within("connect", TcpStream::connect(addr))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let mut next = config(addr);
    next.reuse_port(false);
    let successor = support::echo_server(&next);
    assert_eq!(successor.local_addrs(), [addr]);

    let report = within("graceful shutdown", server.shutdown(None)).await;
    assert!(
        finished.load(Ordering::SeqCst),
        "shutdown returned before the handler finished"
    );
    assert_eq!(report, expected(1, 0));
    assert_eq!(read_to_close(&mut client).await, b"done");
    assert_eq!(server.stats().forced, 0);

    support::assert_echoes(addr).await;
    successor.halt().await;
}

#[tokio::test]
async fn deadline_aborts_a_stuck_handler() {
    let (server, mut started) = started_server(&config(v4()), stuck);
    let mut client = connect(server.local_addrs()[0]).await;
    within("handler start", started.recv()).await.unwrap();

    let begin = Instant::now();
    let report = within(
        "shutdown with deadline",
        server.shutdown(Some(Duration::from_millis(100))),
    )
    .await;
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_millis(90),
        "returned before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_secs(1),
        "returned long after the deadline: {took:?}"
    );
    assert_eq!(report, expected(0, 1));
    assert_eq!(server.stats().forced, 1);
    assert_eq!(server.active_connections(), 0);
    // Aborting the handler dropped its connection.
    assert_eq!(read_to_close(&mut client).await, b"");
}

#[tokio::test]
async fn shutdown_deadline_is_not_waited_out_when_handlers_finish() {
    let (server, mut started) = started_server(&config(v4()), support::echo);
    let client = connect(server.local_addrs()[0]).await;
    within("handler start", started.recv()).await.unwrap();

    let begin = Instant::now();
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown(Some(Duration::from_secs(30))).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(client); // the echo handler returns on EOF
    let report = within("shutdown", shutdown).await.unwrap();
    assert!(begin.elapsed() < Duration::from_secs(5));
    assert_eq!(report, expected(1, 0));
}

/// A handler that watches `abort_signal()` (as the event-mode driver does) still ends
/// because of the deadline, so it should count as forced, not as completed.
#[tokio::test]
async fn handlers_stopped_by_the_abort_signal_count_as_forced() {
    let (server, mut started) = started_server(&config(v4()), |conn| async move {
        conn.abort_signal().clone().cancelled().await;
    });
    let _client = connect(server.local_addrs()[0]).await;
    within("handler start", started.recv()).await.unwrap();
    let report = within("shutdown", server.shutdown(Some(Duration::from_millis(50)))).await;
    assert_eq!(report, expected(0, 1));
    assert_eq!(server.stats().forced, 1);
}

#[tokio::test]
async fn halt_aborts_every_connection_at_once() {
    let (server, mut started) = started_server(&config(v4()), stuck);
    let addr = server.local_addrs()[0];
    let mut clients = vec![connect(addr).await, connect(addr).await];
    for _ in 0..2 {
        within("handler start", started.recv()).await.unwrap();
    }

    let report = within("halt", server.halt()).await;
    assert_eq!(report, expected(0, 2));
    assert!(!server.is_accepting());
    for client in &mut clients {
        assert_eq!(read_to_close(client).await, b"");
    }
    // Already closed: both calls return at once with the same report.
    assert_eq!(within_short(server.closed()).await, expected(0, 2));
    assert_eq!(within_short(server.shutdown(None)).await, expected(0, 2));
}

#[tokio::test]
async fn max_accept_connections_stops_accepting_by_itself() {
    // Echo handlers end on EOF, so the test decides when each connection ends.
    let mut config = config(v4());
    config.max_accept_connections(3);
    let server = support::echo_server(&config);
    let addr = server.local_addrs()[0];

    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = connect(addr).await;
        round_trip(&mut client, b"hi").await;
        clients.push(client);
    }
    wait_until("the server to stop accepting", || !server.is_accepting()).await;
    // The listener closes right after the third accept.
    within("listener to close", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // `closed()` waits for the three handlers.
    let closed = tokio::spawn({
        let server = server.clone();
        async move { server.closed().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !closed.is_finished(),
        "closed() completed while handlers were running"
    );
    assert_eq!(server.active_connections(), 3);

    clients.clear();
    let report = within("closed", closed).await.unwrap();
    assert_eq!(report.forced, 0);
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.active, stats.refused()), (3, 0, 0));
}

/// Every connection that was running when the limit was reached finished by itself, so the
/// report should count all three as completed.
#[tokio::test]
async fn max_accept_connections_report_counts_every_connection() {
    let mut config = config(v4());
    config.max_accept_connections(3);
    let server = support::echo_server(&config);
    let addr = server.local_addrs()[0];
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = connect(addr).await;
        round_trip(&mut client, b"hi").await;
        clients.push(client);
    }
    clients.clear();
    assert_eq!(within("closed", server.closed()).await, expected(3, 0));
}

/// `loops` accept loops and `max_connections(1)`; the handler greets, then echoes until EOF.
fn greeting_server(loops: usize) -> Server {
    let mut config = tcpserver_core::ServerConfig::new(v4());
    config.loops(loops).max_connections(1);
    Server::bind(&config, |mut conn| async move {
        if conn.write_all(b"hi").await.is_ok() {
            support::echo(conn).await;
        }
    })
    .unwrap()
}

#[tokio::test]
async fn max_connections_holds_the_next_client_back() {
    let server = greeting_server(1);
    let addr = server.local_addrs()[0];

    let mut first = connect(addr).await;
    expect_greeting(&mut first).await;
    // The kernel completes the second handshake, but nobody accepts it yet.
    let mut second = connect(addr).await;
    let mut buf = [0u8; 2];
    let early = tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut buf)).await;
    assert!(
        early.is_err(),
        "second client was served while the first was active"
    );
    assert_eq!(
        (server.accepted_connections(), server.active_connections()),
        (1, 1)
    );

    drop(first);
    expect_greeting(&mut second).await;
    assert_eq!(server.accepted_connections(), 2);
    server.halt().await;
}

/// Regression: with several accept loops, a loop holding the only slot while blocked in
/// `accept` on an empty socket starved the clients queued on the other loop's socket.
#[tokio::test]
async fn max_connections_with_two_loops_serves_every_waiting_client() {
    let server = greeting_server(2);
    let addr = server.local_addrs()[0];

    let mut first = connect(addr).await;
    expect_greeting(&mut first).await;
    // Sixteen clients wait in the two sockets' backlogs, spread by the kernel's hash.
    let mut waiting = Vec::new();
    for _ in 0..16 {
        waiting.push(connect(addr).await);
    }
    drop(first);
    // Each is served once the one before it leaves.
    let served = support::within_for(
        Duration::from_secs(3),
        "every waiting client to be served",
        async {
            let mut pending: tokio::task::JoinSet<()> = waiting
                .into_iter()
                .map(|mut client| async move {
                    let mut buf = [0u8; 2];
                    client.read_exact(&mut buf).await.unwrap();
                })
                .collect();
            let mut served = 0;
            while let Some(res) = pending.join_next().await {
                res.unwrap();
                served += 1;
            }
            served
        },
    )
    .await;
    assert_eq!(served, 16);
    server.halt().await;
}

/// `pause()` promises that `accept` is not called until `resume()`; the loop is usually
/// already waiting inside `accept` when `pause()` is called.
#[tokio::test]
async fn pause_holds_new_clients_until_resume() {
    let server = support::echo_server(&config(v4()));
    let addr = server.local_addrs()[0];
    support::assert_echoes(addr).await; // the loop is now parked in accept()

    server.pause();
    let mut client = connect(addr).await;
    client.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    let early =
        tokio::time::timeout(Duration::from_millis(300), client.read_exact(&mut byte)).await;
    assert!(early.is_err(), "a client was served while paused");
    assert_eq!(server.accepted_connections(), 1);

    server.resume();
    within("echo after resume", client.read_exact(&mut byte))
        .await
        .unwrap();
    assert_eq!(server.accepted_connections(), 2);
    server.halt().await;
}

#[tokio::test]
async fn panicking_handler_closes_only_its_connection() {
    // Echo, but panic on `!`.
    let server = Server::bind(&config(v4()), |mut conn| async move {
        let mut buf = [0u8; 64];
        loop {
            let n = conn.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            assert!(!buf[..n].contains(&b'!'), "handler told to panic");
            conn.write_all(&buf[..n]).await.unwrap();
        }
    })
    .unwrap();
    let addr = server.local_addrs()[0];

    let mut healthy = connect(addr).await;
    round_trip(&mut healthy, b"before").await;
    let mut doomed = connect(addr).await;
    round_trip(&mut doomed, b"ok").await;
    doomed.write_all(b"!").await.unwrap();
    assert_eq!(read_to_close(&mut doomed).await, b"");

    wait_until("the panic to be counted", || server.stats().panics == 1).await;
    assert_eq!(server.active_connections(), 1);
    round_trip(&mut healthy, b"after").await;
    support::assert_echoes(addr).await;
    assert!(server.is_accepting());
    drop(healthy);
    assert_eq!(within("shutdown", server.shutdown(None)).await.forced, 0);
}

/// The handler closure itself (not its future) panics for the first connection. That panic
/// should be contained like any other handler panic, not take the accept loop down with it.
#[tokio::test]
async fn panic_before_the_handler_future_keeps_the_server_accepting() {
    let first = AtomicBool::new(true);
    let server = Server::bind(&config(v4()), move |conn| {
        assert!(
            !first.swap(false, Ordering::SeqCst),
            "handler told to panic"
        );
        support::echo(conn)
    })
    .unwrap();
    let addr = server.local_addrs()[0];

    let mut doomed = connect(addr).await;
    assert_eq!(read_to_close(&mut doomed).await, b"");
    // The only accept loop must still be serving.
    let mut next = connect(addr).await;
    support::within_for(
        Duration::from_secs(2),
        "second client served",
        round_trip(&mut next, b"ok"),
    )
    .await;
    assert_eq!(server.stats().panics, 1);
    server.halt().await;
}

async fn expect_greeting(client: &mut TcpStream) {
    let mut buf = [0u8; 2];
    within("greeting", client.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"hi");
}

async fn within_short<F: Future>(fut: F) -> F::Output {
    support::within_for(Duration::from_millis(500), "an already closed server", fut).await
}

fn expected(completed: u64, forced: u64) -> ShutdownReport {
    let mut report = ShutdownReport::default();
    report.completed = completed;
    report.forced = forced;
    report
}
