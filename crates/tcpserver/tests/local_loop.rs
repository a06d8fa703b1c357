//! The consumer loop (`driver::LocalLoop`) without Node: a server hands its connections to a
//! loop that this test turns on its own thread, watching the loop's descriptor with poll(2)
//! as libuv does. Pins the echo path (reads with credit, writes tried at once, the handler's
//! release), the idle timeout on the loop's timerfd, a file sent after the connection moved to
//! the Tokio driver, and `active` given back as the close is reported.
#![cfg(target_os = "linux")]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tcpserver_core::driver::{
    Connections, DriveOptions, Event, EventSink, LocalLoop, Released, TimeoutKind,
};
use tcpserver_core::{ErrorKind, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Open,
    Data(Vec<u8>),
    End,
    Closed(Option<ErrorKind>),
    Other,
}

/// Records what the loop (or the Tokio driver, after a hand-over) reports.
#[derive(Default)]
struct Sink(Mutex<Vec<(u32, Ev)>>);

impl Sink {
    fn take(&self) -> Vec<(u32, Ev)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl EventSink for Sink {
    fn read(
        &self,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut buf = Vec::new();
        let n = read(&mut buf)?;
        assert!(n <= max);
        if n > 0 {
            self.0.lock().unwrap().push((id, Ev::Data(buf)));
        }
        Ok(n)
    }

    fn event(&self, id: u32, event: Event<'_>) {
        let ev = match event {
            Event::Open { .. } => Ev::Open,
            Event::End => Ev::End,
            Event::Closed { error, .. } => Ev::Closed(error.map(|e| e.kind())),
            _ => Ev::Other,
        };
        self.0.lock().unwrap().push((id, ev));
    }
}

/// A server whose connections go to a loop turned by a thread of this test, which runs
/// `on_event` for each event (with the loop at hand) and records every one.
struct Harness {
    server: Server,
    lp: Arc<LocalLoop>,
    conns: Arc<Connections>,
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Seen = Arc<Mutex<Vec<(u32, Ev)>>>;
type OnEvent = dyn Fn(&LocalLoop, u32, &Ev) + Send + 'static;

impl Harness {
    fn start(opts: DriveOptions, on_event: Box<OnEvent>) -> Self {
        let config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        Self::start_with(&config, false, opts, on_event)
    }

