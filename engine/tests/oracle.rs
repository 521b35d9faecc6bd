//! Oracle tests: on a Linfen-shaped population with hardship workers, staggered waiting
//! times and reliability records built through commands, the R-tree ranking equals the
//! engine's linear scan and an independent brute-force ranking, under several policies.

mod common;

use common::*;
use compact_str::CompactString;
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::*;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Builds a market: `workers` workers registered over about four hours, a round of jobs
/// that leaves reliability records (completions, no-shows, declines, late cancellations),
/// some workers away or moved, and `postings` postings to query. Returns the engine, the
/// ids of the query postings and the time the market was built up to.
fn market(config: EngineConfig, seed: u64, workers: u64, postings: u64) -> (Engine, Vec<CompactString>, Timestamp) {
    let mut pop = Population::linfen(PopulationConfig { seed, ..PopulationConfig::default() });
    let mut engine = Engine::linfen(config);
    let mut now = T0;
    for i in 0..8 {
        let mut spec = pop.employer(i);
        spec.verified = i < 6;
        ok(&mut engine, now, Command::UpsertEmployer(spec));
    }
    let step_ms = 4 * 3_600_000 / workers as i64;
    for i in 0..workers {
        now = Timestamp(now.0 + step_ms);
        ok(&mut engine, now, Command::UpsertWorker(pop.worker(i)));
    }
    // A round of jobs, so reliability records differ.
    for i in 0..30 {
        let employer = format!("e{}", i % 6);
        let mut spec = pop.posting(1_000 + i, &employer, now);
        spec.headcount = 10;
        ok(&mut engine, now, Command::SubmitPosting(spec.clone()));
        ok(&mut engine, now, Command::InstantMatch { posting: spec.id.clone(), max_offers: 0 });
    }
    let offers: Vec<(OfferId, CompactString)> =
        engine.live_offers().iter().map(|o| (o.id, engine.worker_by_key(o.worker).id.clone())).collect();
    assert!(offers.len() as u64 > (workers / 10).min(100), "history round made only {} offers", offers.len());
    now = now.plus_secs(60);
    for (n, (offer, worker)) in offers.iter().enumerate() {
        let response = if n % 7 == 3 { OfferResponse::Decline } else { OfferResponse::Accept };
        ok(&mut engine, now, Command::RespondToOffer { offer: *offer, worker: worker.clone(), response });
        let follow_up = match (response, n % 9) {
            (OfferResponse::Decline, _) => None,
            (_, 0) => Some(Command::ReportNoShow { offer: *offer }),
            (_, 1) => Some(Command::WithdrawWorker { worker: worker.clone() }),
            (_, 2) => None, // stays engaged
            _ => Some(Command::CompleteJob { offer: *offer }),
        };
        if let Some(c) = follow_up {
            // A completion may hand the worker a new offer by reverse matching: fine.
            ok(&mut engine, now.plus_secs(3600), c);
        }
    }
    now = now.plus_secs(3600);
    // Some workers go away, some move, some come back.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for _ in 0..workers / 20 {
        let id = format!("w{}", rng.random_range(0..workers));
        let status = engine.worker(&id).unwrap().status;
        let command = match rng.random_range(0..3) {
            0 if status == WorkerStatus::Waiting => Command::SetAvailability { worker: id.into(), window: None },
            1 => {
                let county = pop.pick_county_code();
                Command::MoveWorker { worker: id.into(), position: pop.position_near(county) }
            }
            _ => Command::SetAvailability { worker: id.into(), window: Some(Availability::ALWAYS) },
        };
        now = now.plus_secs(1);
        ok(&mut engine, now, command);
    }
    // The postings to query: verified and unverified employers, several counties, and a
    // few wide ones at the 尧都区 seat where candidates are densest.
    let mut ids = Vec::new();
    for i in 0..postings {
        let employer = format!("e{}", i % 8);
        let mut spec = pop.posting(i, &employer, now);
        if i % 5 == 0 {
            spec.position = offset(yaodu_seat(), (i as f64) * 37.0, -(i as f64) * 53.0);
            spec.county = YAODU;
            spec.max_distance_m = 30_000;
        }
        ok(&mut engine, now, Command::SubmitPosting(spec.clone()));
        ids.push(spec.id);
    }
    engine.check_invariants().unwrap();
    (engine, ids, now)
}

fn heavy_policy() -> RankingPolicy {
    RankingPolicy {
        hardship_bonus_m: 5_000.0,
        waiting_bonus_m_per_hour: 1_000.0,
        waiting_bonus_cap_m: 3_000.0,
        reliability_bonus_m: 2_000.0,
    }
}

fn distance_only_policy() -> RankingPolicy {
    RankingPolicy {
        hardship_bonus_m: 0.0,
        waiting_bonus_m_per_hour: 0.0,
        waiting_bonus_cap_m: 0.0,
        reliability_bonus_m: 0.0,
    }
}

