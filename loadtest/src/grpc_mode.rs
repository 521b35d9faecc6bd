//! gRPC mode: the workload sent to a linggong server over HTTP/2 — an external server
//! (`--addr`, `--token`; any member of a cluster), one the tool starts in-process on its own
//! runtime with a temporary data directory (`--spawn-server`), or the leader of local replicas
//! the tool starts as processes of the server binary (`--spawn-cluster N`, [`crate::cluster`]) —
//! closed loop (N callers) or open loop (a pacer thread releasing requests on schedule, latency
//! charged from each request's intended start). Setup and load calls go through one
//! [`LeaderRoute`], which follows the leader when it changes (see [`crate::route`]). The `watch`
//! scenario adds stations following their county's `WatchPostings` stream and measures how long
//! a submitted posting takes to reach them.

use crate::cluster::{ClusterConfig, ClusterError, LocalCluster, ProcessRef};
use crate::machine::{
    cpu_by_thread_group, cpu_share, filesystem_of, load_average, process_cpu_secs, system_cores_busy,
    system_cpu_jiffies, MachineInfo,
};
use crate::record::{Collector, ErrorClass};
use crate::report::{Report, ReportContext, ServerCounters, ServerProcessCpu};
use crate::route::{Caller, LeaderRoute, RETRY_WITHIN};
use crate::run::{LoadShape, RunConfig, Sampler, Timeline};
use crate::workload::{Action, Observation, OfferRef, PostingPhase, Scenario, Workload};
use compact_str::CompactString;
use linggong_engine::{EmployerKind, Hardship, PostingSource, PostingSpec, Timestamp, WorkerSpec};
use linggong_server::proto::v1 as pb;
use parking_lot::Mutex;
use pb::match_service_client::MatchServiceClient;
use pb::posting_service_client::PostingServiceClient;
use pb::review_service_client::ReviewServiceClient;
use pb::stats_service_client::StatsServiceClient;
use pb::worker_service_client::WorkerServiceClient;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Which server to load.
#[derive(Clone, Debug)]
pub enum ServerSource {
    /// A running server.
    Remote {
        /// Its gRPC address, `host:port`.
        addr: String,
        /// Bearer token (an operator token, or one whose scope covers every county).
        token: String,
        /// Its Prometheus address, for WAL counters in the report.
        metrics_addr: Option<SocketAddr>,
    },
    /// Start one in-process, on a runtime of its own, with a temporary data directory.
    Spawn(SpawnConfig),
    /// Start replicas as child processes of the server binary, make them a cluster and load its
    /// leader.
    SpawnCluster(ClusterConfig),
}

/// Raft timing of the servers the tool starts (a group of one, or a local cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RaftTiming {
    /// Leader heartbeat, milliseconds.
    pub heartbeat_ms: u64,
    /// Election timeout lower bound, milliseconds.
    pub election_ms: u64,
    /// Applied entries between snapshots.
    pub snapshot_every: u64,
}

impl RaftTiming {
    /// The server's defaults, used by every server the tool starts.
    pub const LOADTEST: RaftTiming = RaftTiming { heartbeat_ms: 50, election_ms: 300, snapshot_every: 100_000 };
}

/// Parses a durability setting as the server does (`always`, `none`, `interval:<ms>`).
pub fn parse_durability(text: &str) -> Result<linggong_server::wal::Durability, linggong_server::wal::WalError> {
    text.parse()
}

