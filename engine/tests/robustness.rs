//! No input panics: commands with arbitrary numbers (NaN and infinite coordinates, extreme
//! timestamps, any counts and wages), arbitrary strings and clocks that jump back and forth
//! are answered with an outcome or a typed error, never a panic, and the invariants hold.

mod common;

use common::*;
use compact_str::CompactString;
use linggong_engine::*;
use proptest::prelude::*;

fn wild_id(prefix: &'static str) -> impl Strategy<Value = CompactString> {
    prop_oneof![
        8 => (0u8..4).prop_map(move |i| compact_str::format_compact!("{prefix}{i}")),
        1 => "\\PC{0,70}".prop_map(CompactString::from),
        1 => "[ \\t\\n\u{0}a-z]{0,3}".prop_map(CompactString::from),
    ]
}

fn wild_text() -> impl Strategy<Value = CompactString> {
    prop_oneof![4 => "\\PC{0,20}", 1 => "\\PC{1990,2010}", 1 => "\\s{0,3}"].prop_map(CompactString::from)
}

fn wild_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -0.05f64..0.05,
        1 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => prop::sample::select(vec![90.0, -90.0, 180.0, -180.0, 90.000001, -180.000001, 0.0]),
    ]
}

fn wild_position() -> impl Strategy<Value = LatLon> {
    (wild_f64(), wild_f64(), any::<bool>()).prop_map(|(dlat, dlon, near)| {
        if near && dlat.is_finite() && dlon.is_finite() && dlat.abs() < 1.0 && dlon.abs() < 1.0 {
            LatLon { lat: 36.08 + dlat, lon: 111.52 + dlon }
        } else {
            LatLon { lat: dlat, lon: dlon }
        }
    })
}

fn wild_time() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        6 => (-86_400_000i64..86_400_000).prop_map(|d| Timestamp(T0.0 + d)),
        1 => any::<i64>().prop_map(Timestamp),
        1 => prop::sample::select(vec![Timestamp(i64::MIN), Timestamp(i64::MAX), Timestamp(0)]),
    ]
}

fn wild_window() -> impl Strategy<Value = Availability> {
    prop_oneof![
        2 => Just(Availability::ALWAYS),
        1 => (wild_time(), wild_time()).prop_map(|(from, until)| Availability { from, until }),
    ]
}

fn wild_trades() -> impl Strategy<Value = smallvec::SmallVec<[TradeSkillSpec; 4]>> {
    let trade = (
        prop_oneof![6 => prop::sample::select(vec!["mason", "porter", "electrician"]).prop_map(CompactString::from), 1 => wild_text()],
        prop_oneof![6 => 1u8..=5, 1 => any::<u8>()],
    )
        .prop_map(|(trade, level)| TradeSkillSpec { trade, level });
    proptest::collection::vec(trade, 0..=10).prop_map(|v| v.into_iter().collect())
}

fn wild_hardship() -> impl Strategy<Value = Hardship> {
    prop::sample::select(vec![
        Hardship::None,
        Hardship::LongTermUnemployed,
        Hardship::LowIncomeHousehold,
        Hardship::Disabled,
        Hardship::OlderWorker,
    ])
}

fn wild_county() -> impl Strategy<Value = u32> {
    prop_oneof![6 => Just(YAODU), 1 => Just(HOUMA), 1 => any::<u32>()]
}

fn wild_worker() -> impl Strategy<Value = Command> {
    (
        (wild_id("w"), wild_text(), prop_oneof![3 => Just("13800000000".into()), 1 => wild_text()]),
        wild_trades(),
        (wild_position(), wild_county(), proptest::option::of(wild_id("t"))),
        (wild_window(), any::<u32>(), wild_hardship()),
    )
        .prop_map(|((id, name, phone), trades, (position, county, township), (availability, wage, hardship))| {
            Command::UpsertWorker(WorkerSpec {
                id,
                name,
                phone,
                trades,
                position,
                county,
                township,
                availability,
                min_daily_wage: wage % 1_000,
                hardship,
            })
        })
}

fn wild_posting() -> impl Strategy<Value = PostingSpec> {
    (
        (wild_id("p"), wild_id("e"), prop_oneof![4 => Just("porter".into()), 1 => wild_text()]),
        (any::<u8>(), wild_position(), wild_county(), proptest::option::of(wild_id("t"))),
        (any::<u32>(), any::<u32>(), wild_time(), any::<u32>(), any::<u32>()),
        (wild_text(), 0u64..4),
    )
        .prop_map(
            |(
                (id, employer, trade),
                (headcount, position, county, township),
                (reach, wage, start, duration, ttl),
                (description, version),
            )| {
                PostingSpec {
                    id,
                    employer,
                    trade,
                    headcount: headcount % 60,
                    position,
                    county,
                    township,
                    max_distance_m: reach % 120_000,
                    daily_wage: wage % 400,
                    start,
                    duration_minutes: duration % 50_000,
                    offer_ttl_secs: ttl % 100_000,
                    description,
                    source: PostingSource::Online,
                    version,
                }
            },
        )
}

