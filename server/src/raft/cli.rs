//! Command-line settings of cluster mode (`serve --raft-listen …`) and the
//! `cluster` operator subcommands.

use clap::{Args, Subcommand};
use std::net::SocketAddr;

/// Cluster mode of `serve`: on when `--raft-listen` is given.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Raft listener address (replication and operator calls, cluster secret only; port 0 picks a free port). Turns cluster mode on.
    #[arg(long, env = "LINGGONG_RAFT_LISTEN")]
    pub raft_listen: Option<SocketAddr>,
    /// Address the other members reach this Raft listener at (default: the bound address).
    #[arg(long, env = "LINGGONG_RAFT_ADVERTISE")]
    pub raft_advertise: Option<String>,
    /// This member's id in the cluster (never reuse one for a different machine).
    #[arg(long, env = "LINGGONG_NODE_ID", default_value_t = 1)]
    pub node_id: u64,
    /// The cluster secret every member shares (Raft and operator calls); required in cluster mode.
    #[arg(long, env = "LINGGONG_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Leader heartbeat, milliseconds.
    #[arg(long, env = "LINGGONG_RAFT_HEARTBEAT_MS", default_value_t = 50)]
    pub raft_heartbeat_ms: u64,
    /// Election timeout (lower bound; the upper is 1.5 times it), milliseconds.
    #[arg(long, env = "LINGGONG_RAFT_ELECTION_MS", default_value_t = 300)]
    pub raft_election_ms: u64,
    /// Snapshot the state machine after this many applied Raft entries.
    #[arg(long, env = "LINGGONG_RAFT_SNAPSHOT_EVERY", default_value_t = 100_000)]
    pub raft_snapshot_every: u64,
    /// Initialise a one-member cluster if this data directory has never been part of one.
    #[arg(long, env = "LINGGONG_RAFT_BOOTSTRAP")]
    pub raft_bootstrap: bool,
}

/// Resolved cluster settings.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Raft listener.
    pub raft_listen: SocketAddr,
    /// Advertised Raft address, if not the bound one.
    pub advertise: Option<String>,
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
    /// Initialise a lone member on a fresh data directory.
    pub bootstrap: bool,
}

impl ClusterArgs {
    /// The settings, when cluster mode is on; an error when the secret is missing.
    pub fn resolve(&self) -> Result<Option<ClusterSettings>, String> {
        let Some(raft_listen) = self.raft_listen else { return Ok(None) };
        let secret = self
            .cluster_secret
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or("cluster mode (--raft-listen) needs --cluster-secret or LINGGONG_CLUSTER_SECRET".to_string())?;
        Ok(Some(ClusterSettings {
            raft_listen,
            advertise: self.raft_advertise.clone(),
            node_id: self.node_id,
            secret,
            heartbeat_ms: self.raft_heartbeat_ms.max(1),
            election_ms: self.raft_election_ms.max(3 * self.raft_heartbeat_ms.max(1)),
            snapshot_every: self.raft_snapshot_every.max(1),
            bootstrap: self.raft_bootstrap,
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
