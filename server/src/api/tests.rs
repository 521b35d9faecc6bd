//! In-process tests of the API: a host on a temporary directory served on a
//! loopback port, driven through the generated clients.

use super::errors::{CURRENT_VERSION_TRAILER, OLDEST_SEQ_TRAILER};
use super::{routes, ApiContext};
use crate::auth::{hash_token, Auth, Role, TokenConfig};
use crate::host::{Host, HostConfig};
use crate::metrics::RpcMetrics;
use crate::proto::v1 as pb;
use crate::wal::Durability;
use linggong_engine::{Availability, Command, EngineError, Hardship, LatLon, Timestamp, TradeSkillSpec, WorkerSpec};
use pb::match_service_client::MatchServiceClient;
use pb::posting_service_client::PostingServiceClient;
use pb::review_service_client::ReviewServiceClient;
use pb::stats_service_client::StatsServiceClient;
use pb::worker_service_client::WorkerServiceClient;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Status, Streaming};
use tonic_types::StatusExt;

/// The virtual time every command is applied at.
const NOW_MS: i64 = 1_700_000_000_000;
const YAODU: u32 = 141002;
const HOUMA: u32 = 141081;
const TOWNSHIP: &str = "141002100";

const OPERATOR: &str = "operator-token";
const YAODU_COUNTY: &str = "yaodu-county-token";
const HOUMA_COUNTY: &str = "houma-county-token";
const STATION: &str = "yaodu-station-token";
const REVIEWER: &str = "reviewer-token";

