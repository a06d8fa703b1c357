//! The calls JavaScript makes per request or per connection (`write`, `release`, `ack`,
//! `readNow`) as plain N-API functions, bound to one source of connections.
//!
//! Why not `#[napi]` methods: since napi-rs 3.16 every call of a method on a class instance
//! registers a borrow of the instance in a process-wide `Mutex<HashMap>` (lock, SipHash,
//! insert, then lock and remove) and opens a borrow scope in thread-local storage. For a call
//! whose own work is one `send()` that is more than the call itself: in t2 (`wrk -t1 -c100`,
//! keep-alive), about 2.3 % of the server's samples against 0.9 % for our `write`. Here a call
//! reads its arguments and the connections it is bound to (the function's data pointer), and
//! does its work: no unwrap of `this`, no lock, no allocation.
//!
//! Each function owns one reference to the connections (an `Arc`), dropped by a finalizer when
//! the function is collected. Errors, bad arguments and panics are core errors thrown through
//! the binding's one mapping (`error.rs`), as the `#[napi]` methods' are, so `fromNative` reads
//! them alike.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::{JsObjectValue, Object};
use napi::{Env, JsError, Status, sys};
use napi_derive::napi;

use tcpserver_core::{Error, InvalidKind};

use crate::connections::BindingConnections;
use crate::error::{Code, or_throw, throw};

/// A call's outcome before it becomes a JavaScript value (`undefined` for `None`) or exception.
type Outcome = Result<Option<Returned>, napi::Error<Code>>;

/// What a call returns to JavaScript.
enum Returned {
    Number(u32),
    /// Latin-1 text.
    Text(Vec<u8>),
}

#[napi]
impl BindingConnections {
    /// The per-request calls (`write`, `release`, `ack`, `readNow`) as functions bound to
    /// these connections, without napi-rs's per-call bookkeeping.
    #[napi(
        ts_return_type = "{ write(id: number, data: Uint8Array): number; release(id: number): string | undefined; ack(id: number, n: number): void; readNow(id: number, delivered: number, buf: Uint8Array): number }"
    )]
    pub fn hot_calls<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        hot_calls(env, self)
    }
}

/// Makes `{ write, release, ack, readNow }` bound to `conns`.
fn hot_calls<'env>(env: &'env Env, conns: &BindingConnections) -> napi::Result<Object<'env>> {
    let mut object = Object::new(env)?;
    let shared = Arc::new(conns.clone());
    type Call = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let calls: [(&str, Call); 4] = [
        ("write", write),
        ("release", release),
        ("ack", ack),
        ("readNow", read_now),
    ];
    for (name, call) in calls {
        let data = Arc::into_raw(shared.clone()).cast_mut().cast::<c_void>();
        let mut function = ptr::null_mut();
        // SAFETY: `env` is the live env of this binding call; `name` outlives the call (Node
        // copies it); `data` is an `Arc` reference that the finalizer below takes back.
        let status = unsafe {
            match sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(call),
                data,
                &mut function,
            ) {
                sys::Status::napi_ok => sys::napi_add_finalizer(
                    env.raw(),
                    function,
                    data,
                    Some(drop_conns),
                    ptr::null_mut(),
                    ptr::null_mut(),
                ),
                failed => failed,
            }
        };
        if status != sys::Status::napi_ok {
            // SAFETY: the reference made above, handed to nobody.
            drop(unsafe { Arc::from_raw(data.cast::<BindingConnections>()) });
            return Err(napi::Error::new(
                Status::GenericFailure,
                format!("cannot create {name}"),
            ));
        }
        // SAFETY: `function` is a live value of this env, made above.
        object.set_named_property(name, unsafe {
            napi::Unknown::from_raw_unchecked(env.raw(), function)
        })?;
    }
    Ok(object)
}

