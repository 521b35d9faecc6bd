//! Snapshot files: the whole service state at a log sequence number, written to
//! a temp file with a checksum, fsynced, renamed and the directory fsynced.
//! The two newest are kept; loading falls back to the older if the newer is bad.
//! Snapshots of older format versions still load: 2 (request ids without
//! fingerprints, which then match any retry) and 1 (also before the market
//! directory and the ledger, which load empty).

use crate::state::{Applied, RememberedRequest, ServiceState, StateSnapshot};
use bincode::Options;
use linggong_engine::{
    Complaint, County, CountyCounters, Employer, EngineConfig, EngineSnapshot, Offer, OfferId, Posting, Trade, Worker,
};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Snapshot file magic.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"LGSNAP01";
/// Header: magic, version u32, reserved u32, last_seq u64, body length u64, body CRC32C u32, header CRC32C u32.
pub const SNAPSHOT_HEADER_LEN: usize = 40;
/// Snapshot format version (3: remembered request ids carry the fingerprint of their command).
pub const SNAPSHOT_VERSION: u32 = 3;
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

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian()
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
pub fn write_snapshot(dir: &Path, state: &ServiceState) -> Result<PathBuf, SnapshotError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let seq = state.last_seq();
    let path = dir.join(snapshot_name(seq));
    let tmp = dir.join(format!("{}.tmp", snapshot_name(seq)));
    let file = File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&[0u8; SNAPSHOT_HEADER_LEN]).map_err(|e| io_err("write", &tmp, e))?;
    let mut body = Checksummed { inner: w, crc: 0, len: 0 };
    options()
        .serialize_into(&mut body, &state.snapshot_ref())
        .map_err(|e| io_err("write", &tmp, std::io::Error::other(e)))?;
    let (crc, len) = (body.crc, body.len);
    let mut file = body.inner.into_inner().map_err(|e| io_err("write", &tmp, e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| io_err("seek", &tmp, e))?;
    file.write_all(&header(seq, len, crc)).map_err(|e| io_err("write", &tmp, e))?;
    file.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("fsync", dir, e))?;
    Ok(path)
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
    if ![SNAPSHOT_VERSION, SNAPSHOT_VERSION_V2, SNAPSHOT_VERSION_V1].contains(&version) {
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
    let undecodable = |e: bincode::Error| format!("undecodable: {e}");
    let state: StateSnapshot = match version {
        SNAPSHOT_VERSION_V1 => {
            options().with_limit(len).deserialize::<StateSnapshotV1>(body).map_err(undecodable)?.into()
        }
        SNAPSHOT_VERSION_V2 => {
            options().with_limit(len).deserialize::<StateSnapshotV2>(body).map_err(undecodable)?.into()
        }
        _ => options().with_limit(len).deserialize(body).map_err(undecodable)?,
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

/// Request ids of format versions 1 and 2, without fingerprints: they match any retry.
fn without_fingerprints(dedupe: Vec<(String, Applied)>) -> Vec<(String, RememberedRequest)> {
    dedupe.into_iter().map(|(key, applied)| (key, RememberedRequest { fingerprint: None, applied })).collect()
}

/// Format version 2 of the service state: request ids had no fingerprints.
#[derive(Serialize, Deserialize)]
struct StateSnapshotV2 {
    last_seq: u64,
    next_event_seq: u64,
    dedupe: Vec<(String, Applied)>,
    engine: EngineSnapshot,
}

impl From<StateSnapshotV2> for StateSnapshot {
    fn from(s: StateSnapshotV2) -> Self {
        StateSnapshot {
            last_seq: s.last_seq,
            next_event_seq: s.next_event_seq,
            dedupe: without_fingerprints(s.dedupe),
            engine: s.engine,
        }
    }
}

/// Format version 1 of the service state: the engine state had no market
/// directory and no ledger.
#[derive(Serialize, Deserialize)]
struct StateSnapshotV1 {
    last_seq: u64,
    next_event_seq: u64,
    dedupe: Vec<(String, Applied)>,
    engine: EngineSnapshotV1,
}

/// Format version 1 of the engine state.
#[derive(Serialize, Deserialize)]
struct EngineSnapshotV1 {
    counties: Vec<County>,
    trades: Vec<Trade>,
    workers: Vec<Worker>,
    employers: Vec<Employer>,
    postings: Vec<Posting>,
    offers: Vec<Offer>,
    next_offer_id: OfferId,
    complaints: Vec<Complaint>,
    counters: Vec<CountyCounters>,
}

impl From<StateSnapshotV1> for StateSnapshot {
    fn from(s: StateSnapshotV1) -> Self {
        let e = s.engine;
        StateSnapshot {
            last_seq: s.last_seq,
            next_event_seq: s.next_event_seq,
            dedupe: without_fingerprints(s.dedupe),
            engine: EngineSnapshot {
                counties: e.counties,
                trades: e.trades,
                workers: e.workers,
                employers: e.employers,
                postings: e.postings,
                offers: e.offers,
                next_offer_id: e.next_offer_id,
                complaints: e.complaints,
                counters: e.counters,
                directory: Vec::new(),
                ledger: Default::default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linggong_engine::{Command, Engine, EngineSnapshot, Timestamp};

    /// The state the stored fixtures (`server/tests/fixtures/snapshots/`) hold:
    /// a verified and an unverified employer, four workers, a posting published
    /// at once with offers (one accepted), one approved by a reviewer, a filed
    /// complaint and a resolved one, one request id remembered.
    fn fixture_state() -> ServiceState {
        use crate::convert::wal::LoggedCommand;
        use linggong_engine::{
            ComplaintCategory, ComplaintResolution, EmployerKind, EmployerSpec, LatLon, OfferResponse, Outcome,
            PostingSource, ReviewDecision, TradeSkillSpec,
        };
        use linggong_engine::population::{Population, PopulationConfig};
        const T0: i64 = 1_700_000_000_000;
        let mut state = ServiceState::new(Engine::linfen(EngineConfig::default()), 16);
        let mut pop = Population::linfen(PopulationConfig { spread_m: 1_500.0, ..PopulationConfig::default() });
        let mut at = T0;
        let mut apply = |state: &mut ServiceState, key: Option<&str>, command: Command| {
            at += 1_000;
            let logged = LoggedCommand {
                now: Timestamp(at),
                request_key: key.map(String::from),
                command,
                actor: None,
                effect: None,
            };
            state.apply(&logged, &mut Vec::new()).expect("fixture command applies").0.outcome
        };
        for (id, verified) in [("e1", true), ("e2", false)] {
            let spec = EmployerSpec {
                id: id.into(),
                name: format!("用工单位{id}").into(),
                kind: EmployerKind::Company { credit_code: "91141000MA0000001X".into() },
                verified,
            };
            apply(&mut state, None, Command::UpsertEmployer(spec));
        }
        for i in 0..4 {
            let mut w = pop.worker(i);
            w.county = 141002;
            w.position = LatLon { lat: 36.08 + i as f64 * 0.001, lon: 111.52 };
            w.trades = smallvec::smallvec![TradeSkillSpec { trade: "porter".into(), level: 3 }];
            w.min_daily_wage = 100;
            apply(&mut state, Some(&format!("reg-{i}")), Command::UpsertWorker(w));
        }
        for (i, employer) in [(1, "e1"), (2, "e2")] {
            let mut p = pop.posting(i, employer, Timestamp(T0));
            p.county = 141002;
            p.position = LatLon { lat: 36.08, lon: 111.52 };
            p.trade = "porter".into();
            p.headcount = 2;
            p.daily_wage = 300;
            p.source = PostingSource::CountyDesk;
            apply(&mut state, None, Command::SubmitPosting(p));
        }
        apply(&mut state, None, Command::ReviewPosting { posting: "p2".into(), decision: ReviewDecision::Approve });
        let Outcome::Matched { offers, .. } =
            apply(&mut state, None, Command::InstantMatch { posting: "p1".into(), max_offers: 0 })
        else {
            panic!("p1 matches")
        };
        let first = offers.first().expect("an offer");
        let accept =
            Command::RespondToOffer { offer: first.offer, worker: first.worker.clone(), response: OfferResponse::Accept };
        apply(&mut state, None, accept);
        for category in [ComplaintCategory::WageArrears, ComplaintCategory::Safety] {
            let file = Command::FileComplaint {
                employer: "e1".into(),
                posting: Some("p1".into()),
                county: 141002,
                category,
                detail: "工钱没结".into(),
            };
            apply(&mut state, None, file);
        }
        let resolve =
            Command::ResolveComplaint { complaint: 1, resolution: ComplaintResolution::Upheld, note: "已结清".into() };
        apply(&mut state, None, resolve);
        state
    }

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshots")
    }

    /// Writes the stored fixtures of formats 1, 2 and 3 (run once, with the
    /// bincode writer of those formats; kept for the record):
    /// `cargo test -p linggong-server --lib write_fixtures -- --ignored`.
    #[test]
    #[ignore]
    fn write_fixtures() {
        let state = fixture_state();
        let snap: StateSnapshot = options().deserialize(&options().serialize(&state.snapshot_ref()).unwrap()).unwrap();
        let seq = snap.last_seq;
        let write = |version: u32, body: Vec<u8>| {
            let dir = fixture_dir().join(format!("v{version}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut bytes = versioned_header(version, seq, body.len() as u64, crc32c::crc32c(&body)).to_vec();
            bytes.extend_from_slice(&body);
            std::fs::write(dir.join(snapshot_name(seq)), bytes).unwrap();
        };
        write(3, options().serialize(&state.snapshot_ref()).unwrap());
        let dedupe: Vec<(String, Applied)> = snap.dedupe.iter().map(|(k, r)| (k.clone(), r.applied.clone())).collect();
        let v2 = StateSnapshotV2 {
            last_seq: snap.last_seq,
            next_event_seq: snap.next_event_seq,
            dedupe: dedupe.clone(),
            engine: snap.engine.clone(),
        };
        write(2, options().serialize(&v2).unwrap());
        let e = snap.engine;
        let v1 = StateSnapshotV1 {
            last_seq: snap.last_seq,
            next_event_seq: snap.next_event_seq,
            dedupe,
            engine: EngineSnapshotV1 {
                counties: e.counties,
                trades: e.trades,
                workers: e.workers,
                employers: e.employers,
                postings: e.postings,
                offers: e.offers,
                next_offer_id: e.next_offer_id,
                complaints: e.complaints,
                counters: e.counters,
            },
        };
        write(1, options().serialize(&v1).unwrap());
    }

    #[test]
    fn version_1_snapshots_load_with_an_empty_directory_and_ledger() {
        let mut engine = Engine::linfen(EngineConfig::default());
        let employer = linggong_engine::EmployerSpec {
            id: "e1".into(),
            name: "李记".into(),
            kind: linggong_engine::EmployerKind::Individual,
            verified: true,
        };
        engine.apply(Timestamp(1_700_000_000_000), &Command::UpsertEmployer(employer), &mut Vec::new()).unwrap();
        let EngineSnapshot {
            counties,
            trades,
            workers,
            employers,
            postings,
            offers,
            next_offer_id,
            complaints,
            counters,
            ..
        } = engine.snapshot();
        let v1 = StateSnapshotV1 {
            last_seq: 7,
            next_event_seq: 3,
            dedupe: Vec::new(),
            engine: EngineSnapshotV1 {
                counties,
                trades,
                workers,
                employers,
                postings,
                offers,
                next_offer_id,
                complaints,
                counters,
            },
        };
        let body = options().serialize(&v1).unwrap();
        let mut bytes = versioned_header(SNAPSHOT_VERSION_V1, 7, body.len() as u64, crc32c::crc32c(&body)).to_vec();
        bytes.extend_from_slice(&body);
        let (seq, state) = decode_snapshot(&bytes).unwrap();
        assert_eq!((seq, state.last_seq, state.next_event_seq), (7, 7, 3));
        assert!(state.engine.directory.is_empty());
        let restored = ServiceState::restore(EngineConfig::default(), state, 16).unwrap();
        assert!(restored.engine().employer("e1").is_some());
        assert!(restored.engine().ledger().entries().next().is_none());
        let mut unknown = bytes.clone();
        unknown[..SNAPSHOT_HEADER_LEN].copy_from_slice(&versioned_header(
            4,
            7,
            body.len() as u64,
            crc32c::crc32c(&body),
        ));
        assert_eq!(decode_snapshot(&unknown).err().as_deref(), Some("unsupported snapshot version 4"));
    }
}