struct TestServer {
    channel: Channel,
    host: Arc<Host>,
    rpc_metrics: Arc<RpcMetrics>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn token(name: &str, raw: &str, role: Role, counties: Vec<u32>, township: Option<&str>) -> TokenConfig {
    TokenConfig { township: township.map(String::from), ..TokenConfig::new(name, hash_token(raw), role, counties) }
}

async fn start(event_history: usize) -> TestServer {
    start_clocked(event_history, Arc::new(AtomicI64::new(NOW_MS))).await
}

/// A server whose clock reads `clock` (milliseconds), which the test advances.
async fn start_clocked(event_history: usize, clock: Arc<AtomicI64>) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = HostConfig::new(dir.path());
    config.durability = Durability::None;
    config.event_history = event_history;
    config.clock = Arc::new(move || Timestamp(clock.load(Ordering::SeqCst)));
    let host = Host::open(config).await.expect("host opens");
    let auth = Auth::new(&[
        token("operator", OPERATOR, Role::Operator, vec![], None),
        token("yaodu", YAODU_COUNTY, Role::County, vec![YAODU], None),
        token("houma", HOUMA_COUNTY, Role::County, vec![HOUMA], None),
        token("station", STATION, Role::Station, vec![YAODU], Some(TOWNSHIP)),
        token("reviewer", REVIEWER, Role::Reviewer, vec![], None),
    ])
    .expect("tokens");
    let rpc_metrics = Arc::new(RpcMetrics::default());
    let ctx = Arc::new(ApiContext { host: host.clone(), auth: Arc::new(auth), rpc_metrics: rpc_metrics.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(Server::builder().add_routes(routes(ctx)).serve_with_incoming_shutdown(
        TcpListenerStream::new(listener),
        async {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    TestServer { channel, host, rpc_metrics, stop: Some(stop), _dir: dir }
}

impl TestServer {
    fn workers(&self) -> WorkerServiceClient<Channel> {
        WorkerServiceClient::new(self.channel.clone())
    }
    fn postings(&self) -> PostingServiceClient<Channel> {
        PostingServiceClient::new(self.channel.clone())
    }
    fn matching(&self) -> MatchServiceClient<Channel> {
        MatchServiceClient::new(self.channel.clone())
    }
    fn review(&self) -> ReviewServiceClient<Channel> {
        ReviewServiceClient::new(self.channel.clone())
    }
    fn stats(&self) -> StatsServiceClient<Channel> {
        StatsServiceClient::new(self.channel.clone())
    }
    fn last_seq(&self) -> u64 {
        self.host.read(|s| s.last_seq())
    }
}

fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().expect("ascii token");
    request.metadata_mut().insert("authorization", value);
    request
}

fn worker(id: &str, county: u32, lat: f64, lon: f64) -> pb::Worker {
    pb::Worker {
        worker_id: id.into(),
        display_name: format!("worker {id}"),
        phone: "13812341234".into(),
        trades: vec![pb::TradeSkill { trade_id: "mason".into(), level: 3 }],
        position: Some(pb::LatLon { lat, lon, ..Default::default() }),
        county_code: county,
        hardship: pb::Hardship::None as i32,
        ..Default::default()
    }
}

fn posting(id: &str, version: u64) -> pb::Posting {
    pb::Posting {
        posting_id: id.into(),
        employer_id: "builder".into(),
        trade_id: "mason".into(),
        headcount: 1,
        position: Some(pb::LatLon { lat: 36.08, lon: 111.52, ..Default::default() }),
        county_code: YAODU,
        township_code: TOWNSHIP.into(),
        max_distance_m: 20_000,
        daily_wage_yuan: 260,
        start_time: Some(prost_types::Timestamp { seconds: NOW_MS / 1000 + 3600, nanos: 0 }),
        duration_minutes: 480,
        source: pb::PostingSource::TownshipStation as i32,
        version,
        ..Default::default()
    }
}

async fn add_employer(server: &TestServer, verified: bool) {
    let employer = pb::Employer {
        employer_id: "builder".into(),
        display_name: "尧都建筑队".into(),
        kind: pb::EmployerKind::Individual as i32,
        verified,
        ..Default::default()
    };
    let request = pb::UpsertEmployerRequest { request_id: "employer-1".into(), employer: Some(employer) };
    let response = server.review().upsert_employer(authed(REVIEWER, request)).await.expect("employer upserted");
    assert!(response.into_inner().created);
}

async fn submit(server: &TestServer, token: &str, posting: pb::Posting) -> Result<pb::Posting, Status> {
    let request = pb::SubmitPostingRequest { request_id: String::new(), posting: Some(posting) };
    let response = server.postings().submit_posting(authed(token, request)).await?;
    Ok(response.into_inner().posting.expect("posting in response"))
}

async fn register(
    server: &TestServer,
    token: &str,
    request_id: &str,
    w: pb::Worker,
) -> Result<pb::RegisterWorkerResponse, Status> {
    let request = pb::RegisterWorkerRequest { request_id: request_id.into(), worker: Some(w) };
    Ok(server.workers().register_worker(authed(token, request)).await?.into_inner())
}

/// The next message of a watch, failing the test after a bounded wait.
async fn next<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message within 10 s")
        .expect("stream healthy")
        .expect("stream open")
}

/// The next posting event, skipping position markers.
async fn next_posting_event(stream: &mut Streaming<pb::WatchPostingsResponse>) -> (u64, pb::PostingEvent) {
    loop {
        let message = next(stream).await;
        if let Some(event) = message.event {
            return (message.seq, event);
        }
    }
}

#[tokio::test]
async fn missing_or_unknown_tokens_and_wrong_roles_or_scopes_are_refused() {
    let server = start(1000).await;
    let no_token = Request::new(pb::GetWorkerRequest { worker_id: "w".into(), ..Default::default() });
    assert_eq!(server.workers().get_worker(no_token).await.unwrap_err().code(), Code::Unauthenticated);
    let bad = authed("not-a-token", pb::GetWorkerRequest { worker_id: "w".into(), ..Default::default() });
    assert_eq!(server.workers().get_worker(bad).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(server.rpc_metrics.count("GetWorker", Code::Unauthenticated), 2);

    // A station may not register workers; a county only in its own counties.
    let err = register(&server, STATION, "", worker("w1", YAODU, 36.08, 111.52)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = register(&server, HOUMA_COUNTY, "", worker("w1", YAODU, 36.08, 111.52)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    register(&server, YAODU_COUNTY, "", worker("w1", YAODU, 36.08, 111.52)).await.expect("own county");
    // Houma may not move Yaodu's worker either.
    let request = pb::UpdateWorkerLocationRequest {
        request_id: String::new(),
        worker_id: "w1".into(),
        position: Some(pb::LatLon { lat: 35.6, lon: 111.3, ..Default::default() }),
    };
    let err = server.workers().update_worker_location(authed(HOUMA_COUNTY, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A station pushes postings only in its own township.
    add_employer(&server, false).await;
    let elsewhere = pb::Posting { township_code: "141002200".into(), ..posting("p-away", 1) };
    assert_eq!(submit(&server, STATION, elsewhere).await.unwrap_err().code(), Code::PermissionDenied);
    // Reviewers may not match; stations may not read statistics.
    let request = pb::InstantMatchRequest { posting_id: "p".into(), ..Default::default() };
    let err = server.matching().instant_match(authed(REVIEWER, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let request = pb::CountyStatsRequest { county_code: YAODU };
    let err = server.stats().county_stats(authed(STATION, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(server.rpc_metrics.count("CountyStats", Code::PermissionDenied), 1);
}

#[tokio::test]
async fn register_submit_approve_match_accept_and_complete() {
    let server = start(1000).await;
    add_employer(&server, false).await;
    let near = register(&server, YAODU_COUNTY, "reg-near", worker("near", YAODU, 36.085, 111.52)).await.unwrap();
    assert!(near.created);
    assert_eq!(near.worker.unwrap().phone, "13812341234", "own county sees the phone");
    register(&server, HOUMA_COUNTY, "reg-far", worker("far", HOUMA, 36.2, 111.52)).await.unwrap();

    let mut watch = server
        .postings()
        .watch_postings(authed(STATION, pb::WatchPostingsRequest { county_code: YAODU, after_seq: None }))
        .await
        .expect("watch opens")
        .into_inner();

    let submitted = submit(&server, STATION, posting("p-1", 1)).await.expect("submitted");
    assert_eq!(submitted.state, pb::PostingState::PendingReview as i32);
    let (_, event) = next_posting_event(&mut watch).await;
    assert_eq!((event.posting_id.as_str(), event.state), ("p-1", pb::PostingState::PendingReview as i32));

    let pending = server
        .review()
        .list_pending_postings(authed(REVIEWER, pb::ListPendingPostingsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.postings.iter().map(|p| p.posting_id.as_str()).collect::<Vec<_>>(), ["p-1"]);
    let approve = pb::ReviewPostingRequest {
        request_id: "approve-p-1".into(),
        posting_id: "p-1".into(),
        decision: pb::ReviewDecision::Approve as i32,
        reason: String::new(),
    };
    let reviewed = server.review().review_posting(authed(REVIEWER, approve)).await.unwrap().into_inner();
    assert_eq!(reviewed.posting.unwrap().state, pb::PostingState::Published as i32);
    let (_, event) = next_posting_event(&mut watch).await;
    assert_eq!(event.state, pb::PostingState::Published as i32);

    let matched = server
        .matching()
        .instant_match(authed(
            YAODU_COUNTY,
            pb::InstantMatchRequest { request_id: "match-1".into(), posting_id: "p-1".into(), max_offers: 0 },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(matched.offers.len(), 1);
    let offer = &matched.offers[0];
    assert_eq!(offer.worker_id, "near");
    assert!((400..700).contains(&offer.distance_m), "about 556 m: {}", offer.distance_m);
    assert_eq!(matched.offer_deadline, offer.answer_deadline);
    assert!(matched.offer_deadline.unwrap().seconds > NOW_MS / 1000);
    assert_eq!(matched.remaining_slots, 0);

    let accept = pb::RespondToOfferRequest {
        request_id: "accept".into(),
        offer_id: offer.offer_id,
        worker_id: "near".into(),
        response: pb::OfferResponse::Accept as i32,
    };
    let accepted = server.matching().respond_to_offer(authed(YAODU_COUNTY, accept)).await.unwrap().into_inner();
    assert_eq!(accepted.offer_state, pb::OfferState::Accepted as i32);
    assert_eq!(accepted.posting_state, pb::PostingState::Filled as i32);
    let arrive = pb::ConfirmArrivalRequest { request_id: String::new(), offer_id: offer.offer_id };
    let arrived = server.matching().confirm_arrival(authed(YAODU_COUNTY, arrive)).await.unwrap().into_inner();
    assert_eq!(arrived.offer_state, pb::OfferState::Arrived as i32);
    let complete = pb::CompleteJobRequest { request_id: String::new(), offer_id: offer.offer_id };
    let completed = server.matching().complete_job(authed(YAODU_COUNTY, complete)).await.unwrap().into_inner();
    assert_eq!(completed.offer_state, pb::OfferState::Completed as i32);

    // Houma's system sees Yaodu's worker with a masked phone.
    let seen = server
        .workers()
        .get_worker(authed(HOUMA_COUNTY, pb::GetWorkerRequest { worker_id: "near".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .worker
        .unwrap();
    assert_eq!(seen.phone, "138****1234");
    assert_eq!(seen.reliability.unwrap().completed, 1);

    let stats = server
        .stats()
        .county_stats(authed(YAODU_COUNTY, pb::CountyStatsRequest { county_code: YAODU }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.offers_made, stats.offers_accepted, stats.postings_filled), (1, 1, 1));
    assert_eq!(stats.completions, 1);
    assert_eq!(stats.median_time_to_fill.map(|d| d.seconds), Some(0), "filled at the virtual instant it was published");
    let filled = stats.postings_by_state.iter().find(|s| s.state == pb::PostingState::Filled as i32).unwrap();
    assert_eq!(filled.postings, 1);
}

/// The fields the engine itself names when it refuses a worker registration.
fn engine_refusal_fields(server: &TestServer, spec: WorkerSpec) -> Vec<String> {
    let mut engine = server.host.read_engine(|e| e.clone());
    match engine.apply(Timestamp(NOW_MS), &Command::UpsertWorker(spec), &mut Vec::new()) {
        Err(EngineError::InvalidArgument(v)) => v.iter().map(|v| v.field.clone()).collect(),
        other => panic!("the engine accepted bad input: {other:?}"),
    }
}

#[tokio::test]
async fn the_engine_and_the_api_refuse_the_same_input_naming_the_same_fields() {
    let server = start(1000).await;
    let good = worker("w-bad", YAODU, 36.08, 111.52);
    let spec = |w: &pb::Worker| WorkerSpec {
        id: w.worker_id.as_str().into(),
        name: w.display_name.as_str().into(),
        phone: w.phone.as_str().into(),
        trades: w
            .trades
            .iter()
            .map(|t| TradeSkillSpec { trade: t.trade_id.as_str().into(), level: t.level as u8 })
            .collect(),
        position: LatLon { lat: 36.08, lon: 111.52 },
        county: w.county_code,
        township: None,
        availability: Availability::ALWAYS,
        min_daily_wage: 0,
        hardship: Hardship::None,
    };
    let cases: Vec<(pb::Worker, Vec<&str>)> = vec![
        // No digits at all (the engine once let this through).
        (pb::Worker { phone: "+- -".into(), ..good.clone() }, vec!["phone"]),
        // A control character in the name (the engine once let this through).
        (pb::Worker { display_name: "王\u{7}五".into(), ..good.clone() }, vec!["display_name"]),
        (pb::Worker { phone: String::new(), ..good.clone() }, vec!["phone"]),
        // Several at once, all reported.
        (
            pb::Worker {
                worker_id: "two words".into(),
                phone: "call me".into(),
                trades: vec![pb::TradeSkill { trade_id: "mason".into(), level: 9 }],
                county_code: 1,
                ..good.clone()
            },
            vec!["worker_id", "phone", "trades[0].level", "county_code"],
        ),
    ];
    let before = server.last_seq();
    for (bad, expected) in cases {
        let from_engine = engine_refusal_fields(&server, spec(&bad));
        assert_eq!(from_engine, expected, "engine");
        let err = register(&server, OPERATOR, "", bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let details = err.get_error_details();
        let from_api: Vec<String> = details
            .bad_request()
            .expect("BadRequest detail")
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        let prefixed: Vec<String> = expected.iter().map(|f| format!("worker.{f}")).collect();
        assert_eq!(from_api, prefixed, "gRPC");
    }
    assert_eq!(server.last_seq(), before, "nothing was logged");
}

#[tokio::test]
async fn validation_names_the_fields_and_changes_nothing() {
    let server = start(1000).await;
    add_employer(&server, true).await;
    let before = server.last_seq();
    let bad = pb::Posting {
        headcount: 0,
        position: Some(pb::LatLon { lat: f64::NAN, lon: 111.5, ..Default::default() }),
        ..posting("p-bad", 1)
    };
    let err = submit(&server, STATION, bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let mut fields: Vec<&str> =
        details.bad_request().expect("BadRequest detail").field_violations.iter().map(|v| v.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["posting.headcount", "posting.position"]);
    assert_eq!(server.last_seq(), before);
    let err = server
        .postings()
        .get_posting(authed(STATION, pb::GetPostingRequest { posting_id: "p-bad".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // An unset enum is refused too.
    let unspecified = pb::Worker { hardship: pb::Hardship::Unspecified as i32, ..worker("w", YAODU, 36.0, 111.5) };
    let err = register(&server, YAODU_COUNTY, "", unspecified).await.unwrap_err();
    let details = err.get_error_details();
    assert_eq!(details.bad_request().unwrap().field_violations[0].field, "worker.hardship");

    // A match that finds nobody is an outcome, not an error.
    submit(&server, STATION, posting("p-lonely", 1)).await.expect("published (verified employer)");
    let request = pb::InstantMatchRequest { request_id: String::new(), posting_id: "p-lonely".into(), max_offers: 0 };
    let matched = server.matching().instant_match(authed(OPERATOR, request)).await.unwrap().into_inner();
    assert!(matched.offers.is_empty());
    assert_eq!((matched.remaining_slots, matched.offer_deadline), (1, None));
}

#[tokio::test]
async fn retries_with_the_same_request_id_return_the_first_result() {
    let server = start(1000).await;
    add_employer(&server, true).await;
    let first = register(&server, YAODU_COUNTY, "reg-1", worker("w1", YAODU, 36.081, 111.52)).await.unwrap();
    let seq = server.last_seq();
    let again = register(&server, YAODU_COUNTY, "reg-1", worker("w1", YAODU, 36.081, 111.52)).await.unwrap();
    assert!(first.created && again.created, "the retry reports the first call's result");
    assert_eq!(server.last_seq(), seq, "nothing applied twice");

    submit(&server, STATION, posting("p-1", 1)).await.unwrap();
    let request = || pb::InstantMatchRequest { request_id: "m-1".into(), posting_id: "p-1".into(), max_offers: 0 };
    let first = server.matching().instant_match(authed(YAODU_COUNTY, request())).await.unwrap().into_inner();
    let seq = server.last_seq();
    let retry = server.matching().instant_match(authed(YAODU_COUNTY, request())).await.unwrap().into_inner();
    assert_eq!(first.offers.len(), 1);
    assert_eq!(retry.offers, first.offers);
    assert_eq!(server.last_seq(), seq);
    // The same id from another caller is another request.
    let other = server.matching().instant_match(authed(OPERATOR, request())).await.unwrap().into_inner();
    assert!(other.offers.is_empty(), "the only worker already holds the offer");
}

#[tokio::test]
async fn a_stale_station_version_gets_the_current_version() {
    let server = start(1000).await;
    add_employer(&server, true).await;
    submit(&server, STATION, posting("p-1", 1)).await.unwrap();
    let update = |version| pb::UpdatePostingRequest {
        request_id: String::new(),
        posting: Some(pb::Posting { daily_wage_yuan: 300, ..posting("p-1", version) }),
    };
    let updated = server.postings().update_posting(authed(STATION, update(3))).await.unwrap().into_inner();
    assert_eq!(updated.posting.unwrap().version, 3);
    let err = server.postings().update_posting(authed(STATION, update(2))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("current version is 3"), "{}", err.message());
    assert_eq!(err.metadata().get(CURRENT_VERSION_TRAILER).and_then(|v| v.to_str().ok()), Some("3"));
    let details = err.get_error_details();
    assert_eq!(details.error_info().unwrap().metadata.get("current_version").map(String::as_str), Some("3"));
    // Resubmitting the id with other content is ALREADY_EXISTS, also with the version.
    let err = submit(&server, STATION, posting("p-1", 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(err.metadata().get(CURRENT_VERSION_TRAILER).and_then(|v| v.to_str().ok()), Some("3"));
}

#[tokio::test]
async fn watches_resume_without_loss_or_repeats_and_report_gaps() {
    let server = start(8).await;
    add_employer(&server, true).await;
    let open = |after_seq| {
        let mut client = server.postings();
        async move {
            client
                .watch_postings(authed(STATION, pb::WatchPostingsRequest { county_code: YAODU, after_seq }))
                .await
                .map(|r| r.into_inner())
        }
    };
    let mut first = open(None).await.unwrap();
    let start_marker = next(&mut first).await;
    assert!(start_marker.event.is_none(), "a stream opens with its position");
    submit(&server, STATION, posting("p-1", 1)).await.unwrap();
    let (seen, event) = next_posting_event(&mut first).await;
    assert_eq!(event.posting_id, "p-1");
    drop(first);

    // Changes made while disconnected arrive on resume, once each, in order.
    submit(&server, STATION, posting("p-2", 1)).await.unwrap();
    submit(&server, STATION, posting("p-3", 1)).await.unwrap();
    let mut resumed = open(Some(seen)).await.unwrap();
    let (seq2, e2) = next_posting_event(&mut resumed).await;
    let (seq3, e3) = next_posting_event(&mut resumed).await;
    assert_eq!((e2.posting_id.as_str(), e3.posting_id.as_str()), ("p-2", "p-3"));
    assert!(seen < seq2 && seq2 < seq3);

    // A position past the newest event, or older than the history kept, is OUT_OF_RANGE.
    let err = open(Some(seq3 + 100)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    for i in 4..20 {
        submit(&server, STATION, posting(&format!("p-{i}"), 1)).await.unwrap();
    }
    let err = open(Some(0)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let oldest: u64 = err.metadata().get(OLDEST_SEQ_TRAILER).unwrap().to_str().unwrap().parse().unwrap();
    assert!(oldest > 1 && err.message().contains(&oldest.to_string()), "{}", err.message());
}

#[tokio::test]
async fn lists_page_through_the_callers_scope() {
    let server = start(1000).await;
    add_employer(&server, true).await;
    for i in 0..5 {
        submit(&server, STATION, posting(&format!("p-{i}"), 1)).await.unwrap();
    }
    let houma_posting = pb::Posting { county_code: HOUMA, township_code: String::new(), ..posting("p-houma", 1) };
    submit(&server, OPERATOR, houma_posting).await.unwrap();

    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..10 {
        let request = pb::ListPostingsRequest { page_size: 2, page_token: page_token.clone(), ..Default::default() };
        let page = server.postings().list_postings(authed(STATION, request)).await.unwrap().into_inner();
        assert!(page.postings.len() <= 2);
        seen.extend(page.postings.into_iter().map(|p| p.posting_id));
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["p-0", "p-1", "p-2", "p-3", "p-4"], "the station sees only its township");

    let request = pb::ListPostingsRequest { county_code: YAODU, ..Default::default() };
    let err = server.postings().list_postings(authed(HOUMA_COUNTY, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let everything = server
        .postings()
        .list_postings(authed(HOUMA_COUNTY, pb::ListPostingsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = everything.postings.iter().map(|p| p.posting_id.as_str()).collect();
    assert_eq!(ids, ["p-houma"], "a county without a filter sees its own counties");
    let err = server
        .postings()
        .get_posting(authed(HOUMA_COUNTY, pb::GetPostingRequest { posting_id: "p-0".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_matching_policy_set_by_an_operator_batches_instant_matches_until_the_window_closes() {
    let clock = Arc::new(AtomicI64::new(NOW_MS));
    let server = start_clocked(1000, clock.clone()).await;
    add_employer(&server, true).await;
    let policy = "name = \"batch\"\n[batch]\nwindow_secs = 5\ncounties = [141002]\n";
    let set = |token: &str, toml: &str| {
        let request = pb::SetMatchingPolicyRequest { request_id: "policy-1".into(), policy_toml: toml.into() };
        let mut client = server.matching();
        let request = authed(token, request);
        async move { client.set_matching_policy(request).await }
    };
    let err = set(YAODU_COUNTY, policy).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = set(OPERATOR, "[batch]\nwindow_secs = 1\n").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.get_error_details().bad_request().unwrap().field_violations[0].field, "policy_toml");
    let seq = server.last_seq();
    let answer = set(OPERATOR, policy).await.unwrap().into_inner();
    assert!(answer.batch_changed && !answer.ranking_changed);
    assert_eq!(server.last_seq(), seq + 1, "only the changed part is logged");
    let again = set(OPERATOR, policy).await.unwrap().into_inner();
    assert_eq!(again.policy, answer.policy, "a retry gets the first result");
    assert_eq!(server.last_seq(), seq + 1);
    let got = server.matching().get_matching_policy(authed(REVIEWER, pb::GetMatchingPolicyRequest {})).await;
    let got = got.unwrap().into_inner().policy.unwrap();
    assert_eq!((got.batch_window_ms, got.batch_counties.clone()), (5_000, vec![YAODU]));

    register(&server, YAODU_COUNTY, "", worker("w1", YAODU, 36.081, 111.52)).await.unwrap();
    submit(&server, STATION, posting("p-1", 1)).await.unwrap();
    let request = pb::InstantMatchRequest { request_id: "m-1".into(), posting_id: "p-1".into(), max_offers: 0 };
    let queued = server.matching().instant_match(authed(YAODU_COUNTY, request)).await.unwrap().into_inner();
    assert!(queued.offers.is_empty() && queued.offer_deadline.is_none());
    assert_eq!(queued.remaining_slots, 1);
    assert_eq!(queued.decision_at, Some(prost_types::Timestamp { seconds: NOW_MS / 1000 + 5, nanos: 0 }));
    let offers = || {
        let mut client = server.postings();
        let request = authed(YAODU_COUNTY, pb::ListPostingOffersRequest { posting_id: "p-1".into() });
        async move { client.list_posting_offers(request).await.unwrap().into_inner().offers }
    };
    assert!(offers().await.is_empty(), "nothing is offered before the window closes");
    clock.store(NOW_MS + 5_000, Ordering::SeqCst);
    server.host.submit(None, Command::Tick).await.expect("tick");
    let made = offers().await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].worker_id, "w1");
}
