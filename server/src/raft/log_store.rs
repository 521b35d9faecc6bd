//! The Raft log on disk: entries, the vote and the committed index, in a
//! CRC32C-framed append-only file with strict recovery and torn-tail
//! truncation, like the write-ahead log.
//!
//! Layout under `<data>/raft/`: `log` holds records `[len u32][crc32c u32][JSON
//! body]`, each an appended entry, a truncation (entries from an index on are
//! gone), a purge (entries up to a log id are gone) or the committed log id;
//! `vote` holds the vote, replaced atomically (write, fsync, rename, fsync the
//! directory) before `save_vote` returns.
//!
//! Guarantees: `append` calls its callback only after the entries are
//! fdatasynced; a truncation is durable before `truncate` returns, so a
//! truncated suffix never reappears after a restart; the file is rewritten
//! (atomically) with the surviving entries after a purge. A record that fails
//! its checksum at the very end of the file is a torn write and is cut off at
//! start-up; one in the middle refuses to start. Any write or fsync error is
//! fail-stop: the store refuses every later write.

use super::TypeConfig;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type NodeId = u64;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;

#[derive(Serialize, Deserialize)]
enum Record {
    Append(Entry<TypeConfig>),
    Truncate(u64),
    Purge(LogId<NodeId>),
    Committed(Option<LogId<NodeId>>),
}

/// Why the Raft log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Which file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A record before the end of the log is damaged.
    #[error("{path}: damaged record at offset {offset}: {reason}; refusing to start")]
    Damaged {
        /// Which file.
        path: String,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    failed: Option<String>,
}

/// The Raft log store; clones share the same log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> LogStoreError {
    LogStoreError::Io { op, path: path.display().to_string(), source }
}

fn frame(record: &Record, out: &mut Vec<u8>) {
    let body = serde_json::to_vec(record).unwrap_or_default();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, recovering entries, vote and committed id.
    pub fn open(dir: &Path) -> std::result::Result<LogStore, LogStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let path = dir.join("log");
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io("read", &path, e))?;
        }
        let mut entries = BTreeMap::new();
        let (mut last_purged, mut committed) = (None, None);
        let mut offset = 0usize;
        let mut torn_at = None;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let parsed = (|| {
                if rest.len() < 8 {
                    return Err("short header".to_string());
                }
                let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
                let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
                let body = rest.get(8..8 + len).ok_or("short body")?;
                if crc32c::crc32c(body) != crc {
                    return Err("checksum mismatch".to_string());
                }
                let record: Record = serde_json::from_slice(body).map_err(|e| format!("undecodable: {e}"))?;
                Ok((record, 8 + len))
            })();
            match parsed {
                Ok((record, used)) => {
                    match record {
                        Record::Append(entry) => {
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
                    offset += used;
                }
                Err(reason) => {
                    if !is_torn_tail(rest) {
                        return Err(LogStoreError::Damaged {
                            path: path.display().to_string(),
                            offset: offset as u64,
                            reason,
                        });
                    }
                    torn_at = Some(offset);
                    break;
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io("open", &path, e))?;
        if let Some(at) = torn_at {
            tracing::warn!(log = %path.display(), offset = at, "cut a torn record at the end of the Raft log");
            file.set_len(at as u64).map_err(|e| io("truncate", &path, e))?;
            file.sync_all().map_err(|e| io("fsync", &path, e))?;
        }
        let vote_path = dir.join("vote");
        let vote = match std::fs::read(&vote_path) {
            Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| LogStoreError::Damaged {
                path: vote_path.display().to_string(),
                offset: 0,
                reason: e.to_string(),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &vote_path, e)),
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                committed,
                vote,
                failed: None,
            })),
        })
    }

    /// Index of the last entry (or of the last purged one), for metrics.
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.inner.lock();
        inner.entries.keys().next_back().copied().or(inner.last_purged.map(|l| l.index))
    }
}

/// A damaged record is a torn tail when nothing after it could be a complete
/// record: its declared length runs past the end of the file, or it is the
/// header alone.
fn is_torn_tail(rest: &[u8]) -> bool {
    if rest.len() < 8 {
        return true;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
    8 + len >= rest.len()
}

impl Inner {
    fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        if let Some(f) = &self.failed {
            return Err(std::io::Error::other(format!("the Raft log has failed earlier: {f}")));
        }
        let mut buf = Vec::new();
        for r in records {
            frame(r, &mut buf);
        }
        let result = self.file.write_all(&buf).and_then(|()| self.file.sync_data());
        if let Err(e) = &result {
            tracing::error!(error = %e, "Raft log write failed: no more writes (fail-stop)");
            self.failed = Some(e.to_string());
        }
        result
    }

    /// Rewrites the log with what survives: the purge point, the entries, the committed id.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let path = self.dir.join("log");
        let tmp = self.dir.join("log.tmp");
        let mut buf = Vec::new();
        if let Some(p) = self.last_purged {
            frame(&Record::Purge(p), &mut buf);
        }
        for e in self.entries.values() {
            frame(&Record::Append(e.clone()), &mut buf);
        }
        frame(&Record::Committed(self.committed), &mut buf);
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
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

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        let mut inner = self.inner.lock();
        inner
            .write(&[Record::Committed(committed)])
            .map_err(|e| StorageError::IO { source: StorageIOError::write(&e) })?;
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
        let result = inner.write(&records);
        if result.is_ok() {
            for r in records {
                if let Record::Append(e) = r {
                    inner.entries.insert(e.log_id.index, e);
                }
            }
        }
        let err = result.as_ref().err().map(|e| StorageError::IO { source: StorageIOError::write_logs(e) });
        callback.log_io_completed(result);
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut inner = self.inner.lock();
        inner
            .write(&[Record::Truncate(log_id.index)])
            .map_err(|e| StorageError::IO { source: StorageIOError::write_logs(&e) })?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut inner = self.inner.lock();
        inner
            .write(&[Record::Purge(log_id)])
            .map_err(|e| StorageError::IO { source: StorageIOError::write_logs(&e) })?;
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        inner.rewrite().map_err(|e| StorageError::IO { source: StorageIOError::write_logs(&e) })?;
        Ok(())
    }
}
