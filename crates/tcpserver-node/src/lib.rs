//! napi-rs binding of the `tcpserver` core. It converts types and batches events to
//! JavaScript; behaviour lives in the core (Rust) or in `packages/tcpserver` (TypeScript).
//! See README.md beside this crate for how a byte travels and what each step costs.

// napi-derive compiles its registration code out under cfg(test), which `--all-targets` builds;
// its Rust tests are unit tests of pure helpers (the ava suite exercises the rest), so nothing is
// dead for real there.
#![cfg_attr(test, allow(dead_code))]

mod connections;
mod error;
mod events;
mod hot_calls;
mod hub;
mod options;
mod runtime;
mod server;
mod sni;
mod teardown;
mod types;
#[cfg(target_os = "linux")]
mod uv_watch;
mod workers;
