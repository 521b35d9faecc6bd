//! The engine host: the one way the server reaches the replicated state. Every
//! host serves through a Raft member ([`ClusterNode`]): a lone member (a
//! Raft group of one, no Raft listener) unless cluster settings are given.
//!
//! Flow of a write: [`Host::submit_by`] counts it in flight (refusing beyond
//! `max_inflight`), and the member proposes it; once the entry is on the
//! disks of a majority (the lone member's own disk) it is committed, applied
//! to the state machine, and the leader's own result is the answer. Reads
//! ([`Host::read_durable`]) use ReadIndex on the leader, so an answer shows
//! every acknowledged write and nothing uncommitted; the answer to a write
//! reads the applied state directly ([`Host::read_after_write`]).
//!
//! Opening ([`Host::open`], [`Host::open_member`]) loads the member's
//! snapshot and lets openraft apply the committed log after it; a directory
//! of the single-node layout is migrated first ([`crate::migrate`]). When
//! Raft stops on a fatal error (its log failed to write or sync),
//! [`Host::failure`] says so (read from Raft's own running state) and the
//! server stops (fail-stop).

use crate::convert::wal::Actor;
use crate::events::{Subscription, TooFarBehind};
use crate::layout::Layout;
use crate::raft::{ClientAddrs, ClusterNode};
use crate::snapshot::SnapshotError;
use crate::state::{Applied, ServiceState};
use crate::wal::{Durability, Storage, WalError, WalStats};
use linggong_engine::{Command, Engine, EngineConfig, EngineError, Regions, Timestamp, TradeCatalog};
use openraft::error::Fatal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Data directory (the member layout, `raft/`; see [`crate::layout`]).
    pub data_dir: PathBuf,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// Log segment size, bytes.
    pub segment_bytes: u64,
    /// Snapshot after this many Raft log entries...
    pub snapshot_every_records: u64,
    /// ...or this many bytes of applied commands, whichever comes first.
    pub snapshot_every_bytes: u64,
    /// Engine configuration.
    pub engine: EngineConfig,
    /// Counties for a fresh data directory.
    pub regions: Regions,
    /// Trades for a fresh data directory.
    pub trades: TradeCatalog,
    /// Most writes awaiting commitment at once; beyond it writes are refused as overloaded.
    pub max_inflight: usize,
    /// Events kept for resuming watchers.
    pub event_history: usize,
    /// Request ids remembered for idempotent retries.
    pub dedupe_capacity: usize,
    /// Time source.
    pub clock: Clock,
    /// File layer the log writes through (faults are injected here in tests).
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
    /// The Raft member could not start.
    #[error(transparent)]
    Member(#[from] crate::raft::ClusterError),
}

/// Why a write was not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// The engine refused the command; nothing changed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Too many writes awaiting commitment; retry later.
    #[error("overloaded: {0} writes in flight")]
    Overloaded(usize),
    /// The log has failed (fail-stop), Raft has stopped or has no leader yet; no writes are accepted.
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

/// Counters of the host, for metrics.
#[derive(Default)]
pub struct HostMetrics {
    /// Writes and fdatasyncs of the member's Raft log.
    pub log: Arc<WalStats>,
    /// Writes refused as overloaded.
    pub overloaded: AtomicU64,
}

/// What opening the data directory found, for the start-up log.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Snapshot loaded, if any.
    pub snapshot: Option<PathBuf>,
    /// Snapshots skipped as unreadable (path, reason).
    pub skipped_snapshots: Vec<(PathBuf, String)>,
    /// Single-node log records replayed (when migrating).
    pub replayed: u64,
    /// Torn tail truncated in the single-node log (when migrating): (segment, offset, copy kept).
    pub truncated_tail: Option<(PathBuf, u64, PathBuf)>,
    /// Whether a single-node data directory was migrated to the member layout.
    pub migrated: bool,
    /// Service sequence number after recovery.
    pub last_seq: u64,
    /// Wall time of recovery.
    pub elapsed: Duration,
}

/// How long closing waits for its final snapshot.
const FINAL_SNAPSHOT_WITHIN: Duration = Duration::from_secs(120);
/// How long a migration waits for the snapshot that holds the migrated state.
const MIGRATION_SNAPSHOT_WITHIN: Duration = Duration::from_secs(600);

/// The engine host (see the module documentation).
pub struct Host {
    node: Arc<ClusterNode>,
    inflight: AtomicUsize,
    max_inflight: usize,
    metrics: HostMetrics,
    recovery: RecoveryReport,
    raft_addr: Option<SocketAddr>,
    wal_dir: PathBuf,
    clock: Clock,
}

