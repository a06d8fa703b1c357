//! Event-mode connections (`tcpserver_core::driver`): the idle and write timeouts, seen
//! through the recording sink of `driver_events.rs`.

mod support;

use std::time::{Duration, Instant};

use tcpserver_core::ErrorKind;
use tcpserver_core::driver::{DriveOptions, TimeoutKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::driver::{Ev, HWM, Harness};
use support::{read_to_close, within};

#[tokio::test]
async fn idle_timeout_closes_a_quiet_connection() {
    let idle = Duration::from_millis(200);
    let (h, mut client) = Harness::new(
        DriveOptions {
            high_water_mark: HWM,
            ..DriveOptions::default()
        }
        .with_timeout(TimeoutKind::Idle, Some(idle)),
    )
    .await;

    // Traffic keeps it alive well past the timeout.
    let mut quiet_since = Instant::now();
    for _ in 0..8 {
        client.write_all(b".").await.unwrap();
        // The idle time runs from the last byte, not from the end of the sleep after it.
        quiet_since = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.sink.closed(), None, "closed although bytes kept moving");

    let closed = h.wait_closed().await;
    let after = quiet_since.elapsed();
    assert_eq!(closed, Ev::Closed(Some((ErrorKind::IdleTimeout, None))));
    assert!(
        after >= idle - Duration::from_millis(20),
        "closed after only {after:?}"
    );
    assert!(
        after < 3 * idle + Duration::from_millis(200),
        "closed only after {after:?}"
    );
    assert_eq!(read_to_close(&mut client).await, b"");
    assert!(h.conns.is_empty());
}

/// With Tokio's clock paused the close time is exact: with a 1000 ms idle timeout, bytes at
/// 0 and 600 ms close the connection at 1600 ms (a check once per period closed it at 2000).
#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_at_the_last_byte_plus_the_timeout() {
    let idle = Duration::from_millis(1000);
    let (h, mut client) = Harness::new(
        DriveOptions {
            high_water_mark: HWM,
            ..DriveOptions::default()
        }
        .with_timeout(TimeoutKind::Idle, Some(idle)),
    )
    .await;
    let start = tokio::time::Instant::now();
    client.write_all(b"a").await.unwrap();
    h.wait_received(1).await;
    tokio::time::sleep_until(start + Duration::from_millis(600)).await;
    client.write_all(b"b").await.unwrap();
    h.wait_received(2).await;
    let last = tokio::time::Instant::now(); // within the 5 ms poll of the byte's arrival
    let closed = h.wait_closed().await;
    let at = start.elapsed();
    assert_eq!(closed, Ev::Closed(Some((ErrorKind::IdleTimeout, None))));
    assert!(
        at >= Duration::from_millis(1600)
            && at <= (last - start) + idle + Duration::from_millis(10),
        "closed at {at:?}; bytes at 0 and 600 ms, idle timeout {idle:?}"
    );
    assert_eq!(h.conns.timeout_stats().idle, 1);

    // A connection that never says a word is closed one timeout after it opened.
    let opened = tokio::time::Instant::now();
    let (h, _quiet) = Harness::new(
        DriveOptions {
            high_water_mark: HWM,
            ..DriveOptions::default()
        }
        .with_timeout(TimeoutKind::Idle, Some(idle)),
    )
    .await;
    h.wait_closed().await;
    let at = opened.elapsed();
    assert!(
        at >= idle && at <= idle + Duration::from_millis(15),
        "a quiet connection closed at {at:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_timeout_closes_when_the_peer_stops_reading() {
    let timeout = Duration::from_millis(300);
    let (h, mut client) = Harness::new(
        DriveOptions {
            high_water_mark: HWM,
            ..DriveOptions::default()
        }
        .with_timeout(TimeoutKind::Write, Some(timeout)),
    )
    .await;

    // A slow reader that keeps taking bytes is not timed out, however long output waits.
    let chunk = vec![7u8; 256 * 1024];
    let mut queued_total = 0;
    let mut read = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let slow_until = Instant::now() + 3 * timeout;
    while Instant::now() < slow_until {
        if h.conns.info(h.id).unwrap().queued < HWM {
            h.conns.write(h.id, &chunk).unwrap();
            queued_total += chunk.len();
        }
        read += within("slow read", client.read(&mut buf)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(
        h.sink.closed(),
        None,
        "closed although the peer kept reading"
    );
    assert!(read > 0 && queued_total > read);

    // Then it stops reading: the queue stalls and the connection closes after the timeout
    // (counted from the socket's last progress, which may precede the client's last read:
    // the client reads from its own receive buffer).
    let stalled_since = Instant::now();
    let closed = h.wait_closed().await;
    let after = stalled_since.elapsed();
    assert_eq!(closed, Ev::Closed(Some((ErrorKind::WriteTimeout, None))));
    assert!(
        after < 2 * timeout + Duration::from_millis(500),
        "after {after:?}"
    );
    assert_eq!(h.conns.timeout_stats().write, 1);
    assert_eq!(h.conns.timeout_stats().idle, 0);
    assert!(h.conns.is_empty());
}

/// One setter for every kind: a live connection's idle timeout set later closes it one timeout
/// after the call; a value out of the core's range is refused, named by its option.
#[tokio::test]
async fn set_timeout_changes_a_live_connection_and_checks_the_range() {
    let (h, _quiet) = Harness::new(DriveOptions::default()).await;
    let too_long = Some(tcpserver_core::MAX_TIMEOUT + Duration::from_millis(1));
    for kind in TimeoutKind::ALL {
        let err = h.conns.set_timeout(h.id, kind, too_long).unwrap_err();
        assert_eq!(err.option(), Some(kind.option()));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(h.sink.closed(), None, "no timeout was set");
    let set = Instant::now();
    let idle = Duration::from_millis(200);
    h.conns
        .set_timeout(h.id, TimeoutKind::Idle, Some(idle))
        .unwrap();
    let closed = h.wait_closed().await;
    assert_eq!(closed, Ev::Closed(Some((ErrorKind::IdleTimeout, None))));
    assert!(
        set.elapsed() >= idle,
        "closed {:?} after the call",
        set.elapsed()
    );
    let err = h
        .conns
        .set_timeout(h.id, TimeoutKind::Write, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionClosed);
}
