//! The final report of a run: per-RPC counts, errors by status code, rates and latency
//! percentiles, the totals over every RPC, watch-stream lag, CPU by thread group and server
//! counters; rendered as a table for people and as JSON (`--json`) for machines.

use crate::machine::MachineInfo;
use crate::progress::format_us;
use crate::record::{latency_histogram, ErrorCounts, Recorded, Sample};
use crate::workload::WorkloadStats;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Latency percentiles of a histogram, microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// The percentiles of a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        }
    }
}

/// One RPC's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RpcReport {
    /// Calls completed in the window (successes and errors).
    pub count: u64,
    /// Failed calls.
    pub errors: u64,
    /// Failed calls by status code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Calls per second of the window.
    pub rate_per_s: f64,
    /// Latency of every completed call.
    #[serde(flatten)]
    pub latency: Percentiles,
}

/// What the watching stations saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WatchReport {
    /// Stations following a county stream.
    pub stations: usize,
    /// Posting events received, all stations together.
    pub events: u64,
    /// Events per second.
    pub events_per_s: f64,
    /// Lag samples: the first event a station saw of each posting the tool submitted.
    pub lag_samples: u64,
    /// Time from sending `SubmitPosting` to a station receiving the posting's event.
    pub lag: Percentiles,
    /// Streams resumed with `after_seq` after they ended.
    pub resumes: u64,
    /// Stream endings by status code.
    pub stream_ends_by_code: BTreeMap<String, u64>,
    /// Sequence numbers that skipped or repeated across a resume (should be 0).
    pub sequence_anomalies: u64,
}

/// Engine-mode figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EngineReport {
    /// Waiting workers when the load started.
    pub waiting_workers_at_start: usize,
    /// Seconds spent building the market.
    pub setup_s: f64,
    /// Share of the window spent inside engine calls (the rest is the tool drawing and bookkeeping).
    pub engine_busy_share: f64,
    /// Calls per second of engine time: what the engine alone would sustain on one core.
    pub engine_only_rate_per_s: f64,
}

/// Server-side counters read from the Prometheus endpoint before and after the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServerCounters {
    /// Write-ahead log records written in the window.
    pub wal_records: f64,
    /// fdatasync calls in the window.
    pub wal_fsyncs: f64,
    /// fsyncs per second.
    pub wal_fsyncs_per_s: f64,
    /// Records made durable per fsync (group commit), mean over the window.
    pub records_per_fsync: f64,
    /// Mean fsync latency in the window, microseconds.
    pub fsync_mean_us: f64,
    /// Writes refused as overloaded in the window.
    pub writes_overloaded: f64,
}

/// One server process the tool started (`--spawn-cluster`) and its CPU in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerProcessCpu {
    /// Member id.
    pub node_id: u64,
    /// Process id.
    pub pid: u32,
    /// `leader` (the one loaded) or `follower`, when the load started.
    pub role: String,
    /// Cores the whole process kept busy (1.0 = one core the whole window).
    pub cpu_cores: f64,
    /// The same by thread group.
    pub cpu_cores_by_thread_group: BTreeMap<String, f64>,
}

/// The whole report (the `--json` file).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Tool name and version.
    pub tool: String,
    /// The run's settings.
    pub settings: serde_json::Value,
    /// The machine.
    pub machine: MachineInfo,
    /// Seconds the measured window lasted (warmup excluded).
    pub measured_s: f64,
    /// Calls completed in the window, every RPC together.
    pub requests: u64,
    /// Calls per second, every RPC together.
    pub throughput_per_s: f64,
    /// Median latency over every call, microseconds.
    pub p50_us: f64,
    /// 90th percentile, microseconds.
    pub p90_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub p999_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
    /// Failed calls.
    pub errors: u64,
    /// Failed calls by status code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// gRPC mode: times the load moved to a new leader over the whole run, setup included (a
    /// call succeeded at another member than the last one a call had succeeded at).
    pub leader_changes: u64,
    /// gRPC mode: times the calls moved to another connection over the whole run, setup
    /// included (to the leader a `NOT_LEADER` answer named, or to another member when none was
    /// named or the member was lost); following one change of leader may take several.
    pub route_switches: u64,
    /// gRPC mode: calls over the whole run, setup included, that were sent again because their
    /// member was not the leader, knew none or could not be reached; one that finally succeeded
    /// is no error, and its latency runs from its first attempt.
    pub retried_calls: u64,
    /// Per RPC, by method name.
    pub per_rpc: BTreeMap<String, RpcReport>,
    /// Watch-stream figures (`watch` scenario).
    pub watch: Option<WatchReport>,
    /// What the workload did.
    pub workload: WorkloadStats,
    /// Engine-mode figures.
    pub engine: Option<EngineReport>,
    /// CPU use in the window by thread group of this process (the tool, and an in-process server
    /// beside it), in cores (1.0 = one core busy the whole window).
    pub cpu_cores_by_thread_group: BTreeMap<String, f64>,
    /// Server processes the tool started (`--spawn-cluster`), each measured apart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_processes: Vec<ServerProcessCpu>,
    /// Server CPU in the window, cores: every spawned server process together, or an in-process
    /// server's thread groups; absent for an external server.
    pub server_cpu_cores: Option<f64>,
    /// Server CPU per completed call, microseconds (`server_cpu_cores` / `throughput_per_s`).
    pub server_cpu_us_per_call: Option<f64>,
    /// Server counters, when a metrics endpoint was available.
    pub server: Option<ServerCounters>,
    /// One sample per interval, warmup included.
    pub timeline: Vec<Sample>,
}

