//! Crash recovery. Of a single-node data directory (the layout servers wrote
//! before every server was a Raft member, read by the migration): a log
//! truncated at every byte offset, single bit flips, a gap, snapshot crash
//! points and snapshots of older formats always give exactly a prefix of what
//! was written or a refusal naming the file; the migrated directory then
//! serves as a member. Of the member host: injected write and fsync faults
//! are fail-stop and lose nothing acknowledged, and request ids survive a
//! restart that applies the Raft log again.

use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, Engine, EngineSnapshot, OfferResponse, Outcome, Timestamp};
use linggong_server::convert::wal::{encode, Effect, LoggedCommand};
use linggong_server::host::{Host, HostConfig, HostError, SubmitError};
use linggong_server::migrate::recover_pre_raft;
use linggong_server::state::ServiceState;
use linggong_server::wal::{
    list_segments, Durability, Fault, FaultyStorage, StdStorage, WalConfig, WalWriter, HEADER_LEN,
};
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;

fn config(dir: &Path) -> HostConfig {
    let mut c = HostConfig::new(dir);
    c.durability = Durability::None;
    let clock = Arc::new(AtomicI64::new(T0));
    c.clock = Arc::new(move || Timestamp(clock.fetch_add(1_000, Ordering::Relaxed)));
    c
}

/// A day's worth of varied commands: employer, workers, postings, matches, answers.
fn script() -> Vec<Command> {
    let mut pop = Population::linfen(PopulationConfig { spread_m: 1_500.0, ..PopulationConfig::default() });
    let mut cmds = Vec::new();
    let mut employer = pop.employer(1);
    employer.verified = true;
    cmds.push(Command::UpsertEmployer(employer));
    let mut postings = Vec::new();
    for i in 0..2 {
        let mut p = pop.posting(i, "e1", Timestamp(T0));
        p.county = 141002;
        p.position = linggong_engine::LatLon { lat: 36.08, lon: 111.52 };
        p.trade = "porter".into();
        p.headcount = 3;
        p.daily_wage = 300;
        postings.push(p.id.clone());
        cmds.push(Command::SubmitPosting(p));
    }
    for i in 0..8 {
        let mut w = pop.worker(i);
        w.county = 141002;
        w.position = linggong_engine::LatLon { lat: 36.08 + i as f64 * 0.001, lon: 111.52 };
        w.trades = smallvec_porter();
        w.min_daily_wage = 100;
        cmds.push(Command::UpsertWorker(w));
    }
    for p in postings {
        cmds.push(Command::InstantMatch { posting: p, max_offers: 0 });
    }
    cmds.push(Command::MoveWorker { worker: "w3".into(), position: linggong_engine::LatLon { lat: 36.1, lon: 111.5 } });
    cmds
}

fn smallvec_porter() -> smallvec::SmallVec<[linggong_engine::TradeSkillSpec; 4]> {
    smallvec::smallvec![linggong_engine::TradeSkillSpec { trade: "porter".into(), level: 3 }]
}

/// Writes commands as a single-node log in `<dir>/wal/` (records as the
/// single-node host wrote them: command, time, effect), keeping the state.
struct SingleNodeLog {
    state: ServiceState,
    wal: WalWriter,
    now: i64,
    /// The engine state after each record (index = sequence number).
    states: Vec<EngineSnapshot>,
}

impl SingleNodeLog {
    fn create(dir: &Path, segment_bytes: u64) -> SingleNodeLog {
        let c = config(dir);
        let state = ServiceState::new(Engine::new(c.engine, c.regions, c.trades), c.dedupe_capacity);
        let wal_config = WalConfig { dir: dir.join("wal"), segment_bytes, durability: Durability::None };
        let wal = WalWriter::open(Arc::new(StdStorage), wal_config, None, 1).expect("a fresh log");
        let states = vec![state.engine().snapshot()];
        SingleNodeLog { state, wal, now: T0, states }
    }

