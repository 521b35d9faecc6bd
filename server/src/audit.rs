//! Offline reading of a data directory, for the report and export tools and
//! for audit: load a snapshot, replay the write-ahead log after it through
//! the same [`ServiceState::apply`] recovery uses, and read the state — without
//! starting a server or changing any file.
//!
//! [`ReplayFrom::Newest`] gives the state a restarted server would have.
//! [`ReplayFrom::Oldest`] rebuilds it from as far back as the directory allows
//! (an empty engine when the log still starts at record 1, else the oldest
//! snapshot kept), so that a day's ledger recomputed from the log can be
//! compared with the live one.

use crate::host::{empty_state, load_newest_snapshot, missing_records, replay_log, HostConfig, HostError};
use crate::snapshot::{list_snapshots, load_snapshot, SnapshotError};
use crate::state::ServiceState;
use crate::wal::{list_segments, WalError};
use linggong_engine::{LedgerDay, LedgerReport};

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
        }
    }
}

fn starting_state(config: &HostConfig, from: ReplayFrom) -> Result<ServiceState, AuditError> {
    match from {
        ReplayFrom::Newest => Ok(load_newest_snapshot(config)?.0),
        ReplayFrom::Oldest => {
            let wal_dir = config.wal_dir();
            let segments = list_segments(&wal_dir).map_err(|e| WalError::io("list", &wal_dir, e))?;
            let snapshots = list_snapshots(&config.snapshot_dir())?;
            let log_from_start = match segments.first() {
                Some((first, _)) => *first <= 1,
                None => snapshots.is_empty(),
            };
            if log_from_start {
                return Ok(empty_state(config));
            }
            let mut last_error = None;
            for (_, path) in snapshots.iter().rev() {
                match load_snapshot(path, &config.engine, config.dedupe_capacity) {
                    Ok(state) => return Ok(state),
                    Err(e) => last_error = Some(e),
                }
            }
            Err(match last_error {
                Some(e) => e.into(),
                None => AuditError::Unusable("the log does not start at record 1 and there is no snapshot".into()),
            })
        }
    }
}

/// The service state of a data directory, read offline: a snapshot and the
/// log after it. A torn tail (an interrupted last write) ends the read
/// without being repaired; any other damage is an error.
pub fn load_offline(config: &HostConfig, from: ReplayFrom) -> Result<ServiceState, AuditError> {
    let mut state = starting_state(config, from)?;
    let (outcome, _) = replay_log(&mut state, &config.wal_dir(), |events| events.clear())?;
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
