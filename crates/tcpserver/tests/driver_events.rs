//! Event-mode connections (`tcpserver_core::driver`): the event sequence, read credit, the write
//! queue and `Drain`, half-close, direct reads, and errors, seen through a recording sink.
//! Timeouts: `driver_timeouts.rs`.

mod support;

use std::time::{Duration, Instant};

use tcpserver_core::driver::DriveOptions;
use tcpserver_core::{Error, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::driver::{Ev, HWM, Harness};
use support::{read_to_close, wait_until, within};

#[tokio::test]
async fn open_data_end_then_closed_after_release() {
    let (h, mut client) = Harness::new(DriveOptions::default()).await;
    client.write_all(b"hello").await.unwrap();
    h.wait_received(5).await;
    assert_eq!(h.sink.log().data, b"hello");
    h.conns.ack(h.id, 5).unwrap();

    client.shutdown().await.unwrap(); // FIN
    wait_until("End", || h.sink.events().contains(&Ev::End)).await;

    // An empty queue and a socket with room: everything goes straight to the kernel.
    assert_eq!(h.conns.write(h.id, b"bye").unwrap(), 0);
    let info = h.conns.info(h.id).unwrap();
    assert_eq!(
        (info.bytes_read, info.bytes_written, info.queued),
        (5, 3, 0)
    );
    assert_eq!(
        h.conns.peer_addr(h.id).unwrap(),
        client.local_addr().unwrap()
    );

    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        h.sink.closed(),
        None,
        "the connection lives on after End until released"
    );
    h.conns.release(h.id).unwrap();
    assert_eq!(h.wait_closed().await, Ev::Closed(None));
    assert_eq!(read_to_close(&mut client).await, b"bye");

    let events = h.sink.events();
    let data: usize = events
        .iter()
        .map(|e| if let Ev::Data(n) = e { *n } else { 0 })
        .sum();
    assert_eq!(data, 5);
    let shape: Vec<_> = events
        .into_iter()
        .filter(|e| !matches!(e, Ev::Data(_)))
        .collect();
    assert_eq!(shape, [Ev::Open, Ev::End, Ev::Closed(None)]);
    assert!(h.sink.log().events.iter().all(|(id, _)| *id == h.id));

    // Unregistered once closed.
    assert!(h.conns.is_empty());
    assert!(matches!(
        h.conns.write(h.id, b"x"),
        Err(Error::ConnectionClosed)
    ));
    assert!(matches!(h.conns.ack(h.id, 1), Err(Error::ConnectionClosed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_stops_at_the_credit_and_resumes_on_ack() {
    const TOTAL: usize = 1024 * 1024;
    let (h, client) = Harness::new(DriveOptions {
        high_water_mark: HWM,
        ..DriveOptions::default()
    })
    .await;
    let sent = support::random_bytes(7, TOTAL);
    let (_rd, mut wr) = client.into_split();
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move { wr.write_all(&sent).await.map(|()| wr) }
    });

    // Without ack the driver takes exactly one high-water mark, then leaves the rest to TCP.
    h.wait_received(HWM).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.sink.received(), HWM);
    assert_eq!(h.conns.info(h.id).unwrap().bytes_read, HWM as u64);

    // Each ack lets in as much again.
    let mut acked = 0;
    while acked < TOTAL {
        let received = h.sink.received();
        h.conns.ack(h.id, received - acked).unwrap();
        acked = received;
        if acked < TOTAL {
            h.wait_received(acked + 1).await;
            assert!(h.sink.received() <= acked + HWM, "read past the credit");
        }
    }
    let _wr = within("client writer", writer).await.unwrap().unwrap();
    assert!(
        h.sink.log().data == sent,
        "bytes arrived altered or out of order"
    );
    h.server.halt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_reach_the_high_water_mark_then_drain() {
    const TOTAL: usize = 8 * 1024 * 1024;
    let (h, mut client) = Harness::new(DriveOptions {
        high_water_mark: HWM,
        ..DriveOptions::default()
    })
    .await;
    let data = support::random_bytes(8, TOTAL);

    // The client reads nothing yet, so the kernel buffers fill and the rest is queued.
    let queued = h.conns.write(h.id, &data).unwrap();
    assert!(queued >= HWM, "only {queued} bytes queued");
    assert!(queued <= TOTAL);
    assert_eq!(h.conns.info(h.id).unwrap().queued, queued);
    // More data joins the queue behind it, untouched.
    assert_eq!(h.conns.write(h.id, b"tail").unwrap(), queued + 4);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !h.sink.events().contains(&Ev::Drain),
        "Drain before the queue emptied"
    );

    let mut back = vec![0u8; TOTAL + 4];
    within("client reads everything", client.read_exact(&mut back))
        .await
        .unwrap();
    assert!(
        back[..TOTAL] == data[..],
        "bytes arrived altered or out of order"
    );
    assert_eq!(&back[TOTAL..], b"tail");
    wait_until("Drain", || h.sink.events().contains(&Ev::Drain)).await;
    let info = h.conns.info(h.id).unwrap();
    assert_eq!((info.queued, info.bytes_written), (0, TOTAL as u64 + 4));
    assert_eq!(
        h.sink.events().iter().filter(|e| **e == Ev::Drain).count(),
        1
    );

    // Below the mark no Drain is promised.
    assert_eq!(h.conns.write(h.id, b"small").unwrap(), 0);
    h.server.halt().await;
}

#[tokio::test]
async fn end_half_closes_and_refuses_further_writes() {
    let (h, mut client) = Harness::new(DriveOptions::default()).await;
    assert_eq!(h.conns.write(h.id, b"last").unwrap(), 0);
    h.conns.end(h.id).unwrap();
    let err = h.conns.write(h.id, b"more").unwrap_err();
    assert!(matches!(err, Error::WriteAfterEnd), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::WriteAfterEnd);

    // The client sees our data and then FIN...
    let mut got = Vec::new();
    within("server FIN", client.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"last");
    // ...while its own direction stays open.
    client.write_all(b"still here").await.unwrap();
    h.wait_received(10).await;
    assert_eq!(h.sink.log().data, b"still here");
    assert_eq!(h.sink.closed(), None);

    client.shutdown().await.unwrap();
    wait_until("End", || h.sink.events().contains(&Ev::End)).await;
    h.conns.release(h.id).unwrap();
    assert_eq!(h.wait_closed().await, Ev::Closed(None));
}

/// Direct reads (`read_now`) on a consumer thread, mixed with the driver's reads: the bytes come
/// once and in order, both paths serve, and the end still comes as an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_now_and_driver_reads_interleave_in_order() {
    const TOTAL: usize = 16 * 1024 * 1024;
    let (h, client) = Harness::new(DriveOptions::default()).await;
    let sent = support::random_bytes(11, TOTAL);
    let (_rd, mut wr) = client.into_split();
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move {
            // Bursts of uneven sizes with pauses: the socket runs empty and reading passes back
            // to the driver again and again.
            let mut at = 0;
            let mut x: usize = 1;
            while at < sent.len() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345) % (1 << 31);
                let size = (1 + x % (256 * 1024)).min(sent.len() - at);
                wr.write_all(&sent[at..at + size]).await?;
                at += size;
                if x.is_multiple_of(8) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            wr.shutdown().await.map(|()| wr)
        }
    });
    let (conns, sink, id) = (h.conns.clone(), h.sink.clone(), h.id);
    let consumer = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(TOTAL);
        let (mut taken, mut direct) = (0, 0);
        let mut buf = vec![0u8; 64 * 1024];
        let started = Instant::now();
        while out.len() < TOTAL && started.elapsed() < Duration::from_secs(30) {
            {
                // What the driver read, as events: consumed at once, credit returned.
                let log = sink.log();
                out.extend_from_slice(&log.data[taken..]);
                conns.ack(id, log.data.len() - taken).unwrap();
                taken = log.data.len();
            }
            let n = conns.read_now(id, out.len() as u64, &mut buf).unwrap();
            if n > 0 {
                out.extend_from_slice(&buf[..n]);
                direct += 1;
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (out, direct, taken)
    });
    let (out, direct, via_events) = within("consumer", consumer).await.unwrap();
    let _wr = within("client writer", writer).await.unwrap().unwrap();
    assert_eq!(out.len(), TOTAL);
    assert!(out == sent, "bytes arrived altered or out of order");
    assert!(direct > 0, "no direct read");
    assert!(via_events > 0, "no read by the driver");
    assert_eq!(h.conns.data_stats().direct_reads, direct);
    // At the end read_now hands reading back; the driver reports it.
    assert_eq!(
        h.conns
            .read_now(h.id, TOTAL as u64, &mut [0u8; 16])
            .unwrap(),
        0
    );
    wait_until("End", || h.sink.events().contains(&Ev::End)).await;
    assert_eq!(h.conns.info(h.id).unwrap().bytes_read, TOTAL as u64);
    h.conns.release(h.id).unwrap();
    assert_eq!(h.wait_closed().await, Ev::Closed(None));
}

