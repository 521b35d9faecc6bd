//! End-to-end tests of the market directory, the daily ledger and the
//! standards report over gRPC: roles and scope, validation naming the field,
//! idempotent retries, and survival across a restart.

use linggong_server::proto::v1 as pb;
use linggong_tests::*;
use tonic::Code;

async fn upsert(
    c: &mut Clients,
    token: &str,
    request_id: &str,
    m: pb::Market,
) -> Result<pb::UpsertMarketResponse, tonic::Status> {
    c.directory
        .upsert_market(authed(token, pb::UpsertMarketRequest { request_id: request_id.into(), market: Some(m) }))
        .await
        .map(|r| r.into_inner())
}

async fn list(c: &mut Clients, token: &str, county: u32) -> Result<Vec<String>, tonic::Status> {
    let r = c
        .directory
        .list_markets(authed(token, pb::ListMarketsRequest { county_code: county, ..Default::default() }))
        .await?;
    Ok(r.into_inner().markets.into_iter().map(|m| m.market_id).collect())
}

async fn ledger(c: &mut Clients, token: &str, county: u32) -> Result<pb::CountyLedgerResponse, tonic::Status> {
    let req = pb::CountyLedgerRequest { county_code: county, date: Some(today_cst()) };
    c.stats.county_ledger(authed(token, req)).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn operators_keep_the_directory_and_everyone_reads_it() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;

    let created = upsert(&mut c, &t.operator, "m-1", market("yaodu-market", YAODU, "", 320)).await?;
    assert!(created.created);
    assert_eq!(created.market.as_ref().map(|m| m.indoor_area_m2), Some(320));
    // A retry with the same request id returns the first result and applies nothing twice.
    let retried = upsert(&mut c, &t.operator, "m-1", market("yaodu-market", YAODU, "", 320)).await?;
    assert_eq!(retried, created);
    upsert(&mut c, &t.operator, "", market("yaodu-s1", YAODU, YAODU_TOWNSHIP, 60)).await?;
    let replaced = upsert(&mut c, &t.operator, "", market("yaodu-s1", YAODU, YAODU_TOWNSHIP, 80)).await?;
    assert!(!replaced.created);

    for token in [&t.operator, &t.reviewer, &t.yaodu, &t.houma, &t.yaodu_station] {
        assert_eq!(list(&mut c, token, YAODU).await?, ["yaodu-market", "yaodu-s1"]);
    }
    assert!(list(&mut c, &t.houma, HOUMA).await?.is_empty());
    let status = upsert(&mut c, &t.yaodu, "", market("x", YAODU, "", 300)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Validation names every bad field at once.
    let mut bad = market("bad id", YAODU, "", 0);
    bad.position = None;
    bad.trade_ids = vec!["porter".into(), "juggler".into(), "porter".into()];
    bad.hotline = "call us".into();
    let status = upsert(&mut c, &t.operator, "", bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    for f in [
        "market.market_id",
        "market.position",
        "market.indoor_area_m2",
        "market.trade_ids[1]",
        "market.trade_ids[2]",
        "market.hotline",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} not in {fields:?}");
    }
    let mut station = market("s2", YAODU, "", 50);
    station.kind = pb::MarketKind::TownshipStation as i32;
    let status = upsert(&mut c, &t.operator, "", station).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["market.township_code"]);
    // A second county market in a county: the engine's refusal, mapped with its field.
    let status = upsert(&mut c, &t.operator, "", market("yaodu-market-2", YAODU, "", 500)).await.unwrap_err();
    assert_eq!((status.code(), violated_fields(&status)), (Code::InvalidArgument, vec!["kind".to_string()]));
    let status = list(&mut c, &t.yaodu, 1).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["county_code"]);

    // The directory survives a restart.
    server.restart().await?;
    let mut c = server.clients().await?;
    assert_eq!(list(&mut c, &t.yaodu, YAODU).await?, ["yaodu-market", "yaodu-s1"]);
    let remove = |id: &str| pb::RemoveMarketRequest { request_id: String::new(), market_id: id.into() };
    c.directory.remove_market(authed(&t.operator, remove("yaodu-s1"))).await?;
    let status = c.directory.remove_market(authed(&t.operator, remove("yaodu-s1"))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = c.directory.remove_market(authed(&t.reviewer, remove("yaodu-market"))).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(list(&mut c, &t.yaodu, YAODU).await?, ["yaodu-market"]);
    server.stop().await
}

