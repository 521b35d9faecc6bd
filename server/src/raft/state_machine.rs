//! The replicated state machine: applies committed Raft entries to the one
//! [`ServiceState`] through [`ServiceState::apply`], with the time the leader
//! stamped into each command clamped so it never runs backwards after a
//! change of leader, answers retries of a remembered request id with their
//! first result, and keeps a running hash of the applied entries (equal on
//! every replica at the same applied index, since the engine is deterministic).
//!
//! Snapshots are the service's snapshot format (see `snapshot.rs`) behind a
//! small header with openraft's metadata, the hash and the clamp time; the
//! current one is kept in `<data>/raft/snapshot` and loaded at start-up, after
//! which openraft re-applies the committed entries that follow it.
//!
//! Each accepted command is also recorded in the member's history log
//! ([`HistoryLog`], `<data>/raft/history/`) with its effect, under the same
//! lock as the apply, so a read after an applied write finds its record.

use super::history_log::HistoryLog;
use super::{ClusterCommand, ClusterResponse, TypeConfig};
use crate::convert::wal::{command_fingerprint, decode, encode, Effect};
use crate::events::EventHub;
use crate::host::SubmitError;
use crate::snapshot::{decode_snapshot, write_snapshot};
use crate::state::{RequestLookup, ServiceState};
use linggong_engine::{EngineConfig, Timestamp};
use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

type NodeId = u64;
type Node = super::MemberNode;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// What the state machine holds.
pub struct MachineState {
    /// The service state, committed entries only.
    pub state: ServiceState,
    /// Last applied log id.
    pub last_applied: Option<LogId<NodeId>>,
    /// Membership as of the last applied entry.
    pub membership: StoredMembership<NodeId, Node>,
    /// Running hash of the applied entries.
    pub hash: [u8; 32],
    /// Latest `now` applied: later commands apply at or after it.
    pub last_now: Timestamp,
}

/// The state machine shared by openraft and the node's readers.
pub struct Shared {
    /// The applied state; writers are openraft's apply and snapshot install only.
    pub applied: RwLock<MachineState>,
    /// Events of applied commands, for watchers.
    pub hub: Arc<EventHub>,
    /// Last applied log index, for waiting readers.
    pub applied_index: watch::Sender<u64>,
    /// Counters of this member, for metrics.
    pub metrics: ClusterMetrics,
    engine: EngineConfig,
    dedupe_capacity: usize,
    dir: PathBuf,
    /// Bytes of command payloads applied since the entries the last snapshot
    /// covers (what the in-memory Raft log holds beyond it).
    log_bytes_since_snapshot: std::sync::atomic::AtomicU64,
    /// The member's history log; written under the `applied` write lock.
    history: parking_lot::Mutex<HistoryLog>,
    /// Writes and syncs of the member's Raft log (the log store counts them here).
    pub log_stats: Arc<crate::wal::WalStats>,
}

/// Counters of a cluster member.
pub struct ClusterMetrics {
    /// Time from proposing a write to its applied result on the leader, seconds.
    pub commit_seconds: crate::histogram::AtomicHistogram,
    /// Time to build one snapshot, seconds.
    pub snapshot_seconds: crate::histogram::AtomicHistogram,
    /// Time a snapshot build held up applying entries (freezing the state), seconds.
    pub snapshot_stall_seconds: crate::histogram::AtomicHistogram,
    /// Size of the last snapshot built or installed, bytes.
    pub snapshot_bytes: std::sync::atomic::AtomicU64,
    /// Changes of leader seen by this member.
    pub leader_changes: std::sync::atomic::AtomicU64,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        Self {
            commit_seconds: crate::histogram::AtomicHistogram::new(crate::histogram::LATENCY_BUCKETS),
            snapshot_seconds: crate::histogram::AtomicHistogram::new(crate::histogram::LATENCY_BUCKETS),
            snapshot_stall_seconds: crate::histogram::AtomicHistogram::new(crate::histogram::LATENCY_BUCKETS),
            snapshot_bytes: std::sync::atomic::AtomicU64::new(0),
            leader_changes: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// openraft's handle on the state machine.
#[derive(Clone)]
pub struct StateMachine {
    /// The shared state.
    pub shared: Arc<Shared>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMeta<NodeId, Node>,
    hash: String,
    last_now: i64,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageError::IO { source: StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())) }
}

