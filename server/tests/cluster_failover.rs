//! Three replicas as separate processes of the built server binary on
//! loopback ephemeral ports, with concurrent clients registering workers and
//! instant-matching postings, while the leader is killed with SIGKILL round
//! after round (10 rounds; `LINGGONG_FAILOVER_ROUNDS=100` by hand). After each
//! round: every acknowledged write is present, nothing was applied twice (the
//! service sequence equals the number of distinct writes), the engine's
//! invariants hold (no worker with two live offers, no posting over its
//! headcount), every replica reports the same state hash at the same
//! applied index and its history log holds each record once, the same as the
//! others'. The time without a successful write after each kill is
//! measured, printed for each round, and its p50/p90/p99/max printed at the end.

mod common;

use common::{authed, connect, employer, posting, worker, ServerProcess};
use linggong_server::proto::v1 as pb;
use linggong_server::raft::{admin_call, AdminRequest};
use pb::match_service_client::MatchServiceClient;
use pb::posting_service_client::PostingServiceClient;
use pb::review_service_client::ReviewServiceClient;
use pb::worker_service_client::WorkerServiceClient;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const SECRET: &str = "failover-test-secret";

struct Replica {
    id: u64,
    dir: PathBuf,
    logs: PathBuf,
    raft: String,
    grpc: SocketAddr,
    token: String,
    process: Option<ServerProcess>,
}

fn spawn(id: u64, dir: &Path, logs: &Path, raft_listen: &str) -> anyhow::Result<(ServerProcess, String)> {
    let id_s = id.to_string();
    let process = ServerProcess::spawn(
        dir,
        logs,
        &[
            "--raft-listen",
            raft_listen,
            "--node-id",
            &id_s,
            "--cluster-secret",
            SECRET,
            "--raft-heartbeat-ms",
            "50",
            "--raft-election-ms",
            "250",
            "--raft-snapshot-every",
            "500",
        ],
    )?;
    let raft = process.raft.ok_or_else(|| anyhow::anyhow!("no raft= line in the ready file"))?.to_string();
    Ok((process, raft))
}

/// Where the clients send requests: each replica's gRPC address and token.
type Directory = Arc<std::sync::RwLock<Vec<(SocketAddr, String)>>>;

/// When an acknowledged write's successful attempt was sent and when its
/// answer came.
#[derive(Debug, Clone, Copy)]
struct Ack {
    sent: Instant,
    done: Instant,
}

/// One write, retried with the same request id at each replica in turn until
/// acknowledged (bounded). A follower's NOT_LEADER sends it on at once.
async fn write(dir: &Directory, start: usize, call: &WriteCall) -> anyhow::Result<Ack> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = start;
    loop {
        let (addr, token) = {
            let d = dir.read().expect("directory");
            d[i % d.len()].clone()
        };
        let sent = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(2), call.send(addr, &token)).await;
        match result {
            Ok(Ok(())) => return Ok(Ack { sent, done: Instant::now() }),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {}
            Ok(Err(status)) if status.code() == tonic::Code::Unknown || status.code() == tonic::Code::Cancelled => {}
            Ok(Err(status)) => anyhow::bail!("{call:?} refused: {status:?}"),
            Err(_) => {}
        }
        anyhow::ensure!(Instant::now() < deadline, "{call:?} was not acknowledged within 30 s");
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Debug, Clone)]
enum WriteCall {
    Employer {
        request_id: String,
    },
    /// The posting is built once, so a retry repeats the request exactly.
    Posting {
        request_id: String,
        posting: pb::Posting,
    },
    Worker {
        request_id: String,
        id: String,
        n: u64,
    },
    Match {
        request_id: String,
        posting: String,
    },
}

