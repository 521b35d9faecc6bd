//! The policy lab end to end on generated county days: the baseline replayed
//! with its recorded answers reproduces the live ledger and state exactly; a
//! hardship-first policy measurably raises the hardship share of placements;
//! the fitted model recovers the true one; runs are deterministic per seed.

use linggong_engine::{Engine, EngineConfig, LedgerDay, RankingPolicy};
use linggong_lab::figures::Area;
use linggong_lab::generate::{county_day, true_model, DayConfig, GeneratedDay};
use linggong_lab::model::{History, OfferFeatures};
use linggong_lab::{run, Answers, LabRequest, PolicyFile};

fn live_policy() -> RankingPolicy {
    RankingPolicy::default()
}

fn day(config: &DayConfig) -> GeneratedDay {
    county_day(config, &live_policy()).expect("the generated day applies")
}

/// The live engine: everything before the day and the day's log, applied straight.
fn live_engine(d: &GeneratedDay) -> Engine {
    let mut engine = d.start(EngineConfig::default()).unwrap();
    let mut events = Vec::new();
    for s in &d.steps {
        engine.apply(s.now, &s.command, &mut events).expect("the live log applies");
    }
    engine
}

#[test]
fn baseline_with_recorded_answers_reproduces_the_live_ledger() {
    let d = day(&DayConfig::default());
    assert!(d.steps.len() > 1_000, "a busy day: {} records", d.steps.len());
    let live = live_engine(&d);
    let start = d.start(EngineConfig::default()).unwrap();
    let r = run(&start, &live_policy(), &d.steps, (d.from, d.to), Answers::Recorded).unwrap();
    assert_eq!(r.stats.logged_refused, 0, "{:?}", r.stats);
    assert_eq!(r.stats.logged_applied, d.steps.len() as u64);
    let day = LedgerDay::of(d.from);
    for county in live.regions().counties() {
        assert_eq!(r.engine.ledger_report(day, county.code), live.ledger_report(day, county.code), "{}", county.code);
    }
    assert!(r.engine.snapshot() == live.snapshot(), "the replayed state equals the live one");
    // The observer's figures agree with the ledger where both count the same thing.
    let ledger = live.ledger_report(day, 141002).unwrap();
    let f = &r.figures;
    assert!(ledger.placements > 50, "{ledger:?}");
    assert_eq!(f.get(Area::County(141002), "placements"), Some(ledger.placements as f64));
    assert_eq!(f.get(Area::City, "placements"), Some(ledger.placements as f64));
    assert_eq!(f.get(Area::County(141002), "no_shows"), Some(ledger.no_shows as f64));
    let share = f.get(Area::County(141002), "hardship_share_placed").unwrap();
    assert!((share / 100.0 - ledger.hardship_share.unwrap()).abs() < 1e-9, "{share} vs {:?}", ledger.hardship_share);
    assert_eq!(f.get(Area::County(141002), "offers"), Some(ledger.offers_made as f64));
}

#[test]
fn the_fit_recovers_the_true_model_and_the_baseline_replay_tracks_the_live_day() {
    let d = day(&DayConfig { postings: 300, ..DayConfig::default() });
    let start = d.start(EngineConfig::default()).unwrap();
    let live = run(&start, &live_policy(), &d.steps, (d.from, d.to), Answers::Recorded).unwrap();
    let fitted = live.fit.model();
    let truth = true_model();
    // Cells the day offers often (thin ones lean on the log-wide shares by design).
    for (distance_m, wage_ratio) in [(4_500, 1.4), (8_000, 1.4), (15_000, 1.8), (4_500, 2.5)] {
        let f = OfferFeatures { distance_m, wage_ratio, history: History::New };
        let (a, b) = (fitted.chances(&f), truth.chances(&f));
        assert!((a[0] - b[0]).abs() < 0.12, "accept at {distance_m} m, wage ×{wage_ratio}: fitted {a:?}, true {b:?}");
    }
    let modelled =
        run(&start, &live_policy(), &d.steps, (d.from, d.to), Answers::Modelled { model: &fitted, seed: 1 }).unwrap();
    for key in ["fill_rate", "placements"] {
        let (l, m) = (live.figures.get(Area::City, key).unwrap(), modelled.figures.get(Area::City, key).unwrap());
        assert!((m - l).abs() <= 0.15 * l, "{key}: live {l}, baseline under the model {m}");
    }
}

#[test]
fn a_hardship_first_policy_measurably_raises_the_hardship_share() {
    let d = day(&DayConfig { seed: 11, workers: 400, postings: 200, ..DayConfig::default() });
    let start = d.start(EngineConfig::default()).unwrap();
    let hardship_first =
        PolicyFile::current("hardship-first", RankingPolicy { hardship_bonus_m: 8_000.0, ..RankingPolicy::default() });
    let request = LabRequest {
        start: &start,
        steps: &d.steps,
        from: d.from,
        to: d.to,
        baseline: PolicyFile::current("current", live_policy()),
        policies: vec![hardship_first],
        seeds: 4,
    };
    let (c, _) = request.compare(&live_policy()).unwrap();
    let i = c.metrics.iter().position(|m| m.key == "hardship_share_placed").unwrap();
    let base = c.estimate(0, Area::City, i).unwrap();
    let diff = c.difference(1, Area::City, i).unwrap();
    assert!(diff.mean > 3.0 && diff.mean > diff.half_width, "baseline {base:?}, difference {diff:?}");
    let travel = c.metrics.iter().position(|m| m.key == "travel_median_m").unwrap();
    assert!(c.difference(1, Area::City, travel).unwrap().mean > 0.0, "hardship credit costs travel distance");
    let md = linggong_lab::output::markdown(&c, start.regions());
    assert!(md.contains("hardship-first") && md.contains("hardship share of placements"), "{md}");
    let svg = linggong_lab::output::chart_svg(&c, start.regions(), "hardship_share_placed").unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("hardship-first"), "{}", &svg[..200.min(svg.len())]);
    assert!(linggong_lab::output::csv(&c).lines().count() > 100);
}

