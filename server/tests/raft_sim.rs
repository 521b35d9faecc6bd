//! A deterministic simulation of a three-member cluster, in one process on a
//! current-thread tokio runtime with the clock paused (time jumps to the next
//! timer whenever every task waits), one seed per run.
//!
//! Members are real [`ClusterNode`]s over the real state machine
//! (`raft::state_machine`, `ServiceState::apply`, snapshots to a temporary
//! directory); the Raft log is an in-memory store (the on-disk log has its own
//! conformance and recovery tests in `raft_cluster.rs`); the transport is a
//! simulated network driven by the seed's RNG that drops, delays, duplicates
//! (a copy delivered again later, so also out of order) requests and answers,
//! and cuts and heals links and whole members. Clients register workers,
//! submit postings, instant-match and answer offers with request ids,
//! retrying on timeouts and following NOT_LEADER.
//!
//! After each seed, with the network healed: every acknowledged write is
//! present on every member with its first result; nothing was applied twice
//! (the remembered results of all request ids ever sent cover the service
//! sequence exactly once); the engine's invariants hold; no worker holds two
//! live offers; no posting has more live offers than its headcount; all
//! members reach the same applied index with the same state hash and the same
//! state bytes; every member's history log is gap-free up to its service
//! sequence and holds the same record under a number as every other member.
//!
//! `LINGGONG_SIM_SEEDS` sets the number of seeds (CI default below),
//! `LINGGONG_SIM_SEED` the first one. A seed fixes the workload, the
//! network's faults, the partitions and each member's election timeout
//! (openraft draws its timeout from its own RNG, so the range it draws from
//! is one millisecond wide): a failing seed, named in the message, replays
//! the same run. `a_seed_replays_the_same_run` checks that on the first
//! seeds (`LINGGONG_SIM_REPLAY_SEEDS`, 20 by default). Before the timeouts
//! came from the seed, 13 of seeds 1-20 replayed identically; since, 200 of
//! seeds 1-200 have.

mod common;

use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{
    Command, EmployerSpec, Engine, LatLon, OfferId, OfferResponse, OfferState, Outcome, PostingSpec, Timestamp,
    WorkerSpec,
};
use linggong_server::convert::wal::command_fingerprint;
use linggong_server::host::{HostConfig, SubmitError};
use linggong_server::raft::state_machine::StateMachine;
use linggong_server::raft::{ClusterNode, MemberNode, RaftOptions, TypeConfig};
use linggong_server::state::{Applied, RequestLookup, ServiceState};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, Raft, RaftLogReader, StorageError, Vote};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::time::Duration;

type NodeId = u64;
const T0: i64 = 1_700_000_000_000;
const MEMBERS: u64 = 3;

// ---------------------------------------------------------------- log store

