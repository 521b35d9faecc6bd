//! engine_latency: times single engine calls into HdrHistograms (the tail criterion's medians hide)
//! and measures engine memory per waiting worker with a counting global allocator.
//!
//! For each size it prints, as Markdown tables:
//! - memory: live heap bytes of an engine holding N waiting workers, built by commands and rebuilt
//!   from a snapshot (bulk-loaded trees), divided by N; the process RSS growth is shown alongside;
//! - latency: p50, p90, p99, p99.9 and max of `instant_match`, `register_worker`, `move_worker` and
//!   `respond_to_offer` (also split into accept and decline), each call timed on its own against the
//!   same steady market the criterion benches use.
//!
//! Every call is bracketed by two `Instant::now()` reads, which adds a few tens of nanoseconds.

use anyhow::{bail, Context, Result};
use clap::Parser;
use compact_str::CompactString;
use hdrhistogram::Histogram;
use linggong_benches::{bench_sizes_from_env, Batch, Market, MarketConfig, Operation, SetupPlan};
use linggong_engine::geo::INDEX_SLACK_M;
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, Engine, OfferResponse, WorkerStatus};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, keeping a count of live heap bytes (as requested by callers).
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is bookkeeping only.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Resident set size of this process, bytes (Linux; 0 elsewhere).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

#[derive(Parser, Debug)]
#[command(about = "Single-call latency percentiles and memory per waiting worker of the linggong engine")]
struct Args {
    /// Waiting-worker counts (default: 10000,100000,1000000 capped by LINGGONG_BENCH_MAX_N).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Calls recorded per operation and size.
    #[arg(long, default_value_t = 100_000)]
    samples: usize,
    /// Calls run before recording, per operation and size.
    #[arg(long, default_value_t = 10_000)]
    warmup: usize,
    /// Operations to time (default: all).
    #[arg(long, value_delimiter = ',')]
    operations: Vec<String>,
    /// Skip the memory measurement.
    #[arg(long)]
    skip_memory: bool,
    /// Skip the latency measurement.
    #[arg(long)]
    skip_latency: bool,
    /// Published postings in the market's pool (the default market's size when absent).
    #[arg(long)]
    postings: Option<usize>,
    /// Also report how many index entries the ranking's stopping bound lets an instant match visit
    /// (a brute-force count over up to this many pool postings per size; 0 = skip).
    #[arg(long, default_value_t = 0)]
    scan_bound_postings: usize,
    /// Turn the engine's reverse matching off, to see registration and moves without it.
    #[arg(long)]
    no_reverse_match: bool,
    /// With the memory measurement: after the restore, apply this many `MoveWorker` commands to
    /// the restored engine (workers picked as the server's recovery bench does, positions drawn
    /// from the seeded population), the engine's share of recovering from a snapshot plus a log.
    #[arg(long, default_value_t = 0)]
    replay_moves: usize,
}

fn batch_size(operation: Operation) -> usize {
    match operation {
        Operation::InstantMatch => 8,
        Operation::RegisterWorker | Operation::MoveWorker => 32,
        Operation::RespondToOffer => 40,
    }
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).context("histogram bounds")
}

/// Heap bytes and RSS growth of an engine holding `n` waiting workers.
struct MemoryFigures {
    built_bytes: usize,
    built_rss: usize,
    restored_bytes: usize,
    build_secs: f64,
    restore_secs: f64,
    replay_secs: f64,
}

fn measure_memory(n: usize, replay_moves: usize) -> Result<MemoryFigures> {
    let config = MarketConfig { employers: 0, postings: 0, ..MarketConfig::with_waiting_workers(n) };
    let (bytes_before, rss_before) = (live_bytes(), rss_bytes());
    let started = Instant::now();
    let mut engine = Engine::linfen(config.engine.clone());
    let mut events = Vec::new();
    let mut ids = Vec::new();
    let mut last = None;
    for (at, command) in SetupPlan::new(&config) {
        if let Command::UpsertWorker(spec) = &command {
            engine.apply(at, &command, &mut events).with_context(|| format!("building {n} workers"))?;
            events.clear();
            if replay_moves > 0 {
                ids.push(spec.id.clone());
            }
            last = Some(at);
        }
    }
    let build_secs = started.elapsed().as_secs_f64();
    if engine.waiting_count() != n {
        bail!("expected {n} waiting workers, found {}", engine.waiting_count());
    }
    // The roster kept for the replay (ids are inline strings: no heap of their own) is not the engine's.
    let roster_bytes = ids.capacity() * std::mem::size_of::<CompactString>();
    let built_bytes = live_bytes() - bytes_before - roster_bytes;
    let built_rss = rss_bytes().saturating_sub(rss_before);
    let snapshot = engine.snapshot();
    drop(engine);
    let started = Instant::now();
    let restored = Engine::restore(config.engine.clone(), snapshot).context("restoring the snapshot")?;
    let restore_secs = started.elapsed().as_secs_f64();
    let restored_bytes = live_bytes() - bytes_before - roster_bytes;
    let mut replay_secs = 0.0;
    if replay_moves > 0 {
        let mut restored = restored;
        let mut pop = Population::linfen(PopulationConfig { seed: 99, ..PopulationConfig::default() });
        let moves: Vec<Command> = (0..replay_moves as u64)
            .map(|i| {
                let county = pop.pick_county_code();
                let worker = ids[(i * 7919 % ids.len() as u64) as usize].clone();
                Command::MoveWorker { worker, position: pop.position_near(county) }
            })
            .collect();
        let at = last.context("no workers")?;
        let started = Instant::now();
        for command in &moves {
            restored.apply(at, command, &mut events).context("replaying a move")?;
            events.clear();
        }
        replay_secs = started.elapsed().as_secs_f64();
    }
    Ok(MemoryFigures { built_bytes, built_rss, restored_bytes, build_secs, restore_secs, replay_secs })
}

