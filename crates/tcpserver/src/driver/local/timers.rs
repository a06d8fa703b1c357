//! The consumer loop's deadlines (idle, write, lingering close): a heap checked on every turn,
//! and one `timerfd` in the loop's epoll set that wakes the loop at the earliest one. Entries
//! are never removed: a connection remembers the deadline it armed, and an entry that no
//! longer matches is skipped when it comes (cheaper than finding it in the heap).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::driver::event::TimeoutKind;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// A connection's timeout of this kind.
    Timeout(TimeoutKind),
    /// The lingering close gives up.
    Linger,
    /// A listener's accept backoff (the id is the listener's index).
    Accept,
}

pub(super) struct Timers {
    /// `None` once the loop closed its descriptors.
    fd: Option<OwnedFd>,
    heap: BinaryHeap<Reverse<(Instant, u32, Kind)>>,
    /// The deadline the timerfd is set to.
    armed: Option<Instant>,
}

impl Timers {
    pub(super) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall with constant flags; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` was just created and is owned by nothing else.
            fd: Some(unsafe { OwnedFd::from_raw_fd(fd) }),
            heap: BinaryHeap::new(),
            armed: None,
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Closes the timerfd (the loop is done).
    pub(super) fn close(&mut self) {
        self.fd = None;
        self.heap.clear();
    }

    pub(super) fn push(&mut self, due: Instant, id: u32, kind: Kind) {
        self.heap.push(Reverse((due, id, kind)));
    }

    /// Takes every deadline that is due at `now`.
    pub(super) fn due(&mut self, now: Instant, into: &mut Vec<(Instant, u32, Kind)>) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.0 > now {
                break;
            }
            into.push(top.to_owned());
            self.heap.pop();
        }
    }

    /// Empties the timerfd's expiration count (it fired).
    pub(super) fn clear(&self) {
        let Some(fd) = &self.fd else {
            return;
        };
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a local buffer from a descriptor we own.
        let _ = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
    }

    /// Sets the timerfd to the earliest deadline (a syscall only when that changed).
    pub(super) fn rearm(&mut self, now: Instant) {
        let next = self.heap.peek().map(|Reverse(top)| top.0);
        let Some(fd) = &self.fd else {
            return;
        };
        if next == self.armed {
            return;
        }
        self.armed = next;
        let value = match next {
            // A zero value would disarm the timer: a deadline already due fires in 1 µs.
            Some(due) => {
                let wait = due
                    .saturating_duration_since(now)
                    .max(std::time::Duration::from_micros(1));
                libc::timespec {
                    tv_sec: wait.as_secs() as libc::time_t,
                    tv_nsec: wait.subsec_nanos() as libc::c_long,
                }
            }
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec on the stack; the old value is not asked for.
        unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }
}
