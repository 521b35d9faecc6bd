//! Appends framed records to the current segment, rolls segments safely
//! (temp file, rename, directory fsync) and syncs according to the durability mode.

use super::segment::{encode_frame, encode_header, segment_name, FRAME_LEN, HEADER_LEN};
use super::storage::{LogFile, Storage};
use super::WalError;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When an acknowledgement may be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// After an fdatasync covering the record (the default). Concurrent writers share syncs.
    Always,
    /// After the write; syncs at most this often. A crash may lose this window of acknowledged writes.
    Interval(Duration),
    /// Never syncs: for tests and benchmarks only.
    None,
}

impl FromStr for Durability {
    type Err = WalError;
    fn from_str(s: &str) -> Result<Self, WalError> {
        match s {
            "always" => Ok(Durability::Always),
            "none" => Ok(Durability::None),
            _ => s
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(|ms| Durability::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| WalError::BadDurability(s.to_string())),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::Always => write!(f, "always"),
            Durability::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            Durability::None => write!(f, "none"),
        }
    }
}

/// Log settings.
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Directory of segment files.
    pub dir: PathBuf,
    /// Segment size at which a new segment is started, bytes.
    pub segment_bytes: u64,
    /// Sync policy.
    pub durability: Durability,
}

/// The single writer of a log directory.
pub struct WalWriter {
    storage: Arc<dyn Storage>,
    config: WalConfig,
    file: Box<dyn LogFile>,
    segment_len: u64,
    segment_records: u64,
    buf: Vec<u8>,
    unsynced: bool,
    last_sync: Instant,
}

impl WalWriter {
    /// Opens for appending: continues `tail` (path and its valid length, as
    /// left by recovery) or starts a first segment at `next_seq`.
    pub fn open(
        storage: Arc<dyn Storage>,
        config: WalConfig,
        tail: Option<(PathBuf, u64)>,
        next_seq: u64,
    ) -> Result<Self, WalError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| WalError::io("create", &config.dir, e))?;
        let (file, segment_len, segment_records) = match tail {
            Some((path, len)) => (
                storage.open_append(&path).map_err(|e| WalError::io("open", &path, e))?,
                len,
                u64::from(len > HEADER_LEN as u64),
            ),
            None => (create_segment(&*storage, &config.dir, next_seq)?, encode_header(0).len() as u64, 0),
        };
        Ok(Self {
            storage,
            config,
            file,
            segment_len,
            segment_records,
            buf: Vec::with_capacity(1 << 20),
            unsynced: false,
            last_sync: Instant::now(),
        })
    }

    /// Frames and writes records in order, rolling to a new segment when the
    /// current one is full. Does not sync (see [`WalWriter::sync_if_due`]).
    pub fn append<'a>(&mut self, records: impl IntoIterator<Item = (u64, &'a [u8])>) -> Result<(), WalError> {
        self.buf.clear();
        for (seq, payload) in records {
            let frame_len = (FRAME_LEN + payload.len()) as u64;
            if self.segment_records > 0
                && self.segment_len + self.buf.len() as u64 + frame_len > self.config.segment_bytes
            {
                self.roll(seq)?;
            }
            encode_frame(seq, payload, &mut self.buf);
            self.segment_records += 1;
        }
        self.flush_buf()
    }

    fn flush_buf(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf).map_err(|e| WalError::io("write", &self.config.dir, e))?;
        self.segment_len += self.buf.len() as u64;
        self.buf.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Closes the current segment (synced) and starts one at `first_seq`.
    fn roll(&mut self, first_seq: u64) -> Result<(), WalError> {
        self.flush_buf()?;
        self.sync()?;
        self.file = create_segment(&*self.storage, &self.config.dir, first_seq)?;
        self.segment_len = encode_header(0).len() as u64;
        self.segment_records = 0;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WalError> {
        if self.unsynced {
            self.file.sync_data().map_err(|e| WalError::io("fdatasync", &self.config.dir, e))?;
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Syncs if the durability mode asks for it now (`Always`: whenever there
    /// is unsynced data; `Interval`: when the interval has passed; `None`:
    /// never). Returns whether an fdatasync happened.
    pub fn sync_if_due(&mut self) -> Result<bool, WalError> {
        let due = match self.config.durability {
            Durability::Always => true,
            Durability::Interval(every) => self.last_sync.elapsed() >= every,
            Durability::None => false,
        };
        if due {
            self.sync_now()
        } else {
            Ok(false)
        }
    }

    /// Syncs any unsynced data whatever the durability mode (on idle and at
    /// shutdown). Returns whether an fdatasync happened.
    pub fn sync_now(&mut self) -> Result<bool, WalError> {
        if self.unsynced {
            self.sync()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether written data awaits a sync.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.config.durability
    }
}

/// Creates a segment safely: header written to a temp file, synced, renamed
/// into place, directory synced; then opened for appending.
fn create_segment(storage: &dyn Storage, dir: &Path, first_seq: u64) -> Result<Box<dyn LogFile>, WalError> {
    let name = segment_name(first_seq);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    let mut f = storage.create(&tmp).map_err(|e| WalError::io("create", &tmp, e))?;
    f.write_all(&encode_header(first_seq)).map_err(|e| WalError::io("write", &tmp, e))?;
    f.sync_data().map_err(|e| WalError::io("fdatasync", &tmp, e))?;
    drop(f);
    storage.rename(&tmp, &path).map_err(|e| WalError::io("rename", &tmp, e))?;
    storage.sync_dir(dir).map_err(|e| WalError::io("fsync", dir, e))?;
    storage.open_append(&path).map_err(|e| WalError::io("open", &path, e))
}
