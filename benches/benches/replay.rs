//! Criterion bench of the policy lab's replay core: `replay/recorded` replays
//! a generated county day (the lab's `county_day`, default size: about 2,700
//! logged commands) with its recorded answers, `replay/modelled` under the
//! response model (answers drawn, so more commands), and
//! `replay/batch_5s` with 5-second decision windows too. Throughput is in
//! logged records per second. Building the day is not timed; forking the
//! start state is, as a replay does it.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use linggong_engine::{BatchPolicy, EngineConfig, RankingPolicy};
use linggong_lab::generate::{county_day, true_model, DayConfig};
use linggong_lab::{run, run_batched, Answers};
use std::time::Duration;

fn replay_benches(c: &mut Criterion) {
    let policy = RankingPolicy::default();
    let day = county_day(&DayConfig::default(), &policy).expect("the generated day applies");
    let start = day.start(EngineConfig::default()).expect("start state");
    let model = true_model();
    let window = (day.from, day.to);
    let mut group = c.benchmark_group("replay");
    group.measurement_time(Duration::from_secs(10)).sample_size(10);
    group.throughput(Throughput::Elements(day.steps.len() as u64));
    eprintln!("replay: {} logged records", day.steps.len());
    group.bench_function("recorded", |b| {
        b.iter(|| run(&start, &policy, &day.steps, window, Answers::Recorded).expect("replay"))
    });
    group.bench_function("modelled", |b| {
        b.iter(|| {
            run(&start, &policy, &day.steps, window, Answers::Modelled { model: &model, seed: 1 }).expect("replay")
        })
    });
    let batch = BatchPolicy { window_ms: 5_000, counties: Vec::new() };
    group.bench_function("batch_5s", |b| {
        b.iter(|| {
            run_batched(&start, &policy, &batch, &day.steps, window, Answers::Modelled { model: &model, seed: 1 })
                .expect("replay")
        })
    });
    group.finish();
}

criterion_group!(benches, replay_benches);
criterion_main!(benches);
