//! Prometheus metrics of the server, served as `GET /metrics` on its port
//! (text exposition format, no labels that name a workspace, volume or
//! file — only totals). Counted as things happen: calls by method and
//! status with their latency, metadata transaction time, blocks freed.
//! Read from the store when scraped: volumes, sessions, locks, bytes and
//! blocks stored, dedup ratio, the change feed's head and lag.
//!
//! One registry per process (a process runs one server; tests that start
//! several in one process see their sums).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::limits::BoxFut;
use crate::service::State;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Distinct methods kept apart; more (only a broken or hostile client
/// calls methods that do not exist) are counted as "other".
const MAX_METHODS: usize = 128;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Per method: calls by status, and their latency.
#[derive(Default)]
struct Method {
    codes: BTreeMap<String, u64>,
    latency: Histogram,
}

type Rpcs = BTreeMap<String, Method>;

static RPCS: LazyLock<Mutex<Rpcs>> = LazyLock::new(Mutex::default);
static META: LazyLock<Mutex<Histogram>> = LazyLock::new(Mutex::default);
static BLOCKS_FREED: AtomicU64 = AtomicU64::new(0);
static BLOCK_FDS: AtomicU64 = AtomicU64::new(0);
static BLOCK_MEMFDS: AtomicU64 = AtomicU64::new(0);

fn record_call(method: &str, code: &str, secs: f64) {
    let mut r = RPCS.lock().unwrap_or_else(|p| p.into_inner());
    // Known keys are found by reference: a call allocates nothing here.
    let key = if r.contains_key(method) || r.len() < MAX_METHODS {
        method
    } else {
        "other"
    };
    if !r.contains_key(key) {
        r.insert(key.to_string(), Method::default());
    }
    let Some(m) = r.get_mut(key) else { return };
    match m.codes.get_mut(code) {
        Some(n) => *n += 1,
        None => {
            m.codes.insert(code.to_string(), 1);
        }
    }
    m.latency.observe(secs);
}

/// One metadata transaction took `secs`.
pub(crate) fn meta_transaction(secs: f64) {
    META.lock().unwrap_or_else(|p| p.into_inner()).observe(secs);
}

/// The reaper deleted a block.
pub(crate) fn block_freed() {
    BLOCKS_FREED.fetch_add(1, Ordering::Relaxed);
}

/// The block channel handed a client a block's file.
pub(crate) fn block_fd_sent() {
    BLOCK_FDS.fetch_add(1, Ordering::Relaxed);
}

/// The block channel stored a block a client handed in as a memfd.
pub(crate) fn block_fd_received() {
    BLOCK_MEMFDS.fetch_add(1, Ordering::Relaxed);
}

/// `Lookup` from `/svol.v1.Svol/Lookup`; every other path is the web.
fn method_of(path: &str) -> &str {
    match path.strip_prefix("/svol.v1.Svol/") {
        Some(m)
            if !m.is_empty() && m.len() <= 40 && m.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            m
        }
        Some(_) => "other",
        None => "http",
    }
}

fn code_name(code: &str) -> &'static str {
    match code {
        "0" => "OK",
        "1" => "CANCELLED",
        "2" => "UNKNOWN",
        "3" => "INVALID_ARGUMENT",
        "4" => "DEADLINE_EXCEEDED",
        "5" => "NOT_FOUND",
        "6" => "ALREADY_EXISTS",
        "7" => "PERMISSION_DENIED",
        "8" => "RESOURCE_EXHAUSTED",
        "9" => "FAILED_PRECONDITION",
        "10" => "ABORTED",
        "11" => "OUT_OF_RANGE",
        "12" => "UNIMPLEMENTED",
        "13" => "INTERNAL",
        "14" => "UNAVAILABLE",
        "15" => "DATA_LOSS",
        "16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Counts every call the port answers, by method and status.
#[derive(Clone)]
pub(crate) struct RpcLayer;

impl<S> tower::Layer<S> for RpcLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner }
    }
}

#[derive(Clone)]
pub(crate) struct Counted<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFut<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_of(req.uri().path()).to_string();
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let secs = start.elapsed().as_secs_f64();
            // A failed call answers its status in the headers (trailers
            // only); a successful one in trailers after its body: OK.
            let code: std::borrow::Cow<'static, str> = match &res {
                Ok(r) if method == "http" => r.status().as_str().to_string().into(),
                Ok(r) => match r.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
                    Some(c) => code_name(c).into(),
                    None => "OK".into(),
                },
                Err(_) => "transport_error".into(),
            };
            record_call(&method, &code, secs);
            res
        })
    }
}

