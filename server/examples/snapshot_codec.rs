//! Snapshot codec timings: encodes a service state of N waiting workers (and
//! N/10 postings) to a snapshot file, decodes it back and restores the state,
//! printing each step's median over a few runs. It also times the clone of
//! the state that a Raft snapshot build takes under the applied-state lock
//! (the only part of a build that holds up applying entries). Results go
//! into BENCHMARKS.md.
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
use linggong_server::state::ServiceState;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Waiting workers in the state.
    #[arg(long, default_value_t = 1_000_000)]
    workers: u64,
    /// Timed runs of each step (the median is printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t0 = Timestamp(1_700_000_000_000);
    let mut state = ServiceState::new(Engine::linfen(EngineConfig::default()), 16);
    let mut pop = Population::linfen(PopulationConfig::default());
    let apply = |state: &mut ServiceState, command: Command| {
        let logged = LoggedCommand { now: t0, request_key: None, command, actor: None, effect: None };
        state.apply(&logged, &mut Vec::new()).map(|_| ())
    };
    let mut employer = pop.employer(1);
    employer.verified = true;
    apply(&mut state, Command::UpsertEmployer(employer)).context("employer")?;
    for i in 0..args.workers {
        apply(&mut state, Command::UpsertWorker(pop.worker(i))).context("worker")?;
    }
    for i in 0..args.workers / 10 {
        // Some postings are refused by the automatic review; they are kept too.
        let _ = apply(&mut state, Command::SubmitPosting(pop.posting(i, "e1", t0)));
    }
    let dir = tempfile::tempdir()?;
    let (mut clone, mut encode, mut decode, mut load) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..args.runs {
        let start = Instant::now();
        let copy = state.clone();
        clone.push(start.elapsed());
        anyhow::ensure!(copy.engine().worker_count() == state.engine().worker_count(), "the clone holds every worker");
        drop(copy);
        let start = Instant::now();
        let path = write_snapshot(dir.path(), &state)?;
        encode.push(start.elapsed());
        let bytes = std::fs::read(&path)?;
        size = bytes.len();
        let start = Instant::now();
        let decoded = decode_snapshot(&bytes).map_err(anyhow::Error::msg)?;
        decode.push(start.elapsed());
        drop(decoded);
        let start = Instant::now();
        let loaded = load_snapshot(&path, &EngineConfig::default(), 16)?;
        load.push(start.elapsed());
        anyhow::ensure!(loaded.engine().worker_count() == args.workers as usize, "all workers restored");
    }
    println!(
        "workers {} postings {} snapshot {:.1} MiB: clone {:?}, write {:?}, decode {:?}, load (read+decode+restore) {:?}",
        args.workers,
        args.workers / 10,
        size as f64 / (1 << 20) as f64,
        median(clone),
        median(encode),
        median(decode),
        median(load)
    );
    Ok(())
}
