//! The ledger (工作台账) over a scripted day in 尧都区, checked against figures
//! worked out by hand: flows, end-of-day stocks, medians, rates, active hours,
//! the day closing when the next day starts, and survival across a snapshot.

mod common;

use common::*;
use linggong_engine::ledger::ComplaintLine;
use linggong_engine::*;

/// 2024-03-02, a Saturday, in China Standard Time.
fn day() -> LedgerDay {
    LedgerDay::from_ymd(2024, 3, 2).unwrap()
}

/// `h:m` China Standard Time on `day()`.
fn cst(h: i64, m: i64) -> Timestamp {
    day().start().plus_minutes(h * 60 + m)
}

fn posting(id: &str, trade: &str, headcount: u8, source: PostingSource, starts: Timestamp) -> PostingSpec {
    PostingSpec {
        start: starts,
        offer_ttl_secs: 3600,
        source,
        township: (source == PostingSource::TownshipStation).then(|| "141002001".into()),
        ..posting_spec(id, "e1", trade, headcount, yaodu_seat())
    }
}

fn matched(outcome: &Outcome) -> Vec<MatchedOffer> {
    offers_made(outcome)
}

fn accept(e: &mut Engine, now: Timestamp, o: &MatchedOffer) {
    ok(e, now, Command::RespondToOffer { offer: o.offer, worker: o.worker.clone(), response: OfferResponse::Accept });
}

/// Runs the scripted day and returns the engine with the two placements' distances.
fn scripted_day() -> (Engine, Vec<u32>) {
    let mut e = Engine::linfen(EngineConfig::default());
    let seat = yaodu_seat();
    // 07:50 an employer (no ledger figure), 08:00-08:20 three registrations.
    ok(&mut e, cst(7, 50), Command::UpsertEmployer(employer_spec("e1", true)));
    ok(&mut e, cst(8, 0), Command::UpsertWorker(worker_spec("w1", &["porter"], offset(seat, 500.0, 0.0))));
    let hardship = WorkerSpec {
        hardship: Hardship::LongTermUnemployed,
        ..worker_spec("w2", &["porter"], offset(seat, 2_000.0, 0.0))
    };
    ok(&mut e, cst(8, 10), Command::UpsertWorker(hardship));
    ok(&mut e, cst(8, 20), Command::UpsertWorker(worker_spec("w3", &["mason"], offset(seat, 1_000.0, 0.0))));
    // 09:00 a county-desk posting for two porters, published at once (verified employer).
    ok(&mut e, cst(9, 0), Command::SubmitPosting(posting("p1", "porter", 2, PostingSource::CountyDesk, cst(10, 0))));
    // 09:10 instant match: both porters offered; both accept, filling p1 at 09:30 (30 minutes).
    let offers = matched(&ok(&mut e, cst(9, 10), Command::InstantMatch { posting: "p1".into(), max_offers: 0 }));
    assert_eq!(offers.len(), 2);
    accept(&mut e, cst(9, 20), &offers[0]);
    accept(&mut e, cst(9, 30), &offers[1]);
    assert_eq!(e.posting("p1").unwrap().state, PostingState::Filled);
    let distances = offers.iter().map(|o| o.distance_m).collect();
    // 10:00 a township-station posting for a mason; 11:00 matched, 11:05 declined, 12:00 cancelled unfilled.
    ok(
        &mut e,
        cst(10, 0),
        Command::SubmitPosting(posting("p2", "mason", 1, PostingSource::TownshipStation, cst(14, 0))),
    );
    let o = matched(&ok(&mut e, cst(11, 0), Command::InstantMatch { posting: "p2".into(), max_offers: 0 }));
    assert_eq!(o.len(), 1);
    ok(
        &mut e,
        cst(11, 5),
        Command::RespondToOffer { offer: o[0].offer, worker: "w3".into(), response: OfferResponse::Decline },
    );
    // 11:30 a match that finds nobody (w3 passed over) changes nothing and counts nothing.
    let none = ok(&mut e, cst(11, 30), Command::InstantMatch { posting: "p2".into(), max_offers: 0 });
    assert!(matched(&none).is_empty());
    ok(&mut e, cst(12, 0), Command::CancelPosting { posting: "p2".into(), reason: "rain".into() });
    // 13:05 a tick with nothing to expire: a no-op, so hour 13 stays idle.
    ok(&mut e, cst(13, 5), Command::Tick);
    // 14:00 w1 arrives, w2 does not turn up.
    let w1 = e.worker("w1").unwrap().offer.unwrap();
    let w2 = e.worker("w2").unwrap().offer.unwrap();
    ok(&mut e, cst(14, 0), Command::ConfirmArrival { offer: w1 });
    ok(&mut e, cst(14, 10), Command::ReportNoShow { offer: w2 });
    // 15:00 a wage complaint, resolved 17:30 (2.5 hours); 16:00 a safety complaint, still open.
    let file = |category| Command::FileComplaint {
        employer: "e1".into(),
        posting: Some("p1".into()),
        county: YAODU,
        category,
        detail: "情况".into(),
    };
    let Outcome::ComplaintFiled { complaint } = ok(&mut e, cst(15, 0), file(ComplaintCategory::WageArrears)) else {
        panic!()
    };
    ok(&mut e, cst(16, 0), file(ComplaintCategory::Safety));
    ok(
        &mut e,
        cst(17, 30),
        Command::ResolveComplaint { complaint, resolution: ComplaintResolution::Upheld, note: "".into() },
    );
    (e, distances)
}

