//! A connection joins the loop: adopted from an accept loop elsewhere (`open`), or accepted
//! by the loop itself (`start`, which `listen.rs` calls): it joins the epoll set, its `Open`
//! is reported, and it is read when its first bytes are there.

use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Token};
use tokio_util::sync::CancellationToken;

use super::conn::{Life, LocalConn, Report};
use super::{LocalLoop, State};
use crate::connection::{Connection, ConnectionInfo};
use crate::driver::{DriveOptions, Event};
use crate::lease::Lease;
use crate::stream::Stream;

impl LocalLoop {
    /// Serves a connection handed over with `adopt` (accepted by a Tokio accept loop, or back
    /// from the Tokio driver); one that is not TCP is closed, and its server's task completes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        &self,
        st: &mut State,
        conn: Connection,
        opts: DriveOptions,
        tag: u32,
        life: Life,
        report: &mut Report<'_>,
        now: Instant,
    ) {
        let lease = conn.lease().cloned();
        let (stream, info, abort) = conn.into_parts();
        let adopted = match stream {
            Stream::Tcp(s) => s.into_std().map(mio::net::TcpStream::from_std),
            #[cfg(unix)]
            Stream::Unix(_) => Err(std::io::ErrorKind::Unsupported.into()),
        };
        let Ok(stream) = adopted else {
            self.forget();
            return; // dropped: closed, and its server's task completes
        };
        // Handed over after an accept elsewhere (and often a PROXY header read): its first
        // bytes are likely there, so it is read at once.
        self.start(
            st, stream, info, abort, life, lease, opts, tag, true, report, now,
        );
    }

    /// Serves a connection counted in `live`: joins the epoll set, reports `Open`, and, when
    /// `read_now` (its first bytes are likely there), reads in this round; otherwise the edge
    /// of its first bytes announces them (joining the set reports bytes already there), which
    /// saves a read that finds nothing. A connection that cannot join is closed, and its
    /// place given back.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &self,
        st: &mut State,
        mut stream: mio::net::TcpStream,
        info: ConnectionInfo,
        abort: CancellationToken,
        life: Life,
        lease: Option<Arc<Lease>>,
        opts: DriveOptions,
        tag: u32,
        read_now: bool,
        report: &mut Report<'_>,
        now: Instant,
    ) {
        let id = info.id as u32;
        let registered = st.poll.as_ref().is_some_and(|p| {
            p.registry()
                // Writable readiness is asked for once a write has to wait (`progress_one`):
                // joining with it reported every new socket as writable, a turn's worth of
                // events that woke the loop for nothing.
                .register(&mut stream, Token(id as usize), Interest::READABLE)
                .is_ok()
        });
        if st.conns.contains_key(&id) || !registered {
            if let Some(lease) = lease {
                lease.give_back();
            }
            self.forget();
            return;
        }
        let c = LocalConn::new(stream, info, abort, life, lease, opts, now, &mut st.timers);
        st.conns.insert(id, Box::new(c));
        report.event(id, Event::Open { tag });
        // A first request already sent then follows its Open in the batch: JavaScript queues
        // it before the handler starts, whose first read finds it there instead of waiting on
        // a promise.
        if read_now {
            self.progress_one(st, id, report, now);
        }
    }
}
