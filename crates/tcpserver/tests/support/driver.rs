//! The event-mode harness of the driver tests (`driver_events`, `driver_timeouts`): a server
//! that drives every connection into one recording sink, and what the sink recorded.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tcpserver_core::driver::{Connections, DriveOptions, Event, EventSink, TlsStart};
use tcpserver_core::{ConnectionInfo, ErrorKind, Server};
use tokio::net::TcpStream;

use super::{config, connect, v4, wait_until};

/// The high-water mark of the tests that set one.
pub const HWM: usize = 64 * 1024;

/// An event as recorded: `Closed` keeps the error's kind and errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Open,
    Data(usize),
    End,
    Drain,
    Closed(Option<(ErrorKind, Option<i32>)>),
}

#[derive(Debug, Default)]
pub struct Log {
    pub events: Vec<(u32, Ev)>,
    /// Every byte read, in order (one connection per test).
    pub data: Vec<u8>,
    /// The info handed over with `Closed`.
    pub closed_info: Option<ConnectionInfo>,
}

/// Records events and reads into one growing `Vec`, like a batch buffer that is never flushed.
#[derive(Debug, Default)]
pub struct RecordingSink(Mutex<Log>);

impl RecordingSink {
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.0.lock().unwrap()
    }

    pub fn events(&self) -> Vec<Ev> {
        self.log().events.iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn received(&self) -> usize {
        self.log().data.len()
    }

    pub fn closed(&self) -> Option<Ev> {
        self.events()
            .into_iter()
            .find(|e| matches!(e, Ev::Closed(..)))
    }
}

impl EventSink for RecordingSink {
    fn read(
        &self,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut log = self.log();
        let before = log.data.len();
        let n = read(&mut log.data)?;
        assert_eq!(
            log.data.len(),
            before + n,
            "read() must append exactly what it returns"
        );
        assert!(n <= max, "read {n} bytes, more than the {max} allowed");
        if n > 0 {
            log.events.push((id, Ev::Data(n)));
        }
        Ok(n)
    }

    fn event(&self, id: u32, event: Event<'_>) {
        let mut log = self.log();
        let ev = match event {
            Event::Open { tag } => {
                assert_eq!(tag, 7, "Open carries the tag given to drive()");
                Ev::Open
            }
            Event::End => Ev::End,
            Event::Drain => Ev::Drain,
            Event::Closed { error, info } => {
                assert_eq!(
                    info.id as u32, id,
                    "Closed carries another connection's info"
                );
                log.closed_info = Some(info.clone());
                Ev::Closed(
                    error.map(|e| (e.kind(), e.os_error().and_then(io::Error::raw_os_error))),
                )
            }
            // Pipes, files and TLS upgrades are exercised by the ava suite against real peers.
            _ => return,
        };
        log.events.push((id, ev));
    }
}

/// A server that drives every connection into one sink, and the id of the one connection.
pub struct Harness {
    pub server: Server,
    pub conns: Arc<Connections>,
    pub sink: Arc<RecordingSink>,
    pub id: u32,
}

impl Harness {
    /// Starts the server and connects its client.
    pub async fn new(opts: DriveOptions) -> (Self, TcpStream) {
        let conns = Arc::new(Connections::new());
        let sink = Arc::new(RecordingSink::default());
        let server = {
            let (conns, sink) = (conns.clone(), sink.clone());
            Server::bind(&config(v4()), move |conn| {
                conns
                    .clone()
                    .drive(conn, sink.clone(), opts, 7, TlsStart::None)
            })
            .unwrap()
        };
        let addr: SocketAddr = server.local_addrs()[0];
        let client = connect(addr).await;
        wait_until("Open", || !sink.log().events.is_empty()).await;
        let (id, first) = sink.log().events[0].clone();
        assert_eq!(first, Ev::Open);
        assert_eq!(conns.len(), 1);
        (
            Self {
                server,
                conns,
                sink,
                id,
            },
            client,
        )
    }

    pub async fn wait_received(&self, n: usize) {
        wait_until(&format!("{n} bytes read"), || self.sink.received() >= n).await;
    }

    pub async fn wait_closed(&self) -> Ev {
        wait_until("Closed", || self.sink.closed().is_some()).await;
        self.sink.closed().unwrap()
    }
}
