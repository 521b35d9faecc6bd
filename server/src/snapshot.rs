//! Snapshot files: the whole service state at a log sequence number, written to
//! a temp file with a checksum, fsynced, renamed and the directory fsynced.
//! The two newest are kept; loading falls back to the older if the newer is bad.
//!
//! The body of format version 4 is MessagePack through `rmp-serde`: structs
//! as arrays of their fields in declaration order, enum variants by name,
//! numbers at their smallest width. A field appended to a struct with
//! `#[serde(default)]` loads as its default from older version-4 files
//! (fields are only ever appended, never reordered or removed, as with
//! protobuf field numbers). Struct fields are not named in the file: with
//! names a million-worker snapshot was twice the size and several times
//! slower to write and read (BENCHMARKS.md). Older format versions still load,
//! through a frozen reader of their bincode-1 layout ([`bincode1`]): 3
//! (postings and complaints without reviewers), 2 (request ids without
//! fingerprints, which then match any retry) and 1 (also before the market
//! directory and the ledger, which load empty).

pub mod bincode1;
mod legacy;

use crate::state::{FrozenState, ServiceState, StateSnapshot};
use legacy::{StateSnapshotV1, StateSnapshotV2, StateSnapshotV3};
use linggong_engine::EngineConfig;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Snapshot file magic.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"LGSNAP01";
/// Header: magic, version u32, reserved u32, last_seq u64, body length u64, body CRC32C u32, header CRC32C u32.
pub const SNAPSHOT_HEADER_LEN: usize = 40;
/// Snapshot format version (4: MessagePack, structs as arrays, fields appended with defaults).
pub const SNAPSHOT_VERSION: u32 = 4;
/// Format version 3 (bincode; remembered request ids carry the fingerprint of their command), still read.
pub const SNAPSHOT_VERSION_V3: u32 = 3;
/// Format version 2 (the engine state gained the market directory and the ledger), still read.
pub const SNAPSHOT_VERSION_V2: u32 = 2;
/// Format version 1, still read.
pub const SNAPSHOT_VERSION_V1: u32 = 1;
/// How many snapshots are kept.
pub const SNAPSHOTS_KEPT: usize = 2;

/// Errors reading or writing snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// An IO operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// File concerned.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not a valid snapshot.
    #[error("{path}: {reason}")]
    Invalid {
        /// File concerned.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> SnapshotError {
    SnapshotError::Io { op, path: path.display().to_string(), source }
}

fn invalid(path: &Path, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid { path: path.display().to_string(), reason: reason.into() }
}

/// File name of the snapshot at `seq`.
pub fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.bin")
}

/// Snapshot files in `dir`, newest (highest sequence) first.
pub fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io_err("list", dir, e))? {
        let path = entry.map_err(|e| io_err("list", dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some(seq) =
            name.strip_prefix("snapshot-").and_then(|s| s.strip_suffix(".bin")).and_then(|s| s.parse().ok())
        {
            out.push((seq, path));
        }
    }
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

/// A writer that checksums and counts what passes through.
struct Checksummed<W> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn header(seq: u64, body_len: u64, body_crc: u32) -> [u8; SNAPSHOT_HEADER_LEN] {
    versioned_header(SNAPSHOT_VERSION, seq, body_len, body_crc)
}

fn versioned_header(version: u32, seq: u64, body_len: u64, body_crc: u32) -> [u8; SNAPSHOT_HEADER_LEN] {
    let mut h = [0u8; SNAPSHOT_HEADER_LEN];
    h[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&body_len.to_le_bytes());
    h[32..36].copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..36]);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Writes a snapshot of `state` into `dir` safely and returns its path.
pub fn write_snapshot(dir: &Path, state: &FrozenState) -> Result<PathBuf, SnapshotError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let seq = state.last_seq();
    let path = dir.join(snapshot_name(seq));
    let tmp = dir.join(format!("{}.tmp", snapshot_name(seq)));
    let mut file = File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    file.write_all(&[0u8; SNAPSHOT_HEADER_LEN]).map_err(|e| io_err("write", &tmp, e))?;
    // Buffered in front of the checksum, so the encoder's many small writes
    // are checksummed and written a megabyte at a time.
    let mut body = BufWriter::with_capacity(1 << 20, Checksummed { inner: file, crc: 0, len: 0 });
    encode_body(&mut body, state).map_err(|e| io_err("write", &tmp, e))?;
    let body = body.into_inner().map_err(|e| io_err("write", &tmp, e.into_error()))?;
    let (crc, len, mut file) = (body.crc, body.len, body.inner);
    file.seek(SeekFrom::Start(0)).map_err(|e| io_err("seek", &tmp, e))?;
    file.write_all(&header(seq, len, crc)).map_err(|e| io_err("write", &tmp, e))?;
    file.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("fsync", dir, e))?;
    Ok(path)
}