#[derive(Default)]
struct MemInner {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    committed: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

/// An in-memory Raft log (clones share it).
#[derive(Clone, Default)]
struct MemLog(Arc<parking_lot::Mutex<MemInner>>);

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.0.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.0.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        {
            let mut inner = self.0.lock();
            for e in entries {
                inner.entries.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.0.lock();
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

// ---------------------------------------------------------------- network

#[derive(Default, Debug, Clone, Copy)]
struct NetStats {
    sent: u64,
    dropped: u64,
    answers_lost: u64,
    duplicated: u64,
    cuts: u64,
    snapshots: u64,
}

struct NetState {
    rng: ChaCha8Rng,
    nodes: BTreeMap<NodeId, Raft<TypeConfig>>,
    /// Cut links, as (smaller id, larger id).
    cut: BTreeSet<(NodeId, NodeId)>,
    faults: bool,
    stats: NetStats,
}

/// The simulated network shared by all members.
#[derive(Clone)]
struct SimNet(Arc<parking_lot::Mutex<NetState>>);

/// What happens to one call.
struct Plan {
    request_delay: Duration,
    answer_delay: Duration,
    drop_request: bool,
    drop_answer: bool,
    duplicate_after: Option<Duration>,
}

fn link(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl SimNet {
    fn new(seed: u64) -> Self {
        SimNet(Arc::new(parking_lot::Mutex::new(NetState {
            rng: ChaCha8Rng::seed_from_u64(seed),
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            faults: true,
            stats: NetStats::default(),
        })))
    }

    fn with_rng<R>(&self, f: impl FnOnce(&mut ChaCha8Rng) -> R) -> R {
        f(&mut self.0.lock().rng)
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        !self.0.lock().cut.contains(&link(a, b))
    }

    fn plan(&self, from: NodeId, to: NodeId) -> Plan {
        let mut s = self.0.lock();
        s.stats.sent += 1;
        let faults = s.faults;
        let cut = s.cut.contains(&link(from, to));
        let delay = |rng: &mut ChaCha8Rng| {
            let ms = if faults && rng.random_bool(0.05) { rng.random_range(50..400) } else { rng.random_range(0..15) };
            Duration::from_millis(ms)
        };
        let request_delay = delay(&mut s.rng);
        let answer_delay = delay(&mut s.rng);
        let drop_request = cut || (faults && s.rng.random_bool(0.04));
        let drop_answer = faults && s.rng.random_bool(0.04);
        let duplicate_after =
            (faults && s.rng.random_bool(0.04)).then(|| Duration::from_millis(s.rng.random_range(1..600)));
        if drop_request {
            s.stats.dropped += 1;
        }
        if duplicate_after.is_some() {
            s.stats.duplicated += 1;
        }
        Plan { request_delay, answer_delay, drop_request, drop_answer, duplicate_after }
    }

    fn node(&self, id: NodeId) -> Option<Raft<TypeConfig>> {
        self.0.lock().nodes.get(&id).cloned()
    }

    /// One call from `from` to `to`, with the seed's faults.
    async fn call<Req, Resp, E, F, Fut>(
        &self,
        from: NodeId,
        to: NodeId,
        req: Req,
        deliver: F,
    ) -> Result<Resp, RPCError<NodeId, MemberNode, RaftError<NodeId, E>>>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Raft<TypeConfig>, Req) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Resp, RaftError<NodeId, E>>> + Send + 'static,
    {
        let plan = self.plan(from, to);
        if let Some(after) = plan.duplicate_after {
            // A copy of the request arrives again later (after newer ones): its answer goes nowhere.
            let (net, req, deliver) = (self.clone(), req.clone(), deliver.clone());
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                if net.connected(from, to) {
                    if let Some(raft) = net.node(to) {
                        let _ = deliver(raft, req).await;
                    }
                }
            });
        }
        tokio::time::sleep(plan.request_delay).await;
        if plan.drop_request || !self.connected(from, to) {
            return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other("dropped"))));
        }
        let Some(raft) = self.node(to) else {
            return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other("no such member"))));
        };
        let answer = deliver(raft, req).await;
        tokio::time::sleep(plan.answer_delay).await;
        if plan.drop_answer || !self.connected(from, to) {
            self.0.lock().stats.answers_lost += 1;
            return Err(RPCError::Network(NetworkError::new(&std::io::Error::other("answer lost"))));
        }
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(to, e)))
    }
}

struct SimFactory {
    from: NodeId,
    net: SimNet,
}

struct SimConn {
    from: NodeId,
    to: NodeId,
    net: SimNet,
}

impl RaftNetworkFactory<TypeConfig> for SimFactory {
    type Network = SimConn;

    async fn new_client(&mut self, target: NodeId, _node: &MemberNode) -> SimConn {
        SimConn { from: self.from, to: target, net: self.net.clone() }
    }
}

impl RaftNetwork<TypeConfig> for SimConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.net.call(self.from, self.to, rpc, |raft, rpc| async move { raft.append_entries(rpc).await }).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.net.0.lock().stats.snapshots += 1;
        self.net.call(self.from, self.to, rpc, |raft, rpc| async move { raft.install_snapshot(rpc).await }).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.net.call(self.from, self.to, rpc, |raft, rpc| async move { raft.vote(rpc).await }).await
    }
}

// ---------------------------------------------------------------- workload

struct World {
    employer: EmployerSpec,
    postings: Vec<PostingSpec>,
    workers: Vec<WorkerSpec>,
}