/// Counts a write in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Host {
    /// Opens the data directory as a lone member (a Raft group of one
    /// without a Raft listener): for tools, tests and examples that need a
    /// host without a server around it. Needs a tokio runtime.
    pub async fn open(config: HostConfig) -> Result<Arc<Host>, HostError> {
        Self::open_member(config, None, ClientAddrs::default()).await
    }

    /// Opens the data directory as the member `cluster` describes (a lone one
    /// when `None`), announcing `clients` as its client addresses: migrates a
    /// single-node directory, starts Raft (which loads the snapshot and
    /// applies the committed log after it) and waits until a lone member leads.
    pub async fn open_member(
        config: HostConfig,
        cluster: Option<&crate::raft::cli::ClusterSettings>,
        clients: ClientAddrs,
    ) -> Result<Arc<Host>, HostError> {
        let started = Instant::now();
        let recovering = config.clone();
        let migrating = tokio::task::spawn_blocking(move || crate::migrate::pre_raft_base(&recovering))
            .await
            .map_err(|e| HostError::Refused(format!("the recovery task failed: {e}")))??;
        let (base, mut report) = match migrating {
            Some((state, report)) => {
                tracing::info!(
                    last_seq = state.last_seq(),
                    workers = state.engine().worker_count(),
                    "migrating a single-node data directory to the member layout"
                );
                (state, RecoveryReport { migrated: true, ..report })
            }
            None => (empty_state(&config), RecoveryReport::default()),
        };
        let (node, raft_addr) = crate::raft::start_member(cluster, &config, base, &clients).await?;
        if report.migrated {
            node.snapshot_now(MIGRATION_SNAPSHOT_WITHIN).await?;
            if !crate::migrate::has_raft_snapshot(&config) {
                // A member waiting to be made part of a cluster has applied nothing yet.
                tracing::warn!(
                    "the migrated state is not in a member snapshot yet: the single-node files stay until it is"
                );
            }
        }
        let snapshotted = crate::migrate::has_raft_snapshot(&config);
        if snapshotted && crate::layout::has_single_node_data(&config.data_dir) {
            let moved = crate::migrate::retire_pre_raft(&config)
                .map_err(|e| WalError::io("move aside", &Layout::SingleNode.log_dir(&config.data_dir), e))?;
            tracing::info!(to = %moved.display(), "migrated: the single-node log and snapshots were moved aside");
            // The snapshot the migration loaded is now there.
            let moved_snapshot = |p: PathBuf| match p.file_name() {
                Some(name) => moved.join("snapshots").join(name),
                None => p,
            };
            report.snapshot = report.snapshot.take().map(moved_snapshot);
        }
        if !report.migrated && snapshotted {
            report.snapshot = Some(crate::migrate::raft_snapshot_path(&config));
        }
        report.last_seq = node.read_local(|s| s.last_seq());
        report.elapsed = started.elapsed();
        Ok(Self::serving(&config, node, report, raft_addr))
    }

    /// A host over a started member (see the module documentation).
    pub fn serving(
        config: &HostConfig,
        node: Arc<ClusterNode>,
        recovery: RecoveryReport,
        raft_addr: Option<SocketAddr>,
    ) -> Arc<Host> {
        Arc::new(Host {
            metrics: HostMetrics { log: node.shared.log_stats.clone(), ..HostMetrics::default() },
            node,
            inflight: AtomicUsize::new(0),
            max_inflight: config.max_inflight.max(1),
            recovery,
            raft_addr,
            wal_dir: config.data_dir.join("raft").join("wal"),
            clock: config.clock.clone(),
        })
    }

    /// The Raft member this host serves through.
    pub fn member(&self) -> &Arc<ClusterNode> {
        &self.node
    }

    /// The bound Raft listener, when the member has one.
    pub fn raft_addr(&self) -> Option<SocketAddr> {
        self.raft_addr
    }

    /// The member's Raft log directory (`raft/wal/`).
    pub fn wal_dir(&self) -> &Path {
        &self.wal_dir
    }

    /// What opening the data directory found.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The answer, once the command is committed and applied.
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
        if let Some(failed) = self.failure() {
            return Err(SubmitError::Unavailable(failed));
        }
        let inflight = self.inflight.fetch_add(1, Ordering::Relaxed);
        let _counted = InFlight(&self.inflight);
        if inflight >= self.max_inflight {
            self.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::Overloaded(inflight));
        }
        match self.node.submit(actor, request_key, command).await {
            // A write lost to a failed log says why.
            Err(e @ (SubmitError::Unavailable(_) | SubmitError::NotLeader { .. })) => {
                Err(self.failure().map_or(e, SubmitError::Unavailable))
            }
            answer => answer,
        }
    }

    /// Reads the member's applied state under a shared lock: committed
    /// entries only, but on a follower possibly behind the leader. For checks
    /// and inspection; answers use [`Host::read_durable`]. Keep `f` short:
    /// applying entries waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&ServiceState) -> R) -> R {
        self.node.read_local(f)
    }

    /// Reads the applied engine under a shared lock (see [`Host::read`]).
    pub fn read_engine<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        self.node.read_local(|s| f(s.engine()))
    }

    /// Reads the engine for an answer, linearizably (ReadIndex on the leader):
    /// the answer shows every write acknowledged before the call.
    pub async fn read_durable<R>(&self, f: impl FnOnce(&Engine) -> R) -> Result<R, SubmitError> {
        self.node.read_linearizable(f).await
    }

    /// Reads the engine for the answer to a write that was just acknowledged
    /// (its result came back from [`Host::submit_by`]): the member's applied
    /// state without a ReadIndex round — the write was committed by this
    /// member as leader and is applied here, and applied state holds
    /// committed entries only, so the answer shows the write and nothing a
    /// failover could erase; a second quorum round per write would only
    /// repeat what the commit proved.
    pub async fn read_after_write<R>(&self, f: impl FnOnce(&Engine) -> R) -> Result<R, SubmitError> {
        Ok(self.node.read_local(|s| f(s.engine())))
    }

    /// Subscribes to applied events after `after` (the last event the watcher saw).
    pub fn subscribe(&self, after: u64) -> Result<Subscription, TooFarBehind> {
        self.node.subscribe(after)
    }

    /// Number the next event will get.
    pub fn next_event_seq(&self) -> u64 {
        self.node.shared.hub.next_seq()
    }

    /// The failure message, once Raft has stopped on a fatal error (a stop
    /// asked for, a shutdown, is not a failure).
    pub fn failure(&self) -> Option<String> {
        fatal_message(&self.node.raft.metrics().borrow().running_state)
    }

    /// Resolves with the failure message once Raft has stopped on a fatal error.
    pub async fn failed(&self) -> String {
        let mut rx = self.node.raft.metrics();
        let message = match rx.wait_for(|m| fatal_message(&m.running_state).is_some()).await {
            Ok(m) => fatal_message(&m.running_state).unwrap_or_default(),
            Err(_) => "Raft stopped".into(),
        };
        message
    }

    /// Host counters.
    pub fn metrics(&self) -> &HostMetrics {
        &self.metrics
    }

    /// Writes awaiting commitment.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Starts a background task that looks every `every` whether the engine has
    /// something due ([`Engine::next_deadline`]: an offer or posting to expire)
    /// and, on the leader, only then proposes `Tick`. Needs a tokio runtime.
    /// Stops when the host is dropped.
    pub fn spawn_ticker(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(host) = weak.upgrade() else { return };
                let node = &host.node;
                let due = node.is_leader()
                    && node.read_local(|s| s.engine().next_deadline()).is_some_and(|at| at <= (host.clock)());
                if due {
                    match node.submit(None, None, Command::Tick).await {
                        Ok(_) | Err(SubmitError::NotLeader { .. } | SubmitError::Unavailable(_)) => {}
                        Err(e) => tracing::error!(error = %e, "tick failed"),
                    }
                }
            }
        })
    }

    /// Writes a final snapshot (so the next start loads it instead of
    /// applying the log again) and stops Raft and its listener.
    pub async fn shutdown(&self) {
        if self.failure().is_none() {
            if let Err(e) = self.node.snapshot_now(FINAL_SNAPSHOT_WITHIN).await {
                tracing::warn!(error = %e, "no final snapshot; the next start applies the log after the last one");
            }
        }
        self.node.shutdown().await;
    }
}

/// The failure message for Raft's running state, when it stopped on a fatal error.
fn fatal_message(running: &Result<(), Fatal<u64>>) -> Option<String> {
    match running {
        Err(e) if !matches!(e, Fatal::Stopped) => Some(format!("the Raft log failed: {e}")),
        _ => None,
    }
}

/// A fresh state for a data directory without snapshots.
pub(crate) fn empty_state(config: &HostConfig) -> ServiceState {
    let engine = Engine::new(config.engine.clone(), config.regions.clone(), config.trades.clone());
    ServiceState::new(engine, config.dedupe_capacity)
}
