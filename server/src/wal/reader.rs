//! Reads a log directory strictly: every record in order with consecutive
//! sequence numbers; tells a torn tail (safe to truncate) from a damaged last
//! record and from damage anywhere else (both refuse to start); and implements
//! `wal verify` / `wal repair`.
//!
//! The rule for the end of the newest segment. The writer only appends (no
//! preallocation) and fdatasyncs after each batch, so an interrupted write
//! leaves either a file that ends inside the last record, or a last record
//! whose bytes from a sector (512-byte) boundary, or from its own start, to the
//! end of the file are zeros (the file grew but the data never reached the
//! disk). Either is a torn tail: truncated at start-up, a copy kept. A complete
//! last record whose checksum fails without either sign is a damaged last
//! record: it may have been acknowledged, so start-up refuses and `wal repair`
//! drops it only when the operator says so. What cannot be told apart: a
//! damaged length field that points past the end of the file looks like an
//! interrupted write, and is truncated as one (the log message says so).

use super::segment::{decode_frame, decode_header, list_segments, valid_record_after, FrameError, HEADER_LEN};
use super::WalError;
use std::fmt;
use std::path::{Path, PathBuf};

/// Granularity at which an interrupted write leaves unwritten (zero) bytes.
const SECTOR_BYTES: usize = 512;

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

/// How an interrupted write shows at the end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornWrite {
    /// The file ends inside the record (a damaged length field pointing past
    /// the end of the file looks the same).
    EndsInside,
    /// The record's bytes from this file offset to the end of the file are zeros.
    ZeroFilled {
        /// First zero byte.
        from: u64,
    },
}

/// What kind of problem a scan stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The last record of the newest segment was cut short by an interrupted
    /// write; truncating it loses nothing that was acknowledged.
    TornTail(TornWrite),
    /// The last record of the newest segment is complete but fails its
    /// checksum, with no sign of an interrupted write: it may be an
    /// acknowledged record damaged on disk.
    DamagedLastRecord,
    /// Damage before the end of the log (valid records follow, a bad header,
    /// a sequence gap, a record that does not decode).
    Damaged,
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
    /// Which kind of problem it is.
    pub kind: ProblemKind,
}

impl ScanProblem {
    /// Whether start-up may truncate it (an interrupted last write).
    pub fn is_torn_tail(&self) -> bool {
        matches!(self.kind, ProblemKind::TornTail(_))
    }

    /// One sentence on what the kind means, for logs and `wal verify`.
    pub fn explanation(&self) -> String {
        match self.kind {
            ProblemKind::TornTail(TornWrite::EndsInside) => "this is a torn tail: the file ends inside the last \
                 record (an interrupted write; a damaged length field would look the same). Start-up truncates it \
                 automatically, keeping a copy"
                .into(),
            ProblemKind::TornTail(TornWrite::ZeroFilled { from }) => format!(
                "this is a torn tail: the last record's bytes from offset {from} to the end of the file are zeros \
                 (a write that never reached the disk). Start-up truncates it automatically, keeping a copy"
            ),
            ProblemKind::DamagedLastRecord => "this is a damaged last record: it is complete but fails its checksum, \
                 and nothing shows an interrupted write (the file does not end inside it and none of its sectors is \
                 zeros), so the server cannot tell it from an acknowledged record damaged on disk. Start-up refuses; \
                 restore from a backup, or run `linggong-server wal repair` to truncate it (a copy is kept) and \
                 accept losing it"
                .into(),
            ProblemKind::Damaged => "the log is damaged before its end, so starting would silently lose or change \
                 state. Restore the data directory from a backup, or run `linggong-server wal verify` to see every \
                 segment and `linggong-server wal repair` to truncate the log at this record (a copy is kept) and \
                 accept losing everything after it"
                .into(),
        }
    }
}

impl fmt::Display for ScanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}: {}", self.path.display(), self.offset, self.reason)?;
        if !self.is_torn_tail() {
            write!(f, ". {}", self.explanation())?;
        }
        Ok(())
    }
}

/// How a bad record at the end of the newest segment (nothing valid after it)
/// is classified: see the module documentation.
fn classify_last_record(bytes: &[u8], offset: usize, error: &FrameError) -> ProblemKind {
    if matches!(error, FrameError::Incomplete { .. }) {
        return ProblemKind::TornTail(TornWrite::EndsInside);
    }
    let zeros_from = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1).max(offset);
    let boundary = if zeros_from == offset { offset } else { zeros_from.next_multiple_of(SECTOR_BYTES) };
    if boundary < bytes.len() {
        return ProblemKind::TornTail(TornWrite::ZeroFilled { from: boundary as u64 });
    }
    ProblemKind::DamagedLastRecord
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
        let problem = |offset: usize, reason: String, kind: ProblemKind| ScanProblem {
            path: path.clone(),
            offset: offset as u64,
            reason,
            kind,
        };
        let first = match decode_header(&bytes) {
            Ok(first) if first == name_seq => first,
            Ok(first) => {
                out.problem = Some(problem(
                    0,
                    format!("header says first sequence {first}, name says {name_seq}"),
                    ProblemKind::Damaged,
                ));
                out.segments.push(report);
                return Ok(out);
            }
            Err(e) => {
                out.problem = Some(problem(0, format!("bad segment header: {e}"), ProblemKind::Damaged));
                out.segments.push(report);
                return Ok(out);
            }
        };
        if let Some(exp) = expected {
            if first != exp {
                out.problem = Some(problem(
                    0,
                    format!("sequence gap: expected segment to start at {exp}, it starts at {first}"),
                    ProblemKind::Damaged,
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
                            out.problem =
                                Some(problem(off, format!("record {}: {reason}", frame.seq), ProblemKind::Damaged));
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
                    out.problem = Some(problem(
                        off,
                        format!("sequence gap: expected record {next}, found {}", frame.seq),
                        ProblemKind::Damaged,
                    ));
                    out.segments.push(report);
                    return Ok(out);
                }
                Err(e) => {
                    let at_end = is_last && valid_record_after(&bytes, off + 1, next.saturating_sub(1)).is_none();
                    let kind = if at_end { classify_last_record(&bytes, off, &e) } else { ProblemKind::Damaged };
                    out.problem = Some(problem(off, format!("bad record: {e}"), kind));
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

/// Truncates a torn tail found at start-up (`problem.is_torn_tail()`),
/// keeping a copy of the segment, and logs what was cut from which log
/// (`log`: "log", "Raft log"). Returns the copy's path.
pub(crate) fn cut_torn_tail(problem: &ScanProblem, log: &str) -> Result<PathBuf, WalError> {
    let copy = truncate_keeping_copy(&problem.path, problem.offset)?;
    tracing::warn!(
        segment = %problem.path.display(),
        offset = problem.offset,
        copy = %copy.display(),
        reason = %problem.reason,
        "truncated a torn record at the end of the {log}; a copy of the damaged segment was kept: {}",
        problem.explanation()
    );
    Ok(copy)
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
