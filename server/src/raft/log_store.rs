//! The Raft log on disk, kept by the write-ahead log module: entries, the
//! truncation of conflicting suffixes, purges and the committed log id are WAL
//! records (CRC32C frames with consecutive sequence numbers) in segment files
//! under `<data>/raft/wal/`, written by a group-commit thread
//! ([`crate::wal::GroupWriter`]); the vote is `<data>/raft/vote`, replaced
//! atomically (write, fsync, rename, fsync the directory) before `save_vote`
//! returns.
//!
//! A record's payload is binary: a tag byte, then for an entry its term,
//! leader node, index (u64 little-endian each) and kind (blank, normal: the
//! WAL encoding of the [`crate::convert::wal::LoggedCommand`] as is, or
//! membership: its JSON, rare); for a truncation the first index removed; for
//! a purge or the committed id a log id.
//!
//! Guarantees: `append` returns at once and openraft's `LogFlushed` callback
//! runs only after the fdatasync covering the entries (concurrent appends
//! share one); a truncation and a purge are durable before `truncate` /
//! `purge` return, so a truncated suffix never reappears after a restart; a
//! purge deletes the segments whose entries are all purged (never the newest).
//! At start-up the log is read strictly: a torn tail is cut off with a copy
//! kept (`<segment>.damaged`), anything else damaged refuses to start (see
//! `linggong-server wal verify --raft`). Any write or fsync error is
//! fail-stop: the store refuses every later write.

use super::{ClusterCommand, TypeConfig};
use crate::wal::{
    cut_torn_tail, delete_covered_segments, list_segments, scan, Durability, GroupWriter, Storage, WalConfig, WalError,
    WalWriter, MAX_RECORD_BYTES,
};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::File;
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type NodeId = u64;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;

const TAG_ENTRY: u8 = 1;
const TAG_TRUNCATE: u8 = 2;
const TAG_PURGE: u8 = 3;
const TAG_COMMITTED: u8 = 4;
const TAG_NOTHING_COMMITTED: u8 = 5;
const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

/// One record of the Raft log.
#[derive(Debug)]
pub enum Record {
    /// An appended entry.
    Append(Entry<TypeConfig>),
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to this log id are gone (covered by a snapshot).
    Purge(LogId<NodeId>),
    /// The committed log id.
    Committed(Option<LogId<NodeId>>),
}

fn put_log_id(out: &mut Vec<u8>, id: &LogId<NodeId>) {
    out.extend_from_slice(&id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
}

fn get_u64(bytes: &[u8], at: usize) -> std::result::Result<u64, String> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("record too short ({} bytes)", bytes.len()))
}

fn get_log_id(bytes: &[u8], at: usize) -> std::result::Result<LogId<NodeId>, String> {
    Ok(LogId::new(CommittedLeaderId::new(get_u64(bytes, at)?, get_u64(bytes, at + 8)?), get_u64(bytes, at + 16)?))
}

impl Record {
    /// The record's payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Append(entry) => {
                out.push(TAG_ENTRY);
                put_log_id(&mut out, &entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => out.push(KIND_BLANK),
                    EntryPayload::Normal(c) => {
                        out.push(KIND_NORMAL);
                        out.extend_from_slice(&c.payload);
                    }
                    EntryPayload::Membership(m) => {
                        out.push(KIND_MEMBERSHIP);
                        out.extend_from_slice(&serde_json::to_vec(m).unwrap_or_default());
                    }
                }
            }
            Record::Truncate(index) => {
                out.push(TAG_TRUNCATE);
                out.extend_from_slice(&index.to_le_bytes());
            }
            Record::Purge(id) => {
                out.push(TAG_PURGE);
                put_log_id(&mut out, id);
            }
            Record::Committed(Some(id)) => {
                out.push(TAG_COMMITTED);
                put_log_id(&mut out, id);
            }
            Record::Committed(None) => out.push(TAG_NOTHING_COMMITTED),
        }
        out
    }

    /// Decodes a payload written by [`Record::encode`].
    pub fn decode(bytes: &[u8]) -> std::result::Result<Record, String> {
        match bytes.first() {
            Some(&TAG_ENTRY) => {
                let log_id = get_log_id(bytes, 1)?;
                let body = &bytes[bytes.len().min(26)..];
                let payload = match bytes.get(25) {
                    Some(&KIND_BLANK) => EntryPayload::Blank,
                    Some(&KIND_NORMAL) => EntryPayload::Normal(ClusterCommand { payload: body.to_vec() }),
                    Some(&KIND_MEMBERSHIP) => EntryPayload::Membership(
                        serde_json::from_slice(body).map_err(|e| format!("undecodable membership: {e}"))?,
                    ),
                    other => return Err(format!("unknown entry kind {other:?}")),
                };
                Ok(Record::Append(Entry { log_id, payload }))
            }
            Some(&TAG_TRUNCATE) => Ok(Record::Truncate(get_u64(bytes, 1)?)),
            Some(&TAG_PURGE) => Ok(Record::Purge(get_log_id(bytes, 1)?)),
            Some(&TAG_COMMITTED) => Ok(Record::Committed(Some(get_log_id(bytes, 1)?))),
            Some(&TAG_NOTHING_COMMITTED) => Ok(Record::Committed(None)),
            other => Err(format!("unknown record tag {other:?}")),
        }
    }
}

