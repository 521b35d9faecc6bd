//! Reads a log directory strictly: every record in order with consecutive
//! sequence numbers; tells a torn tail (safe to truncate) from damage anywhere
//! else (refuse to start); and implements `wal verify` / `wal repair`.

use super::segment::{decode_frame, decode_header, list_segments, valid_record_after, HEADER_LEN};
use super::WalError;
use std::fmt;
use std::path::{Path, PathBuf};

/// What one segment holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// File.
    pub path: PathBuf,
    /// First sequence number from the header (or the name, if the header is bad).
    pub first_seq: u64,
    /// Valid records read.
    pub records: u64,
    /// Last valid sequence number, if any record.
    pub last_seq: Option<u64>,
    /// Bytes up to the end of the last valid record.
    pub valid_len: u64,
    /// File size.
    pub file_len: u64,
}

/// The first problem found in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanProblem {
    /// File.
    pub path: PathBuf,
    /// Byte offset of the bad record or header.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// True when it is a torn tail: the bad record is in the last segment with
    /// no valid record after it, so truncating loses nothing acknowledged.
    pub torn_tail: bool,
}

impl fmt::Display for ScanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}: {}", self.path.display(), self.offset, self.reason)?;
        if !self.torn_tail {
            write!(
                f,
                ". The log is damaged before its end, so starting would silently lose or change state. \
                 Restore the data directory from a backup, or run `linggong-server wal verify` to see every \
                 segment and `linggong-server wal repair` to truncate the log at this record (a copy is kept) \
                 and accept losing everything after it"
            )?;
        }
        Ok(())
    }
}

/// Result of reading a log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Every segment read, in order.
    pub segments: Vec<SegmentReport>,
    /// Sequence number of the last valid record before any problem.
    pub last_seq: Option<u64>,
    /// The first problem, if any; reading stopped there.
    pub problem: Option<ScanProblem>,
}

/// Reads every segment in `dir` in order, calling `on_record(seq, payload)` for
/// each valid record with `seq > after_seq`. Stops at the first problem (bad
/// header, bad record, sequence gap, or an error returned by `on_record`).
pub fn scan(
    dir: &Path,
    after_seq: u64,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<ScanOutcome, WalError> {
    let segments = list_segments(dir).map_err(|e| WalError::io("list", dir, e))?;
    let mut out = ScanOutcome::default();
    let mut expected: Option<u64> = None;
    let count = segments.len();
    for (i, (name_seq, path)) in segments.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let bytes = std::fs::read(&path).map_err(|e| WalError::io("read", &path, e))?;
        let mut report = SegmentReport {
            path: path.clone(),
            first_seq: name_seq,
            records: 0,
            last_seq: None,
            valid_len: 0,
            file_len: bytes.len() as u64,
        };
        let problem = |offset: usize, reason: String, torn_tail: bool| ScanProblem {
            path: path.clone(),
            offset: offset as u64,
            reason,
            torn_tail,
        };
        let first = match decode_header(&bytes) {
            Ok(first) if first == name_seq => first,
            Ok(first) => {
                out.problem =
                    Some(problem(0, format!("header says first sequence {first}, name says {name_seq}"), false));
                out.segments.push(report);
                return Ok(out);
            }
            Err(e) => {
                out.problem = Some(problem(0, format!("bad segment header: {e}"), false));
                out.segments.push(report);
                return Ok(out);
            }
        };
        if let Some(exp) = expected {
            if first != exp {
                out.problem = Some(problem(
                    0,
                    format!("sequence gap: expected segment to start at {exp}, it starts at {first}"),
                    false,
                ));
                out.segments.push(report);
                return Ok(out);
            }
        }
        let mut off = HEADER_LEN;
        let mut next = first;
        report.valid_len = off as u64;
        while off < bytes.len() {
            match decode_frame(&bytes[off..]) {
                Ok(frame) if frame.seq == next => {
                    if frame.seq > after_seq {
                        if let Err(reason) = on_record(frame.seq, frame.payload) {
                            out.problem = Some(problem(off, format!("record {}: {reason}", frame.seq), false));
                            out.segments.push(report);
                            return Ok(out);
                        }
                    }
                    report.records += 1;
                    report.last_seq = Some(frame.seq);
                    out.last_seq = Some(frame.seq);
                    next += 1;
                    off += frame.len;
                    report.valid_len = off as u64;
                }
                Ok(frame) => {
                    out.problem =
                        Some(problem(off, format!("sequence gap: expected record {next}, found {}", frame.seq), false));
                    out.segments.push(report);
                    return Ok(out);
                }
                Err(e) => {
                    let torn = is_last && valid_record_after(&bytes, off + 1, next.saturating_sub(1)).is_none();
                    out.problem = Some(problem(off, format!("bad record: {e}"), torn));
                    out.segments.push(report);
                    return Ok(out);
                }
            }
        }
        expected = Some(next);
        out.segments.push(report);
    }
    Ok(out)
}

/// Truncates the log at its first problem, keeping a copy of the damaged file
/// (`<segment>.damaged`) and moving any later segments aside (`.orphaned`).
/// Returns the problem repaired, or `None` if the log was clean.
pub fn repair(dir: &Path) -> Result<Option<ScanProblem>, WalError> {
    let outcome = scan(dir, u64::MAX, |_, _| Ok(()))?;
    let Some(problem) = outcome.problem.clone() else { return Ok(None) };
    truncate_keeping_copy(&problem.path, problem.offset)?;
    let mut after = false;
    for (_, path) in list_segments(dir).map_err(|e| WalError::io("list", dir, e))? {
        if after {
            let aside = path.with_extension("wal.orphaned");
            std::fs::rename(&path, &aside).map_err(|e| WalError::io("rename", &path, e))?;
        }
        after |= path == problem.path;
    }
    Ok(Some(problem))
}

/// Copies `path` to `<path>.damaged` (or `.damaged.N` if taken), then
/// truncates `path` to `len` bytes (a bad header: the segment is moved aside
/// entirely) and syncs.
pub(crate) fn truncate_keeping_copy(path: &Path, len: u64) -> Result<PathBuf, WalError> {
    let mut copy = PathBuf::from(format!("{}.damaged", path.display()));
    let mut n = 1;
    while copy.exists() {
        copy = PathBuf::from(format!("{}.damaged.{n}", path.display()));
        n += 1;
    }
    std::fs::copy(path, &copy).map_err(|e| WalError::io("copy", path, e))?;
    if len < HEADER_LEN as u64 {
        std::fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
    } else {
        let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| WalError::io("open", path, e))?;
        f.set_len(len).map_err(|e| WalError::io("truncate", path, e))?;
        f.sync_all().map_err(|e| WalError::io("fsync", path, e))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| WalError::io("fsync", dir, e))?;
    }
    Ok(copy)
}