impl WriteCall {
    async fn send(&self, addr: SocketAddr, token: &str) -> Result<(), tonic::Status> {
        let channel = connect(addr).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        match self {
            WriteCall::Employer { request_id } => {
                let request =
                    pb::UpsertEmployerRequest { request_id: request_id.clone(), employer: Some(employer("e1")) };
                ReviewServiceClient::new(channel).upsert_employer(authed(token, request)).await.map(|_| ())
            }
            WriteCall::Posting { request_id, posting } => {
                let request =
                    pb::SubmitPostingRequest { request_id: request_id.clone(), posting: Some(posting.clone()) };
                PostingServiceClient::new(channel).submit_posting(authed(token, request)).await.map(|_| ())
            }
            WriteCall::Worker { request_id, id, n } => {
                let request =
                    pb::RegisterWorkerRequest { request_id: request_id.clone(), worker: Some(worker(id, *n)) };
                WorkerServiceClient::new(channel).register_worker(authed(token, request)).await.map(|_| ())
            }
            WriteCall::Match { request_id, posting } => {
                let request = pb::InstantMatchRequest {
                    request_id: request_id.clone(),
                    posting_id: posting.clone(),
                    max_offers: 0,
                };
                MatchServiceClient::new(channel).instant_match(authed(token, request)).await.map(|_| ())
            }
        }
    }
}