/// Compares the three rankings for `queries` random (posting, k, time) triples; returns
/// how many came back non-empty and how many differed from plain distance order.
fn compare_rankings(
    engine: &Engine,
    postings: &[CompactString],
    base: Timestamp,
    queries: usize,
    seed: u64,
) -> (usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut non_empty, mut reordered) = (0, 0);
    for _ in 0..queries {
        let id = &postings[rng.random_range(0..postings.len())];
        let k = [1, 2, 5, 10, 25, 60][rng.random_range(0..6)];
        let now = base.plus_secs(rng.random_range(-3_600..12 * 3_600));
        let by_index = engine.rank_by_index(now, id, k);
        let by_scan = engine.rank_by_linear_scan(now, id, k);
        assert_eq!(by_index, by_scan, "posting {id}, k {k}, now {now:?}: index vs linear scan");
        assert_eq!(by_index, brute_force_rank(engine, now, id, k), "posting {id}, k {k}: index vs brute force");
        if !by_index.is_empty() {
            non_empty += 1;
        }
        let p = engine.posting(id).unwrap();
        let distances: Vec<f64> =
            by_index.iter().map(|w| engine.worker(w).unwrap().position.distance_m(p.position)).collect();
        if distances.windows(2).any(|d| d[0] > d[1]) {
            reordered += 1;
        }
    }
    (non_empty, reordered)
}

#[test]
fn index_ranking_equals_linear_scan_default_policy() {
    let (engine, postings, now) = market(EngineConfig::default(), 7, 3_000, 40);
    let hardship = engine.workers().iter().filter(|w| w.hardship.is_hardship()).count();
    let with_history = engine.workers().iter().filter(|w| w.reliability != Reliability::default()).count();
    assert!(hardship > 200 && with_history > 100, "{hardship} hardship, {with_history} with history");
    let (non_empty, reordered) = compare_rankings(&engine, &postings, now, 200, 1);
    assert!(non_empty > 150, "only {non_empty} of 200 queries found anyone");
    assert!(reordered > 0, "the policy never changed distance order");
}

#[test]
fn index_ranking_equals_linear_scan_heavy_bonuses() {
    let config = EngineConfig { policy: heavy_policy(), ..EngineConfig::default() };
    let (engine, postings, now) = market(config, 8, 2_000, 30);
    let (non_empty, reordered) = compare_rankings(&engine, &postings, now, 150, 2);
    assert!(non_empty > 100, "only {non_empty} of 150 queries found anyone");
    assert!(reordered > 10, "heavy bonuses reordered only {reordered} rankings");
}

#[test]
fn index_ranking_equals_linear_scan_distance_only() {
    let config = EngineConfig { policy: distance_only_policy(), ..EngineConfig::default() };
    let (engine, postings, now) = market(config, 9, 2_000, 30);
    let (non_empty, reordered) = compare_rankings(&engine, &postings, now, 150, 3);
    assert!(non_empty > 100, "only {non_empty} of 150 queries found anyone");
    assert_eq!(reordered, 0, "distance-only policy must rank by distance");
}

/// Instant match offers exactly the top of the ranking, and after those workers are
/// offered, the next match continues down the same list.
#[test]
fn instant_match_takes_the_ranking_in_order() {
    let config = EngineConfig { policy: heavy_policy(), ..EngineConfig::default() };
    let (mut engine, postings, now) = market(config, 10, 1_500, 10);
    let id = &postings[0]; // a wide posting at the 尧都区 seat
    let p = engine.posting(id).unwrap().clone();
    assert_eq!(p.state, PostingState::Published, "posting of a verified employer");
    let expected = engine.rank_by_linear_scan(now, id, p.headcount as usize);
    assert!(!expected.is_empty());
    let first = offers_made(&ok(&mut engine, now, Command::InstantMatch { posting: id.clone(), max_offers: 1 }));
    assert_eq!(first.iter().map(|o| o.worker.clone()).collect::<Vec<_>>(), expected[..1]);
    let rest = offers_made(&ok(&mut engine, now, Command::InstantMatch { posting: id.clone(), max_offers: 0 }));
    assert_eq!(rest.iter().map(|o| o.worker.clone()).collect::<Vec<_>>(), expected[1..]);
    for o in first.iter().chain(&rest) {
        let w = engine.worker(&o.worker).unwrap();
        assert_eq!(o.distance_m, w.position.distance_m(p.position).round() as u32);
    }
}

proptest! {
    #![proptest_config(proptest_config(12))]

    /// Random policies and seeds on smaller markets.
    #[test]
    fn index_ranking_equals_linear_scan_random_policy(
        seed in any::<u64>(),
        hardship in 0.0f64..6_000.0,
        per_hour in 0.0f64..2_000.0,
        cap in 0.0f64..4_000.0,
        reliability in 0.0f64..3_000.0,
    ) {
        let policy = RankingPolicy {
            hardship_bonus_m: hardship,
            waiting_bonus_m_per_hour: per_hour,
            waiting_bonus_cap_m: cap,
            reliability_bonus_m: reliability,
        };
        let (engine, postings, now) = market(EngineConfig { policy, ..EngineConfig::default() }, seed, 600, 15);
        compare_rankings(&engine, &postings, now, 40, seed);
    }
}
