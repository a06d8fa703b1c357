//! The consumer's calls on connections served by its loop: write, read credit, direct reads,
//! closing, settings, and the hand-over for jobs. Each locks the loop's state briefly and
//! leaves what needs the socket's readiness to the next round (`mark`), which runs before the
//! turn the call was made in ends, or wakes the loop when it was made outside one.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::conn::LocalConn;
use super::{LocalLoop, State};
use crate::config::KeepAlive;
use crate::connection::ConnectionInfo;
#[cfg(doc)]
use crate::driver::Connections;
use crate::driver::DrivenInfo;
use crate::driver::conn::PAUSING;
use crate::driver::counters::millis;
use crate::driver::event::TimeoutKind;
use crate::driver::outbox::Closing;
use crate::error::Result;

/// What [`LocalLoop::release_or_close`] did.
#[derive(Debug)]
pub enum Released {
    /// The connection closes in a round of the loop, which reports `Closed`.
    Closing,
    /// It closed during the call; no `Closed` event comes for it.
    Closed(ConnectionInfo),
}

impl LocalLoop {
    /// Marks `id` for the next round (and wakes the loop if the consumer is not in a turn).
    fn mark(&self, st: &mut State, id: u32) {
        st.dirty.push(id);
        self.wake();
    }

    /// Runs `f` on connection `id` if this loop serves it; `None` otherwise.
    fn with<T>(&self, id: u32, f: impl FnOnce(&mut LocalConn, &mut bool) -> T) -> Option<T> {
        let mut st = self.lock();
        let c = st.conns.get_mut(&id)?;
        let mut again = false;
        let out = f(c, &mut again);
        if again {
            self.mark(&mut st, id);
        }
        Some(out)
    }

    /// Number of connections served here.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// `true` when no connection is served here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// See [`Connections::write`]; `None` when this loop does not serve `id`.
    pub fn write(&self, id: u32, data: &[u8]) -> Option<Result<usize>> {
        self.with(id, |c, again| {
            let r = c.write(data);
            // The next step asks for writable readiness if the write had to wait, and arms the
            // write deadline.
            *again =
                c.needs_write_interest() || (c.timeout_ms(TimeoutKind::Write) > 0 && !c.out.idle());
            r
        })
    }

    /// See [`Connections::ack`].
    pub fn ack(&self, id: u32, n: usize) -> Option<()> {
        self.with(id, |c, again| {
            let before = c.credit;
            c.credit += n as i64;
            *again = before <= 0 && c.credit > 0 && c.readable;
        })
    }

    /// See [`Connections::read_now`].
    pub fn read_now(&self, id: u32, delivered: u64, buf: &mut [u8]) -> Option<usize> {
        let direct = &self.registry.counters.direct_reads;
        self.with(id, |c, again| {
            let (n, look) = c.read_now(delivered, buf, direct);
            *again = look;
            n
        })
    }

    /// See [`Connections::end`], [`Connections::release`], [`Connections::close`].
    fn set_closing(&self, id: u32, how: Closing) -> Option<Result<()>> {
        self.with(id, |c, again| {
            c.out.close_at_least(how);
            // Nothing left to send: the FIN goes out now, right behind the last write. (A
            // release is left to the round this marks, which closes at once when nothing
            // unread waits: the FIN then comes with the close, and a `shutdown` is saved.)
            if how == Closing::End && !c.out.write_shut && c.out.idle() {
                c.shutdown_write();
            }
            *again = true;
            Ok(())
        })
    }

    /// See [`Connections::end`].
    pub fn end(&self, id: u32) -> Option<Result<()>> {
        self.set_closing(id, Closing::End)
    }

    /// See [`Connections::release`].
    pub fn release(&self, id: u32) -> Option<Result<()>> {
        self.set_closing(id, Closing::Release)
    }

    /// [`LocalLoop::release`], closing right here when the round it marks would close at
    /// once without a syscall (nothing left to send, no unread input known) and the consumer
    /// calls inside a turn (answering its events): then no `Closed` event is reported for it,
    /// and its facts come back instead. A close reported apart cost the consumer a call for
    /// that event alone. `None` when this loop does not serve `id`.
    pub fn release_or_close(&self, id: u32) -> Option<Released> {
        let mut st = self.lock();
        let c = st.conns.get_mut(&id)?;
        c.out.close_at_least(Closing::Release);
        if !(self.busy.load(Relaxed) && c.closes_at_once()) {
            self.mark(&mut st, id);
            return Some(Released::Closing);
        }
        let c = self.remove(&mut st, id, None)?;
        drop(st);
        let LocalConn { info, .. } = *c;
        self.forget();
        Some(Released::Closed(info))
    }

    /// See [`Connections::close`].
    pub fn close_now(&self, id: u32) -> Option<Result<()>> {
        self.set_closing(id, Closing::Now)
    }

    /// See [`Connections::info`].
    pub fn info(&self, id: u32) -> Option<DrivenInfo> {
        self.with(id, |c, _| DrivenInfo {
            info: c.info.clone(),
            bytes_read: c.bytes_read,
            bytes_written: c.bytes_written,
            queued: c.out.pending(),
            tls: None,
        })
    }

    /// See [`Connections::set_no_delay`].
    pub fn set_no_delay(&self, id: u32, on: bool) -> Option<Result<()>> {
        self.with(id, |c, _| Ok(c.stream.set_nodelay(on)?))
    }

    /// See [`Connections::set_keep_alive`].
    pub fn set_keep_alive(&self, id: u32, keep_alive: Option<&KeepAlive>) -> Option<Result<()>> {
        self.with(id, |c, _| {
            keep_alive.map_or(Ok(()), KeepAlive::validate)?;
            let sock = SockRef::from(&c.stream);
            match keep_alive {
                Some(k) => crate::socket::set_keep_alive_on(sock, k)?,
                None => sock.set_keepalive(false)?,
            }
            Ok(())
        })
    }

    /// See [`Connections::set_timeout`].
    pub fn set_timeout(
        &self,
        id: u32,
        kind: TimeoutKind,
        timeout: Option<Duration>,
    ) -> Option<Result<()>> {
        let mut st = self.lock();
        let State { conns, timers, .. } = &mut *st;
        let c = conns.get_mut(&id)?;
        if let Err(e) = crate::config::check_timeout(kind.option(), timeout) {
            return Some(Err(e));
        }
        c.set_timeout(kind, millis(timeout), Instant::now(), timers);
        self.mark(&mut st, id);
        Some(Ok(()))
    }

    /// Stops reading `id` for a pipe (see [`Connections::pause_reading`]): the connection
    /// moves to the Tokio driver, which reports `Paused`.
    pub fn pause_reading(&self, id: u32) -> Option<Result<()>> {
        let mut st = self.lock();
        st.conns.get(&id)?;
        Some(self.hand_over(&mut st, id, PAUSING))
    }

    /// Moves `id` to the Tokio driver for a job (a file): it keeps reading there.
    /// `Ok(())` also when this loop does not serve `id`.
    pub fn hand_over_for_job(&self, id: u32) -> Result<()> {
        let mut st = self.lock();
        let Some(c) = st.conns.get(&id) else {
            return Ok(());
        };
        let mode = c.mode;
        self.hand_over(&mut st, id, mode)
    }
}
