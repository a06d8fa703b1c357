//! The bridge from Tokio threads to the JavaScript thread: every connection's events go into
//! one batch per server. The first event of an empty batch wakes this server's flusher task,
//! which first yields (so the worker runs every other ready task of this burst: the reads of
//! the other connections) and then queues a single wake-up on a long-lived threadsafe
//! function; the JavaScript thread takes the whole batch when the wake-up runs. One wake-up
//! carries as many events as arrived meanwhile, a busy event loop means bigger batches rather
//! than more queued calls, and JavaScript is not woken (and cannot preempt the worker, nor
//! contend for the batch lock) in the middle of a burst.
//!
//! Wire format (both buffers are created on the JS thread when the batch is taken):
//! `events`: little-endian u32 quadruples `[kind, id, a, b]`; `payload`: bytes that
//! `DATA` (`a` = offset, `b` = length) and `CLOSED` (`a`/`b` = error text) refer to.

use std::io;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use napi::bindgen_prelude::{Buffer, FnArgs, ToNapiValue};
use napi::sys;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use tcpserver_core::driver::{Event, EventSink};
use tokio::sync::Notify;

pub(crate) const OPEN: u32 = 1;
pub(crate) const DATA: u32 = 2;
pub(crate) const END: u32 = 3;
pub(crate) const DRAIN: u32 = 4;
pub(crate) const CLOSED: u32 = 5;
pub(crate) const SERVER_CLOSED: u32 = 6;
pub(crate) const PAUSED: u32 = 7;
pub(crate) const PIPE_DONE: u32 = 8;
pub(crate) const FILE_DONE: u32 = 9;
pub(crate) const CONNECT_FAILED: u32 = 10;
pub(crate) const TLS_ERROR: u32 = 11;
pub(crate) const TLS_STARTED: u32 = 12;
pub(crate) const TLS_SNI: u32 = 13;
/// `[TLS_END, id, close_notify (0/1), 0]`, right before `END` on TLS connections.
pub(crate) const TLS_END: u32 = 14;

/// Batches smaller than this are copied into a fresh JS buffer; bigger ones are handed over
/// as an external buffer (no copy, one finalizer).
const EXTERNAL_MIN: usize = 64 * 1024;
/// The most a batch buffer keeps between batches (room for one full read and then some).
const RETAINED_MAX: usize = 256 * 1024;

/// JavaScript's `onEvents(events, payload, words?)` as the binding receives it.
pub(crate) type OnEvents<'a> = napi::bindgen_prelude::Function<'a, FnArgs<(Buffer, Buffer)>, ()>;
type Wake = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Batch {
    /// Event words, already little-endian: JavaScript views them as a `Uint32Array`.
    events: Vec<u8>,
    payload: Vec<u8>,
    scheduled: bool,
}

/// One server's batch and its wake-up function.
pub(crate) struct JsSink {
    batch: Mutex<Batch>,
    wake: Mutex<Option<Wake>>,
    flush: Notify,
}

impl JsSink {
    pub(crate) fn new() -> Self {
        Self {
            batch: Mutex::new(Batch::default()),
            wake: Mutex::new(None),
            flush: Notify::new(),
        }
    }

