//! Scenario tests that read like the market: township postings filled by later arrivals,
//! hardship priority, suspended employers, offer expiry and re-matching, versioned
//! updates, review, no-shows, completed jobs and county statistics.

mod common;

use common::*;
use linggong_engine::*;

fn engine() -> Engine {
    Engine::linfen(EngineConfig::default())
}

/// The offer made by an outcome, which must be exactly one.
#[track_caller]
fn single_offer(outcome: &Outcome) -> MatchedOffer {
    let made = offers_made(outcome);
    assert_eq!(made.len(), 1, "expected one offer from {outcome:?}");
    made[0].clone()
}

#[track_caller]
fn matched_workers(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Matched { offers, .. } => offers.iter().map(|o| o.worker.to_string()).collect(),
        other => panic!("not a match: {other:?}"),
    }
}

fn accept(engine: &mut Engine, now: Timestamp, offer: &MatchedOffer) -> Outcome {
    ok(
        engine,
        now,
        Command::RespondToOffer { offer: offer.offer, worker: offer.worker.clone(), response: OfferResponse::Accept },
    )
}

fn decline(engine: &mut Engine, now: Timestamp, offer: &MatchedOffer) -> Outcome {
    ok(
        engine,
        now,
        Command::RespondToOffer { offer: offer.offer, worker: offer.worker.clone(), response: OfferResponse::Decline },
    )
}

fn instant(engine: &mut Engine, now: Timestamp, posting: &str, max_offers: u8) -> Outcome {
    ok(engine, now, Command::InstantMatch { posting: posting.into(), max_offers })
}

// ------------------------------------------------------------------ matching

#[test]
fn township_station_posting_is_filled_by_workers_who_register_later() {
    let mut e = engine();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("orchard-coop", true)));
    let orchard = offset(xiangfen_seat(), 1_500.0, -800.0);
    let mut spec = posting_spec("apple-harvest", "orchard-coop", "porter", 3, orchard);
    spec.county = XIANGFEN;
    spec.township = Some("141023101".into());
    spec.source = PostingSource::TownshipStation;
    let submitted = ok(&mut e, T0, Command::SubmitPosting(spec));
    assert_eq!(
        submitted,
        Outcome::PostingChanged { state: PostingState::Published, version: 1, unchanged: false, reason: None }
    );
    // Nobody is waiting yet: an empty match is an outcome, not an error.
    assert_eq!(instant(&mut e, at(10), "apple-harvest", 0), Outcome::Matched { offers: vec![], remaining: 3 });

    // A porter waiting in 侯马 is too far; a mason next door has the wrong trade.
    let far = worker_spec("houma-porter", &["porter"], houma_seat());
    assert_eq!(ok(&mut e, at(20), Command::UpsertWorker(far)), Outcome::WorkerUpserted { created: true, offer: None });
    let mut mason = worker_spec("mason-next-door", &["mason"], offset(orchard, 100.0, 0.0));
    mason.county = XIANGFEN;
    assert_eq!(
        ok(&mut e, at(30), Command::UpsertWorker(mason)),
        Outcome::WorkerUpserted { created: true, offer: None }
    );

    // Three porters arrive in the village one after another: each is offered the harvest.
    let mut offers = Vec::new();
    for i in 0..3 {
        let mut porter =
            worker_spec(&format!("villager-{i}"), &["porter", "housekeeper"], offset(orchard, 0.0, 400.0 * i as f64));
        porter.county = XIANGFEN;
        porter.township = Some("141023101".into());
        let outcome = ok(&mut e, at(60 * (i + 1)), Command::UpsertWorker(porter));
        let offer = single_offer(&outcome);
        assert_eq!(offer.posting, "apple-harvest");
        assert_eq!(offer.worker, format!("villager-{i}"));
        assert!((offer.distance_m as f64 - 400.0 * i as f64).abs() <= 2.0, "{}", offer.distance_m);
        assert_eq!(offer.deadline, at(60 * (i + 1)).plus_secs(300), "default answer time");
        assert_eq!(e.worker(&offer.worker).unwrap().status, WorkerStatus::Offered);
        offers.push(offer);
    }
    let p = e.posting("apple-harvest").unwrap();
    assert_eq!((p.state, p.pending, p.remaining()), (PostingState::Filling, 3, 0));

    // A fourth porter finds every slot on offer already.
    let mut late = worker_spec("villager-late", &["porter"], offset(orchard, 10.0, 10.0));
    late.county = XIANGFEN;
    assert_eq!(
        ok(&mut e, at(300), Command::UpsertWorker(late)),
        Outcome::WorkerUpserted { created: true, offer: None }
    );

    let mut events = Vec::new();
    for (i, offer) in offers.iter().enumerate() {
        let accept = Command::RespondToOffer {
            offer: offer.offer,
            worker: offer.worker.clone(),
            response: OfferResponse::Accept,
        };
        let outcome = ok_with(&mut e, at(200 + i as i64), accept, &mut events);
        let expected_state = if i == 2 { PostingState::Filled } else { PostingState::Filling };
        assert_eq!(
            outcome,
            Outcome::OfferChanged { state: OfferState::Accepted, posting_state: expected_state, next_offer: None }
        );
        assert_eq!(e.worker(&offer.worker).unwrap().status, WorkerStatus::Engaged);
    }
    let p = e.posting("apple-harvest").unwrap();
    assert_eq!((p.state, p.engaged, p.filled_at), (PostingState::Filled, 3, Some(at(202))));
    // Watchers of 襄汾 heard the posting fill.
    assert!(events.iter().any(|ev| matches!(ev, Event::Posting(pe)
        if pe.posting == "apple-harvest" && pe.state == PostingState::Filled && pe.county == XIANGFEN
            && pe.township.as_deref() == Some("141023101"))));
    let stats = e.county_stats(XIANGFEN).unwrap();
    assert_eq!(stats.counters.offers_made, 3);
    assert_eq!(stats.counters.offers_accepted, 3);
    assert_eq!(stats.counters.postings_filled, 1);
    assert_eq!(stats.counters.median_fill_secs(), Some(202));
    e.check_invariants().unwrap();
}

#[test]
fn hardship_worker_is_chosen_over_a_slightly_nearer_one() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("nearer", &["mason"], offset(site, 1_000.0, 0.0))));
    let mut hardship = worker_spec("hardship", &["mason"], offset(site, -2_000.0, 0.0));
    hardship.hardship = Hardship::LowIncomeHousehold;
    ok(&mut e, T0, Command::UpsertWorker(hardship));
    ok(&mut e, at(1), Command::SubmitPosting(posting_spec("wall", "builder", "mason", 1, site)));

    assert_eq!(e.rank_by_index(at(2), "wall", 2), ["hardship", "nearer"]);
    let offer = single_offer(&instant(&mut e, at(2), "wall", 0));
    assert_eq!(offer.worker, "hardship");
    assert!((offer.distance_m as i64 - 2_000).abs() <= 2, "{}", offer.distance_m);
    assert_eq!(e.worker("nearer").unwrap().status, WorkerStatus::Waiting);
}