/// Histograms of one operation: all calls, and for offer answers accepts and declines apart.
struct Latencies {
    all: Histogram<u64>,
    accept: Histogram<u64>,
    decline: Histogram<u64>,
}

fn measure_latency(market: &mut Market, operation: Operation, warmup: usize, samples: usize) -> Result<Latencies> {
    let mut batch = Batch::default();
    let mut lat = Latencies { all: new_histogram()?, accept: new_histogram()?, decline: new_histogram()? };
    let mut done = 0;
    while done < warmup + samples {
        market.prepare(operation, batch_size(operation).min(warmup + samples - done), &mut batch)?;
        for i in 0..batch.len() {
            let started = Instant::now();
            market.run(&mut batch, i);
            let nanos = started.elapsed().as_nanos() as u64;
            if done + i >= warmup {
                lat.all.record(nanos.max(1))?;
                match batch.response(i) {
                    Some(OfferResponse::Accept) => lat.accept.record(nanos.max(1))?,
                    Some(OfferResponse::Decline) => lat.decline.record(nanos.max(1))?,
                    None => {}
                }
            }
        }
        done += batch.len();
        market.settle(&mut batch)?;
    }
    if !market.is_steady() {
        bail!("{} left the market unsteady", operation.name());
    }
    Ok(lat)
}

/// Per posting, the waiting workers of its trade whose distance does not exceed the score of the
/// `match_size`-th best candidate plus the policy's largest credit and the index slack: the entries
/// a nearest-first scan of one tree per trade must visit before it may stop. Also the same count
/// with hardship workers in trees of their own (the other trees' bound then leaves out the hardship
/// credit), and the count of workers whose own bound (distance less their own credit, which the
/// engine's best-first walk reads from the index entry) does not exceed that score: the worker
/// records the engine's walk reads.
/// Returns (mean, median, p90, mean with per-hardship-class trees, mean with each worker's own bound).
fn scan_bound(market: &Market, postings: usize) -> (f64, usize, usize, f64, f64) {
    let engine = market.engine();
    let now = market.now();
    let policy = &engine.config().policy;
    let k = market.config().match_size.max(1) as usize;
    let bound = policy.max_bonus_m() + INDEX_SLACK_M;
    let bound_without_hardship = bound - policy.hardship_bonus_m.max(0.0);
    let mut visited = Vec::new();
    let mut visited_split = 0usize;
    let mut visited_own = 0usize;
    let mut candidates: Vec<(f64, f64, bool)> = Vec::new();
    for spec in market.postings().iter().take(postings) {
        let Some(p) = engine.posting(&spec.id) else { continue };
        candidates.clear();
        candidates.extend(
            engine
                .workers()
                .iter()
                .filter(|w| w.status == WorkerStatus::Waiting && w.trades.iter().any(|t| t.trade == p.trade))
                .map(|w| {
                    let d = w.position.distance_m(p.position);
                    (d, policy.effective_distance(d, w, now), w.hardship.is_hardship())
                }),
        );
        let mut scores: Vec<f64> = candidates.iter().filter(|c| c.0 <= p.max_distance_m as f64).map(|c| c.1).collect();
        if scores.len() < k {
            continue;
        }
        scores.select_nth_unstable_by(k - 1, f64::total_cmp);
        let worst = scores[k - 1];
        visited.push(candidates.iter().filter(|c| c.0 - bound <= worst).count());
        visited_split +=
            candidates.iter().filter(|c| c.0 - if c.2 { bound } else { bound_without_hardship } <= worst).count();
        visited_own += candidates.iter().filter(|c| c.1 - INDEX_SLACK_M <= worst).count();
    }
    if visited.is_empty() {
        return (0.0, 0, 0, 0.0, 0.0);
    }
    let mean = visited.iter().sum::<usize>() as f64 / visited.len() as f64;
    let split_mean = visited_split as f64 / visited.len() as f64;
    let own_mean = visited_own as f64 / visited.len() as f64;
    visited.sort_unstable();
    (mean, visited[visited.len() / 2], visited[visited.len() * 9 / 10], split_mean, own_mean)
}

