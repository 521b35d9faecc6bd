//! Migration of a data directory of the single-node layout (`wal/` and
//! `snapshots/`, written before every server was a Raft member) into the
//! Raft layout (`raft/`).
//!
//! The old state is recovered as the single node recovered it (newest usable
//! snapshot, strict replay of the log after it, torn tail cut) and becomes the
//! state machine's base: the state before the Raft log's first entry. The
//! server then stores a Raft snapshot holding it, and only after that moves
//! the old files aside into `pre-raft/` (kept, never read again). A crash
//! before the snapshot is stored finds the old files in place and the Raft
//! state machine still without a snapshot, so the next start uses the same
//! base again, and the entries already in the Raft log apply on top of it as
//! before; a crash after it finds a snapshot, which always wins.

use crate::convert::wal::decode;
use crate::host::{empty_state, HostConfig, HostError, RecoveryReport};
use crate::layout::{has_single_node_data, single_node_snapshot_dir, Layout};
use crate::snapshot::{list_snapshots, load_snapshot};
use crate::state::{SequencedEvent, ServiceState};
use crate::wal::{scan, ScanOutcome, WalError};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Directory, under the data directory, the single-node files move to.
pub const PRE_RAFT_DIR: &str = "pre-raft";

/// The member's snapshot, `<data>/raft/snapshot`.
pub fn raft_snapshot_path(config: &HostConfig) -> PathBuf {
    config.data_dir.join("raft").join(crate::raft::state_machine::SNAPSHOT_FILE)
}

/// Whether the member's state machine has a snapshot.
pub fn has_raft_snapshot(config: &HostConfig) -> bool {
    raft_snapshot_path(config).is_file()
}

/// The state to migrate, when the directory holds single-node data and its
/// Raft state machine has no snapshot yet. Blocking (recovers the old state).
pub fn pre_raft_base(config: &HostConfig) -> Result<Option<(ServiceState, RecoveryReport)>, HostError> {
    if has_raft_snapshot(config) || !has_single_node_data(&config.data_dir) {
        return Ok(None);
    }
    recover_pre_raft(config, |events| events.clear()).map(Some)
}

/// Moves `wal/` and `snapshots/` into `pre-raft/` (once a Raft snapshot holds
/// their state). Returns where they went; nothing to move is not an error.
pub fn retire_pre_raft(config: &HostConfig) -> std::io::Result<PathBuf> {
    let to = config.data_dir.join(PRE_RAFT_DIR);
    std::fs::create_dir_all(&to)?;
    for from in [Layout::SingleNode.log_dir(&config.data_dir), single_node_snapshot_dir(&config.data_dir)] {
        let Some(name) = from.file_name() else { continue };
        if from.is_dir() {
            let target = free_name(&to.join(name));
            std::fs::rename(&from, &target)?;
        }
    }
    std::fs::File::open(&to)?.sync_all()?;
    std::fs::File::open(&config.data_dir)?.sync_all()?;
    Ok(to)
}

/// `path`, or `path.1`, `path.2`… if it is taken.
fn free_name(path: &Path) -> PathBuf {
    let mut candidate = path.to_path_buf();
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = path.with_extension(n.to_string());
    }
    candidate
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

/// Recovers the state of a data directory's single-node layout (`snapshots/`
/// and `wal/`): the newest usable snapshot, then the log after it, strictly;
/// a torn tail (an interrupted last write) is cut, a copy kept. Blocking.
/// `on_events` gets the replayed commands' events, in batches.
pub fn recover_pre_raft(
    config: &HostConfig,
    on_events: impl FnMut(&mut Vec<SequencedEvent>),
) -> Result<(ServiceState, RecoveryReport), HostError> {
    let started = Instant::now();
    let (mut state, mut report) = load_newest_snapshot(config)?;
    let (outcome, replayed) = replay_log(&mut state, &Layout::SingleNode.log_dir(&config.data_dir), on_events)?;
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
    report.last_seq = state.last_seq();
    report.elapsed = started.elapsed();
    Ok((state, report))
}

/// The newest usable snapshot of a single-node data directory (an empty
/// state if there is none); refuses when snapshots exist but none can be loaded.
pub(crate) fn load_newest_snapshot(config: &HostConfig) -> Result<(ServiceState, RecoveryReport), HostError> {
    let mut report = RecoveryReport::default();
    let snapshots = list_snapshots(&single_node_snapshot_dir(&config.data_dir))?;
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