/// The whole exposition, as `GET /metrics` answers it.
pub(crate) async fn render(state: Arc<State>) -> String {
    let mut out = String::new();
    {
        let r = RPCS.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP svol_rpc_requests_total Calls answered, by method and status (method \"http\": the dashboard and /metrics).\n# TYPE svol_rpc_requests_total counter\n");
        for (m, method) in r.iter() {
            for (c, n) in &method.codes {
                let _ = writeln!(
                    out,
                    "svol_rpc_requests_total{{method=\"{m}\",code=\"{c}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP svol_rpc_duration_seconds Time to answer a call (to its response headers).\n# TYPE svol_rpc_duration_seconds histogram\n");
        for (m, method) in r.iter() {
            let labels = format!("method=\"{m}\"");
            method
                .latency
                .render(&mut out, "svol_rpc_duration_seconds", &labels);
        }
    }
    out.push_str("# HELP svol_meta_transaction_seconds Time of one metadata-store operation.\n# TYPE svol_meta_transaction_seconds histogram\n");
    META.lock().unwrap_or_else(|p| p.into_inner()).render(
        &mut out,
        "svol_meta_transaction_seconds",
        "",
    );
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        &mut out,
        "svol_blocks_freed_total",
        "Blocks deleted because nothing referenced them any more.",
        BLOCKS_FREED.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "svol_block_channel_files_total",
        "Blocks handed to clients on this host as open files (the block channel) instead of bytes.",
        BLOCK_FDS.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "svol_block_channel_stored_total",
        "Blocks clients on this host handed in as memfds (the block channel) and the server stored.",
        BLOCK_MEMFDS.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "svol_meta_transaction_retries_total",
        "Metadata transactions run again after losing a race (PostgreSQL serialization failures).",
        svol_meta::transaction_retries(),
    );

    let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    let meta = state.meta.clone();
    let stats = tokio::task::spawn_blocking(move || meta.stats()).await;
    match stats {
        Ok(Ok(s)) => {
            gauge(
                &mut out,
                "svol_volumes",
                "Volumes in every workspace.",
                s.volumes as f64,
            );
            gauge(
                &mut out,
                "svol_logical_bytes",
                "Bytes of every regular file, before dedup.",
                s.logical_bytes as f64,
            );
            gauge(
                &mut out,
                "svol_stored_bytes",
                "Bytes of the blocks kept, after dedup.",
                s.block_bytes as f64,
            );
            gauge(
                &mut out,
                "svol_stored_blocks",
                "Blocks kept.",
                s.blocks as f64,
            );
            let ratio = if s.block_bytes == 0 {
                1.0
            } else {
                s.logical_bytes as f64 / s.block_bytes as f64
            };
            gauge(
                &mut out,
                "svol_dedup_ratio",
                "Logical bytes per stored byte (inline small files count as logical only).",
                ratio,
            );
            gauge(
                &mut out,
                "svol_sessions",
                "Client sessions (mounts, runs) holding a lease.",
                s.sessions as f64,
            );
            gauge(
                &mut out,
                "svol_locks_held",
                "Byte-range and flock locks held.",
                s.locks_held as f64,
            );
            gauge(
                &mut out,
                "svol_lock_waiters",
                "Lock requests waiting in line.",
                s.lock_waiters as f64,
            );
            gauge(
                &mut out,
                "svol_feed_head",
                "Newest change-feed sequence number in the store.",
                s.feed_head as f64,
            );
            let seen = state.feed.seen();
            gauge(
                &mut out,
                "svol_feed_lag",
                "Changes in the store this server has not yet pushed to its sessions.",
                s.feed_head.saturating_sub(seen) as f64,
            );
        }
        Ok(Err(e)) => tracing::warn!("metrics: reading the store's totals: {e}"),
        Err(e) => tracing::warn!("metrics: reading the store's totals: {e}"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded_and_histograms_cumulative() {
        assert_eq!(method_of("/svol.v1.Svol/Lookup"), "Lookup");
        assert_eq!(method_of("/svol.v1.Svol/../x"), "other");
        assert_eq!(method_of("/apps"), "http");
        let mut h = Histogram::default();
        h.observe(0.0003);
        h.observe(3.0);
        let mut s = String::new();
        h.render(&mut s, "x_seconds", "method=\"A\"");
        assert!(
            s.contains("x_seconds_bucket{method=\"A\",le=\"0.0005\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("x_seconds_bucket{method=\"A\",le=\"5\"} 2"),
            "{s}"
        );
        assert!(s.contains("x_seconds_count{method=\"A\"} 2"), "{s}");
    }
}
