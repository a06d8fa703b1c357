//! One connection's output queue: bytes written but not yet in the kernel, how the connection
//! closes, and the order of jobs (files, pipes, TLS upgrades) against the writes around them.

#[cfg(doc)]
use super::Connections;
use std::collections::VecDeque;
use std::io;

/// In order of strength: a later request never weakens an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Closing {
    No,
    /// Flush, then FIN; reading goes on.
    End,
    /// Flush, FIN, drain unread input briefly, close: the handler finished.
    Release,
    /// Close now, dropping queued output.
    Now,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) closing: Closing,
    pub(crate) want_drain: bool,
    pub(crate) write_shut: bool,
    /// A pipe or file task owns the socket's output: writes queue behind it.
    pub(crate) job: bool,
    /// TLS: `close_notify` was queued.
    pub(crate) close_notify_sent: bool,
    /// Bytes ever appended to / flushed from `buf`: reservations are positions in this stream.
    pub(crate) queued: u64,
    pub(crate) flushed: u64,
    /// Jobs (file, pipe, TLS upgrade) in call order: `(ticket, mark)`. A job starts when it is
    /// first and everything queued before `mark` is flushed; writes made after it wait for it.
    pub(crate) reservations: VecDeque<(u64, u64)>,
    pub(crate) next_ticket: u64,
    /// A read error met by [`Connections::read_now`]: the kernel reports it once, so it is
    /// kept here for the driver, which ends the connection with it.
    pub(crate) read_error: Option<io::Error>,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            closing: Closing::No,
            want_drain: false,
            write_shut: false,
            job: false,
            close_notify_sent: false,
            queued: 0,
            flushed: 0,
            reservations: VecDeque::new(),
            next_ticket: 0,
            read_error: None,
        }
    }

    /// Nothing queued, no job running or waiting: writes may go straight to the socket, and
    /// (TLS records aside) nothing is left to send before a FIN.
    pub(crate) fn idle(&self) -> bool {
        self.pending() == 0 && !self.job && self.reservations.is_empty()
    }

    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Queued bytes that may go out now: those before the first reservation.
    pub(crate) fn flushable(&self) -> usize {
        match self.reservations.front() {
            Some(&(_, mark)) => self
                .pending()
                .min(mark.saturating_sub(self.flushed) as usize),
            None => self.pending(),
        }
    }

    pub(crate) fn append(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.queued += data.len() as u64;
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.pos += n;
        self.flushed += n as u64;
    }

    /// Asks for `how`, unless a stronger way to close was asked for already.
    pub(crate) fn close_at_least(&mut self, how: Closing) {
        self.closing = self.closing.max(how);
    }

    /// Books the output for a job, behind everything queued so far; returns its ticket.
    pub(crate) fn reserve(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.reservations.push_back((ticket, self.queued));
        ticket
    }

    /// Whether job `ticket` may take the output now; taking it when it may.
    pub(crate) fn try_start(&mut self, ticket: u64) -> Start {
        if self.closing == Closing::Now || self.write_shut {
            return Start::Ended;
        }
        match self.reservations.front() {
            Some(&(t, mark)) if t == ticket && !self.job => {
                if self.flushed >= mark {
                    self.job = true;
                    Start::Started
                } else {
                    Start::Flush
                }
            }
            Some(_) => Start::WaitTurn,
            None => Start::Gone,
        }
    }

    /// Job `ticket` is over (done, failed, or never started): the output goes back to the
    /// driver, or to the next job in line.
    pub(crate) fn finish(&mut self, ticket: u64) {
        if self.reservations.front().is_some_and(|&(t, _)| t == ticket) {
            self.job = false;
        }
        self.reservations.retain(|&(t, _)| t != ticket);
    }
}

/// What [`Outbox::try_start`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The job owns the output now.
    Started,
    /// It is next, once the bytes queued before it are flushed.
    Flush,
    /// Another job is before it.
    WaitTurn,
    /// The output is closed or half-closed: the job cannot write.
    Ended,
    /// Its reservation is gone (the connection closed).
    Gone,
}

#[cfg(test)]
mod tests {
    //! The output queue's bookkeeping: what may be flushed, and the order of jobs (files,
    //! pipes, TLS upgrades) against the writes around them. The socket side is covered by
    //! `tests/driver_jobs.rs`.
    use super::{Closing, Outbox, Start};

    #[test]
    fn writes_flush_in_order_and_idle_means_nothing_left() {
        let mut out = Outbox::new();
        assert!(out.idle());
        out.append(b"hello ");
        out.append(b"world");
        assert_eq!((out.pending(), out.flushable(), out.queued), (11, 11, 11));
        assert!(!out.idle());
        out.advance(6);
        assert_eq!((out.pending(), out.flushed), (5, 6));
        assert_eq!(&out.buf[out.pos..], b"world");
        out.advance(5);
        assert!(out.idle());
    }

    #[test]
    fn a_job_waits_for_the_bytes_queued_before_it_and_holds_back_those_after() {
        let mut out = Outbox::new();
        out.append(b"head");
        let job = out.reserve();
        out.append(b"tail"); // written after the job was booked: goes out after it
        assert_eq!(out.flushable(), 4, "only the bytes before the reservation");
        assert!(!out.idle(), "a waiting job keeps the connection busy");
        assert_eq!(out.try_start(job), Start::Flush);
        out.advance(4);
        assert_eq!(out.flushable(), 0, "the tail waits for the job");
        assert_eq!(out.try_start(job), Start::Started);
        assert!(out.job);
        assert_eq!(out.try_start(job), Start::WaitTurn, "started once only");
        out.finish(job);
        assert!(!out.job);
        assert_eq!(out.flushable(), 4, "the tail may go now");
        out.advance(4);
        assert!(out.idle());
    }

    #[test]
    fn jobs_run_in_call_order() {
        let mut out = Outbox::new();
        let first = out.reserve();
        out.append(b"between");
        let second = out.reserve();
        assert_ne!(first, second);
        assert_eq!(out.try_start(second), Start::WaitTurn);
        assert_eq!(out.try_start(first), Start::Started);
        out.finish(first);
        assert_eq!(
            out.try_start(second),
            Start::Flush,
            "the bytes between first"
        );
        assert_eq!(out.flushable(), 7);
        out.advance(7);
        assert_eq!(out.try_start(second), Start::Started);
        out.finish(second);
        assert!(out.idle());
    }

    #[test]
    fn a_job_that_never_started_gives_its_place_back() {
        let mut out = Outbox::new();
        let first = out.reserve();
        let second = out.reserve();
        out.finish(second); // e.g. its file failed before it began
        assert_eq!(out.try_start(first), Start::Started);
        assert!(
            out.job,
            "finishing another job does not release the running one"
        );
        out.finish(first);
        assert!(out.idle());
        assert_eq!(out.try_start(first), Start::Gone);
    }

    #[test]
    fn no_job_starts_on_a_closed_or_half_closed_output() {
        let mut out = Outbox::new();
        let job = out.reserve();
        out.write_shut = true;
        assert_eq!(out.try_start(job), Start::Ended);
        let mut out = Outbox::new();
        let job = out.reserve();
        out.closing = Closing::Now;
        assert_eq!(out.try_start(job), Start::Ended);
        out.closing = Closing::End; // flush then FIN: jobs still run first
        assert_eq!(out.try_start(job), Start::Started);
    }
}