#[test]
fn hardship_worker_is_not_chosen_over_a_much_nearer_one() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("much-nearer", &["mason"], offset(site, 1_000.0, 0.0))));
    let mut hardship = worker_spec("hardship", &["mason"], offset(site, -4_000.0, 0.0));
    hardship.hardship = Hardship::Disabled;
    ok(&mut e, T0, Command::UpsertWorker(hardship));
    ok(&mut e, at(1), Command::SubmitPosting(posting_spec("wall", "builder", "mason", 1, site)));

    assert_eq!(e.rank_by_index(at(2), "wall", 2), ["much-nearer", "hardship"]);
    assert_eq!(matched_workers(&instant(&mut e, at(2), "wall", 0)), ["much-nearer"]);
}

#[test]
fn longer_waiting_breaks_near_ties_and_equal_candidates_break_on_id() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    // Waiting since four hours before the others, 300 m farther: the 400 m waiting credit wins.
    ok(&mut e, at(-4 * 3600), Command::UpsertWorker(worker_spec("patient", &["porter"], offset(site, 1_300.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("b-newcomer", &["porter"], offset(site, 0.0, 1_000.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("a-newcomer", &["porter"], offset(site, 0.0, 1_000.0))));
    ok(&mut e, at(1), Command::SubmitPosting(posting_spec("move-house", "builder", "porter", 3, site)));
    assert_eq!(e.rank_by_index(at(1), "move-house", 3), ["patient", "a-newcomer", "b-newcomer"]);
    assert_eq!(matched_workers(&instant(&mut e, at(1), "move-house", 0)), ["patient", "a-newcomer", "b-newcomer"]);
}

#[test]
fn candidates_must_fit_trade_reach_wage_and_availability() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    let mut pricey = worker_spec("pricey", &["mason"], offset(site, 100.0, 0.0));
    pricey.min_daily_wage = 250;
    ok(&mut e, T0, Command::UpsertWorker(pricey));
    let mut busy_then = worker_spec("busy-then", &["mason"], offset(site, 200.0, 0.0));
    busy_then.availability = Availability { from: at(5 * 3600), until: at(10 * 3600) };
    ok(&mut e, T0, Command::UpsertWorker(busy_then));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("electrician", &["electrician"], offset(site, 300.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("too-far", &["mason"], offset(site, 10_100.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("fits", &["porter", "mason"], offset(site, 9_900.0, 0.0))));
    ok(&mut e, at(1), Command::SubmitPosting(posting_spec("wall", "builder", "mason", 5, site)));
    assert_eq!(matched_workers(&instant(&mut e, at(2), "wall", 0)), ["fits"]);
    assert_eq!(e.posting("wall").unwrap().remaining(), 4);
}

// ------------------------------------------------------------------ employers

#[test]
fn suspended_employers_postings_are_never_matched() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("shady", true)));
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("fair", true)));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("shady-job", "shady", "mason", 2, site)));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("fair-job", "fair", "porter", 1, offset(site, 0.0, 3_000.0))));
    // A mason arrives and is offered the shady job by reverse matching.
    let offer = single_offer(&ok(
        &mut e,
        at(10),
        Command::UpsertWorker(worker_spec("m1", &["mason"], offset(site, 200.0, 0.0))),
    ));
    assert_eq!(offer.posting, "shady-job");

    // Suspension withdraws the pending offer and returns the worker to waiting.
    let mut events = Vec::new();
    let suspend = Command::SuspendEmployer { employer: "shady".into(), reason: "欠薪".into() };
    let suspended = ok_with(&mut e, at(20), suspend, &mut events);
    assert_eq!(suspended, Outcome::EmployerStatusChanged { suspended: true, offers_withdrawn: 1 });
    assert_eq!(e.offer(offer.offer), None);
    let m1 = e.worker("m1").unwrap();
    assert_eq!((m1.status, m1.offer), (WorkerStatus::Waiting, None));
    let p = e.posting("shady-job").unwrap();
    assert_eq!((p.state, p.pending, p.remaining()), (PostingState::Published, 0, 2));
    assert_eq!(e.employer("shady").unwrap().suspension_reason.as_deref(), Some("欠薪"));
    assert!(events
        .iter()
        .any(|ev| matches!(ev, Event::Offer(oe) if oe.offer == offer.offer && oe.state == OfferState::Withdrawn)));

    // Instant match is refused and changes nothing.
    let err = refused(&mut e, at(30), Command::InstantMatch { posting: "shady-job".into(), max_offers: 0 });
    assert_eq!(err, EngineError::EmployerSuspended("shady".into()));
    // Reverse matching skips it: new and moving masons get nothing, porters still get the fair job.
    let outcome =
        ok(&mut e, at(40), Command::UpsertWorker(worker_spec("m2", &["mason", "porter"], offset(site, 100.0, 0.0))));
    assert_eq!(single_offer(&outcome).posting, "fair-job");
    let moved = ok(&mut e, at(50), Command::MoveWorker { worker: "m1".into(), position: offset(site, 10.0, 10.0) });
    assert_eq!(moved, Outcome::WorkerUpdated { status: WorkerStatus::Waiting, offer: None });
    assert!(e.rank_by_index(at(50), "shady-job", 5).contains(&"m1".into()), "ranking itself ignores suspension");
    // A new posting of the suspended employer is rejected by the automatic review.
    let rejected = ok(&mut e, at(60), Command::SubmitPosting(posting_spec("shady-2", "shady", "mason", 1, site)));
    assert!(
        matches!(rejected, Outcome::PostingChanged { state: PostingState::Rejected, reason: Some(ref r), .. } if r.contains("suspended"))
    );

    // Reinstated, the employer's open posting matches again; m1 was not passed over.
    let reinstated = ok(&mut e, at(70), Command::ReinstateEmployer { employer: "shady".into() });
    assert_eq!(reinstated, Outcome::EmployerStatusChanged { suspended: false, offers_withdrawn: 0 });
    assert_eq!(matched_workers(&instant(&mut e, at(80), "shady-job", 0)), ["m1"]);
    e.check_invariants().unwrap();
}

#[test]
fn suspension_keeps_accepted_workers_but_stops_new_offers() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("shady", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("a", &["mason"], offset(site, 100.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("b", &["mason"], offset(site, 200.0, 0.0))));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("job", "shady", "mason", 3, site)));
    let offers = offers_made(&instant(&mut e, at(1), "job", 0));
    accept(&mut e, at(2), &offers[0]);
    let outcome = ok(&mut e, at(3), Command::SuspendEmployer { employer: "shady".into(), reason: "投诉".into() });
    assert_eq!(outcome, Outcome::EmployerStatusChanged { suspended: true, offers_withdrawn: 1 });
    assert_eq!(e.worker("a").unwrap().status, WorkerStatus::Engaged);
    assert_eq!(e.worker("b").unwrap().status, WorkerStatus::Waiting);
    // Someone arriving later is not offered the remaining slots.
    let outcome = ok(&mut e, at(4), Command::UpsertWorker(worker_spec("c", &["mason"], site)));
    assert_eq!(outcome, Outcome::WorkerUpserted { created: true, offer: None });
    e.check_invariants().unwrap();
}

// ------------------------------------------------------------------ offers

