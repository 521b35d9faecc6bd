//! gRPC mode against three local replicas the tool starts itself (`--spawn-cluster 3`): separate
//! processes of the debug `linggong-server` binary on loopback ephemeral ports, initialised as one
//! cluster, workers registered through the API, the `match` scenario on the leader for about two
//! seconds. The report must show calls without errors, three measured server processes (one
//! leader) and those processes gone once the run returns.
//!
//! The binary is `LINGGONG_SERVER_BIN` if set, else `target/debug/linggong-server` (built by
//! `cargo test --workspace`, or `cargo build -p linggong-server`; this test builds it when it is
//! missing, and uses it as it is when present).

use linggong_loadtest::cluster::{ClusterConfig, ClusterError, LocalCluster};
use linggong_loadtest::grpc_mode::{run_grpc, GrpcConfig, RaftTiming, ServerSource};
use linggong_loadtest::{LoadShape, ProgressMode, RunConfig, Scenario, WorkloadConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LINGGONG_SERVER_BIN") {
        return PathBuf::from(path);
    }
    // This test runs as target/<profile>/deps/cluster_load-…; the binary lives in target/<profile>.
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf();
    let binary = profile_dir.join("linggong-server");
    if binary.is_file() {
        return binary;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.current_dir(env!("CARGO_MANIFEST_DIR")).args(["build", "--quiet", "-p", "linggong-server", "--bin"]);
    build.arg("linggong-server");
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().expect("running cargo build for the server binary");
    assert!(status.success(), "cargo build -p linggong-server failed: {status}");
    binary
}

fn cluster(server_binary: PathBuf) -> ClusterConfig {
    ClusterConfig {
        replicas: 3,
        server_binary,
        durability: "always".into(),
        data_parent: None,
        server_threads: 2,
        // Debug builds on a shared machine miss 50 ms heartbeats now and then: slower timing
        // keeps one leader through the two seconds.
        raft: RaftTiming { heartbeat_ms: 100, election_ms: 1_000, snapshot_every: 100_000 },
    }
}

#[test]
fn match_closed_loop_against_three_spawned_replicas() {
    let config = RunConfig {
        workload: WorkloadConfig {
            scenario: Scenario::Match,
            seed: 7,
            workers: 400,
            employers: 10,
            postings: 16,
            match_size: 5,
            run_tag: "ct-".into(),
        },
        shape: LoadShape::Closed { concurrency: 8 },
        duration: Duration::from_millis(2_000),
        warmup: Duration::from_millis(500),
        sample_interval: Duration::from_millis(250),
        request_timeout: Duration::from_secs(5),
        progress: ProgressMode::Off,
    };
    let grpc = GrpcConfig {
        source: ServerSource::SpawnCluster(cluster(server_binary())),
        connections: 2,
        client_threads: 2,
        stations: 0,
        register_workers: true,
        request_ids: true,
        notes: false,
    };
    let report = run_grpc(&config, &grpc).unwrap();

    assert!(report.requests > 0, "no calls were made");
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_code);
    let matches = &report.per_rpc["InstantMatch"];
    assert!(matches.count > 10 && matches.errors == 0, "{matches:?}");
    assert!(report.workload.offers_made > 0, "the registered workers got offers: {:?}", report.workload);

    // Three processes, each measured apart, one of them the leader the load went to.
    let processes = &report.server_processes;
    assert_eq!(processes.len(), 3, "{processes:?}");
    let pids: BTreeSet<u32> = processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 3, "three distinct processes: {processes:?}");
    assert!(!pids.contains(&std::process::id()), "none of them is the tool itself");
    let nodes: BTreeSet<u64> = processes.iter().map(|p| p.node_id).collect();
    assert_eq!(nodes, BTreeSet::from([1, 2, 3]));
    assert_eq!(processes.iter().filter(|p| p.role == "leader").count(), 1, "{processes:?}");
    for p in processes {
        // Followers append and apply every entry, so every process worked.
        assert!(p.cpu_cores > 0.0, "{p:?}");
    }
    let total: f64 = processes.iter().map(|p| p.cpu_cores).sum();
    assert!((report.server_cpu_cores.unwrap() - total).abs() < 1e-9);
    assert!(report.server_cpu_us_per_call.unwrap() > 0.0);
    assert!(report.machine.server_build.contains("3 local replicas"), "{}", report.machine.server_build);

    let json = serde_json::to_value(&report).unwrap();
    for key in ["throughput_per_s", "p99_us", "errors", "per_rpc", "cpu_cores_by_thread_group", "server_processes"] {
        assert!(json.get(key).is_some(), "{key} missing from the JSON report");
    }
    assert!(json["machine"]["machine_cores_busy"].as_f64().is_some());
    assert_eq!(json["settings"]["server"]["spawn_cluster"]["replicas"], 3);

    // The replicas were stopped and reaped when the run returned.
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "server process {pid} still exists");
    }
}

#[test]
fn a_missing_server_binary_is_refused_before_anything_starts() {
    let missing = std::env::temp_dir().join("no-such-dir-for-linggong").join("linggong-server");
    match LocalCluster::spawn(&cluster(missing)) {
        Err(ClusterError::BadSetting { what, detail }) => {
            assert_eq!(what, "server binary");
            assert!(detail.contains("--server-binary"), "{detail}");
        }
        Err(other) => panic!("expected a bad setting, got {other}"),
        Ok(_) => panic!("a cluster started from a binary that does not exist"),
    }
    let mut zero = cluster(PathBuf::from("/bin/true"));
    zero.replicas = 0;
    assert!(matches!(LocalCluster::spawn(&zero), Err(ClusterError::BadSetting { .. })));
}
