//! `linggong-server replay` on a data directory written by a host (a lone
//! Raft member, as every server now is): the
//! baseline check passes (the log with its recorded answers gives the live
//! ledger back), every output format carries the policies, a bad policy file
//! is refused with every problem named, and nothing in the data directory
//! changes.

use linggong_engine::{Command, RankingPolicy, Timestamp};
use linggong_lab::generate::{county_day, DayConfig};
use linggong_server::host::{Host, HostConfig};
use linggong_server::wal::Durability;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const BINARY: &str = env!("CARGO_BIN_EXE_linggong-server");

async fn record_day(dir: &Path) {
    let clock = Arc::new(AtomicI64::new(0));
    let mut config = HostConfig::new(dir);
    config.durability = Durability::None;
    config.snapshot_every_records = 400;
    let c = clock.clone();
    config.clock = Arc::new(move || Timestamp(c.load(Ordering::Relaxed)));
    let host = Host::open(config).await.unwrap();
    let day = county_day(
        &DayConfig { workers: 150, new_workers: 20, postings: 60, ..DayConfig::default() },
        &RankingPolicy::default(),
    )
    .unwrap();
    for s in day.before.iter().chain(&day.steps) {
        clock.store(s.now.0, Ordering::Relaxed);
        host.submit(None, s.command.clone()).await.expect("the generated day applies");
    }
    // A record of the next day, which the window must leave out.
    clock.store(day.to.0 + 3_600_000, Ordering::Relaxed);
    host.submit(None, Command::WithdrawWorker { worker: "w1".into() }).await.unwrap();
    host.shutdown().await;
}

/// Every file under `dir` with its contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.insert(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
    out
}

fn replay(dir: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(BINARY)
        .args(["replay", "--data-dir"])
        .arg(dir)
        .args(["--from", "2024-03-02", "--to", "2024-03-02", "--seeds", "3"])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_compares_policies_and_writes_nothing_to_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    record_day(&dir).await;
    let before = files(&dir);
    assert!(before.keys().any(|p| p.contains("history")), "a member's history log was written");
    let policy = tmp.path().join("hardship-first.toml");
    std::fs::write(&policy, "name = \"hardship-first\"\n[ranking]\nhardship_bonus_m = 6000\n").unwrap();
    let chart = tmp.path().join("chart.svg");
    let out = replay(&dir, &["--policy", policy.to_str().unwrap(), "--chart", chart.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("reproduces the live ledger of all 17 county-days exactly"), "{stdout}");
    assert!(stdout.contains("| figure | live | current | hardship-first | Δ hardship-first |"), "{stdout}");
    assert!(stdout.contains("141002 尧都区 · hardship share of placements %"), "{stdout}");
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));

    let csv = replay(&dir, &["--policy", policy.to_str().unwrap(), "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("area,metric,column,"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("city,hardship_share_placed,hardship-first,")), "{csv}");
    let json = replay(&dir, &["--policy", policy.to_str().unwrap(), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["columns"].as_array().unwrap().len(), 2);
    assert_eq!(json["columns"][1]["seeds"].as_array().unwrap().len(), 3);

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[ranking]\nhardship_bonus_m = -5\nwaiting_bonus_cap_m = 1e9\n[batch]\nwindow_secs = 500\n")
        .unwrap();
    let out = replay(&dir, &["--policy", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in ["ranking.hardship_bonus_m", "ranking.waiting_bonus_cap_m", "batch.window_secs"] {
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
    }
    assert!(files(&dir) == before, "the data directory is unchanged");
}