fn count<K: PartialEq + Copy>(pairs: &[(K, u32)], key: K) -> u32 {
    pairs.iter().find(|(k, _)| *k == key).map_or(0, |(_, n)| *n)
}

fn waiting(r: &LedgerReport, trade: &str) -> u32 {
    r.waiting_by_trade.iter().find(|(t, _)| t == trade).map_or(0, |(_, n)| *n)
}

#[track_caller]
fn check_scripted_day(r: &LedgerReport, distances: &[u32]) {
    assert_eq!((r.day, r.county), (day(), YAODU));
    assert_eq!(r.registrations, 3);
    assert_eq!(count(&r.postings_by_source, PostingSource::CountyDesk), 1);
    assert_eq!(count(&r.postings_by_source, PostingSource::TownshipStation), 1);
    assert_eq!(count(&r.postings_by_source, PostingSource::Online), 0);
    assert_eq!(r.instant_matches, 2, "the match that found nobody does not count");
    assert_eq!(r.offers_made, 3);
    assert_eq!((r.placements, r.hardship_placements), (2, 1));
    assert_eq!(r.hardship_share, Some(0.5));
    assert_eq!((r.postings_filled, r.postings_unfilled), (1, 1));
    assert_eq!(r.fill_rate, Some(0.5));
    assert_eq!(r.median_fill_secs, Some(30 * 60));
    // The lower median of two placements is the nearer one (w1, about 500 m).
    assert_eq!(r.median_travel_m, distances.iter().copied().min());
    assert!((499..=501).contains(&r.median_travel_m.unwrap()));
    assert_eq!(r.no_shows, 1);
    let complaint = |c| r.complaints.iter().find(|l: &&ComplaintLine| l.category == c).unwrap().clone();
    let wage = complaint(ComplaintCategory::WageArrears);
    assert_eq!((wage.filed, wage.resolved, wage.median_resolve_secs), (1, 1, Some(9_000)));
    let safety = complaint(ComplaintCategory::Safety);
    assert_eq!((safety.filed, safety.resolved, safety.median_resolve_secs), (1, 0, None));
    assert_eq!(complaint(ComplaintCategory::Other).filed, 0);
    assert_eq!(r.active_hours, vec![8, 9, 10, 11, 12, 14, 15, 16, 17]);
    // End of day: w1 at work, w2 away after the no-show, w3 waiting again.
    assert_eq!((waiting(r, "porter"), waiting(r, "mason")), (0, 1));
    // p1 back to filling after the no-show (one engaged of two), p2 cancelled.
    assert_eq!(count(&r.postings_by_state, PostingState::Filling), 1);
    assert_eq!(count(&r.postings_by_state, PostingState::Cancelled), 1);
    assert_eq!(count(&r.postings_by_state, PostingState::Filled), 0);
}

#[test]
fn scripted_day_gives_the_hand_computed_ledger() {
    let (e, distances) = scripted_day();
    check_scripted_day(&e.ledger_report(day(), YAODU).unwrap(), &distances);
    // Another county saw nothing.
    let houma = e.ledger_report(day(), HOUMA).unwrap();
    assert_eq!((houma.registrations, houma.offers_made, houma.fill_rate), (0, 0, None));
    assert!(houma.active_hours.is_empty());
    assert!(e.ledger_report(day(), 999_999).is_none());
    e.check_invariants().unwrap();
}