/// A reset met by a direct read is reported by the driver as the connection's error, as if
/// the driver had met it: the kernel reports it only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_met_by_read_now_closes_with_econnreset() {
    let (h, mut client) = Harness::new(DriveOptions::default()).await;
    client.write_all(&[1u8; 100_000]).await.unwrap();
    h.wait_received(1).await;
    // Without acks the driver stops at one high-water mark (64 KiB): the rest can only be read
    // directly, so reading is the consumer's when the reset comes.
    let mut delivered = h.sink.received() as u64;
    let mut buf = vec![0u8; 64 * 1024];
    while delivered < 100_000 {
        let n = h.conns.read_now(h.id, delivered, &mut buf).unwrap();
        delivered += n as u64;
        if n == 0 {
            // The driver read more meanwhile: count it as delivered.
            tokio::time::sleep(Duration::from_millis(5)).await;
            delivered = delivered.max(h.sink.received() as u64);
        }
    }
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    assert!(h.conns.data_stats().direct_reads > 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.conns.read_now(h.id, delivered, &mut buf).unwrap(), 0);
    assert_eq!(
        h.wait_closed().await,
        Ev::Closed(Some((ErrorKind::Os, Some(libc::ECONNRESET))))
    );
}

/// With nothing queued, `release` and `end` send the FIN themselves, on the caller's thread:
/// the peer sees its end while the driver has not run (this single-threaded runtime is blocked
/// in the client's read), as after `socket.end()`.
#[tokio::test]
async fn release_and_end_send_the_fin_at_once_when_nothing_is_queued() {
    for release in [true, false] {
        let (h, client) = Harness::new(DriveOptions::default()).await;
        assert_eq!(h.conns.write(h.id, b"bye").unwrap(), 0);
        if release {
            h.conns.release(h.id).unwrap();
        } else {
            h.conns.end(h.id).unwrap();
        }
        // Blocks the runtime: only a FIN already sent ends the read.
        let (client, got) = support::read_to_end_blocking(
            client,
            Duration::from_secs(2),
            "the FIN came before the driver ran",
        );
        assert_eq!(got, b"bye");
        if !release {
            assert!(
                h.conns.write(h.id, b"more").is_err(),
                "no writes after end()"
            );
            h.conns.release(h.id).unwrap();
        }
        drop(client);
        assert!(matches!(h.wait_closed().await, Ev::Closed(_)));
    }
}

