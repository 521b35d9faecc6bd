//! Replication on openraft, in one process over loopback gRPC with ephemeral
//! ports: openraft's storage conformance suite against the Raft log and state
//! machine; a truncated suffix never reappears after a restart; a torn tail is
//! cut; three members replicate, fail over when the leader stops, keep request
//! ids idempotent across the change of leader and agree on the state hash; a
//! follower answers NOT_LEADER with the leader's client addresses (announced
//! in the membership by the leader) and its Raft address; a lone member
//! initialises itself on a fresh data directory and recovers after a restart;
//! Raft calls without the cluster secret are refused. History: `GetHistory`
//! on the leader and on the followers answers what a single node answers for
//! the same script (the records byte for byte), refused commands absent, and a
//! restarted member's history has no duplicate and no gap; a member that
//! installed a snapshot has the history after it.

use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, LatLon, Timestamp};
use linggong_server::host::{HostConfig, SubmitError};
use linggong_server::raft::{
    admin_call, open_storage, AdminRequest, ClusterCommand, ClusterNode, RaftOptions, TypeConfig,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::RaftLogReader;
use openraft::{Entry, EntryPayload, LogId, StorageError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_700_000_000_000;
const SECRET: &str = "test-cluster-secret";

fn host_config(dir: &Path) -> HostConfig {
    let mut c = HostConfig::new(dir);
    let clock = Arc::new(AtomicI64::new(T0));
    c.clock = Arc::new(move || Timestamp(clock.fetch_add(1_000, Ordering::Relaxed)));
    c
}

struct Builder;

impl
    StoreBuilder<
        TypeConfig,
        linggong_server::raft::log_store::LogStore,
        linggong_server::raft::state_machine::StateMachine,
        tempfile::TempDir,
    > for Builder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            linggong_server::raft::log_store::LogStore,
            linggong_server::raft::state_machine::StateMachine,
        ),
        StorageError<u64>,
    > {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, sm) = open_storage(&host_config(dir.path())).expect("storage opens");
        Ok((dir, log, sm))
    }
}

#[test]
fn raft_storage_passes_openraft_conformance_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(ClusterCommand { payload: vec![index as u8; 3] }),
    }
}

#[tokio::test]
async fn truncated_suffix_never_reappears_after_restart_and_torn_tail_is_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut log, _) = open_storage(&host_config(dir.path())).expect("opens");
        log.blocking_append((1..=5).map(|i| entry(1, i))).await.expect("append");
        log.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), 3)).await.expect("truncate");
        log.blocking_append([entry(2, 3)]).await.expect("append after truncation");
        log.save_vote(&openraft::Vote::new(2, 1)).await.expect("vote");
    }
    let (mut log, _) = open_storage(&host_config(dir.path())).expect("reopens");
    let entries = log.try_get_log_entries(0..100).await.expect("read");
    let ids: Vec<(u64, u64)> = entries.iter().map(|e| (e.log_id.leader_id.term, e.log_id.index)).collect();
    assert_eq!(ids, vec![(1, 1), (1, 2), (2, 3)], "entries 4 and 5 were truncated and must stay gone");
    assert_eq!(log.read_vote().await.expect("vote"), Some(openraft::Vote::new(2, 1)));
    drop(log);

    // A record torn in the middle of its body at the end of the log is cut off.
    let newest_segment = |dir: &Path| {
        let mut segments: Vec<_> = std::fs::read_dir(dir.join("raft").join("wal"))
            .expect("segment directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        segments.sort();
        segments.pop().expect("a segment")
    };
    let path = newest_segment(dir.path());
    let len = std::fs::metadata(&path).expect("log").len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(len - 2).expect("tear");
    drop(f);
    let (mut log, _) = open_storage(&host_config(dir.path())).expect("reopens after a torn tail");
    let n = log.try_get_log_entries(0..100).await.expect("read").len();
    assert_eq!(n, 2, "the torn last entry is cut, the rest kept");
    log.blocking_append([entry(2, 3)]).await.expect("appends after the cut");
    drop(log);
    let (mut log, _) = open_storage(&host_config(dir.path())).expect("reopens");
    assert_eq!(log.try_get_log_entries(0..100).await.expect("read").len(), 3);

    // Damage before the end refuses to start.
    let good = std::fs::read(&path).expect("read");
    let mut bytes = good.clone();
    bytes[10] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    assert!(open_storage(&host_config(dir.path())).is_err(), "a damaged segment header refuses to start");
    let mut bytes = good;
    bytes[linggong_server::wal::HEADER_LEN + linggong_server::wal::FRAME_LEN + 2] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    assert!(open_storage(&host_config(dir.path())).is_err(), "a damaged record before the end refuses to start");
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("raft").join("wal"))
        .expect("segment directory")
        .filter(|e| e.as_ref().expect("entry").path().extension().is_some_and(|x| x == "wal"))
        .count()
}

