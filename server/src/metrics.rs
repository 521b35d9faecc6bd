//! Prometheus metrics: request counts and latency histograms by RPC and status
//! code, plus gauges read from the host and engine at scrape time.

use crate::histogram::{AtomicHistogram, LATENCY_BUCKETS};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Duration;

/// Per-RPC request counters and latency histograms.
#[derive(Default)]
pub struct RpcMetrics {
    by_rpc: RwLock<FxHashMap<(&'static str, i32), Arc<AtomicHistogram>>>,
}

impl RpcMetrics {
    /// Records one finished request.
    pub fn record(&self, rpc: &'static str, code: tonic::Code, elapsed: Duration) {
        let key = (rpc, code as i32);
        let existing = self.by_rpc.read().get(&key).cloned();
        let hist = match existing {
            Some(h) => h,
            None => self
                .by_rpc
                .write()
                .entry(key)
                .or_insert_with(|| Arc::new(AtomicHistogram::new(LATENCY_BUCKETS)))
                .clone(),
        };
        hist.observe(elapsed.as_secs_f64());
    }

    /// Requests recorded for an RPC and code.
    pub fn count(&self, rpc: &str, code: tonic::Code) -> u64 {
        self.by_rpc.read().iter().filter(|((r, c), _)| *r == rpc && *c == code as i32).map(|(_, h)| h.count()).sum()
    }

    /// Writes `linggong_rpc_duration_seconds` (histogram; its `_count` is the request count) in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP linggong_rpc_duration_seconds RPC latency by method and status code.\n");
        out.push_str("# TYPE linggong_rpc_duration_seconds histogram\n");
        let map = self.by_rpc.read();
        let mut keys: Vec<_> = map.keys().copied().collect();
        keys.sort();
        for (rpc, code) in keys {
            let labels = format!("rpc=\"{rpc}\",code=\"{:?}\"", tonic::Code::from(code));
            map[&(rpc, code)].render(out, "linggong_rpc_duration_seconds", &labels);
        }
    }
}

/// Gauges and counters kept by the server application around the API.
#[derive(Default)]
pub struct ServerMetrics {
    inflight_requests: std::sync::atomic::AtomicI64,
    oversize_messages: std::sync::atomic::AtomicU64,
    watch_streams_ended_by_shutdown: std::sync::atomic::AtomicU64,
}

/// Decrements the in-flight request gauge when dropped.
pub struct InflightRequest {
    metrics: Arc<ServerMetrics>,
}