#[test]
fn an_expired_offer_is_rematched_to_someone_else() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    for (id, north) in [("a", 500.0), ("b", 1_500.0), ("c", 2_500.0)] {
        ok(&mut e, T0, Command::UpsertWorker(worker_spec(id, &["mason"], offset(site, north, 0.0))));
    }
    let mut spec = posting_spec("wall", "builder", "mason", 1, site);
    spec.offer_ttl_secs = 60;
    ok(&mut e, T0, Command::SubmitPosting(spec));
    let first = single_offer(&instant(&mut e, at(100), "wall", 0));
    assert_eq!((first.worker.as_str(), first.deadline), ("a", at(160)));

    // Before the deadline nothing expires.
    assert_eq!(
        ok(&mut e, at(159), Command::Tick),
        Outcome::Ticked { offers_expired: 0, postings_expired: 0, offers_made: 0 }
    );
    assert!(e.offer(first.offer).is_some());
    // At the deadline the answer comes too late, and changes nothing.
    let err = refused(
        &mut e,
        at(160),
        Command::RespondToOffer { offer: first.offer, worker: "a".into(), response: OfferResponse::Accept },
    );
    assert_eq!(err, EngineError::OfferExpired(first.offer));
    // The tick expires it: a waits again, the slot reopens.
    assert_eq!(
        ok(&mut e, at(160), Command::Tick),
        Outcome::Ticked { offers_expired: 1, postings_expired: 0, offers_made: 0 }
    );
    assert_eq!(e.offer(first.offer), None);
    assert_eq!(e.worker("a").unwrap().status, WorkerStatus::Waiting);
    let p = e.posting("wall").unwrap();
    assert_eq!((p.state, p.remaining()), (PostingState::Published, 1));
    assert_eq!(e.county_stats(YAODU).unwrap().counters.offers_expired, 1);
    // Now an accept of the expired offer finds no live offer.
    let err = refused(
        &mut e,
        at(161),
        Command::RespondToOffer { offer: first.offer, worker: "a".into(), response: OfferResponse::Accept },
    );
    assert_eq!(err, EngineError::UnknownOffer(first.offer));

    // Re-matching skips a, who let the offer lapse.
    let second = single_offer(&instant(&mut e, at(170), "wall", 0));
    assert_eq!(second.worker, "b");
    decline(&mut e, at(171), &second);
    let third = single_offer(&instant(&mut e, at(172), "wall", 0));
    assert_eq!(third.worker, "c");
    decline(&mut e, at(173), &third);
    assert_eq!(instant(&mut e, at(174), "wall", 0), Outcome::Matched { offers: vec![], remaining: 1 });
    assert!(e.rank_by_index(at(174), "wall", 3).is_empty());
    // Moving or re-registering does not bring the posting back to those who passed it over.
    let moved = ok(&mut e, at(175), Command::MoveWorker { worker: "a".into(), position: site });
    assert_eq!(moved, Outcome::WorkerUpdated { status: WorkerStatus::Waiting, offer: None });
    // A newcomer gets it by reverse matching.
    let outcome = ok(&mut e, at(176), Command::UpsertWorker(worker_spec("d", &["mason"], offset(site, 3_000.0, 0.0))));
    assert_eq!(single_offer(&outcome).posting, "wall");
    let counters = e.county_stats(YAODU).unwrap().counters;
    assert_eq!((counters.offers_made, counters.offers_declined, counters.offers_expired), (4, 2, 1));
    e.check_invariants().unwrap();
}

#[test]
fn offer_answers_must_come_from_the_holder_in_the_right_state() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("holder", &["mason"], site)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("other", &["porter"], site)));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("wall", "builder", "mason", 1, site)));
    let offer = single_offer(&instant(&mut e, at(1), "wall", 0));

    // Someone else's offer.
    let err = refused(
        &mut e,
        at(2),
        Command::RespondToOffer { offer: offer.offer, worker: "other".into(), response: OfferResponse::Accept },
    );
    assert_eq!(err, EngineError::NotOfferHolder { offer: offer.offer, worker: "other".into() });
    // Arrival, completion and no-show need an accepted offer.
    for c in [
        Command::ConfirmArrival { offer: offer.offer },
        Command::CompleteJob { offer: offer.offer },
        Command::ReportNoShow { offer: offer.offer },
    ] {
        let err = refused(&mut e, at(3), c);
        assert!(matches!(err, EngineError::OfferState { state: OfferState::Pending, .. }), "{err:?}");
    }
    // Going away while holding an offer must go through an answer or a withdrawal.
    let err = refused(&mut e, at(3), Command::SetAvailability { worker: "holder".into(), window: None });
    assert!(matches!(err, EngineError::WorkerState { status: WorkerStatus::Offered, .. }), "{err:?}");

    accept(&mut e, at(4), &offer);
    // Answering twice.
    let err = refused(
        &mut e,
        at(5),
        Command::RespondToOffer { offer: offer.offer, worker: "holder".into(), response: OfferResponse::Decline },
    );
    assert!(matches!(err, EngineError::OfferState { state: OfferState::Accepted, .. }), "{err:?}");
    ok(&mut e, at(6), Command::ConfirmArrival { offer: offer.offer });
    // After arrival: no no-show, no withdrawal.
    let err = refused(&mut e, at(7), Command::ReportNoShow { offer: offer.offer });
    assert!(matches!(err, EngineError::OfferState { state: OfferState::Arrived, .. }), "{err:?}");
    let err = refused(&mut e, at(7), Command::WithdrawWorker { worker: "holder".into() });
    assert!(matches!(err, EngineError::WorkerState { status: WorkerStatus::Engaged, .. }), "{err:?}");
    // Unknown offers.
    assert_eq!(refused(&mut e, at(8), Command::CompleteJob { offer: 4242 }), EngineError::UnknownOffer(4242));
}

#[test]
fn a_no_show_reopens_the_slot() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("flaky", &["mason"], offset(site, 100.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("steady", &["mason"], offset(site, 900.0, 0.0))));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("wall", "builder", "mason", 1, site)));
    let offer = single_offer(&instant(&mut e, at(1), "wall", 0));
    assert_eq!(offer.worker, "flaky");
    accept(&mut e, at(2), &offer);
    assert_eq!(e.posting("wall").unwrap().state, PostingState::Filled);
    // Nothing to match while filled.
    let err = refused(&mut e, at(3), Command::InstantMatch { posting: "wall".into(), max_offers: 0 });
    assert!(matches!(err, EngineError::PostingState { state: PostingState::Filled, .. }), "{err:?}");

    let outcome = ok(&mut e, at(3_700), Command::ReportNoShow { offer: offer.offer });
    assert_eq!(
        outcome,
        Outcome::OfferChanged { state: OfferState::NoShow, posting_state: PostingState::Published, next_offer: None }
    );
    let flaky = e.worker("flaky").unwrap();
    assert_eq!((flaky.status, flaky.offer, flaky.reliability.no_shows), (WorkerStatus::Away, None, 1));
    assert!(flaky.reliability.score() < 0.5);
    assert_eq!(e.posting("wall").unwrap().remaining(), 1);
    assert_eq!(matched_workers(&instant(&mut e, at(3_701), "wall", 0)), ["steady"]);
    assert_eq!(e.county_stats(YAODU).unwrap().counters.no_shows, 1);
    e.check_invariants().unwrap();
}

