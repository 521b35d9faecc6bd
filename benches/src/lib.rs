//! Shared fixtures for the engine benchmarks and the load tool: a deterministic market of N waiting
//! workers, verified employers and published postings drawn from the seeded Linfen population, and
//! batches of engine operations that keep that market steady (prepare untimed, run timed, settle untimed).
//!
//! The steady state matters: a benchmark that drains waiting workers or fills postings measures a
//! shrinking market. Every [`Batch`] therefore leaves the market as it found it:
//!
//! - **instant match** asks a pool posting for [`MarketConfig::match_size`] workers (the reservation
//!   included); settling releases them by updating the posting to a new version, which withdraws its
//!   pending offers. Withdrawn workers return to waiting and, unlike a decline, are not added to the
//!   posting's `passed_over` list, so the pool postings stay the same size however long a bench runs.
//! - **register worker** registers a fresh worker; settling withdraws the oldest worker of the
//!   waiting roster (or the new worker itself if reverse matching already offered it a posting), so the
//!   number of waiting workers is steady while the registered total grows, as it does in production.
//! - **move worker** moves a roster worker to a fresh position; if reverse matching offers it a
//!   posting, settling releases that posting as above.
//! - **respond to offer** prepares offers by matching pool postings, then answers them alternately
//!   accept and decline; settling cancels those postings (accepted workers return to waiting) and
//!   submits fresh replacements, so the pool keeps its size and no `passed_over` list outlives its batch.

use compact_str::{format_compact, CompactString};
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{
    Command, Engine, EngineConfig, EngineError, Event, MatchedOffer, OfferResponse, Outcome, PostingSpec, PostingState,
    Timestamp, WorkerStatus,
};
use std::collections::HashMap;

/// Waiting-worker counts the engine benches run at.
pub const BENCH_SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// Environment variable capping the bench sizes (e.g. `100000` skips the 1,000,000-worker runs).
pub const MAX_SIZE_ENV: &str = "LINGGONG_BENCH_MAX_N";

/// Why a market could not be built or kept steady.
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    /// The engine refused a command the fixture generated.
    #[error("engine refused {command}: {source}")]
    Refused {
        /// Name of the refused command.
        command: &'static str,
        /// The engine's reason.
        #[source]
        source: EngineError,
    },
    /// The engine accepted a command but its outcome was not the one the fixture relies on.
    #[error("unexpected outcome of {command}: {detail}")]
    Unexpected {
        /// Name of the command.
        command: &'static str,
        /// The outcome, debug-printed.
        detail: String,
    },
    /// A batch could not be prepared: the market has nothing to run it on.
    #[error("cannot prepare {operation}: {reason}")]
    NothingToRun {
        /// The operation asked for.
        operation: &'static str,
        /// Why nothing could be prepared.
        reason: &'static str,
    },
    /// A setting read from the environment is malformed.
    #[error("{name} must be a number, got `{value}`")]
    BadSetting {
        /// The variable's name.
        name: &'static str,
        /// The value found.
        value: String,
    },
}

/// The bench sizes up to the cap in [`MAX_SIZE_ENV`] (all of [`BENCH_SIZES`] when unset).
pub fn bench_sizes_from_env() -> Result<Vec<usize>, MarketError> {
    let cap = match std::env::var(MAX_SIZE_ENV) {
        Ok(value) => {
            value.trim().parse::<usize>().map_err(|_| MarketError::BadSetting { name: MAX_SIZE_ENV, value })?
        }
        Err(_) => usize::MAX,
    };
    Ok(BENCH_SIZES.into_iter().filter(|&n| n <= cap).collect())
}

/// How big the market is and how it is drawn.
#[derive(Clone, Debug)]
pub struct MarketConfig {
    /// Workers registered and kept waiting.
    pub waiting_workers: usize,
    /// Employers, all verified so their postings publish at once.
    pub employers: usize,
    /// Published postings in the pool the benches match against.
    pub postings: usize,
    /// Pool postings get at least this many slots, so a match can reserve `match_size` workers.
    pub min_headcount: u8,
    /// Workers asked for by each instant match.
    pub match_size: u8,
    /// The seeded population generator's settings.
    pub population: PopulationConfig,
    /// Time at which the market is complete and the benches start.
    pub start: Timestamp,
    /// Workers register evenly over this many seconds before `start`, so waiting times (and the
    /// ranking's waiting credit) vary as in a live market.
    pub registration_span_secs: i64,
    /// The engine's configuration.
    pub engine: EngineConfig,
}

