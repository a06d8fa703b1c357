//! The driver's jobs from Rust, against real sockets: `pipe` (forwarding to an upstream, with
//! the heads a consumer held), `send_file` (ordered between queued writes, ranges) and
//! `start_tls` (an in-place upgrade whose ClientHello may already have been read as data).
//! The safety net under the driver's restructuring: until these, only the ava suite covered
//! the jobs.

mod support;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tcpserver_core::driver::{Connections, DriveOptions, Event, EventSink, TlsStart};
use tcpserver_core::tls::{ClientTlsSettings, PemIdentity, TlsAcceptor, TlsSettings};
use tcpserver_core::{ConnectOptions, ErrorKind, PipeOptions, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use support::{config, connect, echo_server, random_bytes, v4, wait_until, within};

/// What a job reported, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Open(u32),
    Paused,
    End,
    PipeDone(u64, u64, Option<ErrorKind>),
    FileDone(u64, Option<ErrorKind>),
    TlsStarted(Option<ErrorKind>),
    Closed(Option<ErrorKind>),
}

/// Every connection's events in order, and each one's data apart.
type Log = (Vec<(u32, Rec)>, HashMap<u32, Vec<u8>>);

/// Records events and data per connection (jobs involve two connections).
#[derive(Debug, Default)]
struct Recorder(Mutex<Log>);

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.0.lock().unwrap()
    }

    fn of(&self, id: u32) -> Vec<Rec> {
        let log = self.lock();
        log.0
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn data(&self, id: u32) -> Vec<u8> {
        self.lock().1.get(&id).cloned().unwrap_or_default()
    }

    /// The id of the connection opened with `tag`, once it opened.
    async fn opened(&self, tag: u32) -> u32 {
        let find = || {
            self.lock()
                .0
                .iter()
                .find(|(_, r)| *r == Rec::Open(tag))
                .map(|(id, _)| *id)
        };
        wait_until(&format!("Open of tag {tag}"), || find().is_some()).await;
        find().unwrap()
    }

    /// The first event of `id` that `pick` accepts, once it came.
    async fn wait<T>(&self, id: u32, what: &str, pick: impl Fn(&Rec) -> Option<T>) -> T {
        wait_until(what, || self.of(id).iter().any(|r| pick(r).is_some())).await;
        self.of(id).iter().find_map(&pick).unwrap()
    }
}

fn kind(error: Option<&tcpserver_core::Error>) -> Option<ErrorKind> {
    error.map(tcpserver_core::Error::kind)
}

impl EventSink for Recorder {
    fn read(
        &self,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut log = self.lock();
        let data = log.1.entry(id).or_default();
        let n = read(data)?;
        assert!(n <= max, "read {n} bytes, more than the {max} allowed");
        Ok(n)
    }

    fn event(&self, id: u32, event: Event<'_>) {
        let rec = match event {
            Event::Open { tag } => Rec::Open(tag),
            Event::Paused => Rec::Paused,
            Event::End => Rec::End,
            Event::PipeDone {
                bytes_in,
                bytes_out,
                error,
            } => Rec::PipeDone(bytes_in, bytes_out, kind(error)),
            Event::FileDone { bytes, error } => Rec::FileDone(bytes, kind(error)),
            Event::TlsStarted { error } => Rec::TlsStarted(kind(error)),
            Event::Closed { error, .. } => Rec::Closed(kind(error)),
            Event::Drain => return,
            other => panic!("an event this test does not know: {other:?}"),
        };
        self.lock().0.push((id, rec));
    }
}

/// A server whose accepted connections (tag 0) are driven into one recorder and registry.
struct Driven {
    server: Server,
    conns: Arc<Connections>,
    sink: Arc<Recorder>,
}