#[test]
fn completing_a_job_returns_the_worker_to_waiting_with_a_better_record() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("diligent", &["mason", "porter"], offset(site, 100.0, 0.0))));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("wall", "builder", "mason", 1, site)));
    let offer = single_offer(&instant(&mut e, at(1), "wall", 0));
    accept(&mut e, at(2), &offer);
    ok(&mut e, at(3_600), Command::ConfirmArrival { offer: offer.offer });
    // Meanwhile a porter job opens nearby.
    ok(
        &mut e,
        at(4_000),
        Command::SubmitPosting(posting_spec("boxes", "builder", "porter", 1, offset(site, 500.0, 0.0))),
    );

    let done = at(8 * 3_600);
    let outcome = ok(&mut e, done, Command::CompleteJob { offer: offer.offer });
    let Outcome::OfferChanged { state, posting_state, next_offer } = outcome else { panic!("{outcome:?}") };
    assert_eq!((state, posting_state), (OfferState::Completed, PostingState::Filled));
    // Back in the queue, straight away offered the porter job.
    let next = next_offer.expect("reverse match after the job");
    assert_eq!((next.posting.as_str(), next.worker.as_str()), ("boxes", "diligent"));
    let w = e.worker("diligent").unwrap();
    assert_eq!(w.reliability.completed, 1);
    assert!(w.reliability.score() > Reliability::default().score());
    assert_eq!(w.waiting_since, done);
    decline(&mut e, done.plus_secs(5), &next);
    let w = e.worker("diligent").unwrap();
    assert_eq!((w.status, w.offer), (WorkerStatus::Waiting, None));
    let wall = e.posting("wall").unwrap();
    assert_eq!((wall.state, wall.completed, wall.engaged), (PostingState::Filled, 1, 0));
    assert_eq!(e.county_stats(YAODU).unwrap().counters.completions, 1);
    e.check_invariants().unwrap();
}

#[test]
fn a_worker_who_filled_a_slot_is_not_offered_another_slot_of_the_same_posting() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("a", &["mason"], offset(site, 100.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("b", &["mason"], offset(site, 200.0, 0.0))));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("wall", "builder", "mason", 2, site)));
    let offers = offers_made(&instant(&mut e, at(1), "wall", 0));
    accept(&mut e, at(2), &offers[0]);
    accept(&mut e, at(2), &offers[1]);
    ok(&mut e, at(3), Command::ReportNoShow { offer: offers[1].offer });
    // a finishes while the second slot is open again: a is not offered it a second time.
    let outcome = ok(&mut e, at(4), Command::CompleteJob { offer: offers[0].offer });
    assert_eq!(offers_made(&outcome), vec![]);
    assert_eq!(instant(&mut e, at(5), "wall", 0), Outcome::Matched { offers: vec![], remaining: 1 });
    // Nor is b, who did not turn up, when back.
    let outcome =
        ok(&mut e, at(6), Command::SetAvailability { worker: "b".into(), window: Some(Availability::ALWAYS) });
    assert_eq!(outcome, Outcome::WorkerUpdated { status: WorkerStatus::Waiting, offer: None });
    e.check_invariants().unwrap();
}

#[test]
fn a_worker_who_comes_back_queues_from_their_return() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("returner", &["mason"], offset(site, 100.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("stayer", &["mason"], offset(site, 100.0, 0.0))));
    let away = ok(&mut e, at(60), Command::SetAvailability { worker: "returner".into(), window: None });
    assert_eq!(away, Outcome::WorkerUpdated { status: WorkerStatus::Away, offer: None });
    assert_eq!(e.county_stats(YAODU).unwrap().waiting_by_trade.iter().find(|(t, _)| t == "mason").unwrap().1, 1);
    // Re-registering brings the worker back, waiting from now.
    let back =
        ok(&mut e, at(3 * 3600), Command::UpsertWorker(worker_spec("returner", &["mason"], offset(site, 100.0, 0.0))));
    assert_eq!(back, Outcome::WorkerUpserted { created: false, offer: None });
    let w = e.worker("returner").unwrap();
    assert_eq!((w.status, w.waiting_since), (WorkerStatus::Waiting, at(3 * 3600)));
    // Same place, same record: the one who kept waiting ranks first.
    ok(&mut e, at(3 * 3600 + 1), Command::SubmitPosting(posting_spec("wall", "builder", "mason", 2, site)));
    assert_eq!(e.rank_by_index(at(3 * 3600 + 1), "wall", 2), ["stayer", "returner"]);
    // Going away and coming back through availability resets the queue place too.
    ok(&mut e, at(4 * 3600), Command::SetAvailability { worker: "stayer".into(), window: None });
    let window = Availability { from: at(0), until: at(48 * 3600) };
    let back = ok(&mut e, at(5 * 3600), Command::SetAvailability { worker: "stayer".into(), window: Some(window) });
    assert_eq!(single_offer(&back).posting, "wall", "coming back is a reverse match");
    let w = e.worker("stayer").unwrap();
    assert_eq!((w.status, w.waiting_since, w.availability), (WorkerStatus::Offered, at(5 * 3600), window));
    e.check_invariants().unwrap();
}

#[test]
fn withdrawing_after_accepting_is_a_late_cancellation() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("quitter", &["mason"], site)));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("wall", "builder", "mason", 1, site)));
    let offer = single_offer(&instant(&mut e, at(1), "wall", 0));
    accept(&mut e, at(2), &offer);
    assert_eq!(
        ok(&mut e, at(3), Command::WithdrawWorker { worker: "quitter".into() }),
        Outcome::WorkerWithdrawn { late_cancellation: true }
    );
    let w = e.worker("quitter").unwrap();
    assert_eq!((w.status, w.reliability.late_cancellations), (WorkerStatus::Away, 1));
    assert_eq!(e.posting("wall").unwrap().state, PostingState::Published);
    // Withdrawing while waiting is not.
    ok(&mut e, at(4), Command::UpsertWorker(worker_spec("other", &["porter"], site)));
    assert_eq!(
        ok(&mut e, at(5), Command::WithdrawWorker { worker: "other".into() }),
        Outcome::WorkerWithdrawn { late_cancellation: false }
    );
    e.check_invariants().unwrap();
}

#[test]
fn cancelling_a_posting_releases_everyone() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("a", &["mason"], offset(site, 100.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("b", &["mason"], offset(site, 200.0, 0.0))));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("wall", "builder", "mason", 2, site)));
    let offers = offers_made(&instant(&mut e, at(1), "wall", 0));
    accept(&mut e, at(2), &offers[0]);
    let outcome = ok(&mut e, at(100), Command::CancelPosting { posting: "wall".into(), reason: "rain".into() });
    assert_eq!(
        outcome,
        Outcome::PostingChanged {
            state: PostingState::Cancelled,
            version: 1,
            unchanged: false,
            reason: Some("rain".into())
        }
    );
    for id in ["a", "b"] {
        let w = e.worker(id).unwrap();
        assert_eq!((w.status, w.offer), (WorkerStatus::Waiting, None), "{id}");
    }
    // The engaged worker keeps no blame and rejoins the queue now.
    assert_eq!(e.worker("a").unwrap().reliability, Reliability::default());
    assert_eq!(e.worker("a").unwrap().waiting_since, at(100));
    assert!(e.live_offers().is_empty());
    let err = refused(&mut e, at(101), Command::CancelPosting { posting: "wall".into(), reason: "again".into() });
    assert!(matches!(err, EngineError::PostingState { state: PostingState::Cancelled, .. }), "{err:?}");
    let err = refused(&mut e, at(101), Command::InstantMatch { posting: "wall".into(), max_offers: 0 });
    assert!(matches!(err, EngineError::PostingState { state: PostingState::Cancelled, .. }), "{err:?}");
    e.check_invariants().unwrap();
}

