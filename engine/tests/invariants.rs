//! Property tests: random command sequences over small id spaces (so commands collide
//! often) with an advancing virtual clock; after every step the engine's own structural
//! check and public-query checks must hold, refused commands must change nothing, and
//! each outcome must agree with an independent reading of the state.

mod common;

use common::*;
use linggong_engine::*;
use proptest::prelude::*;

/// What the state said just before a command, for checking its outcome.
struct Expectation {
    /// For an instant match on an open posting of a non-suspended employer: the brute-force ranking.
    ranking: Option<Vec<compact_str::CompactString>>,
    /// Pending offers whose deadline has passed (a tick expires them).
    overdue_offers: u32,
    /// Unfinished postings whose job window has ended (a tick expires them).
    overdue_postings: u32,
    /// For a suspension: pending offers of the employer's postings.
    employer_pending: u32,
    /// For a completion: the worker holding the offer.
    offer_holder: Option<compact_str::CompactString>,
}

fn expectation(engine: &Engine, now: Timestamp, command: &Command) -> Expectation {
    let ranking = match command {
        Command::InstantMatch { posting, max_offers } => engine
            .posting(posting)
            .filter(|p| p.state.is_open() && !engine.employer_by_key(p.employer).suspended)
            .map(|p| {
                let want = if *max_offers == 0 { p.remaining() } else { p.remaining().min(*max_offers) };
                brute_force_rank(engine, now, posting, want as usize)
            }),
        _ => None,
    };
    let overdue_offers =
        engine.live_offers().iter().filter(|o| o.state == OfferState::Pending && o.deadline <= now).count() as u32;
    let overdue_postings = engine
        .postings()
        .iter()
        .filter(|p| {
            matches!(p.state, PostingState::PendingReview | PostingState::Published | PostingState::Filling)
                && p.expires_at() <= now
        })
        .count() as u32;
    let employer_pending = match command {
        Command::SuspendEmployer { employer, .. } => engine
            .live_offers()
            .iter()
            .filter(|o| {
                o.state == OfferState::Pending
                    && engine.employer_by_key(engine.posting_by_key(o.posting).employer).id == *employer
            })
            .count() as u32,
        _ => 0,
    };
    let offer_holder = match command {
        Command::CompleteJob { offer } => engine.offer(*offer).map(|o| engine.worker_by_key(o.worker).id.clone()),
        _ => None,
    };
    Expectation { ranking, overdue_offers, overdue_postings, employer_pending, offer_holder }
}

/// A worker who is waiting after a reverse match that offered nothing must have no
/// eligible open posting within reach.
#[track_caller]
fn check_no_reverse_candidate(engine: &Engine, worker: &str) {
    let (key, w) = engine.workers().iter().enumerate().find(|(_, w)| w.id == worker).expect("worker exists");
    if w.status != WorkerStatus::Waiting {
        return;
    }
    for p in engine.postings() {
        let matchable = p.state.is_open() && p.remaining() > 0 && !engine.employer_by_key(p.employer).suspended;
        let eligible = w.trades.iter().any(|t| t.trade == p.trade)
            && w.availability.covers(p.start)
            && w.min_daily_wage <= p.daily_wage
            && !p.passed_over.contains(&(key as WorkerKey))
            && w.position.distance_m(p.position) <= p.max_distance_m as f64;
        assert!(!(matchable && eligible), "waiting worker {worker} was not offered open posting {}", p.id);
    }
}

