//! The engine host: sequences commands into the engine, logs them through the
//! WAL writer thread (group commit), acknowledges once durable, publishes
//! events, and keeps a follower replica that writes snapshots and compacts the
//! log without ever stalling the primary.
//!
//! Flow of a write: `submit` takes the state lock (never across `.await`),
//! applies the command to the primary state (which assigns the sequence number
//! and time), queues the encoded record for the writer and releases the lock;
//! then it waits until the writer reports a durable sequence at or above its
//! own. The writer drains everything queued, writes it, fdatasyncs once, and
//! releases every waiter up to that sequence. Durable records then go to the
//! snapshot follower, which applies them to its own copy of the state.
//!
//! What an answer shows: the primary state runs ahead of the log by the
//! records still queued, so every answer computed from it waits until the
//! durable sequence reaches the last sequence applied when it was computed —
//! a write its own record, a command that writes none (a match that finds
//! nobody, a retry, a refusal) the records before it, and a read
//! ([`Host::read_durable`]) everything applied at the time of the read. No
//! answer shows a change a crash could erase.

use crate::convert::wal::{command_fingerprint, decode, encode, Actor, Effect, LoggedCommand};
use crate::events::{EventHub, Subscription, TooFarBehind};
use crate::histogram::{AtomicHistogram, COUNT_BUCKETS, LATENCY_BUCKETS};
use crate::snapshot::{list_snapshots, load_snapshot, prune_snapshots, write_snapshot, SnapshotError};
use crate::state::{Applied, RequestLookup, SequencedEvent, ServiceState};
use crate::wal::{list_segments, scan, Durability, ScanOutcome, Storage, WalConfig, WalError, WalWriter};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use linggong_engine::{Command, Engine, EngineConfig, EngineError, Regions, Timestamp, TradeCatalog};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Source of `now` for commands (a virtual clock in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    })
}

/// Host settings.
#[derive(Clone)]
pub struct HostConfig {
    /// Data directory (holds `wal/` and `snapshots/`).
    pub data_dir: PathBuf,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// WAL segment size, bytes.
    pub segment_bytes: u64,
    /// Snapshot after this many log records...
    pub snapshot_every_records: u64,
    /// ...or this many log bytes, whichever comes first.
    pub snapshot_every_bytes: u64,
    /// Engine configuration.
    pub engine: EngineConfig,
    /// Counties for a fresh data directory.
    pub regions: Regions,
    /// Trades for a fresh data directory.
    pub trades: TradeCatalog,
    /// Most writes queued or awaiting durability at once; beyond it writes are refused as overloaded.
    pub max_inflight: usize,
    /// Events kept for resuming watchers.
    pub event_history: usize,
    /// Request ids remembered for idempotent retries.
    pub dedupe_capacity: usize,
    /// Time source.
    pub clock: Clock,
    /// File layer the WAL writes through.
    pub storage: Arc<dyn Storage>,
}

impl HostConfig {
    /// Defaults for a data directory: Linfen, durability `always`, 64 MiB segments.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            durability: Durability::Always,
            segment_bytes: 64 << 20,
            snapshot_every_records: 1_000_000,
            snapshot_every_bytes: 256 << 20,
            engine: EngineConfig::default(),
            regions: Regions::linfen(),
            trades: TradeCatalog::default_catalog(),
            max_inflight: 65_536,
            event_history: crate::events::DEFAULT_EVENT_HISTORY,
            dedupe_capacity: crate::state::DEFAULT_DEDUPE_CAPACITY,
            clock: system_clock(),
            storage: Arc::new(crate::wal::StdStorage),
        }
    }

    /// The log directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }

    /// The snapshot directory.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }
}

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The log could not be read or written.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A snapshot could not be read or written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Recovery refused to start on damaged or inconsistent data.
    #[error("refusing to start: {0}")]
    Refused(String),
}

