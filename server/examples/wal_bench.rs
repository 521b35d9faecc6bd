//! Durability benchmarks of the real `Host` (a lone Raft member: Raft log with
//! group commit, state machine, snapshots): durable appends per second with
//! concurrent writers, WAL bytes per command, and recovery time (snapshot load
//! plus the committed Raft log applied after it). Results go into BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p linggong-server --example wal_bench -- append --writers 64 --durability always
//! cargo run --release -p linggong-server --example wal_bench -- append --workers 100000 --snapshot-every-records 100000
//! cargo run --release -p linggong-server --example wal_bench -- sizes
//! cargo run --release -p linggong-server --example wal_bench -- recovery --workers 1000000 --records 1000000
//! ```

use anyhow::Context;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, OfferResponse, Timestamp};
use linggong_server::convert::wal::{encode, LoggedCommand};
use linggong_server::host::{Host, HostConfig};
use linggong_server::wal::Durability;
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Concurrent writers submitting MoveWorker commands.
    Append {
        /// Concurrent writer tasks.
        #[arg(long, default_value_t = 64)]
        writers: usize,
        /// always | interval:<ms> | none.
        #[arg(long, default_value = "always")]
        durability: String,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Data directory (default: a temporary directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Workers registered before the run (the writers move them).
        #[arg(long, default_value_t = 10_000)]
        workers: u64,
        /// Snapshot after this many records (default: the server's), to see whether
        /// snapshots written during the run stall acknowledgements.
        #[arg(long)]
        snapshot_every_records: Option<u64>,
    },
    /// Encoded WAL payload sizes of common commands.
    Sizes,
    /// Time to recover a snapshot of `workers` plus `records` log records.
    Recovery {
        /// Waiting workers in the snapshot.
        #[arg(long, default_value_t = 1_000_000)]
        workers: u64,
        /// Log records replayed after the snapshot.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Append { writers, durability, seconds, dir, workers, snapshot_every_records } => {
            append(AppendRun { writers, durability, seconds, dir, workers, snapshot_every_records })
        }
        Bench::Sizes => {
            sizes();
            Ok(())
        }
        Bench::Recovery { workers, records } => recovery(workers, records),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn populate(host: &Host, rt: &tokio::runtime::Runtime, workers: u64) -> anyhow::Result<()> {
    let mut pop = Population::linfen(PopulationConfig::default());
    let specs: Vec<_> = (0..workers).map(|i| pop.worker(i)).collect();
    rt.block_on(async {
        for chunk in specs.chunks(4096) {
            let futs = chunk.iter().map(|w| host.submit(None, Command::UpsertWorker(w.clone())));
            for r in futures::future::join_all(futs).await {
                r.context("populate")?;
            }
        }
        anyhow::Ok(())
    })
}

/// Settings of one `append` run.
struct AppendRun {
    writers: usize,
    durability: String,
    seconds: u64,
    dir: Option<std::path::PathBuf>,
    workers: u64,
    snapshot_every_records: Option<u64>,
}

fn append(run: AppendRun) -> anyhow::Result<()> {
    let AppendRun { writers, ref durability, seconds, workers, .. } = run;
    let tmp = tempfile::tempdir()?;
    let dir = run.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut config = HostConfig::new(&dir);
    config.durability = durability.parse()?;
    if let Some(every) = run.snapshot_every_records {
        config.snapshot_every_records = every;
    }
    let rt = runtime();
    let host = rt.block_on(Host::open(config))?;
    populate(&host, &rt, workers)?;
    let before_records = host.metrics().log.records_written.load(Ordering::Relaxed);
    let before_syncs = host.metrics().log.fsync_seconds.count();
    let snapshot_builds = || host.member().shared.metrics.snapshot_seconds.count();
    let before_snapshots = snapshot_builds();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..writers {
            let (host, latencies) = (host.clone(), latencies.clone());
            tasks.push(tokio::spawn(async move {
                let mut pop = Population::linfen(PopulationConfig { seed: t as u64, ..PopulationConfig::default() });
                let mut mine = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
                let mut i = t as u64;
                while Instant::now() < deadline {
                    let worker = format!("w{}", i % workers);
                    let county = pop.pick_county_code();
                    let position = pop.position_near(county);
                    let sent = Instant::now();
                    host.submit(None, Command::MoveWorker { worker: worker.into(), position }).await.expect("move");
                    mine.saturating_record(sent.elapsed().as_micros() as u64);
                    i += writers as u64;
                }
                latencies.lock().add(&mine).expect("same bounds");
            }));
        }
        for t in tasks {
            t.await.expect("writer task");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = latencies.lock();
    let n = latencies.len();
    let records = host.metrics().log.records_written.load(Ordering::Relaxed) - before_records;
    let syncs = host.metrics().log.fsync_seconds.count() - before_syncs;
    let snapshots = snapshot_builds() - before_snapshots;
    println!("durability={durability} writers={writers} workers={workers} seconds={elapsed:.1}");
    println!("  acknowledged commands: {n} ({:.0}/s)", n as f64 / elapsed);
    println!(
        "  acknowledgement latency us: p50 {} p99 {} p99.9 {} max {}",
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        latencies.value_at_quantile(0.999),
        latencies.max()
    );
    println!("  snapshots written during the run: {snapshots}");
    if syncs > 0 {
        println!("  fsyncs: {syncs}, records per fsync: {:.1}", records as f64 / syncs as f64);
        println!(
            "  mean fsync: {:.1} us",
            host.metrics().log.fsync_seconds.sum() / host.metrics().log.fsync_seconds.count() as f64 * 1e6
        );
    } else {
        println!("  fsyncs: 0");
    }
    rt.block_on(host.shutdown());
    Ok(())
}

fn sizes() {
    let mut pop = Population::linfen(PopulationConfig::default());
    let now = Timestamp(1_700_000_000_000);
    let w = pop.worker(123_456);
    let position = w.position;
    let e = pop.employer(42);
    let p = pop.posting(77_777, "e42", now);
    let commands = [
        ("upsert_worker", Command::UpsertWorker(w)),
        ("move_worker", Command::MoveWorker { worker: "w123456".into(), position }),
        ("upsert_employer", Command::UpsertEmployer(e)),
        ("submit_posting", Command::SubmitPosting(p)),
        ("instant_match", Command::InstantMatch { posting: "p77777".into(), max_offers: 5 }),
        (
            "respond_to_offer",
            Command::RespondToOffer { offer: 1_234_567, worker: "w123456".into(), response: OfferResponse::Accept },
        ),
        ("complete_job", Command::CompleteJob { offer: 1_234_567 }),
        ("tick", Command::Tick),
    ];
    println!("| command | payload bytes | with 16-byte frame | with a 36-byte request id |");
    println!("|---|---|---|---|");
    for (name, command) in commands {
        let mut buf = Vec::new();
        encode(
            &LoggedCommand { now, request_key: None, command: command.clone(), actor: None, effect: None },
            &mut buf,
        );
        let bare = buf.len();
        buf.clear();
        let key = Some("county-141002/0b9f6c1e-5a0d-4d8e-9c52-7f1e2a3b4c5d".to_string());
        encode(&LoggedCommand { now, request_key: key, command, actor: None, effect: None }, &mut buf);
        println!("| {name} | {bare} | {} | {} |", bare + 16, buf.len() + 16);
    }
}

fn recovery(workers: u64, records: u64) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut config = HostConfig::new(tmp.path());
    config.durability = Durability::None;
    config.snapshot_every_records = u64::MAX;
    config.snapshot_every_bytes = u64::MAX;
    let rt = runtime();
    {
        let host = rt.block_on(Host::open(config.clone()))?;
        let t = Instant::now();
        populate(&host, &rt, workers)?;
        println!("registered {workers} workers in {:.1} s", t.elapsed().as_secs_f64());
        rt.block_on(host.shutdown()); // snapshot at `workers`
    }
    let snapshot_seq;
    {
        let host = rt.block_on(Host::open(config.clone()))?;
        snapshot_seq = host.read(|s| s.last_seq());
        let mut pop = Population::linfen(PopulationConfig { seed: 99, ..PopulationConfig::default() });
        let moves: Vec<_> = (0..records)
            .map(|i| {
                let county = pop.pick_county_code();
                Command::MoveWorker {
                    worker: format!("w{}", (i * 7919) % workers).into(),
                    position: pop.position_near(county),
                }
            })
            .collect();
        let t = Instant::now();
        rt.block_on(async {
            for chunk in moves.chunks(4096) {
                for r in futures::future::join_all(chunk.iter().map(|c| host.submit(None, c.clone()))).await {
                    r.context("move")?;
                }
            }
            anyhow::Ok(())
        })?;
        println!("appended {records} records in {:.1} s", t.elapsed().as_secs_f64());
        // Stop Raft without the final snapshot, so recovery = the snapshot at
        // `workers` + the committed log of `records` applied after it.
        rt.block_on(host.member().shutdown());
    }
    let snapshot = tmp.path().join("raft").join("snapshot");
    let snap_bytes = std::fs::metadata(&snapshot).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let host = rt.block_on(Host::open(config))?;
    let elapsed = t.elapsed();
    let r = host.recovery();
    println!(
        "recovered: snapshot {} ({:.0} MiB) + {} records applied from the Raft log in {:.2} s (last seq {})",
        snapshot.display(),
        snap_bytes as f64 / (1 << 20) as f64,
        r.last_seq - snapshot_seq,
        elapsed.as_secs_f64(),
        r.last_seq
    );
    rt.block_on(host.member().shutdown()); // no shutdown snapshot; the temp dir goes away
    Ok(())
}