impl Driven {
    fn start(tls: Option<Arc<TlsAcceptor>>) -> Self {
        let conns = Arc::new(Connections::new());
        let sink = Arc::new(Recorder::default());
        let server = {
            let (conns, sink) = (conns.clone(), sink.clone());
            Server::bind(&config(v4()), move |conn| {
                let start = tls.clone().map_or(TlsStart::None, TlsStart::Accept);
                conns
                    .clone()
                    .drive(conn, sink.clone(), DriveOptions::default(), 0, start)
            })
            .unwrap()
        };
        Self {
            server,
            conns,
            sink,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }

    /// Connects out to `addr` and drives that connection too, opened with `tag`.
    async fn connect_out(&self, addr: SocketAddr, tag: u32) -> u32 {
        let opts = ConnectOptions::default();
        let host = addr.ip().to_string();
        let conn =
            tcpserver_core::connect(&host, addr.port(), &opts, 1000, CancellationToken::new())
                .await
                .unwrap();
        let task = self.conns.clone().drive(
            conn,
            self.sink.clone(),
            DriveOptions::default(),
            tag,
            TlsStart::None,
        );
        tokio::spawn(task);
        self.sink.opened(tag).await
    }

    /// Pauses `id` and waits for its `Paused`: every byte read before is in the recorder.
    async fn pause(&self, id: u32) {
        self.conns.pause_reading(id).unwrap();
        self.sink
            .wait(id, "Paused", |r| (*r == Rec::Paused).then_some(()))
            .await;
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_forwards_both_ways_after_the_heads_the_consumer_held() {
    const TOTAL: usize = 8 * 1024 * 1024;
    let upstream = echo_server(&config(v4()));
    let d = Driven::start(None);
    let mut client = connect(d.addr()).await;
    let client_id = d.sink.opened(0).await;

    // Bytes that arrive before the pipe are the consumer's: it reads them, then hands them on
    // as the head for the upstream.
    client.write_all(b"early bytes|").await.unwrap();
    wait_until("early bytes read", || d.sink.data(client_id).len() == 12).await;
    let up_id = d.connect_out(upstream.local_addrs()[0], 9).await;
    d.pause(client_id).await;
    d.pause(up_id).await;
    let held = d.sink.data(client_id);
    let head = PipeOptions {
        head_to_other: held.clone(),
        ..PipeOptions::default()
    };
    tokio::spawn(d.conns.pipe(client_id, &d.conns, up_id, head).unwrap());

    let sent = random_bytes(3, TOTAL);
    let (mut rd, mut wr) = client.into_split();
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move {
            wr.write_all(&sent).await.unwrap();
            wr.shutdown().await.unwrap(); // FIN: the echo upstream then closes its side
        }
    });
    let mut back = Vec::with_capacity(TOTAL + 12);
    within("echo through the pipe", rd.read_to_end(&mut back))
        .await
        .unwrap();
    writer.await.unwrap();

    assert_eq!(&back[..12], b"early bytes|", "the head went first");
    assert_eq!(back.len(), TOTAL + 12);
    assert_eq!(fnv(&back[12..]), fnv(&sent), "every byte, in order");
    let done = d
        .sink
        .wait(client_id, "PipeDone", |r| match r {
            Rec::PipeDone(i, o, e) => Some((*i, *o, *e)),
            _ => None,
        })
        .await;
    // The head counts as bytes that went to the upstream, and came back: 12 + TOTAL each way.
    assert_eq!(done, (TOTAL as u64 + 12, TOTAL as u64 + 12, None));
    assert!(d.conns.data_stats().bytes_piped >= 2 * TOTAL as u64);
    // A finished pipe leaves both connections to their consumer, which releases them.
    d.conns.release(client_id).unwrap();
    d.conns.release(up_id).unwrap();
    wait_until("both closed", || d.conns.is_empty()).await;
}

#[tokio::test]
async fn pipe_refuses_connections_that_are_not_paused() {
    let upstream = echo_server(&config(v4()));
    let d = Driven::start(None);
    let _client = connect(d.addr()).await;
    let client_id = d.sink.opened(0).await;
    let up_id = d.connect_out(upstream.local_addrs()[0], 9).await;
    let busy = d
        .conns
        .pipe(client_id, &d.conns, up_id, PipeOptions::default())
        .err()
        .map(|e| e.kind());
    assert_eq!(busy, Some(ErrorKind::Busy));
    d.pause(client_id).await;
    let to_itself = d
        .conns
        .pipe(client_id, &d.conns, client_id, PipeOptions::default())
        .err()
        .map(|e| e.kind());
    assert_eq!(to_itself, Some(ErrorKind::Busy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_file_goes_out_between_the_writes_around_it() {
    const SIZE: usize = 3 * 1024 * 1024 + 17;
    let content = random_bytes(11, SIZE);
    let path = std::env::temp_dir().join(format!("tcpserver-driver-jobs-{}", std::process::id()));
    std::fs::write(&path, &content).unwrap();

    let d = Driven::start(None);
    let mut client = connect(d.addr()).await;
    let id = d.sink.opened(0).await;

    d.conns.write(id, b"HEAD|").unwrap();
    let file = tcpserver_core::open_for_send(&path).unwrap();
    let (offset, length) = (1000u64, SIZE as u64 - 2000);
    tokio::spawn(d.conns.send_file(id, file, offset, Some(length)).unwrap());
    d.conns.write(id, b"|TAIL").unwrap(); // queued behind the file
    d.conns.release(id).unwrap(); // flush, FIN, close

    let mut got = Vec::new();
    within("file and writes", client.read_to_end(&mut got))
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let body = &content[offset as usize..(offset + length) as usize];
    assert_eq!(got.len(), 5 + body.len() + 5);
    assert_eq!(&got[..5], b"HEAD|");
    assert_eq!(
        fnv(&got[5..got.len() - 5]),
        fnv(body),
        "the range, byte for byte"
    );
    assert_eq!(&got[got.len() - 5..], b"|TAIL");
    let done = d
        .sink
        .wait(id, "FileDone", |r| match r {
            Rec::FileDone(b, e) => Some((*b, *e)),
            _ => None,
        })
        .await;
    assert_eq!(done, (length, None));
    assert_eq!(
        d.sink
            .wait(id, "Closed", |r| match r {
                Rec::Closed(e) => Some(*e),
                _ => None,
            })
            .await,
        None
    );
}

#[tokio::test]
async fn send_file_checks_its_range_before_it_starts() {
    let path = std::env::temp_dir().join(format!("tcpserver-driver-range-{}", std::process::id()));
    std::fs::write(&path, b"0123456789").unwrap();
    let d = Driven::start(None);
    let _client = connect(d.addr()).await;
    let id = d.sink.opened(0).await;
    let past_end = |offset, length| {
        let file = tcpserver_core::open_for_send(&path).unwrap();
        d.conns
            .send_file(id, file, offset, length)
            .err()
            .map(|e| e.kind())
    };
    assert!(matches!(
        past_end(11, None),
        Some(ErrorKind::InvalidArgument(_))
    ));
    assert!(matches!(
        past_end(5, Some(6)),
        Some(ErrorKind::InvalidArgument(_))
    ));
    assert!(
        past_end(10, Some(0)).is_none(),
        "an empty range at the end is fine"
    );
    std::fs::remove_file(&path).unwrap();
}

fn fixture(name: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../__test__/fixtures/tls");
    std::fs::read(format!("{dir}/{name}")).unwrap()
}

fn acceptor() -> Arc<TlsAcceptor> {
    let identity = PemIdentity {
        cert: fixture("server.crt"),
        key: fixture("server.key"),
    };
    Arc::new(TlsAcceptor::new(&TlsSettings::new(identity)).unwrap())
}

/// A blocking StartTLS client: says STARTTLS, sends its ClientHello without waiting for the
/// answer (so the server may read it as data before it pauses), then reads the plaintext OK,
/// and talks TLS: sends `secret`, returns what the server answered until it closed.
fn starttls_client(addr: SocketAddr, secret: &'static [u8]) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let settings = ClientTlsSettings {
        server_name: Some("localhost".into()),
        ca: Some(fixture("ca.crt")),
        ..ClientTlsSettings::default()
    };
    let config = tcpserver_core::tls::client_config(&settings).unwrap();
    let name = "localhost".try_into().unwrap();
    let mut session = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.write_all(b"STARTTLS\n")?;
    session.write_tls(&mut tcp)?; // the ClientHello, pipelined behind the command
    let mut ok = [0u8; 3];
    tcp.read_exact(&mut ok)?;
    let mut tls = rustls::Stream::new(&mut session, &mut tcp);
    tls.write_all(secret)?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)?;
    Ok((ok.to_vec(), answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_tls_upgrades_in_place_with_a_client_hello_already_read() {
    let d = Driven::start(None);
    let addr = d.addr();
    let client = tokio::task::spawn_blocking(move || starttls_client(addr, b"over tls"));
    let id = d.sink.opened(0).await;
    wait_until("STARTTLS read", || {
        d.sink.data(id).starts_with(b"STARTTLS\n")
    })
    .await;
    d.pause(id).await;
    // What came after the command is the start of the ClientHello: the upgrade's head.
    let head = d.sink.data(id)[9..].to_vec();
    let head_len = head.len();
    d.conns.write(id, b"OK\n").unwrap(); // queued before the upgrade: goes out in plaintext
    tokio::spawn(d.conns.start_tls(id, head, acceptor()).unwrap());
    let started = d
        .sink
        .wait(id, "TlsStarted", |r| match r {
            Rec::TlsStarted(e) => Some(*e),
            _ => None,
        })
        .await;
    assert_eq!(started, None);
    // Plaintext follows what was read before the upgrade (the command and the hello's start).
    let before = 9 + head_len;
    wait_until("decrypted data", || d.sink.data(id).len() >= before + 8).await;
    assert_eq!(&d.sink.data(id)[before..], b"over tls");
    d.conns.write(id, b"answered in tls").unwrap();
    d.conns.release(id).unwrap();

    let (ok, answer) = within("StartTLS client", client).await.unwrap().unwrap();
    assert_eq!(ok, b"OK\n");
    assert_eq!(answer, b"answered in tls");
    wait_until("closed", || d.conns.is_empty()).await;
    assert!(matches!(
        d.conns
            .start_tls(id, Vec::new(), acceptor())
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::ConnectionClosed)
    ));
}

#[tokio::test]
async fn start_tls_that_fails_reports_and_closes() {
    let d = Driven::start(None);
    let mut client = connect(d.addr()).await;
    let id = d.sink.opened(0).await;
    assert!(
        matches!(
            d.conns
                .start_tls(id, Vec::new(), acceptor())
                .err()
                .map(|e| e.kind()),
            Some(ErrorKind::Busy)
        ),
        "not paused"
    );
    d.pause(id).await;
    tokio::spawn(d.conns.start_tls(id, Vec::new(), acceptor()).unwrap());
    client
        .write_all(b"this is no ClientHello\r\n")
        .await
        .unwrap();
    let started = d
        .sink
        .wait(id, "TlsStarted", |r| match r {
            Rec::TlsStarted(e) => Some(*e),
            _ => None,
        })
        .await;
    assert!(started.is_some(), "a failed handshake carries its error");
    d.sink
        .wait(id, "Closed", |r| matches!(r, Rec::Closed(_)).then_some(()))
        .await;
    let mut rest = Vec::new();
    let _ = within("close", client.read_to_end(&mut rest)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_sent_in_a_row_report_their_results_in_call_order_before_the_close() {
    // Empty files between large ones: an empty file's job ends at once, and the next job (on
    // the other worker thread) must not report before it does.
    let big = random_bytes(5, 256 * 1024);
    let dir = std::env::temp_dir();
    let big_path = dir.join(format!("tcpserver-driver-jobs-big-{}", std::process::id()));
    let empty_path = dir.join(format!(
        "tcpserver-driver-jobs-empty-{}",
        std::process::id()
    ));
    std::fs::write(&big_path, &big).unwrap();
    std::fs::write(&empty_path, b"").unwrap();

    let d = Driven::start(None);
    let mut client = connect(d.addr()).await;
    let id = d.sink.opened(0).await;
    let sizes: Vec<u64> = (0..20)
        .map(|i| if i % 2 == 0 { big.len() as u64 } else { 0 })
        .collect();
    for &size in &sizes {
        let path = if size == 0 { &empty_path } else { &big_path };
        let file = tcpserver_core::open_for_send(path).unwrap();
        tokio::spawn(d.conns.send_file(id, file, 0, None).unwrap());
    }
    d.conns.release(id).unwrap();

    let mut got = Vec::new();
    within("the files", client.read_to_end(&mut got))
        .await
        .unwrap();
    let _ = std::fs::remove_file(&big_path);
    let _ = std::fs::remove_file(&empty_path);
    assert_eq!(got.len() as u64, sizes.iter().sum::<u64>());
    d.sink
        .wait(id, "Closed", |r| matches!(r, Rec::Closed(_)).then_some(()))
        .await;
    let events = d.sink.of(id);
    let done: Vec<u64> = events
        .iter()
        .filter_map(|r| match r {
            Rec::FileDone(b, None) => Some(*b),
            _ => None,
        })
        .collect();
    assert_eq!(
        done, sizes,
        "FILE_DONE in call order, each with its own size"
    );
    assert_eq!(
        events.last(),
        Some(&Rec::Closed(None)),
        "the close comes last"
    );
}
