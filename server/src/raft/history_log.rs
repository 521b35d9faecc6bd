//! A cluster member's history log (`<data>/raft/history/`): the record of
//! every command the state machine applied and the engine accepted, in the
//! single node's WAL record encoding (command, `now`, actor, request key and
//! the effect computed from the outcome), so [`crate::history::history`]
//! reads it exactly as it reads the single node's log. Refused commands,
//! remembered repeats and commands that changed nothing are never recorded.
//!
//! Sequence numbers are the service sequence ([`Applied::seq`](crate::state::Applied)):
//! gap-free, the same on every replica for the same command, and the number the
//! single node would give it. The Raft log is the source of truth, so records
//! are written (one `write` per applied batch, visible to readers at once)
//! without an fdatasync of their own; the log is synced before a snapshot is
//! stored, so what a snapshot covers is on disk when the Raft entries behind
//! it may be purged. At start-up the log is read once: a torn or damaged tail
//! is cut (a copy kept), and records openraft applies again after the last
//! snapshot are skipped by sequence number, so a restart shows no duplicate
//! and no gap. When the log cannot continue the state (a snapshot was
//! installed from the leader, or records it covers were lost) the old
//! segments are deleted and the log restarts after the snapshot: the history
//! before it is not available on this member.
//!
//! Retention mirrors the single node, which keeps two snapshots and deletes
//! log segments wholly covered by the older: when a snapshot is built,
//! segments wholly covered by the previous snapshot are deleted. A write
//! error stops the log (later records are not written) without stopping the
//! state machine; readers are told, and the next start-up restarts the log.