/// A release with nothing unread in the socket closes at once, without waiting for the peer's
/// FIN (a linger would wait up to 2 s). With input left unread (read credit of one byte), it
/// sends the FIN and lingers until the peer's, so no RST can destroy what it wrote.
#[tokio::test]
async fn release_closes_at_once_when_nothing_is_unread_and_lingers_otherwise() {
    // Nothing unread: closed while the client keeps its end open.
    let (h, mut client) = Harness::new(DriveOptions::default()).await;
    assert_eq!(h.conns.write(h.id, b"bye").unwrap(), 0);
    h.conns.release(h.id).unwrap();
    let closed = support::within_for(
        Duration::from_millis(1000),
        "closed without the peer's FIN",
        h.wait_closed(),
    )
    .await;
    assert_eq!(closed, Ev::Closed(None));
    assert_eq!(read_to_close(&mut client).await, b"bye");

    // Input left unread: FIN, then the linger until the client's FIN.
    let opts = DriveOptions {
        high_water_mark: 1,
        ..DriveOptions::default()
    };
    let (h, mut client) = Harness::new(opts).await;
    client.write_all(b"more than one byte").await.unwrap();
    h.wait_received(1).await;
    assert_eq!(h.conns.write(h.id, b"bye").unwrap(), 0);
    h.conns.release(h.id).unwrap();
    let (client, got) =
        support::read_to_end_blocking(client, Duration::from_secs(5), "bye, then the FIN, no RST");
    assert_eq!(got, b"bye");
    assert!(h.sink.closed().is_none(), "lingering for the client's FIN");
    drop(client);
    assert_eq!(h.wait_closed().await, Ev::Closed(None));
}

#[tokio::test]
async fn peer_reset_is_reported_as_an_io_error() {
    let (h, client) = Harness::new(DriveOptions::default()).await;
    let client_addr = client.local_addr().unwrap();
    // SO_LINGER 0: close sends RST instead of FIN.
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let closed = h.wait_closed().await;
    assert_eq!(
        closed,
        Ev::Closed(Some((ErrorKind::Os, Some(libc::ECONNRESET))))
    );
    assert!(
        !h.sink.events().contains(&Ev::End),
        "a reset is not an orderly end"
    );
    assert!(h.conns.is_empty());
    // The registry has forgotten the connection; the event still says who it was.
    let info = h.sink.log().closed_info.clone().unwrap();
    assert_eq!(info.peer_addr, client_addr);
    assert_eq!(info.local_addr, h.server.local_addrs()[0]);
}

#[tokio::test]
async fn close_drops_the_queue_and_halt_reports_shutdown() {
    // close(): immediate, orderly from the consumer's point of view.
    let (h, mut client) = Harness::new(DriveOptions::default()).await;
    h.conns.close(h.id).unwrap();
    assert_eq!(h.wait_closed().await, Ev::Closed(None));
    assert_eq!(read_to_close(&mut client).await, b"");

    // A forced shutdown ends the driving task; Closed still arrives, exactly once.
    let (h, _client) = Harness::new(DriveOptions::default()).await;
    let report = within("halt", h.server.halt()).await;
    assert_eq!((report.completed, report.forced), (0, 1));
    let closed: Vec<_> = h
        .sink
        .events()
        .into_iter()
        .filter(|e| matches!(e, Ev::Closed(..)))
        .collect();
    assert_eq!(closed, [Ev::Closed(Some((ErrorKind::Shutdown, None)))]);
    assert!(h.conns.is_empty());
}
