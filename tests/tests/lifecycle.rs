//! End-to-end tests of the server's life: health checking and reflection for
//! tools like grpcurl, the Prometheus endpoint, graceful shutdown ending open
//! watches, a restart from the data directory that keeps everything, fail-stop
//! on a log failure, and TLS (with the test-only certificates in
//! `tests/data`, valid until 2126).

use linggong_server::proto::v1 as pb;
use linggong_tests::*;
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test]
async fn health_reflection_and_metrics_are_served() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;

    let mut health = HealthClient::new(c.channel.clone());
    for service in ["", "linggong.v1.WorkerService", "linggong.v1.MatchService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await?.into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    // Reflection lists every service, so grpcurl needs no proto files.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(c.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection.server_reflection_info(futures::stream::iter([request])).await?.into_inner();
    let response = responses.message().await?.expect("a reflection response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else { panic!("{response:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "linggong.v1.WorkerService",
        "linggong.v1.PostingService",
        "linggong.v1.MatchService",
        "linggong.v1.ReviewService",
        "linggong.v1.StatsService",
        "linggong.v1.DirectoryService",
        "linggong.v1.AuditService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    register_workers(
        &mut c,
        &t.yaodu,
        &WorkerGroup { prefix: "w", count: 3, county: YAODU, trade: "mason", centre: YAODU_SEAT, spread_m: 1_000.0 },
    )
    .await?;
    let denied = c
        .workers
        .get_worker(tonic::Request::new(pb::GetWorkerRequest { worker_id: "w0".into(), ..Default::default() }))
        .await;
    assert!(denied.is_err());

    let text = scrape_metrics(server.running().metrics_addr.expect("metrics enabled")).await?;
    let samples = parse_openmetrics(&text)?;
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples.iter().find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v))).map(|s| s.value)
    };
    let register = [("grpc_service", "linggong.v1.WorkerService"), ("grpc_method", "RegisterWorker")];
    assert_eq!(value("grpc_server_handled_total", &[register[0], register[1], ("grpc_code", "OK")]), Some(3.0));
    assert_eq!(
        value("grpc_server_handling_seconds_count", &[register[0], register[1], ("grpc_code", "OK")]),
        Some(3.0)
    );
    assert!(
        value("grpc_server_handled_total", &[("grpc_method", "GetWorker"), ("grpc_code", "Unauthenticated")])
            .is_some_and(|v| v >= 1.0),
        "refused calls are counted by code"
    );
    assert_eq!(value("linggong_waiting_workers_by_trade", &[("county", "141002"), ("trade", "mason")]), Some(3.0));
    assert_eq!(value("linggong_waiting_workers", &[]), Some(3.0));
    assert!(value("linggong_wal_fsync_seconds_count", &[]).is_some_and(|v| v >= 3.0));
    assert!(value("linggong_wal_records_per_fsync_bucket", &[("le", "+Inf")]).is_some());
    assert!(value("linggong_raft_snapshot_seconds_count", &[]).is_some());
    assert_eq!(value("linggong_raft_is_leader", &[]), Some(1.0), "a single node is the leader of its group of one");
    assert_eq!(value("linggong_offers_total", &[("county", "141002"), ("outcome", "made")]), Some(0.0));
    assert!(value("linggong_inflight_requests", &[]).is_some());
    server.stop().await
}

