//! Counters of one registry's connections: timeouts by kind and the zero-copy paths.

#[cfg(doc)]
use super::Connections;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Counters of the zero-copy paths, so users can tell whether `splice`/`sendfile` were used.
#[derive(Debug, Default)]
pub(crate) struct DataCounters {
    pub(crate) pipes_spliced: AtomicU64,
    pub(crate) pipes_copied: AtomicU64,
    pub(crate) bytes_piped: AtomicU64,
    pub(crate) files_sent: AtomicU64,
    pub(crate) file_bytes_zero_copy: AtomicU64,
    pub(crate) file_bytes_copied: AtomicU64,
    pub(crate) direct_reads: AtomicU64,
    pub(crate) idle_timeouts: AtomicU64,
    pub(crate) read_timeouts: AtomicU64,
    pub(crate) write_timeouts: AtomicU64,
}

/// A snapshot of [`Connections::timeout_stats`](super::Connections::timeout_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutStats {
    /// Connections closed by the idle timeout.
    pub idle: u64,
    /// Reads that timed out (counted by the consumer with [`Connections::count_read_timeout`]).
    pub read: u64,
    /// Connections closed by the write timeout.
    pub write: u64,
}

/// A duration as whole milliseconds for the atomics, 0 meaning off (and at least 1 if on).
pub(crate) fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_millis().clamp(1, u128::from(u64::MAX)) as u64)
}

/// A snapshot of [`Connections::data_stats`](super::Connections::data_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataStats {
    /// Pipes that forwarded with `splice(2)` (Linux, plain TCP both sides).
    pub pipes_spliced: u64,
    /// Pipes that forwarded with a copy loop (other platforms).
    pub pipes_copied: u64,
    /// Bytes forwarded by pipes, both directions.
    pub bytes_piped: u64,
    /// Files (or ranges) sent completely.
    pub files_sent: u64,
    /// File bytes sent with `sendfile(2)`.
    pub file_bytes_zero_copy: u64,
    /// File bytes sent with a read/write loop.
    pub file_bytes_copied: u64,
    /// Reads made by the consumer on its own thread ([`Connections::read_now`]), each of them
    /// a chunk that needed no driver read and no event.
    pub direct_reads: u64,
}