/// A fresh temporary directory named `prefix…` under `parent` (default: the system temp dir),
/// removed when dropped.
pub fn temp_data_dir(parent: Option<&Path>, prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    match parent {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
}

/// How to start the in-process server.
#[derive(Clone, Debug, Serialize)]
pub struct SpawnConfig {
    /// Durability: `always`, `none` or `interval:<ms>`.
    pub durability: String,
    /// Parent of the temporary data directory (default: the system temp dir).
    pub data_parent: Option<PathBuf>,
    /// Worker threads of the server's runtime.
    pub server_threads: usize,
    /// Run the server as a Raft group of one (the server's `--raft-bootstrap`
    /// on a loopback Raft listener): writes go through the Raft log.
    pub raft_group_of_one: bool,
}

/// gRPC-mode settings.
#[derive(Clone, Debug)]
pub struct GrpcConfig {
    /// The server.
    pub source: ServerSource,
    /// HTTP/2 connections the callers share (round-robin).
    pub connections: usize,
    /// Worker threads of the tool's own runtime.
    pub client_threads: usize,
    /// Stations following county streams (`watch`; counties taken in turn).
    pub stations: usize,
    /// Register the starting workers through the API (an external server, a spawned cluster). An
    /// in-process server loads them with its demo loader instead.
    pub register_workers: bool,
    /// Send a fresh `request_id` with every mutating call, as real clients do.
    pub request_ids: bool,
    /// Print what the setup is doing to stderr.
    pub notes: bool,
}

/// Why a gRPC run failed.
#[derive(Debug, thiserror::Error)]
pub enum GrpcRunError {
    /// A runtime or thread could not be created.
    #[error("starting the {what}: {source}")]
    Runtime {
        /// Which.
        what: &'static str,
        /// The IO error.
        source: std::io::Error,
    },
    /// The in-process server did not start.
    #[error("starting the in-process server: {0}")]
    Spawn(String),
    /// The local replicas did not start or did not elect a leader.
    #[error("starting the local cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// Ctrl-C (SIGINT) ended the run early.
    #[error("interrupted (Ctrl-C): the run was stopped before its end")]
    Interrupted,
    /// The address or token is malformed.
    #[error("bad {what}: {detail}")]
    BadSetting {
        /// Which setting.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The server could not be reached.
    #[error("connecting to {addr}: {detail}")]
    Connect {
        /// Address.
        addr: String,
        /// The transport error.
        detail: String,
    },
    /// A setup call failed: the market could not be prepared.
    #[error("setup call {rpc} failed: {class}: {message}")]
    Setup {
        /// Method.
        rpc: &'static str,
        /// Status code.
        class: &'static str,
        /// Server message.
        message: String,
    },
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct BearerToken {
    value: MetadataValue<Ascii>,
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.value.clone());
        Ok(request)
    }
}

type Svc = InterceptedService<Channel, BearerToken>;

/// One connection's clients.
#[derive(Clone)]
pub struct Clients {
    worker: WorkerServiceClient<Svc>,
    posting: PostingServiceClient<Svc>,
    matching: MatchServiceClient<Svc>,
    review: ReviewServiceClient<Svc>,
    stats: StatsServiceClient<Svc>,
}

impl Clients {
    /// The clients of one connection, each call carrying `token`.
    pub fn new(channel: Channel, token: BearerToken) -> Self {
        Self {
            worker: WorkerServiceClient::with_interceptor(channel.clone(), token.clone()),
            posting: PostingServiceClient::with_interceptor(channel.clone(), token.clone()),
            matching: MatchServiceClient::with_interceptor(channel.clone(), token.clone()),
            review: ReviewServiceClient::with_interceptor(channel.clone(), token.clone()),
            stats: StatsServiceClient::with_interceptor(channel, token),
        }
    }
}

impl BearerToken {
    /// `Bearer <token>` for every call; the token must be printable ASCII.
    pub fn new(token: &str) -> Result<BearerToken, GrpcRunError> {
        let value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| GrpcRunError::BadSetting { what: "token", detail: "not printable ASCII".into() })?;
        Ok(BearerToken { value })
    }
}

