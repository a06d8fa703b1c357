//! napi-rs binding of the `tcpserver` core. It converts types and batches events to
//! JavaScript; behaviour lives in the core (Rust) or in `packages/tcpserver` (TypeScript).
//! See README.md beside this crate for how a byte travels and what each step costs.

mod error;
mod events;
mod options;
mod runtime;
mod server;
