//! What the load consists of: the scenarios' calls, drawn from the seeded Linfen population and
//! from what earlier calls returned (a posting is matched once published, an offer is answered
//! once made, an accepted worker arrives and completes). The same [`Workload`] feeds the engine
//! driver and the gRPC driver: each asks [`Workload::next`] for an [`Action`], performs it, and
//! reports back with [`Workload::complete`].

use compact_str::{format_compact, CompactString};
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{EmployerSpec, LatLon, PostingSpec, Timestamp, WorkerSpec};
use rand::RngExt;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::collections::VecDeque;

use crate::record::Rpc;

/// What a run exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// A county day: registrations, location updates, postings submitted and reviewed, instant
    /// matches, offer answers, arrivals, completions and no-shows, statistics reads; every county
    /// in proportion to its population.
    Mixed,
    /// Instant matches only (plus one `UpdatePosting` per full posting, which hands its offered
    /// workers back so the market stays steady).
    Match,
    /// Write-heavy: new worker registrations (70%) and location updates (30%).
    Register,
    /// `mixed`, while stations follow their county's `WatchPostings` stream (gRPC mode only).
    Watch,
}

impl Scenario {
    /// The scenario's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Mixed => "mixed",
            Scenario::Match => "match",
            Scenario::Register => "register",
            Scenario::Watch => "watch",
        }
    }
}

/// An offer the tool knows about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferRef {
    /// Offer id.
    pub offer: u64,
    /// Worker holding it.
    pub worker: CompactString,
    /// Posting offered.
    pub posting: CompactString,
}

/// One call to make.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Register (upsert) a worker.
    RegisterWorker(WorkerSpec),
    /// Move a worker.
    UpdateWorkerLocation {
        /// Worker id.
        worker: CompactString,
        /// New waiting place.
        position: LatLon,
    },
    /// Make a worker available again (`true`, always) or send them home (`false`).
    SetAvailability {
        /// Worker id.
        worker: CompactString,
        /// Available or away.
        available: bool,
    },
    /// Take a worker out of the market.
    WithdrawWorker {
        /// Worker id.
        worker: CompactString,
    },
    /// Create or update an employer.
    UpsertEmployer(EmployerSpec),
    /// Submit a new posting.
    SubmitPosting(PostingSpec),
    /// Replace a posting with a higher version (hands its pending offers back).
    UpdatePosting(PostingSpec),
    /// Approve or reject a posting pending review.
    ReviewPosting {
        /// Posting id.
        posting: CompactString,
        /// Approve (publish) or reject.
        approve: bool,
    },
    /// Cancel a posting.
    CancelPosting {
        /// Posting id.
        posting: CompactString,
    },
    /// 即时快招.
    InstantMatch {
        /// Posting id.
        posting: CompactString,
        /// Most offers to make (0: every open slot).
        max_offers: u8,
    },
    /// Answer an offer.
    RespondToOffer {
        /// The offer.
        offer: OfferRef,
        /// Accept or decline.
        accept: bool,
    },
    /// The worker arrived.
    ConfirmArrival {
        /// The offer.
        offer: OfferRef,
    },
    /// The job was done.
    CompleteJob {
        /// The offer.
        offer: OfferRef,
    },
    /// The worker did not turn up.
    ReportNoShow {
        /// The offer.
        offer: OfferRef,
    },
    /// Read a county's statistics.
    CountyStats {
        /// County division code.
        county: u32,
    },
}

impl Action {
    /// The RPC this action is.
    pub fn rpc(&self) -> Rpc {
        match self {
            Action::RegisterWorker(_) => Rpc::RegisterWorker,
            Action::UpdateWorkerLocation { .. } => Rpc::UpdateWorkerLocation,
            Action::SetAvailability { .. } => Rpc::SetAvailability,
            Action::WithdrawWorker { .. } => Rpc::WithdrawWorker,
            Action::UpsertEmployer(_) => Rpc::UpsertEmployer,
            Action::SubmitPosting(_) => Rpc::SubmitPosting,
            Action::UpdatePosting(_) => Rpc::UpdatePosting,
            Action::ReviewPosting { .. } => Rpc::ReviewPosting,
            Action::CancelPosting { .. } => Rpc::CancelPosting,
            Action::InstantMatch { .. } => Rpc::InstantMatch,
            Action::RespondToOffer { .. } => Rpc::RespondToOffer,
            Action::ConfirmArrival { .. } => Rpc::ConfirmArrival,
            Action::CompleteJob { .. } => Rpc::CompleteJob,
            Action::ReportNoShow { .. } => Rpc::ReportNoShow,
            Action::CountyStats { .. } => Rpc::CountyStats,
        }
    }
}

