//! Recording what a load run does: per-RPC latency histograms (HdrHistogram, nanoseconds), call
//! counts, errors by status code, watch-stream event lag, and one-second samples for the live
//! display and the plot. One [`Collector`] is shared by every load task; each record takes its
//! mutex for well under a microsecond and never across an `.await`.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Highest latency a histogram holds, nanoseconds (larger values are clamped to it).
pub const MAX_TRACKABLE_NS: u64 = 120_000_000_000;

/// Significant figures kept by every histogram.
const SIGNIFICANT_FIGURES: u8 = 3;

/// A new latency histogram: 1 ns to [`MAX_TRACKABLE_NS`], three significant figures.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, SIGNIFICANT_FIGURES).expect("constant bounds are valid")
}

/// The calls the tool makes, named as the gRPC methods (engine mode applies the matching command).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Rpc {
    /// `WorkerService.RegisterWorker`.
    RegisterWorker,
    /// `WorkerService.UpdateWorkerLocation`.
    UpdateWorkerLocation,
    /// `WorkerService.SetAvailability`.
    SetAvailability,
    /// `WorkerService.WithdrawWorker`.
    WithdrawWorker,
    /// `ReviewService.UpsertEmployer`.
    UpsertEmployer,
    /// `PostingService.SubmitPosting`.
    SubmitPosting,
    /// `PostingService.UpdatePosting`.
    UpdatePosting,
    /// `ReviewService.ReviewPosting`.
    ReviewPosting,
    /// `PostingService.CancelPosting`.
    CancelPosting,
    /// `MatchService.InstantMatch`.
    InstantMatch,
    /// `MatchService.RespondToOffer`.
    RespondToOffer,
    /// `MatchService.ConfirmArrival`.
    ConfirmArrival,
    /// `MatchService.CompleteJob`.
    CompleteJob,
    /// `MatchService.ReportNoShow`.
    ReportNoShow,
    /// `StatsService.CountyStats`.
    CountyStats,
}

impl Rpc {
    /// Every call, in report order.
    pub const ALL: [Rpc; 15] = [
        Rpc::InstantMatch,
        Rpc::RespondToOffer,
        Rpc::ConfirmArrival,
        Rpc::CompleteJob,
        Rpc::ReportNoShow,
        Rpc::RegisterWorker,
        Rpc::UpdateWorkerLocation,
        Rpc::SetAvailability,
        Rpc::WithdrawWorker,
        Rpc::SubmitPosting,
        Rpc::ReviewPosting,
        Rpc::UpdatePosting,
        Rpc::CancelPosting,
        Rpc::UpsertEmployer,
        Rpc::CountyStats,
    ];

    /// The method name.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::RegisterWorker => "RegisterWorker",
            Rpc::UpdateWorkerLocation => "UpdateWorkerLocation",
            Rpc::SetAvailability => "SetAvailability",
            Rpc::WithdrawWorker => "WithdrawWorker",
            Rpc::UpsertEmployer => "UpsertEmployer",
            Rpc::SubmitPosting => "SubmitPosting",
            Rpc::UpdatePosting => "UpdatePosting",
            Rpc::ReviewPosting => "ReviewPosting",
            Rpc::CancelPosting => "CancelPosting",
            Rpc::InstantMatch => "InstantMatch",
            Rpc::RespondToOffer => "RespondToOffer",
            Rpc::ConfirmArrival => "ConfirmArrival",
            Rpc::CompleteJob => "CompleteJob",
            Rpc::ReportNoShow => "ReportNoShow",
            Rpc::CountyStats => "CountyStats",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a call failed: the gRPC status code name (`NOT_FOUND`, `UNAVAILABLE`, ...), an engine
/// error kind in engine mode (`engine:UnknownOffer`), or a client-side class
/// ([`ErrorClass::CLIENT_BACKLOG`], [`ErrorClass::BAD_RESPONSE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorClass(pub &'static str);

impl ErrorClass {
    /// Open loop only: the request's intended start is further in the past than the request
    /// timeout when a concurrency slot frees up, so it is not sent (its lateness is still recorded).
    pub const CLIENT_BACKLOG: ErrorClass = ErrorClass("CLIENT_BACKLOG");
    /// The server answered OK but the response lacked something the protocol promises.
    pub const BAD_RESPONSE: ErrorClass = ErrorClass("BAD_RESPONSE");

    /// The class of a gRPC status code: its canonical upper-case name.
    pub fn from_code(code: tonic::Code) -> ErrorClass {
        use tonic::Code::*;
        ErrorClass(match code {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        })
    }

    /// The class name.
    pub fn name(self) -> &'static str {
        self.0
    }
}

