//! Replication on openraft: a cluster member ([`ClusterNode`]) runs one Raft
//! group whose log is [`log_store::LogStore`], whose state machine is
//! [`state_machine::StateMachine`] (the one [`ServiceState`] behind
//! `ServiceState::apply`) and whose transport is [`network`] (tonic, on its own
//! listener, cluster secret).
//!
//! Flow of a write: the leader stamps `now` into the command (never before the
//! last applied time), encodes it with the WAL record encoding and proposes it
//! (`client_write`); openraft appends it to the leader's log, replicates it,
//! and once a majority has it on disk commits it; every member then applies it
//! to its state machine, and the leader answers with the result its own apply
//! produced. A member that is not the leader answers UNAVAILABLE with the
//! leader's id and client addresses ([`SubmitError::NotLeader`]); clients
//! retry there. Each member's node info in the membership ([`MemberNode`])
//! carries its client gRPC and HTTP addresses beside its Raft address; a
//! member that becomes leader writes its current ones into the membership
//! (`SetNodes`) when they differ, so a restart on new ports is announced.
//!
//! Reads: [`ClusterNode::read_linearizable`] uses openraft's ReadIndex
//! (`ensure_linearizable`: the leader confirms with a quorum that it still
//! leads and waits until it has applied up to the commit index), so a read on
//! the leader sees every acknowledged write and nothing uncommitted.
//! [`ClusterNode::read_local`] reads a member's applied state without that
//! round (stale by the replication lag, never uncommitted).

pub mod batch;
pub mod cli;
pub mod history_log;
pub mod log_store;
pub mod network;
pub mod proposer;
pub mod state_machine;

use crate::convert::wal::{command_fingerprint, encode, Actor, LoggedCommand};
use crate::events::{Subscription, TooFarBehind};
use crate::host::{Clock, HostConfig, SubmitError};
use crate::state::{Applied, RequestLookup, ServiceState};
use linggong_engine::{Command, Engine};
use openraft::error::RaftError;
use openraft::{ChangeMembers, Raft, ServerState};
use proposer::{ProposeError, Proposer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A replicated entry's commands: WAL-encoded [`LoggedCommand`]s (each with
/// the leader's `now`), one or a batch ([`batch`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCommand {
    /// `convert::wal::encode` of the command, or a [`batch`] of such encodings
    /// (a byte string, not a list of numbers, in binary encodings).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The results of applying one entry: one per command of its batch, in
/// order (none for blank and membership entries). Only the leader's own
/// results are used (they never cross the network), so they are not serialised.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterResponse {
    /// Each command's result: applied (or a remembered repeat), or why not.
    #[serde(skip)]
    pub outcomes: Vec<Result<Applied, SubmitError>>,
}

/// A member's node info, replicated in the membership: where the other
/// members reach its Raft listener and where clients reach it. Node infos
/// written before the client addresses existed (`{"addr": …}`) still read,
/// with the client addresses empty until the member next becomes leader.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNode {
    /// Raft listener address (`host:port`).
    pub addr: String,
    /// Client gRPC address (`host:port`); empty when not known.
    #[serde(default)]
    pub client_addr: String,
    /// HTTP address (console, gRPC-Web); empty when not known or off.
    #[serde(default)]
    pub http_addr: String,
}

impl MemberNode {
    /// A node known only by its Raft address.
    pub fn raft_only(addr: impl Into<String>) -> Self {
        Self { addr: addr.into(), ..Self::default() }
    }
}

impl std::fmt::Display for MemberNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{raft {}, client {}, http {}}}", self.addr, self.client_addr, self.http_addr)
    }
}