    /// The flusher task: one per server, until `release()`.
    pub(crate) async fn flusher(self: std::sync::Arc<Self>) {
        loop {
            self.flush.notified().await;
            tokio::task::yield_now().await;
            match self.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                Some(wake) => wake(),
                None => return,
            }
        }
    }

    /// A sink whose batches go to `on_events` through a threadsafe function that keeps its
    /// thread alive while attached (a worker thread's).
    pub(crate) fn keeping_alive_to(on_events: &OnEvents<'_>) -> napi::Result<std::sync::Arc<Self>> {
        Self::sending_to::<false>(on_events)
    }

    /// A sink whose batches go to `on_events` through a weak threadsafe function: one that does
    /// not keep the process alive (JavaScript does, for as long as it wants to: a server's
    /// timer that `unref()` lets go of, the hub's open connections).
    pub(crate) fn weak_to(on_events: &OnEvents<'_>) -> napi::Result<std::sync::Arc<Self>> {
        Self::sending_to::<true>(on_events)
    }

    fn sending_to<const WEAK: bool>(
        on_events: &OnEvents<'_>,
    ) -> napi::Result<std::sync::Arc<Self>> {
        let sink = std::sync::Arc::new(Self::new());
        let taker = sink.clone();
        let f = on_events
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<WEAK>()
            .build_callback(move |_ctx| taker.batch_args())?;
        // NonBlocking: a Tokio worker must never wait for the JavaScript thread.
        let wake: Wake = Box::new(move || {
            f.call((), ThreadsafeFunctionCallMode::NonBlocking);
        });
        *sink.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
        Ok(sink)
    }

    /// The wake-up's call: the batch taken, as `onEvents`' arguments.
    fn batch_args(&self) -> napi::Result<FnArgs<(JsBytes, JsBytes)>> {
        let (events, payload) = self.take();
        Ok(FnArgs::from((JsBytes(events), JsBytes(payload))))
    }

    /// Delivers what is pending and drops the wake-up function (after the final event), so the
    /// process may exit; the flusher task ends.
    pub(crate) fn release(&self) {
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(wake) = wake
            && self.lock().scheduled
        {
            // Queued calls still run after the function is released.
            wake();
        }
        self.flush.notify_one();
    }

    /// The environment is ending (`teardown.rs`): drops the wake-up function without calling
    /// it (JavaScript is gone) and ends the flusher task. Later events are not delivered.
    pub(crate) fn detach(&self) {
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(wake);
        self.flush.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lends the batch to `f` and leaves it empty: for the consumer loop's turn, which copies
    /// the bytes straight into JavaScript's buffers (no copy of its own). `f` must not call
    /// JavaScript: the batch is locked meanwhile. Its arguments: the event words, the payload
    /// (which `f` may take, leaving it empty).
    pub(crate) fn lend<R>(&self, f: impl FnOnce(&[u8], &mut Vec<u8>) -> R) -> R {
        let mut b = self.lock();
        b.scheduled = false;
        let Batch {
            events, payload, ..
        } = &mut *b;
        let r = f(events, payload);
        for buf in [events, payload] {
            empty_keeping_room(buf);
        }
        r
    }

    /// Takes the batch: called on the JavaScript thread by the wake-up.
    pub(crate) fn take(&self) -> (Vec<u8>, Vec<u8>) {
        let mut b = self.lock();
        b.scheduled = false;
        (take_bytes(&mut b.events), take_bytes(&mut b.payload))
    }

    fn push(&self, b: MutexGuard<'_, Batch>, words: [u32; 4]) {
        self.push_then(b, words, true);
    }

    /// Appends an event; `schedule`: wake JavaScript for it (the Tokio side), or not (the
    /// consumer loop, whose turn delivers the batch itself).
    fn push_then(&self, mut b: MutexGuard<'_, Batch>, words: [u32; 4], schedule: bool) {
        for w in words {
            b.events.extend_from_slice(&w.to_le_bytes());
        }
        if schedule {
            self.schedule(b);
        }
    }

    fn schedule(&self, mut b: MutexGuard<'_, Batch>) {
        if !b.scheduled {
            b.scheduled = true;
            drop(b);
            self.flush.notify_one();
        }
    }

    /// An outbound connection attempt failed (fields: the tag).
    pub(crate) fn connect_failed(&self, tag: u32, error: &tcpserver_core::Error) {
        let mut b = self.lock();
        let words = append_text(&mut b, CONNECT_FAILED, 0, &event_text(&[&tag], Some(error)));
        self.push(b, words);
    }

    /// A handshake waits for JavaScript to choose its certificate: token and SNI name.
    pub(crate) fn sni_request(&self, token: u32, name: Option<&str>) {
        let mut b = self.lock();
        let words = append_text(&mut b, TLS_SNI, 0, name.unwrap_or(""));
        // [TLS_SNI, token, offset, length | (the client sent a name) << 31]
        self.push(
            b,
            [
                words[0],
                token,
                words[2],
                words[3] | (u32::from(name.is_some()) << 31),
            ],
        );
    }

    /// Queues the final server event.
    pub(crate) fn server_closed(&self, completed: u64, forced: u64) {
        let b = self.lock();
        self.push(b, [SERVER_CLOSED, 0, clamp(completed), clamp(forced)]);
    }
}

/// Appends `text` to the payload and returns the event words that point at it.
fn append_text(b: &mut Batch, kind: u32, id: u32, text: &str) -> [u32; 4] {
    let offset = b.payload.len() as u32;
    b.payload.extend_from_slice(text.as_bytes());
    [kind, id, offset, text.len() as u32]
}

