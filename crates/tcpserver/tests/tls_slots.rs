//! TLS handshake slots (`TlsSettings::max_handshakes`) against sockets that connect and say
//! nothing: a slot is taken when the ClientHello's first byte arrives, so silent sockets do
//! not make a real client wait, while the handshake timeout (from accept) still closes them.

mod support;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tcpserver_core::driver::{Connections, DriveOptions, Event, EventSink, TlsStart};
use tcpserver_core::tls::{ClientTlsSettings, PemIdentity, TlsAcceptor, TlsSettings};
use tcpserver_core::{Server, Stream};

use support::{config, connect, v4, wait_until, within};

/// Takes what arrives and forgets it.
struct Discard;

impl EventSink for Discard {
    fn read(
        &self,
        _id: u32,
        _max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        read(&mut Vec::new())
    }

    fn event(&self, _id: u32, _event: Event<'_>) {}
}

fn fixture(name: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../__test__/fixtures/tls");
    std::fs::read(format!("{dir}/{name}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_hold_no_handshake_slot() {
    let timeout = Duration::from_secs(2);
    let mut settings = TlsSettings::new(PemIdentity {
        cert: fixture("server.crt"),
        key: fixture("server.key"),
    });
    settings.max_handshakes = 2;
    settings.handshake_timeout = timeout;
    let acceptor = Arc::new(TlsAcceptor::new(&settings).unwrap());
    let conns = Arc::new(Connections::new());
    let server = {
        let (conns, acceptor) = (conns.clone(), acceptor.clone());
        Server::bind(&config(v4()), move |conn| {
            conns.clone().drive(
                conn,
                Arc::new(Discard),
                DriveOptions::default(),
                0,
                TlsStart::Accept(acceptor.clone()),
            )
        })
        .unwrap()
    };
    let addr = server.local_addrs()[0];

    // Five sockets that connect and never send a byte, against two slots.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(connect(addr).await);
    }
    wait_until("5 accepted", || server.stats().accepted >= 5).await;

    let client = tcpserver_core::tls::client_config(&ClientTlsSettings {
        ca: Some(fixture("ca.crt")),
        ..Default::default()
    })
    .unwrap();
    let started = Instant::now();
    let stream = Stream::from(connect(addr).await);
    within(
        "client handshake",
        tcpserver_core::tls::connect(&stream, client, "localhost", timeout * 3),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "the client's handshake took {took:?} behind 5 silent sockets with 2 slots (timeout {timeout:?})"
    );

    // The handshake timeout, counted from accept, still closes every silent socket.
    wait_until("5 handshake timeouts", || {
        acceptor.counts().1.contains(&("timeout".to_owned(), 5))
    })
    .await;
    assert_eq!(acceptor.counts().0, 1);
    drop(silent);
    server.shutdown(Some(Duration::ZERO)).await;
}
