//! `linggong-loadtest`: one command answering "how much can this box take, at what latency?".
//!
//! ```text
//! linggong-loadtest engine --scenario match --workers 1000000 --duration 60s
//! linggong-loadtest grpc --spawn-server --durability always --scenario match --concurrency 128
//! linggong-loadtest grpc --spawn-server --scenario match --rate 20000 --json out.json --plot out.svg
//! linggong-loadtest grpc --spawn-cluster 3 --durability always --scenario match --concurrency 64
//! linggong-loadtest grpc --addr 127.0.0.1:50051 --token "$TOKEN" --scenario mixed --duration 5m
//! ```

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use linggong_loadtest::cluster::{default_server_binary, ClusterConfig};
use linggong_loadtest::grpc_mode::{run_grpc, GrpcConfig, RaftTiming, ServerSource, SpawnConfig};
use linggong_loadtest::plot::plot_samples;
use linggong_loadtest::{run_engine, LoadShape, ProgressMode, Report, RunConfig, Scenario, WorkloadConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The allocator of the server binary, so in-process servers cost what a real one does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Load tool for the linggong matching service: drives the engine in-process or a gRPC server and
/// reports throughput and latency per RPC.
#[derive(Debug, Parser)]
#[command(name = "linggong-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Drive the engine in-process (no network, no log): pure engine capacity on one core.
    Engine {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Drive a gRPC server: a running one (--addr, --token), one started here (--spawn-server) or
    /// the leader of local replicas started here (--spawn-cluster N).
    ///
    /// The tool follows a change of leader, in the setup and in the load: a call that a cluster
    /// member answers with NOT_LEADER is sent again, with the same request id, to the leader it
    /// names; one that finds no leader (an election) or whose member cannot be reached is sent
    /// again after a short backoff to another member it knows (every replica with
    /// --spawn-cluster; with --addr, that address and each leader named since), for up to 10 s a
    /// call. A retried call that succeeds is no error and its latency runs from its first attempt;
    /// the report counts `leader_changes`, `route_switches` and `retried_calls`.
    Grpc {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        grpc: GrpcArgs,
    },
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Scenario::Match)]
    scenario: Scenario,
    /// Open loop at this many requests per second (latency from each request's intended start).
    /// Without it the load is closed loop at --concurrency.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop: callers. Open loop: most requests in flight (default 1024 open, 64 closed).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Measured window, e.g. 60s, 5m, 1500ms.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured load before the window.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// Seed of every draw: the same seed gives the same starting market and the same sequence of draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Workers the market starts with.
    #[arg(long, default_value_t = 100_000)]
    workers: u64,
    /// Employers postings are drawn for.
    #[arg(long, default_value_t = 200)]
    employers: u64,
    /// Postings submitted before the load. Default: `match` 100 (the pool matched in turn, 50 slots
    /// each, so at most 5,000 workers hold offers at once); `mixed`/`watch` one per 2,000 workers, at most 200
    /// (the day's first postings; the rest are submitted during the run); `register` none.
    #[arg(long)]
    postings: Option<u64>,
    /// `match`: workers asked for by each instant match.
    #[arg(long, default_value_t = 5)]
    match_size: u8,
    /// Request deadline; in open loop also how stale a queued request may get before it is dropped.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Length of one sample of the live display and the plot.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    sample_interval: Duration,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Plot latency percentiles and throughput over time into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No live display and no setup notes (the report is still printed).
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct GrpcArgs {
    /// Address of a running server; with a cluster any member (a follower's NOT_LEADER answers
    /// lead the tool to the leader, and to the next one when the leader changes).
    #[arg(
        long,
        env = "LINGGONG_ADDR",
        conflicts_with_all = ["spawn_server", "spawn_cluster"],
        required_unless_present_any = ["spawn_server", "spawn_cluster"]
    )]
    addr: Option<String>,
    /// Bearer token for --addr (an operator token; the server prints its development token on first start).
    #[arg(long, env = "LINGGONG_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Prometheus address of the --addr server, for WAL counters in the report.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Start a server in-process with a temporary data directory (its demo loader registers --workers).
    #[arg(long, conflicts_with = "spawn_cluster")]
    spawn_server: bool,
    /// Start N replicas on 127.0.0.1 as processes of the server binary (--server-binary), make them
    /// one cluster, register --workers through the API and load the leader; they are stopped at the end.
    #[arg(long, value_name = "N")]
    spawn_cluster: Option<usize>,
    /// --spawn-cluster: the linggong-server binary (default: the one beside this tool, else on PATH).
    #[arg(long, requires = "spawn_cluster")]
    server_binary: Option<PathBuf>,
    /// --spawn-server, --spawn-cluster: when writes are acknowledged: always, none or interval:<ms>.
    #[arg(long, default_value = "always")]
    durability: String,
    /// --spawn-server: run it as a Raft group of one (its `--raft-bootstrap`), writes going through the Raft log.
    #[arg(long, conflicts_with = "spawn_cluster")]
    raft_bootstrap: bool,
    /// --spawn-server, --spawn-cluster: where to create the temporary data directories (default: the system temp dir).
    #[arg(long)]
    data_dir_parent: Option<PathBuf>,
    /// --spawn-server, --spawn-cluster: worker threads of each server's runtime (default: the cores).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Worker threads of the tool's own runtime (default: the cores).
    #[arg(long)]
    client_threads: Option<usize>,
    /// HTTP/2 connections shared by the callers.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// `watch`: stations following their county's stream (counties in turn).
    #[arg(long, default_value_t = 17)]
    stations: usize,
    /// --addr: the server already has workers w0..w{N-1} (e.g. started with --demo): do not register them.
    #[arg(long)]
    skip_worker_setup: bool,
    /// Send no request_id (turns the server's deduplication off for these calls).
    #[arg(long)]
    no_request_ids: bool,
}

