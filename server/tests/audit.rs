//! The ledger rebuilt for audit from a member's history log and snapshots
//! equals the live engine's, both when the log still starts at record 1 and
//! when compaction has removed its beginning (so the rebuild starts from the
//! oldest snapshot kept); and the offline reads never change the data directory.

use linggong_engine::{
    Availability, Command, ComplaintCategory, ComplaintResolution, EmployerKind, EmployerSpec, Hardship, LatLon,
    LedgerDay, MarketKind, MarketSpec, OfferResponse, Outcome, PostingSource, PostingSpec, Timestamp, TradeSkillSpec,
    WorkerSpec,
};
use linggong_server::audit::{load_offline, rebuild_ledger, ReplayFrom};
use linggong_server::host::{Host, HostConfig};
use linggong_server::wal::{list_segments, Durability};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const YAODU: u32 = 141002;

/// 2024-03-02 in China Standard Time.
fn day() -> LedgerDay {
    LedgerDay::from_ymd(2024, 3, 2).unwrap()
}

fn config(dir: &Path, clock: Arc<AtomicI64>, segment_bytes: u64, snapshot_every_records: u64) -> HostConfig {
    let mut c = HostConfig::new(dir);
    c.durability = Durability::None;
    c.segment_bytes = segment_bytes;
    c.snapshot_every_records = snapshot_every_records;
    c.clock = Arc::new(move || Timestamp(clock.load(Ordering::Relaxed)));
    c
}

fn worker(i: usize) -> WorkerSpec {
    WorkerSpec {
        id: format!("w{i}").into(),
        name: format!("零工{i}").into(),
        phone: "13800000000".into(),
        trades: smallvec::smallvec![TradeSkillSpec { trade: "porter".into(), level: 3 }],
        position: LatLon { lat: 36.08 + i as f64 * 0.002, lon: 111.52 },
        county: YAODU,
        township: None,
        availability: Availability::ALWAYS,
        min_daily_wage: 100,
        hardship: if i % 3 == 1 { Hardship::Disabled } else { Hardship::None },
    }
}

fn posting(i: usize, start: Timestamp) -> PostingSpec {
    PostingSpec {
        id: format!("p{i}").into(),
        employer: "e1".into(),
        trade: "porter".into(),
        headcount: 2,
        position: LatLon { lat: 36.081, lon: 111.521 },
        county: YAODU,
        township: None,
        max_distance_m: 20_000,
        daily_wage: 220,
        start,
        duration_minutes: 480,
        offer_ttl_secs: 3600,
        description: "".into(),
        source: [PostingSource::CountyDesk, PostingSource::TownshipStation, PostingSource::Online][i % 3],
        version: 1,
    }
}

/// Drives a host over the day before, `day()` and the day after, and returns
/// the live ledger of `day()` for 尧都区 before shutting down.
async fn run_market(host: &Host, clock: &AtomicI64) -> linggong_engine::LedgerReport {
    let submit = async |at: Timestamp, cmd: Command| {
        clock.store(at.0, Ordering::Relaxed);
        host.submit(None, cmd).await.expect("scripted command applies").outcome
    };
    let start = day().start();
    let hour = |d: i64, h: i64| Timestamp(start.0 + d * 86_400_000 + h * 3_600_000);
    submit(
        hour(-1, 9),
        Command::UpsertEmployer(EmployerSpec {
            id: "e1".into(),
            name: "李记搬家".into(),
            kind: EmployerKind::Individual,
            verified: true,
        }),
    )
    .await;
    submit(
        hour(-1, 9),
        Command::UpsertMarket(MarketSpec {
            id: "yaodu-market".into(),
            county: YAODU,
            township: None,
            name: "尧都区零工市场".into(),
            kind: MarketKind::CountyMarket,
            address: "解放路1号".into(),
            position: LatLon { lat: 36.08, lon: 111.52 },
            indoor_area_m2: 320,
            adapts_recruitment_hall: false,
            opening_hours: "07:00-18:00".into(),
            hotline: "0357-1234567".into(),
            complaint_channel: "12333".into(),
            trades: vec!["porter".into()],
        }),
    )
    .await;
    for i in 0..4 {
        submit(hour(-1, 10), Command::UpsertWorker(worker(i))).await;
    }
    for d in 0..2 {
        for i in 0..3 {
            let n = d as usize * 10 + i;
            submit(hour(d, 8 + i as i64), Command::UpsertWorker(worker(10 + n))).await;
            submit(hour(d, 8 + i as i64), Command::SubmitPosting(posting(n, hour(d, 13)))).await;
            let offers = match submit(
                hour(d, 9 + i as i64),
                Command::InstantMatch { posting: format!("p{n}").into(), max_offers: 0 },
            )
            .await
            {
                Outcome::Matched { offers, .. } => offers,
                other => panic!("not a match: {other:?}"),
            };
            for (k, o) in offers.iter().enumerate() {
                let response = if k == 0 || i != 1 { OfferResponse::Accept } else { OfferResponse::Decline };
                submit(
                    hour(d, 9 + i as i64).plus_secs(1800),
                    Command::RespondToOffer { offer: o.offer, worker: o.worker.clone(), response },
                )
                .await;
            }
        }
        let filed = submit(
            hour(d, 14),
            Command::FileComplaint {
                employer: "e1".into(),
                posting: Some(format!("p{}", d * 10).into()),
                county: YAODU,
                category: ComplaintCategory::WageArrears,
                detail: "工资未付".into(),
            },
        )
        .await;
        let Outcome::ComplaintFiled { complaint } = filed else { panic!("{filed:?}") };
        submit(
            hour(d, 16),
            Command::ResolveComplaint { complaint, resolution: ComplaintResolution::Upheld, note: "".into() },
        )
        .await;
        submit(hour(d, 23), Command::Tick).await;
    }
    host.read_engine(|e| e.ledger_report(day(), YAODU)).unwrap()
}