/// The one layout of every text event: its fields, then the error's fields and message
/// (`crate::error::event_fields`; one empty line without an error), one per line. JavaScript parses it in one place
/// (`parseEventText` in packages/tcpserver/src/errors.ts).
fn event_text(fields: &[&dyn std::fmt::Display], error: Option<&tcpserver_core::Error>) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(96);
    for f in fields {
        let _ = writeln!(text, "{f}");
    }
    match error {
        Some(e) => {
            text.push_str(&crate::error::event_fields(e));
        }
        None => text.push('\n'),
    }
    text
}

/// An address as event text fields: the IP and port, or `unix:<path>` and 0 (paths hold no
/// newline: `parse_listen_address` refuses them, and peers of Unix sockets are unnamed). The
/// host is written straight into the event's text (no string of its own per address).
fn address_fields(a: &tcpserver_core::Address) -> (AddressHost<'_>, u16) {
    (AddressHost(a), a.as_ip().map_or(0, |ip| ip.port()))
}

/// A closed connection's text (Latin-1), as JavaScript's `deliverClosed` reads it: its
/// addresses, then the error's fields or an empty line.
pub(crate) fn push_closed_text(
    out: &mut Vec<u8>,
    info: &tcpserver_core::ConnectionInfo,
    error: Option<&tcpserver_core::Error>,
) {
    for a in [&info.peer_addr, &info.local_addr] {
        push_address(out, a);
    }
    match error {
        Some(e) => out.extend_from_slice(crate::error::event_fields(e).as_bytes()),
        None => out.push(b'\n'),
    }
}

/// An address's two event text lines (see [`address_fields`]) appended to `out`: IPv4 digits
/// by hand, the rest through `Display`.
fn push_address(out: &mut Vec<u8>, a: &tcpserver_core::Address) {
    use std::io::Write;
    let (host, port) = address_fields(a);
    match a.as_ip().map(|ip| ip.ip()) {
        Some(std::net::IpAddr::V4(v4)) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u32::from(octet));
            }
        }
        _ => {
            let _ = write!(out, "{host}");
        }
    }
    out.push(b'\n');
    push_decimal(out, u32::from(port));
    out.push(b'\n');
}

/// `n` in decimal digits.
fn push_decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The host part of [`address_fields`].
struct AddressHost<'a>(&'a tcpserver_core::Address);

impl std::fmt::Display for AddressHost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_ip() {
            Some(ip) => write!(f, "{}", ip.ip()),
            None => f.write_str(&self.0.to_string().replace('\n', " ")),
        }
    }
}

/// A batch buffer's bytes for JavaScript. Small ones are copied out and the buffer keeps its
/// capacity. Each read reserves a whole read's room (64 KiB) in the batch, and a buffer that
/// started empty every batch was reallocated (and copied) by the second read. Big ones are
/// handed over whole, as JavaScript gets them without a copy anyway.
fn take_bytes(buf: &mut Vec<u8>) -> Vec<u8> {
    if buf.len() >= EXTERNAL_MIN {
        return std::mem::take(buf);
    }
    let out = buf.clone();
    empty_keeping_room(buf);
    out
}

