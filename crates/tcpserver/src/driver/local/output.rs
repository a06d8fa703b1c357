//! A loop connection's output: how it closes, and the bytes the socket has not taken yet.
//!
//! The bytes live in a small box made when a write first has to wait and dropped once they
//! are flushed: most connections never queue (a write goes straight into the socket), so an
//! idle one pays 8 bytes for its queue here instead of the Tokio driver's whole [`Outbox`]
//! (104 bytes, with the job bookkeeping the loop never needs). A hand-over to the Tokio
//! driver turns it into an [`Outbox`].

use std::io;

use crate::driver::outbox::{Closing, Outbox};

pub(super) struct Output {
    /// Bytes written and not yet in the kernel; `None` while there are none.
    queue: Option<Box<Queue>>,
    /// A read error met by `read_now`: the kernel reports it once, so it is kept for the
    /// loop, which ends the connection with it.
    pub(super) read_error: Option<io::Error>,
    pub(super) closing: Closing,
    /// The FIN went out.
    pub(super) write_shut: bool,
    /// A write left the queue at or past the high-water mark: `Drain` is reported once it
    /// has been flushed.
    pub(super) want_drain: bool,
}

/// The unsent bytes: `buf[pos..]`, never empty.
struct Queue {
    buf: Vec<u8>,
    pos: usize,
}

impl Output {
    pub(super) fn new() -> Self {
        Self {
            queue: None,
            read_error: None,
            closing: Closing::No,
            write_shut: false,
            want_drain: false,
        }
    }

    /// Nothing waits to be sent: a write may go straight to the socket, a FIN may go now.
    pub(super) fn idle(&self) -> bool {
        self.queue.is_none()
    }

    pub(super) fn pending(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.buf.len() - q.pos)
    }

    /// The bytes to send next (empty when idle).
    pub(super) fn unsent(&self) -> &[u8] {
        self.queue.as_ref().map_or(&[], |q| &q.buf[q.pos..])
    }

    pub(super) fn append(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.queue
            .get_or_insert_with(|| {
                Box::new(Queue {
                    buf: Vec::with_capacity(data.len()),
                    pos: 0,
                })
            })
            .buf
            .extend_from_slice(data);
    }

    /// `n` of the unsent bytes went out; the queue goes once it is empty.
    pub(super) fn advance(&mut self, n: usize) {
        if let Some(q) = &mut self.queue {
            q.pos += n;
            if q.pos >= q.buf.len() {
                self.queue = None;
            }
        }
    }

    /// Asks for `how`, unless a stronger way to close was asked for already.
    pub(super) fn close_at_least(&mut self, how: Closing) {
        self.closing = self.closing.max(how);
    }

    /// The same state as the Tokio driver's output queue, for a hand-over.
    pub(super) fn into_outbox(self) -> Outbox {
        let mut out = Outbox::new();
        if let Some(q) = self.queue {
            out.queued = q.buf.len() as u64;
            out.flushed = q.pos as u64;
            out.buf = q.buf;
            out.pos = q.pos;
        }
        out.read_error = self.read_error;
        out.closing = self.closing;
        out.write_shut = self.write_shut;
        out.want_drain = self.want_drain;
        out
    }
}

#[cfg(test)]
mod tests {
    //! The queue's bookkeeping; the socket side is covered by the loop's tests
    //! (`tests/local_loop.rs`) and the JavaScript suite.
    use super::{Closing, Output};

    #[test]
    fn the_queue_exists_only_while_bytes_wait_and_keeps_their_order() {
        let mut out = Output::new();
        assert!(out.idle());
        out.append(b"");
        assert!(out.idle(), "nothing to send makes no queue");
        out.append(b"hello ");
        out.append(b"world");
        assert_eq!((out.pending(), out.unsent()), (11, &b"hello world"[..]));
        out.advance(6);
        assert_eq!(out.unsent(), b"world");
        assert!(!out.idle());
        out.advance(5);
        assert!(out.idle());
        assert_eq!((out.pending(), out.unsent()), (0, &b""[..]));
    }

    #[test]
    fn a_hand_over_keeps_the_unsent_bytes_and_how_it_closes() {
        let mut out = Output::new();
        out.append(b"abcdef");
        out.advance(2);
        out.close_at_least(Closing::End);
        out.close_at_least(Closing::No);
        out.want_drain = true;
        let outbox = out.into_outbox();
        assert_eq!(&outbox.buf[outbox.pos..], b"cdef");
        assert_eq!(outbox.pending(), 4);
        assert_eq!(outbox.queued - outbox.flushed, 4);
        assert_eq!(outbox.closing, Closing::End, "a weaker close never wins");
        assert!(outbox.want_drain && !outbox.write_shut);
    }
}