/// Parts of the report that do not come from the recorder.
pub struct ReportContext {
    /// The run's settings, serialized.
    pub settings: serde_json::Value,
    /// The machine.
    pub machine: MachineInfo,
    /// Watching stations (0 for none).
    pub stations: usize,
    /// What the workload did.
    pub workload: WorkloadStats,
    /// Engine-mode figures.
    pub engine: Option<EngineReport>,
    /// CPU by thread group.
    pub cpu_cores_by_thread_group: BTreeMap<String, f64>,
    /// Server counters.
    pub server: Option<ServerCounters>,
    /// Spawned server processes.
    pub server_processes: Vec<ServerProcessCpu>,
    /// Server CPU, cores, when it could be measured.
    pub server_cpu_cores: Option<f64>,
    /// Times the load moved to a new leader (0 in engine mode).
    pub leader_changes: u64,
    /// Times the calls moved to another connection (0 in engine mode).
    pub route_switches: u64,
    /// Calls sent again at another member (0 in engine mode).
    pub retried_calls: u64,
}

fn by_code(errors: &ErrorCounts) -> BTreeMap<String, u64> {
    errors.sorted().into_iter().map(|(c, n)| (c.name().to_string(), n)).collect()
}

impl Report {
    /// Builds the report from what was recorded.
    pub fn build(recorded: &Recorded, ctx: ReportContext) -> Report {
        let secs = recorded.measured.as_secs_f64().max(1e-9);
        let mut all = latency_histogram();
        let mut all_errors = ErrorCounts::default();
        let mut per_rpc = BTreeMap::new();
        let mut requests = 0;
        for (rpc, stats) in &recorded.rpcs {
            all.add(&stats.latency).expect("histograms share their bounds");
            all_errors.merge(&stats.errors);
            requests += stats.calls;
            per_rpc.insert(
                rpc.name().to_string(),
                RpcReport {
                    count: stats.calls,
                    errors: stats.errors.total(),
                    errors_by_code: by_code(&stats.errors),
                    rate_per_s: stats.calls as f64 / secs,
                    latency: Percentiles::of(&stats.latency),
                },
            );
        }
        let total = Percentiles::of(&all);
        let w = &recorded.watch;
        let watch = (ctx.stations > 0).then(|| WatchReport {
            stations: ctx.stations,
            events: w.events,
            events_per_s: w.events as f64 / secs,
            lag_samples: w.lag.len(),
            lag: Percentiles::of(&w.lag),
            resumes: w.resumes,
            stream_ends_by_code: by_code(&w.stream_errors),
            sequence_anomalies: w.sequence_anomalies,
        });
        Report {
            tool: format!("linggong-loadtest {}", env!("CARGO_PKG_VERSION")),
            settings: ctx.settings,
            machine: ctx.machine,
            measured_s: secs,
            requests,
            throughput_per_s: requests as f64 / secs,
            p50_us: total.p50_us,
            p90_us: total.p90_us,
            p99_us: total.p99_us,
            p999_us: total.p999_us,
            max_us: total.max_us,
            errors: all_errors.total(),
            errors_by_code: by_code(&all_errors),
            leader_changes: ctx.leader_changes,
            route_switches: ctx.route_switches,
            retried_calls: ctx.retried_calls,
            per_rpc,
            watch,
            workload: ctx.workload,
            engine: ctx.engine,
            cpu_cores_by_thread_group: ctx.cpu_cores_by_thread_group,
            server_processes: ctx.server_processes,
            server_cpu_cores: ctx.server_cpu_cores,
            server_cpu_us_per_call: ctx
                .server_cpu_cores
                .filter(|_| requests > 0)
                .map(|cores| cores * 1e6 / (requests as f64 / secs)),
            server: ctx.server,
            timeline: recorded.samples.clone(),
        }
    }

