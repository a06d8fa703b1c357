//! The consumer loop's own accepting: a server's TCP listeners in the loop's epoll set. A
//! client is accepted, admitted and read on the consumer's thread in one turn, with no accept
//! thread to wake, no task per connection, and one `epoll_ctl` (the Tokio accept loop's
//! socket joins Tokio's epoll set, leaves it, then joins the loop's: three).
//!
//! Only servers whose admission decides at once accept here (no `maxConnections` that holds
//! clients in the backlog, no PROXY header to wait for; see `Gate::decides_at_once`); the
//! others keep their Tokio accept loops and hand sockets over with [`LocalLoop::adopt`]. The
//! server keeps its lifecycle: it closes the listeners here when it stops accepting, and
//! tells the loop when a pause ends or a forced shutdown aborts.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use mio::{Interest, Token};
use socket2::SockRef;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::conn::{Life, Report};
use super::timers::Kind;
use super::{LocalLoop, Request, State};
use crate::accept::{OnError, classify, next_backoff};
use crate::addr::Address;
use crate::connection::ConnectionInfo;
use crate::driver::event::DriveOptions;
use crate::lease::Lease;

/// Listeners' tokens: above every connection id (a `u32`), below the loop's own tokens.
pub(super) const LISTENER_BASE: usize = 1 << 40;
/// Clients accepted from one listener per turn before the connections get their turn. As
/// libuv and uSockets do, a turn empties the backlog (the default backlog is 511): clients
/// left there while the thread runs JavaScript would overflow it, and the kernel drops a
/// handshake's last ACK when it is full. The bound only keeps a flood from starving the
/// connections already open.
const ACCEPTS_PER_TURN: usize = 1024;

/// The server's side of accepting on a loop: its admission, counters and lifecycle.
pub(crate) trait Admit: Send + Sync {
    /// Whether to accept now: the server has not stopped accepting and is not paused.
    fn accepting(&self) -> bool;
    /// Admits the client of an accepted socket (counted, socket options applied); `None`:
    /// refused (counted), and the socket is closed.
    fn admit(&self, sock: SockRef<'_>, peer: Address, local: Option<&Address>) -> Option<Admitted>;
    /// Counts an accept error by its errno.
    fn accept_error(&self, errno: i32);
}

/// An admitted client's facts and its place in its server.
pub(crate) struct Admitted {
    pub(crate) info: ConnectionInfo,
    /// Its `active` count and admission slots, given back as it closes.
    pub(crate) lease: Arc<Lease>,
    /// Its place among the connections a shutdown waits for.
    pub(crate) token: TaskTrackerToken,
    /// The server's forced-shutdown signal, for a hand-over to the Tokio driver.
    pub(crate) abort: CancellationToken,
}

pub(super) struct LoopListener {
    listener: mio::net::TcpListener,
    /// The listener's own address when it names one (not a wildcard): no `getsockname` per
    /// client.
    local: Option<Address>,
    server: Arc<dyn Admit>,
    opts: DriveOptions,
    /// `TCP_DEFER_ACCEPT` is set: a client is accepted with its first bytes, so its first read
    /// comes in the round that accepts it (without it, that read mostly finds nothing: the
    /// client's request follows the handshake, and its edge announces it).
    data_first: bool,
    /// Readiness not used up yet (the set is edge-triggered): clients may wait in the backlog.
    ready: bool,
    /// After a resource error (`EMFILE`...), accepting waits for this deadline, doubling from
    /// 10 ms to 1 s as the Tokio accept loop does.
    retry_at: Option<Instant>,
    backoff: Option<Duration>,
}

impl LocalLoop {
    /// Accepts on `listener` (bound to `addr`) on this loop, for `server`, until
    /// [`LocalLoop::close_listeners`]. A loop accepts for one server.
    pub(crate) fn listen(
        &self,
        listener: tokio::net::TcpListener,
        addr: &Address,
        server: Arc<dyn Admit>,
        opts: DriveOptions,
    ) -> io::Result<()> {
        let mut listener = mio::net::TcpListener::from_std(listener.into_std()?);
        let data_first = crate::sys::defers_accept(&listener);
        let local = match addr {
            Address::Ip(a) if a.ip().is_unspecified() => None,
            other => Some(other.clone()),
        };
        let mut st = self.lock();
        let index = st.listeners.len();
        let Some(poll) = &st.poll else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        poll.registry().register(
            &mut listener,
            Token(LISTENER_BASE + index),
            Interest::READABLE,
        )?;
        st.listeners.push(LoopListener {
            listener,
            local,
            server,
            opts,
            data_first,
            // Clients may have queued since the socket was bound.
            ready: true,
            retry_at: None,
            backoff: None,
        });
        drop(st);
        self.push(Request::AcceptAgain);
        Ok(())
    }

