//! The state machine: applies commands with the caller's `now`, keeps the
//! R-trees (workers per trade and hardship class, postings per trade) in sync
//! with worker and posting state, and emits events for watchers.

use crate::catalog::{County, CountyIdx, Regions, Trade, TradeCatalog, TradeIdx};
use crate::command::*;
use crate::config::EngineConfig;
use crate::directory::{Directory, MarketKind, MarketSpec, MAX_INDOOR_AREA_M2, MAX_MARKET_TRADES};
use crate::error::EngineError;
use crate::geo::{distance_m_for_chord2, LatLon, EARTH_RADIUS_M, INDEX_SLACK_M};
use crate::index::IndexEntry;
use crate::ledger::{Closing, Ledger, LedgerDay, LedgerReport};
use crate::model::*;
use crate::standards::{standards_report, StandardsReport};
use crate::stats::{CountyCounters, CountyStats};
use compact_str::CompactString;
use hashbrown::HashTable;
use rstar::RTree;
use rstar::{ParentNode, PointDistance, RTreeNode};
use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::{BTreeSet, BinaryHeap};
use std::hash::BuildHasher;

type Result<T> = std::result::Result<T, EngineError>;

/// A candidate worker during matching.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f64,
    distance_m: f64,
    key: WorkerKey,
}

/// Worker ids to keys. Only the key is stored; the id is read from the worker
/// record, so each id is held once.
#[derive(Clone, Default)]
struct WorkerIds {
    table: HashTable<WorkerKey>,
}

impl WorkerIds {
    fn hash(id: &str) -> u64 {
        FxBuildHasher.hash_one(id)
    }

    fn get(&self, workers: &[Worker], id: &str) -> Option<WorkerKey> {
        self.table.find(Self::hash(id), |&k| workers[k as usize].id == id).copied()
    }

    /// Adds `workers[key]`'s id; false if another worker has it already.
    fn insert(&mut self, workers: &[Worker], key: WorkerKey) -> bool {
        let id = workers[key as usize].id.as_str();
        let entry = self.table.entry(
            Self::hash(id),
            |&k| workers[k as usize].id == id,
            |&k| Self::hash(&workers[k as usize].id),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(key);
                true
            }
        }
    }

    /// Makes room for `workers.len()` ids (empty table only: nothing to rehash).
    fn reserve(&mut self, workers: &[Worker]) {
        self.table.reserve(workers.len(), |&k| Self::hash(&workers[k as usize].id));
    }
}

/// What decides a worker's index entries and waiting counts, captured before
/// the worker record changes.
struct WorkerIndexView {
    indexed: bool,
    waiting: bool,
    point: [f32; 3],
    trades: SmallVec<[TradeIdx; 4]>,
    hardship: bool,
    county: CountyIdx,
    static_bonus_m: f32,
    waiting_since_ms: i64,
}

impl WorkerIndexView {
    fn entry(&self, key: WorkerKey) -> IndexEntry {
        IndexEntry {
            point: self.point,
            key,
            static_bonus_m: self.static_bonus_m,
            waiting_since_ms: self.waiting_since_ms,
        }
    }
}

/// What decides a posting's expiry entry, state count and index entry, captured
/// before the posting record changes.
struct PostingIndexView {
    expiry: Option<Timestamp>,
    county: CountyIdx,
    state: usize,
    indexed: Option<(TradeIdx, [f32; 3])>,
}

/// A worker-tree node or entry queued by the matcher's best-first walk, keyed by
/// a lower bound of the score of any worker under it.
struct ScanItem<'a> {
    bound: f64,
    node: ScanNode<'a>,
}

enum ScanNode<'a> {
    /// An inner node, with the largest credit in its tree.
    Parent(&'a ParentNode<IndexEntry>, f64),
    Leaf(&'a IndexEntry),
}

impl PartialEq for ScanItem<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bound.total_cmp(&other.bound).is_eq()
    }
}

impl Eq for ScanItem<'_> {}

impl PartialOrd for ScanItem<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ScanItem<'_> {
    /// Reversed, so that `BinaryHeap` pops the lowest bound first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.bound.total_cmp(&self.bound)
    }
}

/// Asks the CPU to start loading the first cache lines of `items`, which the
/// matcher will probably read soon: the R-trees and worker records are far
/// larger than the caches, and a walk is mostly waiting for memory.
#[inline(always)]
fn prefetch<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = std::mem::size_of_val(items).min(256);
        let base = items.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // SAFETY: a prefetch is only a hint: it never faults and has no effect
            // on program state; the address is inside `items`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

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
    workers: Vec<Worker>,
    worker_ids: WorkerIds,
    employers: Vec<Employer>,
    employer_ids: FxHashMap<CompactString, EmployerKey>,
    postings: Vec<Posting>,
    posting_ids: FxHashMap<CompactString, PostingKey>,
    offers: FxHashMap<OfferId, Offer>,
    next_offer_id: OfferId,
    complaints: Vec<Complaint>,
    counters: Vec<CountyCounters>,
    directory: Directory,
    ledger: Ledger,
    // Derived state below: rebuilt on restore, never in snapshots.
    offer_deadlines: BTreeSet<(Timestamp, OfferId)>,
    posting_expiries: BTreeSet<(Timestamp, PostingKey)>,
    /// Workers' trees, one per (trade, hardship class): see [`Engine::worker_tree`].
    worker_trees: Vec<RTree<IndexEntry>>,
    posting_trees: Vec<RTree<IndexEntry>>,
    worker_indexed: Vec<bool>,
    posting_indexed: Vec<bool>,
    waiting_counts: Vec<u32>,
    waiting_workers: usize,
    posting_state_counts: Vec<[u32; 7]>,
    events: Vec<Event>,
    scratch: Vec<Candidate>,
}

/// The engine's full state, canonical: two engines that applied the same
/// commands produce equal snapshots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineSnapshot {
    /// Counties the engine was built with.
    pub counties: Vec<County>,
    /// Trade catalogue the engine was built with.
    pub trades: Vec<Trade>,
    /// Workers in registration order.
    pub workers: Vec<Worker>,
    /// Employers in first-upsert order.
    pub employers: Vec<Employer>,
    /// Postings in submission order.
    pub postings: Vec<Posting>,
    /// Live offers by id.
    pub offers: Vec<Offer>,
    /// Next offer id to assign.
    pub next_offer_id: OfferId,
    /// Complaints by id.
    pub complaints: Vec<Complaint>,
    /// Per-county counters, in county order.
    pub counters: Vec<CountyCounters>,
    /// Market directory entries, in id order.
    pub directory: Vec<MarketSpec>,
    /// The ledger.
    pub ledger: Ledger,
}

/// Borrowed form of [`EngineSnapshot`], serialising to the same bytes without copying state.
#[derive(Serialize)]
pub struct EngineSnapshotRef<'a> {
    counties: &'a [County],
    trades: &'a [Trade],
    workers: &'a [Worker],
    employers: &'a [Employer],
    postings: &'a [Posting],
    offers: Vec<&'a Offer>,
    next_offer_id: OfferId,
    complaints: &'a [Complaint],
    counters: &'a [CountyCounters],
    directory: Vec<&'a MarketSpec>,
    ledger: &'a Ledger,
}

