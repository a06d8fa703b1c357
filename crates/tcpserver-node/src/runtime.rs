//! The process-wide Tokio runtime that runs every server's accept loops and connections.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Worker threads: `TCPSERVER_THREADS` if set, else one per CPU this process may run on
/// (so `taskset -c 0 node app.js` gets one worker beside the JavaScript thread).
fn worker_threads() -> usize {
    std::env::var("TCPSERVER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| (1..=256).contains(&n))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(worker_threads())
            .thread_name("tcpserver")
            .enable_all()
            .build()
            .expect("cannot start the Tokio runtime")
    })
}