impl Drop for InflightRequest {
    fn drop(&mut self) {
        self.metrics.inflight_requests.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ServerMetrics {
    /// Counts a request (or open stream) as in flight until the returned guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> InflightRequest {
        self.inflight_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InflightRequest { metrics: self.clone() }
    }

    /// Requests (including open streams) in flight.
    pub fn inflight_requests(&self) -> i64 {
        self.inflight_requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a request refused for an oversize message.
    pub fn oversize_message(&self) {
        self.oversize_messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a server stream ended because the server is shutting down.
    pub fn stream_ended_by_shutdown(&self) {
        self.watch_streams_ended_by_shutdown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn posting_state_label(state: linggong_engine::PostingState) -> &'static str {
    use linggong_engine::PostingState::*;
    match state {
        PendingReview => "pending_review",
        Published => "published",
        Filling => "filling",
        Filled => "filled",
        Expired => "expired",
        Cancelled => "cancelled",
        Rejected => "rejected",
    }
}

/// Renders every metric in Prometheus text format: RPC latency by method and
/// code, waiting workers by county and trade, postings by state, offers and
/// fills by county, WAL fsync latency and records per fsync, snapshot
/// duration, writes and requests in flight.
pub fn render_all(host: &crate::host::Host, rpc: &RpcMetrics, server: &ServerMetrics) -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::with_capacity(64 * 1024);
    rpc.render(&mut out);

    // Copy what is needed under the read lock, render after releasing it.
    let stats: Vec<linggong_engine::CountyStats> =
        host.read_engine(|e| e.regions().counties().iter().filter_map(|c| e.county_stats(c.code)).collect());
    let (workers, waiting) = host.read_engine(|e| (e.worker_count(), e.waiting_count()));
    let gauge = |out: &mut String, name: &str, help: &str, kind: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    gauge(&mut out, "linggong_workers", "Registered workers.", "gauge");
    let _ = writeln!(out, "linggong_workers {workers}");
    gauge(&mut out, "linggong_waiting_workers_total", "Workers waiting for work (each counted once).", "gauge");
    let _ = writeln!(out, "linggong_waiting_workers_total {waiting}");
    gauge(
        &mut out,
        "linggong_waiting_workers",
        "Waiting workers by county and trade (a worker counts once per trade).",
        "gauge",
    );
    for s in &stats {
        for (trade, n) in &s.waiting_by_trade {
            let _ = writeln!(out, "linggong_waiting_workers{{county=\"{}\",trade=\"{trade}\"}} {n}", s.county);
        }
    }
    gauge(&mut out, "linggong_postings", "Postings by county and state.", "gauge");
    for s in &stats {
        for (state, n) in &s.postings_by_state {
            let _ = writeln!(
                out,
                "linggong_postings{{county=\"{}\",state=\"{}\"}} {n}",
                s.county,
                posting_state_label(*state)
            );
        }
    }
    gauge(&mut out, "linggong_offers_total", "Offers by county and what became of them.", "counter");
    for s in &stats {
        let c = &s.counters;
        for (outcome, n) in [
            ("made", c.offers_made),
            ("accepted", c.offers_accepted),
            ("declined", c.offers_declined),
            ("expired", c.offers_expired),
        ] {
            let _ = writeln!(out, "linggong_offers_total{{county=\"{}\",outcome=\"{outcome}\"}} {n}", s.county);
        }
    }
    gauge(&mut out, "linggong_fills_total", "Postings filled, by county.", "counter");
    for s in &stats {
        let _ = writeln!(out, "linggong_fills_total{{county=\"{}\"}} {}", s.county, s.counters.postings_filled);
    }
    gauge(
        &mut out,
        "linggong_hardship_placements_total",
        "Accepted offers that went to hardship workers, by county.",
        "counter",
    );
    for s in &stats {
        let _ = writeln!(
            out,
            "linggong_hardship_placements_total{{county=\"{}\"}} {}",
            s.county, s.counters.hardship_placements
        );
    }
    gauge(&mut out, "linggong_registrations_total", "New worker registrations, by county.", "counter");
    for s in &stats {
        let _ = writeln!(out, "linggong_registrations_total{{county=\"{}\"}} {}", s.county, s.counters.registrations);
    }

    let m = host.metrics();
    gauge(&mut out, "linggong_wal_fsync_seconds", "Write-ahead log fdatasync latency.", "histogram");
    m.fsync_seconds.render(&mut out, "linggong_wal_fsync_seconds", "");
    gauge(
        &mut out,
        "linggong_wal_records_per_fsync",
        "Records made durable by one fdatasync (group commit).",
        "histogram",
    );
    m.records_per_fsync.render(&mut out, "linggong_wal_records_per_fsync", "");
    gauge(&mut out, "linggong_snapshot_duration_seconds", "Time to write one snapshot.", "histogram");
    m.snapshot_seconds.render(&mut out, "linggong_snapshot_duration_seconds", "");
    for (name, help, value) in [
        ("linggong_wal_records_written_total", "Records written to the log.", m.records_written.load(Relaxed)),
        ("linggong_wal_bytes_written_total", "Record payload bytes written to the log.", m.bytes_written.load(Relaxed)),
        ("linggong_snapshots_written_total", "Snapshots written.", m.snapshots_written.load(Relaxed)),
        (
            "linggong_wal_segments_deleted_total",
            "Log segments deleted after snapshots.",
            m.segments_deleted.load(Relaxed),
        ),
        (
            "linggong_writes_overloaded_total",
            "Writes refused because too many were in flight.",
            m.overloaded.load(Relaxed),
        ),
        (
            "linggong_oversize_messages_total",
            "Requests refused for an oversize message.",
            server.oversize_messages.load(Relaxed),
        ),
        (
            "linggong_streams_ended_by_shutdown_total",
            "Server streams ended because the server was shutting down.",
            server.watch_streams_ended_by_shutdown.load(Relaxed),
        ),
    ] {
        gauge(&mut out, name, help, "counter");
        let _ = writeln!(out, "{name} {value}");
    }
    gauge(&mut out, "linggong_inflight_writes", "Writes queued or awaiting durability.", "gauge");
    let _ = writeln!(out, "linggong_inflight_writes {}", host.inflight());
    gauge(&mut out, "linggong_inflight_requests", "gRPC requests and open streams in flight.", "gauge");
    let _ = writeln!(out, "linggong_inflight_requests {}", server.inflight_requests());
    gauge(&mut out, "linggong_wal_failed", "1 once the write-ahead log has failed (the server then stops).", "gauge");
    let _ = writeln!(out, "linggong_wal_failed {}", u8::from(host.failure().is_some()));
    if let Some(node) = host.cluster() {
        node.render_metrics(&mut out);
    }
    out
}
