//! Offline reading of a data directory (either layout, see [`Layout`]), for
//! the report and export tools and for audit: load a snapshot, replay the log
//! of accepted commands after it (the single node's write-ahead log or a
//! member's history log) through
//! the same [`ServiceState::apply`] recovery uses, and read the state — without
//! starting a server or changing any file.
//!
//! [`ReplayFrom::Newest`] gives the state a restarted server would have.
//! [`ReplayFrom::Oldest`] rebuilds it from as far back as the directory allows
//! (an empty engine when the log still starts at record 1, else the oldest
//! snapshot kept), so that a day's ledger recomputed from the log can be
//! compared with the live one.

use crate::convert::wal::decode;
use crate::host::{empty_state, HostConfig, HostError};
use crate::layout::{Layout, SnapshotFile};
use crate::migrate::{load_newest_snapshot, missing_records, replay_log};
use crate::snapshot::SnapshotError;
use crate::state::ServiceState;
use crate::wal::{list_segments, scan, WalError};
use linggong_engine::Timestamp;
use linggong_engine::{LedgerDay, LedgerReport};
use linggong_lab::LoggedStep;

/// Where an offline read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The newest usable snapshot, as recovery does.
    Newest,
    /// An empty engine if the log starts at record 1, else the oldest snapshot kept.
    Oldest,
}

/// Why a data directory could not be read offline.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be read.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A snapshot could not be read.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Snapshots or the log are unusable, damaged, or do not join up.
    #[error("{0}")]
    Unusable(String),
    /// The county is not one of the data directory's counties.
    #[error("unknown county {0}")]
    UnknownCounty(u32),
}

impl From<HostError> for AuditError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Wal(e) => AuditError::Wal(e),
            HostError::Snapshot(e) => AuditError::Snapshot(e),
            HostError::Refused(m) => AuditError::Unusable(m),
            HostError::Member(e) => AuditError::Unusable(e.to_string()),
        }
    }
}

fn starting_state(config: &HostConfig, from: ReplayFrom) -> Result<ServiceState, AuditError> {
    let layout = Layout::of(&config.data_dir);
    if layout == Layout::SingleNode && from == ReplayFrom::Newest {
        return Ok(load_newest_snapshot(config)?.0);
    }
    let history = layout.history_dir(&config.data_dir);
    let segments = list_segments(&history).map_err(|e| WalError::io("list", &history, e))?;
    let snapshots = layout.snapshots(&config.data_dir)?;
    let first_record = segments.first().map(|(first, _)| *first);
    if from == ReplayFrom::Oldest && first_record.map_or(snapshots.is_empty(), |first| first <= 1) {
        return Ok(empty_state(config));
    }
    // Newest first for `Newest`; for `Oldest`, the oldest the log continues.
    let ordered: Vec<&SnapshotFile> = match from {
        ReplayFrom::Newest => snapshots.iter().collect(),
        ReplayFrom::Oldest => snapshots.iter().rev().collect(),
    };
    let mut last_error = None;
    for snapshot in ordered {
        match snapshot.load(&config.engine, config.dedupe_capacity) {
            Ok(state) if first_record.is_none_or(|first| first <= state.last_seq() + 1) => return Ok(state),
            Ok(state) => {
                last_error = Some(AuditError::Unusable(format!(
                    "{} ends at record {} but the log starts at {}",
                    snapshot.path.display(),
                    state.last_seq(),
                    first_record.unwrap_or(0)
                )))
            }
            Err(e) => last_error = Some(e.into()),
        }
    }
    match last_error {
        Some(e) => Err(e),
        None if from == ReplayFrom::Newest => Ok(empty_state(config)),
        None => Err(AuditError::Unusable("the log does not start at record 1 and there is no snapshot".into())),
    }
}

/// The service state of a data directory, read offline: a snapshot and the
/// log after it. A torn tail (an interrupted last write) ends the read
/// without being repaired; any other damage is an error.
pub fn load_offline(config: &HostConfig, from: ReplayFrom) -> Result<ServiceState, AuditError> {
    let mut state = starting_state(config, from)?;
    let history = Layout::of(&config.data_dir).history_dir(&config.data_dir);
    let (outcome, _) = replay_log(&mut state, &history, |events| events.clear())?;
    if let Some(problem) = outcome.problem.as_ref().filter(|p| !p.is_torn_tail()) {
        return Err(AuditError::Unusable(problem.to_string()));
    }
    if let Some(missing) = missing_records(&outcome, state.last_seq()) {
        return Err(AuditError::Unusable(missing));
    }
    Ok(state)
}

/// One county's ledger for one day, rebuilt from the oldest state the data
/// directory holds and the whole log after it.
pub fn rebuild_ledger(config: &HostConfig, day: LedgerDay, county: u32) -> Result<LedgerReport, AuditError> {
    let state = load_offline(config, ReplayFrom::Oldest)?;
    state.engine().ledger_report(day, county).ok_or(AuditError::UnknownCounty(county))
}

/// A window of the log, read offline for the policy lab.
pub struct LogWindow {
    /// The state when the window opens (before its first record).
    pub start: ServiceState,
    /// The window's records, in log order.
    pub steps: Vec<LoggedStep>,
    /// The live state when the window closes (after its last record).
    pub end: ServiceState,
}

/// The records logged in `[from, to)` with the state before and after them,
/// rebuilt from the oldest state the data directory holds. Nothing is written.
pub fn read_window(config: &HostConfig, from: Timestamp, to: Timestamp) -> Result<LogWindow, AuditError> {
    let mut state = starting_state(config, ReplayFrom::Oldest)?;
    if state.last_seq() > 0 && state.engine().ledger().open_day().is_some_and(|d| d >= LedgerDay::of(from)) {
        return Err(AuditError::Unusable(
            "the oldest state kept is after the window's start: the log before it was compacted away".into(),
        ));
    }
    let mut start: Option<ServiceState> = None;
    let mut steps = Vec::new();
    let mut events = Vec::new();
    let history = Layout::of(&config.data_dir).history_dir(&config.data_dir);
    let outcome = scan(&history, state.last_seq(), |seq, payload| {
        let logged = decode(payload).map_err(|e| format!("undecodable command: {e}"))?;
        if logged.now >= to {
            return Ok(());
        }
        if seq != state.last_seq() + 1 {
            return Err(format!("sequence gap: expected {}, found {seq}", state.last_seq() + 1));
        }
        if logged.now >= from && start.is_none() {
            start = Some(state.clone());
        }
        state.apply(&logged, &mut events).map_err(|e| format!("replay diverged: {e}"))?;
        events.clear();
        if logged.now >= from {
            steps.push(LoggedStep { now: logged.now, command: logged.command });
        }
        Ok(())
    })?;
    if let Some(problem) = outcome.problem.as_ref().filter(|p| !p.is_torn_tail()) {
        return Err(AuditError::Unusable(problem.to_string()));
    }
    let start = start.unwrap_or_else(|| state.clone());
    Ok(LogWindow { start, steps, end: state })
}