fn known(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

openraft::declare_raft_types!(
    /// The Raft types of linggong.
    pub TypeConfig:
        D = ClusterCommand,
        R = ClusterResponse,
        NodeId = u64,
        Node = MemberNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// Operator calls on the Raft listener.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Initialise a new cluster with these voters (id → Raft address).
    Init {
        /// The first voters.
        members: BTreeMap<u64, String>,
    },
    /// Add a member as a learner (it receives the log, does not vote).
    AddLearner {
        /// Its id (never reused).
        id: u64,
        /// Its Raft address.
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Its id.
        id: u64,
    },
    /// Remove a member (voter or learner).
    Remove {
        /// Its id.
        id: u64,
    },
    /// Members, roles, term, indexes and lag.
    Status,
    /// The applied index, state hash, service sequence and the engine's
    /// invariant check (no worker with two live offers, headcounts kept…);
    /// walks the whole state: for tests and audits, not for dashboards.
    Check,
}

/// Default of [`RaftOptions::snapshot_every_bytes`]: 256 MiB of applied commands.
pub const DEFAULT_SNAPSHOT_EVERY_BYTES: u64 = 256 << 20;

/// Raft settings of a member.
#[derive(Clone, Debug)]
pub struct RaftOptions {
    /// This member's id (never reused for another machine).
    pub id: u64,
    /// Address the other members reach this one's Raft listener at.
    pub advertise: String,
    /// Address clients reach this member's gRPC listener at (empty: not announced).
    pub client_addr: String,
    /// Address of this member's HTTP listener (empty: not announced).
    pub http_addr: String,
    /// The cluster secret (Raft calls and operator calls).
    pub secret: String,
    /// Leader heartbeat, milliseconds.
    pub heartbeat_ms: u64,
    /// Election timeout range, milliseconds.
    pub election_min_ms: u64,
    /// Election timeout range, milliseconds.
    pub election_max_ms: u64,
    /// Snapshot after this many applied entries.
    pub snapshot_every: u64,
    /// Snapshot, too, once this many bytes of commands were applied since the
    /// last one: a batched entry carries up to 1,024 commands, so a count of
    /// entries alone does not bound the log kept in memory.
    pub snapshot_every_bytes: u64,
    /// Log entries kept behind a snapshot (for followers slightly behind);
    /// older ones are purged, and a member further behind gets the snapshot.
    pub kept_after_snapshot: u64,
}

impl RaftOptions {
    /// Defaults: heartbeat 50 ms, election timeout 300–450 ms, snapshot every
    /// 100,000 entries or 256 MiB of commands.
    pub fn new(id: u64, advertise: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id,
            advertise: advertise.into(),
            client_addr: String::new(),
            http_addr: String::new(),
            secret: secret.into(),
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 450,
            snapshot_every: 100_000,
            snapshot_every_bytes: DEFAULT_SNAPSHOT_EVERY_BYTES,
            kept_after_snapshot: 1000,
        }
    }
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Raft log could not be opened.
    #[error(transparent)]
    Log(#[from] log_store::LogStoreError),
    /// The state machine's snapshot could not be loaded.
    #[error("state machine: {0}")]
    StateMachine(String),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// Opens a member's Raft log and state machine under `host.data_dir/raft`;
/// the state machine starts from its snapshot, or an empty state.
pub fn open_storage(host: &HostConfig) -> Result<(log_store::LogStore, state_machine::StateMachine), ClusterError> {
    open_storage_over(host, crate::host::empty_state(host))
}

/// Like [`open_storage`], with `base` as the state before the first entry
/// when the state machine has no snapshot (a single-node data directory
/// being migrated).
pub fn open_storage_over(
    host: &HostConfig,
    base: ServiceState,
) -> Result<(log_store::LogStore, state_machine::StateMachine), ClusterError> {
    let dir = host.data_dir.join("raft");
    let sm = state_machine::StateMachine::open(
        &dir,
        base,
        host.engine.clone(),
        host.dedupe_capacity,
        host.event_history,
        host.segment_bytes,
    )
    .map_err(ClusterError::StateMachine)?;
    let log = log_store::LogStore::open(&log_store::LogOptions {
        dir: dir.clone(),
        storage: host.storage.clone(),
        segment_bytes: host.segment_bytes,
        durability: host.durability,
        stats: sm.shared.log_stats.clone(),
    })?;
    Ok((log, sm))
}

/// One member of a linggong cluster.
pub struct ClusterNode {
    /// This member's id.
    pub id: u64,
    /// The Raft handle.
    pub raft: Raft<TypeConfig>,
    /// The state machine.
    pub shared: Arc<state_machine::Shared>,
    advertise: String,
    client_addr: String,
    http_addr: String,
    clock: Clock,
    started: Instant,
    stop: parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    proposer: Proposer,
}

impl ClusterNode {
    /// Opens the member's Raft log and state machine under `host.data_dir/raft`,
    /// starts Raft and serves the Raft listener `listener` until shut down.
    pub async fn start(
        host: &HostConfig,
        options: RaftOptions,
        listener: tokio::net::TcpListener,
    ) -> Result<Arc<ClusterNode>, ClusterError> {
        let (log, sm) = open_storage(host)?;
        Self::start_listening(host, options, listener, log, sm).await
    }

    /// Starts Raft over the given log and state machine and serves the Raft
    /// listener `listener` until shut down.
    pub async fn start_listening(
        host: &HostConfig,
        options: RaftOptions,
        listener: tokio::net::TcpListener,
        log: log_store::LogStore,
        sm: state_machine::StateMachine,
    ) -> Result<Arc<ClusterNode>, ClusterError> {
        let secret: Arc<str> = options.secret.clone().into();
        let network = network::Network::new(secret.clone());
        let node = Self::start_with(host, options, network, log, sm).await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        *node.stop.lock() = Some(stop_tx);
        let service = network::authenticated_service(network::TransportService { node: Arc::downgrade(&node) }, secret);
        tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stop_rx.await;
            },
        ));
        Ok(node)
    }

    /// Starts Raft over the given transport, log and state machine, without
    /// a listener: [`ClusterNode::start`] passes the gRPC transport and the
    /// on-disk log; the deterministic simulation passes a simulated network
    /// that delivers messages to `raft` itself.
    pub async fn start_with<N, L>(
        host: &HostConfig,
        options: RaftOptions,
        network: N,
        log: L,
        sm: state_machine::StateMachine,
    ) -> Result<Arc<ClusterNode>, ClusterError>
    where
        N: openraft::RaftNetworkFactory<TypeConfig>,
        L: openraft::storage::RaftLogStorage<TypeConfig>,
    {
        let shared = sm.shared.clone();
        let config = openraft::Config {
            cluster_name: "linggong".into(),
            heartbeat_interval: options.heartbeat_ms,
            election_timeout_min: options.election_min_ms,
            election_timeout_max: options.election_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(options.snapshot_every),
            max_in_snapshot_log_to_keep: options.kept_after_snapshot,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let raft = Raft::new(options.id, Arc::new(config), network, log, sm)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let proposer = Proposer::start(raft.clone());
        let node = Arc::new(ClusterNode {
            id: options.id,
            raft,
            shared,
            advertise: options.advertise.clone(),
            client_addr: options.client_addr.clone(),
            http_addr: options.http_addr.clone(),
            clock: host.clock.clone(),
            started: Instant::now(),
            stop: parking_lot::Mutex::new(None),
            proposer,
        });
        tokio::spawn(Self::snapshot_by_bytes(Arc::downgrade(&node), options.snapshot_every_bytes));
        let watched = Arc::downgrade(&node);
        tokio::spawn(async move {
            let Some(mut rx) = watched.upgrade().map(|n| n.raft.metrics()) else { return };
            let mut leader = rx.borrow().current_leader;
            let mut announced_in_term = None;
            loop {
                let (now, term, leading) = {
                    let m = rx.borrow();
                    (m.current_leader, m.current_term, m.state == ServerState::Leader)
                };
                let Some(node) = watched.upgrade() else { return };
                if now != leader {
                    leader = now;
                    node.shared.metrics.leader_changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(leader = ?now, "leader changed");
                }
                if leading && announced_in_term != Some(term) {
                    announced_in_term = Some(term);
                    tokio::spawn(async move { node.announce_self().await });
                } else {
                    drop(node);
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(node)
    }

    /// Initialises a one-member cluster when this member has never been part
    /// of one (a fresh data directory). Returns whether it did.
    pub async fn initialize_if_fresh(&self) -> Result<bool, String> {
        if self.raft.is_initialized().await.map_err(|e| e.to_string())? {
            return Ok(false);
        }
        let members = BTreeMap::from([(self.id, self.own_node())]);
        self.raft.initialize(members).await.map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// For a member that is, or starts, a group of one: initialises the group
    /// on a fresh directory (openraft then elects it at once) and waits
    /// (bounded) until it leads, so the first writes find a leader. A lone
    /// member that led before a restart leads again at once (its vote is
    /// committed); one stopped mid-election elects itself after an election
    /// timeout. A member of a larger group just starts.
    pub async fn lead_alone(&self) -> Result<(), ClusterError> {
        if self.initialize_if_fresh().await.map_err(ClusterError::Raft)? {
            tracing::info!(id = self.id, "initialised a one-member group on a fresh data directory");
        } else {
            // Restarted: the membership read from the directory is in the metrics from the start.
            let voters: BTreeSet<u64> =
                self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
            if voters != BTreeSet::from([self.id]) {
                return Ok(());
            }
        }
        // Leading and past the blank entry of its term: everything before it is applied.
        let id = self.id;
        let established = move |m: &openraft::RaftMetrics<u64, MemberNode>| {
            m.state == ServerState::Leader
                && m.current_leader == Some(id)
                && m.last_applied.is_some_and(|l| l.leader_id.term == m.current_term)
        };
        let within = Some(Duration::from_secs(10));
        if let Err(e) = self.raft.wait(within).metrics(established, "a lone member leads").await {
            tracing::warn!(error = %e, "the lone member is not leading yet; writes are refused until it does");
        }
        Ok(())
    }

    /// Builds a snapshot now and waits (up to `within`) until one covering
    /// the applied index is stored: after a migration, so that the
    /// single-node files are no longer needed, and at shutdown. At once when
    /// one does already, or when nothing was applied yet.
    pub async fn snapshot_now(&self, within: Duration) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + within;
        let applied = self.raft.metrics().borrow().last_applied;
        if applied.is_none() {
            // Nothing applied (a member not yet part of a cluster): nothing to cover.
            return Ok(());
        }
        // A request while a build runs is ignored, and that build may end
        // before `applied`: ask again until a snapshot covers it.
        loop {
            let stored = self.raft.metrics().borrow().snapshot;
            if stored.is_some() && stored >= applied {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::Raft(format!(
                    "no snapshot covering {applied:?} was stored within {within:?} (the last covers {stored:?})"
                )));
            }
            self.raft.trigger().snapshot().await.map_err(|e| ClusterError::Raft(e.to_string()))?;
            let step = Some(Duration::from_millis(500).min(deadline - tokio::time::Instant::now()));
            let _ = self
                .raft
                .wait(step)
                .metrics(move |m| m.snapshot.is_some() && m.snapshot >= applied, "a snapshot")
                .await;
        }
    }

    /// Asks openraft for a snapshot whenever more than `limit` bytes of
    /// commands were applied since the last one (openraft's own policy counts
    /// entries); openraft ignores the request while a build runs. Ends when
    /// the node is dropped.
    async fn snapshot_by_bytes(node: std::sync::Weak<ClusterNode>, limit: u64) {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(node) = node.upgrade() else { return };
            if node.shared.log_bytes_since_snapshot() >= limit {
                if let Err(e) = node.raft.trigger().snapshot().await {
                    tracing::debug!(error = %e, "snapshot not triggered");
                }
            }
        }
    }

    /// This member's node info as it is now.
    fn own_node(&self) -> MemberNode {
        MemberNode {
            addr: self.advertise.clone(),
            client_addr: self.client_addr.clone(),
            http_addr: self.http_addr.clone(),
        }
    }

    /// On the leader: writes this member's current client addresses into the
    /// membership when the replicated node info differs (a fresh cluster, a
    /// node info of the old format, a restart on other ports). The Raft
    /// address is kept as it is, so `SetNodes` cannot split the cluster.
    async fn announce_self(&self) {
        for attempt in 0..20u32 {
            if !self.is_leader() {
                return;
            }
            let current = self.raft.metrics().borrow().membership_config.membership().get_node(&self.id).cloned();
            let Some(current) = current else { return };
            let wanted = MemberNode { addr: current.addr.clone(), ..self.own_node() };
            if current == wanted {
                return;
            }
            match self.raft.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(self.id, wanted)])), true).await
            {
                Ok(_) => {
                    tracing::info!(client = %self.client_addr, http = %self.http_addr, "announced the client addresses");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "announcing the client addresses failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
                }
            }
        }
        tracing::warn!("could not announce the client addresses: followers name the leader without them");
    }

    fn not_leader(&self, leader: Option<u64>) -> SubmitError {
        let node =
            leader.and_then(|id| self.raft.metrics().borrow().membership_config.membership().get_node(&id).cloned());
        SubmitError::NotLeader {
            leader_id: leader,
            leader_addr: node.as_ref().and_then(|n| known(&n.client_addr)),
            leader_http_addr: node.as_ref().and_then(|n| known(&n.http_addr)),
            leader_raft_addr: node.map(|n| n.addr),
        }
    }

    /// Proposes a command and answers with the leader's result once it is
    /// committed and applied (see the module documentation).
    pub async fn submit(
        &self,
        actor: Option<Actor>,
        request_key: Option<String>,
        command: Command,
    ) -> Result<Applied, SubmitError> {
        let now = {
            let a = self.shared.applied.read();
            if let Some(key) = request_key.as_deref() {
                match a.state.lookup_request(key, command_fingerprint(&command)) {
                    RequestLookup::New => {}
                    RequestLookup::Repeat(first) => return Ok(first.clone()),
                    RequestLookup::Reused => return Err(SubmitError::RequestIdReused),
                }
            }
            (self.clock)().max(a.last_now)
        };
        let logged = LoggedCommand { now, request_key, command, actor, effect: None };
        let mut payload = Vec::with_capacity(128);
        encode(&logged, &mut payload);
        let started = Instant::now();
        match self.proposer.propose(payload).await {
            Ok(applied) => {
                self.shared.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                Ok(applied)
            }
            Err(ProposeError::NotLeader(leader)) => Err(self.not_leader(leader)),
            Err(ProposeError::Refused(e)) => Err(e),
        }
    }

    /// Reads the applied state on the leader after a ReadIndex round: the
    /// answer includes every write acknowledged before the call.
    /// A leadership check that misses its quorum (a follower slow to answer
    /// within the heartbeat interval) is tried again, three times at most.
    pub async fn read_linearizable<R>(&self, f: impl FnOnce(&Engine) -> R) -> Result<R, SubmitError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.raft.ensure_linearizable().await {
                Ok(_) => return Ok(f(self.shared.applied.read().state.engine())),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(fw))) => {
                    return Err(self.not_leader(fw.leader_id))
                }
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::QuorumNotEnough(_))) if attempts < 3 => {}
                Err(e) => return Err(SubmitError::Unavailable(e.to_string())),
            }
        }
    }

    /// Reads this member's applied state (committed entries only; may lag the leader).
    pub fn read_local<R>(&self, f: impl FnOnce(&ServiceState) -> R) -> R {
        f(&self.shared.applied.read().state)
    }

    /// The last applied index and the running state hash at it (hex).
    pub fn state_hash(&self) -> (u64, String) {
        self.shared.hash_hex()
    }

    /// Subscribes to applied events after `after`.
    pub fn subscribe(&self, after: u64) -> Result<Subscription, TooFarBehind> {
        self.shared.hub.subscribe(after)
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Members, roles, term, indexes and lag, as JSON.
    pub fn status(&self) -> serde_json::Value {
        let m = self.raft.metrics().borrow().clone();
        let (applied, hash) = self.state_hash();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let last_index = m.last_log_index.unwrap_or(0);
        let members: Vec<serde_json::Value> = membership
            .nodes()
            .map(|(id, node)| {
                let role = if *id == self.id {
                    format!("{:?}", m.state).to_lowercase()
                } else if voters.contains(id) {
                    if m.current_leader == Some(*id) {
                        "leader".into()
                    } else {
                        "voter".into()
                    }
                } else {
                    "learner".to_string()
                };
                let matched = m.replication.as_ref().and_then(|r| r.get(id).copied().flatten()).map(|l| l.index);
                serde_json::json!({
                    "id": id,
                    "addr": node.addr,
                    "client_addr": node.client_addr,
                    "http_addr": node.http_addr,
                    "voter": voters.contains(id),
                    "role": role,
                    "matched_index": matched,
                    "lag": matched.map(|i| last_index.saturating_sub(i)),
                })
            })
            .collect();
        serde_json::json!({
            "id": self.id,
            "state": format!("{:?}", m.state),
            "term": m.current_term,
            "leader": m.current_leader,
            "last_log_index": m.last_log_index,
            "applied_index": applied,
            "state_hash": hash,
            "snapshot_index": m.snapshot.map(|l| l.index),
            "purged_index": m.purged.map(|l| l.index),
            "millis_since_quorum_ack": m.millis_since_quorum_ack,
            "uptime_s": self.started.elapsed().as_secs(),
            "members": members,
        })
    }

    /// Writes the member's metrics in Prometheus text format: term, leader,
    /// leader changes, indexes, replication lag per follower (on the leader),
    /// commit latency, snapshot duration and size.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let m = self.raft.metrics().borrow().clone();
        let c = &self.shared.metrics;
        let (applied, _) = self.state_hash();
        let last = m.last_log_index.unwrap_or(0);
        // OpenMetrics names a counter's family without the `_total` of its sample.
        let head = |out: &mut String, name: &str, help: &str, kind: &str| {
            let family = if kind == "counter" { name.strip_suffix("_total").unwrap_or(name) } else { name };
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
        };
        for (name, help, kind, value) in [
            ("linggong_raft_term", "Current Raft term.", "gauge", m.current_term),
            ("linggong_raft_is_leader", "1 on the leader.", "gauge", u64::from(m.state == ServerState::Leader)),
            (
                "linggong_raft_leader_changes_total",
                "Changes of leader seen.",
                "counter",
                c.leader_changes.load(Relaxed),
            ),
            ("linggong_raft_last_log_index", "Index of the last Raft log entry.", "gauge", last),
            ("linggong_raft_applied_index", "Index of the last applied entry.", "gauge", applied),
            ("linggong_raft_snapshot_bytes", "Size of the last snapshot.", "gauge", c.snapshot_bytes.load(Relaxed)),
            (
                "linggong_raft_log_bytes_since_snapshot",
                "Command bytes applied beyond the last snapshot (held in the in-memory log).",
                "gauge",
                self.shared.log_bytes_since_snapshot(),
            ),
        ] {
            head(out, name, help, kind);
            let _ = writeln!(out, "{name} {value}");
        }
        head(
            out,
            "linggong_raft_replication_lag",
            "Entries a follower is behind the leader's log (leader only).",
            "gauge",
        );
        if let Some(replication) = &m.replication {
            for (id, matched) in replication {
                let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
                let _ = writeln!(out, "linggong_raft_replication_lag{{follower=\"{id}\"}} {lag}");
            }
        }
        head(out, "linggong_raft_commit_seconds", "Write proposed to applied result on the leader.", "histogram");
        c.commit_seconds.render(out, "linggong_raft_commit_seconds", "");
        head(out, "linggong_raft_snapshot_seconds", "Time to build one snapshot.", "histogram");
        c.snapshot_seconds.render(out, "linggong_raft_snapshot_seconds", "");
        head(
            out,
            "linggong_raft_snapshot_stall_seconds",
            "Time a snapshot build held up applying entries (freezing the state).",
            "histogram",
        );
        c.snapshot_stall_seconds.render(out, "linggong_raft_snapshot_stall_seconds", "");
    }

    /// Carries out an operator call.
    pub async fn admin(&self, request: AdminRequest) -> Result<serde_json::Value, String> {
        match request {
            AdminRequest::Init { members } => {
                let nodes: BTreeMap<u64, MemberNode> = members
                    .into_iter()
                    .map(|(id, addr)| {
                        let node = if id == self.id {
                            MemberNode { addr, ..self.own_node() }
                        } else {
                            MemberNode::raft_only(addr)
                        };
                        (id, node)
                    })
                    .collect();
                self.raft.initialize(nodes).await.map(|()| serde_json::json!({ "ok": true })).map_err(|e| e.to_string())
            }
            AdminRequest::AddLearner { id, addr } => self
                .raft
                .add_learner(id, MemberNode::raft_only(addr), true)
                .await
                .map(|r| serde_json::json!({ "ok": true, "log_index": r.log_id.index }))
                .map_err(|e| e.to_string()),
            AdminRequest::Promote { id } => self
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map(|r| serde_json::json!({ "ok": true, "log_index": r.log_id.index }))
                .map_err(|e| e.to_string()),
            AdminRequest::Remove { id } => {
                let m = self.raft.metrics().borrow().membership_config.clone();
                let change = if m.membership().voter_ids().any(|v| v == id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map(|r| serde_json::json!({ "ok": true, "log_index": r.log_id.index }))
                    .map_err(|e| e.to_string())
            }
            AdminRequest::Status => Ok(self.status()),
            AdminRequest::Check => {
                let a = self.shared.applied.read();
                let invariants = match a.state.engine().check_invariants() {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("{e:?}"),
                };
                Ok(serde_json::json!({
                    "applied_index": a.last_applied.map_or(0, |l| l.index),
                    "state_hash": hex::encode(a.hash),
                    "service_seq": a.state.last_seq(),
                    "workers": a.state.engine().worker_count(),
                    "invariants": invariants,
                }))
            }
        }
    }

    /// Stops Raft and the Raft listener.
    pub async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.raft.shutdown()).await;
    }
}

