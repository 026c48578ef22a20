//! Prometheus metrics of a mount (`svol mount --metrics ADDR` serves
//! [`render`]): FUSE operations by type with their latency (kernel request
//! to reply, including the server round trips it waited for), block cache
//! hits and misses, bytes read and written, uploads in flight, and
//! invalidations received. One registry per process: a mount process
//! serves one mount.
//!
//! How an operation is timed without touching how each callback answers:
//! a callback starts its timer ([`enter`]); if it hands its work to a task
//! ([`take`] in `spawn`), the timer travels with the task and stops when
//! the task ends; otherwise it stops when the callback returns.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

const BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

static OPS: LazyLock<Mutex<BTreeMap<&'static str, Histogram>>> = LazyLock::new(Mutex::default);
pub(crate) static CACHE_HITS: AtomicU64 = AtomicU64::new(0);
pub(crate) static CACHE_MISSES: AtomicU64 = AtomicU64::new(0);
pub(crate) static BYTES_READ: AtomicU64 = AtomicU64::new(0);
pub(crate) static BYTES_WRITTEN: AtomicU64 = AtomicU64::new(0);
pub(crate) static UPLOADS_IN_FLIGHT: AtomicI64 = AtomicI64::new(0);
pub(crate) static INVALIDATIONS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The time of one FUSE operation, recorded when dropped.
pub(crate) struct OpTimer {
    op: &'static str,
    start: Instant,
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        let mut ops = OPS.lock().unwrap_or_else(|p| p.into_inner());
        let h = ops.entry(self.op).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }
}

thread_local! {
    static CURRENT: RefCell<Option<OpTimer>> = const { RefCell::new(None) };
}

/// Started by a callback; stops its operation's timer when the callback
/// returns, unless a task took it.
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        drop(CURRENT.with(|c| c.borrow_mut().take()));
    }
}

pub(crate) fn enter(op: &'static str) -> Entered {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(OpTimer {
            op,
            start: Instant::now(),
        })
    });
    Entered(())
}

/// The running callback's timer, for the task that finishes its work.
pub(crate) fn take() -> Option<OpTimer> {
    CURRENT.with(|c| c.borrow_mut().take())
}

/// The mount's whole exposition.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str("# HELP svol_mount_fuse_operations_total FUSE requests answered, by type.\n# TYPE svol_mount_fuse_operations_total counter\n");
    let ops = OPS.lock().unwrap_or_else(|p| p.into_inner());
    for (op, h) in ops.iter() {
        let _ = writeln!(
            out,
            "svol_mount_fuse_operations_total{{op=\"{op}\"}} {}",
            h.count
        );
    }
    out.push_str("# HELP svol_mount_fuse_operation_seconds Time from a FUSE request to its reply.\n# TYPE svol_mount_fuse_operation_seconds histogram\n");
    for (op, h) in ops.iter() {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "svol_mount_fuse_operation_seconds_bucket{{op=\"{op}\",le=\"{b}\"}} {}",
                h.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "svol_mount_fuse_operation_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "svol_mount_fuse_operation_seconds_sum{{op=\"{op}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "svol_mount_fuse_operation_seconds_count{{op=\"{op}\"}} {}",
            h.count
        );
    }
    drop(ops);
    let mut one = |name: &str, kind: &str, help: &str, v: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
    one(
        "svol_mount_block_cache_hits_total",
        "counter",
        "Blocks found in the mount's cache.",
        load(&CACHE_HITS),
    );
    one(
        "svol_mount_block_cache_misses_total",
        "counter",
        "Blocks fetched from the server.",
        load(&CACHE_MISSES),
    );
    one(
        "svol_mount_read_bytes_total",
        "counter",
        "Bytes answered to reads.",
        load(&BYTES_READ),
    );
    one(
        "svol_mount_written_bytes_total",
        "counter",
        "Bytes taken from writes.",
        load(&BYTES_WRITTEN),
    );
    one(
        "svol_mount_uploads_in_flight",
        "gauge",
        "Sealed 4 MiB chunks being uploaded.",
        UPLOADS_IN_FLIGHT.load(Ordering::Relaxed).max(0).to_string(),
    );
    one(
        "svol_mount_invalidations_total",
        "counter",
        "Invalidations the server pushed to this mount.",
        load(&INVALIDATIONS),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_is_timed_once_where_it_ends() {
        {
            let _e = enter("unit_local");
        }
        let travelled = {
            let _e = enter("unit_spawned");
            take()
        };
        assert!(render().contains("svol_mount_fuse_operations_total{op=\"unit_local\"} 1"));
        assert!(
            !render().contains("op=\"unit_spawned\""),
            "not yet: its task runs on"
        );
        drop(travelled);
        assert!(render().contains("svol_mount_fuse_operations_total{op=\"unit_spawned\"} 1"));
    }
}
