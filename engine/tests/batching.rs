//! Batch decision windows: instant matches of a batching county wait until
//! the window closes and are then assigned together; they keep every
//! guarantee of greedy matching (no worker in two live offers, headcount
//! never exceeded, deterministic) and can lower the total travel distance.

mod common;

use common::*;
use linggong_engine::*;
use proptest::prelude::*;

const WINDOW_MS: u32 = 5_000;

fn batching(counties: Vec<u32>) -> Engine {
    let mut engine = Engine::linfen(EngineConfig::default());
    ok(&mut engine, T0, Command::SetBatchPolicy(BatchPolicy { window_ms: WINDOW_MS, counties }));
    engine
}

/// Two one-slot postings 2.2 km apart on a line and two workers: `w-mid` 1 km
/// east of `p-west` (1.2 km from `p-east`), `w-far` 1.5 km west of `p-west`.
/// Asked one by one, `p-west` takes `w-mid` and `p-east` is left with
/// `w-far` 3.7 km away (4.7 km in all); assigned together, 2.7 km.
fn crossing(engine: &mut Engine) {
    let base = yaodu_seat();
    ok(engine, T0, Command::UpsertEmployer(employer_spec("e", true)));
    for (id, east) in [("w-mid", 1_000.0), ("w-far", -1_500.0)] {
        ok(engine, T0, Command::UpsertWorker(worker_spec(id, &["mason"], offset(base, 0.0, east))));
    }
    for (id, east) in [("p-west", 0.0), ("p-east", 2_200.0)] {
        ok(engine, T0, Command::SubmitPosting(posting_spec(id, "e", "mason", 1, offset(base, 0.0, east))));
    }
}

fn match_both(engine: &mut Engine, now: Timestamp) -> Vec<Outcome> {
    ["p-west", "p-east"]
        .iter()
        .map(|p| ok(engine, now, Command::InstantMatch { posting: (*p).into(), max_offers: 0 }))
        .collect()
}

/// (posting, worker, distance) of every live offer, sorted.
fn live_offers(engine: &Engine) -> Vec<(String, String, u32)> {
    let mut out: Vec<_> = engine
        .snapshot()
        .offers
        .iter()
        .map(|o| {
            let p = engine.snapshot().postings[o.posting as usize].id.to_string();
            (p, engine.worker_by_key(o.worker).id.to_string(), o.distance_m)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_window_assigns_its_requests_together_for_less_total_travel() {
    let mut greedy = Engine::linfen(EngineConfig::default());
    crossing(&mut greedy);
    match_both(&mut greedy, at(10));
    let greedy_offers = live_offers(&greedy);
    assert_eq!(greedy_offers.iter().map(|o| o.1.as_str()).collect::<Vec<_>>(), ["w-far", "w-mid"]);
    let greedy_total: u32 = greedy_offers.iter().map(|o| o.2).sum();

    let mut batch = batching(Vec::new());
    crossing(&mut batch);
    let queued = match_both(&mut batch, at(10));
    let decide_at = Timestamp(at(10).0 + i64::from(WINDOW_MS));
    for outcome in &queued {
        assert_eq!(*outcome, Outcome::Queued { decide_at, remaining: 1 });
    }
    assert!(live_offers(&batch).is_empty(), "no offer before the window closes");
    assert_eq!(batch.next_deadline(), Some(decide_at));
    // A tick before the close changes nothing.
    assert!(ok(&mut batch, Timestamp(decide_at.0 - 1), Command::Tick).is_no_op());
    let mut events = Vec::new();
    let ticked = ok_with(&mut batch, decide_at, Command::Tick, &mut events);
    assert_eq!(ticked, Outcome::Ticked { offers_expired: 0, postings_expired: 0, offers_made: 2 });
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Offer(o) if o.state == OfferState::Pending)).count(), 2);
    let batch_offers = live_offers(&batch);
    assert_eq!(
        batch_offers.iter().map(|o| (o.0.as_str(), o.1.as_str())).collect::<Vec<_>>(),
        [("p-east", "w-mid"), ("p-west", "w-far")]
    );
    let batch_total: u32 = batch_offers.iter().map(|o| o.2).sum();
    assert!((4_650..=4_750).contains(&greedy_total), "greedy total {greedy_total} m");
    assert!((2_650..=2_750).contains(&batch_total), "batch total {batch_total} m");
    batch.check_invariants().expect("invariants");
    check_public_invariants(&batch);
    assert_eq!(batch.next_deadline(), batch.snapshot().offers.iter().map(|o| o.deadline).min());
}