fn world(rng: &mut ChaCha8Rng) -> World {
    let mut pop = Population::linfen(PopulationConfig { spread_m: 1_500.0, ..PopulationConfig::default() });
    let mut employer = pop.employer(1);
    employer.verified = true;
    let n_postings = rng.random_range(2..=4);
    let postings = (0..n_postings)
        .map(|i| {
            let mut p = pop.posting(i, "e1", Timestamp(T0));
            p.county = 141002;
            p.position = LatLon { lat: 36.08, lon: 111.52 };
            p.trade = "porter".into();
            p.headcount = rng.random_range(1..=3);
            p.daily_wage = 300;
            p
        })
        .collect();
    let n_workers = rng.random_range(4..=10);
    let workers = (0..n_workers)
        .map(|i| {
            let mut w = pop.worker(i);
            w.county = 141002;
            w.position = LatLon { lat: 36.08 + i as f64 * 0.0005, lon: 111.52 };
            w.trades = smallvec::smallvec![linggong_engine::TradeSkillSpec { trade: "porter".into(), level: 3 }];
            w.min_daily_wage = 100;
            w
        })
        .collect();
    World { employer, postings, workers }
}

/// Offers clients have learned of from acknowledged results.
#[derive(Default)]
struct Known {
    offers: Vec<(OfferId, String)>,
}

/// A write a client sent (with every retry under the same request id).
struct Sent {
    key: String,
    command: Command,
    /// The result answered to the client, if any.
    acked: Option<Applied>,
}

fn learn(known: &mut Known, applied: &Applied) {
    let mut add = |o: &linggong_engine::MatchedOffer| known.offers.push((o.offer, o.worker.to_string()));
    match &applied.outcome {
        Outcome::Matched { offers, .. } => offers.iter().for_each(&mut add),
        Outcome::WorkerUpserted { offer: Some(o), .. } => add(o),
        Outcome::OfferChanged { next_offer: Some(o), .. } => add(o),
        _ => {}
    }
}

/// Sends one write until it gets a definite answer or the client gives up.
async fn write(
    net: &SimNet,
    nodes: &[Arc<ClusterNode>],
    target: &mut usize,
    key: String,
    command: Command,
) -> Result<Sent, String> {
    for _attempt in 0..40 {
        let node = &nodes[*target];
        match tokio::time::timeout(Duration::from_millis(1_500), node.submit(None, Some(key.clone()), command.clone()))
            .await
        {
            Ok(Ok(applied)) => return Ok(Sent { key, command, acked: Some(applied) }),
            Ok(Err(SubmitError::Engine(_))) => return Ok(Sent { key, command, acked: None }),
            Ok(Err(SubmitError::RequestIdReused)) => return Err(format!("request id {key} reported as reused")),
            Ok(Err(SubmitError::NotLeader { leader_id: Some(l), .. })) if l >= 1 && l <= MEMBERS => {
                *target = (l - 1) as usize;
            }
            Ok(Err(_)) | Err(_) => {
                *target = net.with_rng(|r| r.random_range(0..nodes.len()));
                tokio::time::sleep(Duration::from_millis(net.with_rng(|r| r.random_range(10..200)))).await;
            }
        }
    }
    Ok(Sent { key, command, acked: None })
}

async fn client(
    id: usize,
    net: SimNet,
    nodes: Vec<Arc<ClusterNode>>,
    world: Arc<World>,
    known: Arc<parking_lot::Mutex<Known>>,
    ops: usize,
) -> Result<Vec<Sent>, String> {
    let mut sent = Vec::new();
    let mut target = id % nodes.len();
    for n in 0..ops {
        let command = {
            let known = known.lock();
            net.with_rng(|r| match r.random_range(0..10) {
                0..=2 => Command::UpsertWorker(world.workers[r.random_range(0..world.workers.len())].clone()),
                3 => Command::SubmitPosting(world.postings[r.random_range(0..world.postings.len())].clone()),
                4..=6 => Command::InstantMatch {
                    posting: world.postings[r.random_range(0..world.postings.len())].id.clone(),
                    max_offers: 0,
                },
                _ if !known.offers.is_empty() => {
                    let (offer, worker) = known.offers[r.random_range(0..known.offers.len())].clone();
                    let response = if r.random_bool(0.7) { OfferResponse::Accept } else { OfferResponse::Decline };
                    Command::RespondToOffer { offer, worker: worker.into(), response }
                }
                _ => Command::UpsertWorker(world.workers[r.random_range(0..world.workers.len())].clone()),
            })
        };
        let s = write(&net, &nodes, &mut target, format!("c{id}-{n}"), command).await?;
        if let Some(a) = &s.acked {
            learn(&mut known.lock(), a);
        }
        sent.push(s);
        tokio::time::sleep(Duration::from_millis(net.with_rng(|r| r.random_range(0..100)))).await;
    }
    Ok(sent)
}