impl MarketConfig {
    /// The default market with `waiting_workers` waiting workers.
    pub fn with_waiting_workers(waiting_workers: usize) -> Self {
        Self { waiting_workers, ..Self::default() }
    }
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            waiting_workers: 10_000,
            employers: 200,
            postings: 1_000,
            min_headcount: 5,
            match_size: 5,
            population: PopulationConfig::default(),
            // 2025-06-01 08:00 Beijing time.
            start: Timestamp(1_748_736_000_000),
            registration_span_secs: 4 * 3600,
            engine: EngineConfig::default(),
        }
    }
}

/// Draws pool posting `i` for one of the employers, with the configured minimum headcount.
fn draw_posting(
    population: &mut Population,
    config: &MarketConfig,
    employers: &[CompactString],
    i: u64,
    now: Timestamp,
) -> PostingSpec {
    let employer = &employers[(i % employers.len() as u64) as usize];
    let mut spec = population.posting(i, employer, now);
    spec.headcount = spec.headcount.max(config.min_headcount);
    spec
}

/// The commands that build a market, in order, with the time to apply each: workers (spread over the
/// registration span), then verified employers, then postings. Deterministic for a given config; the
/// load tool sends the same stream to a server.
pub struct SetupPlan {
    config: MarketConfig,
    population: Population,
    employer_ids: Vec<CompactString>,
    emitted: usize,
}

impl SetupPlan {
    /// The plan for a market.
    pub fn new(config: &MarketConfig) -> Self {
        Self {
            population: Population::linfen(config.population.clone()),
            config: config.clone(),
            employer_ids: Vec::with_capacity(config.employers),
            emitted: 0,
        }
    }

    /// Commands still to come.
    pub fn remaining(&self) -> usize {
        let total = self.config.waiting_workers + self.config.employers.max(1) + self.config.postings;
        total.saturating_sub(self.emitted)
    }

    fn registration_time(&self, i: usize) -> Timestamp {
        let span_ms = self.config.registration_span_secs.max(0) as i128 * 1000;
        let offset = span_ms * i as i128 / self.config.waiting_workers.max(1) as i128;
        Timestamp(self.config.start.0 - span_ms as i64 + offset as i64)
    }
}

impl Iterator for SetupPlan {
    type Item = (Timestamp, Command);