#[test]
fn the_day_closes_with_its_end_of_day_stocks_when_the_next_day_starts() {
    let (mut e, distances) = scripted_day();
    // 2024-03-03 08:00: w1 finishes and waits again; the porter count changes live.
    let next = LedgerDay(day().0 + 1);
    let w1 = e.worker("w1").unwrap().offer.unwrap();
    ok(&mut e, next.start().plus_minutes(8 * 60), Command::CompleteJob { offer: w1 });
    check_scripted_day(&e.ledger_report(day(), YAODU).unwrap(), &distances);
    let today = e.ledger_report(next, YAODU).unwrap();
    assert_eq!(waiting(&today, "porter"), 1);
    assert_eq!((today.registrations, today.active_hours.clone()), (0, vec![8]));
    // A later day with nothing applied shows the live stocks; an earlier one shows nothing yet.
    assert_eq!(waiting(&e.ledger_report(LedgerDay(day().0 + 5), YAODU).unwrap(), "porter"), 1);
    let before = e.ledger_report(LedgerDay(day().0 - 1), YAODU).unwrap();
    assert_eq!((waiting(&before, "mason"), before.registrations), (0, 0));
    // A quiet day between two closed days carries the earlier day's closing stocks.
    ok(&mut e, LedgerDay(day().0 + 3).start(), Command::UpsertWorker(worker_spec("w9", &["mason"], yaodu_seat())));
    let quiet = e.ledger_report(LedgerDay(day().0 + 2), YAODU).unwrap();
    assert_eq!((waiting(&quiet, "porter"), waiting(&quiet, "mason")), (1, 1));
}

#[test]
fn the_ledger_survives_a_snapshot_and_replays_identically() {
    let (e, distances) = scripted_day();
    let restored = Engine::restore(EngineConfig::default(), e.snapshot()).unwrap();
    check_scripted_day(&restored.ledger_report(day(), YAODU).unwrap(), &distances);
    assert_eq!(restored.snapshot(), e.snapshot());
    let (again, _) = scripted_day();
    assert_eq!(again.ledger(), e.ledger());
}

#[test]
fn refused_commands_leave_the_ledger_alone() {
    let (mut e, _) = scripted_day();
    let next_day = LedgerDay(day().0 + 1).start();
    refused(&mut e, next_day, Command::CancelPosting { posting: "nope".into(), reason: "".into() });
    assert_eq!(e.ledger().open_day(), Some(day()));
}

#[test]
fn old_days_keep_their_medians_once_their_samples_are_sealed() {
    let (mut e, distances) = scripted_day();
    let stored = |e: &Engine| e.ledger().get(YAODU, day()).unwrap().clone();
    assert!(matches!(stored(&e).fill_secs, ledger::Samples::Raw(ref v) if v.len() == 1));
    // The last day that keeps raw samples: nothing sealed yet.
    let last_raw = LedgerDay(day().0 + ledger::RAW_SAMPLE_DAYS - 1);
    ok(&mut e, last_raw.start(), Command::UpsertWorker(worker_spec("w8", &["mason"], yaodu_seat())));
    assert!(matches!(stored(&e).placement_distances_m, ledger::Samples::Raw(ref v) if v.len() == 2));
    // One day later the scripted day is sealed to counts and medians; the report is unchanged.
    ok(&mut e, LedgerDay(last_raw.0 + 1).start(), Command::UpsertWorker(worker_spec("w9", &["mason"], yaodu_seat())));
    let sealed = stored(&e);
    let min_distance = distances.iter().copied().min();
    assert_eq!(sealed.placement_distances_m, ledger::Samples::Sealed { count: 2, median: min_distance });
    assert_eq!(sealed.fill_secs, ledger::Samples::Sealed { count: 1, median: Some(30 * 60) });
    check_scripted_day(&e.ledger_report(day(), YAODU).unwrap(), &distances);
    // The newer days keep raw samples, and the whole ledger still checks out and restores.
    assert!(matches!(e.ledger().get(YAODU, last_raw).unwrap().fill_secs, ledger::Samples::Raw(_)));
    e.check_invariants().unwrap();
    let restored = Engine::restore(EngineConfig::default(), e.snapshot()).unwrap();
    assert_eq!(restored.ledger(), e.ledger());
}