#[tokio::test]
async fn purge_deletes_covered_segments_and_keeps_the_rest_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = host_config(dir.path());
    config.segment_bytes = 64;
    {
        let (mut log, _) = open_storage(&config).expect("opens");
        for i in 1..=20 {
            log.blocking_append([entry(1, i)]).await.expect("append");
        }
        let before = segment_count(dir.path());
        assert!(before >= 20, "a segment holds one entry here: {before}");
        log.purge(LogId::new(openraft::CommittedLeaderId::new(1, 1), 15)).await.expect("purge");
        let after = segment_count(dir.path());
        assert!(after < before / 2, "segments wholly covered by the purge are deleted: {before} -> {after}");
    }
    let (mut log, _) = open_storage(&config).expect("reopens");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(15));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(20));
    let indexes: Vec<u64> =
        log.try_get_log_entries(0..100).await.expect("read").iter().map(|e| e.log_id.index).collect();
    assert_eq!(
        indexes,
        (16..=20).collect::<Vec<_>>(),
        "what the purge did not cover survives, nothing purged comes back"
    );
}

#[tokio::test]
async fn append_is_flushed_only_after_its_fsync_and_a_sync_error_is_fail_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = host_config(dir.path());
    let holdable = linggong_server::wal::HoldableStorage::new();
    config.storage = Arc::new(holdable.clone());
    let (log, _) = open_storage(&config).expect("opens");
    let hold = holdable.hold();
    let mut appender = log.clone();
    let pending = tokio::spawn(async move { appender.blocking_append([entry(1, 1)]).await });
    let early = tokio::time::timeout(Duration::from_millis(200), async {
        while !pending.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(early.is_err(), "the append must not be reported flushed while its fsync is held back");
    drop(hold);
    pending.await.expect("task").expect("flushed once the fsync went through");
    drop(log);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = host_config(dir.path());
    // The new segment takes two syncs (its header, the directory); the third is the first append's.
    config.storage = Arc::new(linggong_server::wal::FaultyStorage::new(linggong_server::wal::Fault::Sync, 2));
    let (mut log, _) = open_storage(&config).expect("opens");
    assert!(log.blocking_append([entry(1, 1)]).await.is_err(), "a failed fdatasync fails the append");
    assert!(log.blocking_append([entry(1, 2)]).await.is_err(), "and every later write (fail-stop)");
    assert!(log.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), 1)).await.is_err());
}

struct Member {
    node: Arc<ClusterNode>,
    addr: String,
    _dir: Option<tempfile::TempDir>,
}

async fn start_member(id: u64, dir: &Path) -> (Arc<ClusterNode>, String) {
    start_member_with(id, dir, |_| {}).await
}

/// [`start_member`] with its options changed by `tune` first.
async fn start_member_with(id: u64, dir: &Path, tune: impl FnOnce(&mut RaftOptions)) -> (Arc<ClusterNode>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut options = RaftOptions::new(id, addr.clone(), SECRET);
    // Client addresses are only announced here, never dialled.
    options.client_addr = format!("127.0.0.1:{}", 50_000 + id);
    options.http_addr = format!("127.0.0.1:{}", 8_000 + id);
    options.snapshot_every = 20;
    options.kept_after_snapshot = 0;
    tune(&mut options);
    let node = ClusterNode::start(&host_config(dir), options, listener).await.expect("member starts");
    (node, addr)
}

async fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn commands() -> Vec<Command> {
    let mut pop = Population::linfen(PopulationConfig { spread_m: 1_500.0, ..PopulationConfig::default() });
    let mut employer = pop.employer(1);
    employer.verified = true;
    let mut cmds = vec![Command::UpsertEmployer(employer)];
    let mut p = pop.posting(0, "e1", Timestamp(T0));
    p.county = 141002;
    p.position = LatLon { lat: 36.08, lon: 111.52 };
    p.trade = "porter".into();
    p.headcount = 3;
    p.daily_wage = 300;
    let posting = p.id.clone();
    cmds.push(Command::SubmitPosting(p));
    for i in 0..30 {
        let mut w = pop.worker(i);
        w.county = 141002;
        w.position = LatLon { lat: 36.08 + i as f64 * 0.0005, lon: 111.52 };
        w.trades = smallvec::smallvec![linggong_engine::TradeSkillSpec { trade: "porter".into(), level: 3 }];
        w.min_daily_wage = 100;
        cmds.push(Command::UpsertWorker(w));
    }
    cmds.push(Command::InstantMatch { posting, max_offers: 0 });
    cmds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_fail_over_and_agree() {
    let mut members = Vec::new();
    for id in 1..=3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let (node, addr) = start_member(id, dir.path()).await;
        members.push(Member { node, addr, _dir: Some(dir) });
    }
    let voters: BTreeMap<u64, String> = members.iter().map(|m| (m.node.id, m.addr.clone())).collect();
    admin_call(&members[0].addr, SECRET, &AdminRequest::Init { members: voters }).await.expect("init");
    let leader =
        wait_for("a leader", Duration::from_secs(10), || members.iter().position(|m| m.node.is_leader())).await;

    let cmds = commands();
    let (first, rest) = cmds.split_at(20);
    for (i, c) in first.iter().enumerate() {
        members[leader].node.submit(None, Some(format!("r{i}")), c.clone()).await.expect("write on the leader");
    }
    // A follower refuses writes with the leader's address.
    let follower = (leader + 1) % 3;
    // The leader announces its client addresses in the membership once elected.
    let leader_id = members[leader].node.id;
    let client = format!("127.0.0.1:{}", 50_000 + leader_id);
    let refusal = wait_for_async("the follower to name the leader's client address", Duration::from_secs(10), || {
        let (node, command, client) = (members[follower].node.clone(), first[0].clone(), client.clone());
        async move {
            match node.submit(None, None, command).await {
                Err(e @ SubmitError::NotLeader { .. }) => match &e {
                    SubmitError::NotLeader { leader_addr: Some(a), .. } if *a == client => Some(e),
                    _ => None,
                },
                other => panic!("a follower must answer NotLeader, got {other:?}"),
            }
        }
    })
    .await;
    match refusal {
        SubmitError::NotLeader { leader_id: id, leader_http_addr, leader_raft_addr, .. } => {
            assert_eq!(id, Some(leader_id));
            assert_eq!(leader_http_addr, Some(format!("127.0.0.1:{}", 8_000 + leader_id)));
            assert_eq!(leader_raft_addr.as_deref(), Some(members[leader].addr.as_str()));
        }
        other => panic!("{other:?}"),
    }
    let workers = members[leader].node.read_linearizable(|e| e.worker_count()).await.expect("linearizable read");
    assert_eq!(workers, 18, "a linearizable read sees every acknowledged write");
    assert!(matches!(
        members[follower].node.read_linearizable(|e| e.worker_count()).await,
        Err(SubmitError::NotLeader { .. })
    ));

    // Stop the leader; the two others elect a new one and keep going.
    let old = members.remove(leader);
    old.node.shutdown().await;
    let started = Instant::now();
    let leader =
        wait_for("a new leader", Duration::from_secs(10), || members.iter().position(|m| m.node.is_leader())).await;
    let failover = started.elapsed();
    assert!(failover < Duration::from_secs(5), "new leader after {failover:?}");
    // A retry of an acknowledged request after the change of leader answers the first result.
    let again = members[leader].node.submit(None, Some("r5".into()), first[5].clone()).await.expect("retry");
    let originally = members[leader]
        .node
        .read_local(|s| match s.lookup_request("r5", linggong_server::convert::wal::command_fingerprint(&first[5])) {
            linggong_server::state::RequestLookup::Repeat(a) => Some(a.clone()),
            _ => None,
        })
        .expect("r5 is remembered on the new leader");
    assert_eq!(again, originally, "a retry is answered with the first result, not applied again");
    for (i, c) in rest.iter().enumerate() {
        members[leader].node.submit(None, Some(format!("s{i}")), c.clone()).await.expect("write on the new leader");
    }
    let target = members[leader].node.state_hash().0;
    let hashes = wait_for("both members at the same applied index", Duration::from_secs(10), || {
        let h: Vec<_> = members.iter().map(|m| m.node.state_hash()).collect();
        h.iter().all(|(i, _)| *i >= target).then_some(h)
    })
    .await;
    assert_eq!(hashes[0], hashes[1], "the same state hash at the same applied index");
    let counts: Vec<usize> = members.iter().map(|m| m.node.read_local(|s| s.engine().worker_count())).collect();
    assert_eq!(counts, vec![30, 30]);
    let status = members[leader].node.status();
    assert_eq!(status["members"].as_array().map(|m| m.len()), Some(3));

    // Replace the stopped member by a wiped node under a new id: learner, promote, remove the old one.
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, addr) = start_member(4, dir.path()).await;
    let at = members[leader].addr.clone();
    admin_call(&at, SECRET, &AdminRequest::AddLearner { id: 4, addr: addr.clone() }).await.expect("add learner");
    admin_call(&at, SECRET, &AdminRequest::Promote { id: 4 }).await.expect("promote");
    admin_call(&at, SECRET, &AdminRequest::Remove { id: old.node.id }).await.expect("remove the old member");
    members.push(Member { node, addr, _dir: Some(dir) });
    let moved = rest
        .iter()
        .rev()
        .find_map(|c| match c {
            Command::UpsertWorker(w) => Some(w.id.clone()),
            _ => None,
        })
        .expect("a worker");
    let move_worker = Command::MoveWorker { worker: moved, position: LatLon { lat: 36.09, lon: 111.53 } };
    members[leader].node.submit(None, Some("move".into()), move_worker).await.expect("a write after replacing");
    members[leader]
        .node
        .submit(None, Some("after-replace".into()), Command::Tick)
        .await
        .expect("write after replacing");
    let target = members[leader].node.state_hash().0;
    let hashes = wait_for("the new member caught up", Duration::from_secs(10), || {
        let h: Vec<_> = members.iter().map(|m| m.node.state_hash()).collect();
        h.iter().all(|(i, _)| *i >= target).then_some(h)
    })
    .await;
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "all three agree: {hashes:?}");
    let status = members[leader].node.status();
    let ids: Vec<u64> =
        status["members"].as_array().expect("members").iter().filter_map(|m| m["id"].as_u64()).collect();
    assert!(!ids.contains(&old.node.id) && ids.contains(&4), "{status}");
    assert_eq!(members[2].node.read_local(|s| s.engine().worker_count()), 30, "the new member has the whole state");
    assert!(
        members[leader].node.status()["purged_index"].as_u64().is_some(),
        "the leader purged its log after a snapshot, so the new member was sent the snapshot"
    );
    // The new member's history starts after the snapshot it installed and
    // then holds the same records as the leader's.
    let theirs = records(&members[2].node.shared.history_dir());
    let leaders = records(&members[leader].node.shared.history_dir());
    let first = theirs.first().expect("the write after replacing is recorded").0;
    assert!(first > 1, "no history before the installed snapshot: starts at {first}");
    let tail: Vec<_> = leaders.iter().filter(|r| r.0 >= first).cloned().collect();
    assert_eq!(theirs, tail, "the same records after the snapshot");
    for m in &members {
        m.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_member_initialises_itself_and_recovers_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, _) = start_member(1, dir.path()).await;
    assert!(node.initialize_if_fresh().await.expect("init"), "a fresh data directory initialises");
    wait_for("leadership", Duration::from_secs(10), || node.is_leader().then_some(())).await;
    for c in commands() {
        node.submit(None, None, c).await.expect("write");
    }
    let before = node.state_hash();
    let workers = node.read_linearizable(|e| e.worker_count()).await.expect("read");
    node.shutdown().await;
    drop(node);

    let (node, _) = start_member(1, dir.path()).await;
    assert!(!node.initialize_if_fresh().await.expect("init"), "an initialised member does not initialise again");
    wait_for("leadership after restart", Duration::from_secs(10), || node.is_leader().then_some(())).await;
    let after = wait_for("replay up to where it was", Duration::from_secs(10), || {
        let h = node.state_hash();
        (h.0 >= before.0).then_some(h)
    })
    .await;
    // The new term's blank entry may follow; the state itself is the same.
    assert_eq!(node.read_linearizable(|e| e.worker_count()).await.expect("read"), workers);
    assert!(after.0 >= before.0);
    let status = node.status();
    assert!(status["snapshot_index"].as_u64().is_some(), "33 entries with snapshots every 20 built one: {status}");
    node.shutdown().await;
}