/// A server's bound client listeners, announced in the membership.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientAddrs {
    /// The gRPC listener.
    pub grpc: Option<std::net::SocketAddr>,
    /// The HTTP listener (console, gRPC-Web), if on.
    pub http: Option<std::net::SocketAddr>,
}

/// The id of the lone member a single node runs when no cluster settings are
/// given (unless its data directory names another, see [`MEMBER_ID_FILE`]).
pub const LONE_MEMBER_ID: u64 = 1;

/// File in `<data>/raft/` naming the member the directory belongs to: a
/// directory is never started as another member (that would vote twice in
/// one term under two names).
pub const MEMBER_ID_FILE: &str = "member-id";

/// The member id for the data directory: the one it was first started as;
/// `wanted` (the configured id) must match it. A fresh directory records
/// `wanted`, or [`LONE_MEMBER_ID`].
fn member_id(raft_dir: &std::path::Path, wanted: Option<u64>) -> Result<u64, ClusterError> {
    let path = raft_dir.join(MEMBER_ID_FILE);
    let refuse = |m: String| ClusterError::Raft(m);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded: u64 =
                text.trim().parse().map_err(|_| refuse(format!("{} does not hold a member id", path.display())))?;
            match wanted {
                Some(w) if w != recorded => Err(refuse(format!(
                    "this data directory belongs to member {recorded} ({}), not {w}: start it as member {recorded}, \
                     or give the new member a fresh data directory",
                    path.display()
                ))),
                _ => Ok(recorded),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = wanted.unwrap_or(LONE_MEMBER_ID);
            std::fs::create_dir_all(raft_dir)
                .and_then(|()| crate::tokens::write_private(&path, format!("{id}\n").as_bytes()))
                .and_then(|()| std::fs::File::open(raft_dir)?.sync_all())
                .map_err(|e| refuse(format!("writing {}: {e}", path.display())))?;
            Ok(id)
        }
        Err(e) => Err(refuse(format!("reading {}: {e}", path.display()))),
    }
}

