//! End-to-end tests of the gRPC API against an in-process server on an
//! ephemeral loopback port: every RPC, authentication and scope, validation
//! with named fields, idempotent retries and stale posting versions.

use linggong_server::proto::v1 as pb;
use linggong_tests::*;
use std::collections::HashSet;
use std::time::Duration;
use tonic::Code;

fn porter_group(prefix: &str, count: usize) -> WorkerGroup<'_> {
    WorkerGroup { prefix, count, county: YAODU, trade: "porter", centre: YAODU_SEAT, spread_m: 2_000.0 }
}

#[tokio::test]
async fn every_rpc_works_end_to_end() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;

    // Review: employers.
    let created = c
        .review
        .upsert_employer(authed(
            &t.operator,
            pb::UpsertEmployerRequest { request_id: "emp-1".into(), employer: Some(employer("e-verified", true)) },
        ))
        .await?
        .into_inner();
    assert!(created.created);
    upsert_employer(&mut c, &t.operator, "e-new", false).await?;

    // Workers.
    let ids = register_workers(&mut c, &t.yaodu, &porter_group("w", 6)).await?;
    let got = c
        .workers
        .get_worker(authed(&t.yaodu, pb::GetWorkerRequest { worker_id: ids[0].clone(), ..Default::default() }))
        .await?;
    let w = got.into_inner().worker.expect("worker");
    assert_eq!(w.status, pb::WorkerStatus::Waiting as i32);
    assert_eq!(w.phone, "13812345678", "the worker's own county sees the phone");
    match c
        .workers
        .get_worker(authed(&t.houma, pb::GetWorkerRequest { worker_id: ids[0].clone(), ..Default::default() }))
        .await
    {
        Ok(r) => assert_ne!(r.into_inner().worker.expect("worker").phone, "13812345678", "other counties see a mask"),
        Err(s) => assert_eq!(s.code(), Code::PermissionDenied),
    }
    let moved = c
        .workers
        .update_worker_location(authed(
            &t.yaodu,
            pb::UpdateWorkerLocationRequest {
                request_id: String::new(),
                worker_id: ids[5].clone(),
                position: Some(offset(YAODU_SEAT, 100.0, 100.0)),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(moved.status, pb::WorkerStatus::Waiting as i32);
    let away = c
        .workers
        .set_availability(authed(
            &t.yaodu,
            pb::SetAvailabilityRequest {
                request_id: String::new(),
                worker_id: ids[5].clone(),
                available: false,
                window: None,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(away.status, pb::WorkerStatus::Away as i32);
    let withdrawn = c
        .workers
        .withdraw_worker(authed(
            &t.yaodu,
            pb::WithdrawWorkerRequest { request_id: String::new(), worker_id: ids[5].clone() },
        ))
        .await?
        .into_inner();
    assert!(!withdrawn.late_cancellation);

    // Postings: review of an unverified employer's posting.
    let pending = submit_posting(
        &mut c,
        &t.yaodu,
        posting("p-review", "e-new", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 1),
    )
    .await?;
    assert_eq!(pending.state, pb::PostingState::PendingReview as i32);
    assert_eq!(pending.reviewed_by, "");
    let listed = c
        .review
        .list_pending_postings(authed(
            &t.reviewer,
            pb::ListPendingPostingsRequest {
                county_code: YAODU,
                page_size: 10,
                page_token: String::new(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    assert!(listed.postings.iter().any(|p| p.posting_id == "p-review"));
    let reviewed = c
        .review
        .review_posting(authed(
            &t.reviewer,
            pb::ReviewPostingRequest {
                request_id: String::new(),
                posting_id: "p-review".into(),
                decision: pb::ReviewDecision::Approve as i32,
                reason: String::new(),
            },
        ))
        .await?
        .into_inner();
    let reviewed = reviewed.posting.expect("posting");
    assert_eq!(reviewed.state, pb::PostingState::Published as i32);
    // The reviewer (the token's name) and the time of the decision are kept.
    assert_eq!(reviewed.reviewed_by, "reviewer");
    assert!(reviewed.review_time.is_some());

    // A verified employer's posting is published at once; update it to version 2.
    let p1 =
        submit_posting(&mut c, &t.yaodu, posting("p1", "e-verified", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 1))
            .await?;
    assert_eq!(p1.state, pb::PostingState::Published as i32);
    let mut v2 = posting("p1", "e-verified", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 2);
    v2.version = 2;
    let updated = c
        .postings
        .update_posting(authed(&t.yaodu, pb::UpdatePostingRequest { request_id: String::new(), posting: Some(v2) }))
        .await?
        .into_inner();
    let updated = updated.posting.expect("posting");
    assert_eq!((updated.version, updated.headcount), (2, 2));
    let fetched = c
        .postings
        .get_posting(authed(&t.yaodu, pb::GetPostingRequest { posting_id: "p1".into(), ..Default::default() }))
        .await?
        .into_inner()
        .posting
        .expect("posting");
    assert_eq!(fetched.version, 2);

    // Matching and the offer lifecycle.
    let matched = c
        .matches
        .instant_match(authed(
            &t.yaodu,
            pb::InstantMatchRequest { request_id: String::new(), posting_id: "p1".into(), max_offers: 0 },
        ))
        .await?
        .into_inner();
    assert_eq!(matched.offers.len(), 2, "{matched:?}");
    assert!(matched.offer_deadline.is_some());
    assert!(matched.offers.iter().all(|o| o.distance_m < 3_000 && o.posting_id == "p1"));
    let (first, second) = (&matched.offers[0], &matched.offers[1]);
    let accepted = c
        .matches
        .respond_to_offer(authed(
            &t.yaodu,
            pb::RespondToOfferRequest {
                request_id: String::new(),
                offer_id: first.offer_id,
                worker_id: first.worker_id.clone(),
                response: pb::OfferResponse::Accept as i32,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(accepted.offer_state, pb::OfferState::Accepted as i32);
    let declined = c
        .matches
        .respond_to_offer(authed(
            &t.yaodu,
            pb::RespondToOfferRequest {
                request_id: String::new(),
                offer_id: second.offer_id,
                worker_id: second.worker_id.clone(),
                response: pb::OfferResponse::Decline as i32,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(declined.offer_state, pb::OfferState::Declined as i32);
    let arrived = c
        .matches
        .confirm_arrival(authed(
            &t.yaodu,
            pb::ConfirmArrivalRequest { request_id: String::new(), offer_id: first.offer_id },
        ))
        .await?
        .into_inner();
    assert_eq!(arrived.offer_state, pb::OfferState::Arrived as i32);
    let completed = c
        .matches
        .complete_job(authed(&t.yaodu, pb::CompleteJobRequest { request_id: String::new(), offer_id: first.offer_id }))
        .await?
        .into_inner();
    assert_eq!(completed.offer_state, pb::OfferState::Completed as i32);

    // A no-show on a second posting.
    submit_posting(&mut c, &t.yaodu, posting("p2", "e-verified", "porter", YAODU, offset(YAODU_SEAT, 500.0, 0.0), 1))
        .await?;
    let m2 = c
        .matches
        .instant_match(authed(
            &t.yaodu,
            pb::InstantMatchRequest { request_id: String::new(), posting_id: "p2".into(), max_offers: 1 },
        ))
        .await?
        .into_inner();
    let offer = m2.offers.first().expect("an offer for p2").clone();
    c.matches
        .respond_to_offer(authed(
            &t.yaodu,
            pb::RespondToOfferRequest {
                request_id: String::new(),
                offer_id: offer.offer_id,
                worker_id: offer.worker_id.clone(),
                response: pb::OfferResponse::Accept as i32,
            },
        ))
        .await?;
    let no_show = c
        .matches
        .report_no_show(authed(
            &t.yaodu,
            pb::ReportNoShowRequest { request_id: String::new(), offer_id: offer.offer_id },
        ))
        .await?
        .into_inner();
    assert_eq!(no_show.offer_state, pb::OfferState::NoShow as i32);

    // Listing with pagination sees every Yaodu posting exactly once.
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = c
            .postings
            .list_postings(authed(
                &t.yaodu,
                pb::ListPostingsRequest {
                    county_code: YAODU,
                    page_size: 1,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        seen.extend(page.postings.into_iter().map(|p| p.posting_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["p-review", "p1", "p2"]);

    let cancelled = c
        .postings
        .cancel_posting(authed(
            &t.yaodu,
            pb::CancelPostingRequest {
                request_id: String::new(),
                posting_id: "p-review".into(),
                reason: "雇主取消".into(),
            },
        ))
        .await?
        .into_inner();
    assert_eq!(cancelled.posting.expect("posting").state, pb::PostingState::Cancelled as i32);

    // Complaints and employer standing.
    let complaint = c
        .review
        .file_complaint(authed(
            &t.reviewer,
            pb::FileComplaintRequest {
                request_id: String::new(),
                employer_id: "e-new".into(),
                posting_id: "p-review".into(),
                county_code: YAODU,
                category: pb::ComplaintCategory::WageArrears as i32,
                detail: "拖欠工资".into(),
            },
        ))
        .await?
        .into_inner()
        .complaint
        .expect("complaint");
    let resolved = c
        .review
        .resolve_complaint(authed(
            &t.reviewer,
            pb::ResolveComplaintRequest {
                request_id: String::new(),
                complaint_id: complaint.complaint_id,
                resolution: pb::ComplaintResolution::Upheld as i32,
                note: "已核实".into(),
            },
        ))
        .await?
        .into_inner()
        .complaint
        .expect("complaint");
    assert_eq!(resolved.resolution, pb::ComplaintResolution::Upheld as i32);
    let suspended = c
        .review
        .suspend_employer(authed(
            &t.reviewer,
            pb::SuspendEmployerRequest {
                request_id: String::new(),
                employer_id: "e-new".into(),
                reason: "投诉属实".into(),
            },
        ))
        .await?
        .into_inner();
    assert!(suspended.employer.expect("employer").suspended);
    let reinstated = c
        .review
        .reinstate_employer(authed(
            &t.reviewer,
            pb::ReinstateEmployerRequest { request_id: String::new(), employer_id: "e-new".into() },
        ))
        .await?
        .into_inner();
    assert!(!reinstated.employer.expect("employer").suspended);

    // Statistics reflect all of it.
    let stats =
        c.stats.county_stats(authed(&t.yaodu, pb::CountyStatsRequest { county_code: YAODU })).await?.into_inner();
    assert_eq!(stats.registrations, 6);
    assert!(stats.offers_made >= 3, "{stats:?}");
    assert_eq!((stats.offers_accepted, stats.offers_declined), (2, 1));
    assert_eq!((stats.completions, stats.no_shows), (1, 1));
    assert_eq!((stats.complaints_filed, stats.complaints_resolved), (1, 1));
    let porters = stats.waiting_by_trade.iter().find(|t| t.trade_id == "porter").expect("porter row");
    let waiting_now = server.running().host.read_engine(|e| e.waiting_count()) as u32;
    assert_eq!(porters.waiting_workers, waiting_now);

    // The offer stream, read from the beginning, holds p1's completed offer.
    let mut stream = c
        .matches
        .watch_offers(authed(&t.yaodu, pb::WatchOffersRequest { county_code: YAODU, after_seq: Some(0) }))
        .await?
        .into_inner();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = stream.message().await? {
            if message
                .event
                .is_some_and(|e| e.offer_id == first.offer_id && e.state == pb::OfferState::Completed as i32)
            {
                return Ok::<_, tonic::Status>(true);
            }
        }
        Ok(false)
    })
    .await??;
    assert!(found, "the completed offer is in the offer stream");
    drop(stream);
    server.stop().await
}

#[tokio::test]
async fn callers_are_authenticated_and_kept_in_scope() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;
    let yaodu_worker = || pb::RegisterWorkerRequest {
        request_id: String::new(),
        worker: Some(worker("w-scope", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0))),
    };

    // No token, an unknown token, a token without the scheme.
    let status = c.workers.register_worker(tonic::Request::new(yaodu_worker())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = c.workers.register_worker(authed("lg_not_a_token", yaodu_worker())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut bare = tonic::Request::new(yaodu_worker());
    bare.metadata_mut().insert("authorization", t.yaodu.parse()?);
    assert_eq!(c.workers.register_worker(bare).await.unwrap_err().code(), Code::Unauthenticated);

    // Wrong county: Houma may not register a Yaodu worker; nothing is applied.
    let status = c.workers.register_worker(authed(&t.houma, yaodu_worker())).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = c
        .workers
        .get_worker(authed(&t.operator, pb::GetWorkerRequest { worker_id: "w-scope".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Wrong role: a station registers no workers; a county reviews nothing; a reviewer matches nothing.
    let status = c.workers.register_worker(authed(&t.yaodu_station, yaodu_worker())).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    c.workers.register_worker(authed(&t.yaodu, yaodu_worker())).await?;
    let station_posting = |id: &str, county: u32, township: &str| {
        let mut p = posting(
            id,
            "e1",
            "porter",
            county,
            offset(if county == YAODU { YAODU_SEAT } else { HOUMA_SEAT }, 0.0, 0.0),
            1,
        );
        p.township_code = township.into();
        p.source = pb::PostingSource::TownshipStation as i32;
        p
    };
    let own = submit_posting(&mut c, &t.yaodu_station, station_posting("ps-own", YAODU, YAODU_TOWNSHIP)).await?;
    assert_eq!(own.posting_id, "ps-own");
    let status = c
        .review
        .review_posting(authed(
            &t.yaodu,
            pb::ReviewPostingRequest {
                request_id: String::new(),
                posting_id: "ps-own".into(),
                decision: pb::ReviewDecision::Approve as i32,
                reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = c
        .matches
        .instant_match(authed(
            &t.reviewer,
            pb::InstantMatchRequest { request_id: String::new(), posting_id: "ps-own".into(), max_offers: 0 },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // A station pushes postings only in its own county and township.
    for (id, county, township) in [("ps-town", YAODU, "141002002"), ("ps-county", HOUMA, "141081001")] {
        let status = c
            .postings
            .submit_posting(authed(
                &t.yaodu_station,
                pb::SubmitPostingRequest {
                    request_id: String::new(),
                    posting: Some(station_posting(id, county, township)),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{id}: {status:?}");
        let status = c
            .postings
            .get_posting(authed(&t.operator, pb::GetPostingRequest { posting_id: id.into(), ..Default::default() }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id} was not stored");
    }
    // A county system outside its county cannot match or watch there.
    let status = c
        .matches
        .instant_match(authed(
            &t.houma,
            pb::InstantMatchRequest { request_id: String::new(), posting_id: "ps-own".into(), max_offers: 0 },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = c
        .postings
        .watch_postings(authed(&t.houma, pb::WatchPostingsRequest { county_code: YAODU, after_seq: None }))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    server.stop().await
}

#[tokio::test]
async fn invalid_requests_name_the_field_and_change_nothing() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;

    let register =
        |w: pb::Worker| authed(&t.yaodu, pb::RegisterWorkerRequest { request_id: String::new(), worker: Some(w) });
    let base = || worker("w-bad", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0));

    let mut nan = base();
    nan.position = Some(pb::LatLon { lat: f64::NAN, lon: 111.5, ..Default::default() });
    let mut far = base();
    far.position = Some(pb::LatLon { lat: 95.0, lon: 111.5, ..Default::default() });
    let mut trade = base();
    trade.trades[0].trade_id = "astronaut".into();
    let mut county = base();
    county.county_code = 999_999;
    let mut hardship = base();
    hardship.hardship = 99;
    let mut unspecified = base();
    unspecified.hardship = pb::Hardship::Unspecified as i32;
    let mut no_id = base();
    no_id.worker_id = String::new();
    let mut long_name = base();
    long_name.display_name = "名".repeat(200);
    let cases = [
        (nan, "worker.position"),
        (far, "worker.position"),
        (trade, "worker.trades"),
        (county, "worker.county_code"),
        (hardship, "worker.hardship"),
        (unspecified, "worker.hardship"),
        (no_id, "worker.worker_id"),
        (long_name, "worker.display_name"),
    ];
    for (w, field) in cases {
        let status = c.workers.register_worker(register(w)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let fields = violated_fields(&status);
        assert!(fields.iter().any(|f| f.starts_with(field)), "expected a violation of {field}, got {fields:?}");
    }

    let submit =
        |p: pb::Posting| authed(&t.yaodu, pb::SubmitPostingRequest { request_id: String::new(), posting: Some(p) });
    let base = || posting("p-bad", "e1", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 1);
    let mut zero = base();
    zero.headcount = 0;
    let mut many = base();
    many.headcount = 51;
    let mut text = base();
    text.description = "x".repeat(3_000);
    let mut source = base();
    source.source = 42;
    let mut no_start = base();
    no_start.start_time = None;
    for (p, field) in [
        (zero, "posting.headcount"),
        (many, "posting.headcount"),
        (text, "posting.description"),
        (source, "posting.source"),
        (no_start, "posting.start_time"),
    ] {
        let status = c.postings.submit_posting(submit(p)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let fields = violated_fields(&status);
        assert!(fields.iter().any(|f| f.starts_with(field)), "expected a violation of {field}, got {fields:?}");
    }
    let status = c
        .matches
        .instant_match(authed(
            &t.yaodu,
            pb::InstantMatchRequest { request_id: String::new(), posting_id: String::new(), max_offers: 0 },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(violated_fields(&status).iter().any(|f| f == "posting_id"), "{status:?}");

    // A message over the 64 KiB limit is refused before it is decoded.
    let mut huge = worker("w-huge", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0));
    huge.display_name = "x".repeat(70 * 1024);
    let status = c.workers.register_worker(register(huge)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Nothing was applied: no worker, no posting, no registration counted.
    let (workers, postings, last_seq) =
        server.running().host.read(|s| (s.engine().worker_count(), s.engine().postings().len(), s.last_seq()));
    assert_eq!((workers, postings), (0, 0));
    assert_eq!(last_seq, 1, "only the employer upsert was logged");
    let stats =
        c.stats.county_stats(authed(&t.yaodu, pb::CountyStatsRequest { county_code: YAODU })).await?.into_inner();
    assert_eq!(stats.registrations, 0);
    // Unknown ids are NOT_FOUND.
    let status = c
        .workers
        .get_worker(authed(&t.yaodu, pb::GetWorkerRequest { worker_id: "nobody".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    server.stop().await
}

#[tokio::test]
async fn retries_with_the_same_request_id_apply_once() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;

    let request = pb::RegisterWorkerRequest {
        request_id: "reg-42".into(),
        worker: Some(worker("w-retry", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0))),
    };
    let first = c.workers.register_worker(authed(&t.yaodu, request.clone())).await?.into_inner();
    let second = c.workers.register_worker(authed(&t.yaodu, request)).await?.into_inner();
    assert!(first.created);
    assert_eq!(first, second, "a retry returns the first result");
    register_workers(&mut c, &t.yaodu, &porter_group("w", 4)).await?;

    submit_posting(&mut c, &t.yaodu, posting("p-retry", "e1", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 4))
        .await?;
    let match_request =
        pb::InstantMatchRequest { request_id: "match-7".into(), posting_id: "p-retry".into(), max_offers: 2 };
    let m1 = c.matches.instant_match(authed(&t.yaodu, match_request.clone())).await?.into_inner();
    let m2 = c.matches.instant_match(authed(&t.yaodu, match_request)).await?.into_inner();
    assert_eq!(m1.offers.len(), 2);
    assert_eq!(m1, m2, "the retried match returns the same offers");
    let live = server.running().host.read_engine(|e| e.live_offers().len());
    assert_eq!(live, 2, "the retry made no new offers");
    // A new request id is a new match.
    let m3 = c
        .matches
        .instant_match(authed(
            &t.yaodu,
            pb::InstantMatchRequest { request_id: "match-8".into(), posting_id: "p-retry".into(), max_offers: 2 },
        ))
        .await?
        .into_inner();
    assert_eq!(m3.offers.len(), 2);
    let first_ids: HashSet<_> = m1.offers.iter().map(|o| &o.worker_id).collect();
    assert!(m3.offers.iter().all(|o| !first_ids.contains(&o.worker_id)));

    let stats =
        c.stats.county_stats(authed(&t.yaodu, pb::CountyStatsRequest { county_code: YAODU })).await?.into_inner();
    assert_eq!(stats.registrations, 5);
    assert_eq!(stats.offers_made, 4);
    server.stop().await
}

/// The `google.rpc.ErrorInfo` reason of a status, if it has one.
fn error_reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status.get_details_error_info().map(|info| info.reason)
}

#[tokio::test]
async fn a_reused_request_id_with_a_different_request_is_refused() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    let a = worker("w-a", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0));
    let register =
        |worker: &pb::Worker| pb::RegisterWorkerRequest { request_id: "reg-x".into(), worker: Some(worker.clone()) };
    let first = c.workers.register_worker(authed(&t.yaodu, register(&a))).await?.into_inner();
    assert!(first.created);
    let refused_as_reused = |status: tonic::Status, what: &str| {
        assert_eq!(status.code(), Code::FailedPrecondition, "{what}: {status:?}");
        assert_eq!(error_reason(&status).as_deref(), Some("REQUEST_ID_REUSED"), "{what}: {status:?}");
    };
    // The same id with a renamed worker, or with another worker: refused, never OK.
    let renamed = pb::Worker { display_name: "改名".into(), ..a.clone() };
    refused_as_reused(c.workers.register_worker(authed(&t.yaodu, register(&renamed))).await.unwrap_err(), "rename");
    let b = worker("w-b", YAODU, "porter", offset(YAODU_SEAT, 10.0, 0.0));
    refused_as_reused(c.workers.register_worker(authed(&t.yaodu, register(&b))).await.unwrap_err(), "other worker");
    let stored = c
        .workers
        .get_worker(authed(&t.yaodu, pb::GetWorkerRequest { worker_id: "w-a".into(), ..Default::default() }))
        .await?;
    assert_eq!(stored.into_inner().worker.expect("worker").display_name, a.display_name, "the rename was not applied");
    // The employer, market and suspension RPCs refuse the same way.
    let upsert =
        |id: &str| pb::UpsertEmployerRequest { request_id: "emp-x".into(), employer: Some(employer(id, true)) };
    c.review.upsert_employer(authed(&t.operator, upsert("e1"))).await?;
    refused_as_reused(c.review.upsert_employer(authed(&t.operator, upsert("e2"))).await.unwrap_err(), "employer");

    // The retry with the same request still answers the first result, also
    // after a restart (state rebuilt from the snapshot and the log).
    let again = c.workers.register_worker(authed(&t.yaodu, register(&a))).await?.into_inner();
    assert_eq!(again, first);
    server.restart().await?;
    let mut c = server.clients().await?;
    let again = c.workers.register_worker(authed(&t.yaodu, register(&a))).await?.into_inner();
    assert_eq!(again, first, "the retry after a restart returns the first result");
    refused_as_reused(c.workers.register_worker(authed(&t.yaodu, register(&renamed))).await.unwrap_err(), "restart");
    server.stop().await
}

/// Whether a call answered within `within` with what it looked for: `Ok(true)`
/// found, `Ok(false)` answered without it, `Err` not answered yet.
async fn shows<T>(
    within: Duration,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    found: impl FnOnce(&T) -> bool,
) -> Result<bool, tokio::time::error::Elapsed> {
    tokio::time::timeout(within, call).await.map(|answer| match answer {
        Ok(answer) => found(&answer),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
            false
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_show_only_durable_state() -> anyhow::Result<()> {
    let storage = linggong_server::wal::HoldableStorage::new();
    let held = storage.clone();
    let server = TestServer::start_with(move |c| c.wal_storage = std::sync::Arc::new(held)).await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    register_workers(&mut c, &t.yaodu, &porter_group("w", 1)).await?;

    // With fsync held, a registration is not durable, so not acknowledged.
    let held = storage.hold();
    let mut writer = c.clone();
    let token = t.yaodu.clone();
    let mut registration = tokio::spawn(async move {
        let w = worker("w-late", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0));
        let request = pb::RegisterWorkerRequest { request_id: String::new(), worker: Some(w) };
        writer.workers.register_worker(authed(&token, request)).await
    });
    let pending = tokio::time::timeout(Duration::from_millis(300), &mut registration).await;
    assert!(pending.is_err(), "a registration was acknowledged before it was durable: {pending:?}");

    // A read now must not show it.
    let get = |id: &str| authed(&t.yaodu, pb::GetWorkerRequest { worker_id: id.into(), ..Default::default() });
    let mut reader = c.workers.clone();
    let is_late = |w: &tonic::Response<pb::GetWorkerResponse>| w.get_ref().worker.is_some();
    let early = shows(Duration::from_millis(300), reader.get_worker(get("w-late")), is_late).await;
    assert!(!matches!(early, Ok(true)), "a read showed state that is not durable");
    drop(held);
    assert!(registration.await??.into_inner().created);
    let found = c.workers.get_worker(get("w-late")).await?.into_inner().worker.expect("worker");
    assert_eq!(found.worker_id, "w-late");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_show_only_durable_state() -> anyhow::Result<()> {
    let storage = linggong_server::wal::HoldableStorage::new();
    let held = storage.clone();
    let server = TestServer::start_with(move |c| c.wal_storage = std::sync::Arc::new(held)).await?;
    let t = server.tokens.clone();
    let c = server.clients().await?;

    // With fsync held, a worker and an employer are not durable, so not acknowledged.
    let held = storage.hold();
    let mut registration = tokio::spawn({
        let (mut workers, token) = (c.workers.clone(), t.yaodu.clone());
        let w = pb::Worker {
            phone: "139-2222 3333".into(),
            ..worker("w-late", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0))
        };
        async move {
            workers
                .register_worker(authed(&token, pb::RegisterWorkerRequest { worker: Some(w), ..Default::default() }))
                .await
        }
    });
    let upsert = tokio::spawn({
        let (mut review, token) = (c.review.clone(), t.operator.clone());
        let request = pb::UpsertEmployerRequest { employer: Some(employer("e-late", true)), ..Default::default() };
        async move { review.upsert_employer(authed(&token, request)).await }
    });
    let pending = tokio::time::timeout(Duration::from_millis(300), &mut registration).await;
    assert!(pending.is_err(), "a registration was acknowledged before it was durable: {pending:?}");

    // Look-ups do not show what is not durable.
    let find = {
        let (workers, token) = (c.workers.clone(), t.yaodu.clone());
        move || {
            let mut workers = workers.clone();
            let req = pb::FindWorkersByPhoneRequest { phone: "13922223333".into(), ..Default::default() };
            let token = token.clone();
            async move { workers.find_workers_by_phone(authed(&token, req)).await }
        }
    };
    let get_employer = {
        let (review, token) = (c.review.clone(), t.operator.clone());
        move || {
            let mut review = review.clone();
            let req = pb::GetEmployerRequest { employer_id: "e-late".into() };
            let token = token.clone();
            async move { review.get_employer(authed(&token, req)).await }
        }
    };
    let list_employers = {
        let (review, token) = (c.review.clone(), t.operator.clone());
        move || {
            let mut review = review.clone();
            let token = token.clone();
            async move { review.list_employers(authed(&token, pb::ListEmployersRequest::default())).await }
        }
    };
    let within = Duration::from_millis(300);
    let found_late = |r: &tonic::Response<pb::FindWorkersByPhoneResponse>| !r.get_ref().workers.is_empty();
    let early = shows(within, find(), found_late).await;
    assert!(!matches!(early, Ok(true)), "FindWorkersByPhone showed state that is not durable");
    let early = shows(within, get_employer(), |r| r.get_ref().employer.is_some()).await;
    assert!(!matches!(early, Ok(true)), "GetEmployer showed state that is not durable");
    let listed_late = |r: &tonic::Response<pb::ListEmployersResponse>| {
        r.get_ref().employers.iter().any(|e| e.employer_id == "e-late")
    };
    let early = shows(within, list_employers(), listed_late).await;
    assert!(!matches!(early, Ok(true)), "ListEmployers showed state that is not durable");

    drop(held);
    assert!(registration.await??.into_inner().created);
    assert!(upsert.await??.into_inner().created);
    let found = find().await?.into_inner().workers;
    assert_eq!(found.iter().map(|w| w.worker_id.as_str()).collect::<Vec<_>>(), ["w-late"]);
    assert_eq!(get_employer().await?.into_inner().employer.expect("employer").employer_id, "e-late");
    assert!(list_employers().await?.into_inner().employers.iter().any(|e| e.employer_id == "e-late"));
    server.stop().await
}

/// Sends raw bytes as the body of a unary call (as a client with a broken encoder would).
#[derive(Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = prost::bytes::Buf::copy_to_bytes(buf, prost::bytes::Buf::remaining(buf));
        Ok(Some(bytes.to_vec()))
    }
}

#[tokio::test]
async fn garbage_bytes_are_invalid_argument_and_oversize_messages_name_the_limit() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let c = server.clients().await?;
    let mut grpc = tonic::client::Grpc::new(c.channel.clone());
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/linggong.v1.WorkerService/RegisterWorker");
    // Field 1 with wire type 6 (invalid), an end-group tag with no group, a length running past the end.
    for garbage in [vec![0x0e, 0x01], vec![0x0c], vec![0x0a, 0x7f, 0x01]] {
        grpc.ready().await?;
        let status = grpc.unary(authed(&t.yaodu, garbage.clone()), path.clone(), RawCodec).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{garbage:?}: {status:?}");
        assert!(status.message().contains("could not decode the request body"), "{garbage:?}: {status:?}");
    }
    // A message over the limit is RESOURCE_EXHAUSTED naming the limit and the size received.
    for size in [70 * 1024, 1024 * 1024] {
        grpc.ready().await?;
        let status = grpc.unary(authed(&t.yaodu, vec![0u8; size]), path.clone(), RawCodec).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{size}: {status:?}");
        let message = status.message();
        assert!(message.contains("65536") && message.contains(&size.to_string()), "{size}: {message}");
    }
    let (workers, last_seq) = server.running().host.read(|s| (s.engine().worker_count(), s.last_seq()));
    assert_eq!((workers, last_seq), (0, 0), "nothing was applied");
    server.stop().await
}

#[tokio::test]
async fn a_station_pushing_an_older_version_gets_the_current_one() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;
    let versioned = |version: u64, headcount: u32| {
        let mut p = posting("p-station", "e1", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), headcount);
        p.township_code = YAODU_TOWNSHIP.into();
        p.source = pb::PostingSource::TownshipStation as i32;
        p.version = version;
        p
    };
    submit_posting(&mut c, &t.yaodu_station, versioned(3, 1)).await?;
    for stale in [1, 2] {
        let status = c
            .postings
            .update_posting(authed(
                &t.yaodu_station,
                pb::UpdatePostingRequest { request_id: String::new(), posting: Some(versioned(stale, 2)) },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains('3'), "the message gives the current version: {}", status.message());
        let trailer = status.metadata().get("linggong-current-version").map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(trailer.as_deref(), Some("3"));
    }
    let current = c
        .postings
        .get_posting(authed(
            &t.yaodu_station,
            pb::GetPostingRequest { posting_id: "p-station".into(), ..Default::default() },
        ))
        .await?
        .into_inner()
        .posting
        .expect("posting");
    assert_eq!((current.version, current.headcount), (3, 1), "the stale updates changed nothing");
    let updated = c
        .postings
        .update_posting(authed(
            &t.yaodu_station,
            pb::UpdatePostingRequest { request_id: String::new(), posting: Some(versioned(4, 2)) },
        ))
        .await?
        .into_inner()
        .posting
        .expect("posting");
    assert_eq!((updated.version, updated.headcount), (4, 2));
    server.stop().await
}
