//! Snapshot codec timings: encodes a service state of N waiting workers (and
//! N/10 postings) to a snapshot file, decodes it back and restores the state,
//! printing each step's median over a few runs. It also times freezing the
//! state, which a Raft snapshot build does under the applied-state lock (the
//! only part of a build that holds up applying entries), and what writes pay
//! afterwards while the frozen copy is alive (each first write to a shared
//! chunk copies it): moves of random workers with and without a frozen copy.
//! Every registration carries a request id, so the request table is full
//! (200,000 keys by default). Results go into BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p linggong-server --example snapshot_codec -- --workers 1000000 --runs 3
//! ```

use anyhow::Context;
use clap::Parser;
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, Engine, EngineConfig, Timestamp};
use linggong_server::convert::wal::LoggedCommand;
use linggong_server::snapshot::{decode_snapshot, load_snapshot, write_snapshot};
use linggong_server::state::{ServiceState, DEFAULT_DEDUPE_CAPACITY};
use rand::RngExt;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Waiting workers in the state.
    #[arg(long, default_value_t = 1_000_000)]
    workers: u64,
    /// Timed runs of each step (the median is printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Moves of random workers timed after each freeze (and as many without one).
    #[arg(long, default_value_t = 20_000)]
    moves: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t0 = Timestamp(1_700_000_000_000);
    let mut state = ServiceState::new(Engine::linfen(EngineConfig::default()), DEFAULT_DEDUPE_CAPACITY);
    let mut pop = Population::linfen(PopulationConfig::default());
    let apply = |state: &mut ServiceState, request_key: Option<String>, command: Command| {
        let logged = LoggedCommand { now: t0, request_key, command, actor: None, effect: None };
        state.apply(&logged, &mut Vec::new()).map(|_| ())
    };
    let mut employer = pop.employer(1);
    employer.verified = true;
    apply(&mut state, None, Command::UpsertEmployer(employer)).context("employer")?;
    for i in 0..args.workers {
        apply(&mut state, Some(format!("register-{i}")), Command::UpsertWorker(pop.worker(i))).context("worker")?;
    }
    for i in 0..args.workers / 10 {
        // Some postings are refused by the automatic review; they are kept too.
        let _ = apply(&mut state, None, Command::SubmitPosting(pop.posting(i, "e1", t0)));
    }
    // Timed moves of random workers: mean and slowest, in microseconds.
    let mut moves = |state: &mut ServiceState| -> anyhow::Result<(f64, f64)> {
        let (mut total, mut slowest) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..args.moves {
            let i = pop.rng().random_range(0..args.workers);
            let w = state.engine().worker_by_key(i as u32);
            let (worker, code) = (w.id.clone(), state.engine().regions().get(w.county).code);
            let position = pop.position_near(code);
            let start = Instant::now();
            apply(state, None, Command::MoveWorker { worker, position }).context("move")?;
            let took = start.elapsed();
            total += took;
            slowest = slowest.max(took);
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        Ok((us(total) / args.moves.max(1) as f64, us(slowest)))
    };
    let dir = tempfile::tempdir()?;
    let (mut freeze, mut encode, mut decode, mut load) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..args.runs {
        alone.push(moves(&mut state)?);
        let start = Instant::now();
        let frozen = state.frozen();
        freeze.push(start.elapsed());
        anyhow::ensure!(
            frozen.engine().workers().len() == state.engine().worker_count(),
            "the frozen copy holds every worker"
        );
        beside.push(moves(&mut state)?);
        let start = Instant::now();
        let path = write_snapshot(dir.path(), &frozen)?;
        encode.push(start.elapsed());
        drop(frozen);
        let bytes = std::fs::read(&path)?;
        size = bytes.len();
        let start = Instant::now();
        let decoded = decode_snapshot(&bytes).map_err(anyhow::Error::msg)?;
        decode.push(start.elapsed());
        drop(decoded);
        let start = Instant::now();
        let loaded = load_snapshot(&path, &EngineConfig::default(), DEFAULT_DEDUPE_CAPACITY)?;
        load.push(start.elapsed());
        anyhow::ensure!(loaded.engine().worker_count() == args.workers as usize, "all workers restored");
        anyhow::ensure!(loaded.requests().len() == state.requests().len(), "all request ids restored");
    }
    let moves_of = |v: &[(f64, f64)]| {
        let mean: Vec<String> = v.iter().map(|(m, s)| format!("{m:.2} (slowest {s:.0})")).collect();
        mean.join(", ")
    };
    println!(
        "workers {} postings {} request ids {} snapshot {:.1} MiB: freeze {:?}, write {:?}, decode {:?}, load (read+decode+restore) {:?}",
        args.workers,
        args.workers / 10,
        state.requests().len(),
        size as f64 / (1 << 20) as f64,
        median(freeze),
        median(encode),
        median(decode),
        median(load)
    );
    println!(
        "moves (µs, mean per move over {} each run): alone {}; beside a frozen copy {}",
        args.moves,
        moves_of(&alone),
        moves_of(&beside)
    );
    Ok(())
}
