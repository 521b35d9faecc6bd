//! Three replicas as separate processes of the built server binary on
//! loopback ephemeral ports, with concurrent clients registering workers and
//! instant-matching postings, while the leader is killed with SIGKILL round
//! after round (10 rounds; `LINGGONG_FAILOVER_ROUNDS=100` by hand). After each
//! round: every acknowledged write is present, nothing was applied twice (the
//! service sequence equals the number of distinct writes), the engine's
//! invariants hold (no worker with two live offers, no posting over its
//! headcount) and every replica reports the same state hash at the same
//! applied index. The time without a successful write after each kill is
//! measured and its p50/p99 printed.

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
    let ready = std::fs::read_to_string(logs.join("ready"))?;
    let raft = ready
        .lines()
        .find_map(|l| l.strip_prefix("raft="))
        .ok_or_else(|| anyhow::anyhow!("no raft= line in the ready file: {ready}"))?
        .trim()
        .to_string();
    Ok((process, raft))
}

/// Where the clients send requests: each replica's gRPC address and token.
type Directory = Arc<std::sync::RwLock<Vec<(SocketAddr, String)>>>;

/// One write, retried with the same request id at each replica in turn until
/// acknowledged (bounded). A follower's NOT_LEADER sends it on at once.
async fn write(dir: &Directory, start: usize, call: &WriteCall) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = start;
    loop {
        let (addr, token) = {
            let d = dir.read().expect("directory");
            d[i % d.len()].clone()
        };
        let result = tokio::time::timeout(Duration::from_secs(2), call.send(addr, &token)).await;
        match result {
            Ok(Ok(())) => return Ok(Instant::now()),
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
    Worker { request_id: String, id: String, n: u64 },
    Match { request_id: String, posting: String },
}

impl WriteCall {
    async fn send(&self, addr: SocketAddr, token: &str) -> Result<(), tonic::Status> {
        let channel = connect(addr).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        match self {
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
    // Tokens are per data directory: a client uses the token of the replica it calls.
    let directory: Directory =
        Arc::new(std::sync::RwLock::new(replicas.iter().map(|r| (r.grpc, r.token.clone())).collect()));
    leader(&replicas, Duration::from_secs(10)).await?;

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
        let last_success = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
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
        // Unavailability: from the kill to the first write acknowledged after it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let gap = loop {
            let first_after = last_success.lock().expect("successes").iter().copied().find(|t| *t > killed_at);
            if let Some(t) = first_after {
                break t - killed_at;
            }
            anyhow::ensure!(Instant::now() < deadline, "no write succeeded within 20 s of killing the leader");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
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
        let deadline = Instant::now() + Duration::from_secs(20);
        let checks = loop {
            let mut checks = Vec::new();
            for r in &replicas {
                if let Ok(c) = admin_call(&r.raft, SECRET, &AdminRequest::Check).await {
                    checks.push(c);
                }
            }
            let indexes: BTreeSet<u64> = checks.iter().filter_map(|c| c["applied_index"].as_u64()).collect();
            if checks.len() == 3 && indexes.len() == 1 {
                break checks;
            }
            anyhow::ensure!(Instant::now() < deadline, "replicas did not converge: {checks:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let hashes: BTreeSet<&str> = checks.iter().filter_map(|c| c["state_hash"].as_str()).collect();
        assert_eq!(hashes.len(), 1, "round {round}: same state hash at the same applied index: {checks:?}");
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
        "failover over {rounds} leader kills: write unavailability p50 {:?}, p99 {:?}, max {:?}",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or_default()
    );
    assert!(percentile(&sorted, 0.99) <= Duration::from_secs(3), "p99 unavailability over 3 s: {sorted:?}");
    Ok(())
}