    fn apply(&mut self, command: Command) -> Outcome {
        self.now += 1_000;
        let mut logged =
            LoggedCommand { now: Timestamp(self.now), request_key: None, command, actor: None, effect: None };
        let (applied, must_log) = self.state.apply(&logged, &mut Vec::new()).expect("scripted command applies");
        if must_log {
            logged.effect = Effect::of(&applied.outcome);
            let mut payload = Vec::new();
            encode(&logged, &mut payload);
            self.wal.append([(applied.seq, payload.as_slice())]).expect("append");
            assert_eq!(applied.seq as usize, self.states.len());
            self.states.push(self.state.engine().snapshot());
        }
        applied.outcome
    }

    /// Writes a snapshot of the current state into `<dir>/snapshots/`.
    fn snapshot(&self, dir: &Path) {
        linggong_server::snapshot::write_snapshot(&dir.join("snapshots"), &self.state.frozen()).expect("snapshot");
    }

    fn close(mut self) -> Vec<EngineSnapshot> {
        self.wal.sync_now().expect("sync");
        self.states
    }
}

/// Writes the script as a single-node log in `dir`, answering the first
/// offer, and returns the engine state after each record.
fn build_log(dir: &Path) -> Vec<EngineSnapshot> {
    let mut log = SingleNodeLog::create(dir, 64 << 20);
    let mut accepted = false;
    for cmd in script() {
        if let (Outcome::Matched { offers, .. }, false) = (log.apply(cmd), accepted) {
            if let Some(o) = offers.first() {
                let worker = o.worker.clone();
                log.apply(Command::RespondToOffer { offer: o.offer, worker, response: OfferResponse::Accept });
                accepted = true;
            }
        }
    }
    log.close()
}

fn only_segment(dir: &Path) -> PathBuf {
    let segs = list_segments(&dir.join("wal")).unwrap();
    assert_eq!(segs.len(), 1, "test log fits one segment");
    segs[0].1.clone()
}

fn copy_wal(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("wal")).unwrap();
    for entry in std::fs::read_dir(from.join("wal")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join("wal").join(p.file_name().unwrap())).unwrap();
    }
}

