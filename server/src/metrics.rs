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
            None => self.by_rpc.write().entry(key).or_insert_with(|| Arc::new(AtomicHistogram::new(LATENCY_BUCKETS))).clone(),
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