/// Why the Raft log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The log could not be read or written.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The log is damaged (anything but a torn tail), or in an unknown layout.
    #[error("Raft log: {0}; refusing to start")]
    Refused(String),
}

/// Where and how the Raft log is written.
#[derive(Clone)]
pub struct LogOptions {
    /// The member's Raft directory (`<data>/raft`).
    pub dir: PathBuf,
    /// File layer (faults can be injected in tests).
    pub storage: Arc<dyn Storage>,
    /// Segment size at which a new segment is started, bytes.
    pub segment_bytes: u64,
    /// Sync policy; `always` for a log whose acknowledgements mean "on disk".
    pub durability: Durability,
    /// Counts the log's writes and syncs (metrics).
    pub stats: Arc<crate::wal::WalStats>,
}

impl LogOptions {
    /// The segment directory, `<raft dir>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }
}

struct Inner {
    dir: PathBuf,
    wal_dir: PathBuf,
    writer: GroupWriter,
    /// Sequence number the next record will get (the writer numbers the same way).
    next_seq: u64,
    /// Raft index of every entry record still on disk, by sequence number (for purging segments).
    entry_seqs: BTreeMap<u64, u64>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

/// The Raft log store; clones share the same log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Checks one record's payload (for `wal verify --raft`).
pub fn verify_record(payload: &[u8]) -> std::result::Result<(), String> {
    Record::decode(payload).map(|_| ())
}

impl LogStore {
    /// Opens (or creates) the log, recovering entries, vote and committed id.
    pub fn open(options: &LogOptions) -> std::result::Result<LogStore, LogStoreError> {
        let dir = &options.dir;
        std::fs::create_dir_all(dir).map_err(|e| WalError::io("create", dir, e))?;
        if dir.join("log").is_file() {
            return Err(LogStoreError::Refused(format!(
                "{} is a Raft log of an earlier single-file layout, which this version does not read",
                dir.join("log").display()
            )));
        }
        let wal_dir = options.wal_dir();
        let mut entries = BTreeMap::new();
        let mut entry_seqs = BTreeMap::new();
        let (mut last_purged, mut committed) = (None, None);
        let outcome = scan(&wal_dir, 0, |seq, payload| {
            match Record::decode(payload)? {
                Record::Append(entry) => {
                    entry_seqs.insert(seq, entry.log_id.index);
                    entries.insert(entry.log_id.index, entry);
                }
                Record::Truncate(index) => {
                    entries.split_off(&index);
                }
                Record::Purge(log_id) => {
                    entries = entries.split_off(&(log_id.index + 1));
                    last_purged = Some(log_id);
                }
                Record::Committed(c) => committed = c,
            }
            Ok(())
        })?;
        if let Some(problem) = &outcome.problem {
            if !problem.is_torn_tail() {
                return Err(LogStoreError::Refused(problem.to_string()));
            }
            cut_torn_tail(problem, "Raft log")?;
        }
        let tail = list_segments(&wal_dir).map_err(|e| WalError::io("list", &wal_dir, e))?.pop().map(|(_, path)| {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            (path, len)
        });
        let next_seq = outcome.last_seq.map_or(1, |s| s + 1);
        let config =
            WalConfig { dir: wal_dir.clone(), segment_bytes: options.segment_bytes, durability: options.durability };
        let wal = WalWriter::open(options.storage.clone(), config, tail, next_seq)?;
        let writer = GroupWriter::start("linggong-raft-log", wal, next_seq, options.stats.clone())
            .map_err(|e| WalError::io("spawn", &wal_dir, e))?;
        let vote_path = dir.join("vote");
        let vote = match std::fs::read(&vote_path) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| LogStoreError::Refused(format!("{}: undecodable vote: {e}", vote_path.display())))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(WalError::io("read", &vote_path, e).into()),
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                wal_dir,
                writer,
                next_seq,
                entry_seqs,
                entries,
                last_purged,
                committed,
                vote,
            })),
        })
    }

    /// Index of the last entry (or of the last purged one), for metrics.
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.inner.lock();
        inner.entries.keys().next_back().copied().or(inner.last_purged.map(|l| l.index))
    }
}

