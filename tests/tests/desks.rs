//! End-to-end tests of what reviewers and county desks do: list and look up
//! complaints, employers, a posting's offers, workers by phone and markets of
//! several counties (scoped by role, paged, bad fields named, Chinese
//! messages beside the English ones); positions in the coordinate systems of
//! Chinese maps; who did what from the log; the ledger as a file; and tokens
//! for people added and revoked while the server runs, with rate limits.

use linggong_server::auth::Role;
use linggong_server::proto::v1 as pb;
use linggong_server::tokens::{add_token, revoke_token, NewToken};
use linggong_tests::*;
use pb::audit_service_client::AuditServiceClient;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

fn zh(status: &tonic::Status) -> String {
    status.get_details_localized_message().map(|m| format!("{}|{}", m.locale, m.message)).unwrap_or_default()
}

async fn file_complaint(
    c: &mut Clients,
    token: &str,
    employer: &str,
    county: u32,
    category: pb::ComplaintCategory,
) -> anyhow::Result<u64> {
    let r = c
        .review
        .file_complaint(authed(
            token,
            pb::FileComplaintRequest {
                employer_id: employer.into(),
                county_code: county,
                category: category as i32,
                detail: "工资未结清".into(),
                ..Default::default()
            },
        ))
        .await?;
    Ok(r.into_inner().complaint.unwrap().complaint_id)
}

#[tokio::test]
async fn complaints_and_employers_are_listed_by_scope_and_filters() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e-li", true).await?;
    upsert_employer(&mut c, &t.operator, "e-wang", false).await?;
    let a = file_complaint(&mut c, &t.reviewer, "e-li", YAODU, pb::ComplaintCategory::WageArrears).await?;
    let b = file_complaint(&mut c, &t.reviewer, "e-wang", HOUMA, pb::ComplaintCategory::Safety).await?;
    file_complaint(&mut c, &t.reviewer, "e-li", YAODU, pb::ComplaintCategory::Safety).await?;
    c.review
        .resolve_complaint(authed(
            &t.reviewer,
            pb::ResolveComplaintRequest {
                complaint_id: a,
                resolution: pb::ComplaintResolution::Upheld as i32,
                note: "已结清".into(),
                ..Default::default()
            },
        ))
        .await?;

    let list = |token: String, req: pb::ListComplaintsRequest| {
        let mut review = c.review.clone();
        async move { review.list_complaints(authed(&token, req)).await.map(|r| r.into_inner()) }
    };
    let all = list(t.reviewer.clone(), Default::default()).await?;
    assert_eq!(all.complaints.len(), 3);
    let open_yaodu = list(
        t.reviewer.clone(),
        pb::ListComplaintsRequest {
            county_codes: vec![YAODU],
            state: pb::ComplaintState::Open as i32,
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(open_yaodu.complaints.len(), 1);
    assert_eq!(open_yaodu.complaints[0].state, pb::ComplaintState::Open as i32);
    let safety = list(
        t.reviewer.clone(),
        pb::ListComplaintsRequest { category: pb::ComplaintCategory::Safety as i32, ..Default::default() },
    )
    .await?;
    assert_eq!(safety.complaints.len(), 2);
    // A county desk sees its own county's complaints only, and may not ask for another's.
    let houma = list(t.houma.clone(), Default::default()).await?;
    assert_eq!(houma.complaints.iter().map(|c| c.complaint_id).collect::<Vec<_>>(), vec![b]);
    let denied = list(t.houma.clone(), pb::ListComplaintsRequest { county_codes: vec![YAODU], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Paging: one at a time, to the end.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            t.reviewer.clone(),
            pb::ListComplaintsRequest { page_size: 1, page_token: token, ..Default::default() },
        )
        .await?;
        seen.extend(page.complaints.iter().map(|c| c.complaint_id));
        token = page.next_page_token;
        if token.is_empty() || seen.len() > 10 {
            break;
        }
    }
    assert_eq!(seen.len(), 3);
    // Bad fields are named, with a Chinese message beside the English one.
    let bad = list(
        t.reviewer.clone(),
        pb::ListComplaintsRequest { county_codes: vec![1], category: 99, ..Default::default() },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), vec!["county_codes[0]", "category"]);
    assert!(zh(&bad).starts_with("zh-CN|请求参数有误") && zh(&bad).contains("county_codes[0]"), "{}", zh(&bad));

    let got = c.review.get_complaint(authed(&t.yaodu, pb::GetComplaintRequest { complaint_id: a })).await?.into_inner();
    let got = got.complaint.unwrap();
    assert_eq!(got.state, pb::ComplaintState::Resolved as i32);
    assert_eq!(got.resolved_by, "reviewer", "the resolver is kept");
    let open = c.review.get_complaint(authed(&t.reviewer, pb::GetComplaintRequest { complaint_id: b })).await?;
    assert_eq!(open.into_inner().complaint.unwrap().resolved_by, "");
    let other =
        c.review.get_complaint(authed(&t.yaodu, pb::GetComplaintRequest { complaint_id: b })).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);
    let missing =
        c.review.get_complaint(authed(&t.reviewer, pb::GetComplaintRequest { complaint_id: 99 })).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(zh(&missing).starts_with("zh-CN|"), "{}", zh(&missing));

    let e = c.review.get_employer(authed(&t.reviewer, pb::GetEmployerRequest { employer_id: "e-li".into() })).await?;
    assert_eq!(e.into_inner().employer.unwrap().complaint_count, 2);
    let unverified = c
        .review
        .list_employers(authed(&t.reviewer, pb::ListEmployersRequest { verified: Some(false), ..Default::default() }))
        .await?
        .into_inner();
    assert_eq!(unverified.employers.iter().map(|e| e.employer_id.as_str()).collect::<Vec<_>>(), vec!["e-wang"]);
    let prefix = c
        .review
        .list_employers(authed(
            &t.reviewer,
            pb::ListEmployersRequest { name_prefix: "用工单位 e-l".into(), ..Default::default() },
        ))
        .await?
        .into_inner();
    assert_eq!(prefix.employers.len(), 1);
    server.stop().await
}