use crate::wal::{
    delete_covered_segments, list_segments, repair, scan, Durability, StdStorage, WalConfig, WalError, WalWriter,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The writer of a member's history log.
pub struct HistoryLog {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Option<WalWriter>,
    /// Last sequence number in the log (the one before its first record when empty).
    last_seq: u64,
    /// Service sequence of the previous snapshot: segments it covers wholly go at the next one.
    previous_snapshot: u64,
    failed: Option<String>,
    pending: Vec<(u64, Vec<u8>)>,
}

impl HistoryLog {
    /// Opens the log in `dir` for a state machine whose state ends at service
    /// sequence `state_seq` (its snapshot's), repairing a damaged tail and
    /// restarting the log after `state_seq` when it cannot continue it.
    pub fn open(dir: &Path, state_seq: u64, segment_bytes: u64) -> Result<HistoryLog, WalError> {
        std::fs::create_dir_all(dir).map_err(|e| WalError::io("create", dir, e))?;
        let outcome = scan(dir, u64::MAX, |_, _| Ok(()))?;
        let outcome = match &outcome.problem {
            Some(problem) => {
                tracing::warn!(
                    problem = %problem,
                    "the history log ends in a damaged record (it is written without fsync); cut there, a copy kept"
                );
                repair(dir)?;
                scan(dir, u64::MAX, |_, _| Ok(()))?
            }
            None => outcome,
        };
        let first = outcome.segments.first().map(|s| s.first_seq);
        let last = outcome.last_seq.or(first.map(|f| f.saturating_sub(1)));
        let mut log = HistoryLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            writer: None,
            last_seq: 0,
            previous_snapshot: state_seq,
            failed: None,
            pending: Vec::new(),
        };
        match (first, last) {
            (Some(first), Some(last)) if first <= state_seq + 1 && last >= state_seq => {
                let tail = outcome.segments.last().map(|s| (s.path.clone(), s.valid_len));
                log.writer = Some(log.writer_at(tail, last + 1)?);
                log.last_seq = last;
            }
            (None, _) | (_, None) => log.restart_at(state_seq + 1)?,
            (Some(first), Some(last)) => {
                tracing::warn!(
                    first,
                    last,
                    state_seq,
                    "the history log does not continue the state machine's snapshot: it restarts after it, the \
                     history before it is not available on this member"
                );
                log.restart_at(state_seq + 1)?;
            }
        }
        Ok(log)
    }

    fn writer_at(&self, tail: Option<(PathBuf, u64)>, next_seq: u64) -> Result<WalWriter, WalError> {
        let config =
            WalConfig { dir: self.dir.clone(), segment_bytes: self.segment_bytes, durability: Durability::None };
        WalWriter::open(Arc::new(StdStorage), config, tail, next_seq)
    }

    /// Deletes every segment and starts an empty one at `next_seq`.
    fn restart_at(&mut self, next_seq: u64) -> Result<(), WalError> {
        self.writer = None;
        for (_, path) in list_segments(&self.dir).map_err(|e| WalError::io("list", &self.dir, e))? {
            std::fs::remove_file(&path).map_err(|e| WalError::io("remove", &path, e))?;
        }
        self.writer = Some(self.writer_at(None, next_seq)?);
        self.last_seq = next_seq - 1;
        self.failed = None;
        Ok(())
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Last sequence number recorded.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Why the log stopped, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Queues the record `payload` of the command applied as service sequence
    /// `seq`; a sequence number the log already has is skipped (openraft
    /// applies the entries after the last snapshot again at start-up).
    pub fn record(&mut self, seq: u64, payload: Vec<u8>) {
        let next = self.pending.last().map_or(self.last_seq, |(s, _)| *s) + 1;
        if seq < next {
            return;
        }
        if seq > next {
            // Cannot happen while the log keeps up with the state machine
            // (open and `continue_after_snapshot` line them up).
            self.fail(format!("record {seq} does not follow {}", next - 1));
            return;
        }
        self.pending.push((seq, payload));
    }

    /// Writes the queued records (no fsync).
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let Some(writer) = self.writer.as_mut().filter(|_| self.failed.is_none()) else { return };
        match writer.append(pending.iter().map(|(s, p)| (*s, p.as_slice()))) {
            Ok(()) => self.last_seq = pending.last().map_or(self.last_seq, |(s, _)| *s),
            Err(e) => self.fail(e.to_string()),
        }
    }

    fn fail(&mut self, message: String) {
        if self.failed.is_none() {
            tracing::error!(error = %message, "the history log stopped; it restarts at the next start-up");
            self.failed = Some(message);
            self.writer = None;
        }
    }

    /// Syncs what was written: before a snapshot covering it is stored.
    pub fn sync(&mut self) {
        if let Some(writer) = self.writer.as_mut() {
            if let Err(e) = writer.sync_now() {
                self.fail(e.to_string());
            }
        }
    }

    /// A snapshot at service sequence `snapshot_seq` was stored: deletes the
    /// segments wholly covered by the previous one. Returns how many.
    pub fn snapshot_stored(&mut self, snapshot_seq: u64) -> u64 {
        let deleted = delete_covered_segments(&self.dir, self.previous_snapshot);
        self.previous_snapshot = snapshot_seq;
        deleted
    }

    /// A snapshot at service sequence `snapshot_seq` was installed: the log
    /// continues if it reaches the snapshot, else restarts after it.
    pub fn continue_after_snapshot(&mut self, snapshot_seq: u64) {
        self.flush();
        self.previous_snapshot = snapshot_seq;
        if self.failed.is_none() && self.last_seq >= snapshot_seq {
            return;
        }
        tracing::info!(
            snapshot_seq,
            "installed a snapshot past the history log: it restarts after it, the history before it is not available \
             on this member"
        );
        if let Err(e) = self.restart_at(snapshot_seq + 1) {
            self.fail(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(dir: &Path) -> Vec<u64> {
        let mut out = Vec::new();
        let outcome = scan(dir, 0, |seq, _| {
            out.push(seq);
            Ok(())
        })
        .expect("scan");
        assert_eq!(outcome.problem, None);
        out
    }

    fn record_range(log: &mut HistoryLog, range: std::ops::RangeInclusive<u64>) {
        for seq in range {
            log.record(seq, format!("record {seq}").into_bytes());
        }
        log.flush();
    }

    #[test]
    fn records_again_after_a_restart_are_skipped_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("temp dir");
        let history = dir.path().join("history");
        {
            let mut log = HistoryLog::open(&history, 0, 1 << 20).expect("opens");
            record_range(&mut log, 1..=10);
            assert_eq!(log.last_seq(), 10);
        }
        // Start-up after a snapshot at 4: openraft applies 5.. again.
        let mut log = HistoryLog::open(&history, 4, 1 << 20).expect("reopens");
        record_range(&mut log, 5..=12);
        assert_eq!(seqs(&history), (1..=12).collect::<Vec<_>>(), "no duplicate, no gap");
        drop(log);

        let (_, last) = list_segments(&history).expect("list").pop().expect("a segment");
        let len = std::fs::metadata(&last).expect("meta").len();
        std::fs::OpenOptions::new().write(true).open(&last).expect("open").set_len(len - 3).expect("cut");
        let mut log = HistoryLog::open(&history, 4, 1 << 20).expect("reopens after a torn tail");
        assert_eq!(log.last_seq(), 11, "the torn record is cut");
        record_range(&mut log, 5..=13);
        assert_eq!(seqs(&history), (1..=13).collect::<Vec<_>>(), "the cut record is written again");
    }

    #[test]
    fn a_log_that_cannot_continue_the_snapshot_restarts_after_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let history = dir.path().join("history");
        {
            let mut log = HistoryLog::open(&history, 0, 1 << 20).expect("opens");
            record_range(&mut log, 1..=5);
        }
        let mut log = HistoryLog::open(&history, 9, 1 << 20).expect("reopens behind the snapshot");
        assert_eq!(log.last_seq(), 9);
        record_range(&mut log, 8..=11);
        assert_eq!(seqs(&history), vec![10, 11]);

        log.continue_after_snapshot(11);
        record_range(&mut log, 12..=12);
        assert_eq!(seqs(&history), vec![10, 11, 12], "a snapshot the log reaches keeps it");
        log.continue_after_snapshot(20);
        record_range(&mut log, 21..=22);
        assert_eq!(seqs(&history), vec![21, 22], "a snapshot past the log restarts it");

        log.record(30, b"gap".to_vec());
        log.flush();
        assert!(log.failure().is_some(), "a gap stops the log");
        assert_eq!(seqs(&history), vec![21, 22]);
        drop(log);
        let log = HistoryLog::open(&history, 25, 1 << 20).expect("reopens");
        assert_eq!((log.last_seq(), log.failure()), (25, None));
    }

    #[test]
    fn segments_wholly_covered_by_the_previous_snapshot_are_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let history = dir.path().join("history");
        let mut log = HistoryLog::open(&history, 0, 200).expect("opens");
        for seq in 1..=40 {
            record_range(&mut log, seq..=seq);
        }
        let segments = list_segments(&history).expect("list").len();
        assert!(segments > 4, "small segments roll: {segments}");
        assert_eq!(log.snapshot_stored(20), 0, "nothing is covered by the state the log started at");
        assert_eq!(seqs(&history).first(), Some(&1));
        assert!(log.snapshot_stored(40) > 0);
        let kept = seqs(&history);
        assert!(kept.first().is_some_and(|f| *f > 1 && *f <= 21), "records after the previous snapshot kept: {kept:?}");
        assert_eq!(kept.last(), Some(&40));
    }
}
