//! Criterion benches of the matching engine: `instant_match/N`, `register_worker/N`, `move_worker/N`
//! and `respond_to_offer/N` for N waiting workers (10,000, 100,000 and 1,000,000; cap the sizes with
//! `LINGGONG_BENCH_MAX_N`).
//!
//! Each sample runs prepared batches of one operation against a steady market (see the fixture in
//! `linggong_benches`): preparing a batch and restoring the steady state afterwards are not timed,
//! only the engine calls are. Batches are small (8 matches, 32 registrations or moves, up to 40
//! offer answers), so the waiting count never strays more than 40 from N while a batch runs, and the
//! timer is read twice per batch rather than twice per call.
//!
//! - `instant_match/N`: `Engine::instant_match_into` for a pool posting, asking for 5 workers, into
//!   a reused buffer; the reservation (offers, workers to `offered`) is included.
//!   Settling releases the 5 workers by updating the posting to a new version, which withdraws its
//!   pending offers without growing the posting's `passed_over` list (a decline would, and every
//!   later match of that posting would scan a longer list).
//! - `register_worker/N`: `Command::UpsertWorker` of a new worker, reverse matching included;
//!   settling withdraws an old roster worker so N stays steady.
//! - `move_worker/N`: `Command::MoveWorker` of a roster worker to a fresh position, reverse matching
//!   included; settling releases any posting reverse matching offered.
//! - `respond_to_offer/N`: `Command::RespondToOffer`, alternately accept and decline, on offers made
//!   by untimed matches; settling cancels those postings and submits fresh ones.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use linggong_benches::{bench_sizes_from_env, Batch, Market, MarketConfig, Operation};
use std::time::{Duration, Instant};

fn batch_size(operation: Operation) -> usize {
    match operation {
        Operation::InstantMatch => 8,
        Operation::RegisterWorker | Operation::MoveWorker => 32,
        Operation::RespondToOffer => 40,
    }
}

/// Runs `iters` operations in batches and returns the time spent in the engine calls only.
fn timed_operations(market: &mut Market, batch: &mut Batch, operation: Operation, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let want = batch_size(operation).min(left as usize);
        market.prepare(operation, want, batch).expect("batch prepared");
        let len = batch.len();
        let started = Instant::now();
        for i in 0..len {
            market.run(batch, i);
        }
        total += started.elapsed();
        market.settle(batch).expect("market settled");
        left -= len as u64;
    }
    total
}

fn engine_benches(c: &mut Criterion) {
    let sizes = bench_sizes_from_env().expect("bench sizes");
    for n in sizes {
        let started = Instant::now();
        let mut market = Market::build(&MarketConfig::with_waiting_workers(n)).expect("market built");
        eprintln!("built a market of {n} waiting workers in {:.1} s", started.elapsed().as_secs_f64());
        let mut batch = Batch::default();
        for operation in Operation::ALL {
            let mut group = c.benchmark_group(operation.name());
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter_custom(|iters| timed_operations(&mut market, &mut batch, operation, iters))
            });
            group.finish();
            assert!(market.is_steady(), "{} left the market unsteady", operation.name());
        }
    }
}

criterion_group!(benches, engine_benches);
criterion_main!(benches);