#[tokio::test]
async fn desks_find_workers_by_phone_see_offers_and_use_map_coordinates() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    // A position picked on a 高德 (GCJ-02) map of Yaodu's seat.
    let gcj = pb::LatLon { lat: 36.0788, lon: 111.5262, crs: pb::CoordinateSystem::Gcj02 as i32 };
    let w = pb::Worker {
        phone: "138-0000 1111".into(),
        position: Some(gcj),
        ..worker("w-zhang", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0))
    };
    c.workers
        .register_worker(authed(&t.yaodu, pb::RegisterWorkerRequest { worker: Some(w), ..Default::default() }))
        .await?;
    let stored = c
        .workers
        .get_worker(authed(&t.yaodu, pb::GetWorkerRequest { worker_id: "w-zhang".into(), ..Default::default() }))
        .await?
        .into_inner()
        .worker
        .unwrap()
        .position
        .unwrap();
    assert_eq!(stored.crs, pb::CoordinateSystem::Wgs84 as i32);
    let moved_m = (stored.lat - gcj.lat).hypot((stored.lon - gcj.lon) * 0.81) * 111_195.0;
    assert!((100.0..1_000.0).contains(&moved_m), "stored as WGS-84, {moved_m} m from the GCJ-02 numbers");
    let asked = c
        .workers
        .get_worker(authed(
            &t.yaodu,
            pb::GetWorkerRequest { worker_id: "w-zhang".into(), response_crs: pb::CoordinateSystem::Gcj02 as i32 },
        ))
        .await?
        .into_inner()
        .worker
        .unwrap()
        .position
        .unwrap();
    assert!((asked.lat - gcj.lat).abs() < 1e-8 && (asked.lon - gcj.lon).abs() < 1e-8, "{asked:?}");
    let bad_crs = pb::Worker { position: Some(pb::LatLon { crs: 9, ..gcj }), ..worker("w-x", YAODU, "porter", gcj) };
    let err = c
        .workers
        .register_worker(authed(&t.yaodu, pb::RegisterWorkerRequest { worker: Some(bad_crs), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["worker.position.crs"]);

    // By phone: exact match ignoring separators, scoped to the desk's counties.
    let find = |token: String, phone: &str| {
        let mut workers = c.workers.clone();
        let req = pb::FindWorkersByPhoneRequest { phone: phone.into(), ..Default::default() };
        async move { workers.find_workers_by_phone(authed(&token, req)).await.map(|r| r.into_inner().workers) }
    };
    let found = find(t.yaodu.clone(), "13800001111").await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].phone, "138-0000 1111", "unmasked in the desk's own county");
    assert!(find(t.houma.clone(), "13800001111").await?.is_empty(), "another county's desk finds nobody");
    assert!(find(t.yaodu.clone(), "1380000111").await?.is_empty(), "exact match only");
    let err = find(t.yaodu.clone(), "").await.unwrap_err();
    assert_eq!(violated_fields(&err), vec!["phone"]);

    // A posting's offers with their states.
    upsert_employer(&mut c, &t.operator, "e-li", true).await?;
    submit_posting(&mut c, &t.yaodu, posting("p-1", "e-li", "porter", YAODU, offset(YAODU_SEAT, 300.0, 0.0), 1))
        .await?;
    c.matches
        .instant_match(authed(&t.yaodu, pb::InstantMatchRequest { posting_id: "p-1".into(), ..Default::default() }))
        .await?;
    let offers = c
        .postings
        .list_posting_offers(authed(&t.yaodu, pb::ListPostingOffersRequest { posting_id: "p-1".into() }))
        .await?
        .into_inner()
        .offers;
    assert_eq!(offers.len(), 1);
    assert_eq!((offers[0].worker_id.as_str(), offers[0].state), ("w-zhang", pb::OfferState::Pending as i32));
    assert!(offers[0].make_time.is_some());
    let denied = c
        .postings
        .list_posting_offers(authed(&t.houma, pb::ListPostingOffersRequest { posting_id: "p-1".into() }))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Who did what, from the log: the worker's registration by the Yaodu desk and the offer.
    let mut audit = AuditServiceClient::new(c.channel.clone());
    let h = audit
        .get_history(authed(
            &t.reviewer,
            pb::GetHistoryRequest {
                subject: Some(pb::get_history_request::Subject::WorkerId("w-zhang".into())),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let actions: Vec<(&str, &str)> =
        h.entries.iter().map(|e| (e.action.as_str(), e.actor.as_ref().map_or("", |a| a.name.as_str()))).collect();
    assert_eq!(actions, vec![("RegisterWorker", "yaodu"), ("InstantMatch", "yaodu")]);
    assert!(h.entries[1].outcome.contains("to w-zhang"), "{:?}", h.entries[1]);
    let employer_history = audit
        .get_history(authed(
            &t.reviewer,
            pb::GetHistoryRequest {
                subject: Some(pb::get_history_request::Subject::EmployerId("e-li".into())),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    assert_eq!(employer_history.entries.first().map(|e| e.action.as_str()), Some("UpsertEmployer"));
    assert_eq!(
        employer_history.entries.first().and_then(|e| e.actor.as_ref()).map(|a| a.role.as_str()),
        Some("operator")
    );
    let none = audit.get_history(authed(&t.reviewer, pb::GetHistoryRequest::default())).await.unwrap_err();
    assert_eq!(violated_fields(&none), vec!["subject"]);

    // Markets of several counties, a page at a time.
    for (id, county) in [("a-yaodu", YAODU), ("b-houma", HOUMA)] {
        let m = pb::Market { position: Some(offset(YAODU_SEAT, 100.0, 0.0)), ..market(id, county, "", 320) };
        c.directory
            .upsert_market(authed(&t.operator, pb::UpsertMarketRequest { market: Some(m), ..Default::default() }))
            .await?;
    }
    let first = c
        .directory
        .list_markets(authed(
            &t.yaodu,
            pb::ListMarketsRequest { county_codes: vec![YAODU, HOUMA], page_size: 1, ..Default::default() },
        ))
        .await?
        .into_inner();
    assert_eq!(first.markets.iter().map(|m| m.market_id.as_str()).collect::<Vec<_>>(), vec!["a-yaodu"]);
    let second = c
        .directory
        .list_markets(authed(
            &t.yaodu,
            pb::ListMarketsRequest {
                county_codes: vec![YAODU, HOUMA],
                page_size: 1,
                page_token: first.next_page_token,
                response_crs: pb::CoordinateSystem::Bd09 as i32,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    assert_eq!(second.markets[0].market_id, "b-houma");
    assert_eq!(second.markets[0].position.unwrap().crs, pb::CoordinateSystem::Bd09 as i32);
    assert!(second.next_page_token.is_empty());

    // The ledger as a file a county office opens.
    let file = c
        .stats
        .export_ledger(authed(
            &t.yaodu,
            pb::ExportLedgerRequest {
                from_date: Some(today_cst()),
                to_date: Some(today_cst()),
                format: pb::LedgerFileFormat::Csv as i32,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let text = String::from_utf8(file.content)?;
    assert!(text.starts_with('\u{feff}') && text.contains("尧都区") && !text.contains("侯马市"), "{text}");
    assert!(file.file_name.ends_with(".csv"));
    let xlsx = c
        .stats
        .export_ledger(authed(
            &t.reviewer,
            pb::ExportLedgerRequest {
                from_date: Some(today_cst()),
                to_date: Some(today_cst()),
                format: pb::LedgerFileFormat::Xlsx as i32,
                county_codes: vec![YAODU, HOUMA],
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    assert!(xlsx.content.starts_with(b"PK"), "a zip container");
    let err = c
        .stats
        .export_ledger(authed(&t.houma, pb::ExportLedgerRequest { county_codes: vec![YAODU], ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["from_date", "to_date", "format"]);
    server.stop().await
}

#[tokio::test]
async fn tokens_for_people_work_without_a_restart_and_rate_limits_answer_with_a_retry_delay() -> anyhow::Result<()> {
    let server = TestServer::start_with(|c| c.token_reload_interval = Duration::from_millis(20)).await?;
    let mut c = server.clients().await?;
    let person = NewToken {
        name: "王芳".into(),
        role: Role::Reviewer,
        counties: vec![YAODU],
        township: None,
        person_id: Some("LF-0042".into()),
        rate_per_minute: Some(2),
    };
    let token = add_token(&server.data_dir, person, &[])?;
    let ask = |c: &mut Clients, token: &str| {
        let mut review = c.review.clone();
        let req = authed(token, pb::ListComplaintsRequest::default());
        async move { review.list_complaints(req).await }
    };
    // The server re-reads the token file by itself; wait a bounded while for it.
    let mut accepted = false;
    for _ in 0..200 {
        match ask(&mut c, &token).await {
            Ok(_) => {
                accepted = true;
                break;
            }
            Err(s) if s.code() == Code::Unauthenticated => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(s) => anyhow::bail!("unexpected {s:?}"),
        }
    }
    assert!(accepted, "the new token was never picked up");
    // Two a minute: the second passes, the third is refused with a retry delay.
    ask(&mut c, &token).await?;
    let limited = ask(&mut c, &token).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    let retry = limited.get_details_retry_info().and_then(|r| r.retry_delay).expect("RetryInfo");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(30), "{retry:?}");
    assert!(zh(&limited).contains("请求过于频繁"), "{}", zh(&limited));

    revoke_token(&server.data_dir, "王芳")?;
    let mut revoked = false;
    for _ in 0..200 {
        match ask(&mut c, &token).await {
            Err(s) if s.code() == Code::Unauthenticated => {
                revoked = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(revoked, "the revoked token kept working");
    server.stop().await
}

#[tokio::test]
async fn reflection_lists_the_new_rpcs() -> anyhow::Result<()> {
    use prost::Message as _;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let server = TestServer::start().await?;
    let c = server.clients().await?;
    let mut reflection = ServerReflectionClient::new(c.channel.clone());
    let mut methods = Vec::new();
    for service in ["linggong.v1.ReviewService", "linggong.v1.AuditService", "linggong.v1.StatsService"] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(service.into())),
        };
        let mut responses = reflection.server_reflection_info(futures::stream::iter([request])).await?.into_inner();
        let response = responses.message().await?.expect("a reflection response");
        let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
            panic!("{response:?}")
        };
        for bytes in files.file_descriptor_proto {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())?;
            for s in &file.service {
                methods.extend(s.method.iter().map(|m| format!("{}/{}", s.name(), m.name())));
            }
        }
    }
    for m in [
        "ReviewService/ListComplaints",
        "ReviewService/ListEmployers",
        "AuditService/GetHistory",
        "StatsService/ExportLedger",
    ] {
        assert!(methods.iter().any(|x| x == m), "{m} missing from {methods:?}");
    }
    server.stop().await
}
