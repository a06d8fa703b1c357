//! One connection served on the consumer's loop: its socket, output queue, reading state and
//! deadlines, and the synchronous steps the loop runs when the socket is ready (read into the
//! sink, flush, half-close, the lingering close). It mirrors the Tokio driver's `run.rs` for
//! plain TCP, without a task: no future, no waker, no registration beyond the epoll entry.

use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use socket2::SockRef;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::output::Output;
use super::timers::{Kind, Timers};
use crate::connection::ConnectionInfo;
use crate::driver::conn::{CONSUMER_READING, READING};
use crate::driver::counters::millis;
use crate::driver::event::{DriveOptions, Event, EventSink, READ_CHUNK, TimeoutKind, Timeouts};
use crate::driver::outbox::Closing;
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::stream::{unacknowledged, write_probe};

/// How long a closing connection drains unread input before it is closed anyway (as the Tokio
/// driver's `linger_close`).
const LINGER: Duration = Duration::from_secs(2);
/// Reads of one connection per readiness before the others get their turn.
const READS_PER_TURN: usize = 4;

/// The sink, and whether anything was reported through it (the loop then calls JavaScript).
pub(super) struct Report<'a> {
    pub(super) sink: &'a dyn EventSink,
    pub(super) produced: bool,
}

impl Report<'_> {
    pub(super) fn event(&mut self, id: u32, event: Event<'_>) {
        self.produced = true;
        self.sink.event(id, event);
    }
}

/// What ends with a connection: dropped as it closes, which tells its server that it ended.
pub(crate) enum Life {
    /// Adopted ([`LocalLoop::adopt`](super::LocalLoop::adopt)): the server's small task for
    /// it completes when this is dropped.
    Task { _done: oneshot::Sender<()> },
    /// Accepted by the loop itself (`listen.rs`): its place among the server's connections,
    /// which a shutdown waits for.
    Tracked { _token: TaskTrackerToken },
}

/// What a step decided.
pub(super) enum Step {
    Open,
    Close(Option<Error>),
}

pub(super) struct LocalConn {
    pub(super) stream: TcpStream,
    pub(super) info: ConnectionInfo,
    /// The server's abort signal, for a hand-over to the Tokio driver.
    pub(super) abort: CancellationToken,
    /// Dropped when the connection ends, which tells its server.
    pub(super) life: Life,
    /// Its place in its server, given back as it closes (before `Closed` is reported).
    pub(super) lease: Option<Arc<Lease>>,
    pub(super) out: Output,
    /// The timeouts, made when one is set (most connections have none).
    pub(super) deadlines: Option<Box<Deadlines>>,
    pub(super) credit: i64,
    pub(super) high_water_mark: usize,
    pub(super) bytes_read: u64,
    pub(super) bytes_written: u64,
    pub(super) mode: u8,
    /// Readiness seen and not yet used up (the epoll set is edge-triggered).
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The set reports writable readiness too: asked for once a write had to wait (a socket
    /// joins for readable readiness only).
    pub(super) write_interest: bool,
    /// The peer's FIN (or a reset) was announced: it stays to be read however short a read
    /// is, as no further edge will come for it.
    pub(super) read_closed: bool,
    pub(super) read_open: bool,
    pub(super) lingering: bool,
}

/// A connection's timeouts and what they armed.
#[derive(Default)]
pub(super) struct Deadlines {
    /// By kind, in ms (0: off).
    pub(super) ms: Timeouts<u64>,
    /// When bytes last moved (kept only while an idle timeout is set).
    activity: Option<Instant>,
    /// The deadline each timeout armed (a timer entry that no longer matches is skipped).
    due: Timeouts<Option<Instant>>,
    /// `bytes_written` when the write deadline was armed: it is re-armed only after progress.
    write_mark: u64,
    /// Nothing was flushed by the write deadline: what the peer had not taken yet then
    /// (`stream::write_probe`), checked again a short probe later.
    probe: Option<u64>,
}

impl LocalConn {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        stream: TcpStream,
        info: ConnectionInfo,
        abort: CancellationToken,
        life: Life,
        lease: Option<Arc<Lease>>,
        opts: DriveOptions,
        now: Instant,
        timers: &mut Timers,
    ) -> Self {
        let mut c = Self {
            stream,
            info,
            abort,
            life,
            lease,
            out: Output::new(),
            deadlines: None,
            credit: opts.high_water_mark as i64,
            high_water_mark: opts.high_water_mark,
            bytes_read: 0,
            bytes_written: 0,
            mode: READING,
            // Unknown until a read or an edge tells: a release before either looks at the
            // socket (`closing_steps`). The loop reads a new connection at once only when its
            // first bytes are likely there (`LocalLoop::start`).
            readable: true,
            writable: true,
            write_interest: false,
            read_closed: false,
            read_open: true,
            lingering: false,
        };
        for kind in TimeoutKind::ALL {
            c.set_timeout(kind, millis(opts.timeouts[kind]), now, timers);
        }
        c
    }

