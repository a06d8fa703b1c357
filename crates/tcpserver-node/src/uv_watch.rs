//! A server's consumer loop (`tcpserver_core::driver::LocalLoop`) on the JavaScript thread's
//! own event loop: libuv watches the loop's epoll descriptor (`uv_poll`), and when it is
//! readable the loop turns right there, on the JavaScript thread, and each round's events go
//! to the server's `onEvents` in one call (`napi_make_callback`, which also runs the
//! microtasks the handlers queue). No thread hop, no threadsafe function, no task per
//! connection: this is how Bun and uWebSockets.js serve sockets.
//!
//! The watch lives until its server closed and its last connection ended, or until the
//! environment ends: an async cleanup hook then closes the loop's connections and the libuv
//! handle (Node waits for that before it closes its loop). The handle is unreferenced: the
//! server's keep-alive timer in JavaScript decides whether the process stays.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::ToNapiValue;
use napi::{Env, JsValue, sys};
use tcpserver_core::driver::LocalLoop;

use crate::events::{JsBytes, JsSink, OnEvents};

type UvPollCb = unsafe extern "C" fn(handle: *mut c_void, status: i32, events: i32);
type UvCloseCb = unsafe extern "C" fn(handle: *mut c_void);

// libuv, as exported by the Node binary that loaded this addon.
unsafe extern "C" {
    fn uv_handle_size(kind: i32) -> usize;
    fn uv_poll_init(uv_loop: *mut c_void, handle: *mut c_void, fd: i32) -> i32;
    fn uv_poll_start(handle: *mut c_void, events: i32, cb: UvPollCb) -> i32;
    fn uv_poll_stop(handle: *mut c_void) -> i32;
    fn uv_close(handle: *mut c_void, cb: UvCloseCb);
    fn uv_unref(handle: *mut c_void);
}

/// `UV_POLL` in libuv's `uv_handle_type` (stable since libuv 1.0).
const UV_POLL: i32 = 8;
const UV_READABLE: i32 = 1;

/// The bytes of a loop's event area: the event words of a turn go there when they fit (1,024
/// events), so a turn creates one buffer (the payload's) instead of two.
const AREA_BYTES: usize = 16 * 1024;

struct Watch {
    env: sys::napi_env,
    on_events: sys::napi_ref,
    /// A `Buffer` made once, which every turn's event words are copied into (JavaScript keeps
    /// one `Uint32Array` over it): a fresh one per turn cost two allocations, a copy and a GC
    /// finalizer more. `onEvents` gets it with the count of words.
    area: sys::napi_ref,
    local: Arc<LocalLoop>,
    sink: Arc<JsSink>,
    /// The `uv_poll_t`, as opaque memory of libuv's size (its first field is `void* data`).
    handle: Box<[u64]>,
    cleanup: sys::napi_async_cleanup_hook_handle,
    /// The environment is ending: the cleanup hook waits for the handle's close.
    in_cleanup: bool,
    closing: bool,
}

/// Whether plain connections may be served on the JavaScript thread's loop:
/// `TCPSERVER_DATA_PATH=tokio` keeps every connection on the Tokio driver (to compare the two,
/// or to work around a problem in one).
pub(crate) fn enabled() -> bool {
    std::env::var_os("TCPSERVER_DATA_PATH").is_none_or(|v| v != "tokio")
}

/// A consumer loop for a server's plain connections, watched on `env`'s libuv loop; `None`
/// when it cannot start (the server then drives every connection with Tokio).
pub(crate) fn local_loop(
    env: &Env,
    conns: &Arc<tcpserver_core::driver::Connections>,
    sink: &Arc<JsSink>,
    on_events: &OnEvents<'_>,
) -> Option<Arc<LocalLoop>> {
    let local = LocalLoop::new(
        conns.clone(),
        Arc::new(crate::events::LoopSink(sink.clone())),
        sink.clone(),
        crate::runtime::runtime().handle().clone(),
    )
    .ok()?;
    let local = Arc::new(local);
    start(env, local.clone(), sink.clone(), on_events).ok()?;
    Some(local)
}