/// Batched entries carry many commands each, so a count of entries alone
/// would let the in-memory log grow without bound: a member also snapshots
/// once enough command bytes were applied, the log behind the snapshot is
/// purged, and the snapshot (read from its file, not memory) restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_snapshots_by_applied_bytes_when_entries_are_few() {
    const LIMIT: u64 = 16 << 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let tune = |o: &mut RaftOptions| {
        o.snapshot_every = 1_000_000;
        o.snapshot_every_bytes = LIMIT;
    };
    let (node, _) = start_member_with(1, dir.path(), tune).await;
    node.initialize_if_fresh().await.expect("init");
    wait_for("leadership", Duration::from_secs(10), || node.is_leader().then_some(())).await;
    let mut pop = Population::linfen(PopulationConfig::default());
    const WRITES: u64 = 400;
    let writes = (0..WRITES).map(|i| {
        let (node, command) = (node.clone(), Command::UpsertWorker(pop.worker(i)));
        async move { node.submit(None, Some(format!("write-{i}")), command).await }
    });
    for result in futures::future::join_all(writes.collect::<Vec<_>>()).await {
        result.expect("write");
    }
    let entries = node.state_hash().0;
    assert!(entries < 1_000, "{entries} entries: far fewer than the entry policy's 1,000,000");
    let status = wait_for_async("a snapshot by bytes", Duration::from_secs(10), || {
        let node = node.clone();
        async move {
            let s = node.status();
            (s["snapshot_index"].as_u64().is_some() && node.shared.log_bytes_since_snapshot() < LIMIT).then_some(s)
        }
    })
    .await;
    eprintln!("snapshot by bytes after {entries} entries: {status}");
    node.shutdown().await;
    drop(node);

    let (node, _) = start_member_with(1, dir.path(), tune).await;
    wait_for("leadership after restart", Duration::from_secs(10), || node.is_leader().then_some(())).await;
    assert_eq!(node.read_linearizable(|e| e.worker_count()).await.expect("read"), WRITES as usize);
    node.shutdown().await;
}

