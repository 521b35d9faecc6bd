//! A generated market day, for tests, benchmarks and the documentation's
//! example: a seeded script of supply and demand in one county (workers
//! registering and moving, postings submitted and matched, ticks), with
//! workers answering by a known "true" response model, run under a live
//! policy and logged the way the server logs (every command that changed
//! something, at its time).
//!
//! The true model: the chance of accepting falls with distance (90% under
//! 1 km to 35% beyond 10 km) and rises with the wage ratio; one offer in ten
//! goes unanswered; no-shows are 4% for new and reliable workers, 20% for
//! those with a no-show.

use crate::model::{Answer, History, OfferFeatures, ResponseFit, ResponseModel};
use crate::replay::{run_with, Answers, LabError, LoggedStep};
use compact_str::format_compact;
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Availability, Command, Engine, EngineConfig, EngineError, LedgerDay, RankingPolicy, Timestamp};
use rand::RngExt;

/// What to generate.
#[derive(Clone, Debug)]
pub struct DayConfig {
    /// Seed of every draw.
    pub seed: u64,
    /// The day (China Standard Time).
    pub day: LedgerDay,
    /// County division code.
    pub county: u32,
    /// Workers registered before the day.
    pub workers: u32,
    /// Workers registering during the day.
    pub new_workers: u32,
    /// Postings during the day.
    pub postings: u32,
    /// Share of workers with a hardship category.
    pub hardship_share: f64,
    /// Spread of workers and work places around the county seat, metres.
    pub spread_m: f64,
}

impl Default for DayConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            day: LedgerDay::from_ymd(2024, 3, 2).expect("a date"),
            county: 141002,
            workers: 400,
            new_workers: 40,
            postings: 220,
            hardship_share: 0.2,
            spread_m: 6_000.0,
        }
    }
}

/// A generated day: the state before it and its log.
pub struct GeneratedDay {
    /// Everything logged before the day (employers, the workers already registered).
    pub before: Vec<LoggedStep>,
    /// The day's log.
    pub steps: Vec<LoggedStep>,
    /// Start of the day.
    pub from: Timestamp,
    /// End of the day (exclusive).
    pub to: Timestamp,
}

impl GeneratedDay {
    /// The engine state at the start of the day, built from `before`.
    pub fn start(&self, config: EngineConfig) -> Result<Engine, EngineError> {
        let mut engine = Engine::linfen(config);
        let mut events = Vec::new();
        for s in &self.before {
            engine.apply(s.now, &s.command, &mut events)?;
            events.clear();
        }
        Ok(engine)
    }
}

/// The true response model of generated days (see the module docs).
pub fn true_model() -> ResponseModel {
    let mut fit = ResponseFit::default();
    for (d, accept_pct) in [(500u32, 90u32), (2_000, 80), (4_500, 65), (8_000, 50), (15_000, 35)] {
        for (ratio, bonus) in [(1.1, 0u32), (1.4, 3), (1.8, 5), (2.5, 7)] {
            for history in [History::New, History::Reliable, History::NoShows] {
                let f = OfferFeatures { distance_m: d, wage_ratio: ratio, history };
                let accept = (accept_pct + bonus).min(95) * 10;
                let no_reply = 100;
                for k in 0..1_000 {
                    let answer = if k < accept {
                        Answer::Accept
                    } else if k < accept + no_reply {
                        Answer::NoReply
                    } else {
                        Answer::Decline
                    };
                    fit.answer(&f, answer, 20_000 + (k as i64 % 7) * 15_000);
                }
            }
        }
    }
    for (history, shows_per_100) in [(History::New, 4), (History::Reliable, 4), (History::NoShows, 20)] {
        for k in 0..1_000 {
            fit.attendance(history, k % 100 >= shows_per_100, (k as i64 % 5) * 120_000);
        }
    }
    for k in 0..100 {
        fit.completion(6 * 3_600_000 + k * 60_000);
    }
    fit.model()
}