#[test]
fn other_counties_match_greedily_and_greedy_is_the_default() {
    let mut engine = batching(vec![HOUMA]);
    crossing(&mut engine);
    let outcomes = match_both(&mut engine, at(10));
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Matched { offers, .. } if offers.len() == 1)));
    assert_eq!(Engine::linfen(EngineConfig::default()).batch_policy(), &BatchPolicy::default());
}

#[test]
fn a_request_repeated_in_its_window_waits_once_and_a_closed_posting_is_dropped() {
    let mut engine = batching(Vec::new());
    crossing(&mut engine);
    let first = ok(&mut engine, at(10), Command::InstantMatch { posting: "p-west".into(), max_offers: 0 });
    let again = ok(&mut engine, at(12), Command::InstantMatch { posting: "p-west".into(), max_offers: 1 });
    assert_eq!(first, again, "the window does not move");
    assert_eq!(engine.batch_windows().windows().iter().map(|w| w.requests.len()).sum::<usize>(), 1);
    ok(&mut engine, at(11), Command::InstantMatch { posting: "p-east".into(), max_offers: 0 });
    ok(&mut engine, at(13), Command::CancelPosting { posting: "p-east".into(), reason: "用工取消".into() });
    let Outcome::Queued { decide_at, .. } = first else { panic!("queued: {first:?}") };
    let ticked = ok(&mut engine, decide_at, Command::Tick);
    assert_eq!(ticked, Outcome::Ticked { offers_expired: 0, postings_expired: 0, offers_made: 1 });
    // With p-east gone, p-west gets its nearest worker.
    assert_eq!(live_offers(&engine).iter().map(|o| o.1.as_str()).collect::<Vec<_>>(), ["w-mid"]);
    assert!(engine.batch_windows().windows().is_empty());
}

#[test]
fn a_full_window_closes_at_once() {
    let mut engine = batching(Vec::new());
    ok(&mut engine, T0, Command::UpsertEmployer(employer_spec("e", true)));
    let base = yaodu_seat();
    for i in 0..MAX_WINDOW_REQUESTS {
        let id = format!("p{i}");
        ok(&mut engine, T0, Command::SubmitPosting(posting_spec(&id, "e", "mason", 1, offset(base, i as f64, 0.0))));
    }
    let now = at(10);
    for i in 0..MAX_WINDOW_REQUESTS {
        let outcome = ok(&mut engine, now, Command::InstantMatch { posting: format!("p{i}").into(), max_offers: 0 });
        let full = i + 1 == MAX_WINDOW_REQUESTS;
        let expected = if full { now } else { Timestamp(now.0 + i64::from(WINDOW_MS)) };
        assert_eq!(outcome, Outcome::Queued { decide_at: expected, remaining: 1 }, "request {i}");
    }
    assert_eq!(engine.next_deadline(), Some(now));
    let ticked = ok(&mut engine, now, Command::Tick);
    assert!(matches!(ticked, Outcome::Ticked { .. }) && engine.batch_windows().windows().is_empty());
}