/// Writes that arrive together share entries (the proposer's batches): each
/// caller still gets its own command's result, a refused command in a batch
/// refuses only itself, and the batches read back from the log after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_each_gets_its_own_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, _) = start_member(1, dir.path()).await;
    node.initialize_if_fresh().await.expect("init");
    wait_for("leadership", Duration::from_secs(10), || node.is_leader().then_some(())).await;
    let start_index = node.state_hash().0;
    let mut pop = Population::linfen(PopulationConfig { spread_m: 1_500.0, ..PopulationConfig::default() });
    const WRITES: u64 = 400;
    let commands: Vec<Command> = (0..WRITES)
        .map(|i| match i % 50 {
            7 => Command::InstantMatch { posting: format!("no-such-posting-{i}").into(), max_offers: 0 },
            _ => Command::UpsertWorker(pop.worker(i)),
        })
        .collect();
    let writes = commands.iter().cloned().enumerate().map(|(i, command)| {
        let node = node.clone();
        async move { (i as u64, node.submit(None, Some(format!("write-{i}")), command).await) }
    });
    let results = futures::future::join_all(writes.collect::<Vec<_>>()).await;
    for (i, result) in &results {
        if i % 50 == 7 {
            assert!(
                matches!(result, Err(SubmitError::Engine(linggong_engine::EngineError::UnknownPosting(_)))),
                "write {i}: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "write {i}: {result:?}");
        }
    }
    let upserts = WRITES - WRITES.div_ceil(50);
    assert_eq!(node.read_linearizable(|e| e.worker_count()).await.expect("read"), upserts as usize);
    let end_index = node.state_hash().0;
    let entries = end_index - start_index;
    assert!(entries < WRITES / 2, "{WRITES} concurrent writes took {entries} entries: they were not batched");
    eprintln!("{WRITES} concurrent writes in {entries} entries");
    // A repeat of a batched request id answers with its first result.
    let again = node.submit(None, Some("write-1".into()), commands[1].clone()).await;
    assert_eq!(again.expect("a repeat"), results[1].1.clone().expect("the first"));
    node.shutdown().await;
    drop(node);

    let (node, _) = start_member(1, dir.path()).await;
    wait_for("leadership after restart", Duration::from_secs(10), || node.is_leader().then_some(())).await;
    wait_for("replay of the batches", Duration::from_secs(10), || (node.state_hash().0 >= end_index).then_some(()))
        .await;
    assert_eq!(node.read_linearizable(|e| e.worker_count()).await.expect("read"), upserts as usize);
    let Command::UpsertWorker(last) = &commands[WRITES as usize - 1] else {
        unreachable!("the last write is an upsert")
    };
    let replayed = node.read_local(|s| s.engine().worker(&last.id).is_some());
    assert!(replayed, "the last batched worker is back after the restart");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_calls_without_the_cluster_secret_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, addr) = start_member(1, dir.path()).await;
    let refused = admin_call(&addr, "a-client-token", &AdminRequest::Status).await.expect_err("wrong secret");
    assert!(refused.contains("need the cluster secret"), "{refused}");
    let status = admin_call(&addr, SECRET, &AdminRequest::Status).await.expect("right secret");
    assert_eq!(status["id"], 1);
    node.shutdown().await;
}

/// The operator token of the history test's API.
const OPS_TOKEN: &str = "history-test-operator-token";
/// A county token of 尧都区 (its histories only).
const YAODU_TOKEN: &str = "history-test-yaodu-token";
const YAODU: u32 = 141002;

