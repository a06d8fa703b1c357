//! Unix domain sockets through the Rust API: a server listening on TCP and a Unix path at
//! once, echo over the Unix socket, `ConnectionInfo` addresses, `connect_unix`, and the
//! socket file's removal when the server stops accepting.
#![cfg(unix)]

use std::path::PathBuf;
use std::time::Duration;

use tcpserver_core::{Address, ConnectOptions, Server, ServerConfig, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tcpserver-it-{}-{name}", std::process::id()))
}

#[tokio::test]
async fn serves_tcp_and_unix_together() {
    let path = temp("echo.sock");
    let _ = std::fs::remove_file(&path);
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.unix_address(&path).unix_permissions(0o600);
    let (tx, mut infos) = mpsc::unbounded_channel();
    let server = Server::bind(&config, move |mut conn| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((
                conn.info().clone(),
                matches!(conn.stream(), Stream::Unix(_)),
            ));
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = conn.read(&mut buf).await {
                if conn.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    })
    .unwrap();
    assert_eq!(server.local_addrs().len(), 1);
    assert_eq!(server.unix_paths(), std::slice::from_ref(&path));

    let opts = ConnectOptions {
        timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let mut conn = tcpserver_core::connect_unix(&path, &opts, 1, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(conn.info().peer_addr, Address::Unix(path.clone()));
    conn.write_all(b"hello over unix").await.unwrap();
    let mut back = [0u8; 15];
    conn.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello over unix");

    let (info, unix) = infos.recv().await.unwrap();
    assert!(unix);
    assert_eq!(info.local_addr, Address::Unix(path.clone()));
    assert_eq!(info.peer_addr.ip(), None);
    assert_eq!(info.proxied_by, None);

    drop(conn);
    server.shutdown(Some(Duration::from_secs(5))).await;
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[test]
fn proxy_protocol_is_refused_with_unix_addresses() {
    let mut config = ServerConfig::default();
    config
        .unix_address(temp("proxy.sock"))
        .proxy_protocol(tcpserver_core::ProxyProtocol::new(&["127.0.0.1".to_owned()]).unwrap());
    let err = config.validate().unwrap_err();
    assert_eq!(err.option(), Some("proxyProtocol"));
    let mut config = ServerConfig::default();
    config
        .unix_address(temp("mode.sock"))
        .unix_permissions(0o10000);
    assert_eq!(
        config.validate().unwrap_err().option(),
        Some("unixPermissions")
    );
}