#[test]
fn batch_settings_are_validated() {
    let mut engine = Engine::linfen(EngineConfig::default());
    let e = refused(&mut engine, T0, Command::SetBatchPolicy(BatchPolicy { window_ms: 500, counties: vec![] }));
    assert!(e.to_string().contains("window_ms"), "{e}");
    let e =
        refused(&mut engine, T0, Command::SetBatchPolicy(BatchPolicy { window_ms: 2_000, counties: vec![999_999] }));
    assert!(e.to_string().contains("counties[0]"), "{e}");
    let set = ok(&mut engine, T0, Command::SetBatchPolicy(BatchPolicy { window_ms: 2_000, counties: vec![YAODU] }));
    assert_eq!(set, Outcome::PolicySet { changed: true });
    let again = ok(&mut engine, T0, Command::SetBatchPolicy(BatchPolicy { window_ms: 2_000, counties: vec![YAODU] }));
    assert!(again.is_no_op());
}

proptest! {
    #![proptest_config(proptest_config(64))]

    /// Random sessions with every county batching: the engine's and the
    /// public invariants hold after every command (no worker in two live
    /// offers, headcounts), and the same session gives the same outcomes,
    /// events and state twice.
    #[test]
    fn batching_keeps_the_guarantees_of_greedy_matching(session in gen_session(60)) {
        let mut a = batching(Vec::new());
        let mut now = T0;
        let mut outcomes = Vec::new();
        let mut events = Vec::new();
        for (advance, op) in &session {
            now = Timestamp(now.0 + advance);
            let command = op.command(&a, now);
            outcomes.push(a.apply(now, &command, &mut events));
            a.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_public_invariants(&a);
        }
        // Close whatever is still waiting.
        if let Some(at) = a.batch_windows().next_close() {
            outcomes.push(a.apply(at.max(now), &Command::Tick, &mut events));
            a.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_public_invariants(&a);
        }
        let mut b = batching(Vec::new());
        let (end, again, again_events) = run_session(&mut b, T0, &session);
        if let Some(at) = b.batch_windows().next_close() {
            let mut tail = Vec::new();
            let r = b.apply(at.max(end), &Command::Tick, &mut tail);
            let mut again = again;
            again.push(r);
            let mut again_events = again_events;
            again_events.extend(tail);
            prop_assert_eq!(&outcomes, &again);
            prop_assert_eq!(&events, &again_events);
        } else {
            prop_assert_eq!(&outcomes, &again);
            prop_assert_eq!(&events, &again_events);
        }
        prop_assert_eq!(a.snapshot(), b.snapshot());
        prop_assert_eq!(a.batch_windows(), b.batch_windows());
    }
}

/// Workers and postings of one trade near 尧都区's seat: (north, east) metres.
fn gen_instance() -> impl Strategy<Value = (Vec<(f64, f64)>, Vec<(f64, f64, u8)>)> {
    let point = || (-4_000.0..4_000.0f64, -4_000.0..4_000.0f64);
    (prop::collection::vec(point(), 1..=6), prop::collection::vec((point(), 2..=3u8), 1..=4))
        .prop_map(|(w, p)| (w, p.into_iter().map(|((n, e), h)| (n, e, h)).collect()))
}