fn write_error(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

impl Inner {
    /// Numbers `records` (in the writer's order: call with the lock held) and
    /// returns their payloads; refuses once the log has failed.
    fn number(&mut self, records: &[Record]) -> std::io::Result<Vec<Vec<u8>>> {
        if let Some(f) = self.writer.failure() {
            return Err(write_error(format!("the Raft log has failed earlier: {f}")));
        }
        let mut payloads = Vec::with_capacity(records.len());
        for r in records {
            let p = r.encode();
            if p.len() > MAX_RECORD_BYTES {
                return Err(write_error(format!("a Raft log record of {} bytes is over the maximum", p.len())));
            }
            if let Record::Append(e) = r {
                self.entry_seqs.insert(self.next_seq, e.log_id.index);
            }
            self.next_seq += 1;
            payloads.push(p);
        }
        Ok(payloads)
    }

    /// Writes `records` and waits until they are durable.
    fn write_durably(&mut self, records: &[Record]) -> std::io::Result<u64> {
        let payloads = self.number(records)?;
        self.writer.submit_and_wait(payloads).map_err(write_error)
    }

    /// Deletes the segments whose entries are all at or below the purge point
    /// and that end before `purge_seq` (the purge record).
    fn delete_purged_segments(&mut self, purge_seq: u64) {
        let Some(purged) = self.last_purged.map(|l| l.index) else { return };
        let first_live = self.entry_seqs.iter().find(|(_, &index)| index > purged).map_or(purge_seq, |(&s, _)| s);
        let covered = first_live.min(purge_seq).saturating_sub(1);
        if delete_covered_segments(&self.wal_dir, covered) > 0 {
            if let Some((first, _)) = list_segments(&self.wal_dir).ok().and_then(|s| s.into_iter().next()) {
                self.entry_seqs = self.entry_seqs.split_off(&first);
            }
        }
    }
}

fn io_error(e: &std::io::Error) -> StorageError<NodeId> {
    StorageError::IO { source: StorageIOError::write_logs(e) }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let inner = self.inner.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        let mut inner = self.inner.lock();
        let dir = inner.dir.clone();
        let write = || -> std::io::Result<()> {
            let tmp = dir.join("vote.tmp");
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(vote).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, dir.join("vote"))?;
            sync_dir(&dir)
        };
        write().map_err(|e| StorageError::IO { source: StorageIOError::write_vote(&e) })?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        Ok(self.inner.lock().vote)
    }

    /// Queued behind what was appended before, not waited for and costing no
    /// fdatasync of its own (synced with the next entries): openraft does
    /// not need the committed id durable (a lower one after a crash is re-learnt).
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        let mut inner = self.inner.lock();
        let payloads = inner.number(&[Record::Committed(committed)]).map_err(|e| io_error(&e))?;
        inner.writer.submit_unsynced(payloads);
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock();
        let records: Vec<Record> = entries.into_iter().map(Record::Append).collect();
        let payloads = match inner.number(&records) {
            Ok(p) => p,
            Err(e) => {
                let err = io_error(&e);
                callback.log_io_completed(Err(e));
                return Err(err);
            }
        };
        inner.writer.submit(payloads, Box::new(move |r| callback.log_io_completed(r.map(|_| ()).map_err(write_error))));
        for r in records {
            if let Record::Append(e) = r {
                inner.entries.insert(e.log_id.index, e);
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.write_durably(&[Record::Truncate(log_id.index)]).map_err(|e| io_error(&e))?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut inner = self.inner.lock();
        let committed = inner.committed;
        let last =
            inner.write_durably(&[Record::Purge(log_id), Record::Committed(committed)]).map_err(|e| io_error(&e))?;
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        inner.delete_purged_segments(last - 1);
        Ok(())
    }
}