    /// With `accept_on_loop`, the loop accepts the server's clients itself
    /// (`Server::bind_on_loop`); otherwise the server's accept loop hands them over.
    fn start_with(
        config: &ServerConfig,
        accept_on_loop: bool,
        opts: DriveOptions,
        on_event: Box<OnEvent>,
    ) -> Self {
        let conns = Arc::new(Connections::new());
        let sink = Arc::new(Sink::default());
        let lp = Arc::new(
            LocalLoop::new(
                conns.clone(),
                sink.clone(),
                sink.clone(),
                tokio::runtime::Handle::current(),
            )
            .expect("a loop"),
        );
        let adopting = lp.clone();
        let handler = move |conn| adopting.adopt(conn, opts, 0);
        let server = if accept_on_loop {
            Server::bind_on_loop(config, &lp, opts, handler)
        } else {
            Server::bind(config, handler)
        }
        .unwrap();
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let thread = {
            let (lp, stop, seen): (Arc<LocalLoop>, Arc<AtomicBool>, Seen) =
                (lp.clone(), stop.clone(), Arc::clone(&seen));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut fd = libc::pollfd {
                        fd: lp.fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd on the stack.
                    unsafe { libc::poll(&mut fd, 1, 20) };
                    lp.turn(&mut || {
                        for (id, ev) in sink.take() {
                            on_event(&lp, id, &ev);
                            seen.lock().unwrap().push((id, ev));
                        }
                    });
                }
            })
        };
        Self {
            server,
            lp,
            conns,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn port(&self) -> u16 {
        self.server.local_addrs()[0].port()
    }

    fn events(&self) -> Vec<Ev> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.lp.close_io();
    }
}

/// Echoes every chunk, returns its credit, and releases at the peer's end.
fn echo(lp: &LocalLoop, id: u32, ev: &Ev) {
    match ev {
        Ev::Data(bytes) => {
            lp.write(id, bytes).expect("served here").expect("written");
            lp.ack(id, bytes.len());
        }
        Ev::End => {
            let _ = lp.release(id);
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_on_the_loop_then_closed_once_and_active_given_back() {
    let h = Harness::start(DriveOptions::default(), Box::new(echo));
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", h.port()))
        .await
        .unwrap();
    let (mut rd, mut wr) = client.split();
    let send = async {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let recv = rd.read_to_end(&mut back);
    let ((), got) = tokio::join!(send, recv);
    got.unwrap();
    assert!(back == data, "the echo differs ({} bytes back)", back.len());
    h.until("the close", |h| h.events().contains(&Ev::Closed(None)))
        .await;
    let events = h.events();
    assert_eq!(events.first(), Some(&Ev::Open));
    assert_eq!(
        events.iter().filter(|e| matches!(e, Ev::Closed(_))).count(),
        1
    );
    assert_eq!(
        h.server.active_connections(),
        0,
        "active is given back with the close"
    );
    assert!(h.lp.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_fires_on_the_loops_timer() {
    let opts =
        DriveOptions::default().with_timeout(TimeoutKind::Idle, Some(Duration::from_millis(150)));
    let h = Harness::start(opts, Box::new(echo));
    let started = Instant::now();
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", h.port()))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    // Quiet: the server closes, the client reads its end.
    let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
    assert!(started.elapsed() >= Duration::from_millis(140));
    h.until("the idle close", |h| {
        h.events()
            .contains(&Ev::Closed(Some(ErrorKind::IdleTimeout)))
    })
    .await;
    assert_eq!(h.conns.timeout_stats().idle, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_after_a_reply_on_the_loop_goes_out_after_it_from_the_tokio_driver() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let path = tempfile_with(&body);
    let conns_for_job: Arc<Mutex<Option<Arc<Connections>>>> = Arc::default();
    let slot = conns_for_job.clone();
    // The loop's thread is not a Tokio thread: jobs are spawned on the test's runtime.
    let rt = tokio::runtime::Handle::current();
    let file_path = path.clone();
    let h = Harness::start(
        DriveOptions::default(),
        Box::new(move |lp, id, ev| {
            if let Ev::Data(_) = ev {
                lp.write(id, b"HEAD\n").unwrap().unwrap();
                lp.hand_over_for_job(id).unwrap();
                let conns = slot.lock().unwrap().clone().unwrap();
                let f = std::fs::File::open(&file_path).unwrap();
                rt.spawn(conns.send_file(id, f, 0, None).unwrap());
            }
        }),
    );
    *conns_for_job.lock().unwrap() = Some(h.conns.clone());
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", h.port()))
        .await
        .unwrap();
    client.write_all(b"GET\n").await.unwrap();
    let mut got = vec![0u8; 5 + body.len()];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got[..5], b"HEAD\n");
    assert!(got[5..] == body[..], "the file differs");
    assert!(h.lp.is_empty(), "the connection left the loop");
    assert_eq!(h.conns.len(), 1, "the Tokio driver serves it now");
    let _ = std::fs::remove_file(&path);
}

/// One echo round trip; `None` when the server closed the connection instead.
async fn echo_once(port: u16, msg: &[u8]) -> Option<(tokio::net::TcpStream, Vec<u8>)> {
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    if client.write_all(msg).await.is_err() {
        return None;
    }
    let mut got = vec![0u8; msg.len()];
    match tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got)).await {
        Ok(Ok(_)) => Some((client, got)),
        Ok(Err(_)) => None,
        Err(_) => panic!("no echo and no close within 5 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_accepts_itself_and_keeps_pause_and_the_refusing_limit() {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config
        .max_connections(2)
        .limit_policy(tcpserver_core::LimitPolicy::Refuse);
    let h = Harness::start_with(&config, true, DriveOptions::default(), Box::new(echo));
    let port = h.port();
    let (first, got) = echo_once(port, b"one").await.expect("served");
    assert_eq!(got, b"one");
    // Paused: a client waits in the backlog, unserved, until the server resumes.
    h.server.pause();
    let waiting = tokio::spawn(echo_once(port, b"two"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished(), "served while paused");
    assert_eq!(h.server.accepted_connections(), 1);
    h.server.resume();
    let (second, got) = waiting.await.unwrap().expect("served after the resume");
    assert_eq!(got, b"two");
    // Two open: a third is refused (closed at once) and counted.
    assert!(echo_once(port, b"three").await.is_none(), "over the limit");
    assert_eq!(h.server.stats().refused_max_connections, 1);
    drop((first, second));
    h.until("both closes", |h| {
        h.events()
            .iter()
            .filter(|e| matches!(e, Ev::Closed(_)))
            .count()
            == 2
    })
    .await;
    assert_eq!(h.server.active_connections(), 0);
    let (_c, got) = echo_once(port, b"four").await.expect("room again");
    assert_eq!(got, b"four");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_defer_accept_a_request_sent_before_the_accept_follows_its_open_in_the_batch() {
    // With TCP_DEFER_ACCEPT a client is accepted with its first bytes: the loop reads them in
    // the round that accepts it. (Without it, their edge announces them a turn later.)
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.defer_accept(1);
    let h = Harness::start_with(&config, true, DriveOptions::default(), Box::new(echo));
    let port = h.port();
    // Paused: three clients connect and send while in the backlog; the resume accepts all three
    // in one turn.
    h.server.pause();
    let mut clients = Vec::new();
    for i in 0..3u8 {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(&[b'a' + i; 5]).await.unwrap();
        clients.push(c);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.server.resume();
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
            .await
            .expect("echoed in time")
            .unwrap();
        assert_eq!(got, [b'a' + i as u8; 5]);
    }
    // JavaScript queues such a request before the handler starts (no read waits on a promise).
    let seen = h.seen.lock().unwrap().clone();
    let opens: Vec<usize> = (0..seen.len()).filter(|&k| seen[k].1 == Ev::Open).collect();
    assert_eq!(opens.len(), 3, "{seen:?}");
    for k in opens {
        let (id, _) = seen[k];
        assert!(
            matches!(seen.get(k + 1), Some((next, Ev::Data(_))) if *next == id),
            "the Open of {id} is not followed by its data: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greeting_released_before_any_read_lingers_while_the_clients_bytes_wait_unread() {
    // The loop has neither read this connection nor seen an edge for it when the handler
    // writes and releases: whether input waits is unknown, so it looks (a peek) and, finding
    // some, lingers; closing at once would answer the unread bytes with an RST, which can
    // destroy the greeting before the client reads it.
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    let released: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = released.clone();
    let h = Harness::start_with(
        &config,
        true,
        DriveOptions::default(),
        Box::new(move |lp, id, ev| {
            if *ev == Ev::Open {
                lp.write(id, b"hello\n").unwrap().unwrap();
                // Unknown input: not closed during the call, left to the round's look.
                let what = format!("{:?}", lp.release_or_close(id));
                log.lock().unwrap().push(what);
            }
        }),
    );
    // Paused: the clients' bytes are in their sockets before the loop accepts them.
    h.server.pause();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", h.port()))
            .await
            .unwrap();
        c.write_all(&[b'x'; 4096]).await.unwrap();
        clients.push(c);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.server.resume();
    for mut c in clients {
        let mut got = [0u8; 6];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut got))
            .await
            .expect("greeted in time")
            .expect("the greeting, not a reset");
        assert_eq!(&got, b"hello\n");
        // The server lingers for our end, reading what we send meanwhile; then its FIN.
        c.write_all(b"more").await.unwrap();
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
            .await
            .expect("the server's end in time")
            .expect("an orderly end, not a reset");
        assert!(rest.is_empty());
    }
    assert_eq!(*released.lock().unwrap(), ["Some(Closing)"; 3]);
    h.until("three closes", |h| {
        h.events()
            .iter()
            .filter(|e| **e == Ev::Closed(None))
            .count()
            == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_in_a_turn_with_nothing_left_closes_during_the_call_and_reports_no_event() {
    // In a turn (the consumer answering its events), after its request was read to the end
    // and its answer written: the call closes it and returns its facts; no `Closed` follows.
    let released: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = released.clone();
    let h = Harness::start(
        DriveOptions::default(),
        Box::new(move |lp, id, ev| {
            if let Ev::Data(bytes) = ev {
                lp.write(id, bytes).unwrap().unwrap();
                let what = match lp.release_or_close(id) {
                    Some(Released::Closed(info)) => format!("closed {}", info.peer_addr),
                    other => format!("{other:?}"),
                };
                log.lock().unwrap().push(what);
            }
        }),
    );
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", h.port()))
        .await
        .unwrap();
    let me = client.local_addr().unwrap();
    client.write_all(b"ping").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
        .await
        .expect("the answer and the end in time")
        .expect("an orderly end");
    assert_eq!(got, b"ping");
    assert_eq!(*released.lock().unwrap(), [format!("closed {me}")]);
    assert!(h.lp.is_empty());
    assert_eq!(h.server.active_connections(), 0, "its place given back");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !h.events().iter().any(|e| matches!(e, Ev::Closed(_))),
        "{:?}",
        h.events()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_closes_the_loops_listener_and_forces_its_connections_at_the_deadline() {
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    let h = Harness::start_with(&config, true, DriveOptions::default(), Box::new(echo));
    let port = h.port();
    let (_held, got) = echo_once(port, b"held").await.expect("served");
    assert_eq!(got, b"held");
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        h.server.shutdown(Some(Duration::from_millis(100))),
    )
    .await
    .expect("the shutdown ends");
    assert_eq!((report.completed, report.forced), (0, 1));
    assert_eq!(h.server.active_connections(), 0);
    // Reported in the round that closed it: the loop's thread hands the round's events over
    // after it, which can be just after the shutdown saw the connection end.
    h.until("the forced close", |h| {
        h.events().contains(&Ev::Closed(Some(ErrorKind::Shutdown)))
    })
    .await;
    // The port is free once the shutdown returned.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}

/// A file with `data` in the temp directory.
fn tempfile_with(data: &[u8]) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("tcpserver-local-loop-{}.bin", std::process::id()));
    std::fs::write(&path, data).unwrap();
    path
}
