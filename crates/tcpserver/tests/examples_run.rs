//! The programs in `examples/` run as documented: each is spawned as a process, talked to over
//! loopback, and stopped with SIGINT (Ctrl-C), after which it must drain and exit 0.
//!
//! `cargo test` builds the examples before it runs any test, next to this test's own binary
//! (`target/<profile>/examples/`). A run that did not build them (`cargo test --test
//! examples_run` alone) skips these tests with a note rather than failing on a missing file.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running example; killed if the test fails before stopping it.
struct Example {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Example {
    /// Starts `examples/<name>` with `args`, or `None` when it was not built.
    fn spawn(name: &str, args: &[&str]) -> Option<Self> {
        // The test binary is `target/<profile>/deps/examples_run-<hash>`.
        let exe = std::env::current_exe().unwrap();
        let path: PathBuf = exe.parent()?.parent()?.join("examples").join(name);
        if !path.exists() {
            eprintln!(
                "skipped: {} is not built (run `cargo test -p tcpserver-core`, which builds the examples)",
                path.display()
            );
            return None;
        }
        let mut child = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", path.display()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Self { child, stdout })
    }

    /// The next line the example prints (a line-buffered pipe: every `println!` arrives).
    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the example exited early");
        line.trim_end().to_owned()
    }

    /// The address in the example's first line, `... listening on ADDR ...`.
    fn listening_addr(&mut self) -> SocketAddr {
        let line = self.line();
        let rest = line
            .split_once("listening on ")
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .1;
        let addr = rest.split([' ', ',']).next().unwrap();
        addr.parse()
            .unwrap_or_else(|e| panic!("{addr:?} in {line:?}: {e}"))
    }

    /// Ctrl-C, as a terminal would send it.
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the example to exit by itself and returns the rest of its output.
    fn finish(mut self) -> String {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit status {status}; output: {rest}");
        rest
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        // Only a failing test leaves a live child behind; `finish` already reaped the others.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn round_trip(s: &mut impl ReadWrite, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn echo_echoes_and_drains_on_ctrl_c() {
    let Some(mut echo) = Example::spawn("echo", &["127.0.0.1:0"]) else {
        return;
    };
    let addr = echo.listening_addr();
    let mut client = connect(addr);
    round_trip(&mut client, b"hello");

    echo.interrupt();
    assert!(
        echo.line()
            .starts_with("shutting down: 1 open connection(s)")
    );
    // Draining: the open connection is still served.
    round_trip(&mut client, b"still here");

    client.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let out = echo.finish();
    assert!(
        out.contains("stopped: 1 finished, 0 closed by force, 1 accepted in total"),
        "{out}"
    );
}

#[test]
fn proxy_forwards_to_an_upstream() {
    let Some(mut echo) = Example::spawn("echo", &["127.0.0.1:0"]) else {
        return;
    };
    let upstream = echo.listening_addr().to_string();
    let Some(mut proxy) = Example::spawn("proxy", &["127.0.0.1:0", &upstream]) else {
        return;
    };
    let addr = proxy.listening_addr();

    let mut client = connect(addr);
    round_trip(&mut client, b"through the proxy");
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    round_trip(&mut client, &big);
    // The half-close travels through: echo sees FIN, finishes, and the proxy closes.
    client.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // The proxy reports the connection once both directions ended.
    let report = proxy.line();
    assert!(report.ends_with(" bytes down"), "{report}");
    proxy.interrupt();
    proxy.finish();
    echo.interrupt();
    echo.finish();
}

#[test]
fn tls_echo_serves_tls_with_the_given_certificate() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../__test__/fixtures/tls");
    let cert = format!("{fixtures}/server.crt");
    let key = format!("{fixtures}/server.key");
    let Some(mut server) = Example::spawn("tls_echo", &["127.0.0.1:0", &cert, &key]) else {
        return;
    };
    let addr = server.listening_addr();

    // The client side comes from the crate too: `tls::client_config` with the test CA.
    let settings = tcpserver_core::tls::ClientTlsSettings {
        ca: Some(std::fs::read(format!("{fixtures}/ca.crt")).unwrap()),
        alpn: vec![b"echo".to_vec()],
        ..Default::default()
    };
    let config: Arc<rustls::ClientConfig> = tcpserver_core::tls::client_config(&settings).unwrap();
    let name = "localhost".try_into().unwrap();
    let session = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(session, connect(addr));
    round_trip(&mut tls, b"hello over TLS");
    let big: Vec<u8> = (0..200 * 1024).map(|i| (i % 253) as u8).collect();
    round_trip(&mut tls, &big);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"echo"[..]));

    // close_notify, then the echo server finishes the connection and closes.
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(server.line().ends_with(" closed"));

    server.interrupt();
    let out = server.finish();
    assert!(
        out.contains("stopped: 0 finished, 0 closed by force, 1 accepted in total"),
        "{out}"
    );
}
