//! The plan's standards and funds rules at every tier boundary, the acceptance
//! check of directory entries, and the city totals on Linfen's 17 counties.

mod common;

use common::*;
use linggong_engine::standards::*;
use linggong_engine::*;

#[test]
fn area_tiers_change_exactly_at_their_boundaries() {
    let cases = [
        (0, AreaTier::Under100k),
        (99_999, AreaTier::Under100k),
        (100_000, AreaTier::From100kTo200k),
        (199_999, AreaTier::From100kTo200k),
        (200_000, AreaTier::From200kTo400k),
        (399_999, AreaTier::From200kTo400k),
        (400_000, AreaTier::From400kTo700k),
        (699_999, AreaTier::From400kTo700k),
        (700_000, AreaTier::From700k),
        (u64::MAX, AreaTier::From700k),
    ];
    for (population, tier) in cases {
        assert_eq!(AreaTier::of(population), tier, "population {population}");
    }
    // "about" a figure is at least it; "over" a figure is strictly more.
    let need = |p| AreaTier::of(p).requirement();
    assert!(need(99_999).is_met_by(150) && !need(99_999).is_met_by(149));
    assert!(need(100_000).is_met_by(200) && !need(100_000).is_met_by(199));
    assert!(need(199_999).is_met_by(200) && !need(199_999).is_met_by(199));
    assert!(need(200_000).is_met_by(201) && !need(200_000).is_met_by(200));
    assert!(need(399_999).is_met_by(201) && !need(399_999).is_met_by(200));
    assert!(need(400_000).is_met_by(300) && !need(400_000).is_met_by(299));
    assert!(need(699_999).is_met_by(300) && !need(699_999).is_met_by(299));
    assert!(need(700_000).is_met_by(301) && !need(700_000).is_met_by(300));
}

#[test]
fn funds_change_exactly_at_their_boundaries() {
    let subsidy = |p| Fund::EmploymentSubsidy.amount(p);
    assert_eq!((subsidy(0), subsidy(199_999), subsidy(200_000), subsidy(u64::MAX)), (50_000, 50_000, 70_000, 70_000));
    let special = |p| Fund::SpecialFiscalFund.amount(p);
    assert_eq!((special(0), special(99_999), special(100_000)), (100_000, 100_000, 150_000));
    assert_eq!((special(299_999), special(300_000)), (150_000, 200_000));
    assert_eq!((special(599_999), special(600_000), special(u64::MAX)), (200_000, 300_000, 300_000));
}

#[test]
fn area_check_passes_fails_or_reports_missing_with_a_reason() {
    let m = |area, adapts| MarketSpec { adapts_recruitment_hall: adapts, ..market_spec("m", YAODU, None, area) };
    assert_eq!(check_area(959_198, None).0, Verdict::Missing);
    let (v, reason) = check_area(959_198, Some(&m(300, false)));
    assert_eq!(v, Verdict::Fail);
    assert!(reason.contains("300 m²") && reason.contains("over 300"), "{reason}");
    assert_eq!(check_area(959_198, Some(&m(301, false))).0, Verdict::Pass);
    assert_eq!(check_area(99_999, Some(&m(150, false))).0, Verdict::Pass);
    assert_eq!(check_area(100_000, Some(&m(150, false))).0, Verdict::Fail);
    // An adapted recruitment hall needs at least 150 m², whatever the tier.
    assert_eq!(check_area(959_198, Some(&m(150, true))).0, Verdict::Pass);
    let (v, reason) = check_area(959_198, Some(&m(149, true)));
    assert_eq!(v, Verdict::Fail);
    assert!(reason.contains("150"), "{reason}");
}

#[test]
fn linfen_totals_match_the_subsidy_and_name_fenxi_for_the_special_fund() {
    let engine = Engine::linfen(EngineConfig::default());
    let report = engine.standards_report();
    assert_eq!(report.counties.len(), 17);
    assert!(report.counties.iter().all(|c| c.verdict == Verdict::Missing));
    let total = |f| report.totals.iter().find(|t| t.fund == f).unwrap().clone();
    let subsidy = total(Fund::EmploymentSubsidy);
    assert_eq!((subsidy.computed, subsidy.stated), (1_010_000, 1_010_000));
    assert!(subsidy.explained_by.is_empty());
    // 2.50 million computed against 2.45 million stated: 汾西县 (104,627 residents,
    // just over 100,000) accounts for the 50,000 if counted in the band below.
    let special = total(Fund::SpecialFiscalFund);
    assert_eq!((special.computed, special.stated), (2_500_000, 2_450_000));
    let first = &special.explained_by[0];
    assert_eq!((first.county, first.name.as_str(), first.boundary), (141034, "汾西县", 100_000));
    assert_eq!((first.amount_now, first.amount_other), (150_000, 100_000));
    // Per-county figures follow the rules: 尧都区 959,198 → 70,000 + 300,000.
    let yaodu = report.counties.iter().find(|c| c.county == YAODU).unwrap();
    assert_eq!((yaodu.employment_subsidy, yaodu.special_fund, yaodu.tier), (70_000, 300_000, AreaTier::From700k));
}

#[test]
fn the_report_checks_each_county_market_from_the_directory() {
    let mut e = Engine::linfen(EngineConfig::default());
    ok(&mut e, T0, Command::UpsertMarket(market_spec("yaodu-market", YAODU, None, 320)));
    ok(&mut e, T0, Command::UpsertMarket(market_spec("houma-market", HOUMA, None, 200)));
    // A township station is not the county market.
    ok(&mut e, T0, Command::UpsertMarket(market_spec("xiangfen-station", XIANGFEN, Some("141023101"), 500)));
    let report = e.standards_report();
    let line = |code| report.counties.iter().find(|c| c.county == code).unwrap();
    assert_eq!(line(YAODU).verdict, Verdict::Pass);
    assert_eq!(line(HOUMA).verdict, Verdict::Fail, "侯马市 has 257,854 residents: over 200 m² needed");
    assert_eq!(line(XIANGFEN).verdict, Verdict::Missing);
    assert_eq!(line(YAODU).market, Some(("yaodu-market".into(), 320, false)));
}

#[test]
fn the_report_reads_populations_from_the_region_data() {
    let populations = [99_999u64, 100_000, 199_999, 200_000, 299_999, 300_000, 599_999, 600_000];
    let counties = populations
        .iter()
        .enumerate()
        .map(|(i, &population)| County {
            code: 100 + i as u32,
            name: format!("县{i}").into(),
            seat: yaodu_seat(),
            population,
        })
        .collect();
    let e = Engine::new(EngineConfig::default(), Regions::new(counties).unwrap(), TradeCatalog::default_catalog());
    let report = e.standards_report();
    let funds: Vec<(u64, u64)> = report.counties.iter().map(|c| (c.employment_subsidy, c.special_fund)).collect();
    assert_eq!(
        funds,
        [
            (50_000, 100_000),
            (50_000, 150_000),
            (50_000, 150_000),
            (70_000, 150_000),
            (70_000, 150_000),
            (70_000, 200_000),
            (70_000, 200_000),
            (70_000, 300_000),
        ]
    );
    let subsidy = &report.totals[0];
    assert_eq!((subsidy.computed, subsidy.stated), (500_000, STATED_EMPLOYMENT_SUBSIDY_TOTAL));
    assert!(subsidy.explained_by.is_empty(), "no single county accounts for 510,000");
}