fn state_slot(s: PostingState) -> usize {
    PostingState::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Engine {
    /// An empty engine for the given regions and trades.
    pub fn new(config: EngineConfig, regions: Regions, trades: TradeCatalog) -> Self {
        let nt = trades.len();
        let nc = regions.len();
        Self {
            config,
            workers: Vec::new(),
            worker_ids: WorkerIds::default(),
            employers: Vec::new(),
            employer_ids: FxHashMap::default(),
            postings: Vec::new(),
            posting_ids: FxHashMap::default(),
            offers: FxHashMap::default(),
            next_offer_id: 1,
            complaints: Vec::new(),
            counters: vec![CountyCounters::default(); nc],
            directory: Directory::default(),
            ledger: Ledger::default(),
            offer_deadlines: BTreeSet::new(),
            posting_expiries: BTreeSet::new(),
            worker_trees: (0..nt * 2).map(|_| RTree::new()).collect(),
            posting_trees: (0..nt).map(|_| RTree::new()).collect(),
            worker_indexed: Vec::new(),
            posting_indexed: Vec::new(),
            waiting_counts: vec![0; nc * nt],
            waiting_workers: 0,
            posting_state_counts: vec![[0; 7]; nc],
            events: Vec::new(),
            scratch: Vec::new(),
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

    // ----------------------------------------------------------------- apply

    /// Applies one command. On error nothing changed. Events produced are
    /// appended to the buffer read by [`Engine::events`].
    pub fn apply(&mut self, now: Timestamp, command: &Command) -> Result<Outcome> {
        let day = LedgerDay::of(now);
        // The stocks of the day a state change at `now` would close, taken before it applies.
        let closing = self.ledger.closes_open_day(day).then(|| self.closing_stocks());
        let events_before = self.events.len();
        let outcome = self.apply_command(now, command)?;
        if !outcome.is_no_op() {
            self.ledger.advance(day, closing);
            self.ledger_note_events(now, events_before);
        }
        Ok(outcome)
    }

    fn apply_command(&mut self, now: Timestamp, command: &Command) -> Result<Outcome> {
        match command {
            Command::UpsertWorker(spec) => self.upsert_worker(now, spec),
            Command::MoveWorker { worker, position } => self.move_worker(now, worker, *position),
            Command::SetAvailability { worker, window } => self.set_availability(now, worker, *window),
            Command::WithdrawWorker { worker } => self.withdraw_worker(now, worker),
            Command::UpsertEmployer(spec) => self.upsert_employer(spec),
            Command::SuspendEmployer { employer, reason } => self.suspend_employer(now, employer, reason),
            Command::ReinstateEmployer { employer } => self.reinstate_employer(now, employer),
            Command::SubmitPosting(spec) => self.submit_posting(now, spec),
            Command::UpdatePosting(spec) => self.update_posting_spec(now, spec),
            Command::ReviewPosting { posting, decision } => self.review_posting(now, posting, decision),
            Command::CancelPosting { posting, reason } => self.cancel_posting(now, posting, reason),
            Command::InstantMatch { posting, max_offers } => {
                let mut offers = Vec::new();
                let remaining = self.instant_match_into(now, posting, *max_offers, &mut offers)?;
                if !offers.is_empty() {
                    let county = self.county_code_of_posting(posting);
                    self.ledger.at(county, now).instant_matches += 1;
                }
                Ok(Outcome::Matched { offers, remaining })
            }
            Command::RespondToOffer { offer, worker, response } => {
                self.respond_to_offer(now, *offer, worker, *response)
            }
            Command::ConfirmArrival { offer } => self.confirm_arrival(now, *offer),
            Command::CompleteJob { offer } => self.complete_job(now, *offer),
            Command::ReportNoShow { offer } => self.report_no_show(now, *offer),
            Command::FileComplaint { employer, posting, county, category, detail } => {
                self.file_complaint(now, employer, posting.as_deref(), *county, *category, detail)
            }
            Command::ResolveComplaint { complaint, resolution, note } => {
                self.resolve_complaint(now, *complaint, *resolution, note)
            }
            Command::Tick => Ok(self.tick(now)),
            Command::UpsertMarket(spec) => self.upsert_market(spec),
            Command::RemoveMarket { market } => match self.directory.remove(market) {
                Some(_) => Ok(Outcome::MarketRemoved),
                None => Err(EngineError::UnknownMarket(market.clone())),
            },
        }
    }

    // ---------------------------------------------------------------- ledger

    /// A county's stocks now: waiting workers by trade, postings by state.
    fn stocks_of(&self, c: CountyIdx) -> Closing {
        let (nt, c) = (self.trades.len(), c as usize);
        Closing {
            waiting_by_trade: self.waiting_counts[c * nt..(c + 1) * nt].to_vec(),
            postings_by_state: self.posting_state_counts[c],
        }
    }

    /// Every county's stocks now.
    fn closing_stocks(&self) -> Vec<(u32, Closing)> {
        (0..self.regions.len() as CountyIdx).map(|c| (self.county_code(c), self.stocks_of(c))).collect()
    }

    /// Marks the hour of the events a command produced as active in their
    /// counties, and counts the offers among them (one ledger lookup per run
    /// of events in the same county).
    fn ledger_note_events(&mut self, now: Timestamp, from: usize) {
        let mut run: Option<(u32, u32)> = None;
        for i in from..self.events.len() {
            let (county, offer) = match &self.events[i] {
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

    // ------------------------------------------------------------- directory

    fn upsert_market(&mut self, spec: &MarketSpec) -> Result<Outcome> {
        let l = &self.config.limits;
        self.check_id("market_id", &spec.id)?;
        self.county_idx("county", spec.county)?;
        match (&spec.township, spec.kind) {
            (None, MarketKind::TownshipStation) => {
                return Err(EngineError::invalid("township", "a township station needs its township code"))
            }
            (t, _) => self.check_township(t)?,
        }
        for (field, text, max) in [
            ("name", &spec.name, l.max_name_len),
            ("address", &spec.address, l.max_text_len),
            ("opening_hours", &spec.opening_hours, l.max_name_len),
            ("hotline", &spec.hotline, l.max_phone_len),
            ("complaint_channel", &spec.complaint_channel, l.max_name_len),
        ] {
            if text.trim().is_empty() {
                return Err(EngineError::invalid(field, "must not be empty"));
            }
            Self::check_text(field, text, max)?;
        }
        Self::check_position("position", spec.position)?;
        if spec.indoor_area_m2 == 0 || spec.indoor_area_m2 > MAX_INDOOR_AREA_M2 {
            return Err(EngineError::invalid("indoor_area_m2", format!("must be 1 to {MAX_INDOOR_AREA_M2}")));
        }
        if spec.trades.len() > MAX_MARKET_TRADES {
            return Err(EngineError::invalid("trades", format!("at most {MAX_MARKET_TRADES} trades")));
        }
        for (i, t) in spec.trades.iter().enumerate() {
            if self.trades.index_of(t).is_none() {
                return Err(EngineError::invalid("trades", format!("unknown trade `{t}`")));
            }
            if spec.trades[..i].contains(t) {
                return Err(EngineError::invalid("trades", format!("trade `{t}` repeated")));
            }
        }
        if spec.kind == MarketKind::CountyMarket {
            if let Some(other) = self.directory.county_market(spec.county).filter(|m| m.id != spec.id) {
                return Err(EngineError::invalid(
                    "kind",
                    format!("county {} already has county market `{}`", spec.county, other.id),
                ));
            }
        }
        let created = self.directory.upsert(spec.clone());
        Ok(Outcome::MarketUpserted { created })
    }

    /// Events produced since the last [`Engine::clear_events`].
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Forgets buffered events (callers drain them after each command).
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// Moves buffered events into `out`.
    pub fn drain_events_into(&mut self, out: &mut Vec<Event>) {
        out.append(&mut self.events);
    }

    // ------------------------------------------------------------ validation

    fn check_id(&self, field: &'static str, id: &str) -> Result<()> {
        if id.is_empty() {
            return Err(EngineError::invalid(field, "must not be empty"));
        }
        if id.len() > self.config.limits.max_id_len {
            return Err(EngineError::invalid(field, format!("longer than {} bytes", self.config.limits.max_id_len)));
        }
        if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(EngineError::invalid(field, "contains whitespace or control characters"));
        }
        Ok(())
    }

    fn check_text(field: &'static str, text: &str, max: usize) -> Result<()> {
        if text.len() > max {
            return Err(EngineError::invalid(field, format!("longer than {max} bytes")));
        }
        Ok(())
    }

    fn check_position(field: &'static str, p: LatLon) -> Result<()> {
        if !p.is_valid() {
            return Err(EngineError::invalid(field, "latitude must be in -90..=90 and longitude in -180..=180"));
        }
        Ok(())
    }

    fn county_idx(&self, field: &'static str, code: u32) -> Result<CountyIdx> {
        self.regions.index_of(code).ok_or_else(|| EngineError::invalid(field, format!("unknown county {code}")))
    }

    fn check_township(&self, t: &Option<CompactString>) -> Result<()> {
        if let Some(t) = t {
            self.check_id("township", t)?;
        }
        Ok(())
    }

    fn worker_key(&self, id: &str) -> Result<WorkerKey> {
        self.worker_ids.get(&self.workers, id).ok_or_else(|| EngineError::UnknownWorker(id.into()))
    }

    fn posting_key(&self, id: &str) -> Result<PostingKey> {
        self.posting_ids.get(id).copied().ok_or_else(|| EngineError::UnknownPosting(id.into()))
    }

    fn employer_key(&self, id: &str) -> Result<EmployerKey> {
        self.employer_ids.get(id).copied().ok_or_else(|| EngineError::UnknownEmployer(id.into()))
    }

    fn live_offer(&self, id: OfferId) -> Result<&Offer> {
        self.offers.get(&id).ok_or(EngineError::UnknownOffer(id))
    }

    // ------------------------------------------------------- index upkeep

    fn static_bonus(&self, w: &Worker) -> f32 {
        let p = &self.config.policy;
        let hardship = if w.hardship.is_hardship() { p.hardship_bonus_m.max(0.0) } else { 0.0 };
        (hardship + p.reliability_bonus_m.max(0.0) * w.reliability.score()) as f32
    }

    /// Whether a worker belongs in the R-trees, given whether they are in them
    /// now: waiting workers always (they are matchable), engaged and away workers
    /// never; an offered worker stays where they are (the scan skips them), so
    /// reserving a waiting worker and releasing them again costs no index work,
    /// and a worker offered a posting before being indexed is indexed only if
    /// they return to waiting.
    fn belongs_in_index(status: WorkerStatus, indexed: bool) -> bool {
        match status {
            WorkerStatus::Waiting => true,
            WorkerStatus::Offered => indexed,
            WorkerStatus::Engaged | WorkerStatus::Away => false,
        }
    }

    /// The fields of a worker that decide their index entries and waiting counts.
    fn index_view(&self, key: WorkerKey) -> WorkerIndexView {
        let w = &self.workers[key as usize];
        WorkerIndexView {
            indexed: self.worker_indexed[key as usize],
            waiting: w.status == WorkerStatus::Waiting,
            point: w.position.to_unit(),
            trades: w.trades.iter().map(|t| t.trade).collect(),
            hardship: w.hardship.is_hardship(),
            county: w.county,
            static_bonus_m: self.static_bonus(w),
            waiting_since_ms: w.waiting_since.0,
        }
    }

    /// The slot in `worker_trees` of a trade's hardship or other workers. Hardship
    /// workers have trees of their own, so the other trees' stopping bound need not
    /// allow for the hardship credit.
    fn worker_tree(trade: TradeIdx, hardship: bool) -> usize {
        trade as usize * 2 + hardship as usize
    }

    /// Brings a worker's index entries and waiting counts from `old` (what they
    /// were before the worker record changed; `None` for a new worker) to the
    /// record's current state, touching the trees only if an entry changed.
    /// With `defer_insert`, a waiting worker who would have to be (re)inserted is
    /// left out of the trees for now: the caller runs the reverse match first and
    /// then calls [`Engine::index_if_waiting`].
    fn sync_worker(&mut self, key: WorkerKey, old: Option<WorkerIndexView>, defer_insert: bool) {
        let new = self.index_view(key);
        let nt = self.trades.len();
        if let Some(old) = &old {
            if old.waiting {
                self.waiting_workers -= 1;
                for &t in &old.trades {
                    self.waiting_counts[old.county as usize * nt + t as usize] -= 1;
                }
            }
        }
        if new.waiting {
            self.waiting_workers += 1;
            for &t in &new.trades {
                self.waiting_counts[new.county as usize * nt + t as usize] += 1;
            }
        }
        let was = old.as_ref().is_some_and(|o| o.indexed);
        let want = Self::belongs_in_index(self.workers[key as usize].status, was);
        if let Some(old) = old.filter(|o| o.indexed) {
            let same = old.point == new.point
                && old.trades == new.trades
                && old.hardship == new.hardship
                && old.static_bonus_m == new.static_bonus_m
                && old.waiting_since_ms == new.waiting_since_ms;
            if want && same {
                return;
            }
            let entry = old.entry(key);
            for &t in &old.trades {
                let removed = self.worker_trees[Self::worker_tree(t, old.hardship)].remove(&entry);
                debug_assert!(removed.is_some(), "index out of sync");
            }
        }
        let insert = want && !defer_insert;
        if insert {
            let entry = new.entry(key);
            for &t in &new.trades {
                self.worker_trees[Self::worker_tree(t, new.hardship)].insert(entry);
            }
        }
        self.worker_indexed[key as usize] = insert;
    }

    /// Inserts a waiting worker left out of the trees by a deferred sync.
    fn index_if_waiting(&mut self, key: WorkerKey) {
        if self.workers[key as usize].status == WorkerStatus::Waiting && !self.worker_indexed[key as usize] {
            let new = self.index_view(key);
            let entry = new.entry(key);
            for &t in &new.trades {
                self.worker_trees[Self::worker_tree(t, new.hardship)].insert(entry);
            }
            self.worker_indexed[key as usize] = true;
        }
    }

    /// Mutates a worker with its index entries and waiting counts kept in sync.
    fn update_worker(&mut self, key: WorkerKey, f: impl FnOnce(&mut Worker)) {
        let old = self.index_view(key);
        f(&mut self.workers[key as usize]);
        self.sync_worker(key, Some(old), false);
    }

    /// Mutates a worker who may become (or stay) waiting, then runs the reverse
    /// match before the worker is put into the trees, so a worker who gets an
    /// offer straight away is not inserted only to be skipped by every scan.
    fn update_worker_and_match(
        &mut self,
        now: Timestamp,
        key: WorkerKey,
        f: impl FnOnce(&mut Worker),
    ) -> Option<MatchedOffer> {
        let old = self.index_view(key);
        f(&mut self.workers[key as usize]);
        self.sync_worker(key, Some(old), true);
        let offer = self.reverse_match(now, key);
        self.index_if_waiting(key);
        offer
    }

    fn posting_should_be_indexed(&self, p: &Posting) -> bool {
        p.state.is_open() && p.remaining() > 0 && !self.employers[p.employer as usize].suspended
    }

    fn posting_expirable(p: &Posting) -> bool {
        matches!(p.state, PostingState::PendingReview | PostingState::Published | PostingState::Filling)
    }

    /// The fields of a posting that decide its expiry entry, state count and
    /// index entry.
    fn posting_index_view(&self, key: PostingKey) -> PostingIndexView {
        let p = &self.postings[key as usize];
        PostingIndexView {
            expiry: Self::posting_expirable(p).then(|| p.expires_at()),
            county: p.county,
            state: state_slot(p.state),
            indexed: self.posting_indexed[key as usize].then(|| (p.trade, p.position.to_unit())),
        }
    }

    /// Brings a posting's expiry entry, state count and index entry from `old`
    /// (before the record changed; `None` for a new posting) to the record's
    /// current state, touching each only if it changed.
    fn sync_posting(&mut self, key: PostingKey, old: Option<PostingIndexView>) {
        let p = &self.postings[key as usize];
        let new = PostingIndexView {
            expiry: Self::posting_expirable(p).then(|| p.expires_at()),
            county: p.county,
            state: state_slot(p.state),
            indexed: self.posting_should_be_indexed(p).then(|| (p.trade, p.position.to_unit())),
        };
        let old =
            old.unwrap_or(PostingIndexView { expiry: None, county: new.county, state: usize::MAX, indexed: None });
        if old.expiry != new.expiry {
            if let Some(at) = old.expiry {
                self.posting_expiries.remove(&(at, key));
            }
            if let Some(at) = new.expiry {
                self.posting_expiries.insert((at, key));
            }
        }
        if (old.county, old.state) != (new.county, new.state) {
            if old.state != usize::MAX {
                self.posting_state_counts[old.county as usize][old.state] -= 1;
            }
            self.posting_state_counts[new.county as usize][new.state] += 1;
        }
        if old.indexed != new.indexed {
            if let Some((trade, point)) = old.indexed {
                self.posting_trees[trade as usize].remove(&IndexEntry::posting(point, key));
            }
            if let Some((trade, point)) = new.indexed {
                self.posting_trees[trade as usize].insert(IndexEntry::posting(point, key));
            }
            self.posting_indexed[key as usize] = new.indexed.is_some();
        }
    }

    /// Mutates a posting, derives its fill state, keeps indexes and counters in
    /// sync and tells watchers.
    fn update_posting(&mut self, now: Timestamp, key: PostingKey, f: impl FnOnce(&mut Posting)) {
        let old = self.posting_index_view(key);
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
        self.sync_posting(key, Some(old));
        self.emit_posting(now, key);
    }

    fn emit_posting(&mut self, now: Timestamp, key: PostingKey) {
        let p = &self.postings[key as usize];
        self.events.push(Event::Posting(PostingEvent {
            posting: p.id.clone(),
            county: self.regions.get(p.county).code,
            township: p.township.clone(),
            state: p.state,
            version: p.version,
            remaining: if p.state.is_open() { p.remaining() } else { 0 },
            at: now,
        }));
    }

    fn emit_offer(&mut self, now: Timestamp, offer: &Offer) {
        let p = &self.postings[offer.posting as usize];
        self.events.push(Event::Offer(OfferEvent {
            offer: offer.id,
            posting: p.id.clone(),
            worker: self.workers[offer.worker as usize].id.clone(),
            county: self.regions.get(p.county).code,
            state: offer.state,
            distance_m: offer.distance_m,
            at: now,
        }));
    }

    // --------------------------------------------------------------- workers

    fn resolve_worker_spec(&self, spec: &WorkerSpec) -> Result<(SmallVec<[TradeSkill; 4]>, CountyIdx)> {
        let l = &self.config.limits;
        self.check_id("worker_id", &spec.id)?;
        if spec.name.trim().is_empty() {
            return Err(EngineError::invalid("name", "must not be empty"));
        }
        Self::check_text("name", &spec.name, l.max_name_len)?;
        Self::check_text("phone", &spec.phone, l.max_phone_len)?;
        if !spec.phone.chars().all(|c| c.is_ascii_digit() || "+- ".contains(c)) {
            return Err(EngineError::invalid("phone", "only digits, '+', '-' and spaces allowed"));
        }
        Self::check_position("position", spec.position)?;
        let county = self.county_idx("county", spec.county)?;
        self.check_township(&spec.township)?;
        if spec.availability.from >= spec.availability.until {
            return Err(EngineError::invalid("availability", "window is empty"));
        }
        if spec.trades.is_empty() || spec.trades.len() > l.max_trades_per_worker {
            return Err(EngineError::invalid("trades", format!("need 1 to {} trades", l.max_trades_per_worker)));
        }
        let mut trades: SmallVec<[TradeSkill; 4]> = SmallVec::new();
        for t in &spec.trades {
            let trade = self
                .trades
                .index_of(&t.trade)
                .ok_or_else(|| EngineError::invalid("trades", format!("unknown trade `{}`", t.trade)))?;
            if !(1..=5).contains(&t.level) {
                return Err(EngineError::invalid("trades", "skill level must be 1 to 5"));
            }
            if trades.iter().any(|x| x.trade == trade) {
                return Err(EngineError::invalid("trades", format!("trade `{}` repeated", t.trade)));
            }
            trades.push(TradeSkill { trade, level: t.level });
        }
        Ok((trades, county))
    }

    fn upsert_worker(&mut self, now: Timestamp, spec: &WorkerSpec) -> Result<Outcome> {
        let (trades, county) = self.resolve_worker_spec(spec)?;
        let existing = self.worker_ids.get(&self.workers, &spec.id);
        let created = existing.is_none();
        let offer = if let Some(key) = existing {
            self.update_worker_and_match(now, key, |w| {
                w.name = spec.name.clone();
                w.phone = spec.phone.clone();
                w.trades = trades;
                w.position = spec.position;
                w.county = county;
                w.township = spec.township.clone();
                w.availability = spec.availability;
                w.min_daily_wage = spec.min_daily_wage;
                w.hardship = spec.hardship;
                if w.status == WorkerStatus::Away {
                    w.status = WorkerStatus::Waiting;
                    w.waiting_since = now;
                }
            })
        } else {
            let key = self.workers.len() as WorkerKey;
            self.workers.push(Worker {
                id: spec.id.clone(),
                name: spec.name.clone(),
                phone: spec.phone.clone(),
                trades,
                position: spec.position,
                county,
                township: spec.township.clone(),
                availability: spec.availability,
                min_daily_wage: spec.min_daily_wage,
                hardship: spec.hardship,
                reliability: Reliability::default(),
                status: WorkerStatus::Waiting,
                waiting_since: now,
                offer: None,
            });
            self.worker_indexed.push(false);
            self.worker_ids.insert(&self.workers, key);
            self.counters[county as usize].registrations += 1;
            self.ledger.at(self.county_code(county), now).registrations += 1;
            self.sync_worker(key, None, true);
            let offer = self.reverse_match(now, key);
            self.index_if_waiting(key);
            offer
        };
        Ok(Outcome::WorkerUpserted { created, offer })
    }

    fn move_worker(&mut self, now: Timestamp, id: &str, position: LatLon) -> Result<Outcome> {
        Self::check_position("position", position)?;
        let key = self.worker_key(id)?;
        let offer = self.update_worker_and_match(now, key, |w| w.position = position);
        Ok(Outcome::WorkerUpdated { status: self.workers[key as usize].status, offer })
    }

    fn set_availability(&mut self, now: Timestamp, id: &str, window: Option<Availability>) -> Result<Outcome> {
        let key = self.worker_key(id)?;
        if let Some(win) = window {
            if win.from >= win.until {
                return Err(EngineError::invalid("availability", "window is empty"));
            }
        }
        let w = &self.workers[key as usize];
        if let (None, WorkerStatus::Offered | WorkerStatus::Engaged) = (window, w.status) {
            return Err(EngineError::WorkerState {
                id: w.id.clone(),
                status: w.status,
                action: "going away (answer or withdraw first)",
            });
        }
        let offer = match (window, w.status) {
            (None, _) => self.update_worker_and_match(now, key, |w| w.status = WorkerStatus::Away),
            (Some(win), _) => self.update_worker_and_match(now, key, |w| {
                w.availability = win;
                if w.status == WorkerStatus::Away {
                    w.status = WorkerStatus::Waiting;
                    w.waiting_since = now;
                }
            }),
        };
        Ok(Outcome::WorkerUpdated { status: self.workers[key as usize].status, offer })
    }

    fn withdraw_worker(&mut self, now: Timestamp, id: &str) -> Result<Outcome> {
        let key = self.worker_key(id)?;
        let w = &self.workers[key as usize];
        let mut late = false;
        if let Some(offer_id) = w.offer {
            let state = self.offers[&offer_id].state;
            match state {
                OfferState::Pending => {
                    self.close_offer(now, offer_id, OfferState::Withdrawn, WorkerAfter::Away);
                }
                OfferState::Accepted => {
                    late = true;
                    self.workers[key as usize].reliability.late_cancellations += 1;
                    self.close_offer(now, offer_id, OfferState::Cancelled, WorkerAfter::Away);
                }
                _ => {
                    return Err(EngineError::WorkerState {
                        id: w.id.clone(),
                        status: w.status,
                        action: "withdrawing while at work (complete the job first)",
                    })
                }
            }
        }
        self.update_worker(key, |w| w.status = WorkerStatus::Away);
        Ok(Outcome::WorkerWithdrawn { late_cancellation: late })
    }

    // ------------------------------------------------------------- employers

    fn upsert_employer(&mut self, spec: &EmployerSpec) -> Result<Outcome> {
        self.check_id("employer_id", &spec.id)?;
        if spec.name.trim().is_empty() {
            return Err(EngineError::invalid("name", "must not be empty"));
        }
        Self::check_text("name", &spec.name, self.config.limits.max_name_len)?;
        if let EmployerKind::Company { credit_code } = &spec.kind {
            let ok =
                credit_code.len() == 18 && credit_code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
            if !ok {
                return Err(EngineError::invalid("credit_code", "must be 18 digits or capital letters"));
            }
        }
        match self.employer_ids.get(&spec.id) {
            Some(&key) => {
                let e = &mut self.employers[key as usize];
                e.name = spec.name.clone();
                e.kind = spec.kind.clone();
                e.verified = spec.verified;
                Ok(Outcome::EmployerUpserted { created: false })
            }
            None => {
                let key = self.employers.len() as EmployerKey;
                self.employers.push(Employer {
                    id: spec.id.clone(),
                    name: spec.name.clone(),
                    kind: spec.kind.clone(),
                    verified: spec.verified,
                    suspended: false,
                    suspension_reason: None,
                    complaints: 0,
                });
                self.employer_ids.insert(spec.id.clone(), key);
                Ok(Outcome::EmployerUpserted { created: true })
            }
        }
    }

    fn postings_of(&self, employer: EmployerKey) -> Vec<PostingKey> {
        (0..self.postings.len() as PostingKey)
            .filter(|&k| {
                let p = &self.postings[k as usize];
                p.employer == employer && !p.state.is_terminal()
            })
            .collect()
    }

    fn suspend_employer(&mut self, now: Timestamp, id: &str, reason: &str) -> Result<Outcome> {
        Self::check_text("reason", reason, self.config.limits.max_text_len)?;
        let key = self.employer_key(id)?;
        let e = &mut self.employers[key as usize];
        e.suspended = true;
        e.suspension_reason = Some(reason.into());
        let mut withdrawn = 0;
        for pk in self.postings_of(key) {
            withdrawn += self.withdraw_pending_offers(now, pk);
            self.update_posting(now, pk, |_| {});
        }
        Ok(Outcome::EmployerStatusChanged { suspended: true, offers_withdrawn: withdrawn })
    }

    fn reinstate_employer(&mut self, now: Timestamp, id: &str) -> Result<Outcome> {
        let key = self.employer_key(id)?;
        let e = &mut self.employers[key as usize];
        e.suspended = false;
        e.suspension_reason = None;
        for pk in self.postings_of(key) {
            self.update_posting(now, pk, |_| {});
        }
        Ok(Outcome::EmployerStatusChanged { suspended: false, offers_withdrawn: 0 })
    }

    // -------------------------------------------------------------- postings

    /// Validated, resolved parts of a posting spec.
    fn resolve_posting_spec(&self, spec: &PostingSpec) -> Result<(EmployerKey, TradeIdx, CountyIdx)> {
        let l = &self.config.limits;
        self.check_id("posting_id", &spec.id)?;
        self.check_id("employer_id", &spec.employer)?;
        let trade = self
            .trades
            .index_of(&spec.trade)
            .ok_or_else(|| EngineError::invalid("trade", format!("unknown trade `{}`", spec.trade)))?;
        if spec.headcount == 0 || spec.headcount > l.max_headcount {
            return Err(EngineError::invalid("headcount", format!("must be 1 to {}", l.max_headcount)));
        }
        Self::check_position("position", spec.position)?;
        let county = self.county_idx("county", spec.county)?;
        self.check_township(&spec.township)?;
        if spec.max_distance_m == 0 || spec.max_distance_m > l.max_travel_distance_m {
            return Err(EngineError::invalid("max_distance_m", format!("must be 1 to {}", l.max_travel_distance_m)));
        }
        if spec.duration_minutes == 0 || spec.duration_minutes > l.max_duration_minutes {
            return Err(EngineError::invalid("duration_minutes", format!("must be 1 to {}", l.max_duration_minutes)));
        }
        if spec.offer_ttl_secs > l.max_offer_ttl_secs {
            return Err(EngineError::invalid("offer_ttl_secs", format!("must be at most {}", l.max_offer_ttl_secs)));
        }
        if spec.version == 0 {
            return Err(EngineError::invalid("version", "must be at least 1"));
        }
        Self::check_text("description", &spec.description, l.max_text_len)?;
        let employer = self.employer_key(&spec.employer)?;
        Ok((employer, trade, county))
    }

    /// The automatic review (用工信息审核): `Err(reason)` rejects the posting.
    fn auto_review(
        &self,
        now: Timestamp,
        spec: &PostingSpec,
        employer: EmployerKey,
    ) -> std::result::Result<(), String> {
        let l = &self.config.limits;
        let e = &self.employers[employer as usize];
        if e.suspended {
            return Err(format!("employer {} is suspended", e.id));
        }
        let min = self.config.min_daily_wage_for(spec.county);
        if spec.daily_wage < min {
            return Err(format!("daily wage {} below the county minimum {}", spec.daily_wage, min));
        }
        if spec.start < now.plus_secs(-l.max_start_behind_secs) {
            return Err("start time is too far in the past".into());
        }
        if spec.start > now.plus_secs(l.max_start_ahead_secs) {
            return Err("start time is too far ahead".into());
        }
        if spec.expires_at_after(now) {
            Ok(())
        } else {
            Err("the job window has already ended".into())
        }
    }

    fn fill_posting_from_spec(&self, p: &mut Posting, spec: &PostingSpec, trade: TradeIdx, county: CountyIdx) {
        p.trade = trade;
        p.headcount = spec.headcount;
        p.position = spec.position;
        p.county = county;
        p.township = spec.township.clone();
        p.max_distance_m = spec.max_distance_m;
        p.daily_wage = spec.daily_wage;
        p.start = spec.start;
        p.duration_minutes = spec.duration_minutes;
        p.offer_ttl_secs =
            if spec.offer_ttl_secs == 0 { self.config.default_offer_ttl_secs } else { spec.offer_ttl_secs };
        p.description = spec.description.clone();
        p.source = spec.source;
        p.version = spec.version;
    }

    fn same_content(&self, p: &Posting, spec: &PostingSpec) -> bool {
        let mut probe = p.clone();
        if let (Ok((_, trade, county)), Some(&ek)) =
            (self.resolve_posting_spec(spec), self.employer_ids.get(&spec.employer))
        {
            self.fill_posting_from_spec(&mut probe, spec, trade, county);
            probe.employer = ek;
            probe == *p
        } else {
            false
        }
    }

    fn posting_outcome(&self, key: PostingKey, unchanged: bool) -> Outcome {
        let p = &self.postings[key as usize];
        Outcome::PostingChanged { state: p.state, version: p.version, unchanged, reason: p.reason.clone() }
    }

    fn submit_posting(&mut self, now: Timestamp, spec: &PostingSpec) -> Result<Outcome> {
        if let Some(&key) = self.posting_ids.get(&spec.id) {
            let p = &self.postings[key as usize];
            if p.version == spec.version && self.same_content(p, spec) {
                return Ok(self.posting_outcome(key, true));
            }
            return Err(EngineError::PostingExists { id: spec.id.clone(), current_version: p.version });
        }
        check_version_step(0, spec.version)?;
        let (employer, trade, county) = self.resolve_posting_spec(spec)?;
        let verdict = self.auto_review(now, spec, employer);
        let mut p = Posting {
            id: spec.id.clone(),
            employer,
            trade,
            headcount: 0,
            position: spec.position,
            county,
            township: None,
            max_distance_m: 0,
            daily_wage: 0,
            start: spec.start,
            duration_minutes: 0,
            offer_ttl_secs: 0,
            description: CompactString::default(),
            source: spec.source,
            version: 0,
            state: PostingState::PendingReview,
            reason: None,
            pending: 0,
            engaged: 0,
            completed: 0,
            passed_over: Vec::new(),
            submitted_at: now,
            published_at: None,
            filled_at: None,
        };
        self.fill_posting_from_spec(&mut p, spec, trade, county);
        let key = self.postings.len() as PostingKey;
        self.postings.push(p);
        self.posting_indexed.push(false);
        self.posting_ids.insert(spec.id.clone(), key);
        self.sync_posting(key, None);
        self.ledger.posting_submitted(self.county_code(county), now, spec.source);
        self.apply_review_verdict(now, key, verdict);
        Ok(self.posting_outcome(key, false))
    }

    /// Publishes, rejects or leaves pending after the automatic review.
    fn apply_review_verdict(&mut self, now: Timestamp, key: PostingKey, verdict: std::result::Result<(), String>) {
        let verified = self.employers[self.postings[key as usize].employer as usize].verified;
        self.update_posting(now, key, |p| match verdict {
            Err(reason) => {
                p.state = PostingState::Rejected;
                p.reason = Some(reason.into());
            }
            Ok(()) if verified => {
                p.state = PostingState::Published;
                p.reason = None;
                p.published_at.get_or_insert(now);
            }
            Ok(()) => {
                p.state = PostingState::PendingReview;
                p.reason = None;
            }
        });
    }

    fn update_posting_spec(&mut self, now: Timestamp, spec: &PostingSpec) -> Result<Outcome> {
        let key = self.posting_key(&spec.id)?;
        let p = &self.postings[key as usize];
        if spec.version <= p.version {
            if spec.version == p.version && self.same_content(p, spec) {
                return Ok(self.posting_outcome(key, true));
            }
            return Err(EngineError::StaleVersion {
                id: spec.id.clone(),
                given: spec.version,
                current_version: p.version,
            });
        }
        check_version_step(p.version, spec.version)?;
        let (employer, trade, county) = self.resolve_posting_spec(spec)?;
        let action = "update";
        if matches!(p.state, PostingState::Cancelled | PostingState::Expired) {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action });
        }
        if employer != p.employer {
            return Err(EngineError::invalid("employer_id", "a posting's employer cannot change"));
        }
        let committed = p.engaged + p.completed;
        if committed > 0 && (trade != p.trade || spec.position != p.position) {
            return Err(EngineError::PostingState {
                id: p.id.clone(),
                state: p.state,
                action: "changing trade or place after workers accepted",
            });
        }
        if spec.headcount < committed {
            return Err(EngineError::invalid("headcount", format!("{committed} workers already accepted")));
        }
        let verified = self.employers[employer as usize].verified;
        if !verified && p.engaged > 0 {
            return Err(EngineError::PostingState {
                id: p.id.clone(),
                state: p.state,
                action: "updating an unverified employer's posting while workers are engaged",
            });
        }
        let verdict = self.auto_review(now, spec, employer);
        let mut updated = p.clone();
        self.fill_posting_from_spec(&mut updated, spec, trade, county);
        self.withdraw_pending_offers(now, key);
        self.update_posting(now, key, |slot| {
            updated.pending = slot.pending;
            *slot = updated;
        });
        self.apply_review_verdict(now, key, verdict);
        Ok(self.posting_outcome(key, false))
    }

    fn review_posting(&mut self, now: Timestamp, id: &str, decision: &ReviewDecision) -> Result<Outcome> {
        let key = self.posting_key(id)?;
        let p = &self.postings[key as usize];
        if p.state != PostingState::PendingReview {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action: "review" });
        }
        match decision {
            ReviewDecision::Approve => self.update_posting(now, key, |p| {
                p.state = PostingState::Published;
                p.published_at.get_or_insert(now);
            }),
            ReviewDecision::Reject { reason } => {
                if reason.trim().is_empty() {
                    return Err(EngineError::invalid("reason", "a rejection needs a reason"));
                }
                Self::check_text("reason", reason, self.config.limits.max_text_len)?;
                self.update_posting(now, key, |p| {
                    p.state = PostingState::Rejected;
                    p.reason = Some(reason.clone());
                })
            }
        }
        Ok(self.posting_outcome(key, false))
    }

    fn cancel_posting(&mut self, now: Timestamp, id: &str, reason: &str) -> Result<Outcome> {
        Self::check_text("reason", reason, self.config.limits.max_text_len)?;
        let key = self.posting_key(id)?;
        let p = &self.postings[key as usize];
        if p.state.is_terminal() {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action: "cancel" });
        }
        self.withdraw_pending_offers(now, key);
        let engaged: Vec<OfferId> = self.offers.values().filter(|o| o.posting == key).map(|o| o.id).collect();
        let mut engaged = engaged;
        engaged.sort_unstable();
        for id in engaged {
            self.close_offer(now, id, OfferState::Cancelled, WorkerAfter::WaitAgain);
        }
        self.update_posting(now, key, |p| {
            p.state = PostingState::Cancelled;
            p.reason = Some(reason.into());
        });
        Ok(self.posting_outcome(key, false))
    }

    /// Withdraws every pending offer of a posting, in offer-id order. Returns how many.
    fn withdraw_pending_offers(&mut self, now: Timestamp, key: PostingKey) -> u32 {
        if self.postings[key as usize].pending == 0 {
            return 0;
        }
        let mut ids: Vec<OfferId> =
            self.offers.values().filter(|o| o.posting == key && o.state == OfferState::Pending).map(|o| o.id).collect();
        ids.sort_unstable();
        for &id in &ids {
            self.close_offer(now, id, OfferState::Withdrawn, WorkerAfter::KeepWaiting);
        }
        ids.len() as u32
    }

    // -------------------------------------------------------------- matching

    /// 即时快招 with a caller-owned output buffer: offers up to `max_offers`
    /// (0 = all) of the posting's remaining slots to the best waiting workers.
    /// Returns the slots still open. Finding nobody is not an error.
    pub fn instant_match_into(
        &mut self,
        now: Timestamp,
        posting: &str,
        max_offers: u8,
        out: &mut Vec<MatchedOffer>,
    ) -> Result<u8> {
        let key = self.posting_key(posting)?;
        let p = &self.postings[key as usize];
        if !p.state.is_open() {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action: "matching" });
        }
        if self.employers[p.employer as usize].suspended {
            return Err(EngineError::EmployerSuspended(self.employers[p.employer as usize].id.clone()));
        }
        let remaining = p.remaining();
        let want = if max_offers == 0 { remaining } else { remaining.min(max_offers) };
        if want == 0 {
            return Ok(remaining);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        self.rank_candidates(now, key, want as usize, &mut scratch);
        let start = out.len();
        for c in &scratch {
            let offer = self.create_offer(now, key, c.key, c.distance_m);
            out.push(offer);
        }
        let made = (out.len() - start) as u8;
        scratch.clear();
        self.scratch = scratch;
        if made > 0 {
            self.update_posting(now, key, |p| p.pending += made);
        }
        Ok(self.postings[key as usize].remaining())
    }

    /// Whether a waiting worker may be offered this posting (distance aside).
    fn eligible(w: &Worker, p: &Posting, key: WorkerKey) -> bool {
        w.availability.covers(p.start) && w.min_daily_wage <= p.daily_wage && !p.passed_over.contains(&key)
    }

    fn better(&self, a: &Candidate, b: &Candidate) -> bool {
        match a.score.total_cmp(&b.score) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => self.workers[a.key as usize].id < self.workers[b.key as usize].id,
        }
    }

    /// The best `k` eligible waiting workers for a posting, best first, by the
    /// ranking policy. Walks the trade's two R-trees (hardship workers and the
    /// others) best-first by the best score anything under a node could reach:
    /// its nearest possible distance less the largest credit in that tree for a
    /// node, less the worker's own credit for a worker. Stops once that bound is
    /// worse than the current selection's last; nodes and workers that cannot
    /// make the selection are never queued.
    fn rank_candidates(&self, now: Timestamp, key: PostingKey, k: usize, best: &mut Vec<Candidate>) {
        best.clear();
        let p = &self.postings[key as usize];
        let policy = &self.config.policy;
        let waiting_cap = policy.waiting_bonus_cap_m.max(0.0);
        let waiting_rate = policy.waiting_bonus_m_per_hour.max(0.0);
        let reliability_max = policy.reliability_bonus_m.max(0.0);
        // Largest credit in each tree: [others, hardship].
        let class_bonus = [waiting_cap + reliability_max, policy.max_bonus_m()];
        let limit = p.max_distance_m as f64 + INDEX_SLACK_M;
        let q = p.position.to_unit();
        // Chord length times the radius: never more than the great-circle distance.
        let near = |d2: f32| (d2.max(0.0) as f64).sqrt() * EARTH_RADIUS_M;
        let entry_bound = |e: &IndexEntry, d: f64| {
            let hours = now.0.saturating_sub(e.waiting_since_ms).max(0) as f64 / 3_600_000.0;
            d - INDEX_SLACK_M - e.static_bonus_m as f64 - (hours * waiting_rate).min(waiting_cap)
        };
        let mut queue: BinaryHeap<ScanItem<'_>> = BinaryHeap::with_capacity(64);
        for (class, hardship) in [false, true].into_iter().enumerate() {
            let tree = &self.worker_trees[Self::worker_tree(p.trade, hardship)];
            if tree.size() == 0 {
                continue;
            }
            let d = near(tree.root().envelope().distance_2(&q));
            if d <= limit {
                let bonus = class_bonus[class];
                queue.push(ScanItem { bound: d - INDEX_SLACK_M - bonus, node: ScanNode::Parent(tree.root(), bonus) });
            }
        }
        while let Some(item) = queue.pop() {
            let worst = if best.len() == k { best[k - 1].score } else { f64::INFINITY };
            if item.bound > worst {
                break;
            }
            let entry = match item.node {
                ScanNode::Parent(node, bonus) => {
                    for child in node.children() {
                        let (bound, node) = match child {
                            RTreeNode::Parent(child) => {
                                let d = near(child.envelope().distance_2(&q));
                                if d > limit {
                                    continue;
                                }
                                if d - INDEX_SLACK_M - bonus > worst {
                                    continue;
                                }
                                prefetch(child.children());
                                (d - INDEX_SLACK_M - bonus, ScanNode::Parent(child, bonus))
                            }
                            RTreeNode::Leaf(e) => {
                                let d = near(e.distance_2(&q));
                                if d > limit {
                                    continue;
                                }
                                let bound = entry_bound(e, d);
                                if bound > worst {
                                    continue;
                                }
                                if let Some(w) = self.workers.get(e.key as usize) {
                                    prefetch(std::slice::from_ref(w));
                                }
                                (bound, ScanNode::Leaf(e))
                            }
                        };
                        if bound <= worst {
                            queue.push(ScanItem { bound, node });
                        }
                    }
                    continue;
                }
                ScanNode::Leaf(entry) => entry,
            };
            let w = &self.workers[entry.key as usize];
            if w.status != WorkerStatus::Waiting || !Self::eligible(w, p, entry.key) {
                continue;
            }
            let d = w.position.distance_m(p.position);
            if d > p.max_distance_m as f64 {
                continue;
            }
            let c = Candidate { score: policy.effective_distance(d, w, now), distance_m: d, key: entry.key };
            if best.len() == k && !self.better(&c, &best[k - 1]) {
                continue;
            }
            let pos = best.partition_point(|b| self.better(b, &c));
            if best.len() == k {
                best.pop();
            }
            best.insert(pos, c);
        }
    }

    /// The ranking a linear scan of every worker gives, for testing the index:
    /// worker ids of the best `k` eligible waiting workers for a posting.
    pub fn rank_by_linear_scan(&self, now: Timestamp, posting: &str, k: usize) -> Vec<CompactString> {
        let Some(&key) = self.posting_ids.get(posting) else { return Vec::new() };
        let p = &self.postings[key as usize];
        let mut all: Vec<Candidate> = self
            .workers
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                w.status == WorkerStatus::Waiting
                    && w.trades.iter().any(|t| t.trade == p.trade)
                    && Self::eligible(w, p, *i as WorkerKey)
            })
            .filter_map(|(i, w)| {
                let d = w.position.distance_m(p.position);
                (d <= p.max_distance_m as f64).then(|| Candidate {
                    score: self.config.policy.effective_distance(d, w, now),
                    distance_m: d,
                    key: i as WorkerKey,
                })
            })
            .collect();
        all.sort_by(|a, b| {
            if self.better(a, b) {
                std::cmp::Ordering::Less
            } else if self.better(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        all.into_iter().take(k).map(|c| self.workers[c.key as usize].id.clone()).collect()
    }

    /// The ranking the index gives, without making offers (for tests and tools).
    pub fn rank_by_index(&self, now: Timestamp, posting: &str, k: usize) -> Vec<CompactString> {
        let Some(&key) = self.posting_ids.get(posting) else { return Vec::new() };
        let mut best = Vec::new();
        if k > 0 {
            self.rank_candidates(now, key, k, &mut best);
        }
        best.into_iter().map(|c| self.workers[c.key as usize].id.clone()).collect()
    }

    /// Creates a pending offer; the caller adjusts the posting's `pending` count.
    fn create_offer(
        &mut self,
        now: Timestamp,
        posting: PostingKey,
        worker: WorkerKey,
        distance_m: f64,
    ) -> MatchedOffer {
        let id = self.next_offer_id;
        self.next_offer_id += 1;
        let p = &self.postings[posting as usize];
        let deadline = now.plus_secs(p.offer_ttl_secs as i64);
        let county = p.county;
        let offer = Offer {
            id,
            posting,
            worker,
            distance_m: distance_m.round() as u32,
            made_at: now,
            deadline,
            state: OfferState::Pending,
        };
        let matched = MatchedOffer {
            offer: id,
            worker: self.workers[worker as usize].id.clone(),
            posting: p.id.clone(),
            distance_m: offer.distance_m,
            deadline,
        };
        self.offer_deadlines.insert((deadline, id));
        self.emit_offer(now, &offer);
        self.offers.insert(id, offer);
        self.update_worker(worker, |w| {
            w.status = WorkerStatus::Offered;
            w.offer = Some(id);
        });
        self.counters[county as usize].offers_made += 1;
        matched
    }

    /// Matches a worker who just became waiting against open postings nearby:
    /// the nearest eligible one (ties: posting id) gets them an offer.
    fn reverse_match(&mut self, now: Timestamp, key: WorkerKey) -> Option<MatchedOffer> {
        if !self.config.reverse_match || self.workers[key as usize].status != WorkerStatus::Waiting {
            return None;
        }
        let w = &self.workers[key as usize];
        let q = w.position.to_unit();
        let limit = self.config.limits.max_travel_distance_m as f64 + INDEX_SLACK_M;
        let mut best: Option<(f64, PostingKey)> = None;
        for ts in &w.trades {
            for (entry, d2) in self.posting_trees[ts.trade as usize].nearest_neighbor_iter_with_distance_2(q) {
                let approx = distance_m_for_chord2(d2);
                if approx > limit || best.is_some_and(|(d, _)| approx - INDEX_SLACK_M > d) {
                    break;
                }
                let p = &self.postings[entry.key as usize];
                let d = w.position.distance_m(p.position);
                if d > p.max_distance_m as f64 || !Self::eligible(w, p, key) {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((bd, bk)) => d < bd || (d == bd && p.id < self.postings[bk as usize].id),
                };
                if better {
                    best = Some((d, entry.key));
                }
            }
        }
        let (d, pk) = best?;
        let offer = self.create_offer(now, pk, key, d);
        self.update_posting(now, pk, |p| p.pending += 1);
        Some(offer)
    }

    // ---------------------------------------------------------------- offers

    /// Closes a live offer: updates posting counts, the worker and the counters.
    fn close_offer(&mut self, now: Timestamp, id: OfferId, state: OfferState, after: WorkerAfter) {
        let Some(mut offer) = self.offers.remove(&id) else { return };
        let was = offer.state;
        if was == OfferState::Pending {
            self.offer_deadlines.remove(&(offer.deadline, id));
        }
        offer.state = state;
        let (pk, wk) = (offer.posting, offer.worker);
        let county = self.postings[pk as usize].county as usize;
        match state {
            OfferState::Declined => self.counters[county].offers_declined += 1,
            OfferState::Expired => self.counters[county].offers_expired += 1,
            OfferState::NoShow => {
                self.counters[county].no_shows += 1;
                self.ledger.at(self.county_code(county as CountyIdx), now).no_shows += 1;
            }
            OfferState::Completed => self.counters[county].completions += 1,
            _ => {}
        }
        self.emit_offer(now, &offer);
        self.update_worker(wk, |w| {
            w.offer = None;
            match after {
                WorkerAfter::KeepWaiting => w.status = WorkerStatus::Waiting,
                WorkerAfter::WaitAgain => {
                    w.status = WorkerStatus::Waiting;
                    w.waiting_since = now;
                }
                WorkerAfter::Away => w.status = WorkerStatus::Away,
            }
        });
        self.update_posting(now, pk, |p| {
            if was == OfferState::Pending {
                p.pending -= 1;
            } else {
                p.engaged -= 1;
            }
            // A worker who turned the offer down, let it lapse, already filled a slot or
            // did not turn up is never offered this posting again.
            match state {
                OfferState::Completed => {
                    p.completed += 1;
                    p.passed_over.push(wk);
                }
                OfferState::Declined | OfferState::Expired | OfferState::NoShow => p.passed_over.push(wk),
                _ => {}
            }
        });
    }

    fn respond_to_offer(
        &mut self,
        now: Timestamp,
        id: OfferId,
        worker: &str,
        response: OfferResponse,
    ) -> Result<Outcome> {
        let offer = self.live_offer(id)?;
        if self.workers[offer.worker as usize].id != worker {
            return Err(EngineError::NotOfferHolder { offer: id, worker: worker.into() });
        }
        if offer.state != OfferState::Pending {
            return Err(EngineError::OfferState { id, state: offer.state, action: "responding" });
        }
        if now >= offer.deadline {
            return Err(EngineError::OfferExpired(id));
        }
        let (pk, wk) = (offer.posting, offer.worker);
        let state = match response {
            OfferResponse::Decline => {
                self.close_offer(now, id, OfferState::Declined, WorkerAfter::KeepWaiting);
                OfferState::Declined
            }
            OfferResponse::Accept => {
                let offer = self.offers.get_mut(&id).expect("checked above");
                offer.state = OfferState::Accepted;
                let deadline = offer.deadline;
                let offer = offer.clone();
                self.offer_deadlines.remove(&(deadline, id));
                self.emit_offer(now, &offer);
                let county = self.postings[pk as usize].county as usize;
                self.counters[county].offers_accepted += 1;
                let hardship = self.workers[wk as usize].hardship.is_hardship();
                if hardship {
                    self.counters[county].hardship_placements += 1;
                }
                self.ledger.placement(self.county_code(county as CountyIdx), now, offer.distance_m, hardship);
                self.update_worker(wk, |w| w.status = WorkerStatus::Engaged);
                self.update_posting(now, pk, |p| {
                    p.pending -= 1;
                    p.engaged += 1;
                });
                OfferState::Accepted
            }
        };
        Ok(Outcome::OfferChanged { state, posting_state: self.postings[pk as usize].state, next_offer: None })
    }

    fn confirm_arrival(&mut self, now: Timestamp, id: OfferId) -> Result<Outcome> {
        let offer = self.live_offer(id)?;
        if offer.state != OfferState::Accepted {
            return Err(EngineError::OfferState { id, state: offer.state, action: "confirming arrival" });
        }
        let offer = self.offers.get_mut(&id).expect("checked above");
        offer.state = OfferState::Arrived;
        let offer = offer.clone();
        self.emit_offer(now, &offer);
        Ok(Outcome::OfferChanged {
            state: OfferState::Arrived,
            posting_state: self.postings[offer.posting as usize].state,
            next_offer: None,
        })
    }

    fn complete_job(&mut self, now: Timestamp, id: OfferId) -> Result<Outcome> {
        let offer = self.live_offer(id)?;
        if !matches!(offer.state, OfferState::Accepted | OfferState::Arrived) {
            return Err(EngineError::OfferState { id, state: offer.state, action: "completing" });
        }
        let (pk, wk) = (offer.posting, offer.worker);
        self.workers[wk as usize].reliability.completed += 1;
        self.close_offer(now, id, OfferState::Completed, WorkerAfter::WaitAgain);
        let next_offer = self.reverse_match(now, wk);
        Ok(Outcome::OfferChanged {
            state: OfferState::Completed,
            posting_state: self.postings[pk as usize].state,
            next_offer,
        })
    }

    fn report_no_show(&mut self, now: Timestamp, id: OfferId) -> Result<Outcome> {
        let offer = self.live_offer(id)?;
        if offer.state != OfferState::Accepted {
            return Err(EngineError::OfferState { id, state: offer.state, action: "reporting a no-show" });
        }
        let (pk, wk) = (offer.posting, offer.worker);
        self.workers[wk as usize].reliability.no_shows += 1;
        self.close_offer(now, id, OfferState::NoShow, WorkerAfter::Away);
        Ok(Outcome::OfferChanged {
            state: OfferState::NoShow,
            posting_state: self.postings[pk as usize].state,
            next_offer: None,
        })
    }

    // ------------------------------------------------------------ complaints

    fn file_complaint(
        &mut self,
        now: Timestamp,
        employer: &str,
        posting: Option<&str>,
        county: u32,
        category: ComplaintCategory,
        detail: &str,
    ) -> Result<Outcome> {
        Self::check_text("detail", detail, self.config.limits.max_text_len)?;
        if detail.trim().is_empty() {
            return Err(EngineError::invalid("detail", "must not be empty"));
        }
        let county = self.county_idx("county", county)?;
        let ek = self.employer_key(employer)?;
        let posting = posting.map(|p| self.posting_key(p)).transpose()?;
        let id = self.complaints.len() as ComplaintId + 1;
        self.complaints.push(Complaint {
            id,
            employer: ek,
            posting,
            county,
            category,
            detail: detail.into(),
            filed_at: now,
            resolution: None,
        });
        self.employers[ek as usize].complaints += 1;
        self.counters[county as usize].complaints_filed += 1;
        self.ledger.complaint_filed(self.county_code(county), now, category);
        Ok(Outcome::ComplaintFiled { complaint: id })
    }

    fn resolve_complaint(
        &mut self,
        now: Timestamp,
        id: ComplaintId,
        resolution: ComplaintResolution,
        note: &str,
    ) -> Result<Outcome> {
        Self::check_text("note", note, self.config.limits.max_text_len)?;
        let c = id
            .checked_sub(1)
            .and_then(|i| self.complaints.get_mut(i as usize))
            .ok_or(EngineError::UnknownComplaint(id))?;
        if c.resolution.is_some() {
            return Err(EngineError::ComplaintResolved(id));
        }
        c.resolution = Some((resolution, now, note.into()));
        let (county, category, filed_at) = (c.county, c.category, c.filed_at);
        self.counters[county as usize].complaints_resolved += 1;
        self.ledger.complaint_resolved(self.county_code(county), now, category, filed_at);
        Ok(Outcome::ComplaintResolved)
    }

    // ------------------------------------------------------------------ tick

    fn tick(&mut self, now: Timestamp) -> Outcome {
        let mut offers_expired = 0;
        while let Some(&(deadline, id)) = self.offer_deadlines.first() {
            if deadline > now {
                break;
            }
            self.close_offer(now, id, OfferState::Expired, WorkerAfter::KeepWaiting);
            offers_expired += 1;
        }
        let mut postings_expired = 0;
        while let Some(&(at, key)) = self.posting_expiries.first() {
            if at > now {
                break;
            }
            self.withdraw_pending_offers(now, key);
            self.update_posting(now, key, |p| p.state = PostingState::Expired);
            postings_expired += 1;
        }
        Outcome::Ticked { offers_expired, postings_expired }
    }

    // --------------------------------------------------------------- queries

    /// A worker by id.
    pub fn worker(&self, id: &str) -> Option<&Worker> {
        self.worker_ids.get(&self.workers, id).map(|k| &self.workers[k as usize])
    }

    /// A posting by id.
    pub fn posting(&self, id: &str) -> Option<&Posting> {
        self.posting_ids.get(id).map(|&k| &self.postings[k as usize])
    }

    /// An employer by id.
    pub fn employer(&self, id: &str) -> Option<&Employer> {
        self.employer_ids.get(id).map(|&k| &self.employers[k as usize])
    }

    /// An employer by key (as stored in postings and complaints).
    pub fn employer_by_key(&self, key: EmployerKey) -> &Employer {
        &self.employers[key as usize]
    }

    /// A worker by key (as stored in offers).
    pub fn worker_by_key(&self, key: WorkerKey) -> &Worker {
        &self.workers[key as usize]
    }

    /// A posting by key (as stored in offers).
    pub fn posting_by_key(&self, key: PostingKey) -> &Posting {
        &self.postings[key as usize]
    }

    /// A live offer by id.
    pub fn offer(&self, id: OfferId) -> Option<&Offer> {
        self.offers.get(&id)
    }

    /// A complaint by id.
    pub fn complaint(&self, id: ComplaintId) -> Option<&Complaint> {
        id.checked_sub(1).and_then(|i| self.complaints.get(i as usize))
    }

    /// All complaints, by id.
    pub fn complaints(&self) -> &[Complaint] {
        &self.complaints
    }

    /// All postings in submission order.
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// All workers in registration order.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Number of workers registered.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Number of waiting workers.
    pub fn waiting_count(&self) -> usize {
        self.waiting_workers
    }

    /// Live offers, in id order.
    pub fn live_offers(&self) -> Vec<&Offer> {
        let mut v: Vec<&Offer> = self.offers.values().collect();
        v.sort_unstable_by_key(|o| o.id);
        v
    }

    /// Statistics of one county, or `None` for an unknown county.
    pub fn county_stats(&self, code: u32) -> Option<CountyStats> {
        let c = self.regions.index_of(code)?;
        let nt = self.trades.len();
        let waiting_by_trade = (0..nt)
            .map(|t| (self.trades.get(t as TradeIdx).id.clone(), self.waiting_counts[c as usize * nt + t]))
            .collect();
        let counts = self.posting_state_counts[c as usize];
        let postings_by_state = PostingState::ALL.iter().zip(counts).map(|(s, n)| (*s, n)).collect();
        Some(CountyStats {
            county: code,
            waiting_by_trade,
            postings_by_state,
            counters: self.counters[c as usize].clone(),
        })
    }

    /// The market directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The ledger as stored.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// One county's ledger for one CST day, or `None` for an unknown county.
    pub fn ledger_report(&self, day: LedgerDay, county: u32) -> Option<LedgerReport> {
        let c = self.regions.index_of(county)?;
        let live;
        let stocks = match self.ledger.closing_on(county, day) {
            Some(Some(closing)) => closing,
            // Before anything was recorded: nothing waiting, no postings.
            Some(None) => {
                live = Closing { waiting_by_trade: vec![0; self.trades.len()], postings_by_state: [0; 7] };
                &live
            }
            None => {
                live = self.stocks_of(c);
                &live
            }
        };
        let trade_ids = self.trades.trades().iter().map(|t| t.id.clone());
        Some(LedgerReport::build(county, day, self.ledger.get(county, day), trade_ids, stocks))
    }

    /// The acceptance check of every county market and the city funds, from
    /// the served counties' populations and the directory.
    pub fn standards_report(&self) -> StandardsReport {
        standards_report(self.regions.counties(), self.directory.iter())
    }

    // ------------------------------------------------------------- snapshots

    /// The full state, borrowed, ready to serialise (serialises exactly as [`EngineSnapshot`]).
    pub fn snapshot_ref(&self) -> EngineSnapshotRef<'_> {
        EngineSnapshotRef {
            counties: self.regions.counties(),
            trades: self.trades.trades(),
            workers: &self.workers,
            employers: &self.employers,
            postings: &self.postings,
            offers: self.live_offers(),
            next_offer_id: self.next_offer_id,
            complaints: &self.complaints,
            counters: &self.counters,
            directory: self.directory.iter().collect(),
            ledger: &self.ledger,
        }
    }

    /// The full state, owned.
    pub fn snapshot(&self) -> EngineSnapshot {
        EngineSnapshot {
            counties: self.regions.counties().to_vec(),
            trades: self.trades.trades().to_vec(),
            workers: self.workers.clone(),
            employers: self.employers.clone(),
            postings: self.postings.clone(),
            offers: self.live_offers().into_iter().cloned().collect(),
            next_offer_id: self.next_offer_id,
            complaints: self.complaints.clone(),
            counters: self.counters.clone(),
            directory: self.directory.iter().cloned().collect(),
            ledger: self.ledger.clone(),
        }
    }

    /// Rebuilds an engine from a snapshot, checking it for consistency (a
    /// snapshot read from disk is untrusted input).
    pub fn restore(config: EngineConfig, s: EngineSnapshot) -> Result<Self> {
        let bad = |m: String| EngineError::CorruptSnapshot(m);
        let regions = Regions::new(s.counties).map_err(|e| bad(e.to_string()))?;
        let trades = TradeCatalog::new(s.trades).map_err(|e| bad(e.to_string()))?;
        if s.counters.len() != regions.len() {
            return Err(bad("counter table does not match the counties".into()));
        }
        let (nw, np, ne, nt, nc) = (s.workers.len(), s.postings.len(), s.employers.len(), trades.len(), regions.len());
        let mut e = Engine::new(config, regions, trades);
        e.worker_ids.reserve(&s.workers);
        for (i, w) in s.workers.iter().enumerate() {
            let ok = w.position.is_valid()
                && (w.county as usize) < nc
                && !w.trades.is_empty()
                && w.trades.iter().all(|t| (t.trade as usize) < nt)
                && w.trades.iter().enumerate().all(|(i, t)| w.trades[..i].iter().all(|u| u.trade != t.trade))
                && (w.offer.is_some() == matches!(w.status, WorkerStatus::Offered | WorkerStatus::Engaged));
            if !ok || !e.worker_ids.insert(&s.workers, i as WorkerKey) {
                return Err(bad(format!("worker {} is invalid or repeated", w.id)));
            }
        }
        for (i, em) in s.employers.iter().enumerate() {
            if e.employer_ids.insert(em.id.clone(), i as EmployerKey).is_some() {
                return Err(bad(format!("employer {} repeated", em.id)));
            }
        }
        for (i, p) in s.postings.iter().enumerate() {
            let ok = p.position.is_valid()
                && (p.county as usize) < nc
                && (p.trade as usize) < nt
                && (p.employer as usize) < ne
                && p.passed_over.iter().all(|&w| (w as usize) < nw)
                && p.pending as u16 + p.engaged as u16 + p.completed as u16 <= p.headcount as u16;
            if !ok || e.posting_ids.insert(p.id.clone(), i as PostingKey).is_some() {
                return Err(bad(format!("posting {} is invalid or repeated", p.id)));
            }
        }
        for o in &s.offers {
            let ok = (o.worker as usize) < nw
                && (o.posting as usize) < np
                && o.state.is_live()
                && o.id < s.next_offer_id
                && s.workers[o.worker as usize].offer == Some(o.id);
            if !ok || e.offers.insert(o.id, o.clone()).is_some() {
                return Err(bad(format!("offer {} is invalid or repeated", o.id)));
            }
            if o.state == OfferState::Pending {
                e.offer_deadlines.insert((o.deadline, o.id));
            }
        }
        for (i, w) in s.workers.iter().enumerate() {
            if let Some(id) = w.offer {
                if e.offers.get(&id).map(|o| o.worker == i as WorkerKey) != Some(true) {
                    return Err(bad(format!("worker {} holds a missing offer {id}", w.id)));
                }
            }
        }
        for (i, c) in s.complaints.iter().enumerate() {
            let ok = c.id == i as u64 + 1
                && (c.employer as usize) < ne
                && (c.county as usize) < nc
                && c.posting.is_none_or(|p| (p as usize) < np);
            if !ok {
                return Err(bad(format!("complaint {} is invalid", c.id)));
            }
        }
        e.directory = Directory::from_entries(s.directory).ok_or_else(|| bad("market repeated".into()))?;
        e.ledger = s.ledger;
        e.workers = s.workers;
        e.employers = s.employers;
        e.postings = s.postings;
        e.complaints = s.complaints;
        e.counters = s.counters;
        e.next_offer_id = s.next_offer_id;
        e.worker_indexed = vec![false; nw];
        e.posting_indexed = vec![false; np];
        // Bulk-load the trees: much faster than inserting one by one.
        let mut per_tree: Vec<Vec<IndexEntry>> = vec![Vec::new(); nt * 2];
        for (k, w) in e.workers.iter().enumerate() {
            if w.status == WorkerStatus::Waiting {
                e.waiting_workers += 1;
                for t in &w.trades {
                    e.waiting_counts[w.county as usize * nt + t.trade as usize] += 1;
                }
            }
            if Self::belongs_in_index(w.status, true) {
                let entry = IndexEntry {
                    point: w.position.to_unit(),
                    key: k as WorkerKey,
                    static_bonus_m: e.static_bonus(w),
                    waiting_since_ms: w.waiting_since.0,
                };
                for t in &w.trades {
                    per_tree[Self::worker_tree(t.trade, w.hardship.is_hardship())].push(entry);
                }
                e.worker_indexed[k] = true;
            }
        }
        e.worker_trees = per_tree.into_iter().map(RTree::bulk_load).collect();
        for k in 0..np as PostingKey {
            e.posting_state_counts[e.postings[k as usize].county as usize][state_slot(e.postings[k as usize].state)] +=
                1;
            let p = &e.postings[k as usize];
            if Self::posting_expirable(p) {
                e.posting_expiries.insert((p.expires_at(), k));
            }
            if e.posting_should_be_indexed(p) {
                let entry = IndexEntry::posting(p.position.to_unit(), k);
                e.posting_trees[p.trade as usize].insert(entry);
                e.posting_indexed[k as usize] = true;
            }
        }
        e.check_invariants().map_err(bad)?;
        Ok(e)
    }

    // ------------------------------------------------------------ invariants

    /// Checks every structural invariant; used by tests after each step and on
    /// restore. Returns the first violation found.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        // Offers: each live offer is the one its worker holds; one per worker.
        let mut per_posting: FxHashMap<PostingKey, (u32, u32)> = FxHashMap::default();
        for o in self.offers.values() {
            let w = &self.workers[o.worker as usize];
            if w.offer != Some(o.id) {
                return Err(format!("offer {} not held by its worker {}", o.id, w.id));
            }
            let expected = if o.state == OfferState::Pending { WorkerStatus::Offered } else { WorkerStatus::Engaged };
            if w.status != expected {
                return Err(format!("worker {} is {:?} with offer {} {:?}", w.id, w.status, o.id, o.state));
            }
            let e = per_posting.entry(o.posting).or_default();
            if o.state == OfferState::Pending {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            if (o.state == OfferState::Pending) != self.offer_deadlines.contains(&(o.deadline, o.id)) {
                return Err(format!("offer {} deadline index out of sync", o.id));
            }
        }
        if self.offer_deadlines.len() != self.offers.values().filter(|o| o.state == OfferState::Pending).count() {
            return Err("stray offer deadlines".into());
        }
        // Workers: status agrees with offer; waiting workers are indexed, engaged and
        // away ones are not (offered ones may be); an indexed worker is in exactly
        // their trees with up-to-date ranking inputs; waiting counts right.
        let nt = self.trades.len();
        let mut expected_tree_sizes = vec![0usize; self.worker_trees.len()];
        let mut expected_waiting = vec![0u32; self.waiting_counts.len()];
        let mut waiting_workers = 0;
        for (k, w) in self.workers.iter().enumerate() {
            if w.offer.is_none() && matches!(w.status, WorkerStatus::Offered | WorkerStatus::Engaged) {
                return Err(format!("worker {} is {:?} without an offer", w.id, w.status));
            }
            if let Some(id) = w.offer {
                if self.offers.get(&id).map(|o| o.worker) != Some(k as WorkerKey) {
                    return Err(format!("worker {} holds offer {id} that is not theirs", w.id));
                }
            }
            if w.status == WorkerStatus::Waiting {
                waiting_workers += 1;
                for t in &w.trades {
                    expected_waiting[w.county as usize * nt + t.trade as usize] += 1;
                }
            }
            let indexed = self.worker_indexed[k];
            if Self::belongs_in_index(w.status, indexed) != indexed {
                return Err(format!("worker {} is {:?} but indexed={indexed}", w.id, w.status));
            }
            if indexed {
                let q = w.position.to_unit();
                let bonus = self.static_bonus(w);
                for t in &w.trades {
                    let slot = Self::worker_tree(t.trade, w.hardship.is_hardship());
                    expected_tree_sizes[slot] += 1;
                    let mut found = 0;
                    for e in self.worker_trees[slot].locate_all_at_point(q) {
                        if e.key == k as WorkerKey {
                            found += 1;
                            if e.static_bonus_m != bonus || e.waiting_since_ms != w.waiting_since.0 {
                                return Err(format!("worker {} indexed with stale ranking inputs", w.id));
                            }
                        }
                    }
                    if found != 1 {
                        return Err(format!("worker {} found {found} times in tree of trade {}", w.id, t.trade));
                    }
                }
            }
        }
        for (t, tree) in self.worker_trees.iter().enumerate() {
            if tree.size() != expected_tree_sizes[t] {
                return Err(format!(
                    "worker tree {t} has {} entries, expected {}",
                    tree.size(),
                    expected_tree_sizes[t]
                ));
            }
        }
        if self.waiting_counts != expected_waiting || self.waiting_workers != waiting_workers {
            return Err("waiting counters out of sync".into());
        }
        // Postings: counts match offers, headcount never exceeded, index membership right.
        let mut indexed_postings = 0;
        for (k, p) in self.postings.iter().enumerate() {
            let (pending, engaged) = per_posting.get(&(k as PostingKey)).copied().unwrap_or_default();
            if p.pending as u32 != pending || p.engaged as u32 != engaged {
                return Err(format!(
                    "posting {} counts {}/{} but offers {pending}/{engaged}",
                    p.id, p.pending, p.engaged
                ));
            }
            if p.pending + p.engaged + p.completed > p.headcount {
                return Err(format!("posting {} over headcount", p.id));
            }
            if p.state.is_terminal() && p.pending > 0 {
                return Err(format!("posting {} is {:?} with pending offers", p.id, p.state));
            }
            if matches!(p.state, PostingState::PendingReview) && p.pending + p.engaged > 0 {
                return Err(format!("posting {} pending review with offers", p.id));
            }
            let should = self.posting_should_be_indexed(p);
            if should != self.posting_indexed[k] {
                return Err(format!("posting {} index membership wrong", p.id));
            }
            indexed_postings += should as usize;
        }
        if self.posting_trees.iter().map(|t| t.size()).sum::<usize>() != indexed_postings {
            return Err("posting trees hold stray entries".into());
        }
        // Directory: known counties, positions and trades; at most one county market per county.
        for m in self.directory.iter() {
            let known = self.regions.index_of(m.county).is_some()
                && m.position.is_valid()
                && m.trades.iter().all(|t| self.trades.index_of(t).is_some());
            if !known {
                return Err(format!("market {} has an unknown county or trade, or an invalid position", m.id));
            }
            if m.kind == MarketKind::CountyMarket
                && self.directory.county_market(m.county).map(|c| &c.id) != Some(&m.id)
            {
                return Err(format!("county {} has more than one county market", m.county));
            }
        }
        // Ledger: known counties, one sample per counted event, stocks for every trade.
        for ((county, day), d) in self.ledger.entries() {
            let consistent = self.regions.index_of(*county).is_some()
                && d.fill_secs.len() == d.postings_filled as usize
                && d.placement_distances_m.len() == d.placements as usize
                && d.complaints.iter().all(|c| c.resolve_secs.len() == c.resolved as usize)
                && d.closing.as_ref().is_none_or(|c| c.waiting_by_trade.len() == self.trades.len());
            if !consistent {
                return Err(format!("ledger of county {county} on {day} is inconsistent"));
            }
        }
        Ok(())
    }
}

impl PostingSpec {
    fn expires_at_after(&self, now: Timestamp) -> bool {
        self.start.plus_minutes(self.duration_minutes as i64) > now
    }
}

/// The version bound: a submit or update raises a posting's version by at most
/// [`MAX_VERSION_STEP`] (the lower bound is checked by the caller).
fn check_version_step(current: u64, given: u64) -> Result<()> {
    if given.saturating_sub(current) <= MAX_VERSION_STEP {
        return Ok(());
    }
    Err(EngineError::invalid(
        "version",
        format!(
            "may rise by at most {MAX_VERSION_STEP} at a time: the current version is {current}, so at most {}",
            current.saturating_add(MAX_VERSION_STEP)
        ),
    ))
}