/// Starts watching `local` on the calling environment's libuv loop; its events (those its
/// turns report into `sink`) go to `on_events`. `Err` leaves nothing behind.
pub(crate) fn start(
    env: &Env,
    local: Arc<LocalLoop>,
    sink: Arc<JsSink>,
    on_events: &OnEvents<'_>,
) -> napi::Result<()> {
    let raw_env = env.raw();
    let mut uv_loop = ptr::null_mut();
    // SAFETY: a live env on its own thread; the out pointer is a local.
    let status = unsafe { sys::napi_get_uv_event_loop(raw_env, &mut uv_loop) };
    napi::check_status!(status, "no libuv loop")?;
    let mut on_events_ref = ptr::null_mut();
    // SAFETY: as above; the function value belongs to this env and this call's scope.
    let status =
        unsafe { sys::napi_create_reference(raw_env, on_events.raw(), 1, &mut on_events_ref) };
    napi::check_status!(status, "cannot reference onEvents")?;
    let mut area_ref = ptr::null_mut();
    // SAFETY: on the env's thread (a binding call); the buffer and the reference are made and
    // checked here, and the reference is deleted with the watch (`on_closed`) or below.
    let status = unsafe {
        let (mut area, mut data) = (ptr::null_mut(), ptr::null_mut());
        match sys::napi_create_buffer(raw_env, AREA_BYTES, &mut data, &mut area) {
            sys::Status::napi_ok => sys::napi_create_reference(raw_env, area, 1, &mut area_ref),
            failed => failed,
        }
    };
    if status != sys::Status::napi_ok {
        // SAFETY: the reference made above, not shared yet.
        unsafe { sys::napi_delete_reference(raw_env, on_events_ref) };
        return Err(napi::Error::from_reason("cannot create the event area"));
    }
    // SAFETY: a pure query of libuv.
    let size = unsafe { uv_handle_size(UV_POLL) };
    let watch = Box::into_raw(Box::new(Watch {
        env: raw_env,
        on_events: on_events_ref,
        area: area_ref,
        local,
        sink,
        handle: vec![0u64; size.div_ceil(8)].into_boxed_slice(),
        cleanup: ptr::null_mut(),
        in_cleanup: false,
        closing: false,
    }));
    // SAFETY: `watch` is a fresh, uniquely owned allocation; `handle` is zeroed memory of the
    // size libuv asked for, 8-aligned, that lives as long as the watch (freed only in
    // `on_closed`, after libuv let go of it). Its first word is the handle's `data` field.
    unsafe {
        let w = &mut *watch;
        let handle = w.handle.as_mut_ptr().cast::<c_void>();
        let fd = w.local.fd();
        if uv_poll_init(uv_loop.cast(), handle, fd) != 0 {
            sys::napi_delete_reference(raw_env, on_events_ref);
            sys::napi_delete_reference(raw_env, area_ref);
            drop(Box::from_raw(watch));
            return Err(napi::Error::from_reason("uv_poll_init failed"));
        }
        *handle.cast::<*mut Watch>() = watch;
        if uv_poll_start(handle, UV_READABLE, on_ready) != 0 {
            // Never watched: the server drives its connections with Tokio instead.
            begin_close(watch);
            return Err(napi::Error::from_reason("uv_poll_start failed"));
        }
        uv_unref(handle);
        let status = sys::napi_add_async_cleanup_hook(
            raw_env,
            Some(on_env_cleanup),
            watch.cast(),
            &mut w.cleanup,
        );
        if status != sys::Status::napi_ok {
            // Unreachable in practice; without the hook, the handle is closed now.
            w.cleanup = ptr::null_mut();
            begin_close(watch);
            return Err(napi::Error::from_reason("cannot add a cleanup hook"));
        }
    }
    Ok(())
}

/// libuv: the loop's descriptor is readable (or a deadline's timerfd fired in it).
unsafe extern "C" fn on_ready(handle: *mut c_void, _status: i32, _events: i32) {
    // SAFETY: `data` was set to the watch in `start`; the watch outlives its handle's
    // callbacks (freed in `on_closed`), and this runs on the env's own thread.
    let watch = unsafe { *handle.cast::<*mut Watch>() };
    // SAFETY: as above.
    let w = unsafe { &*watch };
    if w.closing {
        return;
    }
    let local = w.local.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        local.turn(&mut || deliver(w));
    }));
    if result.is_err() {
        // A bug in the loop must not take Node down: its connections close, and new ones
        // go to the Tokio driver from now on.
        local.close_all();
    }
    if local.finished() {
        // SAFETY: on the env's thread, in the handle's own callback; `cleanup` is the live
        // hook registered in `start` (removed here, so it never runs).
        unsafe {
            if !(*watch).cleanup.is_null() {
                sys::napi_remove_async_cleanup_hook((*watch).cleanup);
                (*watch).cleanup = ptr::null_mut();
            }
            begin_close(watch);
        }
    }
}