fn instance(engine: &mut Engine, workers: &[(f64, f64)], postings: &[(f64, f64, u8)]) {
    let base = yaodu_seat();
    ok(engine, T0, Command::UpsertEmployer(employer_spec("e", true)));
    for (i, (n, e)) in workers.iter().enumerate() {
        ok(engine, T0, Command::UpsertWorker(worker_spec(&format!("w{i}"), &["mason"], offset(base, *n, *e))));
    }
    for (i, (n, e, h)) in postings.iter().enumerate() {
        ok(engine, T0, Command::SubmitPosting(posting_spec(&format!("p{i}"), "e", "mason", *h, offset(base, *n, *e))));
    }
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// Small windows where every posting's candidates are all eligible
    /// workers (at most 6 workers, at least 2 slots a posting, 3 candidates
    /// a slot): the window fills at least as many slots as asking one by one
    /// and, filling as many, travels no farther in all (every worker is new
    /// and registered at once, so credits are equal and cost is distance).
    #[test]
    fn a_window_is_never_worse_than_greedy((workers, postings) in gen_instance()) {
        let mut greedy = Engine::linfen(EngineConfig::default());
        instance(&mut greedy, &workers, &postings);
        let mut batch = batching(Vec::new());
        instance(&mut batch, &workers, &postings);
        for i in 0..postings.len() {
            let m = Command::InstantMatch { posting: format!("p{i}").into(), max_offers: 0 };
            ok(&mut greedy, at(10), m.clone());
            let queued = matches!(ok(&mut batch, at(10), m), Outcome::Queued { .. });
            prop_assert!(queued, "an instant match waits for the window");
        }
        if let Some(close) = batch.batch_windows().next_close() {
            ok(&mut batch, close, Command::Tick);
        }
        batch.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_public_invariants(&batch);
        let (g, b) = (live_offers(&greedy), live_offers(&batch));
        prop_assert!(b.len() >= g.len(), "batch filled {} < greedy {}", b.len(), g.len());
        if b.len() == g.len() {
            let total = |o: &[(String, String, u32)]| o.iter().map(|x| u64::from(x.2)).sum::<u64>();
            prop_assert!(total(&b) <= total(&g) + b.len() as u64, "batch {} m > greedy {} m", total(&b), total(&g));
        }
    }
}

#[test]
fn a_restored_engine_keeps_its_windows_and_policies_and_closes_them_alike() {
    let mut engine = batching(Vec::new());
    crossing(&mut engine);
    let ranking = RankingPolicy { hardship_bonus_m: 3_000.0, ..RankingPolicy::default() };
    ok(&mut engine, T0, Command::SetRankingPolicy(ranking.clone()));
    let queued = match_both(&mut engine, at(10));
    let Outcome::Queued { decide_at, .. } = queued[0] else { panic!("{queued:?}") };
    // Restored under a configuration with neither policy: the logged ones hold.
    let mut restored = Engine::restore(EngineConfig::default(), engine.snapshot()).expect("restore");
    restored.check_invariants().expect("invariants");
    assert_eq!(restored.config().policy, ranking);
    assert_eq!(restored.batch_policy(), engine.batch_policy());
    assert_eq!(restored.batch_windows(), engine.batch_windows());
    assert_eq!(restored.next_deadline(), Some(decide_at));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    assert_eq!(engine.apply(decide_at, &Command::Tick, &mut a), restored.apply(decide_at, &Command::Tick, &mut b));
    assert_eq!(a, b);
    assert_eq!(engine.snapshot(), restored.snapshot());
}

#[test]
fn a_worker_arriving_during_a_window_waits_for_it_instead_of_being_reverse_matched() {
    let mut engine = batching(Vec::new());
    let base = yaodu_seat();
    ok(&mut engine, T0, Command::UpsertEmployer(employer_spec("e", true)));
    ok(&mut engine, T0, Command::UpsertWorker(worker_spec("w-far", &["mason"], offset(base, 0.0, 5_000.0))));
    ok(&mut engine, T0, Command::SubmitPosting(posting_spec("p", "e", "mason", 1, base)));
    let queued = ok(&mut engine, at(10), Command::InstantMatch { posting: "p".into(), max_offers: 0 });
    let Outcome::Queued { decide_at, .. } = queued else { panic!("{queued:?}") };
    // A nearer worker registers while the window is open: no reverse-match offer for the waiting posting.
    let arrived =
        ok(&mut engine, at(11), Command::UpsertWorker(worker_spec("w-near", &["mason"], offset(base, 0.0, 500.0))));
    assert!(offers_made(&arrived).is_empty(), "{arrived:?}");
    ok(&mut engine, decide_at, Command::Tick);
    assert_eq!(live_offers(&engine).iter().map(|o| o.1.as_str()).collect::<Vec<_>>(), ["w-near"]);
    engine.check_invariants().expect("invariants");
}