/// Cuts and heals links and members while the faults last.
async fn partitions(net: SimNet) {
    loop {
        let pause = net.with_rng(|r| r.random_range(100..1_500));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let mut s = net.0.lock();
        if !s.faults {
            s.cut.clear();
            return;
        }
        let choice = s.rng.random_range(0..10);
        match choice {
            0..=3 => s.cut.clear(),
            4..=6 => {
                let lone = s.rng.random_range(1..=MEMBERS);
                for other in 1..=MEMBERS {
                    if other != lone {
                        s.cut.insert(link(lone, other));
                    }
                }
                s.stats.cuts += 1;
            }
            _ => {
                let a = s.rng.random_range(1..=MEMBERS);
                let b = 1 + (a % MEMBERS);
                s.cut.insert(link(a, b));
                s.stats.cuts += 1;
            }
        }
    }
}

// ---------------------------------------------------------------- checks

fn check_member(e: &Engine) -> Result<(), String> {
    e.check_invariants().map_err(|v| format!("engine invariants: {v}"))?;
    let mut holders = BTreeSet::new();
    let mut live_per_posting: BTreeMap<String, usize> = BTreeMap::new();
    for o in e.live_offers() {
        let worker = e.worker_by_key(o.worker).id.to_string();
        if !holders.insert(worker.clone()) {
            return Err(format!("worker {worker} holds two live offers"));
        }
        let posting =
            e.postings().get(o.posting as usize).ok_or_else(|| format!("offer {:?} names an unknown posting", o.id))?;
        *live_per_posting.entry(posting.id.to_string()).or_default() += 1;
    }
    for (id, live) in live_per_posting {
        let headcount = e.posting(&id).map_or(0, |p| p.headcount as usize);
        if live > headcount {
            return Err(format!("posting {id} has {live} live offers for a headcount of {headcount}"));
        }
    }
    Ok(())
}

fn check_writes(state: &ServiceState, sent: &[Sent]) -> Result<usize, String> {
    let mut seqs = BTreeSet::new();
    let mut acked = 0;
    for s in sent {
        let remembered = match state.lookup_request(&s.key, command_fingerprint(&s.command)) {
            RequestLookup::Repeat(first) => Some(first.clone()),
            RequestLookup::New => None,
            RequestLookup::Reused => return Err(format!("request id {} remembered for another command", s.key)),
        };
        if let Some(first) = &remembered {
            if !seqs.insert(first.seq) {
                return Err(format!("sequence {} remembered for two request ids", first.seq));
            }
        }
        let Some(a) = &s.acked else { continue };
        acked += 1;
        if a.seq == 0 {
            continue; // changed nothing, so nothing to find
        }
        if remembered.as_ref() != Some(a) {
            return Err(format!("acknowledged {} as {a:?}, the member remembers {remembered:?}", s.key));
        }
        let e = state.engine();
        match (&s.command, &a.outcome) {
            (Command::UpsertWorker(w), _) if e.worker(&w.id).is_none() => {
                return Err(format!("acknowledged worker {} lost", w.id))
            }
            (Command::SubmitPosting(p), _) if e.posting(&p.id).is_none() => {
                return Err(format!("acknowledged posting {} lost", p.id))
            }
            (Command::InstantMatch { .. }, Outcome::Matched { offers, .. }) => {
                // `Engine::offer` finds live offers only; a declined one is gone.
                for o in offers {
                    if let Some(x) = e.offer(o.offer) {
                        let holder = e.worker_by_key(x.worker).id.to_string();
                        if holder != o.worker.as_str() {
                            return Err(format!("acknowledged offer {:?} to {} is now {holder}'s", o.offer, o.worker));
                        }
                    }
                }
            }
            (Command::RespondToOffer { offer, response, .. }, _) => {
                let state = e.offer(*offer).map(|o| o.state);
                let kept = match response {
                    OfferResponse::Accept => state == Some(OfferState::Accepted),
                    OfferResponse::Decline => state.is_none(),
                };
                if !kept {
                    return Err(format!("acknowledged answer {response:?} to offer {offer:?}, the offer is {state:?}"));
                }
            }
            _ => {}
        }
    }
    // Every logged command of the simulation carries a request id, so the
    // remembered first results number the service sequence exactly once: a
    // second application would have consumed a sequence number of its own.
    let last = state.last_seq();
    if seqs.len() as u64 != last || seqs.iter().next_back().copied().unwrap_or(0) != last {
        return Err(format!("{} remembered results for a service sequence of {last}: applied twice?", seqs.len()));
    }
    Ok(acked)
}

