//! An echo server.
//!
//! ```text
//! cargo run -p tcpserver-core --example echo -- 127.0.0.1:7000
//! ```
//!
//! The address may be any form `tcpserver_core::parse_address` takes (`[::1]:7000`, `:7000`,
//! `localhost:7000`; port 0 picks a free port). Ctrl-C stops accepting at once and gives the
//! open connections five seconds to finish before they are closed by force.

use std::time::Duration;

use tcpserver_core::{Connection, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GRACE: Duration = Duration::from_secs(5);

/// Echoes until the client closes its side, then returns, which closes the connection. At the
/// shutdown deadline the server drops this future, so it needs no shutdown logic of its own.
async fn echo(mut conn: Connection) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let config = ServerConfig::new(tcpserver_core::parse_address(&arg)?);
    let server = Server::bind(&config, echo)?;
    for addr in server.local_addrs() {
        println!(
            "echo server listening on {addr} ({} accept loops)",
            config.effective_loops()
        );
    }

    tokio::signal::ctrl_c().await?;
    // Stop accepting first: the report counts the connections open at this moment, so the
    // line below must not race a client that finishes right after reading it.
    server.stop_accepting().await;
    println!(
        "shutting down: {} open connection(s), {GRACE:?} grace",
        server.active_connections()
    );
    let report = server.shutdown(Some(GRACE)).await;
    let stats = server.stats();
    println!(
        "stopped: {} finished, {} closed by force, {} accepted in total",
        report.completed, report.forced, stats.accepted
    );
    Ok(())
}