/// Empties a batch buffer, keeping its room up to `RETAINED_MAX` for the next batch.
fn empty_keeping_room(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > RETAINED_MAX {
        buf.shrink_to(RETAINED_MAX);
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl EventSink for JsSink {
    fn tls_error(&self, peer: &tcpserver_core::Address, error: &tcpserver_core::Error) {
        // Fields: address, port. For the onTlsError hook; the handler never sees it.
        let mut b = self.lock();
        let (ip, port) = address_fields(peer);
        let text = event_text(&[&ip, &port], Some(error));
        let words = append_text(&mut b, TLS_ERROR, 0, &text);
        self.push(b, words);
    }

    fn read(
        &self,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.record_read(true, id, max, read)
    }

    fn event(&self, id: u32, event: Event<'_>) {
        self.record(true, id, event);
    }
}

/// The consumer loop's view of a server's sink (`uv_watch.rs`): the same batch and format,
/// without waking JavaScript, since the loop's turn delivers the batch itself.
pub(crate) struct LoopSink(pub(crate) std::sync::Arc<JsSink>);

impl EventSink for LoopSink {
    fn read(
        &self,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.0.record_read(false, id, max, read)
    }

    fn event(&self, id: u32, event: Event<'_>) {
        self.0.record(false, id, event);
    }
}

impl JsSink {
    fn record_read(
        &self,
        schedule: bool,
        id: u32,
        max: usize,
        read: &mut dyn FnMut(&mut Vec<u8>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut b = self.lock();
        let offset = b.payload.len();
        let n = read(&mut b.payload)?;
        if n > 0 {
            debug_assert!(n <= max);
            self.push_then(b, [DATA, id, offset as u32, n as u32], schedule);
        }
        Ok(n)
    }

    fn record(&self, schedule: bool, id: u32, event: Event<'_>) {
        let mut b = self.lock();
        let words = match event {
            Event::Open { tag } => [OPEN, id, tag, 0],
            Event::Paused => [PAUSED, id, 0, 0],
            // Byte counts may pass 4 GiB: they travel as text (fields: in, out).
            Event::PipeDone {
                bytes_in,
                bytes_out,
                error,
            } => append_text(
                &mut b,
                PIPE_DONE,
                id,
                &event_text(&[&bytes_in, &bytes_out], error),
            ),
            Event::TlsStarted { error } => {
                append_text(&mut b, TLS_STARTED, id, &event_text(&[], error))
            }
            Event::FileDone { bytes, error } => {
                append_text(&mut b, FILE_DONE, id, &event_text(&[&bytes], error))
            }
            Event::TlsEnd { close_notify } => [TLS_END, id, u32::from(close_notify), 0],
            Event::End => [END, id, 0, 0],
            Event::Drain => [DRAIN, id, 0, 0],
            // Fields: remote ip, port, local ip, port. JavaScript keeps the text and parses it
            // only if the addresses or the error are asked for.
            // Written straight into the payload (every connection's close has one).
            Event::Closed { error, info } => {
                let offset = b.payload.len();
                push_closed_text(&mut b.payload, info, error);
                [CLOSED, id, offset as u32, (b.payload.len() - offset) as u32]
            }
            // The core and this binding ship together; nothing else exists.
            _ => return,
        };
        self.push_then(b, words, schedule);
    }
}

/// Bytes that become a JS `Buffer`: copied when small, handed over when big.
pub(crate) struct JsBytes(pub(crate) Vec<u8>);

impl JsBytes {
    /// Whether a batch buffer of `len` bytes is handed over (no copy) rather than copied.
    pub(crate) fn handed_over(len: usize) -> bool {
        len >= EXTERNAL_MIN
    }

    /// A JS `Buffer` with a copy of `bytes`.
    ///
    /// # Safety
    /// `env` is the live env of the JavaScript thread this runs on.
    pub(crate) unsafe fn copy(env: sys::napi_env, bytes: &[u8]) -> napi::Result<sys::napi_value> {
        let mut out = ptr::null_mut();
        let mut data = ptr::null_mut();
        // SAFETY: `env` per the contract; the source pointer and length describe `bytes`,
        // which outlives the call (Node copies them).
        let status = unsafe {
            sys::napi_create_buffer_copy(
                env,
                bytes.len(),
                bytes.as_ptr().cast(),
                &mut data,
                &mut out,
            )
        };
        napi::check_status!(status, "cannot create a Buffer for an event batch")?;
        Ok(out)
    }
}

impl ToNapiValue for JsBytes {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        if Self::handed_over(val.0.len()) {
            // SAFETY: forwarded as is; `env` is the live env this conversion was called with.
            return unsafe { Buffer::to_napi_value(env, Buffer::from(val.0)) };
        }
        // SAFETY: `env` is the live env of the JS thread running this conversion.
        unsafe { Self::copy(env, &val.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written IPv4 and port digits match `Display`, as the text JavaScript parses.
    #[test]
    fn address_lines_match_display() {
        let cases = [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "255.255.255.255:65535",
            "10.20.3.199:443",
            "[::1]:9",
            "[2001:db8::ff00:42:8329]:40000",
            "[::ffff:192.0.2.1]:1",
        ];
        for c in cases {
            let sa: std::net::SocketAddr = c.parse().unwrap();
            let mut out = Vec::new();
            push_address(&mut out, &tcpserver_core::Address::Ip(sa));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{}\n{}\n", sa.ip(), sa.port()),
                "{c}"
            );
        }
    }
}