/// What one seed did, to compare runs of the same seed.
#[derive(Debug, PartialEq)]
struct Summary {
    applied_index: u64,
    state_hash: String,
    acked: usize,
    sent: usize,
    stats: (u64, u64, u64, u64, u64, u64),
}

async fn run_seed(seed: u64) -> Result<Summary, String> {
    let net = SimNet::new(seed);
    let start = tokio::time::Instant::now();
    let snapshot_every = net.with_rng(|r| [10u64, 25, 1_000][r.random_range(0..3)]);
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for id in 1..=MEMBERS {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut host = HostConfig::new(dir.path());
        host.clock = Arc::new(move || Timestamp(T0 + start.elapsed().as_millis() as i64));
        let fresh = ServiceState::new(
            Engine::new(host.engine.clone(), host.regions.clone(), host.trades.clone()),
            host.dedupe_capacity,
        );
        let sm = StateMachine::open(
            &dir.path().join("raft"),
            fresh,
            host.engine.clone(),
            host.dedupe_capacity,
            host.event_history,
            host.segment_bytes,
        )?;
        let mut options = RaftOptions::new(id, id.to_string(), "sim");
        // Each member's election timeout is drawn from the seed, and the range
        // openraft draws from itself is one millisecond wide, so its own RNG
        // has no choice left.
        options.election_min_ms = net.with_rng(|r| r.random_range(300..450));
        options.election_max_ms = options.election_min_ms + 1;
        options.snapshot_every = snapshot_every;
        options.kept_after_snapshot = 3;
        let factory = SimFactory { from: id, net: net.clone() };
        let node =
            ClusterNode::start_with(&host, options, factory, MemLog::default(), sm).await.map_err(|e| e.to_string())?;
        net.0.lock().nodes.insert(id, node.raft.clone());
        nodes.push(node);
        dirs.push(dir);
    }
    let members: BTreeMap<NodeId, MemberNode> =
        (1..=MEMBERS).map(|id| (id, MemberNode::raft_only(id.to_string()))).collect();
    nodes[0].raft.initialize(members).await.map_err(|e| e.to_string())?;

    let world = Arc::new(world(&mut net.0.lock().rng));
    let known = Arc::new(parking_lot::Mutex::new(Known::default()));
    let mut sent = Vec::new();
    let mut target = 0;
    // The employer first, then the clients with the faults.
    sent.push(
        write(&net, &nodes, &mut target, "setup-employer".into(), Command::UpsertEmployer(world.employer.clone()))
            .await?,
    );
    let cutter = tokio::spawn(partitions(net.clone()));
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let ops = net.with_rng(|r| r.random_range(6..=14));
            tokio::spawn(client(c, net.clone(), nodes.clone(), world.clone(), known.clone(), ops))
        })
        .collect();
    for c in clients {
        sent.extend(c.await.map_err(|e| e.to_string())??);
    }

    // Heal and let the members converge: a last write by a leader of the
    // current term commits everything before it.
    {
        let mut s = net.0.lock();
        s.faults = false;
        s.cut.clear();
    }
    let _ = cutter.await;
    let barrier =
        write(&net, &nodes, &mut target, "barrier".into(), Command::UpsertWorker(world.workers[0].clone())).await?;
    if barrier.acked.is_none() {
        return Err("no write succeeded after the network healed".into());
    }
    sent.push(barrier);
    let healed = tokio::time::Instant::now();
    loop {
        let leader_log = nodes.iter().find(|n| n.is_leader()).map(|l| l.raft.metrics().borrow().last_log_index);
        let at: Vec<u64> = nodes.iter().map(|n| n.state_hash().0).collect();
        if let Some(Some(last)) = leader_log {
            if at.iter().all(|i| *i == last) {
                break;
            }
        }
        if healed.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "members did not converge within 60 s after healing: leader log {leader_log:?}, applied {at:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut acked = 0;
    let mut reference: Option<(u64, String, Vec<u8>)> = None;
    for n in &nodes {
        let (index, hash) = n.state_hash();
        let bytes = n.read_local(|s| -> Result<Vec<u8>, String> {
            check_member(s.engine()).map_err(|e| format!("member {}: {e}", n.id))?;
            acked = check_writes(s, &sent).map_err(|e| format!("member {}: {e}", n.id))?;
            rmp_serde::to_vec(&s.frozen()).map_err(|e| e.to_string())
        })?;
        match &reference {
            None => reference = Some((index, hash, bytes)),
            Some((i, h, b)) => {
                if (*i, h) != (index, &hash) {
                    return Err(format!("member {} at {index} hash {hash}, member 1 at {i} hash {h}", n.id));
                }
                if *b != bytes {
                    return Err(format!("member {} has other state bytes than member 1 at the same index", n.id));
                }
            }
        }
    }
    check_histories(&nodes)?;
    for n in &nodes {
        let _ = n.raft.shutdown().await;
    }
    let (applied_index, state_hash, _) = reference.unwrap_or_default();
    let st = net.0.lock().stats;
    Ok(Summary {
        applied_index,
        state_hash,
        acked,
        sent: sent.len(),
        stats: (st.sent, st.dropped, st.answers_lost, st.duplicated, st.cuts, st.snapshots),
    })
}