/// The state the migration reads from a single-node directory.
fn recover(dir: &Path) -> Result<(ServiceState, linggong_server::host::RecoveryReport), HostError> {
    recover_pre_raft(&config(dir), |events| events.clear())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_at_every_offset_recovers_exactly_the_complete_prefix() {
    let source = tempfile::tempdir().unwrap();
    let states = build_log(source.path());
    let seg = only_segment(source.path());
    let bytes = std::fs::read(&seg).unwrap();
    // Record boundaries: the end offset of each complete record.
    let mut ends = Vec::new();
    let mut off = HEADER_LEN;
    while off < bytes.len() {
        let frame = linggong_server::wal::decode_frame(&bytes[off..]).unwrap();
        off += frame.len;
        ends.push(off);
    }
    assert_eq!(ends.len() + 1, states.len());
    for cut in HEADER_LEN..=bytes.len() {
        let dir = tempfile::tempdir().unwrap();
        copy_wal(source.path(), dir.path());
        let seg_copy = dir.path().join("wal").join(seg.file_name().unwrap());
        std::fs::write(&seg_copy, &bytes[..cut]).unwrap();
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        let (state, report) = recover(dir.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(state.last_seq(), complete as u64, "cut at {cut}");
        assert_eq!(state.engine().snapshot(), states[complete], "cut at {cut}");
        let torn = !ends.contains(&cut) && cut != HEADER_LEN;
        assert_eq!(report.truncated_tail.is_some(), torn, "cut at {cut}");
        if cut % 32 != 0 {
            continue;
        }
        // Sampled (a member start is slow in debug builds): the directory
        // migrates, takes new writes after the prefix, and they survive a restart.
        let host = Host::open(config(dir.path())).await.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(host.read(|s| s.last_seq()), complete as u64, "cut at {cut}: migrated");
        let applied = host.submit(None, Command::WithdrawWorker { worker: "w0".into() }).await;
        let expect_seq = match applied {
            Ok(a) => {
                assert_eq!(a.seq, complete as u64 + 1, "cut at {cut}");
                a.seq
            }
            Err(SubmitError::Engine(_)) => complete as u64, // w0 not registered yet in this prefix
            Err(e) => panic!("cut at {cut}: {e}"),
        };
        host.shutdown().await;
        drop(host);
        let host = Host::open(config(dir.path())).await.unwrap();
        assert_eq!(host.read(|s| s.last_seq()), expect_seq, "cut at {cut}: appended record survives");
        host.shutdown().await;
    }
}

#[test]
fn bit_flips_are_refused_or_truncated_never_a_different_state() {
    let source = tempfile::tempdir().unwrap();
    let states = build_log(source.path());
    let seg = only_segment(source.path());
    let bytes = std::fs::read(&seg).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (mut refused, mut recovered) = (0, 0);
    for _ in 0..300 {
        let at = rng.random_range(0..bytes.len());
        let bit = 1u8 << rng.random_range(0..8);
        let dir = tempfile::tempdir().unwrap();
        copy_wal(source.path(), dir.path());
        let mut damaged = bytes.clone();
        damaged[at] ^= bit;
        let seg_copy = dir.path().join("wal").join(seg.file_name().unwrap());
        std::fs::write(&seg_copy, &damaged).unwrap();
        match recover(dir.path()) {
            Ok((state, report)) => {
                recovered += 1;
                let seq = state.last_seq() as usize;
                assert!(seq < states.len(), "flip at {at}");
                assert_eq!(state.engine().snapshot(), states[seq], "flip at {at}: not a prefix state");
                assert!(seq == states.len() - 1 || report.truncated_tail.is_some(), "flip at {at}");
            }
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                assert!(matches!(e, HostError::Refused(_)), "flip at {at}: {msg}");
                assert!(msg.contains(seg.file_name().unwrap().to_str().unwrap()), "error names the file: {msg}");
                assert!(msg.contains("offset"), "error names the offset: {msg}");
            }
        }
    }
    // Every flip is refused (a damaged last record is refused too) except one
    // that makes the last record's length point past the end of the file: that
    // looks like an interrupted write and is truncated as a torn tail.
    assert!(refused > 200 && recovered > 0, "refused {refused}, recovered {recovered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_middle_is_refused_with_the_file_named() {
    let source = tempfile::tempdir().unwrap();
    let states = build_log(source.path());
    let seg = only_segment(source.path());
    let bytes = std::fs::read(&seg).unwrap();
    let first = linggong_server::wal::decode_frame(&bytes[HEADER_LEN..]).unwrap();
    // Drop the first record: every later one now follows a gap.
    let mut damaged = bytes[..HEADER_LEN].to_vec();
    damaged.extend_from_slice(&bytes[HEADER_LEN + first.len..]);
    std::fs::write(&seg, &damaged).unwrap();
    let err = Host::open(config(source.path())).await.err().expect("a gap refuses to start");
    let msg = err.to_string();
    assert!(msg.contains("sequence") && msg.contains(seg.file_name().unwrap().to_str().unwrap()), "{msg}");
    assert!(states.len() > 2);
    assert!(!source.path().join("raft").join("snapshot").exists(), "nothing was migrated");
}

#[test]
fn snapshot_crash_points_recover() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SingleNodeLog::create(dir.path(), 600); // many small segments
    let mut pop = Population::linfen(PopulationConfig::default());
    for i in 0..60 {
        log.apply(Command::UpsertWorker(pop.worker(i)));
        if i == 41 || i == 48 {
            log.snapshot(dir.path());
        }
    }
    let expected = log.close().pop().unwrap();
    let snaps = linggong_server::snapshot::list_snapshots(&dir.path().join("snapshots")).unwrap();
    assert_eq!(snaps.len(), 2);
    // Crash after writing the temp file, before the rename: the temp is ignored.
    std::fs::write(dir.path().join("snapshots").join("snapshot-00000000000000000099.bin.tmp"), b"partial").unwrap();
    let (state, report) = recover(dir.path()).unwrap();
    assert_eq!(state.engine().snapshot(), expected);
    assert_eq!(report.snapshot.as_ref(), Some(&snaps[0].1), "the newest snapshot is loaded");
    // The newest snapshot is damaged: fall back to the older one plus the log.
    let mut bytes = std::fs::read(&snaps[0].1).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snaps[0].1, &bytes).unwrap();
    let (state, report) = recover(dir.path()).unwrap();
    assert_eq!(report.skipped_snapshots.len(), 1);
    assert_eq!(state.engine().snapshot(), expected);
    // Every snapshot unreadable and the log's beginning gone: refuse, naming the file.
    for (_, p) in &snaps {
        std::fs::write(p, b"garbage").unwrap();
    }
    let first = list_segments(&dir.path().join("wal")).unwrap()[0].1.clone();
    std::fs::remove_file(first).unwrap();
    let err = recover(dir.path()).err().expect("no usable snapshot refuses");
    assert!(err.to_string().contains("snapshot"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_directory_serves_its_state_and_moves_the_old_files_aside() {
    let dir = tempfile::tempdir().unwrap();
    let states = build_log(dir.path());
    let host = Host::open(config(dir.path())).await.expect("migrates");
    assert!(host.recovery().migrated);
    assert_eq!(host.read_engine(|e| e.snapshot()), *states.last().unwrap());
    assert!(dir.path().join("raft").join("snapshot").is_file(), "a member snapshot holds the migrated state");
    assert!(!dir.path().join("wal").exists(), "the single-node log was moved aside");
    assert!(dir.path().join("pre-raft").join("wal").is_dir());
    let last = states.len() as u64 - 1;
    let applied = host.submit(None, Command::WithdrawWorker { worker: "w0".into() }).await.unwrap();
    assert_eq!(applied.seq, last + 1, "the sequence continues");
    let after = host.read_engine(|e| e.snapshot());
    // A restart without a final snapshot applies the Raft log after the migrated one.
    host.member().shutdown().await;
    drop(host);
    let host = Host::open(config(dir.path())).await.expect("reopens");
    assert!(!host.recovery().migrated);
    assert_eq!(host.read(|s| s.last_seq()), last + 1);
    assert_eq!(host.read_engine(|e| e.snapshot()), after, "the write after migration survives");
    host.shutdown().await;
}

/// A migration that stops before a member snapshot holds the old state (here:
/// the directory is first started as a member not yet in any cluster, which
/// applies nothing) keeps the single-node files, and the next start migrates
/// from them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_migration_keeps_the_old_files_and_is_done_again() {
    let dir = tempfile::tempdir().unwrap();
    let states = build_log(dir.path());
    let cluster = linggong_server::raft::cli::ClusterSettings {
        raft_listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        grpc_advertise: None,
        http_advertise: None,
        node_id: 1,
        secret: "test-secret".into(),
        heartbeat_ms: 50,
        election_ms: 300,
        snapshot_every: 100_000,
        snapshot_every_bytes: 256 << 20,
        bootstrap: false,
    };
    let clients = linggong_server::raft::ClientAddrs::default();
    let waiting = Host::open_member(config(dir.path()), Some(&cluster), clients).await.expect("opens uninitialised");
    assert!(waiting.recovery().migrated);
    assert!(!dir.path().join("raft").join("snapshot").exists(), "nothing applied, so no member snapshot");
    assert!(dir.path().join("wal").is_dir(), "the single-node log stays");
    waiting.shutdown().await;
    drop(waiting);
    let host = Host::open(config(dir.path())).await.expect("migrates again");
    assert!(host.recovery().migrated);
    assert_eq!(host.read_engine(|e| e.snapshot()), *states.last().unwrap());
    assert!(!dir.path().join("wal").exists() && dir.path().join("pre-raft").join("wal").is_dir());
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_failure_is_fail_stop_and_loses_nothing_acknowledged() {
    for fault in [Fault::Sync, Fault::Write] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.durability = Durability::Always;
        // The first syncs and writes set up the log and the one-member group; fail a few records later.
        c.storage = Arc::new(FaultyStorage::new(fault, 12));
        let host = Host::open(c.clone()).await.unwrap();
        let mut pop = Population::linfen(PopulationConfig::default());
        let mut acknowledged = Vec::new();
        let mut first_failure = None;
        for i in 0..40 {
            let w = pop.worker(i);
            match host.submit(None, Command::UpsertWorker(w.clone())).await {
                Ok(_) => {
                    assert!(first_failure.is_none(), "{fault:?}: a write was accepted after the log failed");
                    acknowledged.push(w.id);
                }
                Err(SubmitError::Unavailable(msg)) => {
                    first_failure.get_or_insert((i, msg));
                }
                Err(e) => panic!("{e}"),
            }
        }
        let (_, msg) = first_failure.expect("the injected fault was hit");
        assert!(msg.contains("injected"), "{fault:?}: {msg}");
        assert!(!acknowledged.is_empty(), "{fault:?}: writes were acknowledged before the fault");
        let failed = tokio::time::timeout(std::time::Duration::from_secs(10), host.failed()).await;
        assert!(failed.is_ok_and(|m| m.contains("injected")), "{fault:?}: the host reports the failure");
        host.member().shutdown().await;
        drop(host);
        let mut c2 = config(dir.path());
        c2.durability = Durability::Always;
        let host = Host::open(c2).await.unwrap();
        for id in &acknowledged {
            assert!(host.read_engine(|e| e.worker(id).is_some()), "{fault:?}: acknowledged {id} lost");
        }
        host.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(config(dir.path())).await.unwrap();
    let mut pop = Population::linfen(PopulationConfig::default());
    let w = pop.worker(1);
    let first = host.submit(Some("station-a/req-1".into()), Command::UpsertWorker(w.clone())).await.unwrap();
    host.shutdown().await;
    drop(host);
    let host = Host::open(config(dir.path())).await.unwrap();
    let again = host.submit(Some("station-a/req-1".into()), Command::UpsertWorker(w)).await.unwrap();
    assert_eq!(again, first, "the retry returns the first result");
    assert_eq!(host.read(|s| s.last_seq()), first.seq, "and applies nothing");
    host.shutdown().await;
}

/// Offset of the last record of a segment.
fn last_record_offset(bytes: &[u8]) -> usize {
    let mut off = HEADER_LEN;
    let mut last = off;
    while off < bytes.len() {
        last = off;
        off += linggong_server::wal::decode_frame(&bytes[off..]).unwrap().len;
    }
    last
}

#[test]
fn a_damaged_last_record_is_refused_while_a_torn_write_is_truncated() {
    let source = tempfile::tempdir().unwrap();
    let states = build_log(source.path());
    let seg = only_segment(source.path());
    let bytes = std::fs::read(&seg).unwrap();
    let last = last_record_offset(&bytes);
    let write_copy = |contents: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        copy_wal(source.path(), dir.path());
        std::fs::write(dir.path().join("wal").join(seg.file_name().unwrap()), contents).unwrap();
        dir
    };

    // A flipped byte inside the payload of the complete last record: it may be
    // an acknowledged record, so start-up refuses rather than dropping it.
    let mut flipped = bytes.clone();
    flipped[last + linggong_server::wal::FRAME_LEN + 2] ^= 0x40;
    let dir = write_copy(&flipped);
    let err = recover(dir.path()).err().expect("a damaged last record is refused");
    let msg = err.to_string();
    assert!(matches!(err, HostError::Refused(_)), "{msg}");
    assert!(msg.contains("damaged last record") && msg.contains("wal repair"), "{msg}");

    // The same record zero-filled (a write that never reached the disk) is a torn tail.
    let mut zeroed = bytes.clone();
    zeroed[last..].fill(0);
    let dir = write_copy(&zeroed);
    let (state, report) = recover(dir.path()).expect("a zero-filled last record is a torn write");
    assert!(report.truncated_tail.is_some());
    assert_eq!(state.engine().snapshot(), states[states.len() - 2]);

    // So is a last record the file ends inside.
    let dir = write_copy(&bytes[..bytes.len() - 3]);
    let (state, report) = recover(dir.path()).expect("an incomplete last record is a torn write");
    assert!(report.truncated_tail.is_some());
    assert_eq!(state.engine().snapshot(), states[states.len() - 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_request_id_is_refused_after_replaying_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(config(dir.path())).await.unwrap();
    let mut pop = Population::linfen(PopulationConfig::default());
    let w = pop.worker(1);
    let first = host.submit(Some("station-a/req-1".into()), Command::UpsertWorker(w.clone())).await.unwrap();
    // Stopped without a final snapshot: the request table is rebuilt from the Raft log alone.
    host.member().shutdown().await;
    drop(host);
    let host = Host::open(config(dir.path())).await.unwrap();
    let again = host.submit(Some("station-a/req-1".into()), Command::UpsertWorker(w.clone())).await.unwrap();
    assert_eq!(again, first, "the same request under the same id returns the first result");
    let renamed = linggong_engine::WorkerSpec { name: "改名".into(), ..w };
    let reused = host.submit(Some("station-a/req-1".into()), Command::UpsertWorker(renamed)).await;
    let err = reused.expect_err("a different request under a remembered id is refused");
    assert!(err.to_string().contains("request id"), "{err}");
    assert_eq!(host.read(|s| s.last_seq()), first.seq, "and applies nothing");
    host.shutdown().await;
}

/// A data directory holding only a snapshot of an older format (the stored
/// fixtures) migrates: the state comes back, new commands apply after it, and
/// the member snapshot is written in the current format and recovers too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directories_with_snapshots_of_older_formats_recover() {
    for version in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join("snapshots");
        std::fs::create_dir_all(&snapshots).unwrap();
        let name = linggong_server::snapshot::snapshot_name(14);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/snapshots/v{version}/{name}"));
        std::fs::copy(&fixture, snapshots.join(&name)).unwrap();
        let host = Host::open(config(dir.path())).await.expect("an old data directory opens");
        let moved = dir.path().join("pre-raft").join("snapshots").join(&name);
        assert_eq!(host.recovery().snapshot.as_deref(), Some(moved.as_path()), "loaded, then moved aside");
        assert!(host.recovery().migrated);
        assert_eq!(host.read(|s| s.last_seq()), 14);
        assert_eq!(
            host.read_engine(|e| (e.worker_count(), e.complaint(1).and_then(|c| c.resolution.clone()).is_some())),
            (4, true)
        );
        let moved =
            Command::MoveWorker { worker: "w0".into(), position: linggong_engine::LatLon { lat: 36.09, lon: 111.52 } };
        assert_eq!(host.submit(None, moved).await.expect("applies after recovery").seq, 15);
        let before = host.read_engine(|e| e.snapshot());
        host.shutdown().await;
        drop(host);
        let host = Host::open(config(dir.path())).await.expect("reopens");
        assert_eq!(host.read_engine(|e| e.snapshot()), before);
        let newest = host.recovery().snapshot.clone().expect("recovered from a snapshot");
        assert_eq!(newest, dir.path().join("raft").join("snapshot"));
        let bytes = std::fs::read(&newest).unwrap();
        let header = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let body = &bytes[4 + header..];
        assert_eq!(u32::from_le_bytes(body[8..12].try_into().unwrap()), linggong_server::snapshot::SNAPSHOT_VERSION);
        host.shutdown().await;
    }
}