fn wild_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        6 => wild_worker(),
        2 => (wild_id("w"), wild_position()).prop_map(|(worker, position)| Command::MoveWorker { worker, position }),
        2 => (wild_id("w"), proptest::option::of(wild_window())).prop_map(|(worker, window)| Command::SetAvailability { worker, window }),
        1 => wild_id("w").prop_map(|worker| Command::WithdrawWorker { worker }),
        2 => (wild_id("e"), wild_text(), any::<bool>(), proptest::option::of("[0-9A-Z]{17,19}")).prop_map(|(id, name, verified, code)| {
            let kind = code.map_or(EmployerKind::Individual, |c| EmployerKind::Company { credit_code: c.into() });
            Command::UpsertEmployer(EmployerSpec { id, name, kind, verified })
        }),
        1 => (wild_id("e"), wild_text()).prop_map(|(employer, reason)| Command::SuspendEmployer { employer, reason }),
        1 => wild_id("e").prop_map(|employer| Command::ReinstateEmployer { employer }),
        5 => wild_posting().prop_map(Command::SubmitPosting),
        2 => wild_posting().prop_map(Command::UpdatePosting),
        2 => (wild_id("p"), proptest::option::of(wild_text())).prop_map(|(posting, reject)| Command::ReviewPosting {
            posting,
            decision: reject.map_or(ReviewDecision::Approve, |reason| ReviewDecision::Reject { reason }),
        }),
        1 => (wild_id("p"), wild_text()).prop_map(|(posting, reason)| Command::CancelPosting { posting, reason }),
        5 => (wild_id("p"), any::<u8>()).prop_map(|(posting, max_offers)| Command::InstantMatch { posting, max_offers }),
        4 => (0u64..12, wild_id("w"), any::<bool>()).prop_map(|(offer, worker, accept)| Command::RespondToOffer {
            offer,
            worker,
            response: if accept { OfferResponse::Accept } else { OfferResponse::Decline },
        }),
        2 => (0u64..12).prop_map(|offer| Command::ConfirmArrival { offer }),
        2 => (0u64..12).prop_map(|offer| Command::CompleteJob { offer }),
        2 => (0u64..12).prop_map(|offer| Command::ReportNoShow { offer }),
        1 => (wild_id("e"), proptest::option::of(wild_id("p")), wild_county(), wild_text()).prop_map(|(employer, posting, county, detail)| {
            Command::FileComplaint { employer, posting, county, category: ComplaintCategory::Other, detail }
        }),
        1 => (0u64..4, wild_text()).prop_map(|(complaint, note)| Command::ResolveComplaint {
            complaint,
            resolution: ComplaintResolution::Dismissed,
            note,
        }),
        3 => Just(Command::Tick),
    ]
}

proptest! {
    #![proptest_config(proptest_config(64))]

    #[test]
    fn wild_commands_never_panic(steps in proptest::collection::vec((wild_time(), wild_command()), 1..=50)) {
        let mut engine = Engine::linfen(EngineConfig::default());
        for e in 0..4 {
            ok(&mut engine, T0, Command::UpsertEmployer(employer_spec(&format!("e{e}"), e % 2 == 0)));
        }
        for (now, command) in &steps {
            let before = engine.snapshot();
            if engine.apply(*now, command, &mut Vec::new()).is_err() {
                prop_assert_eq!(&before, &engine.snapshot(), "refused {} changed state", command.name());
            }
            engine.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_public_invariants(&engine);
        }
        // Whatever happened can be snapshotted, serialised and restored.
        let bytes = rmp_serde::to_vec_named(&engine.records()).expect("serialise");
        let back: EngineSnapshot = rmp_serde::from_slice(&bytes).expect("deserialise");
        let restored = Engine::restore(EngineConfig::default(), back).expect("restore");
        prop_assert_eq!(restored.snapshot(), engine.snapshot());
    }
}

/// A clock that jumps from the end of time to its beginning (a corrupt or hostile caller)
/// must not overflow the fill-time arithmetic.
#[test]
fn extreme_clock_jumps_do_not_panic() {
    let mut e = Engine::linfen(EngineConfig::default());
    let end = Timestamp(i64::MAX - 10 * 86_400_000);
    let site = yaodu_seat();
    ok(&mut e, end, Command::UpsertEmployer(employer_spec("builder", true)));
    ok(&mut e, end, Command::UpsertWorker(worker_spec("w", &["mason"], site)));
    let spec = PostingSpec { start: end.plus_secs(-600), ..posting_spec("p", "builder", "mason", 1, site) };
    let outcome = ok(&mut e, end, Command::SubmitPosting(spec));
    assert!(matches!(outcome, Outcome::PostingChanged { state: PostingState::Published, .. }), "{outcome:?}");
    let offer = match ok(&mut e, end, Command::InstantMatch { posting: "p".into(), max_offers: 0 }) {
        Outcome::Matched { offers, .. } => offers[0].clone(),
        other => panic!("{other:?}"),
    };
    let beginning = Timestamp(i64::MIN);
    ok(
        &mut e,
        beginning,
        Command::RespondToOffer { offer: offer.offer, worker: "w".into(), response: OfferResponse::Accept },
    );
    assert_eq!(e.posting("p").unwrap().state, PostingState::Filled);
    assert_eq!(e.county_stats(YAODU).unwrap().counters.median_fill_secs(), Some(0), "a negative fill time counts as 0");
    ok(&mut e, beginning, Command::CompleteJob { offer: offer.offer });
    ok(&mut e, end, Command::Tick);
    ok(&mut e, beginning, Command::Tick);
    e.check_invariants().unwrap();
    check_public_invariants(&e);
}