#[test]
fn postings_expire_when_their_job_window_ends() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("newcomer", false)));
    let mut spec = posting_spec("short", "builder", "mason", 2, site);
    spec.start = at(600);
    spec.duration_minutes = 60;
    spec.offer_ttl_secs = 24 * 3600;
    ok(&mut e, T0, Command::SubmitPosting(spec));
    let mut in_review = posting_spec("in-review", "newcomer", "mason", 1, site);
    in_review.start = at(600);
    in_review.duration_minutes = 30;
    ok(&mut e, T0, Command::SubmitPosting(in_review));
    let offer = single_offer(&ok(&mut e, at(1), Command::UpsertWorker(worker_spec("a", &["mason"], site))));
    assert_eq!(offer.posting, "short");

    assert_eq!(
        ok(&mut e, at(600 + 30 * 60 - 1), Command::Tick),
        Outcome::Ticked { offers_expired: 0, postings_expired: 0, offers_made: 0 }
    );
    assert_eq!(
        ok(&mut e, at(600 + 30 * 60), Command::Tick),
        Outcome::Ticked { offers_expired: 0, postings_expired: 1, offers_made: 0 }
    );
    assert_eq!(e.posting("in-review").unwrap().state, PostingState::Expired);
    assert_eq!(
        ok(&mut e, at(600 + 60 * 60), Command::Tick),
        Outcome::Ticked { offers_expired: 0, postings_expired: 1, offers_made: 0 }
    );
    let p = e.posting("short").unwrap();
    assert_eq!((p.state, p.pending), (PostingState::Expired, 0));
    // Its pending offer was withdrawn, the worker waits again.
    assert_eq!(e.worker("a").unwrap().status, WorkerStatus::Waiting);
    assert!(e.live_offers().is_empty());
    // Ticking again finds nothing more.
    assert_eq!(
        ok(&mut e, at(100_000), Command::Tick),
        Outcome::Ticked { offers_expired: 0, postings_expired: 0, offers_made: 0 }
    );
    e.check_invariants().unwrap();
}

// ------------------------------------------------------------------ postings

#[test]
fn versions_climb_by_a_bounded_step_so_they_cannot_be_exhausted() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    let step = linggong_engine::MAX_VERSION_STEP;
    let version_refused = |err: EngineError| matches!(&err, EngineError::InvalidArgument(v) if v.names("version"));
    // A new posting starts at most one step above zero.
    let too_high = PostingSpec { version: u64::MAX, ..posting_spec("wall", "builder", "mason", 2, site) };
    assert!(version_refused(refused(&mut e, T0, Command::SubmitPosting(too_high))));
    let v1 = posting_spec("wall", "builder", "mason", 2, site);
    ok(&mut e, T0, Command::SubmitPosting(v1.clone()));
    // The last version a u64 can hold is refused, so the posting can always be updated again.
    let last = PostingSpec { version: u64::MAX, daily_wage: 240, ..v1.clone() };
    let err = refused(&mut e, at(1), Command::UpdatePosting(last));
    assert!(version_refused(err.clone()), "{err:?}");
    assert!(err.to_string().contains(&step.to_string()), "the refusal names the bound: {err}");
    // A full step is accepted; one more than a step is not.
    let far = PostingSpec { version: 1 + step, daily_wage: 240, ..v1.clone() };
    ok(&mut e, at(2), Command::UpdatePosting(far.clone()));
    let beyond = PostingSpec { version: far.version + step + 1, daily_wage: 250, ..v1.clone() };
    assert!(version_refused(refused(&mut e, at(3), Command::UpdatePosting(beyond))));
    let next = PostingSpec { version: far.version + 1, daily_wage: 250, ..v1 };
    ok(&mut e, at(4), Command::UpdatePosting(next));
    assert_eq!(e.posting("wall").unwrap().version, 2 + step);
}

#[test]
fn a_stale_update_is_refused_with_the_current_version() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    let v1 = posting_spec("wall", "builder", "mason", 2, site);
    ok(&mut e, T0, Command::SubmitPosting(v1.clone()));
    let v2 = PostingSpec { version: 2, daily_wage: 240, ..v1.clone() };
    assert_eq!(
        ok(&mut e, at(1), Command::UpdatePosting(v2.clone())),
        Outcome::PostingChanged { state: PostingState::Published, version: 2, unchanged: false, reason: None }
    );
    assert_eq!(e.posting("wall").unwrap().daily_wage, 240);
    // Another writer still at version 2 with other content, or back at version 1.
    let err = refused(&mut e, at(2), Command::UpdatePosting(PostingSpec { daily_wage: 260, ..v2.clone() }));
    assert_eq!(err, EngineError::StaleVersion { id: "wall".into(), given: 2, current_version: 2 });
    let err = refused(&mut e, at(2), Command::UpdatePosting(PostingSpec { daily_wage: 260, ..v1.clone() }));
    assert_eq!(err, EngineError::StaleVersion { id: "wall".into(), given: 1, current_version: 2 });
    // Retrying the update that went through is harmless.
    assert_eq!(
        ok(&mut e, at(3), Command::UpdatePosting(v2)),
        Outcome::PostingChanged { state: PostingState::Published, version: 2, unchanged: true, reason: None }
    );
    // Re-submitting the old spec under the same id is refused.
    let err = refused(&mut e, at(4), Command::SubmitPosting(v1));
    assert_eq!(err, EngineError::PostingExists { id: "wall".into(), current_version: 2 });
    let err = refused(&mut e, at(4), Command::UpdatePosting(posting_spec("nope", "builder", "mason", 1, site)));
    assert_eq!(err, EngineError::UnknownPosting("nope".into()));
}

#[test]
fn an_update_withdraws_pending_offers_and_keeps_accepted_workers() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("a", &["mason"], offset(site, 100.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("b", &["mason"], offset(site, 200.0, 0.0))));
    let v1 = posting_spec("wall", "builder", "mason", 3, site);
    ok(&mut e, T0, Command::SubmitPosting(v1.clone()));
    let offers = offers_made(&instant(&mut e, at(1), "wall", 0));
    accept(&mut e, at(2), &offers[0]);
    ok(&mut e, at(3), Command::UpdatePosting(PostingSpec { version: 2, headcount: 2, daily_wage: 300, ..v1.clone() }));
    let p = e.posting("wall").unwrap();
    assert_eq!((p.state, p.pending, p.engaged, p.headcount), (PostingState::Filling, 0, 1, 2));
    assert_eq!(e.worker("b").unwrap().status, WorkerStatus::Waiting);
    assert_eq!(e.worker("a").unwrap().status, WorkerStatus::Engaged);
    // Headcount below the accepted workers, or another trade once workers accepted: refused.
    let err = refused(&mut e, at(4), Command::UpdatePosting(PostingSpec { version: 3, headcount: 0, ..v1.clone() }));
    assert!(matches!(&err, EngineError::InvalidArgument(v) if v.names("headcount")), "{err:?}");
    let err = refused(
        &mut e,
        at(4),
        Command::UpdatePosting(PostingSpec { version: 3, trade: "porter".into(), ..v1.clone() }),
    );
    assert!(matches!(err, EngineError::PostingState { .. }), "{err:?}");
    e.check_invariants().unwrap();
}