/// Counts of errors by class, in first-seen order (a handful of classes at most).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    counts: Vec<(ErrorClass, u64)>,
}

impl ErrorCounts {
    /// Adds `n` errors of a class.
    pub fn add(&mut self, class: ErrorClass, n: u64) {
        match self.counts.iter_mut().find(|(c, _)| *c == class) {
            Some((_, count)) => *count += n,
            None => self.counts.push((class, n)),
        }
    }

    /// Adds every count of another set.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for &(class, n) in &other.counts {
            self.add(class, n);
        }
    }

    /// Errors of every class together.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// `(class, count)` pairs sorted by class name.
    pub fn sorted(&self) -> Vec<(ErrorClass, u64)> {
        let mut v = self.counts.clone();
        v.sort();
        v
    }
}

/// Everything recorded about one RPC while measuring.
#[derive(Clone, Debug)]
pub struct RpcStats {
    /// Latency of every completed call, failed or not, nanoseconds.
    pub latency: Histogram<u64>,
    /// Calls completed (successes and errors).
    pub calls: u64,
    /// Errors by class.
    pub errors: ErrorCounts,
}

impl RpcStats {
    fn new() -> Self {
        Self { latency: latency_histogram(), calls: 0, errors: ErrorCounts::default() }
    }
}

/// What the watch streams saw while measuring.
#[derive(Clone, Debug)]
pub struct WatchStats {
    /// Posting events received by all stations.
    pub events: u64,
    /// Events whose lag was measured (the first event each station saw for a posting the tool submitted).
    pub lag: Histogram<u64>,
    /// Times a station resumed its stream after it ended (with `after_seq`).
    pub resumes: u64,
    /// Stream endings by status code.
    pub stream_errors: ErrorCounts,
    /// Sequence gaps or repeats seen by a station (events lost or seen twice across a resume).
    pub sequence_anomalies: u64,
}

impl WatchStats {
    fn new() -> Self {
        Self {
            events: 0,
            lag: latency_histogram(),
            resumes: 0,
            stream_errors: ErrorCounts::default(),
            sequence_anomalies: 0,
        }
    }
}

/// One second (or whatever the sampling interval is) of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds from the start of the run (warmup included) to the end of the interval.
    pub t_s: f64,
    /// Whether the interval was after the warmup.
    pub measuring: bool,
    /// Calls completed per second.
    pub rate_per_s: f64,
    /// Errors per second.
    pub errors_per_s: f64,
    /// Latency percentiles of the calls completed in the interval, microseconds (0 when none).
    pub p50_us: f64,
    /// 90th percentile, microseconds.
    pub p90_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub p999_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
}

struct Interval {
    calls: u64,
    errors: u64,
    latency: Histogram<u64>,
    started: Instant,
}

struct State {
    measuring: bool,
    measure_started: Option<Instant>,
    measure_ended: Option<Instant>,
    rpcs: Vec<RpcStats>,
    watch: WatchStats,
    interval: Interval,
    samples: Vec<Sample>,
}

/// The shared recorder of a run.
pub struct Collector {
    run_started: Instant,
    state: Mutex<State>,
}

