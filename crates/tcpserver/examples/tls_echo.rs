//! A TLS echo server.
//!
//! ```text
//! cargo run -p tcpserver-core --example tls_echo -- 127.0.0.1:7443 cert.pem key.pem
//! openssl s_client -connect 127.0.0.1:7443 -servername localhost
//! ```
//!
//! The certificate chain and key are PEM files (the repository's test pair is
//! `__test__/fixtures/tls/server.crt` and `server.key`). Ctrl-C stops accepting at once and gives
//! open connections five seconds to finish.
//!
//! Server-side TLS runs inside the event-mode driver ([`tcpserver_core::driver`]): the handler hands
//! each accepted connection to [`Connections::drive`] with [`TlsStart::Accept`], the driver
//! does the handshake (deadline, concurrency cap, SNI, ALPN) and then reports plaintext to an
//! [`EventSink`]. This sink echoes each chunk with [`Connections::write`] and returns the read
//! credit with [`Connections::ack`] only once the echo is on its way, so a client that sends
//! faster than it reads is slowed down by TCP instead of filling memory.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tcpserver_core::driver::{Connections, DriveOptions, Event, EventSink, TlsStart};
use tcpserver_core::tls::{PemIdentity, TlsAcceptor, TlsSettings};
use tcpserver_core::{Server, ServerConfig};

const GRACE: Duration = Duration::from_secs(5);

/// Echoes plaintext back through the driver that reported it.
#[derive(Debug)]
struct EchoSink {
    conns: Arc<Connections>,
    /// Read credit held back per connection while its echo waits in the write queue.
    unacked: Mutex<HashMap<u32, usize>>,
}

impl EventSink for EchoSink {
    fn read(
        &self,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut buf = Vec::with_capacity(max);
        let n = read(&mut buf)?;
        if n == 0 {
            return Ok(0);
        }
        // `write` returns what is still queued; at the high-water mark a `Drain` follows.
        match self.conns.write(id, &buf) {
            Ok(queued) if queued >= DriveOptions::default().high_water_mark => {
                *self.unacked.lock().unwrap().entry(id).or_default() += n;
            }
            Ok(_) => _ = self.conns.ack(id, n),
            // The connection is closing; its `Closed` event follows.
            Err(_) => {}
        }
        Ok(n)
    }

    fn event(&self, id: u32, event: Event<'_>) {
        match event {
            Event::Drain => {
                if let Some(n) = self.unacked.lock().unwrap().remove(&id) {
                    let _ = self.conns.ack(id, n);
                }
            }
            // The client is done sending: flush the echo, then close.
            Event::End => _ = self.conns.release(id),
            Event::Closed { error, info } => {
                self.unacked.lock().unwrap().remove(&id);
                match error {
                    Some(e) => println!("{} closed: {e}", info.peer_addr),
                    None => println!("{} closed", info.peer_addr),
                }
            }
            _ => {}
        }
    }

    fn tls_error(&self, peer: &tcpserver_core::Address, error: &tcpserver_core::Error) {
        println!("{peer}: TLS handshake failed: {error}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, cert, key] = args.as_slice() else {
        eprintln!("usage: tls_echo ADDRESS CERT.pem KEY.pem");
        std::process::exit(2);
    };
    let mut settings = TlsSettings::new(PemIdentity {
        cert: std::fs::read(cert)?,
        key: std::fs::read(key)?,
    });
    settings.alpn = vec![b"echo".to_vec()];
    // Every certificate problem (bad PEM, key not matching) is reported here, not per client.
    let acceptor = Arc::new(TlsAcceptor::new(&settings)?);

    let conns = Arc::new(Connections::new());
    let sink = Arc::new(EchoSink {
        conns: conns.clone(),
        unacked: Mutex::new(HashMap::new()),
    });
    let config = ServerConfig::new(tcpserver_core::parse_address(addr)?);
    let server = Server::bind(&config, move |conn| {
        let tls = TlsStart::Accept(acceptor.clone());
        // The handler's future is the driver: it ends, closing the socket, on `Closed`.
        conns
            .clone()
            .drive(conn, sink.clone(), DriveOptions::default(), 0, tls)
    })?;
    for addr in server.local_addrs() {
        println!("TLS echo server listening on {addr}");
    }

    tokio::signal::ctrl_c().await?;
    let report = server.shutdown(Some(GRACE)).await;
    println!(
        "stopped: {} finished, {} closed by force, {} accepted in total",
        report.completed,
        report.forced,
        server.stats().accepted
    );
    Ok(())
}
