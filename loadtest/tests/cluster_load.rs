//! gRPC mode against three local replicas: separate processes of the debug `linggong-server`
//! binary on loopback ephemeral ports, initialised as one cluster, workers registered through the
//! API, the `match` scenario for a few seconds. Started by the tool itself (`--spawn-cluster 3`):
//! the report must show calls without errors, three measured server processes (one leader) and
//! those processes gone once the run returns. Started here and given to the tool as `--addr` of a
//! follower: the tool must follow `NOT_LEADER` to the leader without errors, and, with the leader
//! killed (SIGKILL) or stopped (SIGSTOP: it answers nothing but keeps its connections) during the
//! load, follow the new leader (`leader_changes` >= 1) with no more
//! errors than calls were in flight.
//!
//! The binary is `LINGGONG_SERVER_BIN` if set, else `target/debug/linggong-server` (built by
//! `cargo test --workspace`, or `cargo build -p linggong-server`; this test builds it when it is
//! missing, and uses it as it is when present).

use linggong_loadtest::cluster::{ClusterConfig, ClusterError, LocalCluster};
use linggong_loadtest::grpc_mode::{run_grpc, scrape_metrics, GrpcConfig, RaftTiming, ServerSource};
use linggong_loadtest::report::prometheus_sum;
use linggong_loadtest::{LoadShape, ProgressMode, RunConfig, Scenario, WorkloadConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Callers of the closed loop in every test here.
const CALLERS: usize = 8;

/// The `match` scenario, closed loop, measured for `duration` after half a second of warmup.
fn match_run(duration: Duration) -> RunConfig {
    RunConfig {
        workload: WorkloadConfig {
            scenario: Scenario::Match,
            seed: 7,
            workers: 400,
            employers: 10,
            postings: 16,
            match_size: 5,
            run_tag: "ct-".into(),
        },
        shape: LoadShape::Closed { concurrency: CALLERS },
        duration,
        warmup: Duration::from_millis(500),
        sample_interval: Duration::from_millis(250),
        request_timeout: Duration::from_secs(5),
        progress: ProgressMode::Off,
    }
}

fn grpc_config(source: ServerSource) -> GrpcConfig {
    GrpcConfig {
        source,
        connections: 2,
        client_threads: 2,
        stations: 0,
        register_workers: true,
        request_ids: true,
        notes: false,
    }
}

/// Three replicas started and initialised here (not by the tool), so that a test can point the
/// tool at one of them and kill another; returns them and the leader's member id.
fn started_cluster() -> (LocalCluster, u64) {
    let local = LocalCluster::spawn(&cluster(server_binary())).expect("starting three replicas");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let leader = runtime.block_on(local.initialise()).expect("the replicas elect a leader").node_id;
    (local, leader)
}

/// `--addr` of a follower of `local`, with its operator token.
fn follower_addr(local: &LocalCluster, leader: u64) -> ServerSource {
    let follower = local.replicas().iter().find(|r| r.node_id != leader).expect("a follower");
    ServerSource::Remote { addr: follower.grpc.to_string(), token: local.token().to_string(), metrics_addr: None }
}

#[test]
fn match_closed_loop_against_three_spawned_replicas() {
    let config = match_run(Duration::from_millis(2_000));
    let grpc = grpc_config(ServerSource::SpawnCluster(cluster(server_binary())));
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
    for key in [
        "throughput_per_s",
        "p99_us",
        "errors",
        "per_rpc",
        "cpu_cores_by_thread_group",
        "server_processes",
        "leader_changes",
        "route_switches",
        "retried_calls",
    ] {
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
fn addr_of_a_follower_is_followed_to_the_leader() {
    let (local, leader) = started_cluster();
    let report = run_grpc(&match_run(Duration::from_millis(2_000)), &grpc_config(follower_addr(&local, leader)))
        .expect("the run against a follower");

    assert!(report.requests > 0, "no calls were made");
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_code);
    let matches = &report.per_rpc["InstantMatch"];
    assert!(matches.count > 10 && matches.errors == 0, "{matches:?}");
    assert!(report.workload.offers_made > 0, "the registered workers got offers: {:?}", report.workload);
    // The first call went to the follower, which named the leader: the calls moved there, and
    // that call was sent again.
    assert!(
        report.route_switches >= 1 && report.retried_calls >= 1,
        "{} switches, {} retried",
        report.route_switches,
        report.retried_calls
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["leader_changes"].as_u64().is_some(), "leader_changes missing from the JSON report");
    assert_eq!(
        json["settings"]["server"]["remote"],
        local.replicas().iter().find(|r| r.node_id != leader).unwrap().grpc.to_string()
    );
    for problem in local.stop() {
        eprintln!("warning: {problem}");
    }
}

#[test]
fn the_load_follows_a_new_leader_when_the_leader_is_killed() {
    load_follows_a_new_leader_after(libc::SIGKILL);
}

/// A stopped leader (SIGSTOP) keeps its connections open and answers nothing, as a machine that
/// vanished from the network would: the tool's HTTP/2 keep-alive pings find it dead and the
/// load moves to the new leader.
#[test]
fn the_load_follows_a_new_leader_when_the_leader_stops_answering() {
    load_follows_a_new_leader_after(libc::SIGSTOP);
}

/// Runs the load against a follower, sends `signal` to the leader once the load is on, and
/// checks that the load went on at a new leader with at most the calls in flight failing.
fn load_follows_a_new_leader_after(signal: libc::c_int) {
    let (local, leader) = started_cluster();
    let source = follower_addr(&local, leader);
    let old = local.replicas().iter().find(|r| r.node_id == leader).expect("the leader");
    let (pid, metrics) = (old.pid(), old.metrics.expect("the leader's metrics address"));
    // Kills the leader once the load is on: bounded polling of its offer counter (the `match`
    // scenario's instant matches make offers; the setup makes none), until the run has ended.
    let run_ended = Arc::new(AtomicBool::new(false));
    let ended = run_ended.clone();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !ended.load(Ordering::Relaxed) {
            let offers = scrape_metrics(metrics).and_then(|text| {
                prometheus_sum(&text, "linggong_offers_total").or_else(|| prometheus_sum(&text, "linggong_offers"))
            });
            if offers.unwrap_or(0.0) >= 50.0 {
                // SAFETY: kill(2) on a child of this process, not yet reaped (LocalCluster owns it).
                let sent = unsafe { libc::kill(pid as i32, signal) };
                return (sent == 0).then(Instant::now);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    });
    let report = run_grpc(&match_run(Duration::from_secs(6)), &grpc_config(source));
    run_ended.store(true, Ordering::Relaxed);
    let report = report.expect("the run through the kill");
    let killed = killer.join().expect("the killer thread");
    // A stopped leader goes on, so that stopping the cluster is prompt (no effect after SIGKILL).
    // SAFETY: kill(2) on a child of this process, not yet reaped (LocalCluster owns it).
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    assert!(killed.is_some(), "the leader was not signalled while the load ran");

    let summary = format!(
        "leader_changes {}, route_switches {}, retried_calls {}, errors {:?}, requests {}",
        report.leader_changes, report.route_switches, report.retried_calls, report.errors_by_code, report.requests
    );
    eprintln!("after signal {signal} to the leader: {summary}");
    assert!(report.leader_changes >= 1, "the load did not move to a new leader: {summary}");
    assert!(report.retried_calls >= 1, "{summary}");
    // At most the calls in flight when the leader died fail (as a rule none: they are retried).
    assert!(report.errors <= CALLERS as u64, "{summary}");
    let matches = &report.per_rpc["InstantMatch"];
    assert!(matches.count > 10, "{matches:?}");
    // Calls went on after the change: the window's last second (four samples) has calls in it.
    let busy_at_the_end = report.timeline.iter().filter(|s| s.measuring).rev().take(4).any(|s| s.rate_per_s > 0.0);
    assert!(busy_at_the_end, "no calls at the end of the window: {:?} ({summary})", report.timeline);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["leader_changes"].as_u64().is_some_and(|n| n >= 1), "{summary}");
    drop(local);
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