/// A frozen copy of what was recorded while measuring.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Length of the measurement window.
    pub measured: Duration,
    /// Per-RPC statistics, only RPCs with at least one call, in [`Rpc::ALL`] order.
    pub rpcs: Vec<(Rpc, RpcStats)>,
    /// Watch-stream statistics.
    pub watch: WatchStats,
    /// One sample per interval, warmup included.
    pub samples: Vec<Sample>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// A collector in its warmup phase (nothing counts until [`Collector::start_measuring`]).
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            run_started: now,
            state: Mutex::new(State {
                measuring: false,
                measure_started: None,
                measure_ended: None,
                rpcs: Rpc::ALL.iter().map(|_| RpcStats::new()).collect(),
                watch: WatchStats::new(),
                interval: Interval { calls: 0, errors: 0, latency: latency_histogram(), started: now },
                samples: Vec::new(),
            }),
        }
    }

    /// Starts the measurement window: calls completing from now on count in the report.
    pub fn start_measuring(&self) {
        let mut s = self.state.lock();
        s.measuring = true;
        s.measure_started = Some(Instant::now());
    }

    /// Ends the measurement window (its length is what rates are computed over); calls completing
    /// later are still counted, so that requests in flight at the end are not lost.
    pub fn end_window(&self) {
        let mut s = self.state.lock();
        if s.measure_ended.is_none() {
            s.measure_ended = Some(Instant::now());
        }
    }

    /// Whether the measurement window has started.
    pub fn is_measuring(&self) -> bool {
        self.state.lock().measuring
    }

    /// Records one completed call: its latency and, if it failed, why.
    pub fn record(&self, rpc: Rpc, latency: Duration, error: Option<ErrorClass>) {
        let ns = (latency.as_nanos() as u64).clamp(1, MAX_TRACKABLE_NS);
        let mut s = self.state.lock();
        s.interval.calls += 1;
        s.interval.latency.saturating_record(ns);
        if error.is_some() {
            s.interval.errors += 1;
        }
        if s.measuring {
            let stats = &mut s.rpcs[rpc.index()];
            stats.calls += 1;
            stats.latency.saturating_record(ns);
            if let Some(class) = error {
                stats.errors.add(class, 1);
            }
        }
    }

    /// Records watch events received by a station and the lag of those that were measured.
    pub fn record_watch_events(&self, events: u64, lags: &[Duration]) {
        let mut s = self.state.lock();
        if s.measuring {
            s.watch.events += events;
            for lag in lags {
                let ns = (lag.as_nanos() as u64).clamp(1, MAX_TRACKABLE_NS);
                s.watch.lag.saturating_record(ns);
            }
        }
    }

    /// Records a watch stream that ended (and is being resumed), with its status code.
    pub fn record_stream_end(&self, class: ErrorClass, resumed: bool) {
        let mut s = self.state.lock();
        if s.measuring {
            s.watch.stream_errors.add(class, 1);
            if resumed {
                s.watch.resumes += 1;
            }
        }
    }

    /// Records a gap or a repeat in a station's sequence numbers.
    pub fn record_sequence_anomaly(&self) {
        let mut s = self.state.lock();
        if s.measuring {
            s.watch.sequence_anomalies += 1;
        }
    }

    /// Closes the current interval and returns its sample (also kept for the report).
    pub fn sample(&self) -> Sample {
        let now = Instant::now();
        let mut s = self.state.lock();
        let secs = now.duration_since(s.interval.started).as_secs_f64().max(1e-9);
        let h = &s.interval.latency;
        let us = |q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 };
        let sample = Sample {
            t_s: now.duration_since(self.run_started).as_secs_f64(),
            measuring: s.measuring,
            rate_per_s: s.interval.calls as f64 / secs,
            errors_per_s: s.interval.errors as f64 / secs,
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
        };
        s.interval.calls = 0;
        s.interval.errors = 0;
        s.interval.latency.reset();
        s.interval.started = now;
        s.samples.push(sample.clone());
        sample
    }

    /// What was recorded while measuring. The window runs from [`Collector::start_measuring`] to
    /// [`Collector::end_window`] (or now, if the window has not been ended).
    pub fn recorded(&self) -> Recorded {
        let s = self.state.lock();
        let measured = match (s.measure_started, s.measure_ended) {
            (Some(a), Some(b)) => b.duration_since(a),
            (Some(a), None) => a.elapsed(),
            _ => Duration::ZERO,
        };
        let rpcs = Rpc::ALL
            .iter()
            .map(|&rpc| (rpc, s.rpcs[rpc.index()].clone()))
            .filter(|(_, stats)| stats.calls > 0)
            .collect();
        Recorded { measured, rpcs, watch: s.watch.clone(), samples: s.samples.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_after_the_warmup_count() {
        let c = Collector::new();
        c.record(Rpc::InstantMatch, Duration::from_micros(5), None);
        c.start_measuring();
        c.record(Rpc::InstantMatch, Duration::from_micros(10), None);
        c.record(Rpc::InstantMatch, Duration::from_micros(20), Some(ErrorClass::from_code(tonic::Code::NotFound)));
        c.record(Rpc::RespondToOffer, Duration::from_micros(30), Some(ErrorClass::CLIENT_BACKLOG));
        c.end_window();
        let r = c.recorded();
        assert_eq!(r.rpcs.len(), 2);
        let (rpc, m) = &r.rpcs[0];
        assert_eq!(*rpc, Rpc::InstantMatch);
        assert_eq!(m.calls, 2);
        assert_eq!(m.latency.len(), 2);
        assert_eq!(m.errors.sorted(), vec![(ErrorClass("NOT_FOUND"), 1)]);
        assert_eq!(r.rpcs[1].1.errors.total(), 1);
    }

    #[test]
    fn samples_reset_each_interval() {
        let c = Collector::new();
        for _ in 0..10 {
            c.record(Rpc::CountyStats, Duration::from_micros(100), None);
        }
        let first = c.sample();
        assert!(first.rate_per_s > 0.0);
        assert!((first.p50_us - 100.0).abs() < 1.0, "{first:?}");
        let second = c.sample();
        assert_eq!(second.rate_per_s, 0.0);
        assert_eq!(second.p99_us, 0.0);
        assert_eq!(c.recorded().samples.len(), 2);
    }
}
