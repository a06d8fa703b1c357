//! Moving a connection from the consumer's loop to the Tokio driver, for what only the Tokio
//! driver does (pipes, files, StartTLS): the socket leaves the loop's epoll set and joins
//! Tokio's, and the connection keeps its id, output queue, read credit, reading state,
//! timeouts and counters. Everything it read on the loop is already in the sink, ahead of
//! what the driver will report, so no byte is lost or reordered.

use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::output::Output;
use super::{LocalLoop, State};
use crate::driver::conn::Shared;
use crate::driver::event::{DriveOptions, TimeoutKind};
use crate::error::{Error, Result};
use crate::stream::Stream;

impl LocalLoop {
    /// Hands connection `id` over, reading in `mode` (`PAUSING` for a pipe: the driver then
    /// reports `Paused`).
    pub(super) fn hand_over(&self, st: &mut State, id: u32, mode: u8) -> Result<()> {
        let Some(mut c) = st.conns.remove(&id) else {
            return Err(Error::ConnectionClosed);
        };
        // Its `live` count ends here; the Tokio driver's task holds the connection now.
        self.forget();
        if let Some(poll) = &st.poll {
            let _ = poll.registry().deregister(&mut c.stream);
        }
        // Read before the connection is taken apart below.
        let timeouts = TimeoutKind::ALL.map(|kind| c.timeout_ms(kind));
        // SAFETY: the descriptor comes out of the mio stream, which gives up its ownership,
        // and goes straight into exactly one std stream.
        let std = unsafe { std::net::TcpStream::from_raw_fd(c.stream.into_raw_fd()) };
        let tokio = {
            let _entered = self.runtime.enter();
            tokio::net::TcpStream::from_std(std)?
        };
        let opts = DriveOptions {
            high_water_mark: c.high_water_mark,
            ..DriveOptions::default()
        };
        let shared = Arc::new(Shared::new(
            id,
            Stream::Tcp(tokio),
            c.info,
            self.tokio_sink.clone(),
            c.abort,
            None,
            None,
            opts,
        ));
        *shared.out() = std::mem::replace(&mut c.out, Output::new()).into_outbox();
        shared.credit.store(c.credit, Relaxed);
        shared.mode.store(mode, Relaxed);
        for (kind, ms) in TimeoutKind::ALL.into_iter().zip(timeouts) {
            shared.timeout_ms[kind].store(ms, Relaxed);
        }
        shared.bytes_read.store(c.bytes_read, Relaxed);
        shared.bytes_written.store(c.bytes_written, Relaxed);
        // The peer's end was reported already: the driver must not read (and report) it again.
        // A pipe still pauses first; it reads the end itself.
        if !c.read_open && mode != crate::driver::conn::PAUSING {
            shared.mode.store(crate::driver::conn::INPUT_DONE, Relaxed);
        }
        self.registry.lock().insert(id, shared.clone());
        let (registry, sink) = (self.registry.clone(), self.tokio_sink.clone());
        let (life, lease) = (c.life, c.lease);
        self.runtime.spawn(async move {
            registry.serve_registered(&shared, &*sink).await;
            // Its place in the server is given back (once: an adopted connection's server
            // task gives it back too), and the server learns that it ended.
            if let Some(lease) = lease {
                lease.give_back();
            }
            drop(life);
        });
        Ok(())
    }
}
