//! `WorkerIndex`: the worker id table, the per-(trade, hardship) R-trees
//! ([`WorkerTree`]), which
//! workers are in them, and the waiting counts, kept in step with the worker
//! records by [`WorkerIndex::sync`] and checked by [`WorkerIndex::check`].

use super::worker_tree::{WorkerTree, REMOVED};
use crate::catalog::{CountyIdx, TradeIdx};
use crate::config::RankingPolicy;
use crate::cow_vec::CowVec;
use crate::error::InvariantViolation;
use crate::geo::LatLon;
use crate::index::IndexEntry;
use crate::model::{Worker, WorkerKey, WorkerStatus};
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;
use std::hash::BuildHasher;

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

    fn get(&self, workers: &CowVec<Worker>, id: &str) -> Option<WorkerKey> {
        self.table.find(Self::hash(id), |&k| workers[k as usize].id == id).copied()
    }

    /// Adds `workers[key]`'s id; false if another worker has it already.
    fn insert(&mut self, workers: &CowVec<Worker>, key: WorkerKey) -> bool {
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
    fn reserve(&mut self, workers: &CowVec<Worker>) {
        self.table.reserve(workers.len(), |&k| Self::hash(&workers[k as usize].id));
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

/// Builds the trees of these entry lists, on up to two threads (the lists are
/// independent; the result does not depend on the thread count).
fn bulk_load_trees(per_tree: Vec<Vec<IndexEntry>>) -> Vec<WorkerTree> {
    let total: usize = per_tree.iter().map(Vec::len).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    if threads < 2 || total < 100_000 {
        return per_tree.into_iter().map(WorkerTree::bulk_load).collect();
    }
    // Every other list (by size) to the helper thread, so both get about half the entries.
    let mut order: Vec<usize> = (0..per_tree.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(per_tree[i].len()));
    let mut slots: Vec<Option<Vec<IndexEntry>>> = per_tree.into_iter().map(Some).collect();
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        let list = slots[i].take().unwrap_or_default();
        if n % 2 == 0 {
            mine.push((i, list))
        } else {
            theirs.push((i, list))
        }
    }
    let build = |lists: Vec<(usize, Vec<IndexEntry>)>| -> Vec<(usize, WorkerTree)> {
        lists.into_iter().map(|(i, list)| (i, WorkerTree::bulk_load(list))).collect()
    };
    let (a, b) = std::thread::scope(|s| {
        let helper = s.spawn(|| build(theirs));
        let a = build(mine);
        let b = helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (a, b)
    });
    let mut trees: Vec<WorkerTree> = (0..slots.len()).map(|_| WorkerTree::default()).collect();
    for (i, tree) in a.into_iter().chain(b) {
        trees[i] = tree;
    }
    trees
}

/// What decides a worker's index entries and waiting counts, captured before
/// the worker record changes.
pub(super) struct WorkerIndexView {
    indexed: bool,
    waiting: bool,
    /// The position (its unit-sphere point is computed only for an entry that
    /// is inserted or removed: most changes, such as an offer, leave it alone).
    position: LatLon,
    trades: SmallVec<[TradeIdx; 4]>,
    hardship: bool,
    county: CountyIdx,
    static_bonus_m: f32,
    waiting_since_ms: i64,
    min_daily_wage: u32,
}

impl WorkerIndexView {
    fn entry(&self, key: WorkerKey) -> IndexEntry {
        IndexEntry {
            point: self.position.to_unit(),
            key,
            static_bonus_m: self.static_bonus_m,
            waiting_since_ms: self.waiting_since_ms,
            min_daily_wage: self.min_daily_wage,
        }
    }
}

/// The part of a worker's credit that does not depend on time: hardship and
/// reliability, in metres.
pub(super) fn static_bonus(policy: &RankingPolicy, w: &Worker) -> f32 {
    let hardship = if w.hardship.is_hardship() { policy.hardship_bonus_m.max(0.0) } else { 0.0 };
    (hardship + policy.reliability_bonus_m.max(0.0) * w.reliability.score()) as f32
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

/// Owns: every worker id maps to its record; an indexed worker is in exactly
/// the trees of their trades and hardship class, with up-to-date ranking
/// inputs; waiting workers are indexed, engaged and away ones are not;
/// exactly the offered workers are held; waiting counts per (county, trade)
/// equal the records'.
#[derive(Clone)]
pub(super) struct WorkerIndex {
    ids: WorkerIds,
    /// One tree per (trade, hardship class): see [`WorkerIndex::tree_slot`].
    trees: Vec<WorkerTree>,
    indexed: Vec<bool>,
    /// Workers on offer: their entries stay in the trees while the offer is
    /// out, and the walk skips them by this bit without reading their records.
    held: KeyBits,
    /// Waiting workers per county and trade, `county * trades + trade`.
    waiting_counts: Vec<u32>,
    waiting: usize,
    trades: usize,
}

impl WorkerIndex {
    /// An empty index for `counties` × `trades`.
    pub(super) fn new(counties: usize, trades: usize) -> Self {
        Self {
            ids: WorkerIds::default(),
            trees: (0..trades * 2).map(|_| WorkerTree::default()).collect(),
            indexed: Vec::new(),
            held: KeyBits::default(),
            waiting_counts: vec![0; counties * trades],
            waiting: 0,
            trades,
        }
    }

    /// The slot in `trees` of a trade's hardship or other workers. Hardship
    /// workers have trees of their own, so the other trees' stopping bound need not
    /// allow for the hardship credit.
    fn tree_slot(trade: TradeIdx, hardship: bool) -> usize {
        trade as usize * 2 + hardship as usize
    }

    /// The tree of a trade's workers of one hardship class.
    pub(super) fn tree(&self, trade: TradeIdx, hardship: bool) -> &WorkerTree {
        &self.trees[Self::tree_slot(trade, hardship)]
    }

    /// The key of the worker with this id.
    pub(super) fn key(&self, workers: &CowVec<Worker>, id: &str) -> Option<WorkerKey> {
        self.ids.get(workers, id)
    }

    /// Registers the id of a new worker, `workers[key]` (the last record), not
    /// yet indexed; the caller then syncs them with `old = None`.
    pub(super) fn add(&mut self, workers: &CowVec<Worker>, key: WorkerKey) {
        debug_assert_eq!(key as usize, self.indexed.len());
        debug_assert_ne!(key, REMOVED, "worker key space exhausted");
        let fresh = self.ids.insert(workers, key);
        debug_assert!(fresh, "worker id registered twice");
        self.indexed.push(false);
        self.held.push(false);
    }

    /// Whether the worker is on offer (and so not matchable now), from a bit
    /// set of a bit per worker: cheaper to read than the worker's record.
    #[inline]
    pub(super) fn is_held(&self, key: WorkerKey) -> bool {
        self.held.contains(key)
    }

    /// Number of waiting workers.
    pub(super) fn waiting_count(&self) -> usize {
        self.waiting
    }

    /// Waiting workers of a county, by trade.
    pub(super) fn waiting_by_trade(&self, county: CountyIdx) -> &[u32] {
        let c = county as usize;
        &self.waiting_counts[c * self.trades..(c + 1) * self.trades]
    }

    /// The fields of a worker that decide their index entries and waiting counts.
    pub(super) fn view(&self, policy: &RankingPolicy, key: WorkerKey, w: &Worker) -> WorkerIndexView {
        WorkerIndexView {
            indexed: self.indexed[key as usize],
            waiting: w.status == WorkerStatus::Waiting,
            position: w.position,
            trades: w.trades.iter().map(|t| t.trade).collect(),
            hardship: w.hardship.is_hardship(),
            county: w.county,
            static_bonus_m: static_bonus(policy, w),
            waiting_since_ms: w.waiting_since.0,
            min_daily_wage: w.min_daily_wage,
        }
    }

    /// Brings a worker's index entries and waiting counts from `old` (what they
    /// were before the worker record changed; `None` for a new worker) to the
    /// record's current state, touching the trees only if an entry changed.
    pub(super) fn sync(&mut self, policy: &RankingPolicy, key: WorkerKey, w: &Worker, old: Option<WorkerIndexView>) {
        if let Some(new) = self.update(policy, key, w, old) {
            self.insert(key, &new);
        }
    }

    /// As [`WorkerIndex::sync`], except that a worker who would have to be
    /// (re)inserted into the trees is left out of them for now: the caller runs
    /// the reverse match first and then calls [`WorkerIndex::index_if_waiting`].
    pub(super) fn sync_deferred(
        &mut self,
        policy: &RankingPolicy,
        key: WorkerKey,
        w: &Worker,
        old: Option<WorkerIndexView>,
    ) {
        self.update(policy, key, w, old);
    }

    /// What [`WorkerIndex::sync`] does for a worker who was waiting and is now
    /// on offer, with nothing else changed: one fewer waiting in their county's
    /// trades, and held. Their tree entries stay as they are (see
    /// [`belongs_in_index`]).
    pub(super) fn hold(&mut self, key: WorkerKey, w: &Worker) {
        debug_assert_eq!(w.status, WorkerStatus::Offered);
        self.waiting -= 1;
        let row = w.county as usize * self.trades;
        for t in &w.trades {
            self.waiting_counts[row + t.trade as usize] -= 1;
        }
        self.held.set(key, true);
    }

    /// Updates the waiting counts and takes a changed worker out of the trees;
    /// returns the view to insert if they belong in the trees but are not there.
    fn update(
        &mut self,
        policy: &RankingPolicy,
        key: WorkerKey,
        w: &Worker,
        old: Option<WorkerIndexView>,
    ) -> Option<WorkerIndexView> {
        let new = self.view(policy, key, w);
        let nt = self.trades;
        if let Some(old) = &old {
            if old.waiting {
                self.waiting -= 1;
                for &t in &old.trades {
                    self.waiting_counts[old.county as usize * nt + t as usize] -= 1;
                }
            }
        }
        if new.waiting {
            self.waiting += 1;
            for &t in &new.trades {
                self.waiting_counts[new.county as usize * nt + t as usize] += 1;
            }
        }
        self.held.set(key, w.status == WorkerStatus::Offered);
        let was = old.as_ref().is_some_and(|o| o.indexed);
        let want = belongs_in_index(w.status, was);
        if let Some(old) = old.filter(|o| o.indexed) {
            let same = old.position == new.position
                && old.trades == new.trades
                && old.hardship == new.hardship
                && old.static_bonus_m == new.static_bonus_m
                && old.waiting_since_ms == new.waiting_since_ms
                && old.min_daily_wage == new.min_daily_wage;
            if want && same {
                return None;
            }
            let entry = old.entry(key);
            for &t in &old.trades {
                let removed = self.trees[Self::tree_slot(t, old.hardship)].remove(&entry);
                debug_assert!(removed, "index out of sync");
            }
        }
        self.indexed[key as usize] = false;
        want.then_some(new)
    }

    fn insert(&mut self, key: WorkerKey, view: &WorkerIndexView) {
        let entry = view.entry(key);
        for &t in &view.trades {
            self.trees[Self::tree_slot(t, view.hardship)].insert(entry);
        }
        self.indexed[key as usize] = true;
    }

    /// Inserts a waiting worker left out of the trees by a deferred sync.
    pub(super) fn index_if_waiting(&mut self, policy: &RankingPolicy, key: WorkerKey, w: &Worker) {
        if w.status == WorkerStatus::Waiting && !self.indexed[key as usize] {
            let view = self.view(policy, key, w);
            self.insert(key, &view);
        }
    }

    /// Builds the index of restored worker records, bulk-loading the trees.
    /// `Err(i)` names the first worker whose id is repeated.
    pub(super) fn bulk_load(
        policy: &RankingPolicy,
        counties: usize,
        trades: usize,
        workers: &CowVec<Worker>,
    ) -> Result<Self, usize> {
        let mut index = Self::new(counties, trades);
        index.ids.reserve(workers);
        for i in 0..workers.len() {
            if !index.ids.insert(workers, i as WorkerKey) {
                return Err(i);
            }
        }
        index.indexed = vec![false; workers.len()];
        index.held = KeyBits::with_len(workers.len());
        let mut per_tree: Vec<Vec<IndexEntry>> = vec![Vec::new(); trades * 2];
        for (k, w) in workers.iter().enumerate() {
            index.held.set(k as WorkerKey, w.status == WorkerStatus::Offered);
            if w.status == WorkerStatus::Waiting {
                index.waiting += 1;
                for t in &w.trades {
                    index.waiting_counts[w.county as usize * trades + t.trade as usize] += 1;
                }
            }
            if belongs_in_index(w.status, true) {
                let entry = IndexEntry {
                    point: w.position.to_unit(),
                    key: k as WorkerKey,
                    static_bonus_m: static_bonus(policy, w),
                    waiting_since_ms: w.waiting_since.0,
                    min_daily_wage: w.min_daily_wage,
                };
                for t in &w.trades {
                    per_tree[Self::tree_slot(t.trade, w.hardship.is_hardship())].push(entry);
                }
                index.indexed[k] = true;
            }
        }
        index.trees = bulk_load_trees(per_tree);
        Ok(index)
    }

    /// Checks this part's invariants against the worker records.
    pub(super) fn check(&self, policy: &RankingPolicy, workers: &CowVec<Worker>) -> Result<(), InvariantViolation> {
        let bad = |m: String| Err(InvariantViolation(m));
        if self.ids.len() != workers.len() || self.indexed.len() != workers.len() || self.held.len() != workers.len() {
            return bad("worker id table out of sync".into());
        }
        let nt = self.trades;
        let mut expected_tree_sizes = vec![0usize; self.trees.len()];
        let mut expected_waiting = vec![0u32; self.waiting_counts.len()];
        let mut waiting_workers = 0;
        for (k, w) in workers.iter().enumerate() {
            if self.ids.get(workers, &w.id) != Some(k as WorkerKey) {
                return bad(format!("worker {} not found by id", w.id));
            }
            if w.status == WorkerStatus::Waiting {
                waiting_workers += 1;
                for t in &w.trades {
                    expected_waiting[w.county as usize * nt + t.trade as usize] += 1;
                }
            }
            if self.held.contains(k as WorkerKey) != (w.status == WorkerStatus::Offered) {
                return bad(format!(
                    "worker {} is {:?} but held={}",
                    w.id,
                    w.status,
                    self.held.contains(k as WorkerKey)
                ));
            }
            let indexed = self.indexed[k];
            if belongs_in_index(w.status, indexed) != indexed {
                return bad(format!("worker {} is {:?} but indexed={indexed}", w.id, w.status));
            }
            if indexed {
                let q = w.position.to_unit();
                let bonus = static_bonus(policy, w);
                for t in &w.trades {
                    let slot = Self::tree_slot(t.trade, w.hardship.is_hardship());
                    expected_tree_sizes[slot] += 1;
                    let mut found = 0;
                    for e in self.trees[slot].entries_at(q, k as WorkerKey) {
                        found += 1;
                        if e.static_bonus_m != bonus
                            || e.waiting_since_ms != w.waiting_since.0
                            || e.min_daily_wage != w.min_daily_wage
                        {
                            return bad(format!("worker {} indexed with stale ranking inputs", w.id));
                        }
                    }
                    if found != 1 {
                        return bad(format!("worker {} found {found} times in tree of trade {}", w.id, t.trade));
                    }
                }
            }
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.size() != expected_tree_sizes[t] {
                return bad(format!(
                    "worker tree {t} has {} entries, expected {}",
                    tree.size(),
                    expected_tree_sizes[t]
                ));
            }
        }
        if self.waiting_counts != expected_waiting || self.waiting != waiting_workers {
            return bad("waiting counters out of sync".into());
        }
        Ok(())
    }
}

/// One bit per worker key.
#[derive(Clone, Default)]
struct KeyBits {
    words: Vec<u64>,
    len: usize,
}

impl KeyBits {
    /// `len` bits, all clear.
    fn with_len(len: usize) -> Self {
        Self { words: vec![0; len.div_ceil(64)], len }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Appends a bit for the next key.
    fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.set((self.len - 1) as WorkerKey, bit);
    }

    fn set(&mut self, key: WorkerKey, bit: bool) {
        if let Some(word) = self.words.get_mut(key as usize / 64) {
            let mask = 1u64 << (key % 64);
            if bit {
                *word |= mask;
            } else {
                *word &= !mask;
            }
        }
    }

    /// The key's bit; clear for a key beyond the set.
    #[inline]
    fn contains(&self, key: WorkerKey) -> bool {
        self.words.get(key as usize / 64).is_some_and(|word| word & (1u64 << (key % 64)) != 0)
    }
}