/// A posting's state as far as the workload cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostingPhase {
    /// Waiting for a reviewer.
    PendingReview,
    /// Open for matching.
    Open,
    /// Anything else (filled, rejected, cancelled, expired).
    Closed,
}

/// What a successful call returned that the workload uses.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Nothing to follow up.
    Done,
    /// A posting call: the posting's phase afterwards.
    Posting(PostingPhase),
    /// An instant match: offers made and slots still open.
    Matched {
        /// Offers made.
        offers: Vec<OfferRef>,
        /// Slots still open.
        remaining: u32,
    },
    /// A worker call, or a completed job: an offer made by reverse matching, if any.
    Worker(Option<OfferRef>),
}

/// Sizes and seeds of a workload.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadConfig {
    /// What to run.
    pub scenario: Scenario,
    /// Seed of every draw the workload makes.
    pub seed: u64,
    /// Workers the market starts with, ids `w0` .. `w{workers-1}`.
    pub workers: u64,
    /// Employers the workload posts for, ids `lt-e0` ..; in `mixed` about a fifth are unverified
    /// (their postings need review).
    pub employers: u64,
    /// Postings submitted before the measured load starts (`match`: the pool matched round-robin).
    pub postings: u64,
    /// `match`: offers asked for by each instant match; pool postings have 50 slots.
    pub match_size: u8,
    /// Prefix of the ids this run creates (postings, new workers), so runs against one server do not collide.
    pub run_tag: String,
}

/// Headcount of `match` pool postings: ten matches of five before a release.
pub const MATCH_POOL_HEADCOUNT: u8 = 50;

/// What the workload did, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkloadStats {
    /// Offers made by instant matches.
    pub offers_made: u64,
    /// Instant matches that found nobody.
    pub empty_matches: u64,
    /// Offers made by reverse matching (registration, move, availability, completed job).
    pub reverse_offers: u64,
    /// Offers accepted.
    pub accepted: u64,
    /// Offers declined.
    pub declined: u64,
    /// Arrivals confirmed.
    pub arrivals: u64,
    /// Jobs completed.
    pub completions: u64,
    /// No-shows reported.
    pub no_shows: u64,
    /// Postings submitted.
    pub postings_submitted: u64,
    /// Postings that went to review.
    pub postings_reviewed: u64,
    /// New workers registered.
    pub registrations: u64,
    /// Calls that failed (the follow-up they would have led to is dropped).
    pub failed_calls: u64,
}

struct PoolPosting {
    spec: PostingSpec,
    /// Fewer slots are left than a match asks for: the next draw releases it.
    needs_release: bool,
    /// An `UpdatePosting` releasing it is in flight: no other is sent meanwhile.
    releasing: bool,
}

/// Follow-up backlog at which half the draws serve follow-ups: the longer the queues, the more
/// often they are served, so the mix settles where follow-ups keep pace with what causes them.
const BACKLOG_HALF: usize = 32;
/// Longest list kept of unfillable postings and of recent registrations.
const KEPT: usize = 10_000;

/// The workload's state. Not thread-safe: share it behind a mutex and never hold that across a call.
pub struct Workload {
    config: WorkloadConfig,
    population: Population,
    next_worker: u64,
    next_posting: u64,
    verified: Vec<CompactString>,
    employers: Vec<EmployerSpec>,
    counties: Vec<u32>,
    // match
    pool: Vec<PoolPosting>,
    pool_index: FxHashMap<CompactString, usize>,
    pool_cursor: usize,
    // mixed
    to_match: VecDeque<CompactString>,
    parked: FxHashSet<CompactString>,
    unfillable: VecDeque<CompactString>,
    pending_review: VecDeque<CompactString>,
    offers_pending: VecDeque<OfferRef>,
    offers_accepted: VecDeque<OfferRef>,
    offers_arrived: VecDeque<OfferRef>,
    leaving: VecDeque<CompactString>,
    away: VecDeque<CompactString>,
    recent_registrations: VecDeque<CompactString>,
    stats: WorkloadStats,
}

