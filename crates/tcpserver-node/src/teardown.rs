//! What a JavaScript environment owns, released when it ends. The addon is loaded once per
//! process, but each environment (the main thread, every worker thread) creates its own
//! servers and outbound hub, and their sockets live on the process-wide Tokio runtime, not on
//! the environment's event loop. Without this, a terminated worker (or one that called
//! `process.exit()`) left its listeners accepting and its connections open: nothing on the
//! JavaScript side is left to close them. So every server and hub is registered under its
//! environment, and one N-API cleanup hook per environment (`napi_add_env_cleanup_hook`, which
//! Node runs on the environment's thread as it is torn down) closes the listeners, aborts the
//! connections and drops the wake-up functions. A server that closes normally leaves the
//! registry on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use napi::Env;
use tcpserver_core::Server;
use tcpserver_core::driver::Connections;
use tokio_util::sync::CancellationToken;

use crate::events::JsSink;
use crate::runtime::runtime;

/// How long an environment's teardown waits for its connection tasks to finish after they were
/// aborted (they end at their next poll; this only bounds a pathological case).
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);

/// One server or hub of an environment.
pub(crate) struct Owned {
    /// The listening server (`None` for the outbound hub).
    pub(crate) server: Option<Server>,
    /// Cancels the hub's outbound connections and connection attempts.
    pub(crate) abort: CancellationToken,
    /// Its events' wake-up function.
    pub(crate) sink: Arc<JsSink>,
    /// Its connections.
    pub(crate) conns: Arc<Connections>,
}

/// Where a resource is registered, to leave the registry when it closes normally.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registration {
    env: usize,
    id: u64,
}

/// Every live environment's resources, by environment (`napi_env` address) and id.
static OWNED: Mutex<Option<HashMap<usize, HashMap<u64, Owned>>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> MutexGuard<'static, Option<HashMap<usize, HashMap<u64, Owned>>>> {
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `owned` under `env`; the first registration of an environment installs its
/// cleanup hook.
pub(crate) fn register(env: &Env, owned: Owned) -> napi::Result<Registration> {
    let key = env.raw() as usize;
    let id = NEXT_ID.fetch_add(1, Relaxed);
    let mut guard = registry();
    let envs = guard.get_or_insert_with(HashMap::new);
    let first = !envs.contains_key(&key);
    if first {
        // Installed before the entry exists, so a failure leaves nothing behind.
        env.add_env_cleanup_hook(key, teardown)?;
    }
    envs.entry(key).or_default().insert(id, owned);
    Ok(Registration { env: key, id })
}

/// A server closed normally: it no longer needs releasing.
pub(crate) fn unregister(at: Registration) {
    if let Some(envs) = registry().as_mut()
        && let Some(owned) = envs.get_mut(&at.env)
    {
        owned.remove(&at.id);
    }
}

/// The cleanup hook: runs on the environment's own thread while it is torn down (the
/// JavaScript objects are gone; nothing calls into JavaScript from here).
fn teardown(env: usize) {
    let owned = registry()
        .as_mut()
        .and_then(|envs| envs.remove(&env))
        .unwrap_or_default();
    for o in owned.into_values() {
        release(o);
    }
}

/// Closes the listeners (the port refuses clients when this returns), aborts every connection
/// and connection attempt, and drops the wake-up function without calling it.
fn release(o: Owned) {
    o.abort.cancel();
    o.sink.detach();
    let conns = o.conns;
    runtime().block_on(async move {
        let closed = async {
            if let Some(server) = o.server {
                server.halt().await;
            }
            // The hub's connections end at their next poll after the abort.
            while !conns.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(TEARDOWN_WAIT, closed).await;
    });
}
