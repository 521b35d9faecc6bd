//! The state machine: the records (workers, employers, postings, complaints,
//! counters, directory, ledger) and the parts derived from them
//! ([`WorkerIndex`], [`PostingIndex`], [`PhoneIndex`], [`OfferBook`]), each owning its
//! invariants. [`Engine::apply`] dispatches a command with the caller's `now`
//! to its command family's file and returns the outcome; the events it
//! produced are appended to the caller's buffer.

mod batching;
mod complaints;
mod employers;
mod invariants;
mod markets;
mod matching;
mod offers;
mod phone_index;
mod policy;
mod posting_index;
mod postings;
mod queries;
mod snapshot;
pub mod validate;
mod worker_index;
mod worker_tree;
mod workers;

pub use batching::{BatchWindows, Window as BatchWindow, MAX_WINDOW_REQUESTS};
pub use phone_index::normalized_phone;
pub use snapshot::{EngineRecords, EngineSnapshot};

use crate::catalog::{CountyIdx, Regions, TradeCatalog, TradeIdx};
use crate::command::*;
use crate::config::EngineConfig;
use crate::cow_vec::CowVec;
use crate::directory::Directory;
use crate::error::EngineError;
use crate::ledger::{Ledger, LedgerDay};
use crate::model::*;
use crate::stats::CountyCounters;
use compact_str::CompactString;
use matching::Ranking;
use offers::OfferBook;
use phone_index::PhoneIndex;
use posting_index::PostingIndex;
use rustc_hash::FxHashMap;
use validate::Rules;
use worker_index::WorkerIndex;

type Result<T> = std::result::Result<T, EngineError>;

/// What happens to a worker when their offer closes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WorkerAfter {
    /// Back to waiting, keeping their place in the queue.
    KeepWaiting,
    /// Back to waiting, queue position reset to now.
    WaitAgain,
    /// Away (withdrawn or no-show).
    Away,
}

/// The matching engine: every worker, employer, posting and live offer of a
/// region, in memory. Pure and deterministic: no clock, no IO.
#[derive(Clone)]
pub struct Engine {
    config: EngineConfig,
    regions: Regions,
    trades: TradeCatalog,
    workers: CowVec<Worker>,
    employers: CowVec<Employer>,
    employer_ids: FxHashMap<CompactString, EmployerKey>,
    postings: CowVec<Posting>,
    posting_ids: FxHashMap<CompactString, PostingKey>,
    offers: OfferBook,
    complaints: CowVec<Complaint>,
    counters: Vec<CountyCounters>,
    directory: Directory,
    ledger: Ledger,
    batch: BatchWindows,
    // Derived from the records: rebuilt on restore, never in snapshots.
    worker_index: WorkerIndex,
    posting_index: PostingIndex,
    phone_index: PhoneIndex,
    /// The selection and queue of the last ranking, kept for their capacity.
    ranking: Ranking,
}

impl Engine {
    /// An empty engine for the given regions and trades.
    pub fn new(config: EngineConfig, regions: Regions, trades: TradeCatalog) -> Self {
        let nt = trades.len();
        let nc = regions.len();
        Self {
            config,
            workers: CowVec::new(),
            employers: CowVec::new(),
            employer_ids: FxHashMap::default(),
            postings: CowVec::new(),
            posting_ids: FxHashMap::default(),
            offers: OfferBook::new(),
            complaints: CowVec::new(),
            counters: vec![CountyCounters::default(); nc],
            directory: Directory::default(),
            ledger: Ledger::default(),
            batch: BatchWindows::default(),
            worker_index: WorkerIndex::new(nc, nt),
            posting_index: PostingIndex::new(nc, nt),
            phone_index: PhoneIndex::default(),
            ranking: Ranking::default(),
            regions,
            trades,
        }
    }

    /// An empty engine for Linfen's 17 counties and the default trades.
    pub fn linfen(config: EngineConfig) -> Self {
        Self::new(config, Regions::linfen(), TradeCatalog::default_catalog())
    }

    /// Configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counties served.
    pub fn regions(&self) -> &Regions {
        &self.regions
    }

    /// Trade catalogue.
    pub fn trades(&self) -> &TradeCatalog {
        &self.trades
    }