/// Starts the Raft member a server serves through, on the data directory,
/// from `base` when the state machine has no snapshot yet (see
/// [`open_storage_over`]). `clients` are the bound client listeners,
/// announced in the membership unless the settings advertise other
/// addresses. Returns the member and its bound Raft address.
///
/// Without cluster settings the member is a lone one: a Raft group of one
/// with no Raft listener (nothing can reach it but its own server), which
/// initialises itself on a fresh directory and elects itself at once. The
/// same directory joins a cluster later when the server is restarted with a
/// Raft listener and a secret (README, "Three replicas on one machine").
pub async fn start_member(
    cluster: Option<&cli::ClusterSettings>,
    host: &HostConfig,
    base: ServiceState,
    clients: &ClientAddrs,
) -> Result<(Arc<ClusterNode>, Option<std::net::SocketAddr>), ClusterError> {
    let raft_dir = host.data_dir.join("raft");
    let (grpc, http) = (clients.grpc.map(|a| a.to_string()), clients.http.map(|a| a.to_string()));
    let Some(cluster) = cluster else {
        let id = member_id(&raft_dir, None)?;
        let (log, sm) = open_storage_over(host, base)?;
        let mut options = RaftOptions::new(id, String::new(), String::new());
        options.client_addr = grpc.unwrap_or_default();
        options.http_addr = http.unwrap_or_default();
        options.snapshot_every = host.snapshot_every_records.max(1);
        options.snapshot_every_bytes = host.snapshot_every_bytes.max(1);
        let network = network::Network::new(Arc::from(""));
        let node = ClusterNode::start_with(host, options, network, log, sm).await?;
        node.lead_alone().await?;
        tracing::info!(id, "serving as a Raft group of one (no Raft listener)");
        return Ok((node, None));
    };
    member_id(&raft_dir, Some(cluster.node_id))?;
    let (log, sm) = open_storage_over(host, base)?;
    let listener = tokio::net::TcpListener::bind(cluster.raft_listen)
        .await
        .map_err(|e| ClusterError::Raft(format!("binding the Raft address {}: {e}", cluster.raft_listen)))?;
    let bound = listener.local_addr().map_err(|e| ClusterError::Raft(e.to_string()))?;
    let advertise = cluster.advertise.clone().unwrap_or_else(|| bound.to_string());
    let mut options = RaftOptions::new(cluster.node_id, advertise.clone(), cluster.secret.clone());
    options.client_addr = cluster.grpc_advertise.clone().or(grpc).unwrap_or_default();
    options.http_addr = cluster.http_advertise.clone().or(http).unwrap_or_default();
    options.heartbeat_ms = cluster.heartbeat_ms;
    options.election_min_ms = cluster.election_ms;
    // openraft's followers refuse votes until `election_timeout_max` has
    // passed since their last heartbeat (leader lease), so a candidate's first
    // try is always refused; with max < 2 × min its second one is granted.
    options.election_max_ms = cluster.election_ms + cluster.election_ms / 2;
    options.snapshot_every = cluster.snapshot_every;
    options.snapshot_every_bytes = cluster.snapshot_every_bytes;
    let node = ClusterNode::start_listening(host, options, listener, log, sm).await?;
    if cluster.bootstrap {
        node.lead_alone().await?;
    }
    tracing::info!(raft = %bound, advertise = %advertise, id = cluster.node_id, "Raft listening");
    println!("raft listening on {bound} (member {})", cluster.node_id);
    Ok((node, Some(bound)))
}

