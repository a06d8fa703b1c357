//! One accept loop. It never dies on an error: transient ones are retried at once, resource
//! exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) and anything unexpected back off
//! 10 ms doubling to 1 s like the Go model, and every error is counted by errno.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::addr::Address;
use crate::gate::{Admission, Gate};
use crate::listener::Listener;
use crate::stats::Counters;
use crate::stream::Stream;

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What to do after an accept error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OnError {
    /// The failed connection is gone but the listener is fine: accept again now.
    Retry,
    /// Out of a resource: wait before the next accept.
    Backoff,
}

pub(crate) fn classify(e: &io::Error) -> OnError {
    match e.raw_os_error() {
        Some(
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::EINTR
            | libc::EAGAIN
            | libc::ECONNRESET,
        ) => OnError::Retry,
        _ => OnError::Backoff,
    }
}

pub(crate) fn next_backoff(current: Option<Duration>) -> Duration {
    current.map_or(BACKOFF_MIN, |d| (d * 2).min(BACKOFF_MAX))
}

/// Accepts on `listener` (bound to `addr`) until `stop`, asks `gate` about each client and
/// hands the admitted ones to `dispatch(stream, peer, local address if known, admission)`.
pub(crate) async fn run<D>(
    listener: Listener,
    addr: Address,
    gate: Arc<Gate>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    dispatch: D,
) where
    D: Fn(Stream, Address, Option<&Address>, Admission) + Send + 'static,
{
    // A listener on a wildcard address accepts on whichever local address the client chose.
    let local = match &addr {
        Address::Ip(a) if a.ip().is_unspecified() => None,
        _ => Some(addr),
    };
    let mut backoff: Option<Duration> = None;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = gate.unpaused() => {}
        }
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = gate.pausing() => continue,
            res = listener.accept() => res,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = None;
                // The limit is checked after accept: with several SO_REUSEPORT sockets, a loop
                // holding the last slot while blocked in accept() on its own socket would starve
                // a client the kernel queued on another one. So at most one accepted
                // connection per loop waits here, unhandled, for a slot (`LimitPolicy::Hold`).
                // A connection already accepted is served even if a shutdown began meanwhile
                // (when there is room: admission is then immediate); dropping it would reset a
                // client that a process taking over the same socket could have served.
                let admission = tokio::select! {
                    biased;
                    admission = gate.admit() => admission,
                    () = stop.cancelled() => return,
                };
                // Refused clients are closed (dropped) at once; the counters say why.
                if let Some(mut admission) = admission
                    && gate.admit_peer(&mut admission, &peer)
                {
                    dispatch(stream, peer, local.as_ref(), admission);
                }
            }
            Err(e) => {
                counters.accept_error(e.raw_os_error().unwrap_or(0));
                if classify(&e) == OnError::Backoff {
                    let wait = next_backoff(backoff);
                    backoff = Some(wait);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_one_second() {
        let mut d = None;
        let mut seen = vec![];
        for _ in 0..10 {
            let n = next_backoff(d);
            seen.push(n.as_millis());
            d = Some(n);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[test]
    fn classifies_errors() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(classify(&e(libc::ECONNABORTED)), OnError::Retry);
        assert_eq!(classify(&e(libc::EMFILE)), OnError::Backoff);
        assert_eq!(classify(&e(libc::ENFILE)), OnError::Backoff);
        assert_eq!(classify(&e(libc::ENOBUFS)), OnError::Backoff);
        assert_eq!(classify(&e(libc::EBADF)), OnError::Backoff);
    }
}