    fn next(&mut self) -> Option<(Timestamp, Command)> {
        let (workers, employers, postings) =
            (self.config.waiting_workers, self.config.employers.max(1), self.config.postings);
        let i = self.emitted;
        if i >= workers + employers + postings {
            return None;
        }
        self.emitted += 1;
        if i < workers {
            let at = self.registration_time(i);
            return Some((at, Command::UpsertWorker(self.population.worker(i as u64))));
        }
        let start = self.config.start;
        if i < workers + employers {
            let mut spec = self.population.employer((i - workers) as u64);
            spec.verified = true;
            self.employer_ids.push(spec.id.clone());
            return Some((start, Command::UpsertEmployer(spec)));
        }
        let k = (i - workers - employers) as u64;
        let spec = draw_posting(&mut self.population, &self.config, &self.employer_ids, k, start);
        Some((start, Command::SubmitPosting(spec)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

/// An engine operation the benches time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 即时快招 for a published posting, reservation included.
    InstantMatch,
    /// Registering a new worker (reverse matching included).
    RegisterWorker,
    /// Moving a waiting worker (reverse matching included).
    MoveWorker,
    /// A worker answering an offer, alternately accept and decline.
    RespondToOffer,
}

impl Operation {
    /// Every operation, in bench order.
    pub const ALL: [Operation; 4] =
        [Operation::InstantMatch, Operation::RegisterWorker, Operation::MoveWorker, Operation::RespondToOffer];

    /// The bench group name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::InstantMatch => "instant_match",
            Operation::RegisterWorker => "register_worker",
            Operation::MoveWorker => "move_worker",
            Operation::RespondToOffer => "respond_to_offer",
        }
    }

    /// The operation with this bench group name.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// What the market's operations did, for putting bench figures in context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketStats {
    /// Instant matches run.
    pub matches: u64,
    /// Offers those matches made.
    pub match_offers: u64,
    /// Registrations and moves run.
    pub registrations_and_moves: u64,
    /// Offers reverse matching made on registration or move.
    pub reverse_offers: u64,
    /// Offers accepted.
    pub accepts: u64,
    /// Offers declined.
    pub declines: u64,
}

/// A prepared batch of one operation. Reuse it across batches: its buffers keep their capacity.
pub struct Batch {
    operation: Operation,
    now: Timestamp,
    /// Pool slots: matched (instant match) or to replace (respond to offer).
    slots: Vec<usize>,
    commands: Vec<Command>,
    outcomes: Vec<Result<Outcome, EngineError>>,
    match_results: Vec<Result<u8, EngineError>>,
    matched: Vec<MatchedOffer>,
    /// Events of the timed operations.
    events: Vec<Event>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            operation: Operation::InstantMatch,
            now: Timestamp(0),
            slots: Vec::new(),
            commands: Vec::new(),
            outcomes: Vec::new(),
            match_results: Vec::new(),
            matched: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl Batch {
    /// Operations prepared.
    pub fn len(&self) -> usize {
        match self.operation {
            Operation::InstantMatch => self.slots.len(),
            _ => self.commands.len(),
        }
    }

    /// Whether nothing was prepared.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The operation prepared.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The answer the `i`-th prepared operation gives, for offer responses.
    pub fn response(&self, i: usize) -> Option<OfferResponse> {
        match self.commands.get(i) {
            Some(Command::RespondToOffer { response, .. }) => Some(*response),
            _ => None,
        }
    }

    fn reset(&mut self, operation: Operation, now: Timestamp) {
        self.operation = operation;
        self.now = now;
        self.slots.clear();
        self.commands.clear();
        self.outcomes.clear();
        self.match_results.clear();
        self.matched.clear();
        self.events.clear();
    }
}

/// A built market: the engine plus what the fixture needs to keep it steady.
pub struct Market {
    engine: Engine,
    config: MarketConfig,
    population: Population,
    now: Timestamp,
    /// The workers kept waiting; settling replaces withdrawn ones in place.
    roster: Vec<CompactString>,
    roster_cursor: usize,
    next_worker: u64,
    employers: Vec<CompactString>,
    /// The pool of published postings, at their current versions.
    postings: Vec<PostingSpec>,
    posting_slots: HashMap<CompactString, usize>,
    posting_cursor: usize,
    next_posting: u64,
    stats: MarketStats,
    /// Events of the untimed upkeep commands (dropped).
    events: Vec<Event>,
}

fn refused(command: &'static str) -> impl FnOnce(EngineError) -> MarketError {
    move |source| MarketError::Refused { command, source }
}

fn unexpected(command: &'static str, outcome: &Outcome) -> MarketError {
    MarketError::Unexpected { command, detail: format!("{outcome:?}") }
}

impl Market {
    /// Builds the market by applying its [`SetupPlan`] to a fresh engine.
    pub fn build(config: &MarketConfig) -> Result<Market, MarketError> {
        let mut engine = Engine::linfen(config.engine.clone());
        let mut plan = SetupPlan::new(config);
        let mut roster = Vec::with_capacity(config.waiting_workers);
        let mut postings = Vec::with_capacity(config.postings);
        let mut events = Vec::new();
        for (at, command) in plan.by_ref() {
            let name = command.name();
            let outcome = engine.apply(at, &command, &mut events).map_err(refused(name))?;
            match (command, &outcome) {
                (Command::UpsertWorker(spec), Outcome::WorkerUpserted { created: true, offer: None }) => {
                    roster.push(spec.id)
                }
                (Command::UpsertEmployer(_), Outcome::EmployerUpserted { created: true }) => {}
                (Command::SubmitPosting(spec), Outcome::PostingChanged { state: PostingState::Published, .. }) => {
                    postings.push(spec)
                }
                _ => return Err(unexpected(name, &outcome)),
            }
            events.clear();
        }
        let posting_slots =
            postings.iter().enumerate().map(|(i, p): (usize, &PostingSpec)| (p.id.clone(), i)).collect();
        Ok(Market {
            engine,
            population: plan.population,
            employers: plan.employer_ids,
            now: config.start,
            next_worker: config.waiting_workers as u64,
            next_posting: config.postings as u64,
            config: config.clone(),
            roster,
            roster_cursor: 0,
            postings,
            posting_slots,
            posting_cursor: 0,
            stats: MarketStats::default(),
            events,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The configuration the market was built with.
    pub fn config(&self) -> &MarketConfig {
        &self.config
    }

    /// The market's clock (advanced one millisecond per batch).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Ids of the workers kept waiting.
    pub fn roster(&self) -> &[CompactString] {
        &self.roster
    }

    /// The pool of published postings.
    pub fn postings(&self) -> &[PostingSpec] {
        &self.postings
    }

    /// What the operations run so far did.
    pub fn stats(&self) -> &MarketStats {
        &self.stats
    }

    /// Whether every roster worker is waiting and every pool posting is published with no offers out:
    /// the state each settled batch must leave behind.
    pub fn is_steady(&self) -> bool {
        let workers_waiting =
            self.roster.iter().all(|id| self.engine.worker(id).is_some_and(|w| w.status == WorkerStatus::Waiting));
        let postings_open = self.postings.iter().all(|spec| {
            self.engine
                .posting(&spec.id)
                .is_some_and(|p| p.state == PostingState::Published && p.pending == 0 && p.engaged == 0)
        });
        workers_waiting && postings_open && self.engine.waiting_count() == self.roster.len()
    }

    fn next_slot(&mut self) -> usize {
        let slot = self.posting_cursor;
        self.posting_cursor = (self.posting_cursor + 1) % self.postings.len();
        slot
    }

    /// Prepares up to `max` operations into `batch` (untimed). Advances the clock by a millisecond.
    pub fn prepare(&mut self, operation: Operation, max: usize, batch: &mut Batch) -> Result<(), MarketError> {
        batch.reset(operation, self.now);
        self.now = Timestamp(self.now.0 + 1);
        let nothing = |reason| MarketError::NothingToRun { operation: operation.name(), reason };
        match operation {
            Operation::InstantMatch => {
                if self.postings.is_empty() {
                    return Err(nothing("the posting pool is empty"));
                }
                for _ in 0..max.min(self.postings.len()) {
                    let slot = self.next_slot();
                    batch.slots.push(slot);
                }
            }
            Operation::RegisterWorker => {
                for _ in 0..max {
                    let spec = self.population.worker(self.next_worker);
                    self.next_worker += 1;
                    batch.commands.push(Command::UpsertWorker(spec));
                }
            }
            Operation::MoveWorker => {
                if self.roster.is_empty() {
                    return Err(nothing("no worker is waiting"));
                }
                for _ in 0..max.min(self.roster.len()) {
                    let worker = self.roster[self.roster_cursor].clone();
                    self.roster_cursor = (self.roster_cursor + 1) % self.roster.len();
                    let county = self.population.pick_county_code();
                    let position = self.population.position_near(county);
                    batch.commands.push(Command::MoveWorker { worker, position });
                }
            }
            Operation::RespondToOffer => {
                // Match pool postings (untimed) until there are enough offers to answer.
                let mut tried = 0;
                while batch.matched.len() < max && tried < self.postings.len() {
                    tried += 1;
                    let slot = self.next_slot();
                    let before = batch.matched.len();
                    self.engine
                        .instant_match_into(
                            batch.now,
                            &self.postings[slot].id,
                            self.config.match_size,
                            &mut batch.matched,
                            &mut self.events,
                        )
                        .map_err(refused("instant_match"))?;
                    if batch.matched.len() > before {
                        batch.slots.push(slot);
                    } else {
                        // Postings that lost all their candidates would otherwise pile up in
                        // the pool, since only answered postings are rotated out.
                        self.replace_posting(slot)?;
                    }
                }
                for (k, offer) in batch.matched.iter().take(max).enumerate() {
                    let response = if k % 2 == 0 { OfferResponse::Accept } else { OfferResponse::Decline };
                    batch.commands.push(Command::RespondToOffer {
                        offer: offer.offer,
                        worker: offer.worker.clone(),
                        response,
                    });
                }
                batch.matched.clear();
                self.events.clear();
                if batch.commands.is_empty() {
                    return Err(nothing("no pool posting has a candidate"));
                }
            }
        }
        Ok(())
    }

    /// Runs the `i`-th prepared operation: the only part a bench times. Its result is kept in the
    /// batch and checked by [`Market::settle`].
    #[inline]
    pub fn run(&mut self, batch: &mut Batch, i: usize) {
        match batch.operation {
            Operation::InstantMatch => {
                let posting = &self.postings[batch.slots[i]].id;
                let result = self.engine.instant_match_into(
                    batch.now,
                    posting,
                    self.config.match_size,
                    &mut batch.matched,
                    &mut batch.events,
                );
                batch.match_results.push(result);
            }
            _ => {
                let outcome = self.engine.apply(batch.now, &batch.commands[i], &mut batch.events);
                batch.outcomes.push(outcome);
            }
        }
    }

    /// Checks the batch's results and restores the steady state (untimed).
    pub fn settle(&mut self, batch: &mut Batch) -> Result<(), MarketError> {
        match batch.operation {
            Operation::InstantMatch => {
                let mut slots = std::mem::take(&mut batch.slots);
                for result in batch.match_results.drain(..) {
                    result.map_err(refused("instant_match"))?;
                }
                self.stats.matches += slots.len() as u64;
                self.stats.match_offers += batch.matched.len() as u64;
                slots.sort_unstable();
                slots.dedup();
                for &slot in &slots {
                    if self.engine.posting(&self.postings[slot].id).is_some_and(|p| p.pending > 0) {
                        self.release_posting(slot)?;
                    }
                }
                batch.slots = slots;
            }
            Operation::RegisterWorker => {
                for (command, outcome) in batch.commands.iter().zip(batch.outcomes.drain(..)) {
                    let outcome = outcome.map_err(refused("upsert_worker"))?;
                    let Command::UpsertWorker(spec) = command else { unreachable!("register batches hold upserts") };
                    self.stats.registrations_and_moves += 1;
                    match outcome {
                        Outcome::WorkerUpserted { created: true, offer: Some(_) } => {
                            // Reverse matching offered the newcomer a posting: withdrawing the
                            // newcomer frees the slot and leaves the roster as it was.
                            self.stats.reverse_offers += 1;
                            self.withdraw(&spec.id)?;
                        }
                        Outcome::WorkerUpserted { created: true, offer: None } => {
                            let old = std::mem::replace(&mut self.roster[self.roster_cursor], spec.id.clone());
                            self.roster_cursor = (self.roster_cursor + 1) % self.roster.len();
                            self.withdraw(&old)?;
                        }
                        other => return Err(unexpected("upsert_worker", &other)),
                    }
                }
            }
            Operation::MoveWorker => {
                let mut released = std::mem::take(&mut batch.slots);
                for outcome in batch.outcomes.drain(..) {
                    self.stats.registrations_and_moves += 1;
                    match outcome.map_err(refused("move_worker"))? {
                        Outcome::WorkerUpdated { status: WorkerStatus::Waiting, offer: None } => {}
                        Outcome::WorkerUpdated { status: WorkerStatus::Offered, offer: Some(offer) } => {
                            self.stats.reverse_offers += 1;
                            let slot = self.posting_slots.get(&offer.posting).copied().ok_or_else(|| {
                                MarketError::Unexpected {
                                    command: "move_worker",
                                    detail: format!("offer for posting {} outside the pool", offer.posting),
                                }
                            })?;
                            released.push(slot);
                        }
                        other => return Err(unexpected("move_worker", &other)),
                    }
                }
                released.sort_unstable();
                released.dedup();
                for &slot in &released {
                    self.release_posting(slot)?;
                }
                released.clear();
                batch.slots = released;
            }
            Operation::RespondToOffer => {
                for (command, outcome) in batch.commands.iter().zip(batch.outcomes.drain(..)) {
                    let outcome = outcome.map_err(refused("respond_to_offer"))?;
                    let Outcome::OfferChanged { .. } = outcome else {
                        return Err(unexpected("respond_to_offer", &outcome));
                    };
                    match command {
                        Command::RespondToOffer { response: OfferResponse::Accept, .. } => self.stats.accepts += 1,
                        _ => self.stats.declines += 1,
                    }
                }
                let slots = std::mem::take(&mut batch.slots);
                for &slot in &slots {
                    self.replace_posting(slot)?;
                }
                batch.slots = slots;
            }
        }
        self.events.clear();
        Ok(())
    }

    fn withdraw(&mut self, worker: &CompactString) -> Result<(), MarketError> {
        let command = Command::WithdrawWorker { worker: worker.clone() };
        self.engine.apply(self.now, &command, &mut self.events).map_err(refused("withdraw_worker"))?;
        Ok(())
    }

    /// Withdraws a pool posting's pending offers by updating it to a new version: the workers return
    /// to waiting without joining the posting's `passed_over` list.
    fn release_posting(&mut self, slot: usize) -> Result<(), MarketError> {
        let spec = &mut self.postings[slot];
        spec.version += 1;
        let command = Command::UpdatePosting(spec.clone());
        match self.engine.apply(self.now, &command, &mut self.events).map_err(refused("update_posting"))? {
            Outcome::PostingChanged { state: PostingState::Published, .. } => Ok(()),
            other => Err(unexpected("update_posting", &other)),
        }
    }

    /// Cancels a pool posting (its workers return to waiting) and submits a fresh one in its slot.
    fn replace_posting(&mut self, slot: usize) -> Result<(), MarketError> {
        let old = self.postings[slot].id.clone();
        let cancel = Command::CancelPosting { posting: old.clone(), reason: format_compact!("benchmark rotation") };
        self.engine.apply(self.now, &cancel, &mut self.events).map_err(refused("cancel_posting"))?;
        let spec = draw_posting(&mut self.population, &self.config, &self.employers, self.next_posting, self.now);
        self.next_posting += 1;
        let submit = Command::SubmitPosting(spec.clone());
        match self.engine.apply(self.now, &submit, &mut self.events).map_err(refused("submit_posting"))? {
            Outcome::PostingChanged { state: PostingState::Published, .. } => {}
            other => return Err(unexpected("submit_posting", &other)),
        }
        self.posting_slots.remove(&old);
        self.posting_slots.insert(spec.id.clone(), slot);
        self.postings[slot] = spec;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> MarketConfig {
        MarketConfig { waiting_workers: 2_000, employers: 20, postings: 100, ..MarketConfig::default() }
    }

    #[test]
    fn built_market_is_steady_and_deterministic() {
        let a = Market::build(&small()).unwrap();
        let b = Market::build(&small()).unwrap();
        assert!(a.is_steady());
        assert_eq!(a.engine().waiting_count(), 2_000);
        assert_eq!(a.postings().len(), 100);
        assert_eq!(a.engine().snapshot(), b.engine().snapshot());
    }

    #[test]
    fn every_operation_leaves_the_market_steady() {
        let mut market = Market::build(&small()).unwrap();
        let mut batch = Batch::default();
        for operation in Operation::ALL {
            for _ in 0..20 {
                market.prepare(operation, 16, &mut batch).unwrap();
                assert!(!batch.is_empty(), "{operation:?}");
                for i in 0..batch.len() {
                    market.run(&mut batch, i);
                }
                market.settle(&mut batch).unwrap();
                assert!(market.is_steady(), "{operation:?}");
            }
            market.engine().check_invariants().unwrap();
        }
        let stats = market.stats();
        assert_eq!(stats.matches, 20 * 16);
        assert!(stats.match_offers > stats.matches, "most matches should find several workers: {stats:?}");
        assert_eq!(stats.registrations_and_moves, 2 * 20 * 16);
        assert_eq!(stats.accepts + stats.declines, 20 * 16);
        assert!(stats.accepts.abs_diff(stats.declines) <= 20, "{stats:?}");
        assert!(market.engine().worker_count() > 2_000, "registrations add workers");
        assert!(market.engine().postings().iter().all(|p| p.passed_over.len() <= 5));
    }

    #[test]
    fn setup_plan_counts_its_commands() {
        let plan = SetupPlan::new(&small());
        assert_eq!(plan.remaining(), 2_000 + 20 + 100);
        assert_eq!(plan.count(), 2_120);
    }
}