/// A host (single node, or a cluster member's) with the client API on a loopback port.
struct ServedApi {
    host: Arc<linggong_server::host::Host>,
    channel: tonic::transport::Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve_api(host: Arc<linggong_server::host::Host>) -> ServedApi {
    use linggong_server::auth::{hash_token, Auth, Role, TokenConfig};
    let auth = Auth::new(&[
        TokenConfig::new("ops", hash_token(OPS_TOKEN), Role::Operator, vec![]),
        TokenConfig::new("yaodu", hash_token(YAODU_TOKEN), Role::County, vec![YAODU]),
    ])
    .expect("tokens");
    let ctx = Arc::new(linggong_server::api::ApiContext {
        host: host.clone(),
        auth: Arc::new(auth),
        rpc_metrics: Arc::new(linggong_server::metrics::RpcMetrics::default()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder().add_routes(linggong_server::api::routes(ctx)).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        ),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    ServedApi { host, channel, stop: Some(stop) }
}

/// A data directory's configuration whose clock reads `clock`, which the script sets.
fn clocked_config(dir: &Path, clock: &Arc<AtomicI64>) -> HostConfig {
    let mut c = HostConfig::new(dir);
    c.durability = linggong_server::wal::Durability::None;
    let clock = clock.clone();
    c.clock = Arc::new(move || Timestamp(clock.load(Ordering::SeqCst)));
    c
}

/// A cluster member on `dir` whose Raft listener is `listener`, serving the API.
async fn start_served_member(
    id: u64,
    dir: &Path,
    clock: &Arc<AtomicI64>,
    listener: tokio::net::TcpListener,
) -> (Arc<ClusterNode>, ServedApi) {
    let addr = listener.local_addr().expect("addr").to_string();
    let mut options = RaftOptions::new(id, addr, SECRET);
    options.snapshot_every = 20;
    // Enough entries kept that a restarted member catches up from the log.
    options.kept_after_snapshot = 1_000;
    let config = clocked_config(dir, clock);
    let node = ClusterNode::start(&config, options, listener).await.expect("member starts");
    let host = linggong_server::host::Host::serving(&config, node.clone(), Default::default(), None);
    (node, serve_api(host).await)
}

/// Binds `addr` again once the stopped member's listener has let go of it (bounded).
async fn rebind(addr: &str) -> tokio::net::TcpListener {
    for _ in 0..200 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not bind {addr} again");
}

fn actor(name: &str, role: &str) -> linggong_server::convert::wal::Actor {
    linggong_server::convert::wal::Actor {
        name: name.into(),
        person_id: Some(format!("{name}-person")),
        role: role.into(),
    }
}

/// What the history script made: the subjects to ask about.
#[derive(Debug, PartialEq)]
struct Made {
    employer: String,
    posting: String,
    matched_worker: String,
    complaint: u64,
    refused: usize,
}

/// The first part of the history script: a verified employer, twelve
/// workers, a posting, a match that makes offers, an accepted offer, a filed
/// complaint; plus refused commands (an unknown offer, a reused request id,
/// an unknown worker), a remembered repeat and a tick.
async fn history_script_part1(host: &linggong_server::host::Host, clock: &AtomicI64) -> Made {
    let employer = linggong_engine::EmployerSpec {
        id: "e1".into(),
        name: "李记搬家".into(),
        kind: linggong_engine::EmployerKind::Individual,
        verified: true,
    };
    let p = linggong_engine::PostingSpec {
        id: "p1".into(),
        employer: "e1".into(),
        trade: "porter".into(),
        headcount: 3,
        position: LatLon { lat: 36.081, lon: 111.521 },
        county: YAODU,
        township: None,
        max_distance_m: 20_000,
        daily_wage: 220,
        start: Timestamp(T0 + 3_600_000 * 4),
        duration_minutes: 480,
        offer_ttl_secs: 3600,
        description: "".into(),
        source: linggong_engine::PostingSource::CountyDesk,
        version: 1,
    };
    let mut step = 0i64;
    let ops = || Some(actor("ops", "operator"));
    let mut refused = 0;
    let mut submit = async |who: Option<linggong_server::convert::wal::Actor>, key: &str, c: Command| {
        step += 1;
        clock.store(T0 + step * 60_000, Ordering::SeqCst);
        let key = (!key.is_empty()).then(|| key.to_string());
        host.submit_by(who, key, c).await
    };
    submit(ops(), "emp", Command::UpsertEmployer(employer.clone())).await.expect("employer");
    for i in 0..12 {
        let w = linggong_engine::WorkerSpec {
            id: format!("w{i}").into(),
            name: format!("零工{i}").into(),
            phone: "13800000000".into(),
            trades: smallvec::smallvec![linggong_engine::TradeSkillSpec { trade: "porter".into(), level: 3 }],
            position: LatLon { lat: 36.08 + i as f64 * 0.002, lon: 111.52 },
            county: YAODU,
            township: None,
            availability: linggong_engine::Availability::ALWAYS,
            min_daily_wage: 100,
            hardship: linggong_engine::Hardship::None,
        };
        submit(Some(actor("yaodu", "county")), &format!("w{i}"), Command::UpsertWorker(w)).await.expect("worker");
    }
    // Workers first: a worker registered while the posting is open gets its offer at once.
    submit(ops(), "post", Command::SubmitPosting(p.clone())).await.expect("posting");
    // Published by a reviewer unless the automatic review already did (then refused: the same on both).
    let approve = Command::ReviewPosting { posting: p.id.clone(), decision: linggong_engine::ReviewDecision::Approve };
    let _ = submit(Some(actor("reviewer", "reviewer")), "", approve).await;
    let matched =
        submit(ops(), "match", Command::InstantMatch { posting: p.id.clone(), max_offers: 0 }).await.expect("match");
    let offers = match matched.outcome {
        linggong_engine::Outcome::Matched { offers, .. } => offers,
        other => panic!("a match, got {other:?}"),
    };
    assert!(offers.len() >= 2, "the match makes offers: {offers:?}");
    let unknown = Command::RespondToOffer {
        offer: 999_999,
        worker: offers[0].worker.clone(),
        response: linggong_engine::OfferResponse::Accept,
    };
    refused += usize::from(submit(ops(), "", unknown).await.is_err());
    // The same request again is answered from memory; its id for another command is refused.
    submit(ops(), "emp", Command::UpsertEmployer(employer.clone())).await.expect("a remembered repeat");
    let reused = submit(ops(), "emp", Command::WithdrawWorker { worker: offers[0].worker.clone() }).await;
    refused += usize::from(matches!(reused, Err(SubmitError::RequestIdReused)));
    refused += usize::from(submit(ops(), "", Command::WithdrawWorker { worker: "w-ghost".into() }).await.is_err());
    submit(None, "", Command::Tick).await.expect("tick");
    let accept = Command::RespondToOffer {
        offer: offers[0].offer,
        worker: offers[0].worker.clone(),
        response: linggong_engine::OfferResponse::Accept,
    };
    submit(Some(actor("worker-app", "station")), "accept", accept).await.expect("accept");
    let complaint = Command::FileComplaint {
        employer: employer.id.clone(),
        posting: Some(p.id.clone()),
        county: YAODU,
        category: linggong_engine::ComplaintCategory::WageArrears,
        detail: "工资未结".into(),
    };
    let filed = submit(Some(actor("yaodu", "county")), "complaint", complaint).await.expect("complaint");
    let complaint = match filed.outcome {
        linggong_engine::Outcome::ComplaintFiled { complaint } => complaint,
        other => panic!("a complaint, got {other:?}"),
    };
    Made {
        employer: employer.id.to_string(),
        posting: p.id.to_string(),
        matched_worker: offers[0].worker.to_string(),
        complaint,
        refused,
    }
}

/// The second part: after a member's restart, the complaint is resolved and
/// the second offer declined (its worker's next offer made).
async fn history_script_part2(host: &linggong_server::host::Host, clock: &AtomicI64, made: &Made) {
    clock.store(T0 + 100 * 60_000, Ordering::SeqCst);
    let resolve = Command::ResolveComplaint {
        complaint: made.complaint,
        resolution: linggong_engine::ComplaintResolution::Upheld,
        note: "已责令支付".into(),
    };
    host.submit_by(Some(actor("ops", "operator")), Some("resolve".into()), resolve).await.expect("resolve");
    clock.store(T0 + 101 * 60_000, Ordering::SeqCst);
    let refused = Command::ResolveComplaint {
        complaint: made.complaint,
        resolution: linggong_engine::ComplaintResolution::Dismissed,
        note: "again".into(),
    };
    assert!(host.submit_by(None, None, refused).await.is_err(), "a resolved complaint is not resolved again");
    clock.store(T0 + 102 * 60_000, Ordering::SeqCst);
    host.submit_by(None, None, Command::InstantMatch { posting: made.posting.as_str().into(), max_offers: 0 })
        .await
        .expect("match again");
}

/// Every page of `subject`'s history at `api` (pages of `page_size`), as `token`.
async fn full_history(
    api: &ServedApi,
    token: &str,
    subject: linggong_server::proto::v1::get_history_request::Subject,
    page_size: i32,
) -> Vec<linggong_server::proto::v1::HistoryEntry> {
    use linggong_server::proto::v1 as pb;
    let mut client = pb::audit_service_client::AuditServiceClient::new(api.channel.clone());
    let mut out = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let mut request = tonic::Request::new(pb::GetHistoryRequest {
            subject: Some(subject.clone()),
            page_size,
            page_token: page_token.clone(),
        });
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
        let page = client.get_history(request).await.expect("GetHistory").into_inner();
        out.extend(page.entries);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
    panic!("more than 100 pages");
}

/// Every record of a log directory: (sequence number, payload).
fn records(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let outcome = linggong_server::wal::scan(dir, 0, |seq, payload| {
        out.push((seq, payload.to_vec()));
        Ok(())
    })
    .expect("scan");
    assert_eq!(outcome.problem, None, "{}", dir.display());
    out
}

async fn assert_same_histories(single: &ServedApi, cluster: &[&ServedApi], made: &Made) -> usize {
    use linggong_server::proto::v1::get_history_request::Subject as S;
    let subjects = [
        S::WorkerId(made.matched_worker.clone()),
        S::PostingId(made.posting.clone()),
        S::EmployerId(made.employer.clone()),
        S::ComplaintId(made.complaint),
    ];
    let mut total = 0;
    for subject in subjects {
        let want = full_history(single, OPS_TOKEN, subject.clone(), 0).await;
        assert!(!want.is_empty(), "{subject:?} has a history");
        assert!(!want.iter().any(|e| e.detail.contains("999999") || e.detail.contains("w-ghost")), "{want:?}");
        total += want.len();
        for api in cluster {
            assert_eq!(full_history(api, OPS_TOKEN, subject.clone(), 0).await, want, "{subject:?}");
            assert_eq!(full_history(api, OPS_TOKEN, subject.clone(), 2).await, want, "{subject:?} in pages of 2");
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_histories_equal_the_single_node_on_every_member_across_a_restart() {
    use linggong_server::proto::v1::get_history_request::Subject as S;
    // The single node (a lone member), with the same script and clock.
    let single_dir = tempfile::tempdir().expect("temp dir");
    let single_clock = Arc::new(AtomicI64::new(T0));
    let single_host =
        linggong_server::host::Host::open(clocked_config(single_dir.path(), &single_clock)).await.expect("host");
    let single = serve_api(single_host).await;
    let single_made = history_script_part1(&single.host, &single_clock).await;
    assert_eq!(single_made.refused, 3);

    let clock = Arc::new(AtomicI64::new(T0));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("temp dir")).collect();
    let mut members = Vec::new();
    let mut addrs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(listener.local_addr().expect("addr").to_string());
        members.push(Some(start_served_member(i as u64 + 1, dir.path(), &clock, listener).await));
    }
    let voters: BTreeMap<u64, String> = addrs.iter().enumerate().map(|(i, a)| (i as u64 + 1, a.clone())).collect();
    admin_call(&addrs[0], SECRET, &AdminRequest::Init { members: voters }).await.expect("init");
    let node = |m: &Option<(Arc<ClusterNode>, ServedApi)>| m.as_ref().expect("running").0.clone();
    let leader = wait_for("a leader", Duration::from_secs(10), || {
        members.iter().position(|m| m.as_ref().is_some_and(|(n, _)| n.is_leader()))
    })
    .await;
    let made = history_script_part1(&members[leader].as_ref().expect("leader").1.host, &clock).await;
    assert_eq!(made, single_made, "the same ids and refusals as the single node");

    let caught_up = |members: &[Option<(Arc<ClusterNode>, ServedApi)>]| {
        let target = node(&members[leader]).read_local(|s| s.last_seq());
        members.iter().flatten().all(|(n, _)| n.read_local(|s| s.last_seq()) >= target)
    };
    wait_for("every member applied the script", Duration::from_secs(10), || caught_up(&members).then_some(())).await;
    let apis: Vec<&ServedApi> = members.iter().flatten().map(|(_, a)| a).collect();
    let entries = assert_same_histories(&single, &apis, &made).await;
    assert!(entries > 10, "{entries} entries");
    // The employer's history names the offers the match made and the complaint filed.
    let employer = full_history(&single, OPS_TOKEN, S::EmployerId(made.employer.clone()), 0).await;
    assert!(employer.iter().any(|e| e.action == "InstantMatch" && e.outcome.contains("; offer ")), "{employer:?}");
    let filed = format!("complaint {} filed", made.complaint);
    assert!(employer.iter().any(|e| e.action == "FileComplaint" && e.outcome.contains(&filed)), "{employer:?}");
    assert_eq!(employer.iter().filter(|e| e.action == "UpsertEmployer").count(), 1, "the repeat is not recorded");
    // A county token reads its county's histories on a follower too.
    let follower = (leader + 1) % 3;
    let worker = S::WorkerId(made.matched_worker.clone());
    let api = &members[follower].as_ref().expect("follower").1;
    assert_eq!(
        full_history(api, YAODU_TOKEN, worker.clone(), 0).await,
        full_history(&single, OPS_TOKEN, worker.clone(), 0).await
    );

    // Restart a follower: it loads its snapshot and openraft applies the
    // entries after it again; its history log shows each record once.
    let (stopped, api) = members[follower].take().expect("follower");
    stopped.shutdown().await;
    drop(api);
    drop(stopped);
    let listener = rebind(&addrs[follower]).await;
    members[follower] = Some(start_served_member(follower as u64 + 1, dirs[follower].path(), &clock, listener).await);
    let restarted = node(&members[follower]);
    assert!(restarted.status()["snapshot_index"].as_u64().is_some(), "the member restarted from a snapshot");

    history_script_part2(&members[leader].as_ref().expect("leader").1.host, &clock, &made).await;
    history_script_part2(&single.host, &single_clock, &single_made).await;
    wait_for("every member applied the rest", Duration::from_secs(10), || caught_up(&members).then_some(())).await;
    let apis: Vec<&ServedApi> = members.iter().flatten().map(|(_, a)| a).collect();
    assert!(assert_same_histories(&single, &apis, &made).await > entries);

    // The records themselves are the lone member's, byte for byte, gap-free from 1.
    let want = records(&single.host.member().shared.history_dir());
    assert_eq!(want.first().map(|r| r.0), Some(1));
    assert_eq!(want.len() as u64, single.host.read(|s| s.last_seq()));
    for m in members.iter().flatten() {
        assert_eq!(records(&m.0.shared.history_dir()), want, "member {}", m.0.id);
    }
    for m in members.into_iter().flatten() {
        m.0.shutdown().await;
    }
}
