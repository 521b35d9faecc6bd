//! `--spawn-cluster N`: N local replicas, each a child process of the built `linggong-server`
//! binary on 127.0.0.1 with ephemeral ports (gRPC, HTTP, metrics and Raft listeners), all sharing
//! one operator token (a `[[tokens]]` entry in a config file written for the run) and one cluster
//! secret; initialised with the server's `Init` admin call, the leader found by following
//! `NOT_LEADER`, and stopped (SIGTERM, then SIGKILL, bounded) when the run ends or fails. A child
//! also gets SIGTERM from the kernel if the tool dies first (`PR_SET_PDEATHSIG`).

use crate::grpc_mode::{parse_durability, temp_data_dir, RaftTiming};
use linggong_server::proto::v1 as pb;
use linggong_server::raft::{admin_call, AdminRequest};
use pb::stats_service_client::StatsServiceClient;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_types::StatusExt;

/// Most replicas `--spawn-cluster` starts.
pub const MAX_REPLICAS: usize = 9;

/// How long a replica may take from spawn to serving (a debug build on a loaded machine is slow).
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long the cluster may take from `Init` to a leader clients can reach.
const LEADER_WITHIN: Duration = Duration::from_secs(30);
/// How long a stopped replica may take to exit after SIGTERM before it is killed.
const EXIT_WITHIN: Duration = Duration::from_secs(10);
/// A county every operator token covers, for the leader probe (`CountyStats`, a linearizable read).
const PROBE_COUNTY: u32 = 141002;

/// How to start the replicas.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterConfig {
    /// Replicas (members of the first configuration), 1 to [`MAX_REPLICAS`].
    pub replicas: usize,
    /// The `linggong-server` binary to run.
    pub server_binary: PathBuf,
    /// Durability of every replica: `always`, `none` or `interval:<ms>`.
    pub durability: String,
    /// Parent of the temporary directory holding the data directories (default: the system temp dir).
    pub data_parent: Option<PathBuf>,
    /// Worker threads of each replica's runtime (`TOKIO_WORKER_THREADS`).
    pub server_threads: usize,
    /// Heartbeat, election timeout and snapshot interval of every replica.
    pub raft: RaftTiming,
}

/// Why the replicas could not be started or initialised.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A setting is unusable.
    #[error("bad {what}: {detail}")]
    BadSetting {
        /// Which setting.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A file of the run could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A replica exited or did not become ready.
    #[error("replica {node}: {detail}")]
    Replica {
        /// Its member id.
        node: u64,
        /// What happened (with the end of its log when it exited).
        detail: String,
    },
    /// The cluster could not be initialised.
    #[error("initialising the cluster: {0}")]
    Init(String),
    /// No leader was reachable in time.
    #[error("no leader within {within:?}: {last}")]
    NoLeader {
        /// The bound.
        within: Duration,
        /// The last answer seen.
        last: String,
    },
}

/// One replica process.
#[derive(Debug)]
pub struct Replica {
    /// Member id (1..=N).
    pub node_id: u64,
    /// Bound client gRPC address.
    pub grpc: SocketAddr,
    /// Bound Raft listener address.
    pub raft: SocketAddr,
    /// Bound metrics address.
    pub metrics: Option<SocketAddr>,
    child: Child,
    stderr: PathBuf,
}