#[test]
fn resubmitting_the_same_posting_is_idempotent() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    let spec = posting_spec("wall", "builder", "mason", 2, site);
    assert_eq!(
        ok(&mut e, T0, Command::SubmitPosting(spec.clone())),
        Outcome::PostingChanged { state: PostingState::Published, version: 1, unchanged: false, reason: None }
    );
    let mut events = Vec::new();
    let before = e.snapshot();
    assert_eq!(
        ok_with(&mut e, at(5), Command::SubmitPosting(spec.clone()), &mut events),
        Outcome::PostingChanged { state: PostingState::Published, version: 1, unchanged: true, reason: None }
    );
    assert_eq!(before, e.snapshot(), "a retry changes nothing");
    assert!(events.is_empty(), "a retry tells watchers nothing");
    let err = refused(&mut e, at(6), Command::SubmitPosting(PostingSpec { headcount: 3, ..spec }));
    assert_eq!(err, EngineError::PostingExists { id: "wall".into(), current_version: 1 });
}

#[test]
fn an_unverified_employers_posting_waits_for_review() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("new-farm", false)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("a", &["porter"], site)));
    let outcome = ok(&mut e, T0, Command::SubmitPosting(posting_spec("sacks", "new-farm", "porter", 1, site)));
    assert_eq!(
        outcome,
        Outcome::PostingChanged { state: PostingState::PendingReview, version: 1, unchanged: false, reason: None }
    );
    let err = refused(&mut e, at(1), Command::InstantMatch { posting: "sacks".into(), max_offers: 0 });
    assert!(matches!(err, EngineError::PostingState { state: PostingState::PendingReview, .. }), "{err:?}");
    // A waiting worker is not offered a posting under review.
    let moved = ok(&mut e, at(2), Command::MoveWorker { worker: "a".into(), position: offset(site, 10.0, 0.0) });
    assert_eq!(moved, Outcome::WorkerUpdated { status: WorkerStatus::Waiting, offer: None });

    let approved =
        ok(&mut e, at(60), Command::ReviewPosting { posting: "sacks".into(), decision: ReviewDecision::Approve });
    assert_eq!(
        approved,
        Outcome::PostingChanged { state: PostingState::Published, version: 1, unchanged: false, reason: None }
    );
    assert_eq!(e.posting("sacks").unwrap().published_at, Some(at(60)));
    let err =
        refused(&mut e, at(61), Command::ReviewPosting { posting: "sacks".into(), decision: ReviewDecision::Approve });
    assert!(matches!(err, EngineError::PostingState { state: PostingState::Published, .. }), "{err:?}");
    assert_eq!(matched_workers(&instant(&mut e, at(62), "sacks", 0)), ["a"]);

    // Rejection keeps the reviewer's reason; an empty reason is not accepted.
    ok(&mut e, at(70), Command::SubmitPosting(posting_spec("dubious", "new-farm", "porter", 1, site)));
    let err = refused(
        &mut e,
        at(71),
        Command::ReviewPosting { posting: "dubious".into(), decision: ReviewDecision::Reject { reason: "  ".into() } },
    );
    assert!(matches!(&err, EngineError::InvalidArgument(v) if v.names("reason")), "{err:?}");
    let rejected = ok(
        &mut e,
        at(72),
        Command::ReviewPosting {
            posting: "dubious".into(),
            decision: ReviewDecision::Reject { reason: "工资与工种不符".into() },
        },
    );
    assert_eq!(
        rejected,
        Outcome::PostingChanged {
            state: PostingState::Rejected,
            version: 1,
            unchanged: false,
            reason: Some("工资与工种不符".into())
        }
    );
    assert_eq!(e.posting("dubious").unwrap().reason.as_deref(), Some("工资与工种不符"));
    let err =
        refused(&mut e, at(73), Command::ReviewPosting { posting: "ghost".into(), decision: ReviewDecision::Approve });
    assert_eq!(err, EngineError::UnknownPosting("ghost".into()));
}

#[test]
fn a_wage_below_the_minimum_is_rejected_automatically() {
    let config =
        EngineConfig { min_daily_wage: 100, county_min_daily_wage: vec![(HOUMA, 150)], ..EngineConfig::default() };
    let mut e = Engine::linfen(config);
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("stingy", true)));
    let low = PostingSpec { daily_wage: 99, ..posting_spec("cheap", "stingy", "porter", 1, site) };
    let outcome = ok(&mut e, T0, Command::SubmitPosting(low));
    let Outcome::PostingChanged { state, reason: Some(reason), .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(state, PostingState::Rejected);
    assert!(reason.contains("99") && reason.contains("100"), "{reason}");
    assert_eq!(e.posting("cheap").unwrap().reason, Some(reason));
    // Exactly the minimum passes; 侯马 has its own, higher minimum.
    let fair = PostingSpec { daily_wage: 100, ..posting_spec("fair", "stingy", "porter", 1, site) };
    assert!(matches!(
        ok(&mut e, T0, Command::SubmitPosting(fair)),
        Outcome::PostingChanged { state: PostingState::Published, .. }
    ));
    let houma = PostingSpec {
        daily_wage: 120,
        county: HOUMA,
        position: houma_seat(),
        ..posting_spec("houma", "stingy", "porter", 1, site)
    };
    assert!(matches!(
        ok(&mut e, T0, Command::SubmitPosting(houma)),
        Outcome::PostingChanged { state: PostingState::Rejected, .. }
    ));
    // Other automatic checks: a start too far ahead, or a job window already over.
    let far_ahead = PostingSpec { start: at(200 * 24 * 3600), ..posting_spec("later", "stingy", "porter", 1, site) };
    assert!(matches!(
        ok(&mut e, T0, Command::SubmitPosting(far_ahead)),
        Outcome::PostingChanged { state: PostingState::Rejected, .. }
    ));
    let over =
        PostingSpec { start: at(-3 * 3600), duration_minutes: 60, ..posting_spec("over", "stingy", "porter", 1, site) };
    assert!(matches!(
        ok(&mut e, T0, Command::SubmitPosting(over)),
        Outcome::PostingChanged { state: PostingState::Rejected, .. }
    ));
    // A rejected posting is never matched.
    let err = refused(&mut e, at(1), Command::InstantMatch { posting: "cheap".into(), max_offers: 0 });
    assert!(matches!(err, EngineError::PostingState { state: PostingState::Rejected, .. }), "{err:?}");
    // Raising the wage in a new version passes review again.
    let raised = PostingSpec { daily_wage: 180, version: 2, ..posting_spec("cheap", "stingy", "porter", 1, site) };
    assert!(matches!(
        ok(&mut e, at(2), Command::UpdatePosting(raised)),
        Outcome::PostingChanged { state: PostingState::Published, version: 2, reason: None, .. }
    ));
    e.check_invariants().unwrap();
}

// ------------------------------------------------------------------ bad input

/// A small market with one pending offer, for bad-input tests.
fn market_with_an_offer() -> (Engine, MatchedOffer) {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("holder", &["mason"], site)));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("bystander", &["porter"], site)));
    ok(&mut e, T0, Command::SubmitPosting(posting_spec("wall", "builder", "mason", 2, site)));
    let offer = single_offer(&instant(&mut e, at(1), "wall", 0));
    (e, offer)
}

