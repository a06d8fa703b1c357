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
            .on_thread_start(no_wakeup_preemption)
            .enable_all()
            .build()
            .expect("cannot start the Tokio runtime")
    })
}

/// Runs Tokio workers under `SCHED_BATCH`: a worker woken by socket readiness then does not
/// preempt the JavaScript thread on the same CPU. It runs when JavaScript blocks and reads
/// everything that arrived meanwhile in one burst, so one wake-up of JavaScript carries a big
/// batch instead of one event. On a machine with idle CPUs nothing changes: the worker runs on
/// another one at once. Set `TCPSERVER_SCHED_BATCH=0` to keep the default policy.
fn no_wakeup_preemption() {
    #[cfg(target_os = "linux")]
    if std::env::var("TCPSERVER_SCHED_BATCH").as_deref() != Ok("0") {
        // musl's sched_param has more fields than glibc's (the SCHED_SPORADIC ones), so the
        // struct is zeroed rather than spelled out field by field.
        // SAFETY: sched_param is plain C data (integers and timespecs): all-zero bytes are a
        // valid value of it.
        let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
        param.sched_priority = 0;
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for SCHED_BATCH
        // (priority 0). Failure only leaves the default policy in place.
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_BATCH, &raw const param);
        }
    }
}