async fn leader(replicas: &[Replica], within: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        for (i, r) in replicas.iter().enumerate() {
            if r.process.is_none() {
                continue;
            }
            if let Ok(status) = admin_call(&r.raft, SECRET, &AdminRequest::Status).await {
                if status["state"] == "Leader" {
                    return Ok(i);
                }
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_survive_repeated_leader_kills() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("LINGGONG_FAILOVER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let (mut replicas, directory, _root) = spawn_and_init().await?;

    // Setup: a verified employer and one posting per round with headcount 3.
    let setup_leader = leader(&replicas, Duration::from_secs(10)).await?;
    let (addr, token) = directory.read().expect("directory")[setup_leader].clone();
    let channel = connect(addr).await?;
    ReviewServiceClient::new(channel.clone())
        .upsert_employer(authed(
            &token,
            pb::UpsertEmployerRequest { request_id: "setup-e".into(), employer: Some(employer("e1")) },
        ))
        .await?;
    let mut distinct_writes = 1u64;
    for r in 0..rounds {
        PostingServiceClient::new(channel.clone())
            .submit_posting(authed(
                &token,
                pb::SubmitPostingRequest {
                    request_id: format!("setup-p{r}"),
                    posting: Some(posting(&format!("p{r}"), "e1", 3)),
                },
            ))
            .await?;
        distinct_writes += 1;
    }
    drop(channel);

    let acknowledged: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let matches_done = Arc::new(AtomicU64::new(0));
    let mut gaps = Vec::new();
    let mut next_worker = 0u64;
    for round in 0..rounds {
        // Two clients write concurrently until told to stop; the leader is killed meanwhile.
        let stop = Arc::new(AtomicBool::new(false));
        let last_success = Arc::new(std::sync::Mutex::new(Vec::<Ack>::new()));
        let mut clients = Vec::new();
        for c in 0..2u64 {
            let (directory, stop, acknowledged, last_success, matches_done) =
                (directory.clone(), stop.clone(), acknowledged.clone(), last_success.clone(), matches_done.clone());
            let base = next_worker + c * 100_000;
            clients.push(tokio::spawn(async move {
                let mut n = 0u64;
                let mut matched = false;
                while !stop.load(Ordering::Relaxed) && n < 100_000 {
                    let id = format!("w{}", base + n);
                    let call = if c == 1 && n == 3 && !matched {
                        matched = true;
                        WriteCall::Match { request_id: format!("m{round}"), posting: format!("p{round}") }
                    } else {
                        n += 1;
                        WriteCall::Worker { request_id: format!("r-{id}"), id: id.clone(), n: base + n }
                    };
                    let at = write(&directory, (c as usize) + n as usize, &call).await?;
                    last_success.lock().expect("successes").push(at);
                    match call {
                        WriteCall::Worker { id, .. } => {
                            acknowledged.lock().await.insert(id);
                        }
                        WriteCall::Match { .. } => {
                            matches_done.fetch_add(1, Ordering::Relaxed);
                        }
                        WriteCall::Employer { .. } | WriteCall::Posting { .. } => {}
                    }
                }
                anyhow::Ok(n)
            }));
        }
        // Let some writes through, then kill the leader.
        let deadline = Instant::now() + Duration::from_secs(20);
        while last_success.lock().expect("successes").len() < 10 {
            anyhow::ensure!(Instant::now() < deadline, "no writes before the kill");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let victim = leader(&replicas, Duration::from_secs(10)).await?;
        let killed_at = Instant::now();
        if let Some(p) = replicas[victim].process.as_mut() {
            p.signal(libc::SIGKILL);
            p.wait(Duration::from_secs(10))?;
        }
        replicas[victim].process = None;
        // Unavailability: from the kill to the first acknowledgement of a write
        // sent after it (an answer the old leader sent just before dying may
        // still arrive after the kill; it does not show the cluster serving).
        let deadline = Instant::now() + Duration::from_secs(20);
        let gap = loop {
            let first_after =
                last_success.lock().expect("successes").iter().filter(|a| a.sent > killed_at).map(|a| a.done).min();
            if let Some(t) = first_after {
                break t - killed_at;
            }
            anyhow::ensure!(Instant::now() < deadline, "no write succeeded within 20 s of killing the leader");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        println!("round {round}: write unavailability {:.1} ms", gap.as_secs_f64() * 1000.0);
        gaps.push(gap);
        // Bring the killed replica back on its data directory and Raft port.
        let r = &mut replicas[victim];
        let (process, raft) = spawn(r.id, &r.dir, &r.logs, &r.raft.clone())?;
        assert_eq!(raft, r.raft, "the replica comes back on its Raft address");
        r.grpc = process.grpc;
        r.process = Some(process);
        directory.write().expect("directory")[victim] = (r.grpc, r.token.clone());
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            next_worker += c.await??;
        }
        next_worker += 1;

        // Checks, once every replica has applied the same index.
        let acked = acknowledged.lock().await.clone();
        let checks = same_applied_index(&replicas.iter().collect::<Vec<_>>(), Duration::from_secs(20)).await?;
        let hashes: BTreeSet<&str> = checks.iter().filter_map(|c| c["state_hash"].as_str()).collect();
        assert_eq!(hashes.len(), 1, "round {round}: same state hash at the same applied index: {checks:?}");
        same_histories(&replicas, &checks).map_err(|e| anyhow::anyhow!("round {round}: {e}"))?;
        for c in &checks {
            assert_eq!(c["invariants"], "ok", "round {round}: {c}");
            let expected = distinct_writes + acked.len() as u64 + matches_done.load(Ordering::Relaxed);
            // A match that found nobody changes nothing and takes no sequence number.
            let seq = c["service_seq"].as_u64().unwrap_or(0);
            assert!(
                seq <= expected && seq + matches_done.load(Ordering::Relaxed) >= expected,
                "round {round}: {seq} state changes for {expected} distinct writes: nothing may apply twice"
            );
            assert_eq!(c["workers"].as_u64(), Some(acked.len() as u64), "round {round}: every acknowledged worker");
        }
        // Every acknowledged worker is readable on the leader (linearizable read).
        let l = leader(&replicas, Duration::from_secs(10)).await?;
        let (addr, token) = directory.read().expect("directory")[l].clone();
        let mut workers = WorkerServiceClient::new(connect(addr).await?);
        for id in acked.iter().rev().take(20) {
            // A read the leader cannot confirm with a quorum at once is UNAVAILABLE: retried, bounded.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let request = pb::GetWorkerRequest { worker_id: id.clone(), ..Default::default() };
                match workers.get_worker(authed(&token, request)).await {
                    Ok(_) => break,
                    Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Err(s) => anyhow::bail!("round {round}: acknowledged worker {id} missing: {s:?}"),
                }
            }
        }
    }
    let mut sorted = gaps.clone();
    sorted.sort();
    println!(
        "failover over {rounds} leader kills: write unavailability p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.9),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or_default()
    );
    assert!(percentile(&sorted, 0.99) <= Duration::from_secs(3), "p99 unavailability over 3 s: {sorted:?}");
    Ok(())
}

/// Three replicas started and initialised with a leader elected; the
/// directory lists every replica (tokens are per data directory: a client
/// uses the token of the replica it calls).
async fn spawn_and_init() -> anyhow::Result<(Vec<Replica>, Directory, tempfile::TempDir)> {
    let root = tempfile::tempdir()?;
    let mut replicas = Vec::new();
    for id in 1..=3u64 {
        let dir = root.path().join(format!("data-{id}"));
        let logs = root.path().join(format!("logs-{id}"));
        let (process, raft) = spawn(id, &dir, &logs, "127.0.0.1:0")?;
        let token = std::fs::read_to_string(dir.join("dev-token"))?.trim().to_string();
        let grpc = process.grpc;
        replicas.push(Replica { id, dir, logs, raft, grpc, token, process: Some(process) });
    }
    let members: BTreeMap<u64, String> = replicas.iter().map(|r| (r.id, r.raft.clone())).collect();
    admin_call(&replicas[0].raft, SECRET, &AdminRequest::Init { members }).await.map_err(anyhow::Error::msg)?;
    let directory: Directory =
        Arc::new(std::sync::RwLock::new(replicas.iter().map(|r| (r.grpc, r.token.clone())).collect()));
    leader(&replicas, Duration::from_secs(10)).await?;
    Ok((replicas, directory, root))
}

/// Three replicas started and initialised, a verified employer written; the
/// directory lists every replica. Returns the replicas, directory and root.
async fn start_cluster() -> anyhow::Result<(Vec<Replica>, Directory, tempfile::TempDir)> {
    let (replicas, directory, root) = spawn_and_init().await?;
    let l = leader(&replicas, Duration::from_secs(10)).await?;
    let call = WriteCall::Employer { request_id: "setup-e".into() };
    write(&directory, l, &call).await?;
    Ok((replicas, directory, root))
}

/// Writers registering workers until `stop`; each acknowledgement is stamped
/// with its time and the worker id recorded.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
    clients: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Load {
    fn start(directory: &Directory) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged: Arc<std::sync::Mutex<Vec<(Instant, String)>>> = Arc::default();
        let clients = (0..2u64)
            .map(|c| {
                let (directory, stop, acknowledged) = (directory.clone(), stop.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let id = format!("w{c}-{n}");
                        let call = WriteCall::Worker { request_id: format!("r-{id}"), id: id.clone(), n };
                        let at = write(&directory, (c + n) as usize, &call).await?.done;
                        acknowledged.lock().expect("acknowledged").push((at, id));
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        Load { stop, acknowledged, clients }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().expect("acknowledged").len()
    }

    fn since(&self, from: Instant) -> usize {
        self.acknowledged.lock().expect("acknowledged").iter().filter(|(t, _)| *t > from).count()
    }

    /// Waits (bounded) until `more` further writes were acknowledged.
    async fn wait_for(&self, more: usize, within: Duration) -> anyhow::Result<()> {
        let target = self.count() + more;
        let deadline = Instant::now() + within;
        while self.count() < target {
            anyhow::ensure!(Instant::now() < deadline, "fewer than {more} writes acknowledged within {within:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Stops the writers and returns every acknowledged worker id.
    async fn finish(self) -> anyhow::Result<BTreeSet<String>> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.await??;
        }
        let acked = self.acknowledged.lock().expect("acknowledged");
        Ok(acked.iter().map(|(_, id)| id.clone()).collect())
    }
}

/// Waits (bounded by `within`) until every one of `replicas` answers the
/// operator check at the same applied index; returns their checks.
async fn same_applied_index(replicas: &[&Replica], within: Duration) -> anyhow::Result<Vec<serde_json::Value>> {
    let deadline = Instant::now() + within;
    loop {
        let mut checks = Vec::new();
        for r in replicas {
            if let Ok(c) = admin_call(&r.raft, SECRET, &AdminRequest::Check).await {
                checks.push(c);
            }
        }
        let indexes: BTreeSet<u64> = checks.iter().filter_map(|c| c["applied_index"].as_u64()).collect();
        if checks.len() == replicas.len() && indexes.len() == 1 {
            return Ok(checks);
        }
        anyhow::ensure!(Instant::now() < deadline, "replicas did not converge: {checks:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every replica's history log (`raft/history/`), read while it runs, is
/// gap-free up to its service sequence (`checks[i]` is replica `i`'s), and
/// any two hold the same record under the same number: a SIGKILL neither
/// loses nor repeats a record.
fn same_histories(replicas: &[Replica], checks: &[serde_json::Value]) -> anyhow::Result<()> {
    let members: Vec<common::MemberHistory> = replicas
        .iter()
        .zip(checks)
        .map(|(r, c)| common::MemberHistory {
            id: r.id,
            dir: r.dir.join("raft").join("history"),
            service_seq: c["service_seq"].as_u64().unwrap_or(0),
        })
        .collect();
    common::histories_agree(&members).map_err(anyhow::Error::msg)
}

/// Waits (bounded) until the running replicas have applied the same index,
/// then checks: same state hash, invariants hold, every acknowledged worker
/// is there and nothing applied twice (the service sequence counts the
/// employer plus one per distinct worker).
async fn converged(replicas: &[Replica], acked: &BTreeSet<String>) -> anyhow::Result<Vec<serde_json::Value>> {
    let running: Vec<&Replica> = replicas.iter().filter(|r| r.process.is_some()).collect();
    let checks = same_applied_index(&running, Duration::from_secs(30)).await?;
    let hashes: BTreeSet<&str> = checks.iter().filter_map(|c| c["state_hash"].as_str()).collect();
    assert_eq!(hashes.len(), 1, "same state hash at the same applied index: {checks:?}");
    for c in &checks {
        assert_eq!(c["invariants"], "ok", "{c}");
        assert_eq!(c["workers"].as_u64(), Some(acked.len() as u64), "every acknowledged worker: {c}");
        assert_eq!(c["service_seq"].as_u64(), Some(1 + acked.len() as u64), "nothing applied twice: {c}");
    }
    Ok(checks)
}

/// A follower stopped with SIGSTOP under load: writes keep being
/// acknowledged by the other two, and after SIGCONT it catches up (from the
/// log, or from a snapshot when 500 or more entries went by meanwhile) to the
/// same state hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_catches_up_after_sigcont() -> anyhow::Result<()> {
    let (replicas, directory, _root) = start_cluster().await?;
    let l = leader(&replicas, Duration::from_secs(10)).await?;
    let f = (l + 1) % replicas.len();
    let load = Load::start(&directory);
    load.wait_for(20, Duration::from_secs(20)).await?;
    // Clients route around the member that does not answer (as a health check would).
    let all = directory.read().expect("directory").clone();
    *directory.write().expect("directory") =
        all.iter().enumerate().filter(|(i, _)| *i != f).map(|(_, a)| a.clone()).collect();
    let stopped_at = Instant::now();
    if let Some(p) = replicas[f].process.as_ref() {
        p.signal(libc::SIGSTOP);
    }
    // Stopped for at least 2 s and until 600 writes went through (past the leader's next
    // snapshot at 500 entries, so it may catch up from a snapshot), at most 8 s.
    let deadline = stopped_at + Duration::from_secs(8);
    while stopped_at.elapsed() < Duration::from_secs(2) || (load.since(stopped_at) < 600 && Instant::now() < deadline) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = load.since(stopped_at);
    let stopped_for = stopped_at.elapsed();
    if let Some(p) = replicas[f].process.as_ref() {
        p.signal(libc::SIGCONT);
    }
    *directory.write().expect("directory") = all;
    println!("follower stopped for {stopped_for:?}: {during} writes acknowledged meanwhile");
    assert!(during >= 50, "writes kept succeeding while a follower was stopped: only {during} in {stopped_for:?}");
    load.wait_for(50, Duration::from_secs(20)).await?;
    let acked = load.finish().await?;
    let checks = converged(&replicas, &acked).await?;
    println!("after SIGCONT: {} replicas at applied index {}", checks.len(), checks[0]["applied_index"]);
    Ok(())
}

/// A follower replaced by a wiped machine under a new id, with the operator
/// commands of the README (`cluster add-learner`, `promote`, `remove`): the
/// newcomer receives a snapshot and the log, and the three members converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_replaced_by_a_wiped_node_with_a_new_id() -> anyhow::Result<()> {
    let (mut replicas, directory, _root) = start_cluster().await?;
    let l = leader(&replicas, Duration::from_secs(10)).await?;
    let f = (l + 1) % replicas.len();
    let load = Load::start(&directory);
    load.wait_for(20, Duration::from_secs(20)).await?;
    // The machine dies: its process is killed and its disk is gone.
    let old_id = replicas[f].id;
    let all = directory.read().expect("directory").clone();
    *directory.write().expect("directory") =
        all.iter().enumerate().filter(|(i, _)| *i != f).map(|(_, a)| a.clone()).collect();
    if let Some(mut p) = replicas[f].process.take() {
        p.signal(libc::SIGKILL);
        p.wait(Duration::from_secs(10))?;
    }
    std::fs::remove_dir_all(&replicas[f].dir)?;
    let died_at = Instant::now();
    load.wait_for(600, Duration::from_secs(60)).await?;
    // A fresh machine under a new id, on an empty data directory.
    let new_id = 4;
    let r = &mut replicas[f];
    let (process, raft) = spawn(new_id, &r.dir, &r.logs, "127.0.0.1:0")?;
    r.id = new_id;
    r.raft = raft;
    r.grpc = process.grpc;
    r.token = std::fs::read_to_string(r.dir.join("dev-token"))?.trim().to_string();
    r.process = Some(process);
    let leader_raft = replicas[leader(&replicas, Duration::from_secs(10)).await?].raft.clone();
    let new_raft = replicas[f].raft.clone();
    let (new_s, old_s) = (new_id.to_string(), old_id.to_string());
    cluster_cli(&["add-learner", "--at", &leader_raft, "--id", &new_s, "--addr", &new_raft])?;
    cluster_cli(&["promote", "--at", &leader_raft, "--id", &new_s])?;
    cluster_cli(&["remove", "--at", &leader_raft, "--id", &old_s])?;
    let mut updated = all;
    updated[f] = (replicas[f].grpc, replicas[f].token.clone());
    *directory.write().expect("directory") = updated;
    let during = load.since(died_at);
    assert!(during >= 600, "writes kept succeeding with one member down: {during}");
    load.wait_for(50, Duration::from_secs(20)).await?;
    let acked = load.finish().await?;
    let checks = converged(&replicas, &acked).await?;
    let status = admin_call(&leader_raft, SECRET, &AdminRequest::Status).await.map_err(anyhow::Error::msg)?;
    let voters: BTreeSet<u64> = status["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["voter"] == true)
        .filter_map(|m| m["id"].as_u64())
        .collect();
    let expected: BTreeSet<u64> = replicas.iter().map(|r| r.id).collect();
    assert_eq!(voters, expected, "the new id is a voter, the old one is gone: {status}");
    println!(
        "replaced member {old_id} by {new_id}: {} replicas at applied index {}",
        checks.len(),
        checks[0]["applied_index"]
    );
    Ok(())
}

/// Runs `linggong-server cluster ARGS --cluster-secret …` and requires success.
fn cluster_cli(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(common::BINARY)
        .arg("cluster")
        .args(args)
        .args(["--cluster-secret", SECRET])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cluster {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// One posting event as a watcher sees it: (seq, posting id, state, version).
type Seen = (u64, String, i32, u64);

/// Follows `WatchPostings` of the county on `addr` after `after`, appending
/// events to `seen` and returning the last position (event or marker) once
/// the stream ends or `until` (a position) is reached.
async fn follow(addr: SocketAddr, token: &str, after: u64, until: u64, seen: &mut Vec<Seen>) -> u64 {
    let mut last = after;
    let Ok(channel) = connect(addr).await else { return last };
    let request = pb::WatchPostingsRequest { county_code: common::YAODU, after_seq: Some(after) };
    let Ok(response) = PostingServiceClient::new(channel).watch_postings(authed(token, request)).await else {
        return last;
    };
    let mut stream = response.into_inner();
    while last < until {
        match tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
            Ok(Ok(Some(m))) => {
                if let Some(e) = m.event {
                    seen.push((m.seq, e.posting_id, e.state, e.version));
                }
                last = last.max(m.seq);
            }
            _ => return last,
        }
    }
    last
}

/// A station watching postings on the leader loses it (SIGKILL) and resumes
/// on the new leader from the last number it saw: the events it got, old and
/// new leader together, are exactly those a fresh watcher from 0 gets, in the
/// same order, and every acknowledged posting is among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_on_the_new_leader_with_nothing_lost_or_repeated() -> anyhow::Result<()> {
    let (mut replicas, directory, _root) = start_cluster().await?;
    let l = leader(&replicas, Duration::from_secs(10)).await?;
    let (watch_addr, watch_token) = directory.read().expect("directory")[l].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let (directory, stop, acknowledged) = (directory.clone(), stop.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = format!("p{n}");
                let call = WriteCall::Posting { request_id: format!("r-{id}"), posting: posting(&id, "e1", 1) };
                write(&directory, n as usize, &call).await?;
                acknowledged.lock().expect("acknowledged").push(id);
            }
            anyhow::Ok(())
        })
    };
    // The station watches the leader from the start while postings go in.
    let mut seen = Vec::new();
    let watcher = tokio::spawn(async move {
        let last = follow(watch_addr, &watch_token, 0, u64::MAX, &mut seen).await;
        (last, seen)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().expect("acknowledged").len() < 20 {
        anyhow::ensure!(Instant::now() < deadline, "no postings before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(mut p) = replicas[l].process.take() {
        p.signal(libc::SIGKILL);
        p.wait(Duration::from_secs(10))?;
    }
    let (last, mut seen) = watcher.await?;
    anyhow::ensure!(!seen.is_empty(), "the station saw events on the first leader");
    let before_kill = seen.len();
    // More postings on the new leader, then stop writing.
    let after_kill = acknowledged.lock().expect("acknowledged").len() + 20;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().expect("acknowledged").len() < after_kill {
        if writer.is_finished() {
            writer.await??;
            anyhow::bail!("the writer stopped after the kill without an error");
        }
        anyhow::ensure!(Instant::now() < deadline, "no postings after the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await??;
    let acked = acknowledged.lock().expect("acknowledged").clone();
    let nl = leader(&replicas, Duration::from_secs(10)).await?;
    let end = admin_call(&replicas[nl].raft, SECRET, &AdminRequest::Check).await.map_err(anyhow::Error::msg)?;
    let applied = end["applied_index"].as_u64().unwrap_or(0);
    // The position of the newest event on the new leader: a live-only watch starts with a marker there.
    let (addr, token) = directory.read().expect("directory")[nl].clone();
    let newest = {
        let channel = connect(addr).await?;
        let request = pb::WatchPostingsRequest { county_code: common::YAODU, after_seq: None };
        let mut s = PostingServiceClient::new(channel).watch_postings(authed(&token, request)).await?.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), s.message()).await??;
        first.map(|m| m.seq).unwrap_or(0)
    };
    // Resume from the last number seen, and a fresh watcher from 0, both up to `newest`.
    let mut resumed_at = last;
    let deadline = Instant::now() + Duration::from_secs(30);
    while resumed_at < newest {
        anyhow::ensure!(Instant::now() < deadline, "could not resume after {resumed_at} (newest {newest})");
        resumed_at = follow(addr, &token, resumed_at, newest, &mut seen).await;
    }
    let mut fresh = Vec::new();
    let fresh_at = follow(addr, &token, 0, newest, &mut fresh).await;
    assert_eq!(fresh_at, newest, "a fresh watcher reaches the newest position");
    assert!(seen.len() > before_kill, "events after the kill were seen on the new leader");
    assert_eq!(seen, fresh, "resumed stream = fresh stream from 0 (nothing lost, repeated or reordered)");
    let seqs: Vec<u64> = seen.iter().map(|e| e.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "increasing event numbers: {seqs:?}");
    let posted: BTreeSet<&str> = seen.iter().map(|e| e.1.as_str()).collect();
    for id in &acked {
        assert!(posted.contains(id.as_str()), "acknowledged posting {id} has an event");
    }
    println!(
        "watch across a leader kill: {before_kill} events on the old leader, {} in all up to seq {newest} (applied index {applied}), {} postings acknowledged",
        seen.len(),
        acked.len()
    );
    Ok(())
}
