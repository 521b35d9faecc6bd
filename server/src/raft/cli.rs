//! Settings of cluster mode (`serve --raft-listen …` or the config file's
//! `[cluster]` table) and the `cluster` operator subcommands.

use clap::{Args, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Cluster mode of `serve`: on when `--raft-listen` (or `[cluster] raft_listen`) is given.
/// Precedence: flag, then environment variable, then the config file's
/// `[cluster]` table ([`ClusterFile`]), then the default.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Raft listener address (replication and operator calls, cluster secret only; port 0 picks a free port). Turns cluster mode on.
    #[arg(long, env = "LINGGONG_RAFT_LISTEN")]
    pub raft_listen: Option<SocketAddr>,
    /// Address the other members reach this Raft listener at (default: the bound address).
    #[arg(long, env = "LINGGONG_RAFT_ADVERTISE")]
    pub raft_advertise: Option<String>,
    /// Address clients reach this member's gRPC listener at, named to clients that call a follower (default: the bound address).
    #[arg(long, env = "LINGGONG_GRPC_ADVERTISE")]
    pub grpc_advertise: Option<String>,
    /// Address of this member's HTTP listener as browsers reach it (default: the bound address).
    #[arg(long, env = "LINGGONG_HTTP_ADVERTISE")]
    pub http_advertise: Option<String>,
    /// This member's id in the cluster (never reuse one for a different machine). [default: 1]
    #[arg(long, env = "LINGGONG_NODE_ID")]
    pub node_id: Option<u64>,
    /// The cluster secret every member shares (Raft and operator calls); required in cluster mode.
    #[arg(long, env = "LINGGONG_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Leader heartbeat, milliseconds. [default: 50]
    #[arg(long, env = "LINGGONG_RAFT_HEARTBEAT_MS")]
    pub raft_heartbeat_ms: Option<u64>,
    /// Election timeout (lower bound; the upper is 1.5 times it), milliseconds. [default: 300]
    #[arg(long, env = "LINGGONG_RAFT_ELECTION_MS")]
    pub raft_election_ms: Option<u64>,
    /// Snapshot the state machine after this many applied Raft entries. [default: 100000]
    #[arg(long, env = "LINGGONG_RAFT_SNAPSHOT_EVERY")]
    pub raft_snapshot_every: Option<u64>,
    /// Snapshot, too, once this many bytes of commands were applied since the last snapshot
    /// (bounds the Raft log kept in memory). [default: 268435456]
    #[arg(long, env = "LINGGONG_RAFT_SNAPSHOT_EVERY_BYTES")]
    pub raft_snapshot_every_bytes: Option<u64>,
    /// Initialise a one-member cluster if this data directory has never been part of one.
    #[arg(long, env = "LINGGONG_RAFT_BOOTSTRAP")]
    pub raft_bootstrap: bool,
}

/// The config file's `[cluster]` table: the cluster flags under their names
/// without the `raft-`/`cluster-` prefix where it is redundant.
///
/// ```toml
/// [cluster]
/// raft_listen = "10.0.0.1:7001"
/// node_id = 1
/// secret_file = "cluster-secret"   # or secret = "…"; the file keeps it out of the config
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Raft listener address; cluster mode is on when set.
    pub raft_listen: Option<SocketAddr>,
    /// Advertised Raft address.
    pub raft_advertise: Option<String>,
    /// Advertised client gRPC address.
    pub grpc_advertise: Option<String>,
    /// Advertised HTTP address.
    pub http_advertise: Option<String>,
    /// Member id.
    pub node_id: Option<u64>,
    /// The cluster secret.
    pub secret: Option<String>,
    /// A file holding the cluster secret (relative to the config file; surrounding whitespace is ignored).
    pub secret_file: Option<PathBuf>,
    /// Heartbeat, milliseconds.
    pub heartbeat_ms: Option<u64>,
    /// Election timeout lower bound, milliseconds.
    pub election_ms: Option<u64>,
    /// Snapshot interval, applied entries.
    pub snapshot_every: Option<u64>,
    /// Snapshot interval, bytes of applied commands.
    pub snapshot_every_bytes: Option<u64>,
    /// Initialise a lone member on a fresh data directory.
    pub bootstrap: Option<bool>,
}

/// Resolved cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Raft listener.
    pub raft_listen: SocketAddr,
    /// Advertised Raft address, if not the bound one.
    pub advertise: Option<String>,
    /// Advertised client gRPC address, if not the bound one.
    pub grpc_advertise: Option<String>,
    /// Advertised HTTP address, if not the bound one.
    pub http_advertise: Option<String>,
    /// Member id.
    pub node_id: u64,
    /// Cluster secret.
    pub secret: String,
    /// Heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Election timeout lower bound, ms.
    pub election_ms: u64,
    /// Snapshot interval, entries.
    pub snapshot_every: u64,
    /// Snapshot interval, bytes of applied commands.
    pub snapshot_every_bytes: u64,
    /// Initialise a lone member on a fresh data directory.
    pub bootstrap: bool,
}

