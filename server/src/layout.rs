//! Which layout a data directory has, and where each layout keeps the log of
//! accepted commands and the snapshots that offline tools read.
//!
//! Every server now runs as a Raft member and writes the member layout
//! (`raft/`: the Raft log in `raft/wal/`, the history log of accepted
//! commands in `raft/history/`, snapshots `raft/snapshot` and
//! `raft/snapshot.prev`). A directory last written before that has the
//! single-node layout (`wal/`, `snapshots/`) until a server migrates it
//! (`crate::migrate`); the offline tools read both.

use crate::raft::state_machine::{load_member_snapshot, PREVIOUS_SNAPSHOT_FILE, SNAPSHOT_FILE};
use crate::snapshot::{list_snapshots, load_snapshot, SnapshotError};
use crate::state::ServiceState;
use linggong_engine::EngineConfig;
use std::path::{Path, PathBuf};

/// The single-node layout's log (`wal/`) and snapshot (`snapshots/`) directories.
const SINGLE_NODE_LOG_DIR: &str = "wal";
const SINGLE_NODE_SNAPSHOT_DIR: &str = "snapshots";

/// The single-node layout's snapshot directory, `<data>/snapshots` (its log
/// is [`Layout::log_dir`] of [`Layout::SingleNode`]).
pub fn single_node_snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SINGLE_NODE_SNAPSHOT_DIR)
}

/// A data directory's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `wal/` and `snapshots/`, written by servers before every server was a Raft member.
    SingleNode,
    /// `raft/`: a Raft member's (a lone one by default).
    Member,
}

/// A snapshot an offline read may start from.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    /// Its path.
    pub path: PathBuf,
    layout: Layout,
}

impl SnapshotFile {
    /// The state it holds.
    pub fn load(&self, engine: &EngineConfig, dedupe_capacity: usize) -> Result<ServiceState, SnapshotError> {
        match self.layout {
            Layout::SingleNode => load_snapshot(&self.path, engine, dedupe_capacity),
            Layout::Member => load_member_snapshot(&self.path, engine, dedupe_capacity)
                .map_err(|reason| SnapshotError::Invalid { path: self.path.display().to_string(), reason }),
        }
    }
}

impl Layout {
    /// The layout of `data_dir`: the member layout unless the directory has
    /// single-node data and no `raft/` (a fresh directory gets the member layout).
    pub fn of(data_dir: &Path) -> Layout {
        if has_single_node_data(data_dir) && !data_dir.join("raft").is_dir() {
            Layout::SingleNode
        } else {
            Layout::Member
        }
    }

    /// The log of accepted commands in the WAL record encoding, numbered by
    /// service sequence (`wal/`, or the member's history log `raft/history/`).
    pub fn history_dir(self, data_dir: &Path) -> PathBuf {
        match self {
            Layout::SingleNode => data_dir.join(SINGLE_NODE_LOG_DIR),
            Layout::Member => data_dir.join("raft").join("history"),
        }
    }

    /// The log that recovery depends on (`wal/`, or the Raft log `raft/wal/`),
    /// for `wal verify` and `wal repair`.
    pub fn log_dir(self, data_dir: &Path) -> PathBuf {
        match self {
            Layout::SingleNode => data_dir.join(SINGLE_NODE_LOG_DIR),
            Layout::Member => data_dir.join("raft").join("wal"),
        }
    }

    /// The snapshots kept, newest first.
    pub fn snapshots(self, data_dir: &Path) -> Result<Vec<SnapshotFile>, SnapshotError> {
        let layout = self;
        Ok(match self {
            Layout::SingleNode => list_snapshots(&single_node_snapshot_dir(data_dir))?
                .into_iter()
                .map(|(_, path)| SnapshotFile { path, layout })
                .collect(),
            Layout::Member => [SNAPSHOT_FILE, PREVIOUS_SNAPSHOT_FILE]
                .into_iter()
                .map(|name| data_dir.join("raft").join(name))
                .filter(|p| p.is_file())
                .map(|path| SnapshotFile { path, layout })
                .collect(),
        })
    }
}

/// Whether `data_dir` holds single-node data (entries in `wal/` or `snapshots/`).
pub fn has_single_node_data(data_dir: &Path) -> bool {
    let has_entries = |dir: PathBuf| std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    has_entries(Layout::SingleNode.log_dir(data_dir)) || has_entries(single_node_snapshot_dir(data_dir))
}