#[tokio::test]
async fn shutdown_ends_open_watches_and_restart_keeps_everything() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;
    upsert_employer(&mut c, &t.operator, "e2", false).await?;
    register_workers(
        &mut c,
        &t.yaodu,
        &WorkerGroup { prefix: "w", count: 8, county: YAODU, trade: "porter", centre: YAODU_SEAT, spread_m: 2_000.0 },
    )
    .await?;
    submit_posting(&mut c, &t.yaodu, posting("p1", "e1", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 3)).await?;
    submit_posting(&mut c, &t.yaodu, posting("p2", "e2", "porter", YAODU, offset(YAODU_SEAT, 0.0, 0.0), 1)).await?;
    let matched = c
        .matches
        .instant_match(authed(
            &t.yaodu,
            pb::InstantMatchRequest { request_id: "m1".into(), posting_id: "p1".into(), max_offers: 0 },
        ))
        .await?
        .into_inner();
    assert_eq!(matched.offers.len(), 3);
    let o = &matched.offers[0];
    c.matches
        .respond_to_offer(authed(
            &t.yaodu,
            pb::RespondToOfferRequest {
                request_id: String::new(),
                offer_id: o.offer_id,
                worker_id: o.worker_id.clone(),
                response: pb::OfferResponse::Accept as i32,
            },
        ))
        .await?;

    let read_all = |mut c: Clients| {
        let t = t.clone();
        async move {
            let mut workers = Vec::new();
            for i in 0..8 {
                let w = c
                    .workers
                    .get_worker(authed(
                        &t.yaodu,
                        pb::GetWorkerRequest { worker_id: format!("w{i}"), ..Default::default() },
                    ))
                    .await?;
                workers.push(w.into_inner());
            }
            let mut postings = Vec::new();
            for id in ["p1", "p2"] {
                let p = c
                    .postings
                    .get_posting(authed(
                        &t.yaodu,
                        pb::GetPostingRequest { posting_id: id.into(), ..Default::default() },
                    ))
                    .await?;
                postings.push(p.into_inner());
            }
            let stats = c.stats.county_stats(authed(&t.yaodu, pb::CountyStatsRequest { county_code: YAODU })).await?;
            Ok::<_, anyhow::Error>((workers, postings, stats.into_inner()))
        }
    };
    let before = read_all(c.clone()).await?;
    let next_event = server.running().host.next_event_seq();

    // An open watch is ended with UNAVAILABLE by the shutdown, not waited on.
    let mut watch = c
        .postings
        .watch_postings(authed(&t.yaodu, pb::WatchPostingsRequest { county_code: YAODU, after_seq: None }))
        .await?
        .into_inner();
    watch.message().await?.expect("a position marker");
    let reader = tokio::spawn(async move {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status.code()),
            }
        }
    });
    let stopping = std::time::Instant::now();
    server.restart().await?;
    assert!(stopping.elapsed() < Duration::from_secs(4), "shutdown waited on the watcher");
    let ended = tokio::time::timeout(Duration::from_secs(5), reader).await??;
    assert_eq!(ended, Some(tonic::Code::Unavailable));
    assert!(server.data_dir.join("raft").join("snapshot").is_file(), "a final snapshot was written at shutdown");

    let c = server.clients().await?;
    let after = read_all(c.clone()).await?;
    assert_eq!(before, after, "the restarted server holds the same workers, postings and statistics");
    assert_eq!(server.running().host.next_event_seq(), next_event, "event numbering continues");

    // Idempotency survives the restart: the same request id returns the first result.
    let mut m = c.matches.clone();
    let again = m
        .instant_match(authed(
            &t.yaodu,
            pb::InstantMatchRequest { request_id: "m1".into(), posting_id: "p1".into(), max_offers: 0 },
        ))
        .await?
        .into_inner();
    assert_eq!(again, matched);
    drop(m);
    drop(c);
    server.stop().await
}

#[tokio::test]
async fn a_failed_log_stops_writes_and_the_server() -> anyhow::Result<()> {
    use linggong_server::app::Stopped;
    use linggong_server::wal::{Fault, FaultyStorage};
    // The 13th fsync fails (the first ones set up the log and the one-member group).
    let mut server =
        TestServer::start_with(|c| c.wal_storage = std::sync::Arc::new(FaultyStorage::new(Fault::Sync, 12))).await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..50 {
        let id = format!("w{i}");
        let request = pb::RegisterWorkerRequest {
            request_id: String::new(),
            worker: Some(worker(&id, YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0))),
        };
        match c.workers.register_worker(authed(&t.yaodu, request)).await {
            Ok(_) => acknowledged.push(id),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("the injected fsync fault surfaced within 50 writes");
    assert!(!acknowledged.is_empty(), "writes were acknowledged before the fault");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");

    // Fail-stop: the server reports it and stops, without another write getting through.
    let running = server.server.take().expect("running");
    let old_host = running.host.clone();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.run_until_stopped()).await??;
    let Stopped::LogFailed(message) = stopped else { panic!("expected a log failure, got {stopped:?}") };
    assert!(message.contains("injected"), "{message}");
    drop(c);
    drop(old_host);

    // What was acknowledged before the failure is on disk: a server started
    // on the directory (recovering as after a crash) has it.
    let recovered = linggong_server::app::start(linggong_server::config::ServerConfig::new(&server.data_dir)).await?;
    for id in &acknowledged {
        assert!(recovered.host.read_engine(|e| e.worker(id).is_some()), "acknowledged {id} lost");
    }
    recovered.shutdown().await
}

#[tokio::test]
async fn tls_serves_encrypted_and_refuses_plaintext() -> anyhow::Result<()> {
    use linggong_server::config::TlsFiles;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let server = TestServer::start_with(|c| {
        c.tls = Some(TlsFiles { cert: data.join("test-server.crt"), key: data.join("test-server.key") })
    })
    .await?;
    let port = server.addr().port();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(data.join("test-ca.crt"))?))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let status = HealthClient::new(channel.clone()).check(HealthCheckRequest { service: String::new() }).await?;
    assert_eq!(status.into_inner().status, ServingStatus::Serving as i32);
    let mut workers = pb::worker_service_client::WorkerServiceClient::new(channel);
    let request = pb::RegisterWorkerRequest {
        request_id: String::new(),
        worker: Some(worker("w-tls", YAODU, "porter", offset(YAODU_SEAT, 0.0, 0.0))),
    };
    assert!(workers.register_worker(authed(&server.tokens.yaodu, request)).await?.into_inner().created);

    // A plaintext client gets nowhere.
    let plain = async {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect().await?;
        HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await?;
        Ok::<_, anyhow::Error>(())
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), plain).await;
    assert!(!matches!(refused, Ok(Ok(()))), "plaintext must not be served when TLS is on");
    drop(workers);
    server.stop().await
}