impl Replica {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A process of the cluster as the report names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessRef {
    /// Member id.
    pub node_id: u64,
    /// Process id.
    pub pid: u32,
    /// `leader` or `follower` when the load started.
    pub role: &'static str,
}

/// The running replicas; dropping it stops them and removes their data directories.
pub struct LocalCluster {
    replicas: Vec<Replica>,
    secret: String,
    token: String,
    /// Holds the data directories, logs and the config file.
    root: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts `config.replicas` replica processes and waits (bounded) until each serves. They are
    /// not yet a cluster: [`LocalCluster::initialise`] makes them one.
    pub fn spawn(config: &ClusterConfig) -> Result<LocalCluster, ClusterError> {
        if config.replicas == 0 || config.replicas > MAX_REPLICAS {
            return Err(ClusterError::BadSetting {
                what: "--spawn-cluster",
                detail: format!("{} replicas: give 1 to {MAX_REPLICAS}", config.replicas),
            });
        }
        parse_durability(&config.durability)
            .map_err(|e| ClusterError::BadSetting { what: "durability", detail: e.to_string() })?;
        if !config.server_binary.is_file() {
            return Err(ClusterError::BadSetting {
                what: "server binary",
                detail: format!(
                    "{} is not a file (build it with `cargo build --release -p linggong-server`, or give --server-binary)",
                    config.server_binary.display()
                ),
            });
        }
        let root = temp_data_dir(config.data_parent.as_deref(), "linggong-cluster-")
            .map_err(|source| ClusterError::Io { what: "creating the cluster directory".into(), source })?;
        let token = linggong_server::auth::generate_token();
        let secret = linggong_server::auth::generate_token();
        let config_file = root.path().join("linggong.toml");
        let text = format!(
            "# written by linggong-loadtest for one run: every replica accepts the same operator token\n\
             [[tokens]]\nname = \"loadtest\"\nsha256 = \"{}\"\nrole = \"operator\"\n",
            linggong_server::auth::hash_token(&token)
        );
        std::fs::write(&config_file, text)
            .map_err(|source| ClusterError::Io { what: format!("writing {}", config_file.display()), source })?;
        let mut cluster = LocalCluster { replicas: Vec::with_capacity(config.replicas), secret, token, root };
        for node_id in 1..=config.replicas as u64 {
            let replica = cluster.spawn_replica(config, node_id, &config_file)?;
            cluster.replicas.push(replica);
        }
        Ok(cluster)
    }