/// Why a write was not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// The engine refused the command; nothing changed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Too many writes in flight; retry later.
    #[error("overloaded: {0} writes in flight")]
    Overloaded(usize),
    /// The log has failed (fail-stop) or the host is shutting down; no writes are accepted.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request key was already used for a different command; nothing changed.
    #[error("request id reused: it was first used for a different request")]
    RequestIdReused,
    /// This cluster member is not the leader; nothing changed. Retry at the leader.
    #[error("not the leader; the leader is {}", leader_addr.as_deref().unwrap_or("not known yet"))]
    NotLeader {
        /// The leader's member id, if known.
        leader_id: Option<u64>,
        /// The leader's client gRPC address (where to send the call), if known.
        leader_addr: Option<String>,
        /// The leader's HTTP address (console, gRPC-Web), if known.
        leader_http_addr: Option<String>,
        /// The leader's Raft address (operator calls only), if known.
        leader_raft_addr: Option<String>,
    },
}

/// What the writer has made durable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    /// Highest durable sequence number.
    pub seq: u64,
    /// Set once the log failed: the message to report.
    pub failed: Option<String>,
}

/// Counters of the host, for metrics.
pub struct HostMetrics {
    /// fdatasync latency, seconds.
    pub fsync_seconds: AtomicHistogram,
    /// Records made durable per fsync.
    pub records_per_fsync: AtomicHistogram,
    /// Snapshot write duration, seconds.
    pub snapshot_seconds: AtomicHistogram,
    /// Records written.
    pub records_written: AtomicU64,
    /// Bytes written (payloads).
    pub bytes_written: AtomicU64,
    /// Snapshots written.
    pub snapshots_written: AtomicU64,
    /// Segments deleted by compaction.
    pub segments_deleted: AtomicU64,
    /// Writes refused as overloaded.
    pub overloaded: AtomicU64,
}

impl Default for HostMetrics {
    fn default() -> Self {
        Self {
            fsync_seconds: AtomicHistogram::new(LATENCY_BUCKETS),
            records_per_fsync: AtomicHistogram::new(COUNT_BUCKETS),
            snapshot_seconds: AtomicHistogram::new(LATENCY_BUCKETS),
            records_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            snapshots_written: AtomicU64::new(0),
            segments_deleted: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
        }
    }
}

/// What recovery found, for the start-up log.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Snapshot loaded, if any.
    pub snapshot: Option<PathBuf>,
    /// Snapshots skipped as unreadable (path, reason).
    pub skipped_snapshots: Vec<(PathBuf, String)>,
    /// Log records replayed after the snapshot.
    pub replayed: u64,
    /// Torn tail truncated: (segment, offset, copy kept).
    pub truncated_tail: Option<(PathBuf, u64, PathBuf)>,
    /// Sequence number after recovery.
    pub last_seq: u64,
    /// Wall time of recovery.
    pub elapsed: Duration,
}

struct WalItem {
    seq: u64,
    payload: Vec<u8>,
    logged: LoggedCommand,
    events: Vec<SequencedEvent>,
}

struct FollowItem {
    seq: u64,
    payload_len: usize,
    logged: LoggedCommand,
}

struct Core {
    state: ServiceState,
    wal_tx: Option<Sender<WalItem>>,
    last_now: Timestamp,
}

/// The running engine host. Cheap to share behind an `Arc`.
pub struct Host {
    core: RwLock<Core>,
    durable: watch::Sender<DurableState>,
    hub: Arc<EventHub>,
    inflight: Arc<AtomicUsize>,
    max_inflight: usize,
    clock: Clock,
    metrics: Arc<HostMetrics>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    recovery: RecoveryReport,
    wal_dir: PathBuf,
    /// The cluster member this host serves through, in cluster mode.
    cluster: std::sync::OnceLock<Arc<crate::raft::ClusterNode>>,
}

