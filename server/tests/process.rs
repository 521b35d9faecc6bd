//! Tests of the real `linggong-server` binary: first start prints a
//! development token once, the service answers health checks and API calls,
//! SIGTERM drains and exits 0, a restart keeps the data, and the offline
//! `wal verify` / `wal repair` tools report and repair damage that start-up
//! refuses in the Raft log (every server is a Raft member, a lone one here).

mod common;

use common::*;
use linggong_server::proto::v1 as pb;
use pb::worker_service_client::WorkerServiceClient;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn segments(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(data_dir.join("raft").join("wal"))
        .expect("Raft log dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_stops_on_sigterm_and_its_tools_find_and_repair_damage() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");

    // First start: a development token is created, printed once, stored hashed.
    let mut server = ServerProcess::spawn(&data, &logs, &[])?;
    let token = std::fs::read_to_string(data.join("dev-token"))?.trim().to_string();
    assert!(token.starts_with("lg_"));
    let table = std::fs::read_to_string(data.join("tokens.toml"))?;
    assert!(!table.contains(&token) && table.contains("operator"), "{table}");
    let printed = std::fs::read_to_string(&server.stdout)?;
    assert!(printed.contains(&token) && printed.contains("grpcurl"), "{printed}");

    let channel = connect(server.grpc).await?;
    let status = HealthClient::new(channel.clone()).check(HealthCheckRequest { service: String::new() }).await?;
    assert_eq!(status.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    let mut workers = WorkerServiceClient::new(channel.clone());
    for i in 0..20u64 {
        let id = format!("w{i}");
        let request = pb::RegisterWorkerRequest { request_id: String::new(), worker: Some(worker(&id, i)) };
        workers.register_worker(authed(&token, request)).await?;
    }
    drop(workers);
    drop(channel);

    server.signal(libc::SIGTERM);
    let exit = server.wait(Duration::from_secs(20))?;
    assert!(exit.success(), "SIGTERM exits 0, got {exit}: {}", server.logs());
    assert!(server.logs().contains("final snapshot"), "{}", server.logs());

    // Second start: the token is not printed again; the data is still there.
    let mut server = ServerProcess::spawn(&data, &logs, &[])?;
    let printed = std::fs::read_to_string(&server.stdout)?;
    assert!(!printed.contains(&token), "the token is printed only on first start");
    let mut workers = WorkerServiceClient::new(connect(server.grpc).await?);
    let w = workers
        .get_worker(authed(&token, pb::GetWorkerRequest { worker_id: "w19".into(), ..Default::default() }))
        .await?
        .into_inner();
    assert_eq!(w.worker.expect("worker").worker_id, "w19");
    drop(workers);
    // A second server on the same data directory is refused.
    let refused = ServerProcess::spawn(&data, &logs, &[]).err().expect("the data directory is locked");
    assert!(refused.to_string().contains("in use"), "{refused}");
    server.signal(libc::SIGINT);
    assert!(server.wait(Duration::from_secs(20))?.success());

    // wal verify on a clean log (the Raft log: the 20 entries, the group's
    // first membership and blank entries, and committed-index records).
    let data_arg = data.to_str().expect("utf-8 path");
    let (status, out, _) = run_tool(&["wal", "verify", "--data-dir", data_arg])?;
    assert!(status.success(), "{out}");
    let records: u64 = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("records="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a record count: {out}"));
    assert!(records >= 20 && out.contains("ok: last record"), "{out}");
    assert!(out.contains("raft/snapshot"), "the final snapshot is listed: {out}");

    // Damage a record in the middle of the log (valid records follow): start-up refuses, naming the file.
    let segment = segments(&data).pop().expect("a segment");
    let len = std::fs::metadata(&segment)?.len();
    let mut f = std::fs::OpenOptions::new().write(true).open(&segment)?;
    f.seek(SeekFrom::Start(len / 2))?;
    f.write_all(&[0xFF, 0x00, 0xFF, 0x00])?;
    drop(f);
    let (status, out, _) = run_tool(&["wal", "verify", "--data-dir", data_arg])?;
    assert!(!status.success(), "verify fails on damage: {out}");
    assert!(out.contains("first problem") && out.contains(&segment.display().to_string()), "{out}");
    let refused = ServerProcess::spawn(&data, &logs, &[]).err().expect("start-up refuses a damaged log");
    assert!(refused.to_string().contains("wal repair"), "the refusal says what to do: {refused}");

    // wal repair truncates at the bad record and keeps a copy; then the server starts with the prefix.
    let (status, out, err) = run_tool(&["wal", "repair", "--data-dir", data_arg])?;
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("truncated"), "{out}");
    assert!(std::fs::read_dir(data.join("raft").join("wal"))?
        .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().contains(".damaged"))));
    let (status, out, _) = run_tool(&["wal", "verify", "--data-dir", data_arg])?;
    assert!(status.success(), "{out}");
    let mut server = ServerProcess::spawn(&data, &logs, &[])?;
    let mut workers = WorkerServiceClient::new(connect(server.grpc).await?);
    let w0 = workers
        .get_worker(authed(&token, pb::GetWorkerRequest { worker_id: "w0".into(), ..Default::default() }))
        .await?
        .into_inner();
    assert_eq!(w0.worker.expect("worker").worker_id, "w0", "the records before the damage survive");
    drop(workers);
    server.signal(libc::SIGTERM);
    assert!(server.wait(Duration::from_secs(20))?.success());
    Ok(())
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::spawn(&dir.path().join("data"), &dir.path().join("logs"), &[])?;
    server.signal(libc::SIGTERM);
    assert!(server.wait(Duration::from_secs(20))?.success(), "{}", server.logs());
    let logs = server.logs();
    assert!(logs.contains("serving"), "the start-up line is logged: {logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escape codes in a log file: {logs:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_verify_tells_a_damaged_last_record_from_a_torn_write() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    let mut server = ServerProcess::spawn(&data, &logs, &[])?;
    let token = std::fs::read_to_string(data.join("dev-token"))?.trim().to_string();
    let mut workers = WorkerServiceClient::new(connect(server.grpc).await?);
    for i in 0..3u64 {
        let request =
            pb::RegisterWorkerRequest { request_id: String::new(), worker: Some(worker(&format!("w{i}"), i)) };
        workers.register_worker(authed(&token, request)).await?;
    }
    drop(workers);
    server.signal(libc::SIGKILL);
    server.wait(Duration::from_secs(20))?;
    let segment = segments(&data).pop().expect("a segment");
    let bytes = std::fs::read(&segment)?;
    let data_arg = data.to_str().expect("utf-8 path");

    // The last byte of the last record flipped: a complete record with a bad checksum.
    let mut damaged = bytes.clone();
    *damaged.last_mut().expect("bytes") ^= 0x01;
    std::fs::write(&segment, &damaged)?;
    let (status, out, _) = run_tool(&["wal", "verify", "--data-dir", data_arg])?;
    assert!(!status.success(), "{out}");
    assert!(out.contains("damaged last record") && out.contains("cannot tell"), "{out}");

    // The last three bytes missing: the file ends inside the record, a torn write.
    std::fs::write(&segment, &bytes[..bytes.len() - 3])?;
    let (status, out, _) = run_tool(&["wal", "verify", "--data-dir", data_arg])?;
    assert!(!status.success(), "{out}");
    assert!(out.contains("torn tail") && out.contains("ends inside"), "{out}");
    Ok(())
}