async fn check_rebuild(segment_bytes: u64, snapshot_every_records: u64, expect_log_from_start: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(0));
    let config = config(dir.path(), clock.clone(), segment_bytes, snapshot_every_records);
    let host = Host::open(config.clone()).await.unwrap();
    let live = run_market(&host, &clock).await;
    assert!(live.placements > 0 && live.registrations == 3 && live.instant_matches == 3, "{live:?}");
    host.shutdown().await;
    drop(host);
    let first_seq = list_segments(&dir.path().join("raft").join("history")).unwrap()[0].0;
    assert_eq!(first_seq == 1, expect_log_from_start, "first segment starts at {first_seq}");
    let files_before: Vec<_> = walk(dir.path());
    let rebuilt = rebuild_ledger(&config, day(), YAODU).unwrap();
    assert_eq!(rebuilt, live, "the ledger rebuilt from the log equals the live one");
    let current = load_offline(&config, ReplayFrom::Newest).unwrap();
    assert_eq!(current.engine().ledger_report(day(), YAODU).unwrap(), live);
    assert_eq!(current.engine().directory().len(), 1);
    assert_eq!(walk(dir.path()), files_before, "offline reads change no file");
}

fn walk(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            let len = std::fs::metadata(&p).unwrap().len();
            out.push((p, len));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_rebuilt_from_a_complete_log_equals_the_live_one() {
    // One segment is never compacted away, whatever the snapshots.
    check_rebuild(64 << 20, 1_000_000, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_rebuilt_from_the_oldest_snapshot_after_compaction_equals_the_live_one() {
    check_rebuild(1024, 5, false).await;
}

fn run_tool(args: &[&str], data_dir: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_linggong-server"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_tools_report_the_ledger_and_standards_and_export_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(0));
    let host = Host::open(config(dir.path(), clock.clone(), 1024, 5)).await.unwrap();
    let live = run_market(&host, &clock).await;
    host.shutdown().await;
    drop(host);
    let d = dir.path();
    let csv = run_tool(&["report", "ledger", "--day", "2024-03-02", "--county", "141002", "--csv"], d);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].starts_with("\u{feff}日期,区县代码,区县,新登记零工,"), "{csv}");
    let header: Vec<&str> = rows[0].split(',').collect();
    let fields: Vec<&str> = rows[1].split(',').collect();
    assert_eq!(&fields[..4], ["2024-03-02", "141002", "尧都区", "3"]);
    let placements = header.iter().position(|h| *h == "匹配成功").expect("a placements column");
    assert_eq!(fields[placements], live.placements.to_string());
    let rebuilt = run_tool(&["report", "ledger", "--day", "2024-03-02", "--county", "141002", "--csv", "--rebuild"], d);
    assert_eq!(rebuilt, csv);
    let all = run_tool(&["report", "ledger", "--day", "2024-03-02"], d);
    assert_eq!(all.lines().filter(|l| l.starts_with("| 2024-03-02 |")).count(), 17, "{all}");

    let standards = run_tool(&["report", "standards", "--csv"], d);
    let yaodu = standards.lines().find(|l| l.starts_with("141002,")).unwrap();
    assert!(yaodu.contains(",尧都区,959198,") && yaodu.contains(",yaodu-market,320,pass,"), "{yaodu}");
    assert!(standards.lines().any(|l| l.starts_with("141034,") && l.contains(",missing,")));
    let totals: Vec<&str> = standards.lines().filter(|l| l.starts_with("total,")).collect();
    assert_eq!(totals.len(), 2);
    assert!(totals[1].contains("汾西县") && totals[1].ends_with(",2500000"), "{}", totals[1]);
    let markdown = run_tool(&["report", "standards"], d);
    assert!(markdown.contains("| 141002 | 尧都区 | 959198 |") && markdown.contains("1010000"), "{markdown}");

    let geojson: serde_json::Value =
        serde_json::from_str(&run_tool(&["export", "directory", "--format", "geojson"], d)).unwrap();
    assert_eq!(geojson["type"], "FeatureCollection");
    let feature = &geojson["features"][0];
    assert_eq!(feature["geometry"]["coordinates"], serde_json::json!([111.52, 36.08]));
    assert_eq!(feature["properties"]["kind"], "county_market");
    let csv = run_tool(&["export", "directory", "--format", "csv"], d);
    assert_eq!(csv.lines().nth(1), Some("yaodu-market,141002,,county_market,尧都区零工市场,解放路1号,36.08,111.52,wgs84,320,false,07:00-18:00,0357-1234567,12333,porter"));
    let gcj = run_tool(&["export", "directory", "--format", "csv", "--crs", "gcj02"], d);
    let row: Vec<&str> = gcj.lines().nth(1).unwrap().split(',').collect();
    let (lat, lon): (f64, f64) = (row[6].parse().unwrap(), row[7].parse().unwrap());
    assert_eq!(row[8], "gcj02");
    assert!((lat - 36.08).abs() > 1e-4 && (lat - 36.08).abs() < 0.01 && (lon - 111.52).abs() < 0.01, "{lat},{lon}");
}
