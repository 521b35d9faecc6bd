//! Prometheus metrics through `prometheus-client`, in the OpenMetrics text
//! format: the standard gRPC server metrics (`grpc_server_handled_total`,
//! `grpc_server_handling_seconds` by `grpc_type`, `grpc_service`,
//! `grpc_method` and `grpc_code`, codes spelled as gRPC names), the build,
//! the process (read from `/proc/self` on Linux, absent elsewhere), and a
//! collector that reads the engine, the host, the data directory (WAL bytes
//! on disk, snapshot age) and the listeners at scrape time.

use crate::conn::ConnStats;
use crate::histogram::{AtomicHistogram, LATENCY_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the gRPC server metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    grpc_type: &'static str,
    grpc_service: Arc<String>,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

/// A method's service and call type, from the descriptor set.
#[derive(Clone)]
struct MethodInfo {
    service: Arc<String>,
    kind: &'static str,
}

fn histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

/// Per-RPC request counters and latency histograms.
pub struct RpcMetrics {
    methods: FxHashMap<String, MethodInfo>,
    handled: Family<RpcLabels, Counter>,
    handling: Family<RpcLabels, Histogram, fn() -> Histogram>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcMetrics {
    /// Counters for the API's methods (service names from the descriptor set).
    pub fn new() -> Self {
        use prost::Message as _;
        let mut methods = FxHashMap::default();
        if let Ok(set) = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET) {
            for file in set.file.iter().filter(|f| !f.package().starts_with("linggong.wal")) {
                for service in &file.service {
                    let name = Arc::new(format!("{}.{}", file.package(), service.name()));
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => "unary",
                            (false, true) => "server_stream",
                            (true, false) => "client_stream",
                            (true, true) => "bidi_stream",
                        };
                        methods.insert(method.name().to_string(), MethodInfo { service: name.clone(), kind });
                    }
                }
            }
        }
        Self { methods, handled: Family::default(), handling: Family::new_with_constructor(histogram) }
    }

    fn labels(&self, rpc: &'static str, code: tonic::Code) -> RpcLabels {
        let (service, kind) = match self.methods.get(rpc) {
            Some(m) => (m.service.clone(), m.kind),
            None => (Arc::new(String::new()), "unary"),
        };
        RpcLabels { grpc_type: kind, grpc_service: service, grpc_method: rpc, grpc_code: code_name(code) }
    }

    /// Records one finished request.
    pub fn record(&self, rpc: &'static str, code: tonic::Code, elapsed: Duration) {
        let labels = self.labels(rpc, code);
        self.handling.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.handled.get_or_create(&labels).inc();
    }

    /// Requests recorded for an RPC and code.
    pub fn count(&self, rpc: &'static str, code: tonic::Code) -> u64 {
        self.handled.get(&self.labels(rpc, code)).map_or(0, |c| c.get())
    }
}

/// The gRPC name of a status code, as `grpc_code` spells it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Gauges and counters kept by the server application around the API.
#[derive(Default, Debug)]
pub struct ServerMetrics {
    inflight_requests: AtomicI64,
    oversize_messages: AtomicU64,
    watch_streams_ended_by_shutdown: AtomicU64,
}

/// Decrements the in-flight request gauge when dropped.
pub struct InflightRequest {
    metrics: Arc<ServerMetrics>,
}

impl Drop for InflightRequest {
    fn drop(&mut self) {
        self.metrics.inflight_requests.fetch_sub(1, Relaxed);
    }
}

impl ServerMetrics {
    /// Counts a request (or open stream) as in flight until the returned guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> InflightRequest {
        self.inflight_requests.fetch_add(1, Relaxed);
        InflightRequest { metrics: self.clone() }
    }

    /// Requests (including open streams) in flight.
    pub fn inflight_requests(&self) -> i64 {
        self.inflight_requests.load(Relaxed)
    }

    /// Counts a request refused for an oversize message.
    pub fn oversize_message(&self) {
        self.oversize_messages.fetch_add(1, Relaxed);
    }

    /// Counts a server stream ended because the server is shutting down.
    pub fn stream_ended_by_shutdown(&self) {
        self.watch_streams_ended_by_shutdown.fetch_add(1, Relaxed);
    }
}

