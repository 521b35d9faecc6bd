//! The write-ahead log: segment files of CRC32C-framed records, appended by one
//! writer with group commit, and read back strictly at recovery.

mod group;
mod reader;
mod segment;
mod storage;
mod writer;

pub use group::{Completion, GroupWriter, WalStats};
pub(crate) use reader::cut_torn_tail;
pub use reader::{repair, scan, ProblemKind, ScanOutcome, ScanProblem, SegmentReport, TornWrite};
pub use segment::{
    decode_frame, decode_header, delete_covered_segments, encode_frame, encode_header, list_segments, segment_name,
    Frame, FrameError, HeaderError, FORMAT_VERSION, FRAME_LEN, HEADER_LEN, MAX_RECORD_BYTES,
};
pub use storage::{Fault, FaultyStorage, HoldableStorage, LogFile, StdStorage, Storage, SyncHold};
pub use writer::{Durability, WalConfig, WalWriter};

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An IO operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// File or directory concerned.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The log is damaged (anything but a torn tail); start-up refuses.
    #[error("{0}")]
    Corrupt(ScanProblem),
    /// A durability setting could not be parsed.
    #[error("bad durability `{0}`: expected always, interval:<ms> or none")]
    BadDurability(String),
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        WalError::Io { op, path: path.display().to_string(), source }
    }
}