fn micros(nanos: u64) -> String {
    format!("{:.2}", nanos as f64 / 1000.0)
}

fn row(label: &str, n: usize, h: &Histogram<u64>) -> String {
    format!(
        "| {label} | {n} | {} | {} | {} | {} | {} | {} | {} |",
        h.len(),
        micros(h.value_at_quantile(0.5)),
        micros(h.value_at_quantile(0.9)),
        micros(h.value_at_quantile(0.99)),
        micros(h.value_at_quantile(0.999)),
        micros(h.max()),
        micros(h.mean() as u64),
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sizes = if args.sizes.is_empty() { bench_sizes_from_env()? } else { args.sizes.clone() };
    let operations: Vec<Operation> = if args.operations.is_empty() {
        Operation::ALL.to_vec()
    } else {
        args.operations
            .iter()
            .map(|name| Operation::from_name(name).with_context(|| format!("unknown operation `{name}`")))
            .collect::<Result<_>>()?
    };
    println!("size_of::<Worker>() = {} bytes", std::mem::size_of::<linggong_engine::Worker>());

    if !args.skip_memory {
        println!(
            "\n| N | heap bytes / worker (commands) | RSS growth / worker | heap bytes / worker (restored) \
             | build s | restore s | {} moves replayed after the restore, s |",
            args.replay_moves
        );
        println!("|---|---|---|---|---|---|---|");
        for &n in &sizes {
            let m = measure_memory(n, args.replay_moves)?;
            println!(
                "| {n} | {:.0} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} |",
                m.built_bytes as f64 / n as f64,
                m.built_rss as f64 / n as f64,
                m.restored_bytes as f64 / n as f64,
                m.build_secs,
                m.restore_secs,
                m.replay_secs,
            );
        }
    }

    if !args.skip_latency {
        let mut rows = Vec::new();
        let mut context = Vec::new();
        let mut scans = Vec::new();
        for &n in &sizes {
            let started = Instant::now();
            let mut config = MarketConfig::with_waiting_workers(n);
            config.postings = args.postings.unwrap_or(config.postings);
            config.engine.reverse_match = !args.no_reverse_match;
            let mut market = Market::build(&config)?;
            eprintln!("built a market of {n} waiting workers in {:.1} s", started.elapsed().as_secs_f64());
            for &operation in &operations {
                let lat = measure_latency(&mut market, operation, args.warmup, args.samples)?;
                rows.push(row(operation.name(), n, &lat.all));
                if operation == Operation::RespondToOffer {
                    rows.push(row("respond_to_offer (accept)", n, &lat.accept));
                    rows.push(row("respond_to_offer (decline)", n, &lat.decline));
                }
                eprintln!("{}", rows.last().map(String::as_str).unwrap_or_default());
            }
            if args.scan_bound_postings > 0 {
                let (mean, median, p90, split_mean, own_mean) = scan_bound(&market, args.scan_bound_postings);
                scans.push(format!("| {n} | {mean:.0} | {median} | {p90} | {split_mean:.0} | {own_mean:.0} |"));
            }
            let s = market.stats();
            let per_match = match s.matches {
                0 => "-".to_string(),
                matches => format!("{:.2}", s.match_offers as f64 / matches as f64),
            };
            let reverse_share = match s.registrations_and_moves {
                0 => "-".to_string(),
                runs => format!("{:.1}%", 100.0 * s.reverse_offers as f64 / runs as f64),
            };
            context.push(format!("| {n} | {per_match} | {reverse_share} |"));
        }
        println!("\n| operation | N | calls | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | mean µs |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for r in rows {
            println!("{r}");
        }
        println!("\n| N | offers per instant match | registrations and moves that got a reverse offer |");
        println!("|---|---|---|");
        for c in context {
            println!("{c}");
        }
        if !scans.is_empty() {
            println!(
                "\n| N | entries visited per match, one tree per trade: mean | median | p90 \
                 | mean, trees per trade and hardship class | worker records read by the best-first walk: mean |"
            );
            println!("|---|---|---|---|---|---|");
            for s in scans {
                println!("{s}");
            }
        }
    }
    Ok(())
}
