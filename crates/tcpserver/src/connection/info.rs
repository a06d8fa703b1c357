//! What is known about a connection from its start: its id, addresses, and when it began. A
//! leaf: admission (`gate.rs`, which rewrites the addresses a PROXY header names) uses it
//! without depending on the connection itself.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use crate::addr::Address;

/// Facts fixed at accept time.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Server-unique id, counting from 1.
    pub id: u64,
    /// The client's address (from the PROXY protocol header, on such listeners). Clients of
    /// Unix domain sockets are usually unnamed: [`Address::Unix`] with an empty path.
    pub peer_addr: Address,
    /// The server-side address the client connected to (the header's, on PROXY protocol
    /// listeners); the socket's path on Unix domain sockets.
    pub local_addr: Address,
    /// On PROXY protocol listeners: the load balancer's address, i.e. the socket's peer.
    pub proxied_by: Option<SocketAddr>,
    /// Wall-clock time of accept.
    pub start_time: SystemTime,
    /// Monotonic time of accept.
    pub started: Instant,
}

impl ConnectionInfo {
    /// The facts of a connection that starts now (accepted, or connected outbound).
    pub(crate) fn starting_now(id: u64, peer_addr: Address, local_addr: Address) -> Self {
        Self {
            id,
            peer_addr,
            local_addr,
            proxied_by: None,
            start_time: SystemTime::now(),
            started: Instant::now(),
        }
    }
}
