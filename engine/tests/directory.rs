//! The market directory: upserts and removals, validation with typed errors
//! naming the field, one county market per county, and snapshots.

mod common;

use common::*;
use linggong_engine::*;

fn engine() -> Engine {
    Engine::linfen(EngineConfig::default())
}

#[track_caller]
fn invalid_field(e: &mut Engine, spec: MarketSpec) -> &'static str {
    match refused(e, T0, Command::UpsertMarket(spec)) {
        EngineError::InvalidArgument { field, .. } => field,
        other => panic!("expected an invalid argument, got {other}"),
    }
}

#[test]
fn markets_are_upserted_listed_by_county_and_removed() {
    let mut e = engine();
    let station = market_spec("yaodu-s1", YAODU, Some("141002001"), 60);
    assert_eq!(ok(&mut e, T0, Command::UpsertMarket(station.clone())), Outcome::MarketUpserted { created: true });
    ok(&mut e, T0, Command::UpsertMarket(market_spec("yaodu-m", YAODU, None, 400)));
    ok(&mut e, T0, Command::UpsertMarket(market_spec("houma-m", HOUMA, None, 250)));
    let moved = MarketSpec { address: "新址".into(), ..station };
    assert_eq!(ok(&mut e, T0, Command::UpsertMarket(moved)), Outcome::MarketUpserted { created: false });
    let yaodu: Vec<&str> = e.directory().of_county(YAODU).map(|m| m.id.as_str()).collect();
    assert_eq!(yaodu, ["yaodu-m", "yaodu-s1"]);
    assert_eq!(e.directory().get("yaodu-s1").unwrap().address, "新址");
    assert_eq!(ok(&mut e, T0, Command::RemoveMarket { market: "houma-m".into() }), Outcome::MarketRemoved);
    assert_eq!(
        refused(&mut e, T0, Command::RemoveMarket { market: "houma-m".into() }),
        EngineError::UnknownMarket("houma-m".into())
    );
    assert_eq!(e.directory().len(), 2);
    // Directory changes are not market activity.
    assert!(e.ledger().entries().next().is_none());
    e.check_invariants().unwrap();
}

#[test]
fn invalid_entries_are_refused_naming_the_field() {
    let mut e = engine();
    let good = || market_spec("m1", YAODU, None, 300);
    assert_eq!(invalid_field(&mut e, MarketSpec { id: "".into(), ..good() }), "market_id");
    assert_eq!(invalid_field(&mut e, MarketSpec { id: "a b".into(), ..good() }), "market_id");
    assert_eq!(invalid_field(&mut e, MarketSpec { county: 110101, ..good() }), "county");
    let station_without_township = MarketSpec { kind: MarketKind::TownshipStation, ..good() };
    assert_eq!(invalid_field(&mut e, station_without_township), "township");
    assert_eq!(invalid_field(&mut e, MarketSpec { township: Some("".into()), ..good() }), "township");
    assert_eq!(invalid_field(&mut e, MarketSpec { name: " ".into(), ..good() }), "name");
    assert_eq!(invalid_field(&mut e, MarketSpec { name: "名".repeat(60).into(), ..good() }), "name");
    assert_eq!(invalid_field(&mut e, MarketSpec { address: "".into(), ..good() }), "address");
    assert_eq!(invalid_field(&mut e, MarketSpec { hotline: "1".repeat(40).into(), ..good() }), "hotline");
    assert_eq!(invalid_field(&mut e, MarketSpec { complaint_channel: "".into(), ..good() }), "complaint_channel");
    assert_eq!(invalid_field(&mut e, MarketSpec { opening_hours: "".into(), ..good() }), "opening_hours");
    let off_map = MarketSpec { position: LatLon { lat: 91.0, lon: 0.0 }, ..good() };
    assert_eq!(invalid_field(&mut e, off_map), "position");
    let nan = MarketSpec { position: LatLon { lat: f64::NAN, lon: 0.0 }, ..good() };
    assert_eq!(invalid_field(&mut e, nan), "position");
    assert_eq!(invalid_field(&mut e, MarketSpec { indoor_area_m2: 0, ..good() }), "indoor_area_m2");
    assert_eq!(invalid_field(&mut e, MarketSpec { trades: vec!["juggler".into()], ..good() }), "trades");
    assert_eq!(invalid_field(&mut e, MarketSpec { trades: vec!["mason".into(), "mason".into()], ..good() }), "trades");
    ok(&mut e, T0, Command::UpsertMarket(good()));
    // A second county market in the same county is refused; a station is fine.
    assert_eq!(invalid_field(&mut e, MarketSpec { id: "m2".into(), ..good() }), "kind");
    ok(&mut e, T0, Command::UpsertMarket(market_spec("s1", YAODU, Some("141002001"), 50)));
}

#[test]
fn the_directory_survives_a_snapshot() {
    let mut e = engine();
    ok(&mut e, T0, Command::UpsertMarket(market_spec("m1", YAODU, None, 300)));
    ok(&mut e, T0, Command::UpsertMarket(market_spec("s1", YAODU, Some("141002001"), 50)));
    let snapshot = e.snapshot();
    let restored = Engine::restore(EngineConfig::default(), snapshot.clone()).unwrap();
    assert_eq!(restored.directory(), e.directory());
    // A snapshot naming an unknown county is refused.
    let mut bad = snapshot;
    bad.directory[0].county = 1;
    assert!(Engine::restore(EngineConfig::default(), bad).is_err());
}