/// Every member's history log agrees with the others' and with its state.
fn check_histories(nodes: &[Arc<ClusterNode>]) -> Result<(), String> {
    let members: Vec<common::MemberHistory> = nodes
        .iter()
        .map(|n| common::MemberHistory {
            id: n.id,
            dir: n.shared.history_dir(),
            service_seq: n.read_local(|s| s.last_seq()),
        })
        .collect();
    common::histories_agree(&members)
}

fn run(seed: u64) -> Result<Summary, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run_seed(seed))
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn simulated_cluster_keeps_every_invariant_over_many_seeds() {
    let seeds = env("LINGGONG_SIM_SEEDS").unwrap_or(2_000);
    let first = env("LINGGONG_SIM_SEED").unwrap_or(1);
    let started = std::time::Instant::now();
    let mut totals = NetStats::default();
    let (mut acked, mut writes) = (0, 0);
    for seed in first..first + seeds {
        let s =
            run(seed).unwrap_or_else(|e| panic!("seed {seed} (LINGGONG_SIM_SEED={seed} LINGGONG_SIM_SEEDS=1): {e}"));
        acked += s.acked;
        writes += s.sent;
        totals.sent += s.stats.0;
        totals.dropped += s.stats.1;
        totals.answers_lost += s.stats.2;
        totals.duplicated += s.stats.3;
        totals.cuts += s.stats.4;
        totals.snapshots += s.stats.5;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "raft simulation: {seeds} seeds from {first} in {secs:.1} s ({:.1} seeds/s); {writes} writes sent, {acked} acknowledged; network {totals:?}",
        seeds as f64 / secs
    );
    assert!(acked > 0, "the simulation acknowledged no write at all");
    assert!(totals.dropped > 0 && totals.duplicated > 0 && totals.cuts > 0, "the faults did not happen: {totals:?}");
}

/// A seed is the whole run: each member's election timeout comes from the
/// seed (openraft's own draw has a one-millisecond range), the clock is
/// paused and the runtime has one thread, so two runs of a seed end alike,
/// down to the number of messages sent, dropped and duplicated.
#[test]
fn a_seed_replays_the_same_run() {
    let seeds = env("LINGGONG_SIM_REPLAY_SEEDS").unwrap_or(20);
    for seed in 1..=seeds {
        let first = run(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let again = run(seed).unwrap_or_else(|e| panic!("seed {seed}, second run: {e}"));
        assert_eq!(first, again, "seed {seed} ran differently the second time");
    }
}
