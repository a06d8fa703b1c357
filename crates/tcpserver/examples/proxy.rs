//! A TCP proxy: every client is forwarded to one upstream.
//!
//! ```text
//! cargo run -p tcpserver-core --example echo -- 127.0.0.1:7000
//! cargo run -p tcpserver-core --example proxy -- 127.0.0.1:7001 127.0.0.1:7000
//! ```
//!
//! The upstream is `host:port` (a name is resolved per connection, every address tried in
//! turn). Ctrl-C stops accepting at once and gives open connections five seconds to finish.
//!
//! Both sides are [`tcpserver_core::Connection`]s ([`tcpserver_core::connect`] returns the same type as
//! accepted connections), which are `AsyncRead + AsyncWrite`, so
//! [`tokio::io::copy_bidirectional`] does the forwarding, half-close included. The
//! `splice(2)` path that keeps the bytes in the kernel is [`Connections::pipe`] in the
//! event-mode driver, which the Node binding uses.
//!
//! [`Connections::pipe`]: tcpserver_core::driver::Connections::pipe

use std::sync::Arc;
use std::time::Duration;

use tcpserver_core::{ConnectOptions, Connection, Server, ServerConfig};

const GRACE: Duration = Duration::from_secs(5);

/// Forwards `client` to the upstream until both directions ended.
async fn forward(mut client: Connection, upstream: Arc<(String, u16)>) {
    let opts = ConnectOptions {
        timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let (host, port) = &*upstream;
    let peer = client.info().peer_addr.clone();
    // The upstream connection shares the client's id and abort signal: a forced shutdown
    // aborts both.
    let id = client.info().id;
    let abort = client.abort_signal().clone();
    let mut server = match tcpserver_core::connect(host, *port, &opts, id, abort).await {
        Ok(server) => server,
        Err(e) => {
            println!("{peer}: upstream {host}:{port} failed: {e}");
            return;
        }
    };
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => println!("{peer}: {up} bytes up, {down} bytes down"),
        Err(e) => println!("{peer}: {e}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: proxy LISTEN_ADDRESS UPSTREAM_HOST:PORT");
        std::process::exit(2);
    };
    // Checked now, resolved per connection: a name may change address while we run.
    let upstream = Arc::new(tcpserver_core::split_host_port(upstream)?);
    let config = ServerConfig::new(tcpserver_core::parse_address(listen)?);
    let target = upstream.clone();
    let server = Server::bind(&config, move |conn| forward(conn, target.clone()))?;
    for addr in server.local_addrs() {
        println!(
            "proxy listening on {addr}, forwarding to {}:{}",
            upstream.0, upstream.1
        );
    }

    tokio::signal::ctrl_c().await?;
    let report = server.shutdown(Some(GRACE)).await;
    println!(
        "stopped: {} finished, {} closed by force",
        report.completed, report.forced
    );
    Ok(())
}
