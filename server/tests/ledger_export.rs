//! The ledger export a county office opens, checked against golden files:
//! CSV with a byte-order mark and Chinese headers (English on request), county
//! names beside codes, one value per cell, day and month rows across a month
//! boundary; and the XLSX workbook's sheets. Regenerate the golden files with
//! `LINGGONG_UPDATE_GOLDEN=1 cargo test -p linggong-server --test ledger_export`
//! and review the diff.

use linggong_engine::{
    Availability, Command, ComplaintCategory, ComplaintResolution, EmployerKind, EmployerSpec, Engine, EngineConfig,
    Hardship, LatLon, LedgerDay, OfferResponse, Outcome, PostingSource, PostingSpec, Timestamp, TradeSkillSpec,
    WorkerSpec,
};
use linggong_server::ledger_export::{checked_export, sheets, table, to_csv, to_xlsx, Lang, Period, BOM};
use std::io::Read;
use std::path::PathBuf;

const YAODU: u32 = 141002;
const HOUMA: u32 = 141081;

fn at(y: i32, m: u32, d: u32, h: i64) -> Timestamp {
    LedgerDay::from_ymd(y, m, d).unwrap().start().plus_minutes(h * 60)
}

fn worker(id: &str, county: u32, hardship: Hardship) -> WorkerSpec {
    WorkerSpec {
        id: id.into(),
        name: "零工".into(),
        phone: "13800000000".into(),
        trades: smallvec::smallvec![TradeSkillSpec { trade: "porter".into(), level: 3 }],
        position: LatLon { lat: 36.082, lon: 111.52 },
        county,
        township: None,
        availability: Availability::ALWAYS,
        min_daily_wage: 100,
        hardship,
    }
}

fn posting(id: &str, start: Timestamp, source: PostingSource) -> PostingSpec {
    PostingSpec {
        id: id.into(),
        employer: "e1".into(),
        trade: "porter".into(),
        headcount: 1,
        position: LatLon { lat: 36.081, lon: 111.521 },
        county: YAODU,
        township: (source == PostingSource::TownshipStation).then(|| "141002001".into()),
        max_distance_m: 20_000,
        daily_wage: 220,
        start,
        duration_minutes: 480,
        offer_ttl_secs: 3600,
        description: "".into(),
        source,
        version: 1,
    }
}

/// 2024-02-28 to 2024-03-02: registrations, two filled postings (one to a
/// hardship worker), a complaint filed and resolved, a registration in 侯马市.
fn market() -> Engine {
    let mut e = Engine::linfen(EngineConfig::default());
    let mut events = Vec::new();
    let mut apply = |now: Timestamp, cmd: Command| e.apply(now, &cmd, &mut events).expect("scripted command applies");
    apply(
        at(2024, 2, 28, 8),
        Command::UpsertEmployer(EmployerSpec {
            id: "e1".into(),
            name: "李记搬家".into(),
            kind: EmployerKind::Individual,
            verified: true,
        }),
    );
    apply(at(2024, 2, 28, 9), Command::UpsertWorker(worker("w1", YAODU, Hardship::None)));
    apply(at(2024, 2, 28, 10), Command::UpsertWorker(worker("w2", YAODU, Hardship::Disabled)));
    apply(at(2024, 2, 29, 8), Command::UpsertWorker(worker("w3", HOUMA, Hardship::None)));
    for (day, id, source) in [(29, "p1", PostingSource::CountyDesk), (1, "p2", PostingSource::TownshipStation)] {
        let month = if day == 29 { 2 } else { 3 };
        apply(at(2024, month, day, 9), Command::SubmitPosting(posting(id, at(2024, month, day, 13), source)));
        let Outcome::Matched { offers, .. } =
            apply(at(2024, month, day, 10), Command::InstantMatch { posting: id.into(), max_offers: 0 })
        else {
            panic!("not a match")
        };
        let o = &offers[0];
        apply(
            at(2024, month, day, 10).plus_minutes(5),
            Command::RespondToOffer { offer: o.offer, worker: o.worker.clone(), response: OfferResponse::Accept },
        );
    }
    let Outcome::ComplaintFiled { complaint } = apply(
        at(2024, 3, 1, 15),
        Command::FileComplaint {
            employer: "e1".into(),
            posting: None,
            county: YAODU,
            category: ComplaintCategory::WageArrears,
            detail: "工资未结清".into(),
        },
    ) else {
        panic!("not filed")
    };
    apply(
        at(2024, 3, 2, 9),
        Command::ResolveComplaint { complaint, resolution: ComplaintResolution::Upheld, note: "已结清".into() },
    );
    e
}

