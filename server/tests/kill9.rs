//! Kill -9 durability: a real server process under concurrent gRPC write load
//! is SIGKILLed at random moments, again and again. After every kill the data
//! directory recovers (as a server recovers it); every acknowledged write is present, no worker holds
//! two live offers and the engine's invariants hold; and the restarted server
//! answers for everything acknowledged before the kill.
//!
//! `LINGGONG_KILL9_ROUNDS` (default 20) sets the number of kills and
//! `LINGGONG_KILL9_SEED` replays a run.

mod common;

use common::*;
use linggong_engine::OfferState;
use linggong_server::config::ServerConfig;
use linggong_server::proto::v1 as pb;
use linggong_server::wal::Durability;
use pb::match_service_client::MatchServiceClient;
use pb::posting_service_client::PostingServiceClient;
use pb::review_service_client::ReviewServiceClient;
use pb::worker_service_client::WorkerServiceClient;
use rand::{RngExt, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Writes the server acknowledged.
#[derive(Default)]
struct Acked {
    workers: HashSet<String>,
    postings: HashSet<String>,
    /// Offers made by acknowledged matches, with whether their acceptance was acknowledged.
    offers: HashMap<u64, (String, bool)>,
}

const WRITERS: usize = 8;

async fn writer(channel: Channel, token: String, round: usize, task: usize, acked: Arc<Mutex<Acked>>) {
    let mut workers = WorkerServiceClient::new(channel.clone());
    let mut postings = PostingServiceClient::new(channel.clone());
    let mut matches = MatchServiceClient::new(channel);
    for n in 0u64.. {
        let id = format!("w-{round}-{task}-{n}");
        let request = pb::RegisterWorkerRequest { request_id: format!("r-{id}"), worker: Some(worker(&id, n % 400)) };
        if workers.register_worker(authed(&token, request)).await.is_err() {
            return; // the server is gone
        }
        acked.lock().await.workers.insert(id);
        if n % 3 != 2 {
            continue;
        }
        let posting_id = format!("p-{round}-{task}-{n}");
        let request = pb::SubmitPostingRequest {
            request_id: format!("r-{posting_id}"),
            posting: Some(posting(&posting_id, "e-kill9", 2)),
        };
        if postings.submit_posting(authed(&token, request)).await.is_err() {
            return;
        }
        acked.lock().await.postings.insert(posting_id.clone());
        let request = pb::InstantMatchRequest { request_id: format!("m-{posting_id}"), posting_id, max_offers: 0 };
        let Ok(response) = matches.instant_match(authed(&token, request)).await else { return };
        let offers = response.into_inner().offers;
        {
            let mut a = acked.lock().await;
            for o in &offers {
                a.offers.insert(o.offer_id, (o.worker_id.clone(), false));
            }
        }
        if let Some(o) = offers.first() {
            let request = pb::RespondToOfferRequest {
                request_id: format!("a-{}", o.offer_id),
                offer_id: o.offer_id,
                worker_id: o.worker_id.clone(),
                response: pb::OfferResponse::Accept as i32,
            };
            if matches.respond_to_offer(authed(&token, request)).await.is_err() {
                return;
            }
            acked.lock().await.offers.insert(o.offer_id, (o.worker_id.clone(), true));
        }
    }
}

/// Recovers the data directory in this process (as a restart would) and checks it.
/// Recovers the data directory as a server does (an in-process server on an
/// ephemeral port: the Raft member loads its snapshot and applies the
/// committed log after it) and checks what it holds.
async fn check_recovered(data: &std::path::Path, acked: &Acked) -> anyhow::Result<u64> {
    let mut config = ServerConfig::new(data);
    config.durability = Durability::None;
    let server = linggong_server::app::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("recovery failed after kill -9: {e:#}"))?;
    let host = server.host.clone();
    let result = host.read_engine(|e| -> anyhow::Result<()> {
        e.check_invariants().map_err(|m| anyhow::anyhow!("invariants broken after recovery: {m}"))?;
        for id in &acked.workers {
            anyhow::ensure!(e.worker(id).is_some(), "acknowledged worker {id} lost");
        }
        for id in &acked.postings {
            anyhow::ensure!(e.posting(id).is_some(), "acknowledged posting {id} lost");
        }
        for (offer, (worker, accepted)) in &acked.offers {
            let o = e.offer(*offer).ok_or_else(|| anyhow::anyhow!("acknowledged offer {offer} lost"))?;
            anyhow::ensure!(e.worker_by_key(o.worker).id == worker.as_str(), "offer {offer} changed hands");
            if *accepted {
                anyhow::ensure!(o.state == OfferState::Accepted, "accepted offer {offer} is {:?}", o.state);
            }
        }
        let mut holders = HashSet::new();
        for o in e.live_offers() {
            anyhow::ensure!(holders.insert(o.worker), "worker {} holds two live offers", e.worker_by_key(o.worker).id);
        }
        Ok(())
    });
    let last_seq = host.recovery().last_seq;
    server.shutdown().await?;
    result.map(|()| last_seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_at_random_moments() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("LINGGONG_KILL9_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("LINGGONG_KILL9_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("kill -9 test: {rounds} rounds, LINGGONG_KILL9_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    // Small segments and frequent snapshots, so kills also land in segment
    // rolls, snapshot writes and compaction.
    let flags = ["--segment-bytes", "32768", "--snapshot-every-records", "400", "--tick-ms", "200"];
    let acked = Arc::new(Mutex::new(Acked::default()));
    let started = Instant::now();
    let mut token = String::new();
    let mut previous_round: Vec<String> = Vec::new();
    let mut records = 0;

    for round in 0..rounds {
        let server = ServerProcess::spawn(&data, &logs, &flags)?;
        if round == 0 {
            token = std::fs::read_to_string(data.join("dev-token"))?.trim().to_string();
        }
        let channel = connect(server.grpc).await?;
        if round == 0 {
            let request = pb::UpsertEmployerRequest { request_id: String::new(), employer: Some(employer("e-kill9")) };
            ReviewServiceClient::new(channel.clone()).upsert_employer(authed(&token, request)).await?;
        }
        // The restarted server answers for what was acknowledged before the last kill.
        let mut workers = WorkerServiceClient::new(channel.clone());
        for id in &previous_round {
            let got = workers
                .get_worker(authed(&token, pb::GetWorkerRequest { worker_id: id.clone(), ..Default::default() }))
                .await;
            anyhow::ensure!(got.is_ok(), "round {round}: restarted server lost worker {id}: {got:?}");
        }

        // Concurrent load, killed at a random moment.
        let before: HashSet<String> = acked.lock().await.workers.clone();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|task| tokio::spawn(writer(channel.clone(), token.clone(), round, task, acked.clone())))
            .collect();
        let delay = Duration::from_millis(rng.random_range(50..400));
        tokio::time::sleep(delay).await;
        let mut server = server;
        server.child.kill()?; // SIGKILL
        server.wait(Duration::from_secs(10))?;
        for t in tasks {
            t.await?;
        }
        drop(channel);

        let a = acked.lock().await;
        previous_round = a.workers.difference(&before).cloned().collect();
        let last_seq = check_recovered(&data, &a)
            .await
            .map_err(|e| e.context(format!("round {round} (seed {seed}, killed after {delay:?})")))?;
        anyhow::ensure!(last_seq >= records, "the log went backwards: {last_seq} < {records}");
        records = last_seq;
        eprintln!(
            "round {round}: killed after {delay:?}; {} new acknowledged workers, {} records recovered",
            previous_round.len(),
            last_seq
        );
    }
    let a = acked.lock().await;
    anyhow::ensure!(a.workers.len() > rounds * WRITERS, "the load acknowledged too little to test anything");
    anyhow::ensure!(a.offers.values().any(|(_, accepted)| *accepted), "no offer was accepted under load");
    eprintln!(
        "{rounds} kills in {:?}: {} workers, {} postings, {} offers acknowledged and recovered",
        started.elapsed(),
        a.workers.len(),
        a.postings.len(),
        a.offers.len()
    );
    Ok(())
}