    /// Looks at every listener's backlog again: accepting was paused and resumes.
    pub(crate) fn accept_again(&self) {
        self.push(Request::AcceptAgain);
    }

    /// Closes the listeners (their port is free when this returns). Clients already accepted
    /// stay.
    pub(crate) fn close_listeners(&self) {
        let mut st = self.lock();
        let listeners = std::mem::take(&mut st.listeners);
        for mut l in listeners {
            if let Some(poll) = &st.poll {
                let _ = poll.registry().deregister(&mut l.listener);
            }
        }
    }

    /// Closes every connection now, as a forced shutdown does (the server aborted).
    pub(crate) fn abort_all(&self) {
        self.push(Request::AbortAll);
    }

    /// Accepts the clients waiting on every ready listener (up to a bound per turn), admits
    /// them, and starts serving each: its `Open` is reported, and its first read comes in
    /// this round with `TCP_DEFER_ACCEPT`, else when its first bytes' edge does.
    pub(super) fn accept_ready(&self, st: &mut State, report: &mut Report<'_>, now: Instant) {
        st.more_to_accept = false;
        for index in 0..st.listeners.len() {
            for _ in 0..ACCEPTS_PER_TURN {
                let l = &mut st.listeners[index];
                if !l.ready || l.retry_at.is_some() || !l.server.accepting() {
                    break;
                }
                let (stream, peer) = match l.listener.accept() {
                    Ok(accepted) => accepted,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        l.ready = false;
                        break;
                    }
                    Err(e) => {
                        l.server.accept_error(e.raw_os_error().unwrap_or(0));
                        if classify(&e) == OnError::Backoff {
                            let wait = next_backoff(l.backoff);
                            l.backoff = Some(wait);
                            l.retry_at = Some(now + wait);
                            st.timers.push(now + wait, index as u32, Kind::Accept);
                            break;
                        }
                        continue;
                    }
                };
                l.backoff = None;
                let Some(admitted) =
                    l.server
                        .admit(SockRef::from(&stream), Address::Ip(peer), l.local.as_ref())
                else {
                    continue; // refused: dropped, so closed
                };
                let (opts, data_first) = (l.opts, l.data_first);
                let Admitted {
                    info,
                    lease,
                    token,
                    abort,
                } = admitted;
                self.live.fetch_add(1, Relaxed);
                let life = Life::Tracked { _token: token };
                self.start(
                    st,
                    stream,
                    info,
                    abort,
                    life,
                    Some(lease),
                    opts,
                    0,
                    data_first,
                    report,
                    now,
                );
            }
            let l = &st.listeners[index];
            if l.ready && l.retry_at.is_none() && l.server.accepting() {
                st.more_to_accept = true; // its bound was reached: the rest in the next turn
            }
        }
    }
}

/// A listener's readiness event.
pub(super) fn listener_ready(listeners: &mut [LoopListener], token: usize) {
    if let Some(l) = listeners.get_mut(token - LISTENER_BASE) {
        l.ready = true;
    }
}

/// Every listener's backlog is looked at again (a resume, a new listener).
pub(super) fn listeners_ready(listeners: &mut [LoopListener]) {
    for l in listeners {
        l.ready = true;
    }
}

/// A listener's backoff deadline came.
pub(super) fn backoff_over(listeners: &mut [LoopListener], index: u32, at: Instant) {
    if let Some(l) = listeners.get_mut(index as usize)
        && l.retry_at == Some(at)
    {
        l.retry_at = None;
    }
}
