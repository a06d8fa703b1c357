//! Property tests of `ServerConfig::validate` against an independent model of the documented
//! ranges. Address parsing: `fuzz_addresses.rs`.
//!
//! Case counts are bounded so the file runs in a few seconds under `cargo test --workspace`;
//! `PROPTEST_CASES=100000 cargo test -p tcpserver-core --test fuzz_config --release` digs deeper.
//! Failures are not persisted to a seeds file: CI runs in a fresh clone, so one written there
//! would be lost, and a shrunk counterexample reads better as a named regression test (at the
//! bottom of this file) than as an opaque seed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use tcpserver_core::{
    DEFAULT_IPV6_PREFIX, ErrorKind, InvalidKind, KeepAlive, LimitPolicy, MAX_LOOPS, ServerConfig,
};

use support::fuzz::cases;

/// One setter call.
#[derive(Debug, Clone)]
enum Op {
    Address(SocketAddr),
    ReusePort(bool),
    Loops(usize),
    FastOpen(u32),
    DeferAccept(u32),
    Backlog(u32),
    Ipv6Only(bool),
    NoDelay(bool),
    KeepAlive(Option<KeepAlive>),
    MaxConnections(usize),
    LimitPolicy(LimitPolicy),
    MaxConnectionsPerIp(u32, Option<u8>),
    MaxAcceptConnections(u64),
}

/// An independent model of the documented ranges: the options a configuration violates,
/// each with the kind of error it deserves.
#[derive(Debug, Default)]
struct Model {
    addresses: usize,
    reuse_port: Option<bool>,
    loops: Option<usize>,
    fast_open: Option<u32>,
    defer_accept: Option<u32>,
    backlog: Option<u32>,
    keep_alive: Option<KeepAlive>,
    max_connections: Option<usize>,
    per_ip: Option<(u32, Option<u8>)>,
    max_accept: Option<u64>,
}

impl Model {
    fn apply(&mut self, op: &Op, c: &mut ServerConfig) {
        match *op {
            Op::Address(a) => {
                self.addresses += 1;
                c.address(a);
            }
            Op::ReusePort(on) => {
                self.reuse_port = Some(on);
                c.reuse_port(on);
            }
            Op::Loops(n) => {
                self.loops = Some(n);
                c.loops(n);
            }
            Op::FastOpen(q) => {
                self.fast_open = Some(q);
                c.fast_open(q);
            }
            Op::DeferAccept(s) => {
                self.defer_accept = Some(s);
                c.defer_accept(s);
            }
            Op::Backlog(b) => {
                self.backlog = Some(b);
                c.backlog(b);
            }
            Op::Ipv6Only(on) => _ = c.ipv6_only(on),
            Op::NoDelay(on) => _ = c.no_delay(on),
            Op::KeepAlive(k) => {
                self.keep_alive = k;
                c.keep_alive(k);
            }
            Op::MaxConnections(n) => {
                self.max_connections = Some(n);
                c.max_connections(n);
            }
            Op::LimitPolicy(p) => _ = c.limit_policy(p),
            Op::MaxConnectionsPerIp(max, prefix) => {
                self.per_ip = Some((max, prefix));
                c.max_connections_per_ip(max, prefix);
            }
            Op::MaxAcceptConnections(n) => {
                self.max_accept = Some(n);
                c.max_accept_connections(n);
            }
        }
    }

    fn violations(&self) -> Vec<(&'static str, InvalidKind)> {
        use InvalidKind::{Range, Value};
        // Keep-alive times reach the kernel as whole seconds, which must be 1..=32767.
        let bad_secs = |d: Option<Duration>| {
            d.is_some_and(|d| d < Duration::from_secs(1) || d >= Duration::from_secs(32768))
        };
        let mut v = Vec::new();
        if self.addresses == 0 {
            v.push(("address", Value));
        }
        if let Some(n) = self.loops {
            if n == 0 || n > 1024 {
                v.push(("loops", Range));
            }
            // Several loops need several SO_REUSEPORT sockets.
            if n > 1 && self.reuse_port == Some(false) {
                v.push(("loops", Value));
            }
        }
        if self.backlog.is_some_and(|b| b == 0 || b > 65535) {
            v.push(("backlog", Range));
        }
        if self.fast_open.is_some_and(|q| q > 65535) {
            v.push(("fastOpen", Range));
        }
        if self.defer_accept.is_some_and(|s| s > 3600) {
            v.push(("deferAccept", Range));
        }
        if let Some(k) = self.keep_alive {
            if bad_secs(k.time) {
                v.push(("keepAlive.initialDelay", Range));
            }
            if bad_secs(k.interval) {
                v.push(("keepAlive.interval", Range));
            }
            if k.retries.is_some_and(|r| r == 0 || r > 127) {
                v.push(("keepAlive.count", Range));
            }
        }
        if self.max_connections == Some(0) {
            v.push(("maxConnections", Range));
        }
        if let Some((max, prefix)) = self.per_ip {
            if max == 0 {
                v.push(("maxConnectionsPerIp", Range));
            }
            if prefix.is_some_and(|p| p == 0 || p > 128) {
                v.push(("maxConnectionsPerIp.ipv6Prefix", Range));
            }
        }
        if self.max_accept == Some(0) {
            v.push(("maxAcceptConnections", Range));
        }
        v
    }
}