fn snap_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageError::IO { source: StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string())) }
}

/// The running hash after applying entry `index` with `payload`.
pub fn chain_hash(prev: &[u8; 32], index: u64, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(index.to_le_bytes());
    h.update(payload);
    h.finalize().into()
}

/// Splits snapshot bytes into header and service snapshot.
fn parse_snapshot(bytes: &[u8]) -> std::result::Result<(SnapshotHeader, &[u8]), String> {
    let len = bytes.get(0..4).ok_or("short snapshot")?;
    let len = u32::from_le_bytes(len.try_into().map_err(|_| "short snapshot")?) as usize;
    let head = bytes.get(4..4 + len).ok_or("short snapshot header")?;
    let header: SnapshotHeader = serde_json::from_slice(head).map_err(|e| e.to_string())?;
    Ok((header, &bytes[4 + len..]))
}

fn parse_hash(hex_hash: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(bytes) = hex::decode(hex_hash) {
        if bytes.len() == 32 {
            out.copy_from_slice(&bytes);
        }
    }
    out
}

impl StateMachine {
    /// The state machine over `dir` (`<data>/raft`), from its snapshot if any,
    /// with its history log in `dir/history` (segments of `history_segment_bytes`).
    pub fn open(
        dir: &Path,
        fresh: ServiceState,
        engine: EngineConfig,
        dedupe_capacity: usize,
        event_history: usize,
        history_segment_bytes: u64,
    ) -> std::result::Result<StateMachine, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let path = dir.join(SNAPSHOT_FILE);
        let mut applied = MachineState {
            state: fresh,
            last_applied: None,
            membership: StoredMembership::default(),
            hash: [0; 32],
            last_now: Timestamp(i64::MIN),
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let (header, state) = restore_snapshot(&bytes, &engine, dedupe_capacity)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                applied.state = state;
                applied.last_applied = header.meta.last_log_id;
                applied.membership = header.meta.last_membership.clone();
                applied.hash = parse_hash(&header.hash);
                applied.last_now = Timestamp(header.last_now);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        }
        let history_dir = dir.join("history");
        let history = HistoryLog::open(&history_dir, applied.state.last_seq(), history_segment_bytes)
            .map_err(|e| format!("history log {}: {e}", history_dir.display()))?;
        let hub = Arc::new(EventHub::new(event_history, applied.state.next_event_seq()));
        let (applied_index, _) = watch::channel(applied.last_applied.map_or(0, |l| l.index));
        Ok(StateMachine {
            shared: Arc::new(Shared {
                applied: RwLock::new(applied),
                hub,
                applied_index,
                metrics: ClusterMetrics::default(),
                engine,
                dedupe_capacity,
                dir: dir.to_path_buf(),
                log_bytes_since_snapshot: std::sync::atomic::AtomicU64::new(0),
                history: parking_lot::Mutex::new(history),
                log_stats: Arc::default(),
            }),
        })
    }
}

