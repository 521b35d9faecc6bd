//! On-disk format of WAL segments: a header (magic, format version, first
//! sequence) followed by records framed as length + CRC32C + sequence + payload.

use std::path::{Path, PathBuf};

/// Segment file magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LGWALSEG";
/// Segment format version.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in a segment header.
pub const HEADER_LEN: usize = 32;
/// Bytes in a record frame before the payload: length u32, CRC32C u32, sequence u64.
pub const FRAME_LEN: usize = 16;
/// Largest payload a record may carry; longer lengths are corruption.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".wal";

/// Encodes a segment header.
pub fn encode_header(first_seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a header is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("file shorter than the {HEADER_LEN}-byte header")]
    Short,
    /// Not a linggong WAL segment.
    #[error("bad magic")]
    Magic,
    /// The header's checksum does not match.
    #[error("header checksum mismatch")]
    Checksum,
    /// Written by an unknown format version.
    #[error("unsupported format version {0}")]
    Version(u32),
}

/// Decodes a segment header, returning its first sequence number.
pub fn decode_header(bytes: &[u8]) -> Result<u64, HeaderError> {
    if bytes.len() < HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Magic);
    }
    let crc = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&bytes[0..24]) {
        return Err(HeaderError::Checksum);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(HeaderError::Version(version));
    }
    Ok(u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")))
}

/// Appends one framed record to `out`.
pub fn encode_frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let seq_bytes = seq.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&seq_bytes), payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(payload);
}

/// Why a record could not be read at some offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The file ends inside the frame header or payload.
    #[error("incomplete record ({available} of {needed} bytes)")]
    Incomplete {
        /// Bytes needed for the whole record.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The length field exceeds the maximum record size.
    #[error("record length {0} exceeds the maximum {MAX_RECORD_BYTES}")]
    TooLong(usize),
    /// The checksum does not match the contents.
    #[error("checksum mismatch")]
    Checksum,
}

/// A record read from a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Payload bytes.
    pub payload: &'a [u8],
    /// Total bytes the frame occupies.
    pub len: usize,
}

/// Decodes the frame at the start of `bytes`.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() < FRAME_LEN {
        return Err(FrameError::Incomplete { needed: FRAME_LEN, available: bytes.len() });
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD_BYTES {
        return Err(FrameError::TooLong(len));
    }
    let total = FRAME_LEN + len;
    if bytes.len() < total {
        return Err(FrameError::Incomplete { needed: total, available: bytes.len() });
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let seq_bytes = &bytes[8..16];
    let payload = &bytes[16..total];
    if crc != crc32c::crc32c_append(crc32c::crc32c(seq_bytes), payload) {
        return Err(FrameError::Checksum);
    }
    Ok(Frame { seq: u64::from_le_bytes(seq_bytes.try_into().expect("8 bytes")), payload, len: total })
}

/// Whether any complete, checksummed record with a sequence number above
/// `after_seq` starts at or after `from` (used to tell a torn tail from damage
/// in the middle of a log).
pub fn valid_record_after(bytes: &[u8], from: usize, after_seq: u64) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_LEN - 1)).find(|&off| {
        let b = &bytes[off..];
        let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        seq > after_seq && seq < after_seq.saturating_add(1 << 40) && decode_frame(b).is_ok()
    })
}

/// File name of the segment starting at `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// Segment files in `dir`, sorted by first sequence (parsed from the name).
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
            if stem.len() == 20 {
                if let Ok(seq) = stem.parse::<u64>() {
                    out.push((seq, path));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes segments all of whose records are at or below `covered_seq` (never
/// the last segment). Returns how many were deleted.
pub fn delete_covered_segments(wal_dir: &Path, covered_seq: u64) -> u64 {
    let Ok(segments) = list_segments(wal_dir) else { return 0 };
    let mut deleted = 0;
    for pair in segments.windows(2) {
        let (next_first, _) = pair[1];
        if next_first.saturating_sub(1) <= covered_seq {
            match std::fs::remove_file(&pair[0].1) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(segment = %pair[0].1.display(), error = %e, "could not delete a compacted segment")
                }
            }
        }
    }
    if deleted > 0 {
        let _ = std::fs::File::open(wal_dir).and_then(|d| d.sync_all());
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_corruption() {
        let mut buf = Vec::new();
        encode_frame(7, b"hello", &mut buf);
        let f = decode_frame(&buf).unwrap();
        assert_eq!((f.seq, f.payload, f.len), (7, &b"hello"[..], FRAME_LEN + 5));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(decode_frame(&bad).is_err(), "flip at {i} went unnoticed");
        }
        assert!(matches!(decode_frame(&buf[..buf.len() - 1]), Err(FrameError::Incomplete { .. })));
    }

    #[test]
    fn header_round_trip() {
        let h = encode_header(42);
        assert_eq!(decode_header(&h), Ok(42));
        let mut bad = h;
        bad[17] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::Checksum));
        assert_eq!(decode_header(&h[..10]), Err(HeaderError::Short));
    }

    #[test]
    fn crc_is_castagnoli() {
        // The CRC-32C check value of "123456789" is 0xE3069283 (IEEE's would be 0xCBF43926).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }
}