    /// The input rules commands are checked against (limits, counties, trades).
    pub fn rules(&self) -> Rules<'_> {
        Rules { limits: &self.config.limits, regions: &self.regions, trades: &self.trades }
    }

    // ----------------------------------------------------------------- apply

    /// Applies one command. Its input rules ([`Rules::command`]) are checked
    /// first, every violation reported at once; then the command runs. The
    /// events it produced are appended to `events` (the engine keeps none). On
    /// error nothing changed and nothing was appended.
    pub fn apply(&mut self, now: Timestamp, command: &Command, events: &mut Vec<Event>) -> Result<Outcome> {
        self.apply_by(now, None, command, events)
    }

    /// [`Engine::apply`] on behalf of `actor` (who asked for it, as logged):
    /// a review keeps its reviewer and time (`Posting::reviewed_by`,
    /// `reviewed_at`), a resolved complaint its resolver (`Complaint::resolved_by`).
    pub fn apply_by(
        &mut self,
        now: Timestamp,
        actor: Option<&str>,
        command: &Command,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        let outcome = self.apply_unattributed(now, command, events)?;
        match command {
            Command::ReviewPosting { posting, .. } => {
                if let Some(&key) = self.posting_ids.get(posting.as_str()) {
                    let p = &mut self.postings[key as usize];
                    p.reviewed_by = actor.map(CompactString::from);
                    p.reviewed_at = Some(now);
                }
            }
            Command::ResolveComplaint { complaint, .. } => {
                if let Some(c) = complaint.checked_sub(1).and_then(|i| self.complaints.get_mut(i as usize)) {
                    c.resolved_by = actor.map(CompactString::from);
                }
            }
            _ => {}
        }
        Ok(outcome)
    }

    fn apply_unattributed(&mut self, now: Timestamp, command: &Command, events: &mut Vec<Event>) -> Result<Outcome> {
        let day = LedgerDay::of(now);
        // The stocks of the day a state change at `now` would close, taken before it applies.
        let closing = self.ledger.closes_open_day(day).then(|| self.closing_stocks());
        let from = events.len();
        let outcome = self.apply_command(now, command, events)?;
        if !outcome.is_no_op() {
            self.ledger.advance(day, closing);
            self.ledger_note_events(now, &events[from..]);
        }
        Ok(outcome)
    }

    fn apply_command(&mut self, now: Timestamp, command: &Command, ev: &mut Vec<Event>) -> Result<Outcome> {
        self.rules().command(command).into_result().map_err(EngineError::InvalidArgument)?;
        match command {
            Command::UpsertWorker(spec) => self.upsert_worker(now, spec, ev),
            Command::MoveWorker { worker, position } => self.move_worker(now, worker, *position, ev),
            Command::SetAvailability { worker, window } => self.set_availability(now, worker, *window, ev),
            Command::WithdrawWorker { worker } => self.withdraw_worker(now, worker, ev),
            Command::UpsertEmployer(spec) => self.upsert_employer(spec),
            Command::SuspendEmployer { employer, reason } => self.suspend_employer(now, employer, reason, ev),
            Command::ReinstateEmployer { employer } => self.reinstate_employer(now, employer, ev),
            Command::SubmitPosting(spec) => self.submit_posting(now, spec, ev),
            Command::UpdatePosting(spec) => self.update_posting_spec(now, spec, ev),
            Command::ReviewPosting { posting, decision } => self.review_posting(now, posting, decision, ev),
            Command::CancelPosting { posting, reason } => self.cancel_posting(now, posting, reason, ev),
            Command::InstantMatch { posting, max_offers } if self.batches_posting(posting) => {
                self.queue_instant_match(now, posting, *max_offers)
            }
            Command::InstantMatch { posting, max_offers } => {
                let mut offers = Vec::new();
                let remaining = self.instant_match_into(now, posting, *max_offers, &mut offers, ev)?;
                if !offers.is_empty() {
                    let county = self.county_code_of_posting(posting);
                    self.ledger.at(county, now).instant_matches += 1;
                }
                Ok(Outcome::Matched { offers, remaining })
            }
            Command::RespondToOffer { offer, worker, response } => {
                self.respond_to_offer(now, *offer, worker, *response, ev)
            }
            Command::ConfirmArrival { offer } => self.confirm_arrival(now, *offer, ev),
            Command::CompleteJob { offer } => self.complete_job(now, *offer, ev),
            Command::ReportNoShow { offer } => self.report_no_show(now, *offer, ev),
            Command::FileComplaint { employer, posting, county, category, detail } => {
                self.file_complaint(now, employer, posting.as_deref(), *county, *category, detail)
            }
            Command::ResolveComplaint { complaint, resolution, note } => {
                self.resolve_complaint(now, *complaint, *resolution, note)
            }
            Command::Tick => Ok(self.tick(now, ev)),
            Command::UpsertMarket(spec) => self.upsert_market(spec),
            Command::RemoveMarket { market } => self.remove_market(market),
            Command::SetRankingPolicy(policy) => self.set_ranking_policy(policy),
            Command::SetBatchPolicy(batch) => self.set_batch_policy(batch),
        }
    }

    // ------------------------------------------------------------------ time

    /// When the engine next has something to do at a [`Command::Tick`]: the
    /// earliest answer deadline of a pending offer, end of an open posting or
    /// close of a decision window.
    /// `None` when nothing is due ever (until another command changes that).
    /// A host ticks at this time rather than on a fixed period.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let offer = self.offers.next_deadline().map(|(at, _)| at);
        let posting = self.posting_index.next_expiry().map(|(at, _)| at);
        [offer, posting, self.batch.next_close()].into_iter().flatten().min()
    }

    fn tick(&mut self, now: Timestamp, events: &mut Vec<Event>) -> Outcome {
        let mut offers_expired = 0;
        while let Some((deadline, id)) = self.offers.next_deadline() {
            if deadline > now {
                break;
            }
            self.close_offer(now, id, OfferState::Expired, WorkerAfter::KeepWaiting, events);
            offers_expired += 1;
        }
        let mut postings_expired = 0;
        while let Some((at, key)) = self.posting_index.next_expiry() {
            if at > now {
                break;
            }
            self.withdraw_pending_offers(now, key, events);
            self.update_posting(now, key, |p| p.state = PostingState::Expired, events);
            postings_expired += 1;
        }
        let offers_made = self.close_due_windows(now, events);
        Outcome::Ticked { offers_expired, postings_expired, offers_made }
    }

    // ---------------------------------------------------------------- ledger

    /// Marks the hour of the events a command produced as active in their
    /// counties, and counts the offers among them (one ledger lookup per run
    /// of events in the same county).
    fn ledger_note_events(&mut self, now: Timestamp, events: &[Event]) {
        let mut run: Option<(u32, u32)> = None;
        for event in events {
            let (county, offer) = match event {
                Event::Posting(p) => (p.county, 0),
                Event::Offer(o) => (o.county, u32::from(o.state == OfferState::Pending)),
            };
            match &mut run {
                Some((c, offers)) if *c == county => *offers += offer,
                _ => {
                    if let Some((c, offers)) = run.replace((county, offer)) {
                        self.ledger.at(c, now).offers_made += offers;
                    }
                }
            }
        }
        if let Some((c, offers)) = run {
            self.ledger.at(c, now).offers_made += offers;
        }
    }

    fn county_code_of_posting(&self, id: &str) -> u32 {
        self.posting(id).map_or(0, |p| self.county_code(p.county))
    }

    fn county_code(&self, idx: CountyIdx) -> u32 {
        self.regions.get(idx).code
    }

    // ------------------------------------------------------- record upkeep

    /// A validated county code's index.
    fn county_idx(&self, code: u32) -> Result<CountyIdx> {
        self.regions.index_of(code).ok_or_else(|| EngineError::invalid("county_code", format!("unknown county {code}")))
    }

    /// A validated trade id's index.
    fn trade_idx(&self, id: &str) -> Result<TradeIdx> {
        self.trades.index_of(id).ok_or_else(|| EngineError::invalid("trade_id", format!("unknown trade `{id}`")))
    }

    fn worker_key(&self, id: &str) -> Result<WorkerKey> {
        self.worker_index.key(&self.workers, id).ok_or_else(|| EngineError::UnknownWorker(id.into()))
    }

    fn posting_key(&self, id: &str) -> Result<PostingKey> {
        self.posting_ids.get(id).copied().ok_or_else(|| EngineError::UnknownPosting(id.into()))
    }

    fn employer_key(&self, id: &str) -> Result<EmployerKey> {
        self.employer_ids.get(id).copied().ok_or_else(|| EngineError::UnknownEmployer(id.into()))
    }

    /// Mutates a worker with their index entries and waiting counts kept in sync.
    fn update_worker(&mut self, key: WorkerKey, f: impl FnOnce(&mut Worker)) {
        let policy = &self.config.policy;
        let old = self.worker_index.view(policy, key, &self.workers[key as usize]);
        f(&mut self.workers[key as usize]);
        self.worker_index.sync(policy, key, &self.workers[key as usize], Some(old));
    }

    /// Puts a worker on offer `id`. For a waiting worker, what that changes in
    /// the index is known without comparing views (their waiting counts and
    /// held bit: [`WorkerIndex::hold`]); anyone else goes through
    /// [`Engine::update_worker`].
    fn hold_worker(&mut self, key: WorkerKey, id: OfferId) {
        let hold = |w: &mut Worker| {
            w.status = WorkerStatus::Offered;
            w.offer = Some(id);
        };
        if self.workers[key as usize].status == WorkerStatus::Waiting {
            hold(&mut self.workers[key as usize]);
            self.worker_index.hold(key, &self.workers[key as usize]);
        } else {
            self.update_worker(key, hold);
        }
    }

    /// Mutates a worker who may become (or stay) waiting, then runs the reverse
    /// match before the worker is put into the trees, so a worker who gets an
    /// offer straight away is not inserted only to be skipped by every scan.
    fn update_worker_and_match(
        &mut self,
        now: Timestamp,
        key: WorkerKey,
        f: impl FnOnce(&mut Worker),
        events: &mut Vec<Event>,
    ) -> Option<MatchedOffer> {
        let policy = &self.config.policy;
        let old = self.worker_index.view(policy, key, &self.workers[key as usize]);
        f(&mut self.workers[key as usize]);
        self.worker_index.sync_deferred(policy, key, &self.workers[key as usize], Some(old));
        self.match_and_index(now, key, events)
    }

    /// Runs the reverse match for a worker left out of the trees by a deferred
    /// sync, then indexes them if they are still waiting.
    fn match_and_index(&mut self, now: Timestamp, key: WorkerKey, events: &mut Vec<Event>) -> Option<MatchedOffer> {
        let offer = self.reverse_match(now, key, events);
        self.worker_index.index_if_waiting(&self.config.policy, key, &self.workers[key as usize]);
        offer
    }

    /// Mutates a posting, derives its fill state, keeps indexes and counters in
    /// sync and tells watchers.
    fn update_posting(
        &mut self,
        now: Timestamp,
        key: PostingKey,
        f: impl FnOnce(&mut Posting),
        events: &mut Vec<Event>,
    ) {
        let old = self.posting_index.view(key, &self.postings[key as usize]);
        let p = &mut self.postings[key as usize];
        let was = p.state;
        f(p);
        if matches!(p.state, PostingState::Published | PostingState::Filling | PostingState::Filled) {
            let taken = p.engaged + p.completed;
            p.state = if taken >= p.headcount {
                PostingState::Filled
            } else if p.pending + taken > 0 {
                PostingState::Filling
            } else {
                PostingState::Published
            };
            if p.state == PostingState::Filled && p.filled_at.is_none() {
                p.filled_at = Some(now);
                let secs = now.0.saturating_sub(p.published_at.unwrap_or(p.submitted_at).0).max(0) / 1000;
                let county = p.county;
                self.counters[county as usize].record_fill(secs as u64);
                self.ledger.filled(self.county_code(county), now, secs as u64);
            }
        }
        let p = &self.postings[key as usize];
        if p.state != was && matches!(p.state, PostingState::Expired | PostingState::Cancelled) && p.filled_at.is_none()
        {
            let county = self.county_code(p.county);
            self.ledger.at(county, now).postings_unfilled += 1;
        }
        self.posting_index.sync(&self.employers, key, &self.postings[key as usize], Some(old));
        self.emit_posting(now, key, events);
    }

    fn emit_posting(&self, now: Timestamp, key: PostingKey, events: &mut Vec<Event>) {
        let p = &self.postings[key as usize];
        events.push(Event::Posting(PostingEvent {
            posting: p.id.clone(),
            county: self.regions.get(p.county).code,
            township: p.township.clone(),
            state: p.state,
            version: p.version,
            remaining: if p.state.is_open() { p.remaining() } else { 0 },
            at: now,
        }));
    }

    fn emit_offer(&self, now: Timestamp, offer: &Offer, events: &mut Vec<Event>) {
        let p = &self.postings[offer.posting as usize];
        events.push(Event::Offer(OfferEvent {
            offer: offer.id,
            posting: p.id.clone(),
            worker: self.workers[offer.worker as usize].id.clone(),
            county: self.regions.get(p.county).code,
            state: offer.state,
            distance_m: offer.distance_m,
            at: now,
        }));
    }
}