/// Numbers around the interesting edges, and anywhere.
fn edgy_u32(edges: &'static [u32]) -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(edges),
        prop::sample::select(edges).prop_map(|e| e.wrapping_add(1)),
        prop::sample::select(edges).prop_map(|e| e.wrapping_sub(1)),
        0u32..70_000,
        any::<u32>(),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (
            prop::sample::select(&[0u64, 1, 2, 32766, 32767, 32768, u64::MAX][..]),
            prop_oneof![Just(0u32), Just(999_999_999), 0u32..1_000_000_000]
        )
            .prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..40_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        any::<u64>().prop_map(Duration::from_millis),
    ]
}

fn keep_alive() -> impl Strategy<Value = KeepAlive> {
    (
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(edgy_u32(&[0, 1, 127, 128, u32::MAX])),
    )
        .prop_map(|(time, interval, retries)| KeepAlive {
            time,
            interval,
            retries,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let loops = prop_oneof![
        prop::sample::select(
            &[
                0usize,
                1,
                2,
                MAX_LOOPS - 1,
                MAX_LOOPS,
                MAX_LOOPS + 1,
                usize::MAX
            ][..]
        ),
        0usize..2000,
        any::<usize>(),
    ];
    let prefix = prop::option::of(prop_oneof![
        prop::sample::select(&[0u8, 1, 63, 64, 127, 128, 129, 255][..]),
        any::<u8>(),
    ]);
    prop_oneof![
        2 => any::<SocketAddr>().prop_map(Op::Address),
        1 => any::<bool>().prop_map(Op::ReusePort),
        1 => loops.prop_map(Op::Loops),
        1 => edgy_u32(&[0, 1, 256, 65535, u32::MAX]).prop_map(Op::FastOpen),
        1 => edgy_u32(&[0, 1, 3600, u32::MAX]).prop_map(Op::DeferAccept),
        1 => edgy_u32(&[0, 1, 511, 65535, u32::MAX]).prop_map(Op::Backlog),
        1 => any::<bool>().prop_map(Op::Ipv6Only),
        1 => any::<bool>().prop_map(Op::NoDelay),
        1 => prop::option::of(keep_alive()).prop_map(Op::KeepAlive),
        1 => prop_oneof![Just(0usize), Just(1), any::<usize>()].prop_map(Op::MaxConnections),
        1 => prop_oneof![Just(LimitPolicy::Hold), Just(LimitPolicy::Refuse)].prop_map(Op::LimitPolicy),
        1 => (prop_oneof![Just(0u32), Just(1), any::<u32>()], prefix)
            .prop_map(|(max, prefix)| Op::MaxConnectionsPerIp(max, prefix)),
        1 => prop_oneof![Just(0u64), Just(1), any::<u64>()].prop_map(Op::MaxAcceptConnections),
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Any sequence of setter calls: `validate()` accepts exactly the configurations within
    /// the documented ranges, and a refusal names an option that is out of range, with the
    /// matching kind.
    #[test]
    fn validate_matches_documented_ranges(ops in prop::collection::vec(op(), 0..16)) {
        let mut model = Model::default();
        let mut c = ServerConfig::default();
        for op in &ops {
            model.apply(op, &mut c);
        }
        let violations = model.violations();
        let result = c.validate();
        // Pure: the same answer twice, and for a clone.
        prop_assert_eq!(format!("{result:?}"), format!("{:?}", c.clone().validate()));
        match result {
            Ok(()) => {
                prop_assert!(violations.is_empty(), "accepted, but {:?} out of range", violations);
                prop_assert_eq!(c.addresses().len(), model.addresses);
                let loops = c.effective_loops();
                prop_assert!((1..=MAX_LOOPS).contains(&loops));
                if let Some(n) = model.loops {
                    prop_assert_eq!(loops, n);
                }
            }
            Err(err) => {
                let option = err.option().expect("a validation error names its option");
                let kind = match err.kind() {
                    ErrorKind::InvalidArgument(k) => k,
                    other => panic!("{err}: kind {other:?}"),
                };
                prop_assert!(
                    violations.contains(&(option, kind)),
                    "refused for {:?} ({:?}: {}), but the model sees only {:?}", option, kind, err, violations
                );
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }
}

/// The default prefix the per-IP limit falls back to is a valid one.
#[test]
fn default_ipv6_prefix_is_in_range() {
    assert!((1..=128).contains(&DEFAULT_IPV6_PREFIX));
}