/// The finalizer of a bound function: its reference to the connections goes.
unsafe extern "C" fn drop_conns(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc` reference given to this function in `hot_calls`, dropped
    // once, here.
    drop(unsafe { Arc::from_raw(data.cast::<BindingConnections>()) });
}

/// `write(id, bytes)`: the bytes still queued in the process.
unsafe extern "C" fn write(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this callback's env and info.
    unsafe {
        call::<2>(env, info, |conns, argv| {
            let id = u32_arg(env, argv[0], "id")?;
            let bytes = bytes_arg(env, argv[1], "data")?;
            // SAFETY: the view's memory is only read, synchronously, during this call.
            let queued = conns.write_bytes(id, std::slice::from_raw_parts(bytes.0, bytes.1));
            or_throw(queued).map(|q| Some(Returned::Number(u32::try_from(q).unwrap_or(u32::MAX))))
        })
    }
}

/// `release(id)`: the handler finished (flush, FIN, close). Returns the connection's closed
/// text (a CLOSED event's) when it closed during the call, which JavaScript then handles as
/// that event: none comes for it.
unsafe extern "C" fn release(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this callback's env and info.
    unsafe {
        call::<1>(env, info, |conns, argv| {
            let closed = conns.release(u32_arg(env, argv[0], "id")?);
            Ok(closed.map(|info| {
                let mut text = Vec::with_capacity(64);
                crate::events::push_closed_text(&mut text, &info, None);
                Returned::Text(text)
            }))
        })
    }
}

/// `ack(id, n)`: `n` bytes of read credit back.
unsafe extern "C" fn ack(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this callback's env and info.
    unsafe {
        call::<2>(env, info, |conns, argv| {
            conns.ack(u32_arg(env, argv[0], "id")?, u32_arg(env, argv[1], "n")?);
            Ok(None)
        })
    }
}

/// `readNow(id, delivered, buf)`: the bytes read into `buf` (0: wait for events).
unsafe extern "C" fn read_now(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: called by Node with this callback's env and info.
    unsafe {
        call::<3>(env, info, |conns, argv| {
            let id = u32_arg(env, argv[0], "id")?;
            let mut delivered = 0f64;
            if sys::napi_get_value_double(env, argv[1], &mut delivered) != sys::Status::napi_ok {
                return Err(arg_error("delivered", "a number"));
            }
            let (data, len) = bytes_arg(env, argv[2], "buf")?;
            // SAFETY: JavaScript's buffer, written synchronously during this call only, on
            // the one thread that can touch it.
            let buf = std::slice::from_raw_parts_mut(data.cast_mut(), len);
            Ok(Some(Returned::Number(conns.read_into(id, delivered, buf))))
        })
    }
}

/// Reads `N` arguments and the bound connections, runs `f` (panics caught), and turns its
/// outcome into the return value (`undefined` for `None`) or a thrown exception.
///
/// # Safety
/// `env` and `info` are those of a running callback made by [`hot_calls`].
unsafe fn call<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    f: impl FnOnce(&BindingConnections, &[sys::napi_value; N]) -> Outcome,
) -> sys::napi_value {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    let mut data = ptr::null_mut();
    // SAFETY: per the contract; `argv` has room for `argc` values.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        )
    };
    let outcome = if status != sys::Status::napi_ok || data.is_null() {
        Err(throw(&Error::Panic(
            "the call's arguments could not be read".into(),
        )))
    } else if argc < N {
        Err(arg_error("arguments", "all of them"))
    } else {
        // SAFETY: `data` is the `Arc` reference this function holds until it is collected,
        // which cannot happen while it runs.
        let conns = unsafe { &*data.cast::<BindingConnections>() };
        catch_unwind(AssertUnwindSafe(|| f(conns, &argv))).unwrap_or_else(|panic| {
            let e = napi::bindgen_prelude::panic_to_error(panic);
            Err(throw(&Error::Panic(e.reason.clone())))
        })
    };
    let mut out = ptr::null_mut();
    match outcome {
        // SAFETY: the env of this callback.
        Ok(Some(Returned::Number(n))) => unsafe { sys::napi_create_uint32(env, n, &mut out) },
        // SAFETY: as above; the text's pointer and length describe it (Node copies it).
        Ok(Some(Returned::Text(text))) => unsafe {
            sys::napi_create_string_latin1(env, text.as_ptr().cast(), text.len() as isize, &mut out)
        },
        // SAFETY: as above.
        Ok(None) => unsafe { sys::napi_get_undefined(env, &mut out) },
        Err(e) => {
            // SAFETY: as above; the exception is pending when this returns.
            unsafe { JsError::from(e).throw_into(env) };
            return ptr::null_mut();
        }
    };
    out
}

/// An argument of the wrong type: `ERR_INVALID_ARG_TYPE`, through the binding's one mapping.
fn arg_error(name: &'static str, expected: &str) -> napi::Error<Code> {
    throw(&Error::InvalidOption {
        option: name,
        reason: format!("{name}: expected {expected}"),
        invalid: InvalidKind::Type,
    })
}

/// A `u32` argument.
///
/// # Safety
/// `value` is a live value of `env`, on its thread.
unsafe fn u32_arg(
    env: sys::napi_env,
    value: sys::napi_value,
    name: &'static str,
) -> Result<u32, napi::Error<Code>> {
    let mut n = 0u32;
    // SAFETY: per the contract.
    match unsafe { sys::napi_get_value_uint32(env, value, &mut n) } {
        sys::Status::napi_ok => Ok(n),
        _ => Err(arg_error(name, "a number")),
    }
}

/// A `Uint8Array` argument's memory: start and length.
///
/// # Safety
/// `value` is a live value of `env`, on its thread; the memory is valid until JavaScript runs
/// again.
unsafe fn bytes_arg(
    env: sys::napi_env,
    value: sys::napi_value,
    name: &'static str,
) -> Result<(*const u8, usize), napi::Error<Code>> {
    let mut kind = 0;
    let (mut len, mut data, mut buffer, mut offset) =
        (0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
    // SAFETY: per the contract; every out-pointer is a local.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            value,
            &mut kind,
            &mut len,
            &mut data,
            &mut buffer,
            &mut offset,
        )
    };
    if status != sys::Status::napi_ok || kind != sys::TypedarrayType::uint8_array {
        return Err(arg_error(name, "a Uint8Array"));
    }
    // An empty or detached view may report no memory at all.
    let start = if data.is_null() {
        ptr::NonNull::<u8>::dangling().as_ptr()
    } else {
        data.cast::<u8>()
    };
    Ok((start, if data.is_null() { 0 } else { len }))
}