/// Sends an operator call to the member whose Raft listener is at `addr`.
pub async fn admin_call(addr: &str, secret: &str, request: &AdminRequest) -> Result<serde_json::Value, String> {
    let mut client = network::transport_client(addr, secret, Duration::from_secs(3))?;
    let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(crate::proto::raft::v1::AdminRequest { body });
    req.set_timeout(Duration::from_secs(30));
    let answer = client.admin(req).await.map_err(|s| format!("{}: {}", s.code(), s.message()))?;
    let result: Result<serde_json::Value, String> =
        serde_json::from_slice(&answer.into_inner().body).map_err(|e| e.to_string())?;
    result
}

#[cfg(test)]
mod tests {
    use super::MemberNode;
    use openraft::{BasicNode, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn a_membership_written_with_raft_addresses_only_still_reads() {
        let nodes: BTreeMap<u64, BasicNode> =
            (1..=3).map(|id| (id, BasicNode { addr: format!("127.0.0.1:700{id}") })).collect();
        let old = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        let json = serde_json::to_string(&old).unwrap();
        let read: Membership<u64, MemberNode> = serde_json::from_str(&json).unwrap();
        let node = read.get_node(&2).expect("member 2 is in the membership");
        assert_eq!(node, &MemberNode::raft_only("127.0.0.1:7002"));
        assert_eq!(read.voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