#[track_caller]
fn check_outcome(engine: &Engine, now: Timestamp, command: &Command, outcome: &Outcome, exp: &Expectation) {
    match (command, outcome) {
        (Command::InstantMatch { posting, .. }, Outcome::Matched { offers, remaining }) => {
            let p = engine.posting(posting).expect("matched posting exists");
            assert_eq!(*remaining, p.remaining(), "remaining slots after matching {posting}");
            let got: Vec<_> = offers.iter().map(|o| o.worker.clone()).collect();
            assert_eq!(Some(&got), exp.ranking.as_ref(), "instant match of {posting} vs brute force");
            for o in offers {
                assert_eq!(&o.posting, posting);
                assert_eq!(o.deadline, now.plus_secs(p.offer_ttl_secs as i64));
                let live = engine.offer(o.offer).expect("new offer is live");
                assert_eq!(live.state, OfferState::Pending);
                assert_eq!(engine.worker_by_key(live.worker).id, o.worker);
                let w = engine.worker(&o.worker).unwrap();
                assert_eq!(w.status, WorkerStatus::Offered);
                assert!(w.trades.iter().any(|t| t.trade == p.trade), "offer {} for a trade {} lacks", o.offer, w.id);
            }
        }
        (Command::UpsertWorker(_) | Command::MoveWorker { .. } | Command::SetAvailability { .. }, _)
        | (Command::CompleteJob { .. }, _) => {
            let made = offers_made(outcome);
            assert!(made.len() <= 1);
            for o in &made {
                check_reverse_offer(engine, o);
            }
            let worker = match command {
                Command::UpsertWorker(spec) => Some(spec.id.clone()),
                Command::MoveWorker { worker, .. } | Command::SetAvailability { worker, .. } => Some(worker.clone()),
                _ => exp.offer_holder.clone(),
            };
            if let Some(o) = made.first() {
                assert_eq!(Some(&o.worker), worker.as_ref(), "reverse offer went to another worker");
            }
            if made.is_empty() {
                if let Some(worker) = &worker {
                    check_no_reverse_candidate(engine, worker);
                }
            }
            if let Outcome::WorkerUpdated { status, .. } = outcome {
                let worker = worker.expect("worker command");
                assert_eq!(*status, engine.worker(&worker).unwrap().status);
            }
        }
        (Command::WithdrawWorker { worker }, Outcome::WorkerWithdrawn { .. }) => {
            assert_eq!(engine.worker(worker).unwrap().status, WorkerStatus::Away);
        }
        (_, Outcome::PostingChanged { state, version, reason, .. }) => {
            let id = match command {
                Command::SubmitPosting(s) | Command::UpdatePosting(s) => s.id.clone(),
                Command::ReviewPosting { posting, .. } | Command::CancelPosting { posting, .. } => posting.clone(),
                other => panic!("posting outcome for {}", other.name()),
            };
            let p = engine.posting(&id).unwrap();
            assert_eq!((*state, *version, reason), (p.state, p.version, &p.reason));
        }
        (Command::Tick, Outcome::Ticked { offers_expired, postings_expired, .. }) => {
            assert_eq!(*offers_expired, exp.overdue_offers, "offers expired by tick");
            assert_eq!(*postings_expired, exp.overdue_postings, "postings expired by tick");
            assert!(engine.live_offers().iter().all(|o| o.state != OfferState::Pending || o.deadline > now));
        }
        (Command::SuspendEmployer { employer, .. }, Outcome::EmployerStatusChanged { suspended, offers_withdrawn }) => {
            assert!(*suspended);
            assert_eq!(*offers_withdrawn, exp.employer_pending);
            assert!(engine.employer(employer).unwrap().suspended);
        }
        (Command::ReinstateEmployer { employer }, Outcome::EmployerStatusChanged { suspended, .. }) => {
            assert!(!*suspended);
            assert!(!engine.employer(employer).unwrap().suspended);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(proptest_config(128))]

    #[test]
    fn invariants_hold_after_every_command(session in gen_session(60)) {
        let mut engine = Engine::linfen(EngineConfig::default());
        let mut now = T0;
        for (advance, op) in &session {
            now = Timestamp(now.0 + advance);
            let command = op.command(&engine, now);
            let exp = expectation(&engine, now, &command);
            let before = engine.snapshot();
            let mut events = Vec::new();
            match engine.apply(now, &command, &mut events) {
                Err(e) => {
                    prop_assert_eq!(&before, &engine.snapshot(), "{} refused with {} but changed state", command.name(), e);
                    prop_assert!(events.is_empty(), "{} refused but emitted events", command.name());
                }
                Ok(outcome) => {
                    check_outcome(&engine, now, &command, &outcome, &exp);
                }
            }
            engine.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_public_invariants(&engine);
        }
    }

    /// Same commands under a policy with heavy bonuses and no reverse matching.
    #[test]
    fn invariants_hold_under_another_policy(session in gen_session(40)) {
        let config = EngineConfig {
            policy: RankingPolicy {
                hardship_bonus_m: 4_000.0,
                waiting_bonus_m_per_hour: 2_000.0,
                waiting_bonus_cap_m: 3_000.0,
                reliability_bonus_m: 1_000.0,
            },
            reverse_match: false,
            default_offer_ttl_secs: 45,
            ..EngineConfig::default()
        };
        let mut engine = Engine::linfen(config);
        let mut now = T0;
        for (advance, op) in &session {
            now = Timestamp(now.0 + advance);
            let command = op.command(&engine, now);
            let exp = expectation(&engine, now, &command);
            let before = engine.snapshot();
            match engine.apply(now, &command, &mut Vec::new()) {
                Err(_) => prop_assert_eq!(&before, &engine.snapshot()),
                Ok(outcome) => {
                    prop_assert!(
                        !matches!(command, Command::UpsertWorker(_) | Command::MoveWorker { .. } | Command::SetAvailability { .. } | Command::CompleteJob { .. })
                            || offers_made(&outcome).is_empty(),
                        "reverse match ran while disabled"
                    );
                    if matches!(command, Command::InstantMatch { .. } | Command::Tick | Command::SuspendEmployer { .. }) {
                        check_outcome(&engine, now, &command, &outcome, &exp);
                    }
                }
            }
            engine.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_public_invariants(&engine);
        }
    }
}

/// The generator must reach the interesting paths, or the properties above prove little:
/// over a fixed set of sessions, every command kind succeeds somewhere and postings reach
/// every final state.
#[test]
fn generated_sessions_reach_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;

    let mut runner = TestRunner::deterministic();
    let strategy = gen_session(60);
    let mut succeeded: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut refused = 0;
    let mut posting_states = std::collections::BTreeSet::new();
    let (mut expired_offers, mut reverse_offers, mut instant_offers) = (0, 0, 0);
    for _ in 0..64 {
        let session = strategy.new_tree(&mut runner).expect("generate").current();
        let mut engine = Engine::linfen(EngineConfig::default());
        let mut now = T0;
        for (advance, op) in &session {
            now = Timestamp(now.0 + advance);
            let command = op.command(&engine, now);
            match engine.apply(now, &command, &mut Vec::new()) {
                Ok(outcome) => {
                    *succeeded.entry(command.name()).or_default() += 1;
                    match &outcome {
                        Outcome::Ticked { offers_expired, .. } => expired_offers += offers_expired,
                        Outcome::Matched { offers, .. } => instant_offers += offers.len(),
                        other => reverse_offers += offers_made(other).len(),
                    }
                }
                Err(_) => refused += 1,
            }
        }
        posting_states.extend(engine.postings().iter().map(|p| format!("{:?}", p.state)));
    }
    let all = [
        "upsert_worker",
        "move_worker",
        "set_availability",
        "withdraw_worker",
        "upsert_employer",
        "suspend_employer",
        "reinstate_employer",
        "submit_posting",
        "update_posting",
        "review_posting",
        "cancel_posting",
        "instant_match",
        "respond_to_offer",
        "confirm_arrival",
        "complete_job",
        "report_no_show",
        "file_complaint",
        "resolve_complaint",
        "tick",
    ];
    for name in all {
        assert!(succeeded.get(name).copied().unwrap_or(0) > 0, "{name} never succeeded: {succeeded:?}");
    }
    for state in ["Published", "Filling", "Filled", "Expired", "Cancelled", "Rejected", "PendingReview"] {
        assert!(posting_states.contains(state), "no posting ended {state}: {posting_states:?}");
    }
    assert!(refused > 0, "no command was refused");
    assert!(
        expired_offers > 0 && reverse_offers > 0 && instant_offers > 0,
        "{expired_offers} {reverse_offers} {instant_offers}"
    );
}