impl Shared {
    fn apply_one(
        &self,
        a: &mut MachineState,
        entry: &Entry<TypeConfig>,
        events: &mut Vec<crate::state::SequencedEvent>,
        history: &mut HistoryLog,
    ) -> ClusterResponse {
        a.last_applied = Some(entry.log_id);
        match &entry.payload {
            EntryPayload::Blank => {
                a.hash = chain_hash(&a.hash, entry.log_id.index, &[]);
                ClusterResponse::default()
            }
            EntryPayload::Membership(m) => {
                a.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                a.hash = chain_hash(&a.hash, entry.log_id.index, &[]);
                ClusterResponse::default()
            }
            EntryPayload::Normal(ClusterCommand { payload }) => {
                let index = entry.log_id.index;
                self.log_bytes_since_snapshot.fetch_add(payload.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let outcomes = super::batch::commands(payload)
                    .map(|command| match command {
                        Ok(bytes) => {
                            a.hash = chain_hash(&a.hash, index, bytes);
                            Self::apply_command(a, index, bytes, events, history)
                        }
                        Err(e) => {
                            tracing::error!(index, error = %e, "damaged batch of replicated commands: the rest is skipped on every replica");
                            Err(SubmitError::Unavailable(e.to_string()))
                        }
                    })
                    .collect();
                ClusterResponse { outcomes }
            }
        }
    }

    /// Applies one replicated command (WAL encoding) at `now` clamped to the
    /// last applied time, or answers a remembered request id with its first
    /// result; a command that changed something goes into the history log.
    fn apply_command(
        a: &mut MachineState,
        index: u64,
        bytes: &[u8],
        events: &mut Vec<crate::state::SequencedEvent>,
        history: &mut HistoryLog,
    ) -> std::result::Result<crate::state::Applied, SubmitError> {
        let mut logged = match decode(bytes) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(index, error = %e, "undecodable replicated command: skipped on every replica");
                return Err(SubmitError::Unavailable(format!("undecodable command: {e}")));
            }
        };
        logged.now = logged.now.max(a.last_now);
        a.last_now = logged.now;
        if let Some(key) = logged.request_key.as_deref() {
            match a.state.lookup_request(key, command_fingerprint(&logged.command)) {
                RequestLookup::New => {}
                RequestLookup::Repeat(first) => return Ok(first.clone()),
                RequestLookup::Reused => return Err(SubmitError::RequestIdReused),
            }
        }
        let (applied, must_log) = a.state.apply(&logged, events).map_err(SubmitError::Engine)?;
        if must_log {
            // The record the single node logs for it.
            logged.effect = Effect::of(&applied.outcome);
            let mut record = Vec::with_capacity(bytes.len() + 64);
            encode(&logged, &mut record);
            history.record(applied.seq, record);
        }
        Ok(applied)
    }

    /// Bytes of commands applied beyond what the last snapshot covers.
    pub fn log_bytes_since_snapshot(&self) -> u64 {
        self.log_bytes_since_snapshot.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The running hash, hex.
    pub fn hash_hex(&self) -> (u64, String) {
        let a = self.applied.read();
        (a.last_applied.map_or(0, |l| l.index), hex::encode(a.hash))
    }

    /// The directory of this member's history log.
    pub fn history_dir(&self) -> PathBuf {
        self.history.lock().dir().to_path_buf()
    }

    /// Why this member's history log stopped, if it did.
    pub fn history_failure(&self) -> Option<String> {
        self.history.lock().failure().map(str::to_string)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let started = std::time::Instant::now();
        // Freezing the state is the only part of a build that holds up
        // applying entries (the applied-state lock): it shares the record
        // tables instead of copying them; encoding and writing work on it.
        let (state, last_applied, membership, hash, last_now, covered) = {
            let a = self.shared.applied.read();
            let covered = self.shared.log_bytes_since_snapshot.load(std::sync::atomic::Ordering::Relaxed);
            let stall = std::time::Instant::now();
            let state = a.state.frozen();
            self.shared.metrics.snapshot_stall_seconds.observe(stall.elapsed().as_secs_f64());
            (state, a.last_applied, a.membership.clone(), a.hash, a.last_now, covered)
        };
        // What the snapshot covers is in the history log (written under the
        // lock the clone was taken under): on disk before the entries may go.
        self.shared.history.lock().sync();
        let work = self.shared.dir.join("snapshots");
        let path = write_snapshot(&work, &state).map_err(snap_err)?;
        let body = std::fs::read(&path).map_err(snap_err)?;
        let _ = std::fs::remove_file(&path);
        let id = format!("{}-{}", last_applied.map_or(0, |l| l.index), last_applied.map_or(0, |l| l.leader_id.term));
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id: id };
        let header = SnapshotHeader { meta: meta.clone(), hash: hex::encode(hash), last_now: last_now.0 };
        let head = serde_json::to_vec(&header).map_err(snap_err)?;
        let mut bytes = Vec::with_capacity(4 + head.len() + body.len());
        bytes.extend_from_slice(&(head.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(&body);
        self.shared.persist(&bytes).map_err(snap_err)?;
        self.shared.metrics.snapshot_seconds.observe(started.elapsed().as_secs_f64());
        self.shared.metrics.snapshot_bytes.store(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // Saturating: a snapshot installed meanwhile has already set it to 0.
        let _ = self.shared.log_bytes_since_snapshot.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |bytes| Some(bytes.saturating_sub(covered)),
        );
        let deleted = self.shared.history.lock().snapshot_stored(state.last_seq());
        if deleted > 0 {
            tracing::info!(deleted, "deleted history segments covered by the previous snapshot");
        }
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl Shared {
    /// The member's current snapshot, `<data>/raft/snapshot`.
    fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    fn persist(&self, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join("snapshot.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        // The previous snapshot is kept (as the single node kept two): the
        // history log reaches back to it, so offline tools can rebuild from
        // it. It is linked, not moved, so the current snapshot exists at
        // every moment and the rename below replaces it atomically.
        let previous = self.dir.join(PREVIOUS_SNAPSHOT_FILE);
        let ignore_missing = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        ignore_missing(std::fs::remove_file(&previous))?;
        ignore_missing(std::fs::hard_link(self.snapshot_path(), &previous))?;
        std::fs::rename(&tmp, self.snapshot_path())?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// The member's current snapshot, in `<data>/raft/`.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// The one before it, in `<data>/raft/`.
pub const PREVIOUS_SNAPSHOT_FILE: &str = "snapshot.prev";

/// Reads a member snapshot file (offline tools): the service state it holds.
pub fn load_member_snapshot(
    path: &Path,
    engine: &EngineConfig,
    dedupe_capacity: usize,
) -> std::result::Result<ServiceState, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let (_, state) =
        restore_snapshot(&bytes, engine, dedupe_capacity).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(state)
}

/// The header and the service state of a member snapshot's bytes.
fn restore_snapshot(
    bytes: &[u8],
    engine: &EngineConfig,
    dedupe_capacity: usize,
) -> std::result::Result<(SnapshotHeader, ServiceState), String> {
    let (header, body) = parse_snapshot(bytes)?;
    let (_, snap) = decode_snapshot(body).map_err(|e| e.to_string())?;
    let state = ServiceState::restore(engine.clone(), snap, dedupe_capacity).map_err(|e| e.to_string())?;
    Ok((header, state))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        let a = self.shared.applied.read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ClusterResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut events = Vec::new();
        let last = {
            let mut a = self.shared.applied.write();
            let mut history = self.shared.history.lock();
            for entry in entries {
                responses.push(self.shared.apply_one(&mut a, &entry, &mut events, &mut history));
            }
            history.flush();
            a.last_applied.map_or(0, |l| l.index)
        };
        self.shared.hub.publish(events);
        self.shared.applied_index.send_replace(last);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let bytes = snapshot.into_inner();
        let (header, state) =
            restore_snapshot(&bytes, &self.shared.engine, self.shared.dedupe_capacity).map_err(sm_err)?;
        self.shared.persist(&bytes).map_err(sm_err)?;
        {
            let mut a = self.shared.applied.write();
            a.state = state;
            a.last_applied = meta.last_log_id;
            a.membership = meta.last_membership.clone();
            a.hash = parse_hash(&header.hash);
            a.last_now = Timestamp(header.last_now);
            self.shared.log_bytes_since_snapshot.store(0, std::sync::atomic::Ordering::Relaxed);
            self.shared.history.lock().continue_after_snapshot(a.state.last_seq());
            // Event numbers are replicated state: number on from the snapshot's.
            self.shared.hub.restart_at(a.state.next_event_seq());
        }
        self.shared.applied_index.send_replace(meta.last_log_id.map_or(0, |l| l.index));
        Ok(())
    }

    /// Read from `<data>/raft/snapshot` when asked (a member far behind, or
    /// start-up), so the snapshot is not held in memory beside the state.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let path = self.shared.snapshot_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snap_err(format!("read {}: {e}", path.display()))),
        };
        let (header, _) = parse_snapshot(&bytes).map_err(|e| snap_err(format!("{}: {e}", path.display())))?;
        Ok(Some(Snapshot { meta: header.meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}