/// Calls `onEvents` with the batch, when it holds anything: `(area, payload, words)` when the
/// event words fit the area, `(events, payload)` otherwise.
fn deliver(w: &Watch) {
    let env = w.env;
    // SAFETY: runs on the env's thread inside a libuv callback, where Node has the env's
    // context entered; every value is created and used inside the handle scope opened here.
    unsafe {
        let mut scope = ptr::null_mut();
        if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
            return;
        }
        // No JavaScript runs while the batch is lent: only buffers are made.
        let args = w.sink.lend(|events, payload| {
            if events.is_empty() {
                return None;
            }
            let mut words = ptr::null_mut();
            let area = area_with(env, w.area, events).filter(|_| {
                sys::napi_create_uint32(env, (events.len() / 4) as u32, &mut words)
                    == sys::Status::napi_ok
            });
            let first = match area {
                Some(area) => Ok(area),
                None => JsBytes::copy(env, events),
            };
            let second = if JsBytes::handed_over(payload.len()) {
                JsBytes::to_napi_value(env, JsBytes(std::mem::take(payload)))
            } else {
                JsBytes::copy(env, payload)
            };
            Some((first, second, area.map(|_| words)))
        });
        let mut func = ptr::null_mut();
        let mut recv = ptr::null_mut();
        if let Some((Ok(a), Ok(b), words)) = args
            && sys::napi_get_reference_value(env, w.on_events, &mut func) == sys::Status::napi_ok
            && !func.is_null()
            && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok
        {
            let argv = [a, b, words.unwrap_or(ptr::null_mut())];
            let argc = if words.is_some() { 3 } else { 2 };
            let mut result = ptr::null_mut();
            // A null async context: the callback runs at the top of the stack like any libuv
            // callback; MakeCallback runs the microtasks and nextTicks after it.
            let status = sys::napi_make_callback(
                env,
                ptr::null_mut(),
                recv,
                func,
                argc,
                argv.as_ptr(),
                &mut result,
            );
            if status == sys::Status::napi_pending_exception {
                let mut error = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut error);
                // As a threadsafe function's throwing callback: 'uncaughtException'.
                sys::napi_fatal_exception(env, error);
            }
        }
        sys::napi_close_handle_scope(env, scope);
    }
}

/// The loop's event area with `events` copied to its start, if they fit.
///
/// # Safety
/// On the env's thread, inside a handle scope; `area` is the watch's live reference.
unsafe fn area_with(
    env: sys::napi_env,
    area: sys::napi_ref,
    events: &[u8],
) -> Option<sys::napi_value> {
    let (mut value, mut data, mut len) = (ptr::null_mut(), ptr::null_mut(), 0usize);
    // SAFETY: per the contract. The length is asked each time rather than trusted (a buffer
    // whose memory was detached reports 0 and is not written); it also bounds the batch.
    unsafe {
        if sys::napi_get_reference_value(env, area, &mut value) != sys::Status::napi_ok
            || value.is_null()
            || sys::napi_get_buffer_info(env, value, &mut data, &mut len) != sys::Status::napi_ok
            || len < events.len()
        {
            return None;
        }
        // SAFETY: `data` holds `len` >= `events.len()` bytes of a buffer no one else writes
        // (JavaScript only reads it, and not while this runs); the two do not overlap.
        ptr::copy_nonoverlapping(events.as_ptr(), data.cast::<u8>(), events.len());
    }
    Some(value)
}

/// Node: the environment is ending. Its connections close; the hook completes when libuv
/// closed the handle.
unsafe extern "C" fn on_env_cleanup(handle: sys::napi_async_cleanup_hook_handle, arg: *mut c_void) {
    let watch = arg.cast::<Watch>();
    // SAFETY: `arg` is the watch registered with this hook in `start`; the hook runs once, on
    // the env's thread, before the watch is freed (only `on_closed` frees it).
    unsafe {
        (*watch).local.close_all();
        (*watch).cleanup = handle;
        (*watch).in_cleanup = true;
        if !(*watch).closing {
            begin_close(watch);
        }
    }
}

/// Stops the handle and asks libuv to close it (`on_closed` frees the watch).
///
/// # Safety
/// On the env's thread, with a live watch whose handle is not closing yet.
unsafe fn begin_close(watch: *mut Watch) {
    // SAFETY: per the function's contract.
    unsafe {
        (*watch).closing = true;
        let handle = (*watch).handle.as_mut_ptr().cast::<c_void>();
        uv_poll_stop(handle);
        uv_close(handle, on_closed);
    }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: libuv is done with the handle; its `data` is the watch, owned by nobody else
    // now.
    unsafe {
        let watch = Box::from_raw(*handle.cast::<*mut Watch>());
        // libuv no longer watches the descriptor: it can go (and with it the loop's others).
        watch.local.close_io();
        sys::napi_delete_reference(watch.env, watch.on_events);
        sys::napi_delete_reference(watch.env, watch.area);
        if watch.in_cleanup {
            sys::napi_remove_async_cleanup_hook(watch.cleanup);
        }
        drop(watch);
    }
}