    fn spawn_replica(&self, config: &ClusterConfig, node_id: u64, config_file: &Path) -> Result<Replica, ClusterError> {
        let base = self.root.path();
        let data = base.join(format!("data-{node_id}"));
        let ready = base.join(format!("ready-{node_id}"));
        let stdout = base.join(format!("stdout-{node_id}.txt"));
        let stderr = base.join(format!("stderr-{node_id}.txt"));
        let io = |what: String| move |source: std::io::Error| ClusterError::Io { what, source };
        let timing = config.raft;
        let mut command = Command::new(&config.server_binary);
        // The tool's own LINGGONG_* settings (LINGGONG_ADDR, LINGGONG_TOKEN, …) are not the replicas'.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LINGGONG_") {
                command.env_remove(key);
            }
        }
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--raft-listen", "127.0.0.1:0", "--node-id", &node_id.to_string()])
            .args(["--raft-heartbeat-ms", &timing.heartbeat_ms.to_string()])
            .args(["--raft-election-ms", &timing.election_ms.to_string()])
            .args(["--raft-snapshot-every", &timing.snapshot_every.to_string()])
            .args(["--durability", &config.durability, "--no-dev-token", "--shutdown-grace-ms", "2000"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(config_file)
            .arg("--ready-file")
            .arg(&ready)
            .env("LINGGONG_CLUSTER_SECRET", &self.secret)
            .env("TOKIO_WORKER_THREADS", config.server_threads.max(1).to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).map_err(io(format!("creating {}", stdout.display())))?)
            .stderr(std::fs::File::create(&stderr).map_err(io(format!("creating {}", stderr.display())))?);
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
        // which is async-signal-safe; it allocates nothing and touches no locks.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| ClusterError::Replica {
            node: node_id,
            detail: format!("starting {}: {e}", config.server_binary.display()),
        })?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let field = |key: &str| {
                    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<SocketAddr>().ok())
                };
                if let (Some(grpc), Some(raft)) = (field("grpc="), field("raft=")) {
                    return Ok(Replica { node_id, grpc, raft, metrics: field("metrics="), child, stderr });
                }
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&stderr).unwrap_or_default();
                let why = match exited {
                    Some(status) => format!("exited with {status} before serving"),
                    None => format!("not serving within {READY_WITHIN:?}"),
                };
                return Err(ClusterError::Replica { node: node_id, detail: format!("{why}:\n{log}") });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The operator token every replica accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The replicas, by member id.
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// The directory holding the data directories and the replicas' logs (`stderr-N.txt`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Makes the replicas one cluster (the `Init` admin call at member 1 with every member as a
    /// voter, what `linggong-server cluster init` sends), then finds the leader as a client
    /// does: from member 1, following `NOT_LEADER` answers to the `leader_addr` they name, until
    /// a linearizable read succeeds (bounded). Returns the leader.
    pub async fn initialise(&self) -> Result<&Replica, ClusterError> {
        let members: BTreeMap<u64, String> = self.replicas.iter().map(|r| (r.node_id, r.raft.to_string())).collect();
        let first = &self.replicas[0];
        admin_call(&first.raft.to_string(), &self.secret, &AdminRequest::Init { members })
            .await
            .map_err(ClusterError::Init)?;
        let deadline = Instant::now() + LEADER_WITHIN;
        let mut at = first.grpc;
        let mut last = String::from("no answer yet");
        loop {
            if Instant::now() >= deadline {
                return Err(ClusterError::NoLeader { within: LEADER_WITHIN, last });
            }
            match self.probe(at).await {
                Probe::Leader => {
                    return self.replicas.iter().find(|r| r.grpc == at).ok_or_else(|| ClusterError::NoLeader {
                        within: LEADER_WITHIN,
                        last: format!("{at} answered as leader but is none of the replicas"),
                    })
                }
                Probe::Redirect(leader) => {
                    last = format!("{at} named {leader} as the leader");
                    at = leader;
                    continue;
                }
                Probe::Retry(why) => {
                    last = format!("{at}: {why}");
                    // Not elected yet, or a stale name: start again at member 1.
                    at = first.grpc;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One linearizable read at `addr`: answered (the leader), `NOT_LEADER` naming another
    /// address, or not yet (no leader known, not reachable).
    async fn probe(&self, addr: SocketAddr) -> Probe {
        let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
            Ok(e) => e.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(5)),
            Err(e) => return Probe::Retry(e.to_string()),
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => return Probe::Retry(format!("connecting: {e}")),
        };
        let mut request = tonic::Request::new(pb::CountyStatsRequest { county_code: PROBE_COUNTY });
        match format!("Bearer {}", self.token).parse() {
            Ok(value) => {
                request.metadata_mut().insert("authorization", value);
            }
            Err(_) => return Probe::Retry("the token is not printable ASCII".into()),
        }
        match StatsServiceClient::new(channel).county_stats(request).await {
            Ok(_) => Probe::Leader,
            Err(status) => {
                let details = status.get_error_details();
                let named = details
                    .error_info()
                    .filter(|i| i.reason == "NOT_LEADER")
                    .and_then(|i| i.metadata.get("leader_addr"))
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                match named {
                    Some(leader) if leader != addr => Probe::Redirect(leader),
                    _ => Probe::Retry(format!("{}: {}", status.code(), status.message())),
                }
            }
        }
    }

    /// The processes with their roles, `leader` the one that answered as leader.
    pub fn processes(&self, leader: &Replica) -> Vec<ProcessRef> {
        self.replicas
            .iter()
            .map(|r| ProcessRef {
                node_id: r.node_id,
                pid: r.pid(),
                role: if r.node_id == leader.node_id { "leader" } else { "follower" },
            })
            .collect()
    }

    /// Stops every replica: SIGTERM, then SIGKILL for one still running after [`EXIT_WITHIN`].
    /// Returns the replicas that had to be killed or had already exited with a failure, with
    /// their last log lines.
    pub fn stop(mut self) -> Vec<String> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for r in &mut self.replicas {
            if matches!(r.child.try_wait(), Ok(None)) {
                // SAFETY: kill(2) on our own child's pid, not yet reaped; no memory is involved.
                unsafe {
                    libc::kill(r.pid() as i32, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + EXIT_WITHIN;
        for r in &mut self.replicas {
            loop {
                match r.child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            problems.push(format!("replica {} exited with {status}: {}", r.node_id, r.log_tail()));
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    Ok(None) | Err(_) => {
                        let _ = r.child.kill();
                        let _ = r.child.wait();
                        problems.push(format!("replica {} did not stop within {EXIT_WITHIN:?}: killed", r.node_id));
                        break;
                    }
                }
            }
        }
        self.replicas.clear();
        problems
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

enum Probe {
    Leader,
    Redirect(SocketAddr),
    Retry(String),
}

/// The `linggong-server` binary beside this executable (`target/release/linggong-loadtest` next
/// to `target/release/linggong-server`), else the one on `PATH`.
pub fn default_server_binary() -> PathBuf {
    let name = "linggong-server";
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join(name)));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| PathBuf::from(name))
}