fn golden(name: &str, got: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("LINGGONG_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (set LINGGONG_UPDATE_GOLDEN=1)", path.display()));
    assert!(
        want == got,
        "{name} differs from the golden file:\n--- want\n{}\n--- got\n{}",
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(got)
    );
}

fn range() -> (LedgerDay, LedgerDay) {
    (LedgerDay::from_ymd(2024, 2, 28).unwrap(), LedgerDay::from_ymd(2024, 3, 2).unwrap())
}

#[test]
fn csv_by_day_in_chinese_matches_the_golden_file() {
    let e = market();
    let (from, to) = range();
    let export = checked_export(&e, from, to, &[YAODU, HOUMA], Period::Day, Lang::Zh).unwrap();
    let t = table(&e, &export);
    assert_eq!(t.rows.len(), 8, "four days for each of two counties");
    assert!(t.rows.iter().all(|r| r.len() == t.headers.len()), "one value per cell, every row complete");
    let csv = to_csv(&t);
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.starts_with(BOM), "a byte-order mark for Excel and WPS");
    assert!(text.contains("日期,区县代码,区县,新登记零工,待岗零工·"), "{}", &text[..200]);
    assert!(text.contains("2024-03-01,141002,尧都区,"), "county names beside codes");
    golden("ledger-zh-day.csv", &csv);
}

#[test]
fn csv_by_month_in_english_matches_the_golden_file() {
    let e = market();
    let (from, to) = range();
    let export = checked_export(&e, from, to, &[YAODU], Period::Month, Lang::En).unwrap();
    let t = table(&e, &export);
    assert_eq!(t.rows.len(), 2, "February and March");
    let csv = to_csv(&t);
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.contains("month,county code,county,registrations,waiting: "), "{}", &text[..200]);
    assert!(text.contains("2024-02,141002,尧都区,2,"), "two registrations in February");
    golden("ledger-en-month.csv", &csv);
}

#[test]
fn the_workbook_has_a_summary_and_a_sheet_per_county_and_is_reproducible() {
    let e = market();
    let (from, to) = range();
    let export = checked_export(&e, from, to, &[], Period::Day, Lang::Zh).unwrap();
    assert_eq!(export.counties.len(), 17, "no county given: every county");
    let s = sheets(&e, &export);
    assert_eq!(s.sheets.len(), 18);
    assert_eq!(s.sheets[0].0, "汇总（按月）");
    assert_eq!(s.sheets[0].1.rows.len(), 17 * 2, "each county, month by month");
    let bytes = to_xlsx(&s).unwrap();
    assert_eq!(bytes, to_xlsx(&s).unwrap(), "the same ledger gives the same file");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut workbook = String::new();
    zip.by_name("xl/workbook.xml").unwrap().read_to_string(&mut workbook).unwrap();
    for name in ["汇总（按月）", "尧都区 141002", "侯马市 141081"] {
        assert!(workbook.contains(name), "sheet {name} in {workbook}");
    }
    let mut strings = String::new();
    zip.by_name("xl/sharedStrings.xml").unwrap().read_to_string(&mut strings).unwrap();
    assert!(strings.contains("新登记零工") && strings.contains("尧都区"), "{strings}");
}

#[test]
fn bad_ranges_and_counties_are_refused() {
    let e = market();
    let (from, to) = range();
    assert!(checked_export(&e, to, from, &[], Period::Day, Lang::Zh).is_err());
    assert!(checked_export(&e, from, to, &[999_999], Period::Day, Lang::Zh).is_err());
    assert!(checked_export(&e, LedgerDay(0), LedgerDay(5_000), &[], Period::Day, Lang::Zh).is_err());
}