/// Everything `/metrics` shows, as one registry.
pub struct Metrics {
    registry: Registry,
    host: Arc<crate::host::Host>,
}

/// What the scrape-time collector reads.
pub struct Sources {
    /// The engine host.
    pub host: Arc<crate::host::Host>,
    /// Application counters.
    pub server: Arc<ServerMetrics>,
    /// The data directory (WAL bytes on disk, snapshot age).
    pub data_dir: PathBuf,
    /// Listener counters by listener name (`grpc`, `http`).
    pub listeners: Vec<(&'static str, Arc<ConnStats>)>,
}

impl Metrics {
    /// The registry: gRPC metrics, build information, process and engine collectors.
    pub fn new(rpc: &RpcMetrics, sources: Sources) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, by method and status code",
            rpc.handled.clone(),
        );
        registry.register_with_unit(
            "grpc_server_handling",
            "Time from receiving an RPC to its status, by method and status code",
            Unit::Seconds,
            rpc.handling.clone(),
        );
        registry.register(
            "linggong_build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(ProcessCollector));
        let host = sources.host.clone();
        registry.register_collector(Box::new(EngineCollector(sources)));
        Self { registry, host }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        // The Raft member's figures, before the closing `# EOF`.
        let eof = out.ends_with("# EOF\n");
        if eof {
            out.truncate(out.len() - "# EOF\n".len());
        }
        self.host.member().render_metrics(&mut out);
        if eof {
            out.push_str("# EOF\n");
        }
        out
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("data_dir", &self.data_dir).finish_non_exhaustive()
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

type Fmt = Result<(), std::fmt::Error>;

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<&Unit>, value: f64) -> Fmt {
    ConstGauge::new(value).encode(e.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<&Unit>, value: u64) -> Fmt {
    ConstCounter::new(value).encode(e.encode_descriptor(name, help, unit, MetricType::Counter)?)
}

fn atomic_histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    h: &AtomicHistogram,
) -> Fmt {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum(), h.count(), &h.buckets(), None)
}

/// Engine, host and data directory figures, read at scrape time.
#[derive(Debug)]
struct EngineCollector(Sources);