/// Encodes a state snapshot as a version-4 body.
fn encode_body(w: &mut impl Write, snapshot: &impl Serialize) -> std::io::Result<()> {
    snapshot.serialize(&mut rmp_serde::Serializer::new(w)).map_err(std::io::Error::other)
}

/// Decodes a version-4 body. The input is a borrowed slice: a length prefix
/// larger than the bytes left fails at once, and sequences grow element by
/// element, so damaged counts never drive an allocation.
fn decode_body(body: &[u8]) -> Result<StateSnapshot, String> {
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    StateSnapshot::deserialize(&mut de).map_err(|e| format!("undecodable: {e}"))
}

/// Wraps raw body bytes in a valid header (for fuzzing the body decoder past
/// the checksums).
pub fn seal_snapshot_body(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut out = header(seq, body.len() as u64, crc32c::crc32c(body)).to_vec();
    out.extend_from_slice(body);
    out
}

/// Decodes a snapshot from bytes (the decoder the fuzz target exercises).
/// Returns the sequence number and the state, or why the bytes are invalid.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, StateSnapshot), String> {
    if bytes.len() < SNAPSHOT_HEADER_LEN {
        return Err("shorter than the header".into());
    }
    let h = &bytes[..SNAPSHOT_HEADER_LEN];
    if h[0..8] != SNAPSHOT_MAGIC {
        return Err("bad magic".into());
    }
    if u32::from_le_bytes(h[36..40].try_into().expect("4 bytes")) != crc32c::crc32c(&h[0..36]) {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if ![SNAPSHOT_VERSION, SNAPSHOT_VERSION_V3, SNAPSHOT_VERSION_V2, SNAPSHOT_VERSION_V1].contains(&version) {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let seq = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(h[24..32].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(h[32..36].try_into().expect("4 bytes"));
    let body = &bytes[SNAPSHOT_HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(format!("body is {} bytes, header says {len}", body.len()));
    }
    if crc32c::crc32c(body) != crc {
        return Err("body checksum mismatch".into());
    }
    let undecodable = |e: bincode1::Bincode1Error| format!("undecodable: {e}");
    let state: StateSnapshot = match version {
        SNAPSHOT_VERSION_V1 => bincode1::from_slice::<StateSnapshotV1>(body).map_err(undecodable)?.into(),
        SNAPSHOT_VERSION_V2 => bincode1::from_slice::<StateSnapshotV2>(body).map_err(undecodable)?.into(),
        SNAPSHOT_VERSION_V3 => bincode1::from_slice::<StateSnapshotV3>(body).map_err(undecodable)?.into(),
        _ => decode_body(body)?,
    };
    if state.last_seq != seq {
        return Err("body and header disagree on the sequence number".into());
    }
    Ok((seq, state))
}

/// Loads one snapshot file into a service state.
pub fn load_snapshot(
    path: &Path,
    config: &EngineConfig,
    dedupe_capacity: usize,
) -> Result<ServiceState, SnapshotError> {
    let bytes = std::fs::read(path).map_err(|e| io_err("read", path, e))?;
    let (_, snap) = decode_snapshot(&bytes).map_err(|r| invalid(path, r))?;
    ServiceState::restore(config.clone(), snap, dedupe_capacity).map_err(|e| invalid(path, e.to_string()))
}

/// Deletes all but the newest [`SNAPSHOTS_KEPT`] snapshots (and stray temp
/// files). Returns the sequence of the oldest snapshot kept.
pub fn prune_snapshots(dir: &Path) -> Result<Option<u64>, SnapshotError> {
    let all = list_snapshots(dir)?;
    for (_, path) in all.iter().skip(SNAPSHOTS_KEPT) {
        std::fs::remove_file(path).map_err(|e| io_err("remove", path, e))?;
    }
    Ok(all.iter().take(SNAPSHOTS_KEPT).last().map(|(seq, _)| *seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use linggong_engine::{ComplaintResolution, OfferState, PostingState};

    fn fixture(version: u32) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/snapshots/v{version}"))
            .join(snapshot_name(14));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The state the fixtures were written from (see `tests/fixtures/snapshots/README.md`).
    fn assert_fixture_state(version: u32, state: &StateSnapshot) {
        assert_eq!((state.last_seq, state.next_event_seq > 1), (14, true));
        let keys: Vec<&str> = state.dedupe.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["reg-0", "reg-1", "reg-2", "reg-3"]);
        assert!(state.dedupe.iter().all(|(_, r)| r.fingerprint.is_some() == (version >= 3)));
        let e = &state.engine;
        assert_eq!((e.workers.len(), e.employers.len(), e.postings.len(), e.complaints.len()), (4, 2, 2, 2));
        assert_eq!(e.postings.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["p1", "p2"]);
        assert_eq!(e.postings[0].state, PostingState::Filling);
        assert_eq!(e.postings[1].state, PostingState::Published);
        let mut offer_states: Vec<OfferState> = e.offers.iter().map(|o| o.state).collect();
        offer_states.sort_by_key(|s| *s as u8);
        assert_eq!(offer_states, [OfferState::Pending, OfferState::Accepted]);
        assert_eq!(e.next_offer_id, 3);
        let resolution = e.complaints[0].resolution.as_ref().map(|(r, _, note)| (*r, note.as_str()));
        assert_eq!(resolution, Some((ComplaintResolution::Upheld, "已结清")));
        assert!(e.complaints[1].resolution.is_none());
        if version < SNAPSHOT_VERSION {
            // Formats before 4 did not keep who reviewed or resolved.
            assert!(e.postings.iter().all(|p| p.reviewed_by.is_none() && p.reviewed_at.is_none()));
            assert!(e.complaints.iter().all(|c| c.resolved_by.is_none()));
        }
        assert_eq!(e.employers[0].complaints, 2);
        assert!(e.directory.is_empty());
        assert_eq!(e.ledger.entries().next().is_none(), version == 1, "format 1 had no ledger");
    }

    /// A snapshot written under a logged batch policy and ranking policy, with
    /// an instant match waiting in a decision window, restores all three even
    /// under a configuration that says otherwise.
    #[test]
    fn logged_policies_and_waiting_matches_survive_a_snapshot_file() {
        use linggong_engine::{
            BatchPolicy, Command, Engine, EngineConfig, Outcome, RankingPolicy, Timestamp, TradeSkillSpec,
        };
        let now = Timestamp(1_700_000_000_000);
        let mut engine = Engine::linfen(EngineConfig::default());
        let mut events = Vec::new();
        let mut apply = |e: &mut Engine, c: Command| e.apply(now, &c, &mut events).expect("applies");
        let batch = BatchPolicy { window_ms: 5_000, counties: vec![141002] };
        let ranking = RankingPolicy { hardship_bonus_m: 4_000.0, ..RankingPolicy::default() };
        apply(&mut engine, Command::SetBatchPolicy(batch.clone()));
        apply(&mut engine, Command::SetRankingPolicy(ranking.clone()));
        let mut pop = linggong_engine::population::Population::linfen(Default::default());
        let mut employer = pop.employer(1);
        employer.verified = true;
        let employer_id = employer.id.clone();
        apply(&mut engine, Command::UpsertEmployer(employer));
        let mut spec = pop.posting(1, &employer_id, now);
        spec.county = 141002;
        let posting = spec.id.clone();
        apply(&mut engine, Command::SubmitPosting(spec.clone()));
        let mut worker = pop.worker(1);
        worker.county = 141002;
        worker.position = spec.position;
        worker.trades = [TradeSkillSpec { trade: spec.trade.clone(), level: 3 }].into_iter().collect();
        apply(&mut engine, Command::UpsertWorker(worker));
        let queued = apply(&mut engine, Command::InstantMatch { posting, max_offers: 0 });
        assert!(matches!(queued, Outcome::Queued { .. }), "{queued:?}");
        let expected = engine.snapshot();
        let dir = tempfile::tempdir().unwrap();
        let path = write_snapshot(dir.path(), &ServiceState::new(engine, 100).frozen()).unwrap();
        let state = load_snapshot(&path, &EngineConfig::default(), 100).unwrap();
        let restored = state.engine();
        assert_eq!(restored.snapshot(), expected);
        assert_eq!((restored.batch_policy(), &restored.config().policy), (&batch, &ranking));
        assert_eq!(restored.batch_windows().windows().len(), 1);
    }

    #[test]
    fn stored_fixtures_of_every_older_format_load_and_restore() {
        for version in [SNAPSHOT_VERSION_V1, SNAPSHOT_VERSION_V2, SNAPSHOT_VERSION_V3] {
            let bytes = fixture(version);
            assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), version);
            let (seq, state) = decode_snapshot(&bytes).unwrap_or_else(|e| panic!("version {version}: {e}"));
            assert_eq!(seq, 14);
            assert_fixture_state(version, &state);
            let restored = ServiceState::restore(EngineConfig::default(), state, 16).unwrap();
            assert_eq!(restored.engine().worker_count(), 4);
            assert_eq!(restored.last_seq(), 14);
        }
    }

    #[test]
    fn a_restored_fixture_round_trips_through_the_current_format() {
        let (_, old) = decode_snapshot(&fixture(SNAPSHOT_VERSION_V3)).unwrap();
        let state = ServiceState::restore(EngineConfig::default(), old, 16).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write_snapshot(dir.path(), &state.frozen()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), SNAPSHOT_VERSION);
        let (seq, new) = decode_snapshot(&bytes).unwrap();
        assert_eq!(seq, 14);
        assert_fixture_state(SNAPSHOT_VERSION, &new);
        let (_, mut old) = decode_snapshot(&fixture(SNAPSHOT_VERSION_V3)).unwrap();
        // Format 3 recorded no policies: the restored state ranks by the configuration's, and says so.
        assert_eq!((old.engine.ranking_policy.take(), old.engine.batch_policy.take()), (None, None));
        old.engine.ranking_policy = Some(EngineConfig::default().policy);
        old.engine.batch_policy = Some(EngineConfig::default().batch);
        assert_eq!(new, old, "the current format keeps everything format 3 held");
        let reloaded = load_snapshot(&path, &EngineConfig::default(), 16).unwrap();
        assert_eq!(reloaded.engine().snapshot(), state.engine().snapshot());
    }

    #[test]
    fn reviewers_and_resolvers_round_trip() {
        use crate::convert::wal::{Actor, LoggedCommand};
        use linggong_engine::{Command, Timestamp};
        let (_, old) = decode_snapshot(&fixture(SNAPSHOT_VERSION_V3)).unwrap();
        let mut state = ServiceState::restore(EngineConfig::default(), old, 16).unwrap();
        let resolve = LoggedCommand {
            now: Timestamp(1_700_000_100_000),
            request_key: None,
            command: Command::ResolveComplaint {
                complaint: 2,
                resolution: ComplaintResolution::Dismissed,
                note: "查无实据".into(),
            },
            actor: Some(Actor { name: "王芳".into(), person_id: Some("LF-0042".into()), role: "reviewer".into() }),
            effect: None,
        };
        state.apply(&resolve, &mut Vec::new()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write_snapshot(dir.path(), &state.frozen()).unwrap();
        let loaded = load_snapshot(&path, &EngineConfig::default(), 16).unwrap();
        let resolved_by = |s: &ServiceState, id| s.engine().complaint(id).and_then(|c| c.resolved_by.clone());
        assert_eq!(resolved_by(&loaded, 2).as_deref(), Some("王芳"));
        assert_eq!(resolved_by(&loaded, 1), None, "resolved before resolvers were kept");
        assert_eq!(loaded.engine().snapshot(), state.engine().snapshot());
    }

    /// The evolution rule of format 4: a field appended with a default loads
    /// from a body written before it existed.
    #[test]
    fn fields_appended_with_defaults_load_from_older_bodies() {
        #[derive(Serialize)]
        struct Before {
            id: u64,
            state: PostingState,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        struct After {
            id: u64,
            state: PostingState,
            #[serde(default)]
            reviewed_by: Option<String>,
        }
        let mut body = Vec::new();
        encode_body(&mut body, &vec![Before { id: 7, state: PostingState::Filled }]).unwrap();
        let back: Vec<After> = rmp_serde::from_slice(&body).unwrap();
        assert_eq!(back, [After { id: 7, state: PostingState::Filled, reviewed_by: None }]);
    }

    #[test]
    fn unknown_versions_are_refused() {
        let bytes = fixture(SNAPSHOT_VERSION_V3);
        let body = &bytes[SNAPSHOT_HEADER_LEN..];
        let mut unknown = versioned_header(9, 14, body.len() as u64, crc32c::crc32c(body)).to_vec();
        unknown.extend_from_slice(body);
        assert_eq!(decode_snapshot(&unknown).err().as_deref(), Some("unsupported snapshot version 9"));
    }

    /// Every truncation and every byte changed (re-sealed, so the checksums
    /// pass and the body decoders and restore checks see it) is an error or a
    /// valid state, never a panic; truncations are always errors.
    #[test]
    fn damaged_bodies_of_every_format_give_errors_never_panics() {
        let (_, old) = decode_snapshot(&fixture(SNAPSHOT_VERSION_V3)).unwrap();
        let state = ServiceState::restore(EngineConfig::default(), old, 16).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let current = std::fs::read(write_snapshot(dir.path(), &state.frozen()).unwrap()).unwrap();
        for bytes in [fixture(1), fixture(2), fixture(3), current] {
            let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            let body = &bytes[SNAPSHOT_HEADER_LEN..];
            let seal = |b: &[u8]| {
                let mut out = versioned_header(version, 14, b.len() as u64, crc32c::crc32c(b)).to_vec();
                out.extend_from_slice(b);
                out
            };
            for cut in (0..body.len()).step_by(7) {
                assert!(decode_snapshot(&seal(&body[..cut])).is_err(), "version {version} cut at {cut}");
            }
            for i in (0..body.len()).step_by(9) {
                for flip in [0x01u8, 0xff] {
                    let mut damaged = body.to_vec();
                    damaged[i] ^= flip;
                    if let Ok((_, snap)) = decode_snapshot(&seal(&damaged)) {
                        let _ = ServiceState::restore(EngineConfig::default(), snap, 16);
                    }
                }
            }
            let mut flipped = bytes.clone();
            flipped[SNAPSHOT_HEADER_LEN + body.len() / 2] ^= 1;
            assert_eq!(decode_snapshot(&flipped).err().as_deref(), Some("body checksum mismatch"));
        }
    }

    #[test]
    fn a_huge_length_prefix_in_the_current_format_fails_without_allocating() {
        // A map claiming 2^32-1 entries, then an array claiming as many elements.
        for body in [
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            vec![0x81, 0xa7, b'w', b'o', b'r', b'k', b'e', b'r', b's', 0xdd, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(decode_snapshot(&seal_snapshot_body(0, &body)).is_err());
        }
    }
}