/// The endpoint settings of every connection the tool opens (`uri`: `http://host:port`).
pub fn endpoint(uri: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(uri.to_string())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_adaptive_window(true)
        // A member that vanished without closing its connections (a lost machine or network)
        // is found dead within about KEEP_ALIVE_EVERY + KEEP_ALIVE_TIMEOUT: its calls then fail
        // as broken connections, which the route follows, instead of hanging to their deadline.
        .http2_keep_alive_interval(KEEP_ALIVE_EVERY)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// How often the tool pings each connection (HTTP/2 PING; one small frame a second).
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(1);
/// How long a ping may go unanswered before its connection is closed.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens `n` HTTP/2 connections to `addr` (retrying for up to ten seconds while the server starts).
pub async fn connect(addr: &str, token: &str, n: usize) -> Result<Vec<Clients>, GrpcRunError> {
    let token = BearerToken::new(token)?;
    let uri = crate::route::uri_of(addr);
    let endpoint = endpoint(&uri).map_err(|e| GrpcRunError::BadSetting { what: "address", detail: e.to_string() })?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let started = Instant::now();
        let channel = loop {
            match endpoint.connect().await {
                Ok(c) => break c,
                Err(e) if started.elapsed() > Duration::from_secs(10) => {
                    return Err(GrpcRunError::Connect { addr: uri, detail: e.to_string() })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        out.push(Clients::new(channel, token.clone()));
    }
    Ok(out)
}

// ------------------------------------------------------------------ conversions

fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.0.div_euclid(1000), nanos: (t.0.rem_euclid(1000) * 1_000_000) as i32 }
}

fn lat_lon(p: linggong_engine::LatLon) -> pb::LatLon {
    pb::LatLon { lat: p.lat, lon: p.lon, ..Default::default() }
}

fn worker_message(spec: &WorkerSpec) -> pb::Worker {
    let hardship = match spec.hardship {
        Hardship::None => pb::Hardship::None,
        Hardship::LongTermUnemployed => pb::Hardship::LongTermUnemployed,
        Hardship::LowIncomeHousehold => pb::Hardship::LowIncomeHousehold,
        Hardship::Disabled => pb::Hardship::Disabled,
        Hardship::OlderWorker => pb::Hardship::OlderWorker,
    };
    pb::Worker {
        worker_id: spec.id.to_string(),
        display_name: spec.name.to_string(),
        phone: spec.phone.to_string(),
        trades: spec
            .trades
            .iter()
            .map(|t| pb::TradeSkill { trade_id: t.trade.to_string(), level: u32::from(t.level) })
            .collect(),
        position: Some(lat_lon(spec.position)),
        county_code: spec.county,
        township_code: spec.township.as_deref().unwrap_or_default().to_string(),
        availability: None,
        min_daily_wage_yuan: spec.min_daily_wage,
        hardship: hardship as i32,
        ..Default::default()
    }
}

fn posting_message(spec: &PostingSpec) -> pb::Posting {
    let source = match spec.source {
        PostingSource::CountyDesk => pb::PostingSource::CountyDesk,
        PostingSource::TownshipStation => pb::PostingSource::TownshipStation,
        PostingSource::Online => pb::PostingSource::Online,
    };
    pb::Posting {
        posting_id: spec.id.to_string(),
        employer_id: spec.employer.to_string(),
        trade_id: spec.trade.to_string(),
        headcount: u32::from(spec.headcount),
        position: Some(lat_lon(spec.position)),
        county_code: spec.county,
        township_code: spec.township.as_deref().unwrap_or_default().to_string(),
        max_distance_m: spec.max_distance_m,
        daily_wage_yuan: spec.daily_wage,
        start_time: Some(timestamp(spec.start)),
        duration_minutes: spec.duration_minutes,
        offer_ttl_seconds: spec.offer_ttl_secs,
        description: spec.description.to_string(),
        source: source as i32,
        version: spec.version,
        ..Default::default()
    }
}

fn employer_message(spec: &linggong_engine::EmployerSpec) -> pb::Employer {
    let (kind, credit_code) = match &spec.kind {
        EmployerKind::Company { credit_code } => (pb::EmployerKind::Company, credit_code.to_string()),
        EmployerKind::Individual => (pb::EmployerKind::Individual, String::new()),
    };
    pb::Employer {
        employer_id: spec.id.to_string(),
        display_name: spec.name.to_string(),
        kind: kind as i32,
        credit_code,
        verified: spec.verified,
        ..Default::default()
    }
}

fn phase_of(posting: Option<&pb::Posting>) -> Result<PostingPhase, ErrorClass> {
    let state = posting.ok_or(ErrorClass::BAD_RESPONSE)?.state;
    Ok(match pb::PostingState::try_from(state) {
        Ok(pb::PostingState::PendingReview) => PostingPhase::PendingReview,
        Ok(pb::PostingState::Published | pb::PostingState::Filling) => PostingPhase::Open,
        Ok(_) => PostingPhase::Closed,
        Err(_) => return Err(ErrorClass::BAD_RESPONSE),
    })
}

fn offer_ref(o: &pb::Offer) -> OfferRef {
    OfferRef {
        offer: o.offer_id,
        worker: CompactString::from(o.worker_id.as_str()),
        posting: CompactString::from(o.posting_id.as_str()),
    }
}

fn now_timestamp() -> Timestamp {
    Timestamp(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
}

// ------------------------------------------------------------------ calls

/// What every call needs besides its clients.
pub struct CallContext {
    timeout: Duration,
    request_ids: bool,
    run_tag: String,
    next_request: AtomicU64,
    /// `watch`: when each posting's `SubmitPosting` was sent.
    submitted: Option<Mutex<FxHashMap<String, Instant>>>,
}

impl CallContext {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(self.timeout);
        r
    }

    /// A fresh request id (empty with `--no-request-ids`); every attempt of one call sends the same.
    pub fn request_id(&self) -> String {
        if self.request_ids {
            format!("{}r{}", self.run_tag, self.next_request.fetch_add(1, Ordering::Relaxed))
        } else {
            String::new()
        }
    }
}

fn class(status: tonic::Status) -> ErrorClass {
    ErrorClass::from_code(status.code())
}

/// Why one attempt of a call failed.
#[derive(Debug)]
pub enum CallError {
    /// The server answered with this status, or the client made it from a transport error.
    Status(tonic::Status),
    /// The server answered OK without something the protocol promises ([`ErrorClass::BAD_RESPONSE`]).
    Response(ErrorClass),
}

impl From<ErrorClass> for CallError {
    fn from(class: ErrorClass) -> Self {
        CallError::Response(class)
    }
}

/// Performs one attempt of an action over gRPC; a mutating call carries `request_id` (empty: none).
pub async fn perform(
    clients: &mut Clients,
    action: &Action,
    ctx: &CallContext,
    request_id: &str,
) -> Result<Observation, CallError> {
    let id = || request_id.to_string();
    match action {
        Action::RegisterWorker(spec) => {
            let m = pb::RegisterWorkerRequest { request_id: id(), worker: Some(worker_message(spec)) };
            let r = clients.worker.register_worker(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Worker(r.offer.as_ref().map(offer_ref)))
        }
        Action::UpdateWorkerLocation { worker, position } => {
            let m = pb::UpdateWorkerLocationRequest {
                request_id: id(),
                worker_id: worker.to_string(),
                position: Some(lat_lon(*position)),
            };
            let r =
                clients.worker.update_worker_location(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Worker(r.offer.as_ref().map(offer_ref)))
        }
        Action::SetAvailability { worker, available } => {
            let m = pb::SetAvailabilityRequest {
                request_id: id(),
                worker_id: worker.to_string(),
                available: *available,
                window: None,
            };
            let r = clients.worker.set_availability(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Worker(r.offer.as_ref().map(offer_ref)))
        }
        Action::WithdrawWorker { worker } => {
            let m = pb::WithdrawWorkerRequest { request_id: id(), worker_id: worker.to_string() };
            clients.worker.withdraw_worker(ctx.request(m)).await.map_err(CallError::Status)?;
            Ok(Observation::Done)
        }
        Action::UpsertEmployer(spec) => {
            let m = pb::UpsertEmployerRequest { request_id: id(), employer: Some(employer_message(spec)) };
            clients.review.upsert_employer(ctx.request(m)).await.map_err(CallError::Status)?;
            Ok(Observation::Done)
        }
        Action::SubmitPosting(spec) => {
            let m = pb::SubmitPostingRequest { request_id: id(), posting: Some(posting_message(spec)) };
            if let Some(submitted) = &ctx.submitted {
                // Lag is measured from the first attempt.
                submitted.lock().entry(spec.id.to_string()).or_insert_with(Instant::now);
            }
            let r = clients.posting.submit_posting(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Posting(phase_of(r.posting.as_ref())?))
        }
        Action::UpdatePosting(spec) => {
            let m = pb::UpdatePostingRequest { request_id: id(), posting: Some(posting_message(spec)) };
            let r = clients.posting.update_posting(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Posting(phase_of(r.posting.as_ref())?))
        }
        Action::ReviewPosting { posting, approve } => {
            let (decision, reason) = if *approve {
                (pb::ReviewDecision::Approve, String::new())
            } else {
                (pb::ReviewDecision::Reject, "load test: rejected".to_string())
            };
            let m = pb::ReviewPostingRequest {
                request_id: id(),
                posting_id: posting.to_string(),
                decision: decision as i32,
                reason,
            };
            let r = clients.review.review_posting(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Posting(phase_of(r.posting.as_ref())?))
        }
        Action::CancelPosting { posting } => {
            let m = pb::CancelPostingRequest {
                request_id: id(),
                posting_id: posting.to_string(),
                reason: "load test: nobody to fill it".into(),
            };
            clients.posting.cancel_posting(ctx.request(m)).await.map_err(CallError::Status)?;
            Ok(Observation::Done)
        }
        Action::InstantMatch { posting, max_offers } => {
            let m = pb::InstantMatchRequest {
                request_id: id(),
                posting_id: posting.to_string(),
                max_offers: u32::from(*max_offers),
            };
            let r = clients.matching.instant_match(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Matched { offers: r.offers.iter().map(offer_ref).collect(), remaining: r.remaining_slots })
        }
        Action::RespondToOffer { offer, accept } => {
            let response = if *accept { pb::OfferResponse::Accept } else { pb::OfferResponse::Decline };
            let m = pb::RespondToOfferRequest {
                request_id: id(),
                offer_id: offer.offer,
                worker_id: offer.worker.to_string(),
                response: response as i32,
            };
            clients.matching.respond_to_offer(ctx.request(m)).await.map_err(CallError::Status)?;
            Ok(Observation::Done)
        }
        Action::ConfirmArrival { offer } => {
            let m = pb::ConfirmArrivalRequest { request_id: id(), offer_id: offer.offer };
            clients.matching.confirm_arrival(ctx.request(m)).await.map_err(CallError::Status)?;
            Ok(Observation::Done)
        }
        Action::CompleteJob { offer } => {
            let m = pb::CompleteJobRequest { request_id: id(), offer_id: offer.offer };
            let r = clients.matching.complete_job(ctx.request(m)).await.map_err(CallError::Status)?.into_inner();
            Ok(Observation::Worker(r.next_offer.as_ref().map(offer_ref)))
        }
        Action::ReportNoShow { offer } => {
            let m = pb::ReportNoShowRequest { request_id: id(), offer_id: offer.offer };
            clients.matching.report_no_show(ctx.request(m)).await.map_err(CallError::Status)?;
            Ok(Observation::Done)
        }
        Action::CountyStats { county } => {
            let m = pb::CountyStatsRequest { county_code: *county };
            clients.stats.county_stats(ctx.request(m)).await.map_err(CallError::Status)?;
            Ok(Observation::Done)
        }
    }
}

// ------------------------------------------------------------------ server

struct Spawned {
    runtime: tokio::runtime::Runtime,
    server: linggong_server::app::RunningServer,
    _data_dir: tempfile::TempDir,
    fs: Option<String>,
}

fn spawn_server(config: &SpawnConfig, workers: u64) -> Result<Spawned, GrpcRunError> {
    let durability = parse_durability(&config.durability)
        .map_err(|e| GrpcRunError::BadSetting { what: "durability", detail: e.to_string() })?;
    let data_dir = temp_data_dir(config.data_parent.as_deref(), "linggong-loadtest-")
        .map_err(|e| GrpcRunError::Spawn(format!("creating the data directory: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server_threads.max(1))
        .thread_name("lg-server")
        .enable_all()
        .build()
        .map_err(|source| GrpcRunError::Runtime { what: "server runtime", source })?;
    let mut server_config = linggong_server::config::ServerConfig::new(data_dir.path());
    server_config.durability = durability;
    server_config.create_dev_token = true;
    server_config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    if workers > 0 {
        server_config.demo = Some(linggong_server::config::DemoSettings { workers });
    }
    if config.raft_group_of_one {
        let timing = RaftTiming::LOADTEST;
        server_config.cluster = Some(linggong_server::raft::cli::ClusterSettings {
            raft_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            grpc_advertise: None,
            http_advertise: None,
            node_id: 1,
            secret: "loadtest-cluster-secret".into(),
            heartbeat_ms: timing.heartbeat_ms,
            election_ms: timing.election_ms,
            snapshot_every: timing.snapshot_every,
            snapshot_every_bytes: linggong_server::raft::DEFAULT_SNAPSHOT_EVERY_BYTES,
            bootstrap: true,
        });
    }
    let server = runtime
        .block_on(linggong_server::app::start(server_config))
        .map_err(|e| GrpcRunError::Spawn(format!("{e:#}")))?;
    let fs = filesystem_of(data_dir.path());
    Ok(Spawned { runtime, server, _data_dir: data_dir, fs })
}

/// Reads `GET /metrics` from a Prometheus endpoint (plain HTTP/1.1, bounded in time).
pub fn scrape_metrics(addr: SocketAddr) -> Option<String> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.take(64 << 20).read_to_string(&mut body).ok()?;
    let start = body.find("\r\n\r\n")? + 4;
    Some(body[start..].to_string())
}

// ------------------------------------------------------------------ watch

/// One station: follows a county's stream until stopped, resuming after every ending (at the
/// member the route goes to then: every member serves the streams).
async fn station(
    route: Arc<LeaderRoute>,
    index: usize,
    county: u32,
    ctx: Arc<CallContext>,
    collector: Arc<Collector>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_seq: Option<u64> = None;
    let mut seen: FxHashSet<String> = FxHashSet::default();
    let mut lags = Vec::with_capacity(16);
    while !*stop.borrow() {
        let mut clients = route.current().clients(index);
        let request = tonic::Request::new(pb::WatchPostingsRequest { county_code: county, after_seq: last_seq });
        let opened = tokio::select! {
            r = clients.posting.watch_postings(request) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut stream = match opened {
            Ok(r) => r.into_inner(),
            Err(status) => {
                collector.record_stream_end(class(status), true);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                m = stream.message() => m,
                _ = stop.wait_for(|s| *s) => return,
            };
            match next {
                Ok(Some(message)) => {
                    let received = Instant::now();
                    if let Some(last) = last_seq {
                        if message.seq <= last {
                            collector.record_sequence_anomaly();
                        }
                    }
                    last_seq = Some(message.seq);
                    let Some(event) = message.event else { continue };
                    lags.clear();
                    if let Some(submitted) = &ctx.submitted {
                        if !seen.contains(&event.posting_id) {
                            if let Some(sent) = submitted.lock().get(&event.posting_id).copied() {
                                lags.push(received.saturating_duration_since(sent));
                                seen.insert(event.posting_id);
                            }
                        }
                    }
                    collector.record_watch_events(1, &lags);
                }
                Ok(None) => {
                    collector.record_stream_end(ErrorClass::from_code(tonic::Code::Ok), true);
                    break;
                }
                Err(status) => {
                    collector.record_stream_end(class(status), true);
                    break;
                }
            }
        }
    }
}

// ------------------------------------------------------------------ run

/// One setup call through the route: retried (bounded) with the same request id while its member
/// is not the leader, knows none or cannot be reached (a cluster member still settling in, an
/// election, a change of leader). A retried registration or employer upsert that finds its
/// record already there counts as done: an earlier attempt was applied (without request ids).
async fn setup_call(c: &mut Caller, action: &Action, ctx: &CallContext) -> Result<Observation, ErrorClass> {
    let exists = ErrorClass::from_code(tonic::Code::AlreadyExists);
    let called = c.call(action, ctx).await;
    match called.result {
        Err(class) if class == exists && called.attempts > 1 => match action {
            Action::RegisterWorker(_) => Ok(Observation::Worker(None)),
            Action::UpsertEmployer(_) => Ok(Observation::Done),
            _ => Err(class),
        },
        other => other,
    }
}

async fn setup(
    route: &Arc<LeaderRoute>,
    ctx: &CallContext,
    workload: &Mutex<Workload>,
    grpc: &GrpcConfig,
) -> Result<(), GrpcRunError> {
    let fail = |rpc: &'static str| {
        move |class: ErrorClass| GrpcRunError::Setup { rpc, class: class.name(), message: String::new() }
    };
    let mut c = Caller::new(route.clone(), 0);
    let employers = workload.lock().setup_employers();
    for action in &employers {
        setup_call(&mut c, action, ctx).await.map_err(fail("UpsertEmployer"))?;
    }
    if grpc.register_workers {
        let specs: Vec<WorkerSpec> = workload.lock().setup_workers().collect();
        let total = specs.len();
        if grpc.notes {
            eprintln!("registering {total} workers through the API");
        }
        let queue = Arc::new(Mutex::new(specs));
        let mut tasks: Vec<tokio::task::JoinHandle<Result<(), GrpcRunError>>> = Vec::new();
        // Request ids of their own (`<run tag>s<n>`), so that a registration retried at a new
        // leader gets the first attempt's result.
        let ctx = Arc::new(CallContext {
            timeout: ctx.timeout,
            request_ids: ctx.request_ids,
            run_tag: format!("{}s", ctx.run_tag),
            next_request: AtomicU64::new(0),
            submitted: None,
        });
        for k in 0..64.min(total.max(1)) {
            let queue = queue.clone();
            let mut c = Caller::new(route.clone(), k);
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(spec) = queue.lock().pop() else { return Ok(()) };
                    setup_call(&mut c, &Action::RegisterWorker(spec), &ctx).await.map_err(fail("RegisterWorker"))?;
                }
            }));
        }
        for t in tasks {
            t.await.map_err(|e| GrpcRunError::Spawn(e.to_string()))??;
        }
    }
    let postings = workload.lock().setup_postings(now_timestamp());
    for action in postings {
        let result = setup_call(&mut c, &action, ctx).await;
        let result = result.map_err(fail("SubmitPosting"))?;
        workload.lock().complete(&action, Ok(result));
    }
    Ok(())
}