impl ClusterArgs {
    /// The settings, when cluster mode is on; an error when the secret is
    /// missing. `file` is the config file's `[cluster]` table and `base` the
    /// directory relative paths in it are relative to.
    pub fn resolve(&self, file: &ClusterFile, base: &Path) -> Result<Option<ClusterSettings>, String> {
        let Some(raft_listen) = self.raft_listen.or(file.raft_listen) else { return Ok(None) };
        let from_file = match (&file.secret, &file.secret_file) {
            (Some(_), Some(_)) => return Err("[cluster] secret and secret_file: give one".into()),
            (Some(s), None) => Some(s.clone()),
            (None, Some(p)) => {
                let path = base.join(p);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("[cluster] secret_file {}: {e}", path.display()))?;
                Some(text.trim().to_string())
            }
            (None, None) => None,
        };
        let secret = self.cluster_secret.clone().or(from_file).filter(|s| !s.is_empty()).ok_or(
            "cluster mode needs a cluster secret: --cluster-secret, LINGGONG_CLUSTER_SECRET or [cluster] secret / secret_file"
                .to_string(),
        )?;
        let heartbeat_ms = self.raft_heartbeat_ms.or(file.heartbeat_ms).unwrap_or(50).max(1);
        Ok(Some(ClusterSettings {
            raft_listen,
            advertise: self.raft_advertise.clone().or_else(|| file.raft_advertise.clone()),
            grpc_advertise: self.grpc_advertise.clone().or_else(|| file.grpc_advertise.clone()),
            http_advertise: self.http_advertise.clone().or_else(|| file.http_advertise.clone()),
            node_id: self.node_id.or(file.node_id).unwrap_or(1),
            secret,
            heartbeat_ms,
            election_ms: self.raft_election_ms.or(file.election_ms).unwrap_or(300).max(3 * heartbeat_ms),
            snapshot_every: self.raft_snapshot_every.or(file.snapshot_every).unwrap_or(100_000).max(1),
            snapshot_every_bytes: self
                .raft_snapshot_every_bytes
                .or(file.snapshot_every_bytes)
                .unwrap_or(super::DEFAULT_SNAPSHOT_EVERY_BYTES)
                .max(1),
            bootstrap: self.raft_bootstrap || file.bootstrap.unwrap_or(false),
        }))
    }
}

/// Where an operator call goes.
#[derive(Debug, Clone, Args)]
pub struct ClusterTarget {
    /// Raft address of a member (for changes: the leader's).
    #[arg(long, env = "LINGGONG_RAFT_ADDR", default_value = "127.0.0.1:7001")]
    pub at: String,
    /// The cluster secret.
    #[arg(long, env = "LINGGONG_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: String,
}

/// `linggong-server cluster …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCli {
    /// Initialise a new cluster with its first voters (`--member ID=HOST:PORT`, repeated).
    Init {
        /// Target member.
        #[command(flatten)]
        target: ClusterTarget,
        /// A first voter: `ID=HOST:PORT` (its Raft address).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Add a member as a learner: it receives the log and a snapshot but does not vote yet.
    AddLearner {
        /// Target member (the leader).
        #[command(flatten)]
        target: ClusterTarget,
        /// The new member's id (never reuse one).
        #[arg(long)]
        id: u64,
        /// Its Raft address.
        #[arg(long)]
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Target member (the leader).
        #[command(flatten)]
        target: ClusterTarget,
        /// The member's id.
        #[arg(long)]
        id: u64,
    },
    /// Remove a member.
    Remove {
        /// Target member (the leader).
        #[command(flatten)]
        target: ClusterTarget,
        /// The member's id.
        #[arg(long)]
        id: u64,
    },
    /// One member's applied index, state hash and invariant check (walks the whole state).
    Check {
        /// Target member.
        #[command(flatten)]
        target: ClusterTarget,
    },
    /// Members with their roles, the term, applied index, state hash and replication lag (JSON).
    Status {
        /// Target member.
        #[command(flatten)]
        target: ClusterTarget,
    },
}

impl ClusterCli {
    /// The target and the call.
    pub fn request(&self) -> Result<(&ClusterTarget, super::AdminRequest), String> {
        use super::AdminRequest;
        Ok(match self {
            ClusterCli::Init { target, members } => {
                let mut map = std::collections::BTreeMap::new();
                for m in members {
                    let (id, addr) = m.split_once('=').ok_or(format!("--member {m}: expected ID=HOST:PORT"))?;
                    let id: u64 = id.parse().map_err(|_| format!("--member {m}: the id is not a number"))?;
                    map.insert(id, addr.to_string());
                }
                (target, AdminRequest::Init { members: map })
            }
            ClusterCli::AddLearner { target, id, addr } => {
                (target, AdminRequest::AddLearner { id: *id, addr: addr.clone() })
            }
            ClusterCli::Promote { target, id } => (target, AdminRequest::Promote { id: *id }),
            ClusterCli::Remove { target, id } => (target, AdminRequest::Remove { id: *id }),
            ClusterCli::Status { target } => (target, AdminRequest::Status),
            ClusterCli::Check { target } => (target, AdminRequest::Check),
        })
    }
}