#[tokio::test]
async fn the_standards_report_checks_county_markets_for_operators() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert(&mut c, &t.operator, "", market("yaodu-market", YAODU, "", 300)).await?;
    upsert(&mut c, &t.operator, "", market("houma-market", HOUMA, "", 260)).await?;
    let r = c.stats.standards_report(authed(&t.operator, pb::StandardsReportRequest {})).await?.into_inner();
    assert_eq!(r.counties.len(), 17);
    let line = |code| r.counties.iter().find(|l| l.county_code == code).unwrap().clone();
    let yaodu = line(YAODU);
    assert_eq!((yaodu.verdict, yaodu.required_area_m2, yaodu.required_over), (pb::Verdict::Fail as i32, 300, true));
    assert_eq!(line(HOUMA).verdict, pb::Verdict::Pass as i32);
    assert_eq!(line(141034).verdict, pb::Verdict::Missing as i32);
    let totals: Vec<(String, i64, i64)> =
        r.totals.iter().map(|t| (t.fund.clone(), t.computed_yuan, t.stated_yuan)).collect();
    assert_eq!(
        totals,
        [("employment_subsidy".into(), 1_010_000, 1_010_000), ("special_fiscal_fund".into(), 2_500_000, 2_450_000)]
    );
    assert_eq!(r.totals[1].explained_by_county_codes.first(), Some(&141034));
    let status = c.stats.standards_report(authed(&t.yaodu, pb::StandardsReportRequest {})).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    server.stop().await
}

#[tokio::test]
async fn the_ledger_counts_the_day_and_survives_a_restart() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    let group =
        WorkerGroup { prefix: "w", count: 3, county: YAODU, trade: "porter", centre: YAODU_SEAT, spread_m: 1_000.0 };
    register_workers(&mut c, &t.yaodu, &group).await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;
    submit_posting(&mut c, &t.yaodu, posting("p1", "e1", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 2)).await?;
    let matched = c
        .matches
        .instant_match(authed(
            &t.yaodu,
            pb::InstantMatchRequest { request_id: String::new(), posting_id: "p1".into(), max_offers: 0 },
        ))
        .await?
        .into_inner();
    assert_eq!(matched.offers.len(), 2);

    let day = ledger(&mut c, &t.yaodu, YAODU).await?;
    assert_eq!((day.registrations, day.instant_matches, day.offers_made), (3, 1, 2));
    let desk = day.postings_by_source.iter().find(|s| s.source == pb::PostingSource::CountyDesk as i32).unwrap();
    assert_eq!(desk.postings, 1);
    let porters = day.waiting_by_trade.iter().find(|w| w.trade_id == "porter").unwrap();
    assert_eq!(porters.waiting_workers, 1, "two of three hold offers");
    assert!(!day.active_hours.is_empty());
    assert_eq!(day.complaints.len(), 5);

    assert_eq!(ledger(&mut c, &t.yaodu, HOUMA).await.unwrap_err().code(), Code::PermissionDenied);
    let bad = pb::CountyLedgerRequest { county_code: YAODU, date: Some(pb::Date { year: 2024, month: 2, day: 30 }) };
    let status = c.stats.county_ledger(authed(&t.yaodu, bad)).await.unwrap_err();
    assert_eq!((status.code(), violated_fields(&status)), (Code::InvalidArgument, vec!["date".to_string()]));
    let missing = pb::CountyLedgerRequest { county_code: YAODU, date: None };
    assert_eq!(violated_fields(&c.stats.county_ledger(authed(&t.reviewer, missing)).await.unwrap_err()), ["date"]);

    server.restart().await?;
    let mut c = server.clients().await?;
    assert_eq!(ledger(&mut c, &t.operator, YAODU).await?, day);
    server.stop().await
}