/// What was read when the window started: when, CPU by thread group of this process and of each
/// server process, the machine's CPU jiffies, the server's metrics.
struct WindowStart {
    at: Instant,
    cpu: BTreeMap<String, f64>,
    processes: Vec<(BTreeMap<String, f64>, Option<f64>)>,
    jiffies: (u64, u64),
    metrics: Option<String>,
}

/// The server the load goes to, however it was found or started.
struct Target {
    /// Client gRPC address the load starts at (a cluster's leader, or the `--addr` given).
    addr: String,
    /// Client gRPC addresses of every member known (`addr` among them).
    members: Vec<String>,
    /// Bearer token.
    token: String,
    /// Prometheus address, for WAL counters.
    metrics_addr: Option<SocketAddr>,
    /// Server processes the tool started, measured apart.
    processes: Vec<ProcessRef>,
    /// Where the server's threads are: in this process (`--spawn-server`) or elsewhere.
    threads: ServerThreads,
}

/// Where the server's CPU time can be read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ServerThreads {
    /// In this process, as thread groups beside the tool's.
    InProcess,
    /// In other processes: the spawned ones ([`Target::processes`]), or not measurable.
    Elsewhere,
}

/// Thread groups of an in-process server: its runtime (`lg-server`) and the Raft log writer
/// (thread names are cut to 15 bytes).
const IN_PROCESS_SERVER_GROUPS: [&str; 2] = ["lg-server", "linggong-raft"];

