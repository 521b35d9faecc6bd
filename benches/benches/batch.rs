//! Criterion bench of batch assignment: `batch_assign/P` assigns the open
//! slots of P postings collected in one decision window (10, 64, 100, 1,000)
//! together, by `linggong_engine::assign_batch` (64 is the most an engine
//! decision window holds, `MAX_WINDOW_REQUESTS`).
//!
//! The window is drawn from the Linfen-shaped population: 20,000 waiting
//! workers over the 17 counties, P postings of the population's mix (1 to 10
//! slots, 5 to 30 km reach, any trade). Each posting's candidates are what
//! greedy matching ranks first — the best `3 × slots` eligible waiting workers
//! by the ranking policy, from `Engine::rank_by_index` — with their effective
//! distances as costs. Building the window is not timed; only the assignment is.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{assign_batch, BatchCandidate, BatchPosting, Command, Engine, EngineConfig, Timestamp};
use std::time::Duration;

const WORKERS: u64 = 20_000;

fn window(postings: u64) -> Vec<BatchPosting> {
    let mut engine = Engine::linfen(EngineConfig { reverse_match: false, ..EngineConfig::default() });
    let mut population = Population::linfen(PopulationConfig { seed: 15, verified_share: 1.0, ..Default::default() });
    let now = Timestamp(1_709_337_600_000);
    let mut events = Vec::new();
    for i in 0..20 {
        engine.apply(now, &Command::UpsertEmployer(population.employer(i)), &mut events).expect("employer");
    }
    for i in 0..WORKERS {
        engine.apply(now, &Command::UpsertWorker(population.worker(i)), &mut events).expect("worker");
    }
    let policy = engine.config().policy.clone();
    let keys: std::collections::HashMap<String, u32> =
        engine.workers().iter().enumerate().map(|(k, w)| (w.id.to_string(), k as u32)).collect();
    let mut out = Vec::new();
    for i in 0..postings {
        let employer = format!("e{}", i % 20);
        let spec = population.posting(i, &employer, now);
        engine.apply(now, &Command::SubmitPosting(spec.clone()), &mut events).expect("posting");
        let slots = spec.headcount;
        let candidates = engine
            .rank_by_index(now, &spec.id, 3 * slots as usize)
            .into_iter()
            .map(|id| {
                let key = keys[id.as_str()];
                let w = engine.worker(&id).expect("worker");
                let d = w.position.distance_m(spec.position);
                BatchCandidate { worker: key, cost_m: policy.effective_distance(d, w, now) }
            })
            .collect();
        out.push(BatchPosting { slots, candidates });
    }
    out
}

fn batch_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_assign");
    group.measurement_time(Duration::from_secs(10)).sample_size(10);
    for p in [10u64, 64, 100, 1_000] {
        let w = window(p);
        let slots: usize = w.iter().map(|x| x.slots as usize).sum();
        let filled = assign_batch(&w).len();
        eprintln!("batch_assign/{p}: {slots} slots, {filled} filled");
        group.bench_with_input(BenchmarkId::from_parameter(p), &w, |b, w| b.iter(|| assign_batch(w)));
    }
    group.finish();
}

criterion_group!(benches, batch_benches);
criterion_main!(benches);