/// Parses `90`, `90s`, `5m`, `1500ms` or `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 30s, 5m or 500ms"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{text}`: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{text}` is not a usable duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn run_config(common: &CommonArgs) -> Result<RunConfig> {
    let shape = match common.rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => {
            LoadShape::Open { rate, max_in_flight: common.concurrency.unwrap_or(1024) }
        }
        Some(rate) => bail!("--rate must be a positive number, got {rate}"),
        None => LoadShape::Closed { concurrency: common.concurrency.unwrap_or(64) },
    };
    if common.duration.is_zero() {
        bail!("--duration must be above zero");
    }
    let postings = common.postings.unwrap_or(match common.scenario {
        Scenario::Match => 100,
        Scenario::Mixed | Scenario::Watch => (common.workers / 2_000).min(200),
        Scenario::Register => 0,
    });
    let run_tag = format!(
        "lt{}-",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000_000)
    );
    Ok(RunConfig {
        workload: WorkloadConfig {
            scenario: common.scenario,
            seed: common.seed,
            workers: common.workers,
            employers: common.employers,
            postings,
            match_size: common.match_size.max(1),
            run_tag,
        },
        shape,
        duration: common.duration,
        warmup: common.warmup,
        sample_interval: common.sample_interval,
        request_timeout: common.timeout,
        progress: if common.quiet { ProgressMode::Off } else { ProgressMode::Auto },
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn write_outputs(report: &Report, common: &CommonArgs, title: &str) -> Result<()> {
    println!("{}", report.to_table());
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(report).context("encoding the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if let Some(path) = &common.plot {
        plot_samples(&report.timeline, title, path).with_context(|| format!("plotting to {}", path.display()))?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

fn shape_label(shape: &LoadShape) -> String {
    match shape {
        LoadShape::Closed { concurrency: 1 } => "closed loop, one caller".to_string(),
        LoadShape::Closed { concurrency } => format!("closed loop, {concurrency} callers"),
        LoadShape::Open { rate, .. } => format!("open loop, {rate:.0}/s"),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.mode {
        Mode::Engine { common } => {
            let mut config = run_config(&common)?;
            // The engine has one writer: engine mode always has a single caller.
            config.shape = match config.shape {
                LoadShape::Closed { .. } => LoadShape::Closed { concurrency: 1 },
                LoadShape::Open { rate, .. } => LoadShape::Open { rate, max_in_flight: 1 },
            };
            let title = format!(
                "engine, {}, {} workers, {}",
                common.scenario.name(),
                common.workers,
                shape_label(&config.shape)
            );
            eprintln!("building a market of {} workers in-process", common.workers);
            let report = run_engine(&config)?;
            write_outputs(&report, &common, &title)
        }
        Mode::Grpc { common, grpc } => {
            let config = run_config(&common)?;
            let source = if let Some(replicas) = grpc.spawn_cluster {
                ServerSource::SpawnCluster(ClusterConfig {
                    replicas,
                    server_binary: grpc.server_binary.clone().unwrap_or_else(default_server_binary),
                    durability: grpc.durability.clone(),
                    data_parent: grpc.data_dir_parent.clone(),
                    server_threads: grpc.server_threads.unwrap_or_else(cores),
                    raft: RaftTiming::LOADTEST,
                })
            } else if grpc.spawn_server {
                ServerSource::Spawn(SpawnConfig {
                    durability: grpc.durability.clone(),
                    data_parent: grpc.data_dir_parent.clone(),
                    server_threads: grpc.server_threads.unwrap_or_else(cores),
                    raft_group_of_one: grpc.raft_bootstrap,
                })
            } else {
                let Some(token) = grpc.token.clone() else {
                    bail!("--addr needs --token (or LINGGONG_TOKEN): an operator token of that server")
                };
                ServerSource::Remote {
                    addr: grpc.addr.clone().unwrap_or_default(),
                    token,
                    metrics_addr: grpc.metrics_addr,
                }
            };
            let spawned = grpc.spawn_server || grpc.spawn_cluster.is_some();
            let grpc_config = GrpcConfig {
                // An in-process server loads them with its demo loader; a spawned cluster cannot
                // (its members only take writes once initialised), so they go through the API.
                register_workers: match &source {
                    ServerSource::Spawn(_) => false,
                    ServerSource::SpawnCluster(_) => true,
                    ServerSource::Remote { .. } => !grpc.skip_worker_setup,
                },
                source,
                connections: grpc.connections.max(1),
                client_threads: grpc.client_threads.unwrap_or_else(cores),
                stations: grpc.stations,
                request_ids: !grpc.no_request_ids,
                notes: !common.quiet,
            };
            let durability = if spawned { format!(", durability {}", grpc.durability) } else { String::new() };
            let replicas = grpc.spawn_cluster.map(|n| format!(", {n} replicas")).unwrap_or_default();
            let title = format!(
                "gRPC, {}, {} workers{durability}{replicas}, {}",
                common.scenario.name(),
                common.workers,
                shape_label(&config.shape)
            );
            let report = run_grpc(&config, &grpc_config)?;
            write_outputs(&report, &common, &title)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn rate_selects_the_open_loop() {
        let cli = Cli::try_parse_from(["linggong-loadtest", "engine", "--rate", "2000", "--duration", "2s"]).unwrap();
        let Mode::Engine { common } = cli.mode else { panic!("engine mode") };
        let config = run_config(&common).unwrap();
        assert_eq!(config.shape, LoadShape::Open { rate: 2000.0, max_in_flight: 1024 });
        assert!(Cli::try_parse_from(["linggong-loadtest", "grpc"]).is_err(), "grpc needs --addr or --spawn-server");
        assert!(Cli::try_parse_from(["linggong-loadtest", "grpc", "--spawn-server", "--addr", "x:1"]).is_err());
        let cli = Cli::try_parse_from(["linggong-loadtest", "grpc", "--spawn-cluster", "3"]).unwrap();
        let Mode::Grpc { grpc, .. } = cli.mode else { panic!("grpc mode") };
        assert_eq!(grpc.spawn_cluster, Some(3));
        for conflicting in [["--spawn-server"], ["--raft-bootstrap"], ["--addr=x:1"]] {
            let args = ["linggong-loadtest", "grpc", "--spawn-cluster", "3"].into_iter().chain(conflicting);
            assert!(Cli::try_parse_from(args).is_err(), "{conflicting:?} with --spawn-cluster");
        }
    }
}
