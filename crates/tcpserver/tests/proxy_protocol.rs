//! PROXY protocol listeners through the Rust API: the handler's `ConnectionInfo` names the
//! client from the header, bytes after the header reach the handler intact, and refusals are
//! counted by reason.

mod support;

use std::time::Duration;

use tcpserver_core::{ProxyProtocol, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{config, connect, read_to_close, v4, wait_until};

#[tokio::test]
async fn header_names_the_client_and_the_rest_reaches_the_handler() {
    let mut c = config(v4());
    let mut proxy = ProxyProtocol::new(&["127.0.0.0/8"]).unwrap();
    proxy.header_timeout = Duration::from_millis(200);
    c.proxy_protocol(proxy);
    let server = Server::bind(&c, |mut conn| async move {
        let mut buf = [0u8; 5];
        if conn.read_exact(&mut buf).await.is_ok() {
            let i = conn.info();
            let line = format!(
                "{} {} {:?} {}\n",
                i.peer_addr,
                i.local_addr,
                i.proxied_by.map(|a| a.ip()),
                String::from_utf8_lossy(&buf)
            );
            let _ = conn.write_all(line.as_bytes()).await;
        }
    })
    .unwrap();
    let addr = server.local_addrs()[0];

    let mut s = connect(addr).await;
    s.write_all(b"PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\nhello")
        .await
        .unwrap();
    let reply = String::from_utf8(read_to_close(&mut s).await).unwrap();
    assert_eq!(
        reply,
        "[2001:db8::1]:1234 [2001:db8::2]:443 Some(127.0.0.1) hello\n"
    );

    // No header, then a stalled one: both refused, counted.
    let mut s = connect(addr).await;
    s.write_all(b"hello").await.unwrap();
    assert_eq!(read_to_close(&mut s).await, b"");
    let mut s = connect(addr).await;
    s.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    assert_eq!(read_to_close(&mut s).await, b"");
    wait_until("counted", || server.stats().proxy_failures.len() == 2).await;
    let stats = server.stats();
    assert_eq!(stats.proxy_headers, 1);
    assert_eq!(stats.proxy_failures, vec![("not_proxy", 1), ("timeout", 1)]);
    server.halt().await;
}
