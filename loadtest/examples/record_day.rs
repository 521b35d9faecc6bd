//! Records a market day into a data directory, through the server's host
//! (a lone Raft member: the same logs and snapshots a live server writes), for the policy lab and
//! its benchmarks:
//!
//! - `--kind mixed`: the load tool's `mixed` workload, `--actions N` calls
//!   spread evenly over the day (statistics reads are skipped: they are not
//!   logged), a tick every simulated minute;
//! - `--kind county`: the policy lab's generated county day (one county,
//!   workers answering by a known response model).
//!
//! `cargo run --release -p linggong-loadtest --example record_day -- --data-dir D --kind mixed --actions 200000`

use anyhow::{bail, Context, Result};
use linggong_engine::{Command, LedgerDay, RankingPolicy, Timestamp};
use linggong_lab::generate::{county_day, DayConfig};
use linggong_loadtest::engine_mode::{command, observe};
use linggong_loadtest::workload::{Action, Workload};
use linggong_loadtest::{Scenario, WorkloadConfig};
use linggong_server::host::{Host, HostConfig};
use linggong_server::wal::Durability;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

struct Args {
    data_dir: PathBuf,
    kind: String,
    actions: u64,
    workers: u64,
    seed: u64,
    day: LedgerDay,
}

fn args() -> Result<Args> {
    let mut a = Args {
        data_dir: PathBuf::from("lab-data"),
        kind: "mixed".into(),
        actions: 100_000,
        workers: 50_000,
        seed: 7,
        day: LedgerDay::from_ymd(2024, 3, 2).expect("a date"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data-dir" => a.data_dir = value.into(),
            "--kind" => a.kind = value,
            "--actions" => a.actions = value.parse()?,
            "--workers" => a.workers = value.parse()?,
            "--seed" => a.seed = value.parse()?,
            "--day" => a.day = LedgerDay::parse(&value).context("--day YYYY-MM-DD")?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    if a.data_dir.join("raft").exists() || a.data_dir.join("wal").exists() {
        bail!("{} already holds a log", a.data_dir.display());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let clock = Arc::new(AtomicI64::new(a.day.start().0 - 3_600_000));
    let mut config = HostConfig::new(&a.data_dir);
    config.durability = Durability::None;
    let c = clock.clone();
    config.clock = Arc::new(move || Timestamp(c.load(Ordering::Relaxed)));
    let host = runtime.block_on(Host::open(config))?;
    let submit = |at: Timestamp, cmd: Command| {
        clock.store(at.0, Ordering::Relaxed);
        runtime.block_on(host.submit(None, cmd))
    };
    let mut logged = 0u64;
    match a.kind.as_str() {
        "county" => {
            let day =
                county_day(&DayConfig { seed: a.seed, day: a.day, ..DayConfig::default() }, &RankingPolicy::default())?;
            for s in day.before.iter().chain(&day.steps) {
                if submit(s.now, s.command.clone())?.seq > 0 {
                    logged += 1;
                }
            }
        }
        "mixed" => {
            let mut w = Workload::new(WorkloadConfig {
                scenario: Scenario::Mixed,
                seed: a.seed,
                workers: a.workers,
                employers: 500,
                postings: 0,
                match_size: 0,
                run_tag: String::new(),
            });
            let before = Timestamp(a.day.start().0 - 3_600_000);
            for action in w.setup_employers() {
                submit(before, command(&action))?;
            }
            for spec in w.setup_workers() {
                submit(before, Command::UpsertWorker(spec))?;
            }
            let step_ms = 86_400_000 / a.actions.max(1) as i64;
            let mut next_tick = a.day.start();
            for i in 0..a.actions as i64 {
                let now = Timestamp(a.day.start().0 + i * step_ms);
                while next_tick <= now {
                    submit(next_tick, Command::Tick)?;
                    next_tick = next_tick.plus_secs(60);
                }
                let Some(action) = w.next(now) else { continue };
                if matches!(action, Action::CountyStats { .. }) {
                    w.complete(&action, Ok(linggong_loadtest::workload::Observation::Done));
                    continue;
                }
                match submit(now, command(&action)) {
                    Ok(applied) => {
                        logged += u64::from(applied.seq > 0);
                        w.complete(&action, Ok(observe(applied.outcome)));
                    }
                    Err(_) => w.complete(&action, Err(())),
                }
            }
        }
        other => bail!("--kind mixed|county, not {other}"),
    }
    runtime.block_on(host.shutdown());
    println!("{logged} records logged into {}", a.data_dir.display());
    Ok(())
}