impl Workload {
    /// A workload over the Linfen population.
    pub fn new(config: WorkloadConfig) -> Self {
        let mut population = Population::linfen(PopulationConfig { seed: config.seed, ..PopulationConfig::default() });
        let mut employers: Vec<EmployerSpec> = (0..config.employers.max(1))
            .map(|i| {
                let mut spec = population.employer(i);
                spec.id = format_compact!("lt-e{i}");
                if config.scenario == Scenario::Match {
                    spec.verified = true;
                }
                spec
            })
            .collect();
        if !employers.iter().any(|e| e.verified) {
            employers[0].verified = true;
        }
        let verified = employers.iter().filter(|e| e.verified).map(|e| e.id.clone()).collect();
        let counties = linggong_engine::Regions::linfen().counties().iter().map(|c| c.code).collect();
        Self {
            population,
            next_worker: 0,
            next_posting: 0,
            verified,
            employers,
            counties,
            pool: Vec::new(),
            pool_index: FxHashMap::default(),
            pool_cursor: 0,
            to_match: VecDeque::new(),
            parked: FxHashSet::default(),
            unfillable: VecDeque::new(),
            pending_review: VecDeque::new(),
            offers_pending: VecDeque::new(),
            offers_accepted: VecDeque::new(),
            offers_arrived: VecDeque::new(),
            leaving: VecDeque::new(),
            away: VecDeque::new(),
            recent_registrations: VecDeque::new(),
            stats: WorkloadStats::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// What the workload has done so far.
    pub fn stats(&self) -> &WorkloadStats {
        &self.stats
    }

    /// Resets the statistics (at the end of the warmup).
    pub fn reset_stats(&mut self) {
        self.stats = WorkloadStats::default();
    }

    /// The employers to upsert before the load starts.
    pub fn setup_employers(&self) -> Vec<Action> {
        self.employers.iter().cloned().map(Action::UpsertEmployer).collect()
    }

    /// The `i`-th of the market's starting workers (id `w{i}`), drawn from a generator of its own
    /// so that every run with the same seed starts from the same market.
    pub fn setup_workers(&self) -> impl Iterator<Item = WorkerSpec> {
        let mut population =
            Population::linfen(PopulationConfig { seed: self.config.seed ^ 0x5eed, ..PopulationConfig::default() });
        (0..self.config.workers).map(move |i| population.worker(i))
    }

    /// The postings to submit before the load starts.
    pub fn setup_postings(&mut self, now: Timestamp) -> Vec<Action> {
        (0..self.config.postings).map(|_| Action::SubmitPosting(self.new_posting(now))).collect()
    }

    fn new_posting(&mut self, now: Timestamp) -> PostingSpec {
        let i = self.next_posting;
        self.next_posting += 1;
        let employer = if self.config.scenario == Scenario::Match {
            self.verified[(i % self.verified.len() as u64) as usize].clone()
        } else {
            let k = self.population.rng().random_range(0..self.employers.len());
            self.employers[k].id.clone()
        };
        let mut spec = self.population.posting(i, &employer, now);
        spec.id = format_compact!("{}p{i}", self.config.run_tag);
        if self.config.scenario == Scenario::Match {
            spec.headcount = MATCH_POOL_HEADCOUNT;
        }
        spec
    }

    fn new_worker(&mut self) -> WorkerSpec {
        let i = self.next_worker;
        self.next_worker += 1;
        let mut spec = self.population.worker(self.config.workers + i);
        spec.id = format_compact!("{}w{i}", self.config.run_tag);
        spec
    }

    fn some_worker(&mut self) -> Option<CompactString> {
        if self.config.workers > 0 {
            let i = self.population.rng().random_range(0..self.config.workers);
            return Some(format_compact!("w{i}"));
        }
        if self.recent_registrations.is_empty() {
            return None;
        }
        let k = self.population.rng().random_range(0..self.recent_registrations.len());
        Some(self.recent_registrations[k].clone())
    }

    fn move_some_worker(&mut self) -> Option<Action> {
        let worker = self.some_worker()?;
        let county = self.population.pick_county_code();
        let position = self.population.position_near(county);
        Some(Action::UpdateWorkerLocation { worker, position })
    }

    /// The next call to make, or `None` when nothing can be done until a call in flight completes
    /// (only in `match`, when the pool is empty or every posting in it is being released).
    pub fn next(&mut self, now: Timestamp) -> Option<Action> {
        match self.config.scenario {
            Scenario::Match => self.next_match(),
            Scenario::Register => {
                if self.population.rng().random_bool(0.7) || self.config.workers == 0 {
                    Some(Action::RegisterWorker(self.new_worker()))
                } else {
                    self.move_some_worker()
                }
            }
            Scenario::Mixed | Scenario::Watch => Some(self.next_mixed(now)),
        }
    }

    /// The pool is matched round-robin; calls on one posting may overlap (the server orders them),
    /// except that a posting being released is skipped until its update returns.
    fn next_match(&mut self) -> Option<Action> {
        for _ in 0..self.pool.len() {
            let i = self.pool_cursor;
            self.pool_cursor = (self.pool_cursor + 1) % self.pool.len();
            let entry = &mut self.pool[i];
            if entry.releasing {
                continue;
            }
            if entry.needs_release {
                entry.releasing = true;
                let mut spec = entry.spec.clone();
                spec.version += 1;
                return Some(Action::UpdatePosting(spec));
            }
            return Some(Action::InstantMatch { posting: entry.spec.id.clone(), max_offers: self.config.match_size });
        }
        None
    }

    fn follow_up_backlog(&self) -> usize {
        self.to_match.len()
            + self.pending_review.len()
            + self.offers_pending.len()
            + self.offers_accepted.len()
            + self.offers_arrived.len()
            + self.leaving.len()
    }

    fn next_mixed(&mut self, now: Timestamp) -> Action {
        let backlog = self.follow_up_backlog();
        if backlog > 0 && self.population.rng().random_range(0..backlog + BACKLOG_HALF) < backlog {
            if let Some(action) = self.next_follow_up(backlog) {
                return action;
            }
        }
        self.next_source(now)
    }

    /// A follow-up, drawn in proportion to the queues' lengths (so none grows without bound).
    fn next_follow_up(&mut self, backlog: usize) -> Option<Action> {
        let mut r = self.population.rng().random_range(0..backlog);
        if r < self.to_match.len() {
            let posting = self.to_match.pop_front()?;
            return Some(Action::InstantMatch { posting, max_offers: 0 });
        }
        r -= self.to_match.len();
        if r < self.pending_review.len() {
            let posting = self.pending_review.pop_front()?;
            let approve = self.population.rng().random_bool(0.95);
            return Some(Action::ReviewPosting { posting, approve });
        }
        r -= self.pending_review.len();
        if r < self.offers_pending.len() {
            let offer = self.offers_pending.pop_front()?;
            let accept = self.population.rng().random_bool(0.75);
            return Some(Action::RespondToOffer { offer, accept });
        }
        r -= self.offers_pending.len();
        if r < self.offers_accepted.len() {
            let offer = self.offers_accepted.pop_front()?;
            return Some(if self.population.rng().random_bool(0.95) {
                Action::ConfirmArrival { offer }
            } else {
                Action::ReportNoShow { offer }
            });
        }
        r -= self.offers_accepted.len();
        if r < self.offers_arrived.len() {
            let offer = self.offers_arrived.pop_front()?;
            return Some(Action::CompleteJob { offer });
        }
        let worker = self.leaving.pop_front()?;
        Some(Action::SetAvailability { worker, available: false })
    }

    /// A new event of the day. Location updates 55%, registrations 10%, postings 6%, statistics
    /// reads 10%, returns from away 8%, cancellations of unfillable postings 5%, withdrawals 6%
    /// (the last three fall back to a location update when nobody qualifies). Each posting then
    /// brings its own follow-ups: review, matches, answers, arrivals, completions.
    fn next_source(&mut self, now: Timestamp) -> Action {
        let draw = self.population.rng().random_range(0..100u32);
        let action = match draw {
            0..=54 => None, // location update, below
            55..=64 => return Action::RegisterWorker(self.new_worker()),
            65..=70 => return Action::SubmitPosting(self.new_posting(now)),
            71..=80 => {
                let k = self.population.rng().random_range(0..self.counties.len());
                return Action::CountyStats { county: self.counties[k] };
            }
            81..=88 => self.away.pop_front().map(|worker| Action::SetAvailability { worker, available: true }),
            89..=93 => self.unfillable.pop_front().map(|posting| Action::CancelPosting { posting }),
            _ => self.recent_registrations.pop_front().map(|worker| Action::WithdrawWorker { worker }),
        };
        action.or_else(|| self.move_some_worker()).unwrap_or_else(|| Action::RegisterWorker(self.new_worker()))
    }

    fn pool_entry(&mut self, id: &str) -> Option<&mut PoolPosting> {
        let i = *self.pool_index.get(id)?;
        self.pool.get_mut(i)
    }

    fn reopen(&mut self, posting: &CompactString) {
        if self.parked.remove(posting) {
            self.to_match.push_back(posting.clone());
        }
    }

    fn keep(list: &mut VecDeque<CompactString>, id: CompactString) {
        if list.len() >= KEPT {
            list.pop_front();
        }
        list.push_back(id);
    }

    fn reverse_offer(&mut self, offer: Option<OfferRef>) {
        if let Some(offer) = offer {
            self.stats.reverse_offers += 1;
            if self.config.scenario != Scenario::Register {
                self.offers_pending.push_back(offer);
            }
        }
    }

    /// Reports the result of an action: `Ok` with what came back, or `Err(())` when the call failed
    /// (the action's follow-ups are dropped; a `match` posting whose release failed is released again).
    pub fn complete(&mut self, action: &Action, result: Result<Observation, ()>) {
        let observation = match result {
            Ok(o) => o,
            Err(()) => {
                self.stats.failed_calls += 1;
                if let Action::UpdatePosting(spec) = action {
                    if let Some(entry) = self.pool_entry(&spec.id) {
                        entry.releasing = false;
                    }
                }
                return;
            }
        };
        match (action, observation) {
            (Action::InstantMatch { posting, .. }, Observation::Matched { offers, remaining }) => {
                self.stats.offers_made += offers.len() as u64;
                if offers.is_empty() {
                    self.stats.empty_matches += 1;
                }
                if self.config.scenario == Scenario::Match {
                    let full = remaining < u32::from(self.config.match_size.max(1));
                    let release = full || (offers.is_empty() && remaining < u32::from(MATCH_POOL_HEADCOUNT));
                    if let Some(entry) = self.pool_entry(posting) {
                        entry.needs_release |= release;
                    }
                    return;
                }
                let found = !offers.is_empty();
                self.offers_pending.extend(offers);
                if remaining == 0 {
                    self.parked.insert(posting.clone());
                } else if found {
                    self.to_match.push_back(posting.clone());
                } else {
                    Self::keep(&mut self.unfillable, posting.clone());
                }
            }
            (Action::UpdatePosting(spec), _) => {
                if let Some(entry) = self.pool_entry(&spec.id) {
                    entry.spec.version = spec.version;
                    entry.needs_release = false;
                    entry.releasing = false;
                }
            }
            (Action::SubmitPosting(spec), Observation::Posting(phase)) => {
                self.stats.postings_submitted += 1;
                match phase {
                    PostingPhase::Open if self.config.scenario == Scenario::Match => {
                        self.pool_index.insert(spec.id.clone(), self.pool.len());
                        self.pool.push(PoolPosting { spec: spec.clone(), needs_release: false, releasing: false });
                    }
                    PostingPhase::Open => self.to_match.push_back(spec.id.clone()),
                    PostingPhase::PendingReview => {
                        self.stats.postings_reviewed += 1;
                        self.pending_review.push_back(spec.id.clone())
                    }
                    PostingPhase::Closed => {}
                }
            }
            (Action::ReviewPosting { posting, .. }, Observation::Posting(PostingPhase::Open)) => {
                self.to_match.push_back(posting.clone())
            }
            (Action::RespondToOffer { offer, accept }, _) => {
                if *accept {
                    self.stats.accepted += 1;
                    self.offers_accepted.push_back(offer.clone());
                } else {
                    self.stats.declined += 1;
                    self.reopen(&offer.posting);
                }
            }
            (Action::ConfirmArrival { offer }, _) => {
                self.stats.arrivals += 1;
                self.offers_arrived.push_back(offer.clone());
            }
            (Action::ReportNoShow { offer }, _) => {
                self.stats.no_shows += 1;
                self.reopen(&offer.posting);
                Self::keep(&mut self.away, offer.worker.clone());
            }
            (Action::CompleteJob { offer }, Observation::Worker(next)) => {
                self.stats.completions += 1;
                match next {
                    Some(next) => self.reverse_offer(Some(next)),
                    None if self.population.rng().random_bool(0.15) => self.leaving.push_back(offer.worker.clone()),
                    None => {}
                }
            }
            (Action::RegisterWorker(spec), Observation::Worker(offer)) => {
                self.stats.registrations += 1;
                if offer.is_none() && self.config.scenario != Scenario::Register {
                    Self::keep(&mut self.recent_registrations, spec.id.clone());
                }
                self.reverse_offer(offer);
            }
            (Action::UpdateWorkerLocation { .. }, Observation::Worker(offer)) => self.reverse_offer(offer),
            (Action::SetAvailability { worker, available }, Observation::Worker(offer)) => {
                if !available {
                    Self::keep(&mut self.away, worker.clone());
                }
                self.reverse_offer(offer);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(scenario: Scenario) -> WorkloadConfig {
        WorkloadConfig {
            scenario,
            seed: 7,
            workers: 100,
            employers: 10,
            postings: 4,
            match_size: 5,
            run_tag: "t".into(),
        }
    }

    #[test]
    fn match_pool_cycles_matches_and_releases() {
        let mut w = Workload::new(config(Scenario::Match));
        let now = Timestamp(1_750_000_000_000);
        for action in w.setup_postings(now) {
            w.complete(&action, Ok(Observation::Posting(PostingPhase::Open)));
        }
        let first = w.next(now).unwrap();
        let Action::InstantMatch { posting, max_offers: 5 } = &first else { panic!("{first:?}") };
        let offers =
            (0..5).map(|k| OfferRef { offer: k, worker: format_compact!("w{k}"), posting: posting.clone() }).collect();
        // A match that leaves fewer slots than a match asks for makes the posting due for release.
        w.complete(&first, Ok(Observation::Matched { offers, remaining: 4 }));
        let mut seen_release = false;
        for _ in 0..4 {
            let a = w.next(now).unwrap();
            if let Action::UpdatePosting(spec) = &a {
                assert_eq!(&spec.id, posting);
                assert_eq!(spec.version, 2);
                seen_release = true;
            }
            w.complete(&a, Ok(Observation::Matched { offers: Vec::new(), remaining: 50 }));
        }
        assert!(seen_release);
        assert_eq!(w.stats().offers_made, 5);
    }

    #[test]
    fn mixed_follows_offers_through_their_lifecycle() {
        let mut w = Workload::new(config(Scenario::Mixed));
        let now = Timestamp(1_750_000_000_000);
        let offer = OfferRef { offer: 9, worker: "w1".into(), posting: "tp0".into() };
        let m = Action::InstantMatch { posting: "tp0".into(), max_offers: 0 };
        w.complete(&m, Ok(Observation::Matched { offers: vec![offer.clone()], remaining: 0 }));
        let mut answered = false;
        for _ in 0..2_000 {
            let a = w.next(now).unwrap();
            let observation = match &a {
                Action::InstantMatch { .. } => Observation::Matched { offers: Vec::new(), remaining: 1 },
                Action::SubmitPosting(_) | Action::ReviewPosting { .. } => Observation::Posting(PostingPhase::Open),
                Action::RespondToOffer { offer: o, .. } if o.offer == 9 => {
                    answered = true;
                    Observation::Done
                }
                Action::CompleteJob { .. }
                | Action::RegisterWorker(_)
                | Action::UpdateWorkerLocation { .. }
                | Action::SetAvailability { .. } => Observation::Worker(None),
                _ => Observation::Done,
            };
            w.complete(&a, Ok(observation));
        }
        assert!(answered, "the offer was answered");
        let s = w.stats();
        assert!(s.postings_submitted > 100, "{s:?}");
        assert!(s.registrations > 50, "{s:?}");
        assert_eq!(s.accepted + s.declined, 1);
    }
}