#[track_caller]
fn assert_invalid(engine: &mut Engine, command: Command, field: &str) {
    match refused(engine, at(2), command) {
        EngineError::InvalidArgument(v) => {
            let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, [field]);
        }
        other => panic!("expected invalid {field}, got {other:?}"),
    }
}

#[test]
fn bad_worker_input_is_refused_and_changes_nothing() {
    let (mut e, _) = market_with_an_offer();
    let good = worker_spec("newcomer", &["mason"], yaodu_seat());
    let with = |f: &dyn Fn(&mut WorkerSpec)| {
        let mut s = good.clone();
        f(&mut s);
        Command::UpsertWorker(s)
    };
    assert_invalid(&mut e, with(&|s| s.position.lat = f64::NAN), "position");
    assert_invalid(&mut e, with(&|s| s.position.lon = f64::INFINITY), "position");
    assert_invalid(&mut e, with(&|s| s.position.lat = 91.0), "position");
    assert_invalid(&mut e, with(&|s| s.position.lon = -180.5), "position");
    assert_invalid(&mut e, with(&|s| s.county = 110101), "county_code");
    assert_invalid(&mut e, with(&|s| s.trades[0].trade = "astronaut".into()), "trades[0].trade_id");
    assert_invalid(&mut e, with(&|s| s.trades.clear()), "trades");
    assert_invalid(
        &mut e,
        with(&|s| s.trades.push(TradeSkillSpec { trade: "mason".into(), level: 2 })),
        "trades[1].trade_id",
    );
    assert_invalid(&mut e, with(&|s| s.trades[0].level = 0), "trades[0].level");
    assert_invalid(&mut e, with(&|s| s.trades[0].level = 6), "trades[0].level");
    let nine: Vec<TradeSkillSpec> =
        e.trades().trades().iter().take(9).map(|t| TradeSkillSpec { trade: t.id.clone(), level: 3 }).collect();
    assert_eq!(nine.len(), 9);
    assert_invalid(&mut e, with(&|s| s.trades = nine.iter().cloned().collect()), "trades");
    assert_invalid(&mut e, with(&|s| s.id = "x".repeat(65).into()), "worker_id");
    assert_invalid(&mut e, with(&|s| s.id = "".into()), "worker_id");
    assert_invalid(&mut e, with(&|s| s.id = "two words".into()), "worker_id");
    assert_invalid(&mut e, with(&|s| s.name = "名".repeat(43).into()), "display_name"); // 129 bytes
    assert_invalid(&mut e, with(&|s| s.name = " ".into()), "display_name");
    assert_invalid(&mut e, with(&|s| s.phone = "call me".into()), "phone");
    assert_invalid(&mut e, with(&|s| s.phone = "+- -".into()), "phone");
    assert_invalid(&mut e, with(&|s| s.phone = "".into()), "phone");
    assert_invalid(&mut e, with(&|s| s.name = "王\u{7}五".into()), "display_name");
    assert_invalid(&mut e, with(&|s| s.min_daily_wage = 100_001), "min_daily_wage_yuan");
    // Every violation at once, in field order.
    let many = with(&|s| {
        s.id = "".into();
        s.phone = "call me".into();
        s.trades[0].level = 9;
        s.county = 1;
    });
    match refused(&mut e, at(2), many) {
        EngineError::InvalidArgument(v) => {
            let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["worker_id", "phone", "trades[0].level", "county_code"]);
        }
        other => panic!("expected invalid fields, got {other:?}"),
    }
    assert_invalid(&mut e, with(&|s| s.availability = Availability { from: at(10), until: at(10) }), "availability");
    assert_invalid(&mut e, with(&|s| s.township = Some("bad township".into())), "township_code");
    // The limits themselves are accepted: 64-byte id, 128-byte name, 8 trades.
    let mut at_limits = good.clone();
    at_limits.id = "x".repeat(64).into();
    at_limits.name = "n".repeat(128).into();
    at_limits.trades = nine.iter().take(8).cloned().collect();
    ok(&mut e, at(3), Command::UpsertWorker(at_limits));

    assert_invalid(
        &mut e,
        Command::MoveWorker { worker: "holder".into(), position: LatLon { lat: f64::NAN, lon: 0.0 } },
        "position",
    );
    assert_eq!(
        refused(&mut e, at(4), Command::MoveWorker { worker: "ghost".into(), position: yaodu_seat() }),
        EngineError::UnknownWorker("ghost".into())
    );
    assert_eq!(
        refused(&mut e, at(4), Command::SetAvailability { worker: "ghost".into(), window: None }),
        EngineError::UnknownWorker("ghost".into())
    );
    assert_invalid(
        &mut e,
        Command::SetAvailability {
            worker: "bystander".into(),
            window: Some(Availability { from: at(9), until: at(1) }),
        },
        "window",
    );
    e.check_invariants().unwrap();
}

#[test]
fn bad_posting_input_is_refused_and_changes_nothing() {
    let (mut e, _) = market_with_an_offer();
    let good = posting_spec("new-post", "builder", "porter", 2, yaodu_seat());
    let with = |f: &dyn Fn(&mut PostingSpec)| {
        let mut s = good.clone();
        f(&mut s);
        Command::SubmitPosting(s)
    };
    assert_invalid(&mut e, with(&|s| s.position.lat = f64::NAN), "position");
    assert_invalid(&mut e, with(&|s| s.position.lat = 91.0), "position");
    assert_invalid(&mut e, with(&|s| s.trade = "astronaut".into()), "trade_id");
    assert_invalid(&mut e, with(&|s| s.county = 999_999), "county_code");
    assert_invalid(&mut e, with(&|s| s.headcount = 0), "headcount");
    assert_invalid(&mut e, with(&|s| s.headcount = 51), "headcount");
    assert_invalid(&mut e, with(&|s| s.id = "p".repeat(65).into()), "posting_id");
    assert_invalid(&mut e, with(&|s| s.description = "d".repeat(2_001).into()), "description");
    assert_invalid(&mut e, with(&|s| s.max_distance_m = 0), "max_distance_m");
    assert_invalid(&mut e, with(&|s| s.max_distance_m = 100_001), "max_distance_m");
    assert_invalid(&mut e, with(&|s| s.duration_minutes = 0), "duration_minutes");
    assert_invalid(&mut e, with(&|s| s.offer_ttl_secs = 24 * 3600 + 1), "offer_ttl_seconds");
    assert_invalid(&mut e, with(&|s| s.version = 0), "version");
    assert_eq!(
        refused(&mut e, at(2), with(&|s| s.employer = "ghost".into())),
        EngineError::UnknownEmployer("ghost".into())
    );
    // The limits themselves are accepted.
    ok(
        &mut e,
        at(3),
        with(&|s| {
            s.headcount = 50;
            s.id = "p".repeat(64).into();
            s.description = "d".repeat(2_000).into();
        }),
    );
    // Bad employers and complaints.
    let bad_code = EmployerSpec {
        kind: EmployerKind::Company { credit_code: "91141000-SHORT".into() },
        ..employer_spec("co", true)
    };
    assert_invalid(&mut e, Command::UpsertEmployer(bad_code), "credit_code");
    assert_invalid(&mut e, Command::UpsertEmployer(employer_spec(&"e".repeat(65), true)), "employer_id");
    let complaint = |county: u32, employer: &str, detail: &str| Command::FileComplaint {
        employer: employer.into(),
        posting: None,
        county,
        category: ComplaintCategory::Other,
        detail: detail.into(),
    };
    assert_invalid(&mut e, complaint(999_999, "builder", "late pay"), "county_code");
    assert_invalid(&mut e, complaint(YAODU, "builder", ""), "detail");
    assert_eq!(
        refused(&mut e, at(4), complaint(YAODU, "ghost", "late pay")),
        EngineError::UnknownEmployer("ghost".into())
    );
    assert_eq!(
        refused(
            &mut e,
            at(4),
            Command::ResolveComplaint { complaint: 7, resolution: ComplaintResolution::Upheld, note: "".into() }
        ),
        EngineError::UnknownComplaint(7)
    );
    assert_eq!(
        refused(&mut e, at(4), Command::SuspendEmployer { employer: "ghost".into(), reason: "x".into() }),
        EngineError::UnknownEmployer("ghost".into())
    );
    e.check_invariants().unwrap();
}

