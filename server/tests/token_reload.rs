//! A running `linggong-server` picks up a token added by `linggong-server
//! token add` without a restart: at once on SIGHUP, and by itself through
//! the periodic re-read of the token table.

mod common;

use common::*;
use linggong_server::proto::v1 as pb;
use pb::worker_service_client::WorkerServiceClient;
use std::time::{Duration, Instant};

/// Adds a reviewer token to `data` with the offline tool; returns it.
fn add_reviewer(data: &std::path::Path, name: &str) -> anyhow::Result<String> {
    let dir = data.to_str().expect("UTF-8 path");
    let (status, out, err) = run_tool(&["token", "add", "--data-dir", dir, "--name", name, "--role", "reviewer"])?;
    anyhow::ensure!(status.success(), "token add failed: {err}");
    let token = out.split_whitespace().find(|w| w.starts_with("lg_")).map(str::to_string);
    token.ok_or_else(|| anyhow::anyhow!("no token printed: {out}"))
}

/// Whether the server accepts `token` (any answer but UNAUTHENTICATED).
async fn accepted(client: &mut WorkerServiceClient<tonic::transport::Channel>, token: &str) -> bool {
    let request = pb::GetWorkerRequest { worker_id: "nobody".into(), ..Default::default() };
    match client.get_worker(authed(token, request)).await {
        Ok(_) => true,
        Err(s) => s.code() != tonic::Code::Unauthenticated,
    }
}

/// Polls (bounded) until the server accepts `token`; returns how long it took.
async fn wait_accepted(
    client: &mut WorkerServiceClient<tonic::transport::Channel>,
    token: &str,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if accepted(client, token).await {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("token not accepted within {within:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_added_by_the_tool_works_after_sighup_and_after_the_file_poll() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");

    // SIGHUP: the file poll is an hour apart, so only the signal can reload.
    let server = ServerProcess::spawn(&data, &logs, &["--token-reload-ms", "3600000"])?;
    let mut client = WorkerServiceClient::new(connect(server.grpc).await?);
    let token = add_reviewer(&data, "王芳")?;
    assert!(!accepted(&mut client, &token).await, "not known before the reload");
    server.signal(libc::SIGHUP);
    wait_accepted(&mut client, &token, Duration::from_secs(10)).await?;
    assert!(server.logs().contains("token table reloaded"), "{}", server.logs());

    // A revoked token stops working the same way.
    let dir_arg = data.to_str().expect("UTF-8 path");
    let (status, _, err) = run_tool(&["token", "revoke", "--data-dir", dir_arg, "--name", "王芳"])?;
    assert!(status.success(), "{err}");
    server.signal(libc::SIGHUP);
    let started = Instant::now();
    while accepted(&mut client, &token).await {
        assert!(started.elapsed() < Duration::from_secs(10), "the revoked token still works");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut server = server;
    server.signal(libc::SIGTERM);
    assert!(server.wait(Duration::from_secs(20))?.success());

    // The file poll: no signal, a short reload interval.
    let server = ServerProcess::spawn(&data, &logs, &["--token-reload-ms", "100"])?;
    let mut client = WorkerServiceClient::new(connect(server.grpc).await?);
    let token = add_reviewer(&data, "李明")?;
    wait_accepted(&mut client, &token, Duration::from_secs(10)).await?;
    Ok(())
}