impl Collector for EngineCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Fmt {
        let s = &self.0;
        // Copy what is needed under the read lock, encode after releasing it.
        let stats: Vec<linggong_engine::CountyStats> =
            s.host.read_engine(|e| e.regions().counties().iter().filter_map(|c| e.county_stats(c.code)).collect());
        let (workers, waiting) = s.host.read_engine(|e| (e.worker_count(), e.waiting_count()));
        gauge(&mut e, "linggong_workers", "Registered workers.", None, workers as f64)?;
        gauge(
            &mut e,
            "linggong_waiting_workers",
            "Workers waiting for work (each counted once).",
            None,
            waiting as f64,
        )?;
        {
            let mut d = e.encode_descriptor(
                "linggong_waiting_workers_by_trade",
                "Waiting workers by county and trade (a worker counts once per trade).",
                None,
                MetricType::Gauge,
            )?;
            for c in &stats {
                let county = c.county.to_string();
                for (trade, n) in &c.waiting_by_trade {
                    let labels = [("county", county.as_str()), ("trade", trade.as_str())];
                    ConstGauge::new(*n as f64).encode(d.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut d =
                e.encode_descriptor("linggong_postings", "Postings by county and state.", None, MetricType::Gauge)?;
            for c in &stats {
                let county = c.county.to_string();
                for (state, n) in &c.postings_by_state {
                    let labels = [("county", county.as_str()), ("state", posting_state_label(*state))];
                    ConstGauge::new(*n as f64).encode(d.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut d = e.encode_descriptor(
                "linggong_offers",
                "Offers by county and what became of them.",
                None,
                MetricType::Counter,
            )?;
            for c in &stats {
                let county = c.county.to_string();
                let k = &c.counters;
                for (outcome, n) in [
                    ("made", k.offers_made),
                    ("accepted", k.offers_accepted),
                    ("declined", k.offers_declined),
                    ("expired", k.offers_expired),
                ] {
                    let labels = [("county", county.as_str()), ("outcome", outcome)];
                    ConstCounter::new(n).encode(d.encode_family(&labels)?)?;
                }
            }
        }
        for (name, help, pick) in [
            (
                "linggong_fills",
                "Postings filled, by county.",
                (|k| k.postings_filled) as fn(&linggong_engine::CountyCounters) -> u64,
            ),
            ("linggong_hardship_placements", "Accepted offers that went to hardship workers, by county.", |k| {
                k.hardship_placements
            }),
            ("linggong_registrations", "New worker registrations, by county.", |k| k.registrations),
        ] {
            let mut d = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &stats {
                let county = c.county.to_string();
                ConstCounter::new(pick(&c.counters)).encode(d.encode_family(&[("county", county.as_str())])?)?;
            }
        }

        let m = s.host.metrics();
        let secs = Some(&Unit::Seconds);
        atomic_histogram(
            &mut e,
            "linggong_wal_fsync",
            "Write-ahead log fdatasync latency.",
            secs,
            &m.log.fsync_seconds,
        )?;
        atomic_histogram(
            &mut e,
            "linggong_wal_records_per_fsync",
            "Records made durable by one fdatasync (group commit).",
            None,
            &m.log.records_per_fsync,
        )?;
        counter(
            &mut e,
            "linggong_wal_records_written",
            "Records written to the log.",
            None,
            m.log.records_written.load(Relaxed),
        )?;
        counter(
            &mut e,
            "linggong_wal_written",
            "Record payload bytes written to the log.",
            Some(&Unit::Bytes),
            m.log.bytes_written.load(Relaxed),
        )?;
        counter(
            &mut e,
            "linggong_writes_overloaded",
            "Writes refused because too many were in flight.",
            None,
            m.overloaded.load(Relaxed),
        )?;
        counter(
            &mut e,
            "linggong_oversize_messages",
            "Requests refused for an oversize message.",
            None,
            s.server.oversize_messages.load(Relaxed),
        )?;
        counter(
            &mut e,
            "linggong_streams_ended_by_shutdown",
            "Server streams ended because the server was shutting down.",
            None,
            s.server.watch_streams_ended_by_shutdown.load(Relaxed),
        )?;
        gauge(&mut e, "linggong_inflight_writes", "Writes awaiting commitment.", None, s.host.inflight() as f64)?;
        gauge(
            &mut e,
            "linggong_inflight_requests",
            "gRPC requests and open streams in flight.",
            None,
            s.server.inflight_requests() as f64,
        )?;
        gauge(
            &mut e,
            "linggong_wal_failed",
            "1 once the log has failed and Raft stopped (the server then stops).",
            None,
            f64::from(u8::from(s.host.failure().is_some())),
        )?;
        gauge(
            &mut e,
            "linggong_wal_disk",
            "Bytes of Raft log segments on disk.",
            Some(&Unit::Bytes),
            dir_bytes(s.host.wal_dir()) as f64,
        )?;
        let snapshot = s.data_dir.join("raft").join(crate::raft::state_machine::SNAPSHOT_FILE);
        if let Some(age) = file_age(&snapshot) {
            gauge(
                &mut e,
                "linggong_snapshot_age",
                "Time since the newest snapshot on disk was written.",
                secs,
                age.as_secs_f64(),
            )?;
        }
        {
            let mut d = e.encode_descriptor(
                "linggong_connections_open",
                "Open connections by listener.",
                None,
                MetricType::Gauge,
            )?;
            for (name, c) in &s.listeners {
                ConstGauge::new(c.open() as f64).encode(d.encode_family(&[("listener", *name)])?)?;
            }
        }
        {
            let mut d = e.encode_descriptor(
                "linggong_connections_closed",
                "Connections refused at a cap or closed by a deadline, by listener and reason.",
                None,
                MetricType::Counter,
            )?;
            for (name, c) in &s.listeners {
                for (reason, n) in [
                    ("cap", &c.refused),
                    ("handshake_timeout", &c.handshake_timeouts),
                    ("idle_timeout", &c.idle_timeouts),
                ] {
                    ConstCounter::new(n.load(Relaxed))
                        .encode(d.encode_family(&[("listener", *name), ("reason", reason)])?)?;
                }
            }
        }
        Ok(())
    }
}

/// Total size of the files in a directory (not recursive); 0 if unreadable.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}

/// Time since a file was last modified.
fn file_age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(modified).unwrap_or_default())
}

/// The standard `process_*` metrics from `/proc/self`; nothing where it cannot be read.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Fmt {
        let Some(p) = read_process() else { return Ok(()) };
        let secs = Some(&Unit::Seconds);
        let bytes = Some(&Unit::Bytes);
        let cpu = e.encode_descriptor("process_cpu", "User and system CPU time spent.", secs, MetricType::Counter)?;
        ConstCounter::new(p.cpu_seconds).encode(cpu)?;
        gauge(&mut e, "process_resident_memory", "Resident memory size.", bytes, p.resident_bytes as f64)?;
        gauge(&mut e, "process_virtual_memory", "Virtual memory size.", bytes, p.virtual_bytes as f64)?;
        gauge(&mut e, "process_open_fds", "Open file descriptors.", None, p.open_fds as f64)?;
        if let Some(max) = p.max_fds {
            gauge(&mut e, "process_max_fds", "Most open file descriptors allowed.", None, max as f64)?;
        }
        if let Some(start) = p.start_time_seconds {
            gauge(&mut e, "process_start_time", "Start time since the Unix epoch.", secs, start)?;
        }
        Ok(())
    }
}

struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

fn read_process() -> Option<ProcessFigures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field numbers of proc(5) minus 3 (pid, comm, and 1-based numbering).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    // SAFETY: sysconf reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let (ticks, page) = (u64::try_from(ticks).ok()?.max(1), u64::try_from(page).ok()?.max(1));
    let cpu_seconds = (field(14)? + field(15)?) as f64 / ticks as f64;
    let start_time_seconds = boot_time().zip(field(22)).map(|(boot, t)| boot + t as f64 / ticks as f64);
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct passed; nothing else is touched.
    let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur);
    Some(ProcessFigures {
        cpu_seconds,
        resident_bytes: field(24)?.saturating_mul(page),
        virtual_bytes: field(23)?,
        open_fds,
        max_fds,
        start_time_seconds,
    })
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_grpc_names_and_methods_find_their_service() {
        let rpc = RpcMetrics::new();
        rpc.record("GetWorker", tonic::Code::NotFound, Duration::from_millis(3));
        rpc.record("GetWorker", tonic::Code::NotFound, Duration::from_millis(5));
        assert_eq!(rpc.count("GetWorker", tonic::Code::NotFound), 2);
        assert_eq!(rpc.count("GetWorker", tonic::Code::Ok), 0);
        let labels = rpc.labels("GetWorker", tonic::Code::NotFound);
        assert_eq!(labels.grpc_service.as_str(), "linggong.v1.WorkerService");
        assert_eq!((labels.grpc_type, labels.grpc_code), ("unary", "NotFound"));
    }

    #[test]
    fn process_figures_are_read_on_linux() {
        let p = read_process().expect("/proc/self is readable");
        assert!(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.open_fds > 0);
    }
}