#[test]
fn bad_offer_answers_are_refused_and_change_nothing() {
    let (mut e, offer) = market_with_an_offer();
    // Accepting someone else's offer.
    let err = refused(
        &mut e,
        at(2),
        Command::RespondToOffer { offer: offer.offer, worker: "bystander".into(), response: OfferResponse::Accept },
    );
    assert_eq!(err, EngineError::NotOfferHolder { offer: offer.offer, worker: "bystander".into() });
    // Accepting after the deadline, before any tick ran.
    let late = offer.deadline.plus_secs(1);
    let err = refused(
        &mut e,
        late,
        Command::RespondToOffer { offer: offer.offer, worker: "holder".into(), response: OfferResponse::Accept },
    );
    assert_eq!(err, EngineError::OfferExpired(offer.offer));
    let err = refused(
        &mut e,
        at(2),
        Command::RespondToOffer { offer: 99, worker: "holder".into(), response: OfferResponse::Accept },
    );
    assert_eq!(err, EngineError::UnknownOffer(99));
    e.check_invariants().unwrap();
}

// ------------------------------------------------------------------ complaints and statistics

#[test]
fn county_statistics_count_what_happened() {
    let mut e = engine();
    let site = yaodu_seat();
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, T0, Command::UpsertEmployer(employer_spec("newcomer", false)));
    let mut older = worker_spec("older", &["mason", "porter"], offset(site, 100.0, 0.0));
    older.hardship = Hardship::OlderWorker;
    ok(&mut e, T0, Command::UpsertWorker(older));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("young", &["mason"], offset(site, 200.0, 0.0))));
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("idle", &["electrician"], offset(site, 300.0, 0.0))));
    let mut houma = worker_spec("houma", &["mason"], houma_seat());
    houma.county = HOUMA;
    ok(&mut e, T0, Command::UpsertWorker(houma));
    // Updating a worker is not a new registration.
    ok(&mut e, T0, Command::UpsertWorker(worker_spec("idle", &["electrician"], offset(site, 310.0, 0.0))));

    let waiting = |e: &Engine, county: u32, trade: &str| {
        e.county_stats(county).unwrap().waiting_by_trade.iter().find(|(t, _)| t == trade).unwrap().1
    };
    assert_eq!(waiting(&e, YAODU, "mason"), 2);
    assert_eq!(waiting(&e, YAODU, "porter"), 1);
    assert_eq!(waiting(&e, YAODU, "electrician"), 1);
    assert_eq!(waiting(&e, HOUMA, "mason"), 1);
    assert_eq!(e.county_stats(YAODU).unwrap().counters.registrations, 3);
    assert_eq!(e.county_stats(HOUMA).unwrap().counters.registrations, 1);

    ok(&mut e, at(10), Command::SubmitPosting(posting_spec("wall", "builder", "mason", 2, site)));
    ok(&mut e, at(10), Command::SubmitPosting(posting_spec("review-me", "newcomer", "porter", 1, site)));
    ok(
        &mut e,
        at(10),
        Command::SubmitPosting(PostingSpec { daily_wage: 10, ..posting_spec("cheap", "builder", "porter", 1, site) }),
    );
    let offers = offers_made(&instant(&mut e, at(20), "wall", 0));
    assert_eq!(offers.len(), 2);
    assert_eq!(waiting(&e, YAODU, "mason"), 0);
    assert_eq!(waiting(&e, YAODU, "porter"), 0, "the offered worker is not waiting for any trade");
    let older_offer = offers.iter().find(|o| o.worker == "older").unwrap();
    let young_offer = offers.iter().find(|o| o.worker == "young").unwrap();
    accept(&mut e, at(30), older_offer);
    assert_eq!(e.county_stats(YAODU).unwrap().counters.hardship_placements, 1, "an older worker placed");
    accept(&mut e, at(30), young_offer);
    ok(&mut e, at(40), Command::CompleteJob { offer: older_offer.offer });
    let complaint = match ok(
        &mut e,
        at(50),
        Command::FileComplaint {
            employer: "builder".into(),
            posting: Some("wall".into()),
            county: YAODU,
            category: ComplaintCategory::WageArrears,
            detail: "拖欠工资".into(),
        },
    ) {
        Outcome::ComplaintFiled { complaint } => complaint,
        other => panic!("{other:?}"),
    };
    assert_eq!(complaint, 1);
    ok(
        &mut e,
        at(60),
        Command::ResolveComplaint { complaint, resolution: ComplaintResolution::Upheld, note: "已补发".into() },
    );
    assert_eq!(
        refused(
            &mut e,
            at(61),
            Command::ResolveComplaint { complaint, resolution: ComplaintResolution::Dismissed, note: "".into() }
        ),
        EngineError::ComplaintResolved(1)
    );
    assert_eq!(e.employer("builder").unwrap().complaints, 1);
    let c = e.complaint(1).unwrap();
    assert_eq!(c.resolution.as_ref().map(|r| (r.0, r.1)), Some((ComplaintResolution::Upheld, at(60))));

    let stats = e.county_stats(YAODU).unwrap();
    let state_count = |s: PostingState| stats.postings_by_state.iter().find(|(x, _)| *x == s).unwrap().1;
    assert_eq!(state_count(PostingState::Filled), 1);
    assert_eq!(state_count(PostingState::PendingReview), 1);
    assert_eq!(state_count(PostingState::Rejected), 1);
    assert_eq!(state_count(PostingState::Published), 0);
    let c = &stats.counters;
    assert_eq!(
        (c.offers_made, c.offers_accepted, c.postings_filled, c.hardship_placements, c.completions),
        (2, 2, 1, 1, 1)
    );
    assert_eq!((c.complaints_filed, c.complaints_resolved), (1, 1));
    assert_eq!(c.median_fill_secs(), Some(20), "published at 10 s, filled at 30 s");
    // The older worker is back and waiting for both trades.
    assert_eq!(waiting(&e, YAODU, "mason"), 1);
    assert_eq!(waiting(&e, YAODU, "porter"), 1);
    // Other counties are untouched, unknown ones have no statistics.
    assert_eq!(e.county_stats(HOUMA).unwrap().counters.offers_made, 0);
    assert_eq!(e.county_stats(999_999), None);
    e.check_invariants().unwrap();
}