impl Host {
    /// Recovers state from the data directory (newest valid snapshot, then the
    /// log after it) and starts the writer and snapshot threads. Blocking.
    pub fn open(config: HostConfig) -> Result<Arc<Host>, HostError> {
        let started = Instant::now();
        let (mut state, mut report) = load_newest_snapshot(&config)?;
        let hub = Arc::new(EventHub::new(config.event_history, state.next_event_seq()));
        let (outcome, replayed) = replay_log(&mut state, &config.wal_dir(), |events| hub.publish(events.drain(..)))?;
        report.replayed = replayed;
        if let Some(problem) = &outcome.problem {
            if !problem.is_torn_tail() {
                return Err(HostError::Refused(problem.to_string()));
            }
            let copy = crate::wal::cut_torn_tail(problem, "log")?;
            report.truncated_tail = Some((problem.path.clone(), problem.offset, copy));
        }
        if let Some(missing) = missing_records(&outcome, state.last_seq()) {
            return Err(HostError::Refused(missing));
        }
        let tail = list_segments(&config.wal_dir())
            .map_err(|e| WalError::Io { op: "list", path: config.wal_dir().display().to_string(), source: e })?
            .pop()
            .map(|(_, path)| {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (path, len)
            });
        let wal = WalWriter::open(
            config.storage.clone(),
            WalConfig { dir: config.wal_dir(), segment_bytes: config.segment_bytes, durability: config.durability },
            tail,
            state.last_seq() + 1,
        )?;
        report.last_seq = state.last_seq();
        report.elapsed = started.elapsed();

        let (wal_tx, wal_rx) = crossbeam_channel::unbounded::<WalItem>();
        let (follow_tx, follow_rx) = crossbeam_channel::unbounded::<FollowItem>();
        let (durable, _) = watch::channel(DurableState { seq: state.last_seq(), failed: None });
        let metrics = Arc::new(HostMetrics::default());
        let inflight = Arc::new(AtomicUsize::new(0));
        let follower = state.clone();
        let host = Arc::new(Host {
            core: RwLock::new(Core { state, wal_tx: Some(wal_tx), last_now: Timestamp(i64::MIN) }),
            durable: durable.clone(),
            hub: hub.clone(),
            inflight: inflight.clone(),
            max_inflight: config.max_inflight.max(1),
            clock: config.clock.clone(),
            metrics: metrics.clone(),
            threads: Mutex::new(Vec::new()),
            recovery: report,
            wal_dir: config.wal_dir(),
            cluster: std::sync::OnceLock::new(),
        });
        let writer = {
            let (metrics, hub) = (metrics.clone(), hub.clone());
            std::thread::Builder::new()
                .name("linggong-wal".into())
                .spawn(move || writer_loop(wal, wal_rx, durable, hub, follow_tx, metrics, inflight))
                .map_err(|e| WalError::Io { op: "spawn", path: "wal writer".into(), source: e })?
        };
        let snapshotter = {
            let config = config.clone();
            std::thread::Builder::new()
                .name("linggong-snapshot".into())
                .spawn(move || snapshot_loop(follower, follow_rx, config, metrics))
                .map_err(|e| WalError::Io { op: "spawn", path: "snapshotter".into(), source: e })?
        };
        host.threads.lock().extend([writer, snapshotter]);
        Ok(host)
    }

    /// Serves through a cluster member from now on (cluster mode): writes go
    /// through Raft ([`crate::raft::ClusterNode::submit`]), answers read the
    /// member's committed state (linearizable on the leader), events come
    /// from its state machine. This host's own log then stays unused.
    pub fn attach_cluster(&self, node: Arc<crate::raft::ClusterNode>) {
        let _ = self.cluster.set(node);
    }