    pub(super) fn id(&self) -> u32 {
        self.info.id as u32
    }

    /// Sets timeout `kind` to `ms` (0: off). A new idle timeout counts from now, like Node's
    /// `socket.setTimeout()`; the write deadline is armed by the next step, from the output
    /// then waiting.
    pub(super) fn set_timeout(
        &mut self,
        kind: TimeoutKind,
        ms: u64,
        now: Instant,
        timers: &mut Timers,
    ) {
        if ms == 0 && self.deadlines.is_none() {
            return;
        }
        let id = self.id();
        let d = self.deadlines.get_or_insert_default();
        d.ms[kind] = ms;
        d.due[kind] = None;
        if kind == TimeoutKind::Idle && ms > 0 {
            d.activity = Some(now);
            let due = now + Duration::from_millis(ms);
            d.due[kind] = Some(due);
            timers.push(due, id, Kind::Timeout(kind));
        }
    }

    /// Timeout `kind` in ms (0: off).
    pub(super) fn timeout_ms(&self, kind: TimeoutKind) -> u64 {
        self.deadlines.as_ref().map_or(0, |d| d.ms[kind])
    }

    /// Bytes moved: the idle timeout counts from `now` (`None`: read the clock, if it counts).
    fn touch(&mut self, now: Option<Instant>) {
        if let Some(d) = &mut self.deadlines
            && d.ms[TimeoutKind::Idle] > 0
        {
            d.activity = Some(now.unwrap_or_else(Instant::now));
        }
    }

    /// Writes `data`: straight into the socket when nothing is queued, the rest into the
    /// queue. Returns the bytes now queued (see `Connections::write`).
    pub(super) fn write(&mut self, data: &[u8]) -> Result<usize> {
        if self.out.closing != Closing::No || self.out.write_shut {
            return Err(Error::WriteAfterEnd);
        }
        let mut written = 0;
        if self.out.idle() {
            while written < data.len() {
                match io::Write::write(&mut &self.stream, &data[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.writable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Io(e)),
                }
            }
            if written > 0 {
                self.bytes_written += written as u64;
                self.touch(None);
            }
        }
        if written < data.len() {
            self.out.append(&data[written..]);
        }
        let queued = self.out.pending();
        if queued >= self.high_water_mark {
            self.out.want_drain = true;
        }
        Ok(queued)
    }