    /// The report as a table for people.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>8} {:>11}  {:>9} {:>9} {:>9} {:>9} {:>9}  errors by code",
            "RPC", "count", "errors", "rate/s", "p50", "p90", "p99", "p99.9", "max"
        );
        let row = |out: &mut String, name: &str, r: &RpcReport| {
            let codes: Vec<String> = r.errors_by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(
                out,
                "{:<22} {:>10} {:>8} {:>11.1}  {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                name,
                r.count,
                r.errors,
                r.rate_per_s,
                format_us(r.latency.p50_us),
                format_us(r.latency.p90_us),
                format_us(r.latency.p99_us),
                format_us(r.latency.p999_us),
                format_us(r.latency.max_us),
                codes.join(", ")
            );
        };
        let mut rows: Vec<(&String, &RpcReport)> = self.per_rpc.iter().collect();
        rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        for (name, r) in rows {
            row(&mut out, name, r);
        }
        let total = RpcReport {
            count: self.requests,
            errors: self.errors,
            errors_by_code: self.errors_by_code.clone(),
            rate_per_s: self.throughput_per_s,
            latency: Percentiles {
                p50_us: self.p50_us,
                p90_us: self.p90_us,
                p99_us: self.p99_us,
                p999_us: self.p999_us,
                max_us: self.max_us,
                mean_us: 0.0,
            },
        };
        row(&mut out, "TOTAL", &total);
        let _ = writeln!(out, "window {:.1} s; latency of every completed call, failed ones included", self.measured_s);
        if self.route_switches > 0 || self.retried_calls > 0 {
            let _ = writeln!(
                out,
                "leader: {} changes followed ({} switches of connection); {} calls retried (charged from their first attempt)",
                self.leader_changes, self.route_switches, self.retried_calls
            );
        }
        if let Some(w) = &self.watch {
            let _ = writeln!(
                out,
                "watch: {} stations, {} events ({:.0}/s); lag from SubmitPosting sent to event received over {} \
                 postings: p50 {} p99 {} p99.9 {} max {}; {} resumes, {} sequence anomalies",
                w.stations,
                w.events,
                w.events_per_s,
                w.lag_samples,
                format_us(w.lag.p50_us),
                format_us(w.lag.p99_us),
                format_us(w.lag.p999_us),
                format_us(w.lag.max_us),
                w.resumes,
                w.sequence_anomalies
            );
        }
        if let Some(e) = &self.engine {
            let _ = writeln!(
                out,
                "engine: {} waiting workers at start (built in {:.1} s); {:.0}% of the window inside engine calls, \
                 {:.0} calls/s of engine time",
                e.waiting_workers_at_start,
                e.setup_s,
                e.engine_busy_share * 100.0,
                e.engine_only_rate_per_s
            );
        }
        if !self.cpu_cores_by_thread_group.is_empty() {
            let parts: Vec<String> =
                self.cpu_cores_by_thread_group.iter().map(|(k, v)| format!("{k} {:.2}", v)).collect();
            // Ours: this process and the server processes it started.
            let ours: f64 = self.cpu_cores_by_thread_group.values().sum::<f64>()
                + self.server_processes.iter().map(|p| p.cpu_cores).sum::<f64>();
            let machine = match self.machine.machine_cores_busy {
                Some(busy) => {
                    format!("; the machine {busy:.2} busy, {:.2} of it other processes", (busy - ours).max(0.0))
                }
                None => String::new(),
            };
            let _ = writeln!(out, "cpu (cores) by thread group: {}{machine}", parts.join(", "));
        }
        for p in &self.server_processes {
            let parts: Vec<String> = p.cpu_cores_by_thread_group.iter().map(|(k, v)| format!("{k} {:.2}", v)).collect();
            let _ = writeln!(
                out,
                "server node {} ({}, pid {}): {:.2} cores ({})",
                p.node_id,
                p.role,
                p.pid,
                p.cpu_cores,
                parts.join(", ")
            );
        }
        if let (Some(cores), Some(us)) = (self.server_cpu_cores, self.server_cpu_us_per_call) {
            let _ = writeln!(out, "server cpu: {cores:.2} cores in all, {us:.0} µs per call");
        }
        if let Some(s) = &self.server {
            let _ = writeln!(
                out,
                "server: {:.0} WAL records, {:.0} fsyncs ({:.0}/s, {:.1} records each, mean {}), {:.0} writes refused as overloaded",
                s.wal_records,
                s.wal_fsyncs,
                s.wal_fsyncs_per_s,
                s.records_per_fsync,
                format_us(s.fsync_mean_us),
                s.writes_overloaded
            );
        }
        let m = &self.machine;
        let _ = writeln!(
            out,
            "machine: {} cores ({}), load average {:.2} at start, {:.2} at end; server: {}",
            m.cores, m.cpu_model, m.load_average_start[0], m.load_average_end[0], m.server_build
        );
        out
    }
}