    /// The cluster member, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<crate::raft::ClusterNode>> {
        self.cluster.get()
    }

    /// The log's directory (read by the history tools).
    pub fn wal_dir(&self) -> &Path {
        &self.wal_dir
    }

    /// What recovery found at start-up.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The answer, once the command's record and everything the answer may
    /// show are durable (see the module documentation).
    pub async fn submit(&self, request_key: Option<String>, command: Command) -> Result<Applied, SubmitError> {
        self.submit_by(None, request_key, command).await
    }

    /// Like [`Host::submit`], logging who asked for the change.
    pub async fn submit_by(
        &self,
        actor: Option<Actor>,
        request_key: Option<String>,
        command: Command,
    ) -> Result<Applied, SubmitError> {
        if let Some(node) = self.cluster.get() {
            return node.submit(actor, request_key, command).await;
        }
        let (answer, shows) = self.apply_and_queue(actor, request_key, command);
        if let Some(seq) = shows {
            self.wait_durable(seq).await?;
        }
        answer
    }

    /// The synchronous half of `submit`: under the state lock, applies the
    /// command and queues its record. Returns the answer and the sequence it
    /// shows — the durable sequence to wait for before answering (`None` for
    /// refusals that do not depend on the state).
    fn apply_and_queue(
        &self,
        actor: Option<Actor>,
        request_key: Option<String>,
        command: Command,
    ) -> (Result<Applied, SubmitError>, Option<u64>) {
        let mut core = self.core.write();
        if let Some(failed) = &self.durable.borrow().failed {
            return (Err(SubmitError::Unavailable(failed.clone())), None);
        }
        let shows = Some(core.state.last_seq());
        if let Some(key) = request_key.as_deref() {
            match core.state.lookup_request(key, command_fingerprint(&command)) {
                RequestLookup::New => {}
                RequestLookup::Repeat(first) => return (Ok(first.clone()), shows),
                RequestLookup::Reused => return (Err(SubmitError::RequestIdReused), shows),
            }
        }
        let inflight = self.inflight.load(Ordering::Relaxed);
        if inflight >= self.max_inflight {
            self.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
            return (Err(SubmitError::Overloaded(inflight)), None);
        }
        let Some(wal_tx) = core.wal_tx.clone() else {
            return (Err(SubmitError::Unavailable("shutting down".into())), None);
        };
        let now = (self.clock)().max(core.last_now);
        core.last_now = now;
        let mut logged = LoggedCommand { now, request_key, command, actor, effect: None };
        let mut events = Vec::new();
        let (applied, must_log) = match core.state.apply(&logged, &mut events) {
            Ok(done) => done,
            Err(e) => return (Err(e.into()), shows),
        };
        if !must_log {
            return (Ok(applied), shows);
        }
        logged.effect = Effect::of(&applied.outcome);
        let mut payload = Vec::with_capacity(128);
        encode(&logged, &mut payload);
        self.inflight.fetch_add(1, Ordering::Relaxed);
        if wal_tx.send(WalItem { seq: applied.seq, payload, logged, events }).is_err() {
            return (Err(SubmitError::Unavailable("the log writer has stopped".into())), None);
        }
        let seq = applied.seq;
        (Ok(applied), Some(seq))
    }

    /// Waits until the durable sequence reaches `seq` (at once when it has).
    async fn wait_durable(&self, seq: u64) -> Result<(), SubmitError> {
        {
            let durable = self.durable.borrow();
            if durable.seq >= seq {
                return Ok(());
            }
            if let Some(msg) = &durable.failed {
                return Err(SubmitError::Unavailable(msg.clone()));
            }
        }
        let mut rx = self.durable.subscribe();
        let state = rx
            .wait_for(|d| d.seq >= seq || d.failed.is_some())
            .await
            .map_err(|_| SubmitError::Unavailable("the log writer has stopped".into()))?;
        match &state.failed {
            Some(msg) if state.seq < seq => Err(SubmitError::Unavailable(msg.clone())),
            _ => Ok(()),
        }
    }

    /// Reads the current state under a shared lock, including changes not
    /// yet durable: for checks before a write and for inspection, never for
    /// an answer (use [`Host::read_durable`]). Keep `f` short: writers wait for it.
    pub fn read<R>(&self, f: impl FnOnce(&ServiceState) -> R) -> R {
        if let Some(node) = self.cluster.get() {
            return node.read_local(f);
        }
        f(&self.core.read().state)
    }

    /// Reads the current engine under a shared lock (see [`Host::read`]).
    pub fn read_engine<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        if let Some(node) = self.cluster.get() {
            return node.read_local(|s| f(s.engine()));
        }
        f(self.core.read().state.engine())
    }

    /// Reads the engine for an answer: `f` runs under the shared lock, and its
    /// result is returned once the durable sequence reaches the last sequence
    /// applied at the time of the read, so it shows nothing a crash could erase.
    pub async fn read_durable<R>(&self, f: impl FnOnce(&Engine) -> R) -> Result<R, SubmitError> {
        if let Some(node) = self.cluster.get() {
            return node.read_linearizable(f).await;
        }
        let (result, shows) = {
            let core = self.core.read();
            (f(core.state.engine()), core.state.last_seq())
        };
        self.wait_durable(shows).await?;
        Ok(result)
    }

    /// Reads the engine for the answer to a write that was just acknowledged
    /// (its result came back from [`Host::submit_by`]). Single node: as
    /// [`Host::read_durable`]. Cluster: the member's applied state without a
    /// ReadIndex round — the write was committed by this member as leader and
    /// is applied here, and applied state holds committed entries only, so the
    /// answer shows the write and nothing a failover could erase; a second
    /// quorum round per write would only repeat what the commit proved.
    pub async fn read_after_write<R>(&self, f: impl FnOnce(&Engine) -> R) -> Result<R, SubmitError> {
        if let Some(node) = self.cluster.get() {
            return Ok(node.read_local(|s| f(s.engine())));
        }
        self.read_durable(f).await
    }

    /// Subscribes to durable events after `after` (the last event the watcher saw).
    pub fn subscribe(&self, after: u64) -> Result<Subscription, TooFarBehind> {
        if let Some(node) = self.cluster.get() {
            return node.subscribe(after);
        }
        self.hub.subscribe(after)
    }

    /// Number the next event will get.
    pub fn next_event_seq(&self) -> u64 {
        if let Some(node) = self.cluster.get() {
            return node.shared.hub.next_seq();
        }
        self.hub.next_seq()
    }

    /// Durability progress; `failed` is set once the log has failed (fail-stop).
    pub fn durable_watch(&self) -> watch::Receiver<DurableState> {
        self.durable.subscribe()
    }

    /// The failure message, once the log has failed.
    pub fn failure(&self) -> Option<String> {
        self.durable.borrow().failed.clone()
    }

    /// Host counters.
    pub fn metrics(&self) -> &HostMetrics {
        &self.metrics
    }

    /// Writes awaiting durability.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Starts a background task that looks every `every` whether the engine has
    /// something due ([`Engine::next_deadline`]: an offer or posting to expire)
    /// and only then applies `Tick`. Needs a tokio runtime. Stops when the host
    /// is shut down.
    pub fn spawn_ticker(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(host) = weak.upgrade() else { return };
                if let Some(node) = host.cluster.get() {
                    let due = node.is_leader()
                        && node.read_local(|s| s.engine().next_deadline()).is_some_and(|at| at <= (host.clock)());
                    if due {
                        match node.submit(None, None, Command::Tick).await {
                            Ok(_) | Err(SubmitError::NotLeader { .. } | SubmitError::Unavailable(_)) => {}
                            Err(e) => tracing::error!(error = %e, "tick failed"),
                        }
                    }
                    continue;
                }
                let due = {
                    let core = host.core.read();
                    let now = (host.clock)().max(core.last_now);
                    core.state.engine().next_deadline().is_some_and(|at| at <= now)
                };
                if !due {
                    continue;
                }
                match host.submit(None, Command::Tick).await {
                    Ok(_) | Err(SubmitError::Overloaded(_)) => {}
                    Err(SubmitError::Unavailable(_)) => return,
                    Err(e) => tracing::error!(error = %e, "tick failed"),
                }
            }
        })
    }

    /// Stops accepting writes, lets the writer drain and the follower write a
    /// final snapshot, and joins both threads. Blocking; idempotent.
    pub fn shutdown(&self) {
        self.core.write().wal_tx = None;
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Replays the log in `wal_dir` after the state's last sequence number into
/// `state`, strictly (each record must apply exactly as it did when logged).
/// `on_events` gets the events produced, in batches. Returns the scan result
/// (its `problem` says where reading stopped) and how many records were applied.
pub fn replay_log(
    state: &mut ServiceState,
    wal_dir: &Path,
    mut on_events: impl FnMut(&mut Vec<SequencedEvent>),
) -> Result<(ScanOutcome, u64), WalError> {
    let mut events = Vec::new();
    let mut replayed = 0;
    let outcome = scan(wal_dir, state.last_seq(), |seq, payload| {
        let logged = decode(payload).map_err(|e| format!("undecodable command: {e}"))?;
        let expected = state.last_seq() + 1;
        if seq != expected {
            return Err(format!("sequence gap after the snapshot: expected {expected}, found {seq}"));
        }
        match state.apply(&logged, &mut events) {
            Ok((applied, true)) if applied.seq == seq => {}
            Ok(_) => return Err("replay diverged: the command changed nothing".into()),
            Err(e) => return Err(format!("replay diverged: {e}")),
        }
        if events.len() >= 4096 {
            on_events(&mut events);
        }
        replayed += 1;
        Ok(())
    })?;
    on_events(&mut events);
    Ok((outcome, replayed))
}

/// Why a log cannot continue a state at `last_seq`: its first segment starts
/// after the record that must follow.
pub fn missing_records(outcome: &ScanOutcome, last_seq: u64) -> Option<String> {
    let first = outcome.segments.first()?;
    (first.first_seq > last_seq + 1).then(|| {
        format!(
            "{}: the log starts at record {} but the snapshot ends at {last_seq}: records are missing",
            first.path.display(),
            first.first_seq,
        )
    })
}

/// The newest usable snapshot of a data directory (an empty state if there is
/// none); refuses when snapshots exist but none can be loaded.
pub(crate) fn load_newest_snapshot(config: &HostConfig) -> Result<(ServiceState, RecoveryReport), HostError> {
    let mut report = RecoveryReport::default();
    let snapshots = list_snapshots(&config.snapshot_dir())?;
    for (_, path) in &snapshots {
        match load_snapshot(path, &config.engine, config.dedupe_capacity) {
            Ok(state) => {
                report.snapshot = Some(path.clone());
                return Ok((state, report));
            }
            Err(e) => {
                tracing::warn!(snapshot = %path.display(), error = %e, "snapshot unusable; trying an older one");
                report.skipped_snapshots.push((path.clone(), e.to_string()));
            }
        }
    }
    if let Some((path, reason)) = report.skipped_snapshots.first() {
        return Err(HostError::Refused(format!(
            "no usable snapshot: {} is unreadable ({reason}) and no older snapshot could be loaded. \
             Restore the snapshots directory from a backup; starting without it would lose state",
            path.display()
        )));
    }
    Ok((empty_state(config), report))
}

/// A fresh state for a data directory without snapshots.
pub(crate) fn empty_state(config: &HostConfig) -> ServiceState {
    let engine = Engine::new(config.engine.clone(), config.regions.clone(), config.trades.clone());
    ServiceState::new(engine, config.dedupe_capacity)
}

fn fail(durable: &watch::Sender<DurableState>, message: String) {
    tracing::error!(error = %message, "write-ahead log failed: no more writes will be accepted (fail-stop)");
    durable.send_modify(|d| d.failed = Some(format!("write-ahead log failed: {message}")));
}

fn writer_loop(
    mut wal: WalWriter,
    rx: Receiver<WalItem>,
    durable: watch::Sender<DurableState>,
    hub: Arc<EventHub>,
    follow_tx: Sender<FollowItem>,
    metrics: Arc<HostMetrics>,
    inflight: Arc<AtomicUsize>,
) {
    const MAX_BATCH: usize = 8192;
    let idle_wait = match wal.durability() {
        Durability::Interval(every) => every,
        _ => Duration::from_secs(3600),
    };
    let mut batch: Vec<WalItem> = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = match rx.recv_timeout(idle_wait) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = wal.sync_now() {
                    fail(&durable, e.to_string());
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let written = wal.append(batch.iter().map(|i| (i.seq, i.payload.as_slice())));
        let t = Instant::now();
        let synced = written.and_then(|()| wal.sync_if_due());
        match synced {
            Ok(did_sync) => {
                if did_sync {
                    metrics.fsync_seconds.observe(t.elapsed().as_secs_f64());
                    metrics.records_per_fsync.observe(batch.len() as f64);
                }
            }
            Err(e) => {
                fail(&durable, e.to_string());
                return;
            }
        }
        let last = batch.last().map_or(0, |i| i.seq);
        metrics.records_written.fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics.bytes_written.fetch_add(batch.iter().map(|i| i.payload.len() as u64).sum(), Ordering::Relaxed);
        inflight.fetch_sub(batch.len(), Ordering::Relaxed);
        durable.send_modify(|d| d.seq = last);
        for item in batch.drain(..) {
            hub.publish(item.events);
            let _ = follow_tx.send(FollowItem { seq: item.seq, payload_len: item.payload.len(), logged: item.logged });
        }
    }
    if let Err(e) = wal.sync_now() {
        fail(&durable, e.to_string());
    }
}

fn snapshot_loop(mut follower: ServiceState, rx: Receiver<FollowItem>, config: HostConfig, metrics: Arc<HostMetrics>) {
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut scratch = Vec::new();
    for item in rx.iter() {
        scratch.clear();
        match follower.apply(&item.logged, &mut scratch) {
            Ok((applied, true)) if applied.seq == item.seq => {}
            other => {
                tracing::error!(seq = item.seq, result = ?other.map(|(a, l)| (a.seq, l)), "snapshot follower diverged; snapshots stop");
                return;
            }
        }
        records += 1;
        bytes += item.payload_len as u64;
        if records >= config.snapshot_every_records || bytes >= config.snapshot_every_bytes {
            take_snapshot(&follower, &config, &metrics);
            (records, bytes) = (0, 0);
        }
    }
    let newest = list_snapshots(&config.snapshot_dir()).ok().and_then(|s| s.first().map(|(seq, _)| *seq));
    if follower.last_seq() > 0 && newest != Some(follower.last_seq()) {
        take_snapshot(&follower, &config, &metrics);
    }
}

/// Writes a snapshot of the follower, prunes old snapshots and deletes log
/// segments wholly covered by the oldest snapshot kept.
fn take_snapshot(state: &ServiceState, config: &HostConfig, metrics: &HostMetrics) {
    let t = Instant::now();
    match write_snapshot(&config.snapshot_dir(), state) {
        Ok(path) => {
            metrics.snapshot_seconds.observe(t.elapsed().as_secs_f64());
            metrics.snapshots_written.fetch_add(1, Ordering::Relaxed);
            tracing::info!(snapshot = %path.display(), seq = state.last_seq(), ms = t.elapsed().as_millis() as u64, "snapshot written");
        }
        Err(e) => {
            tracing::error!(error = %e, "snapshot failed; the log is kept until a later snapshot succeeds");
            return;
        }
    }
    match prune_snapshots(&config.snapshot_dir()) {
        Ok(Some(oldest_kept)) => {
            let deleted = delete_covered_segments(&config.wal_dir(), oldest_kept);
            metrics.segments_deleted.fetch_add(deleted, Ordering::Relaxed);
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "pruning snapshots failed"),
    }
}

pub use crate::wal::delete_covered_segments;