    /// Everything that can be done now: flush, half-close, the lingering close, reads, and
    /// the write deadline.
    pub(super) fn progress(
        &mut self,
        report: &mut Report<'_>,
        timers: &mut Timers,
        now: Instant,
        scratch: &mut [u8],
    ) -> Step {
        if let Some(e) = self.out.read_error.take() {
            return Step::Close(Some(Error::Io(e)));
        }
        if self.out.closing == Closing::Now {
            return Step::Close(None);
        }
        if self.out.pending() > 0
            && self.writable
            && let Err(e) = self.flush(report, now)
        {
            return Step::Close(Some(e));
        }
        if let Some(step) = self.closing_steps(timers, now) {
            return step;
        }
        let mut reads = 0;
        while self.readable && reads < READS_PER_TURN {
            reads += 1;
            if self.lingering {
                match io::Read::read(&mut &self.stream, scratch) {
                    Ok(0) => return Step::Close(None),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Step::Close(None),
                }
                continue;
            }
            if !(self.read_open && self.mode == READING && self.credit > 0) {
                break;
            }
            let max = (self.credit as usize).min(READ_CHUNK);
            let stream = &self.stream;
            let got = report
                .sink
                .read(self.id(), max, &mut |buf| recv_append(stream, buf, max));
            match got {
                Ok(0) => {
                    self.read_open = false;
                    self.readable = false;
                    report.event(self.id(), Event::End);
                    if let Some(step) = self.closing_steps(timers, now) {
                        return step;
                    }
                }
                Ok(n) => {
                    report.produced = true;
                    self.credit -= n as i64;
                    self.bytes_read += n as u64;
                    self.touch(Some(now));
                    if n < max && !self.read_closed {
                        // A short read drained the socket: the next edge announces more.
                        self.readable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Close(Some(Error::Io(e))),
            }
        }
        // The write deadline runs only while output waits, and is re-armed only when the
        // peer took some of it (only flushing adds to `bytes_written` while output waits).
        let (id, pending, written) = (self.id(), self.out.pending(), self.bytes_written);
        if let Some(d) = &mut self.deadlines {
            let write_ms = d.ms[TimeoutKind::Write];
            if write_ms > 0 && pending > 0 {
                if d.due[TimeoutKind::Write].is_none() || d.write_mark != written {
                    d.write_mark = written;
                    d.probe = None;
                    let due = now + Duration::from_millis(write_ms);
                    d.due[TimeoutKind::Write] = Some(due);
                    timers.push(due, id, Kind::Timeout(TimeoutKind::Write));
                }
            } else {
                d.due[TimeoutKind::Write] = None;
            }
        }
        Step::Open
    }

    /// Input is waiting that the next round may read: a step stopped at its reads-per-turn
    /// bound, and the socket's edge will not be reported again.
    pub(super) fn more_to_read(&self) -> bool {
        self.readable
            && (self.lingering || (self.read_open && self.mode == READING && self.credit > 0))
    }

    /// Once a write had to wait, the epoll set reports when the socket takes more (it joins
    /// for readable readiness only). Asking after the write found the socket full loses no
    /// edge: the kernel looks at the socket as the interest changes.
    pub(super) fn ask_writable(&mut self, registry: &mio::Registry) -> io::Result<()> {
        if !self.needs_write_interest() {
            return Ok(());
        }
        self.write_interest = true;
        let token = mio::Token(self.id() as usize);
        registry.reregister(
            &mut self.stream,
            token,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )
    }

    /// A write had to wait and the set does not report writable readiness yet: the next
    /// step asks for it (`ask_writable`).
    pub(super) fn needs_write_interest(&self) -> bool {
        !self.writable && !self.write_interest
    }

    /// Released, and the round would close it now without a syscall: nothing left to send,
    /// no read error to report, and no unread input known (see `closing_steps`).
    pub(super) fn closes_at_once(&self) -> bool {
        self.out.closing == Closing::Release
            && self.out.idle()
            && self.out.read_error.is_none()
            && self.nothing_unread_known()
    }

    /// The peer ended its input, or every edge seen (the last at this turn's poll) was read
    /// to the end.
    fn nothing_unread_known(&self) -> bool {
        !self.read_open || (!self.lingering && !self.readable)
    }

    /// Half-close once the queue is empty, and the handler's release: close when the peer
    /// already ended or nothing unread waits, otherwise FIN and linger (see `run.rs`'s
    /// `linger_close` for why).
    fn closing_steps(&mut self, timers: &mut Timers, now: Instant) -> Option<Step> {
        if !self.out.idle() {
            return None;
        }
        match self.out.closing {
            Closing::End if !self.out.write_shut => self.shutdown_write(),
            // Nothing unread: close now (the FIN follows the last write). Input can still
            // arrive after the close and meet an RST, as with nginx's default
            // (`lingering_close on`), Go's `Close` or Bun; lingering for every connection cost
            // each one a second wake-up, a `shutdown` and a read of the peer's FIN.
            // Nothing unread is known without a syscall when every edge seen so far (the last
            // at this turn's poll) was read to the end, as nginx's `read->ready` tells it;
            // otherwise (an edge not used up, or no read or edge yet) a peek looks.
            Closing::Release if self.nothing_unread_known() => return Some(Step::Close(None)),
            Closing::Release
                if !self.lingering
                    && crate::stream::nothing_unread(SockRef::from(&self.stream)) =>
            {
                return Some(Step::Close(None));
            }
            Closing::Release if !self.lingering => {
                if !self.out.write_shut {
                    self.shutdown_write();
                }
                self.lingering = true;
                // Unread input is drained (and discarded) from now on. `readable` already says
                // whether any is waiting unseen: it stays set until a read finds the socket
                // empty, and the next edge sets it again; forcing it cost every released
                // connection a read that found nothing.
                timers.push(now + LINGER, self.id(), Kind::Linger);
            }
            _ => {}
        }
        None
    }

    pub(super) fn shutdown_write(&mut self) {
        self.out.write_shut = true;
        // ENOTCONN here means the peer is already gone; the read side reports it.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    fn flush(&mut self, report: &mut Report<'_>, now: Instant) -> Result<()> {
        while !self.out.idle() {
            match io::Write::write(&mut &self.stream, self.out.unsent()) {
                Ok(n) => {
                    self.out.advance(n);
                    self.bytes_written += n as u64;
                    self.touch(Some(now));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        if std::mem::take(&mut self.out.want_drain) {
            report.event(self.id(), Event::Drain);
        }
        Ok(())
    }

    /// A deadline came.
    pub(super) fn deadline(
        &mut self,
        due: Instant,
        kind: Kind,
        now: Instant,
        timers: &mut Timers,
    ) -> Step {
        let (id, pending, written) = (self.id(), self.out.pending(), self.bytes_written);
        let lingering = self.lingering;
        let stream = &self.stream;
        match (kind, &mut self.deadlines) {
            (Kind::Timeout(t), Some(d)) if d.due[t] == Some(due) => match t {
                TimeoutKind::Idle => {
                    let real = d.activity.unwrap_or(now) + Duration::from_millis(d.ms[t]);
                    if real <= now {
                        return Step::Close(Some(Error::IdleTimeout));
                    }
                    d.due[t] = Some(real);
                    timers.push(real, id, kind);
                }
                TimeoutKind::Write => {
                    if pending > 0 && written == d.write_mark {
                        let unacked = unacknowledged(SockRef::from(stream));
                        match write_probe(&mut d.probe, unacked, d.ms[t]) {
                            Some(wait) => {
                                let next = now + wait;
                                d.due[t] = Some(next);
                                timers.push(next, id, kind);
                                return Step::Open;
                            }
                            None => return Step::Close(Some(Error::WriteTimeout)),
                        }
                    }
                    // Re-armed by the next step, from the progress made.
                    d.due[t] = None;
                }
            },
            // The peer never finished sending: closed anyway, as an orderly close.
            (Kind::Linger, _) if lingering => return Step::Close(None),
            _ => {}
        }
        Step::Open
    }

    /// Reads on the consumer's behalf (see `Connections::read_now`). `Some(true)` when the
    /// loop must look at the connection again (reading was handed back, or it failed).
    pub(super) fn read_now(
        &mut self,
        delivered: u64,
        buf: &mut [u8],
        direct_reads: &std::sync::atomic::AtomicU64,
    ) -> (usize, bool) {
        let mode = self.mode;
        if (mode == READING || mode == CONSUMER_READING)
            && self.read_open
            && !self.lingering
            && self.bytes_read == delivered
        {
            let max = buf.len().min(READ_CHUNK);
            match io::Read::read(&mut &self.stream, &mut buf[..max]) {
                Ok(n) if n > 0 => {
                    self.mode = CONSUMER_READING;
                    self.bytes_read += n as u64;
                    self.touch(None);
                    direct_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return (n, false);
                }
                // The end: the loop reads it again (a FIN stays readable) and reports it.
                Ok(_) => self.readable = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.out.read_error = Some(e);
                    return (0, true);
                }
            }
        }
        // Reading goes back to the loop.
        if mode == CONSUMER_READING {
            self.mode = READING;
            return (0, true);
        }
        (0, false)
    }
}

/// Reads at most `max` bytes, appended to `buf`.
fn recv_append(stream: &TcpStream, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare: &mut [MaybeUninit<u8>] = &mut buf.spare_capacity_mut()[..max];
    let n = SockRef::from(stream).recv(spare)?;
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}