/// Sums the values of a Prometheus text metric over all its label sets (`None` if absent).
pub fn prometheus_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

impl ServerCounters {
    /// The counters' growth between two scrapes of the metrics endpoint over `secs`.
    pub fn between(before: &str, after: &str, secs: f64) -> ServerCounters {
        let delta =
            |name: &str| prometheus_sum(after, name).unwrap_or(0.0) - prometheus_sum(before, name).unwrap_or(0.0);
        let fsyncs = delta("linggong_wal_fsync_seconds_count");
        let fsync_sum = delta("linggong_wal_fsync_seconds_sum");
        let per_fsync_sum = delta("linggong_wal_records_per_fsync_sum");
        let per_fsync_count = delta("linggong_wal_records_per_fsync_count");
        ServerCounters {
            wal_records: delta("linggong_wal_records_written_total"),
            wal_fsyncs: fsyncs,
            wal_fsyncs_per_s: fsyncs / secs.max(1e-9),
            records_per_fsync: if per_fsync_count > 0.0 { per_fsync_sum / per_fsync_count } else { 0.0 },
            fsync_mean_us: if fsyncs > 0.0 { fsync_sum / fsyncs * 1e6 } else { 0.0 },
            writes_overloaded: delta("linggong_writes_overloaded_total"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Collector, ErrorClass, Rpc};
    use std::time::Duration;

    fn context() -> ReportContext {
        ReportContext {
            settings: serde_json::json!({"scenario": "match"}),
            machine: MachineInfo::default(),
            stations: 0,
            workload: WorkloadStats::default(),
            engine: None,
            cpu_cores_by_thread_group: BTreeMap::new(),
            server: None,
            server_processes: Vec::new(),
            server_cpu_cores: None,
            leader_changes: 0,
            route_switches: 0,
            retried_calls: 0,
        }
    }

    #[test]
    fn totals_add_up_over_rpcs() {
        let c = Collector::new();
        c.start_measuring();
        for i in 0..90 {
            c.record(Rpc::InstantMatch, Duration::from_micros(100 + i), None);
        }
        for _ in 0..10 {
            c.record(Rpc::UpdatePosting, Duration::from_micros(50), Some(ErrorClass("FAILED_PRECONDITION")));
        }
        c.end_window();
        let report = Report::build(&c.recorded(), context());
        assert_eq!(report.requests, 100);
        assert_eq!(report.per_rpc.values().map(|r| r.count).sum::<u64>(), 100);
        assert_eq!(report.errors, 10);
        assert_eq!(report.errors_by_code.get("FAILED_PRECONDITION"), Some(&10));
        assert!(report.p50_us >= 100.0 && report.p50_us <= 190.0, "{}", report.p50_us);
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "throughput_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "errors",
            "per_rpc",
            "machine",
            "settings",
            "leader_changes",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        assert_eq!(json["per_rpc"]["InstantMatch"]["count"], 90);
        let table = report.to_table();
        assert!(table.contains("InstantMatch") && table.contains("FAILED_PRECONDITION 10"), "{table}");
    }

    #[test]
    fn prometheus_counters_are_summed_over_labels_and_diffed() {
        let before = "# HELP x\nlinggong_wal_fsync_seconds_count 10\nlinggong_wal_fsync_seconds_sum 0.01\n\
                      linggong_wal_records_written_total 100\n";
        let after = "linggong_wal_fsync_seconds_count 20\nlinggong_wal_fsync_seconds_sum 0.03\n\
                     linggong_wal_records_written_total 1100\nlinggong_wal_records_per_fsync_sum 1000\n\
                     linggong_wal_records_per_fsync_count 10\nlinggong_rpc{code=\"OK\"} 3\nlinggong_rpc{code=\"X\"} 4\n";
        let s = ServerCounters::between(before, after, 2.0);
        assert_eq!(s.wal_records, 1000.0);
        assert_eq!(s.wal_fsyncs, 10.0);
        assert_eq!(s.wal_fsyncs_per_s, 5.0);
        assert_eq!(s.records_per_fsync, 100.0);
        assert!((s.fsync_mean_us - 2000.0).abs() < 1e-6);
        assert_eq!(prometheus_sum(after, "linggong_rpc"), Some(7.0));
        assert_eq!(prometheus_sum(after, "linggong_absent"), None);
    }
}
