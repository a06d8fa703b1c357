//! Helpers shared by the integration tests: loopback addresses, bounded waits, a running echo
//! server, deterministic test data, and (on Linux) a look at this process's listening sockets.
//! `driver`: the event-mode harness of the driver tests; `fuzz`: the property tests' settings.

#![allow(dead_code)] // each test binary uses a different subset

pub mod driver;
pub mod fuzz;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tcpserver_core::{Connection, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for any single wait: generous for slow CI, small enough to fail fast.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `127.0.0.1:0`.
pub fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// `[::1]:0`.
pub fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

/// One accept loop on `addr`: deterministic and cheap unless a test wants more.
pub fn config(addr: SocketAddr) -> ServerConfig {
    let mut config = ServerConfig::new(addr);
    config.loops(1);
    config
}

/// Awaits `fut`, failing the test with `what` if it takes longer than [`TIMEOUT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    within_for(TIMEOUT, what, fut).await
}

/// Awaits `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `cond` every few milliseconds until it holds; fails the test after [`TIMEOUT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Handler that echoes until the peer half-closes, then returns (closing the connection).
pub async fn echo(mut conn: Connection) {
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

/// An echo server from `config`.
pub fn echo_server(config: &ServerConfig) -> Server {
    Server::bind(config, echo).expect("bind echo server")
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    within("connect", TcpStream::connect(addr))
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Sends `msg` and expects it back: proves a handler is serving this connection.
pub async fn round_trip(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    within("echo reply", stream.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(back, msg);
}

/// Connects to `addr` and checks that the server echoes.
pub async fn assert_echoes(addr: SocketAddr) {
    let mut stream = connect(addr).await;
    round_trip(&mut stream, b"ping").await;
}

/// Reads until EOF (or an error such as a reset); fails after [`TIMEOUT`]. Returns what came.
pub async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    within("peer close", async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// Reads until the peer's FIN on this thread, blocking it and with it a current-thread
/// runtime: only what the server already did (not what its driver would do next) can end the
/// read. Fails with `what` on an error, or after `limit`. Returns the socket (to drop later).
pub fn read_to_end_blocking(
    client: TcpStream,
    limit: Duration,
    what: &str,
) -> (std::net::TcpStream, Vec<u8>) {
    use std::io::Read;
    let mut client = client.into_std().unwrap();
    client.set_nonblocking(false).unwrap();
    client.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).expect(what);
    (client, got)
}

/// Deterministic pseudo-random bytes (xorshift64*): different per seed, no extra crates.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// This process's listening sockets bound to `addr`, found through `/proc/self/fd`: the only
/// way to check options on listeners the server keeps to itself. Each is a `dup`, so
/// inspecting it never races with the server closing its own descriptor.
#[cfg(target_os = "linux")]
pub fn listeners_on(addr: SocketAddr) -> Vec<socket2::Socket> {
    use std::os::fd::{FromRawFd, OwnedFd};

    // One scan at a time: a scan dups every descriptor of the process for a moment, and a
    // scan running beside it in another test would count those copies as listeners too.
    static SCANNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SCANNING.lock().unwrap_or_else(|e| e.into_inner());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: `dup` only reads the descriptor table; a closed or reused number at worst
        // yields an error or an unrelated file, which the checks below skip.
        let copy = unsafe { libc::dup(fd) };
        if copy < 0 {
            continue;
        }
        // SAFETY: `copy` is a fresh descriptor that nothing else owns.
        let socket = socket2::Socket::from(unsafe { OwnedFd::from_raw_fd(copy) });
        let listening = socket.is_listener().unwrap_or(false);
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        if listening && local == Some(addr) {
            found.push(socket);
        }
    }
    found
}

/// Reads an `int` socket option with `getsockopt` (for options socket2 has no getter for).
#[cfg(target_os = "linux")]
pub fn sockopt_int(socket: &socket2::Socket, level: libc::c_int, name: libc::c_int) -> i32 {
    use std::os::fd::AsRawFd;

    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is owned by `socket`; `value` and `len` are valid for writes and `len`
    // holds the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    value
}

/// Held by each test of a binary whose tests bind shared ports (`SO_REUSEPORT` on port 0, or
/// a port probed and released): run side by side, the kernel may give two of them the same
/// port, and one counts the other's listeners as its own.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
