//! gRPC mode end to end against in-process servers on ephemeral loopback ports: short runs (about
//! two seconds each) whose reports must add up — per-RPC counts to the total, errors by status code
//! to the error counts — with errors classified by their gRPC status, and watch streams measured.

use linggong_loadtest::grpc_mode::{run_grpc, GrpcConfig, ServerSource, SpawnConfig};
use linggong_loadtest::{LoadShape, ProgressMode, Report, RunConfig, Scenario, WorkloadConfig};
use std::time::Duration;

fn run_config(scenario: Scenario, shape: LoadShape, workers: u64, postings: u64) -> RunConfig {
    RunConfig {
        workload: WorkloadConfig {
            scenario,
            seed: 11,
            workers,
            employers: 20,
            postings,
            match_size: 5,
            run_tag: "gt-".into(),
        },
        shape,
        duration: Duration::from_millis(1_500),
        warmup: Duration::from_millis(300),
        sample_interval: Duration::from_millis(250),
        request_timeout: Duration::from_secs(5),
        progress: ProgressMode::Off,
    }
}

fn grpc_config(source: ServerSource, stations: usize, register_workers: bool) -> GrpcConfig {
    GrpcConfig {
        source,
        connections: 2,
        client_threads: 2,
        stations,
        register_workers,
        request_ids: true,
        notes: false,
    }
}

fn spawn(durability: &str) -> ServerSource {
    ServerSource::Spawn(SpawnConfig {
        durability: durability.into(),
        data_parent: None,
        server_threads: 2,
        raft_group_of_one: false,
    })
}

/// Counts add up: per RPC to the total, per status code to the errors, rate × window to the count.
fn assert_consistent(report: &Report) {
    assert!(report.requests > 0, "no calls were made");
    assert_eq!(report.per_rpc.values().map(|r| r.count).sum::<u64>(), report.requests);
    assert_eq!(report.per_rpc.values().map(|r| r.errors).sum::<u64>(), report.errors);
    assert_eq!(report.errors_by_code.values().sum::<u64>(), report.errors);
    for (name, r) in &report.per_rpc {
        assert_eq!(r.errors_by_code.values().sum::<u64>(), r.errors, "{name}");
        assert!(r.errors <= r.count, "{name}");
        assert!(r.latency.p50_us > 0.0 && r.latency.p50_us <= r.latency.p99_us, "{name}: {:?}", r.latency);
        assert!(r.latency.p99_us <= r.latency.p999_us && r.latency.p999_us <= r.latency.max_us, "{name}");
    }
    assert!((report.throughput_per_s * report.measured_s - report.requests as f64).abs() < 1.0);
    assert!(report.measured_s > 1.0 && report.measured_s < 3.0, "{}", report.measured_s);
    assert!(report.timeline.iter().any(|s| s.measuring) && report.timeline.iter().any(|s| !s.measuring));
    let json = serde_json::to_value(report).unwrap();
    for key in ["throughput_per_s", "p50_us", "p99_us", "p999_us", "errors", "per_rpc", "settings", "machine"] {
        assert!(json.get(key).is_some(), "{key} missing from the JSON report");
    }
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
}

#[test]
fn match_closed_loop_against_a_spawned_server() {
    let config = run_config(Scenario::Match, LoadShape::Closed { concurrency: 8 }, 3_000, 16);
    let report = run_grpc(&config, &grpc_config(spawn("none"), 0, false)).unwrap();
    assert_consistent(&report);
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_code);
    let matches = &report.per_rpc["InstantMatch"];
    assert!(matches.count > 50, "{}", matches.count);
    assert!(report.workload.offers_made > 0, "{:?}", report.workload);
    assert!(report.machine.server_build.contains("in-process") && report.machine.server_build.contains("none"));
    let server = report.server.as_ref().expect("the spawned server's metrics are scraped");
    assert!(server.wal_records > 0.0, "matches are logged: {server:?}");
}

#[test]
fn mixed_open_loop_with_watching_stations() {
    let config = run_config(Scenario::Watch, LoadShape::Open { rate: 400.0, max_in_flight: 64 }, 2_000, 20);
    let report = run_grpc(&config, &grpc_config(spawn("always"), 4, false)).unwrap();
    assert_consistent(&report);
    // Open loop: about rate × window calls complete, whatever the server does.
    assert!(report.requests > 400 && report.requests < 900, "{}", report.requests);
    for rpc in ["UpdateWorkerLocation", "SubmitPosting", "InstantMatch"] {
        assert!(report.per_rpc.contains_key(rpc), "{rpc} missing: {:?}", report.per_rpc.keys());
    }
    let watch = report.watch.as_ref().expect("watch figures");
    assert_eq!(watch.stations, 4);
    assert!(watch.events > 0, "{watch:?}");
    assert!(watch.lag_samples > 0 && watch.lag.p50_us > 0.0, "{watch:?}");
    assert_eq!(watch.sequence_anomalies, 0, "{watch:?}");
}

#[test]
fn errors_are_classified_by_status_code() {
    // A running server that has none of the workers the workload moves: every location update is
    // NOT_FOUND, every registration succeeds.
    let data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut server_config = linggong_server::config::ServerConfig::new(data.path());
    server_config.durability = "none".parse().unwrap();
    server_config.create_dev_token = true;
    let server = runtime.block_on(linggong_server::app::start(server_config)).unwrap();
    let token = server.dev_token.as_ref().unwrap().token.clone();
    let source = ServerSource::Remote { addr: server.addr.to_string(), token, metrics_addr: None };
    let config = run_config(Scenario::Register, LoadShape::Closed { concurrency: 4 }, 500, 0);
    let report = run_grpc(&config, &grpc_config(source.clone(), 0, false)).unwrap();
    assert_consistent(&report);
    let moves = &report.per_rpc["UpdateWorkerLocation"];
    assert!(moves.count > 0);
    assert_eq!(moves.errors, moves.count);
    assert_eq!(moves.errors_by_code.get("NOT_FOUND"), Some(&moves.count), "{:?}", moves.errors_by_code);
    assert_eq!(report.per_rpc["RegisterWorker"].errors, 0);
    assert_eq!(report.errors_by_code.keys().collect::<Vec<_>>(), vec!["NOT_FOUND"]);

    // A wrong token: the run cannot even set up, and says why.
    let ServerSource::Remote { addr, .. } = source else { unreachable!() };
    let wrong = ServerSource::Remote { addr, token: "not-a-token".into(), metrics_addr: None };
    let err = run_grpc(&config, &grpc_config(wrong, 0, false)).unwrap_err();
    assert!(err.to_string().contains("UNAUTHENTICATED"), "{err}");
    runtime.block_on(server.shutdown()).unwrap();
}