/// Generates a day under `live` (the policy in force), answered by [`true_model`].
pub fn county_day(config: &DayConfig, live: &RankingPolicy) -> Result<GeneratedDay, LabError> {
    let mut population = Population::linfen(PopulationConfig {
        seed: config.seed,
        spread_m: config.spread_m,
        hardship_share: config.hardship_share,
        verified_share: 1.0,
    });
    let from = config.day.start();
    let to = from.plus_secs(86_400);
    let at = |h: f64| Timestamp(from.0 + (h * 3_600_000.0) as i64);
    let before_at = Timestamp(from.0 - 3_600_000);
    let mut before = Vec::new();
    for i in 0..10 {
        let spec = population.employer(i);
        before.push(LoggedStep { now: before_at, command: Command::UpsertEmployer(spec) });
    }
    let worker = |population: &mut Population, i: u64| {
        let mut spec = population.worker(i);
        spec.county = config.county;
        spec.position = population.position_near(config.county);
        spec.township = None;
        spec
    };
    for i in 0..config.workers {
        before.push(LoggedStep { now: before_at, command: Command::UpsertWorker(worker(&mut population, i.into())) });
    }
    // The day's supply and demand, 07:00 to 19:00, sorted by time.
    let mut script: Vec<(Timestamp, u32, Command)> = Vec::new();
    let mut n = 0u32;
    let mut push = |script: &mut Vec<(Timestamp, u32, Command)>, t: Timestamp, c: Command| {
        n += 1;
        script.push((t, n, c));
    };
    for i in 0..config.new_workers {
        let t = at(population.rng().random_range(7.0..18.0));
        let spec = worker(&mut population, u64::from(config.workers + i));
        push(&mut script, t, Command::UpsertWorker(spec));
    }
    for i in 0..config.postings {
        let t = at(population.rng().random_range(7.0..18.0));
        let employer = format_compact!("e{}", population.rng().random_range(0..10));
        let mut spec = population.posting(i.into(), &employer, t);
        spec.county = config.county;
        spec.position = population.position_near(config.county);
        spec.headcount = population.rng().random_range(1..=4);
        spec.offer_ttl_secs = 600;
        let id = spec.id.clone();
        push(&mut script, t, Command::SubmitPosting(spec));
        push(&mut script, t.plus_secs(1), Command::InstantMatch { posting: id, max_offers: 0 });
    }
    for _ in 0..config.workers / 4 {
        let t = at(population.rng().random_range(7.0..18.0));
        let w = format_compact!("w{}", population.rng().random_range(0..config.workers));
        let position = population.position_near(config.county);
        push(&mut script, t, Command::MoveWorker { worker: w, position });
    }
    for _ in 0..config.workers / 10 {
        let t = at(population.rng().random_range(7.0..16.0));
        let w = format_compact!("w{}", population.rng().random_range(0..config.workers));
        push(&mut script, t, Command::SetAvailability { worker: w.clone(), window: None });
        let back = t.plus_secs(population.rng().random_range(1_800..7_200));
        push(&mut script, back, Command::SetAvailability { worker: w, window: Some(Availability::ALWAYS) });
    }
    let mut tick = at(7.0);
    while tick < at(24.0).min(to) {
        push(&mut script, tick, Command::Tick);
        tick = tick.plus_secs(300);
    }
    script.sort_by_key(|(t, k, _)| (*t, *k));
    let script: Vec<LoggedStep> = script.into_iter().map(|(now, _, command)| LoggedStep { now, command }).collect();
    let day = GeneratedDay { before, steps: Vec::new(), from, to };
    let start = day.start(EngineConfig { policy: live.clone(), ..EngineConfig::default() })?;
    let model = true_model();
    let mut steps = Vec::new();
    run_with(
        &start,
        live,
        &linggong_engine::BatchPolicy::default(),
        &script,
        (from, to),
        Answers::Modelled { model: &model, seed: config.seed },
        |step, outcome| {
            if !outcome.is_no_op() {
                steps.push(LoggedStep { now: step.now, command: step.command.clone() });
            }
        },
    )?;
    Ok(GeneratedDay { steps, ..day })
}