#[test]
fn the_same_seed_gives_the_same_figures() {
    let config = DayConfig { workers: 200, postings: 60, ..DayConfig::default() };
    let a = day(&config);
    let b = day(&config);
    assert_eq!(a.steps, b.steps, "the generator is deterministic");
    let start = a.start(EngineConfig::default()).unwrap();
    let model = true_model();
    let policy = RankingPolicy { hardship_bonus_m: 5_000.0, ..RankingPolicy::default() };
    let go = |seed| run(&start, &policy, &a.steps, (a.from, a.to), Answers::Modelled { model: &model, seed }).unwrap();
    let (x, y, z) = (go(3), go(3), go(4));
    assert_eq!(x.figures, y.figures);
    assert!(x.engine.snapshot() == y.engine.snapshot());
    assert_ne!(x.figures, z.figures, "another seed draws other answers");
    assert!(x.figures.get(Area::City, "placements").unwrap() > 0.0);
}

#[test]
fn a_logged_policy_change_replays_with_recorded_answers_and_is_left_out_of_counterfactuals() {
    let config = DayConfig { workers: 200, postings: 80, ..DayConfig::default() };
    let d = day(&config);
    // Insert a policy change at noon and re-record the day's live run around it.
    let noon = linggong_engine::Timestamp(d.from.0 + 12 * 3_600_000);
    let changed = RankingPolicy { hardship_bonus_m: 7_000.0, ..RankingPolicy::default() };
    let mut steps = d.steps.clone();
    let at = steps.partition_point(|s| s.now < noon);
    steps.insert(
        at,
        linggong_lab::LoggedStep { now: noon, command: linggong_engine::Command::SetRankingPolicy(changed.clone()) },
    );
    let start = d.start(EngineConfig::default()).unwrap();
    let recorded = run(&start, &live_policy(), &steps, (d.from, d.to), Answers::Recorded).unwrap();
    assert_eq!(recorded.engine.config().policy, changed, "the change applied");
    recorded.engine.check_invariants().expect("the index follows the new policy");
    let model = true_model();
    let other = RankingPolicy { hardship_bonus_m: 3_000.0, ..RankingPolicy::default() };
    let modelled = run(&start, &other, &steps, (d.from, d.to), Answers::Modelled { model: &model, seed: 1 }).unwrap();
    assert_eq!(modelled.engine.config().policy, other, "the replayed policy held");
    assert_eq!(modelled.stats.logged_policy_changes_skipped, 1);
    // An invalid policy is refused by the engine.
    let mut engine = start.clone();
    let bad = RankingPolicy { hardship_bonus_m: f64::NAN, ..RankingPolicy::default() };
    let e = engine.apply(noon, &linggong_engine::Command::SetRankingPolicy(bad), &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("hardship_bonus_m"), "{e}");
}

#[test]
fn batch_windows_replay_a_day_deterministically_beside_greedy() {
    let d = day(&DayConfig { postings: 300, ..DayConfig::default() });
    let start = d.start(EngineConfig::default()).unwrap();
    let model = true_model();
    let batch = linggong_engine::BatchPolicy { window_ms: 5_000, counties: Vec::new() };
    let mut queued = 0;
    let mut closed = 0;
    let batched = linggong_lab::replay::run_with(
        &start,
        &live_policy(),
        &batch,
        &d.steps,
        (d.from, d.to),
        Answers::Modelled { model: &model, seed: 1 },
        |_, outcome| match outcome {
            linggong_engine::Outcome::Queued { .. } => queued += 1,
            linggong_engine::Outcome::Ticked { offers_made, .. } if *offers_made > 0 => closed += 1,
            _ => {}
        },
    )
    .unwrap();
    assert!(queued > 100 && closed > 50, "instant matches waited ({queued}) and windows closed with offers ({closed})");
    batched.engine.check_invariants().expect("no worker in two live offers, no headcount exceeded");
    let greedy =
        run(&start, &live_policy(), &d.steps, (d.from, d.to), Answers::Modelled { model: &model, seed: 1 }).unwrap();
    let again = linggong_lab::run_batched(
        &start,
        &live_policy(),
        &batch,
        &d.steps,
        (d.from, d.to),
        Answers::Modelled { model: &model, seed: 1 },
    )
    .unwrap();
    assert_eq!(again.figures, batched.figures, "deterministic for the log and the seed");
    assert_ne!(greedy.figures, batched.figures, "the window changes who is offered what");
    let placed = |r: &linggong_lab::RunResult| r.figures.get(Area::City, "placements").unwrap();
    assert!(placed(&batched) > 0.8 * placed(&greedy), "batch {} vs greedy {}", placed(&batched), placed(&greedy));
}