fn raft_entry(index: u64) -> openraft::Entry<linggong_server::raft::TypeConfig> {
    openraft::Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(linggong_server::raft::ClusterCommand { payload: vec![7; 3] }),
    }
}

#[tokio::test]
async fn wal_verify_and_repair_work_on_a_cluster_members_raft_log() -> anyhow::Result<()> {
    use openraft::storage::RaftLogStorageExt;
    use openraft::RaftLogReader;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let config = linggong_server::host::HostConfig::new(&data);
    {
        let (mut log, _) = linggong_server::raft::open_storage(&config)?;
        log.blocking_append((1..=5).map(raft_entry)).await?;
    }
    let data_arg = data.to_str().expect("utf-8 path");
    let (status, out, _) = run_tool(&["wal", "verify", "--raft", "--data-dir", data_arg])?;
    assert!(status.success(), "{out}");
    assert!(out.contains("records=5") && out.contains("ok: last record 5"), "{out}");

    // A byte of the second record flipped: damage before the end.
    let segment = std::fs::read_dir(data.join("raft").join("wal"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment)?;
    let record = linggong_server::wal::FRAME_LEN + 26 + 3;
    bytes[linggong_server::wal::HEADER_LEN + record + 20] ^= 0xff;
    std::fs::write(&segment, &bytes)?;
    let (status, out, _) = run_tool(&["wal", "verify", "--raft", "--data-dir", data_arg])?;
    assert!(!status.success(), "{out}");
    assert!(out.contains("damaged before its end"), "{out}");
    assert!(linggong_server::raft::open_storage(&config).is_err(), "start-up refuses the damaged Raft log");

    let (status, out, _) = run_tool(&["wal", "repair", "--raft", "--data-dir", data_arg])?;
    assert!(status.success(), "{out}");
    assert!(out.contains("truncated") && out.contains("records=1"), "{out}");
    assert!(std::path::PathBuf::from(format!("{}.damaged", segment.display())).exists(), "a copy is kept");
    let (mut log, _) = linggong_server::raft::open_storage(&config)?;
    let kept: Vec<u64> = log.try_get_log_entries(0..100).await?.iter().map(|e| e.log_id.index).collect();
    assert_eq!(kept, vec![1], "the record before the damage is kept, the rest is gone");
    Ok(())
}
