//! Clients of a cluster: three replicas as separate processes of the server
//! binary on loopback ephemeral ports, configured through the config file's
//! `[cluster]` table. A client that calls a follower gets UNAVAILABLE with an
//! ErrorInfo `NOT_LEADER` naming the leader's client gRPC address, follows it
//! and succeeds there; after every replica restarts on new client ports, the
//! new leader's announced address is the new one.

mod common;

use common::{authed, connect, employer, ServerProcess};
use linggong_server::proto::v1 as pb;
use linggong_server::raft::{admin_call, AdminRequest};
use pb::review_service_client::ReviewServiceClient;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic_types::StatusExt;

const SECRET: &str = "clients-test-secret";
const TOKEN: &str = "clients-test-operator-token";

struct Replica {
    dir: PathBuf,
    logs: PathBuf,
    config: PathBuf,
    raft: String,
    process: Option<ServerProcess>,
}

/// Writes a replica's config file: the shared operator token and the cluster
/// settings (the secret from a file beside it).
fn write_config(root: &Path, id: u64, raft_listen: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(root.join("cluster-secret"), format!("{SECRET}\n"))?;
    let path = root.join(format!("linggong-{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "[[tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nrole = \"operator\"\n\n\
             [cluster]\nraft_listen = \"{raft_listen}\"\nnode_id = {id}\nsecret_file = \"cluster-secret\"\n\
             heartbeat_ms = 50\nelection_ms = 250\n",
            linggong_server::auth::hash_token(TOKEN)
        ),
    )?;
    Ok(path)
}

fn start(dir: &Path, logs: &Path, config: &Path) -> anyhow::Result<(ServerProcess, String)> {
    let config = config.to_string_lossy().into_owned();
    let process = ServerProcess::spawn(dir, logs, &["--config", &config, "--no-dev-token"])?;
    let raft = process.raft.ok_or_else(|| anyhow::anyhow!("no raft= line in the ready file"))?.to_string();
    Ok((process, raft))
}

async fn leader(replicas: &[Replica], within: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        for (i, r) in replicas.iter().enumerate() {
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

/// Sends one write to `first` and follows NOT_LEADER answers (bounded).
/// Returns where it succeeded and the leader addresses it was sent on to.
async fn write_following(first: SocketAddr, request_id: &str) -> anyhow::Result<(SocketAddr, Vec<String>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut at = first;
    let mut followed = Vec::new();
    loop {
        let channel = match connect(at).await {
            Ok(c) => c,
            // A leader restarted on another port is named by its old address until it has
            // announced the new one: start again at the first member.
            Err(_) => {
                anyhow::ensure!(Instant::now() < deadline, "not acknowledged within 20 s (followed {followed:?})");
                at = first;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let mut client = ReviewServiceClient::new(channel);
        let request = pb::UpsertEmployerRequest { request_id: request_id.into(), employer: Some(employer("e1")) };
        match client.upsert_employer(authed(TOKEN, request)).await {
            Ok(_) => return Ok((at, followed)),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                let details = status.get_error_details();
                let info = details.error_info().filter(|i| i.reason == "NOT_LEADER");
                let leader_addr = info.and_then(|i| i.metadata.get("leader_addr")).filter(|a| !a.is_empty());
                match leader_addr {
                    Some(addr) => {
                        followed.push(addr.clone());
                        at = addr.parse()?;
                    }
                    // No leader known yet, or it has not announced its address yet: ask again.
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            Err(status) => anyhow::bail!("refused: {status:?}"),
        }
        anyhow::ensure!(Instant::now() < deadline, "not acknowledged within 20 s (followed {followed:?})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_calls_a_follower_follows_the_leaders_client_address() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let mut replicas = Vec::new();
    for id in 1..=3u64 {
        let dir = root.path().join(format!("data-{id}"));
        let logs = root.path().join(format!("logs-{id}"));
        let config = write_config(root.path(), id, "127.0.0.1:0")?;
        let (process, raft) = start(&dir, &logs, &config)?;
        // The Raft port is kept from now on: write it into the config for restarts.
        let config = write_config(root.path(), id, &raft)?;
        replicas.push(Replica { dir, logs, config, raft, process: Some(process) });
    }
    let members: BTreeMap<u64, String> = replicas.iter().zip(1u64..).map(|(r, id)| (id, r.raft.clone())).collect();
    admin_call(&replicas[0].raft, SECRET, &AdminRequest::Init { members }).await.map_err(anyhow::Error::msg)?;

    for round in 0..2 {
        let l = leader(&replicas, Duration::from_secs(15)).await?;
        let leader_grpc = replicas[l].process.as_ref().map(|p| p.grpc).expect("running");
        let follower = (l + 1) % replicas.len();
        let follower_grpc = replicas[follower].process.as_ref().map(|p| p.grpc).expect("running");
        let (done_at, followed) = write_following(follower_grpc, &format!("e1-round-{round}")).await?;
        assert!(!followed.is_empty(), "round {round}: the follower must send the call on");
        assert_eq!(followed.last(), Some(&leader_grpc.to_string()), "round {round}: named the leader's gRPC address");
        assert_eq!(done_at, leader_grpc, "round {round}: acknowledged by the leader");
        let status = admin_call(&replicas[l].raft, SECRET, &AdminRequest::Status).await.map_err(anyhow::Error::msg)?;
        let own = status["members"].as_array().and_then(|m| m.iter().find(|m| m["role"] == "leader").cloned());
        assert_eq!(
            own.as_ref().map(|m| m["client_addr"].clone()),
            Some(serde_json::json!(leader_grpc.to_string())),
            "{status}"
        );

        if round == 0 {
            // Every replica restarts on new client ports (the same Raft ports and data).
            for r in &mut replicas {
                if let Some(mut p) = r.process.take() {
                    p.signal(libc::SIGKILL);
                    p.wait(Duration::from_secs(10))?;
                }
            }
            for r in &mut replicas {
                let (process, raft) = start(&r.dir, &r.logs, &r.config)?;
                assert_eq!(raft, r.raft, "back on its Raft address");
                r.process = Some(process);
            }
        }
    }
    Ok(())
}