/// Resolves once Ctrl-C (SIGINT) arrives; never if the handler cannot be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the load against a gRPC server and returns the report.
pub fn run_grpc(config: &RunConfig, grpc: &GrpcConfig) -> Result<Report, GrpcRunError> {
    let workload_config = config.workload.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(grpc.client_threads.max(1))
        .thread_name("lg-client")
        .enable_all()
        .build()
        .map_err(|source| GrpcRunError::Runtime { what: "client runtime", source })?;
    let mut spawned = None;
    let mut cluster = None;
    let (target, server_build, data_dir_fs) = match &grpc.source {
        ServerSource::Remote { addr, token, metrics_addr } => {
            let target = Target {
                addr: addr.clone(),
                members: vec![addr.clone()],
                token: token.clone(),
                metrics_addr: *metrics_addr,
                processes: Vec::new(),
                threads: ServerThreads::Elsewhere,
            };
            (target, format!("external server at {addr}"), None)
        }
        ServerSource::Spawn(s) => {
            if grpc.notes {
                eprintln!(
                    "starting an in-process server (durability {}, {} demo workers)",
                    s.durability, workload_config.workers
                );
            }
            let sp = spawn_server(s, workload_config.workers)?;
            let target = Target {
                addr: sp.server.addr.to_string(),
                members: vec![sp.server.addr.to_string()],
                token: sp.server.dev_token.as_ref().map(|t| t.token.clone()).unwrap_or_default(),
                metrics_addr: sp.server.metrics_addr,
                processes: Vec::new(),
                threads: ServerThreads::InProcess,
            };
            let build = format!(
                "in-process linggong-server {} ({} build), durability {}, {} server threads",
                env!("CARGO_PKG_VERSION"),
                if cfg!(debug_assertions) { "debug" } else { "release" },
                s.durability,
                s.server_threads
            );
            let fs = sp.fs.clone();
            spawned = Some(sp);
            (target, build, fs)
        }
        ServerSource::SpawnCluster(c) => {
            if grpc.notes {
                eprintln!(
                    "starting {} replicas of {} (durability {}, {} threads each)",
                    c.replicas,
                    c.server_binary.display(),
                    c.durability,
                    c.server_threads
                );
            }
            let local = LocalCluster::spawn(c)?;
            let leader = runtime.block_on(async {
                tokio::select! {
                    r = local.initialise() => r.map_err(GrpcRunError::from),
                    _ = ctrl_c() => Err(GrpcRunError::Interrupted),
                }
            })?;
            if grpc.notes {
                eprintln!("cluster initialised: node {} leads, its gRPC on {}", leader.node_id, leader.grpc);
            }
            let target = Target {
                addr: leader.grpc.to_string(),
                members: local.replicas().iter().map(|r| r.grpc.to_string()).collect(),
                token: local.token().to_string(),
                metrics_addr: leader.metrics,
                processes: local.processes(leader),
                threads: ServerThreads::Elsewhere,
            };
            let build = format!(
                "{} local replicas (processes of {}), durability {}, {} server threads each, node {} leading",
                c.replicas,
                c.server_binary.display(),
                c.durability,
                c.server_threads,
                leader.node_id
            );
            let fs = filesystem_of(local.root());
            cluster = Some(local);
            (target, build, fs)
        }
    };
    let mut machine = MachineInfo::probe(server_build);
    machine.data_dir_fs = data_dir_fs;

    let result = runtime.block_on(async {
        tokio::select! {
            r = drive(config, grpc, workload_config, &target, machine) => r,
            _ = ctrl_c() => Err(GrpcRunError::Interrupted),
        }
    });
    drop(runtime);
    if let Some(sp) = spawned {
        let Spawned { runtime, server, _data_dir, .. } = sp;
        if let Err(e) = runtime.block_on(server.shutdown()) {
            eprintln!("warning: the in-process server did not shut down cleanly: {e:#}");
        }
    }
    if let Some(local) = cluster {
        for problem in local.stop() {
            eprintln!("warning: {problem}");
        }
    }
    result
}

async fn drive(
    config: &RunConfig,
    grpc: &GrpcConfig,
    workload_config: crate::workload::WorkloadConfig,
    target: &Target,
    mut machine: MachineInfo,
) -> Result<Report, GrpcRunError> {
    let (addr, token, metrics_addr) = (target.addr.as_str(), target.token.as_str(), target.metrics_addr);
    let scenario = workload_config.scenario;
    let clients = connect(addr, token, grpc.connections).await?;
    let route = Arc::new(LeaderRoute::new(addr, clients, &target.members, BearerToken::new(token)?, grpc.connections));
    let ctx = Arc::new(CallContext {
        timeout: config.request_timeout,
        request_ids: grpc.request_ids,
        run_tag: workload_config.run_tag.clone(),
        next_request: AtomicU64::new(0),
        submitted: (scenario == Scenario::Watch).then(|| Mutex::new(FxHashMap::default())),
    });
    let workload = Arc::new(Mutex::new(Workload::new(workload_config)));
    let setup_started = Instant::now();
    setup(&route, &ctx, &workload, grpc).await?;
    if let Some(submitted) = &ctx.submitted {
        // Lag is measured for postings submitted while the stations watch, not for the setup's.
        submitted.lock().clear();
    }
    if grpc.notes {
        eprintln!("setup done in {:.1} s", setup_started.elapsed().as_secs_f64());
    }

    let collector = Arc::new(Collector::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stations = if scenario == Scenario::Watch { grpc.stations } else { 0 };
    let counties: Vec<u32> = linggong_engine::Regions::linfen().counties().iter().map(|c| c.code).collect();
    let mut station_tasks = Vec::new();
    for k in 0..stations {
        station_tasks.push(tokio::spawn(station(
            route.clone(),
            k,
            counties[k % counties.len()],
            ctx.clone(),
            collector.clone(),
            stop_rx.clone(),
        )));
    }

    let timeline = Timeline::starting_now(config);
    let marks: Arc<Mutex<Option<WindowStart>>> = Arc::new(Mutex::new(None));
    let mark = marks.clone();
    let reset = workload.clone();
    let pids: Vec<u32> = target.processes.iter().map(|p| p.pid).collect();
    let sampler = Sampler::start(
        collector.clone(),
        timeline,
        config,
        Box::new(move || {
            reset.lock().reset_stats();
            let metrics = metrics_addr.and_then(scrape_metrics);
            let cpu = cpu_by_thread_group(std::process::id());
            let processes = pids.iter().map(|&pid| (cpu_by_thread_group(pid), process_cpu_secs(pid))).collect();
            *mark.lock() =
                Some(WindowStart { at: Instant::now(), cpu, processes, jiffies: system_cpu_jiffies(), metrics });
        }),
    );

    match config.shape {
        LoadShape::Closed { concurrency } => {
            let mut tasks = Vec::with_capacity(concurrency);
            for k in 0..concurrency.max(1) {
                let mut c = Caller::new(route.clone(), k);
                let (workload, collector, ctx) = (workload.clone(), collector.clone(), ctx.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < timeline.deadline {
                        let Some(action) = workload.lock().next(now_timestamp()) else {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            continue;
                        };
                        // A call retried at a new leader is charged from its first attempt.
                        let started = Instant::now();
                        let result = c.call(&action, &ctx).await.result;
                        collector.record(action.rpc(), started.elapsed(), result.as_ref().err().copied());
                        workload.lock().complete(&action, result.map_err(|_| ()));
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        LoadShape::Open { rate, max_in_flight } => {
            open_loop(rate, max_in_flight, timeline, &route, &workload, &collector, &ctx, config.request_timeout)
                .await?;
        }
    }
    sampler.finish(false);
    let _ = stop_tx.send(true);
    for t in station_tasks {
        let _ = t.await;
    }
    let recorded = collector.recorded();
    let (cpu, server, server_processes, server_cpu_cores) = match marks.lock().take() {
        Some(start) => {
            let secs = start.at.elapsed().as_secs_f64();
            machine.machine_cores_busy = Some(system_cores_busy(start.jiffies, system_cpu_jiffies(), secs));
            let cpu = cpu_share(&start.cpu, &cpu_by_thread_group(std::process::id()), secs);
            let server = match (start.metrics, metrics_addr.and_then(scrape_metrics)) {
                (Some(a), Some(b)) => Some(ServerCounters::between(&a, &b, recorded.measured.as_secs_f64())),
                _ => None,
            };
            let processes: Vec<ServerProcessCpu> = target
                .processes
                .iter()
                .zip(start.processes)
                .map(|(p, (groups_before, total_before))| {
                    let groups = cpu_share(&groups_before, &cpu_by_thread_group(p.pid), secs);
                    // The process's own total counts threads that ended in the window too.
                    let cpu_cores = match (total_before, process_cpu_secs(p.pid)) {
                        (Some(a), Some(b)) => ((b - a) / secs.max(1e-9)).max(0.0),
                        _ => groups.values().sum(),
                    };
                    ServerProcessCpu {
                        node_id: p.node_id,
                        pid: p.pid,
                        role: p.role.to_string(),
                        cpu_cores,
                        cpu_cores_by_thread_group: groups,
                    }
                })
                .collect();
            let server_cores = match target.threads {
                ServerThreads::InProcess => Some(
                    cpu.iter()
                        .filter(|(group, _)| IN_PROCESS_SERVER_GROUPS.iter().any(|g| group.starts_with(g)))
                        .map(|(_, cores)| cores)
                        .sum(),
                ),
                ServerThreads::Elsewhere if !processes.is_empty() => Some(processes.iter().map(|p| p.cpu_cores).sum()),
                ServerThreads::Elsewhere => None,
            };
            (cpu, server, processes, server_cores)
        }
        None => Default::default(),
    };
    machine.load_average_end = load_average();
    let stats = workload.lock().stats().clone();
    let settings = serde_json::json!({
        "mode": "grpc",
        "run": config,
        "connections": grpc.connections,
        "client_threads": grpc.client_threads,
        "stations": stations,
        "request_ids": grpc.request_ids,
        "server": match &grpc.source {
            ServerSource::Remote { addr, .. } => serde_json::json!({ "remote": addr }),
            ServerSource::Spawn(s) => serde_json::json!({ "spawn": s }),
            ServerSource::SpawnCluster(c) => serde_json::json!({ "spawn_cluster": c }),
        },
    });
    Ok(Report::build(
        &recorded,
        ReportContext {
            settings,
            machine,
            stations,
            workload: stats,
            engine: None,
            cpu_cores_by_thread_group: cpu,
            server,
            server_processes,
            server_cpu_cores,
            leader_changes: route.leader_changes(),
            route_switches: route.switches(),
            retried_calls: route.retried_calls(),
        },
    ))
}

/// The open loop: a pacer thread releases request `i` at `start + i / rate`; each runs as a task
/// once one of `max_in_flight` slots is free, and its latency is charged from its intended start.
#[allow(clippy::too_many_arguments)]
async fn open_loop(
    rate: f64,
    max_in_flight: usize,
    timeline: Timeline,
    route: &Arc<LeaderRoute>,
    workload: &Arc<Mutex<Workload>>,
    collector: &Arc<Collector>,
    ctx: &Arc<CallContext>,
    timeout: Duration,
) -> Result<(), GrpcRunError> {
    let handle = tokio::runtime::Handle::current();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let outstanding = Arc::new(AtomicUsize::new(0));
    let pacer_done = Arc::new(AtomicBool::new(false));
    let pacer = {
        let (route, workload, collector, ctx) = (route.clone(), workload.clone(), collector.clone(), ctx.clone());
        let (slots, outstanding, done) = (slots.clone(), outstanding.clone(), pacer_done.clone());
        std::thread::Builder::new()
            .name("lg-pacer".into())
            .spawn(move || {
                let mut i = 0u64;
                loop {
                    let intended = timeline.intended(i, rate);
                    if intended >= timeline.deadline {
                        break;
                    }
                    let now = Instant::now();
                    if intended > now {
                        std::thread::sleep(intended - now);
                    }
                    let (route, workload, collector, ctx, slots) =
                        (route.clone(), workload.clone(), collector.clone(), ctx.clone(), slots.clone());
                    let outstanding_task = outstanding.clone();
                    outstanding.fetch_add(1, Ordering::Relaxed);
                    handle.spawn(async move {
                        let permit = slots.acquire_owned().await;
                        let late = intended.elapsed();
                        let action = workload.lock().next(now_timestamp());
                        if let (Ok(_permit), Some(action)) = (permit, action) {
                            if late > timeout {
                                // Too late to be worth sending: charged as a client-side error.
                                collector.record(action.rpc(), late, Some(ErrorClass::CLIENT_BACKLOG));
                                workload.lock().complete(&action, Err(()));
                            } else {
                                let mut c = Caller::new(route, i as usize);
                                let result = c.call(&action, &ctx).await.result;
                                collector.record(action.rpc(), intended.elapsed(), result.as_ref().err().copied());
                                workload.lock().complete(&action, result.map_err(|_| ()));
                            }
                        }
                        outstanding_task.fetch_sub(1, Ordering::Relaxed);
                    });
                    i += 1;
                }
                done.store(true, Ordering::Relaxed);
            })
            .map_err(|source| GrpcRunError::Runtime { what: "pacer thread", source })?
    };
    // A call may be retried through a change of leader for up to RETRY_WITHIN.
    let drain_limit = timeline.deadline + timeout + RETRY_WITHIN + Duration::from_secs(2);
    while !(pacer_done.load(Ordering::Relaxed) && outstanding.load(Ordering::Relaxed) == 0) {
        if Instant::now() > drain_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    Ok(())
}
