//! Matching: the best-first walk of the worker trees for a posting, the
//! reverse match of a worker against open postings, and the linear-scan
//! oracle the walk is tested against.

use super::worker_tree::{Bounds, PackedTree, NODE, REMOVED};
use super::{Engine, Result};
use crate::command::*;
use crate::error::EngineError;
use crate::geo::{distance_m_for_chord2, EARTH_RADIUS_M, INDEX_SLACK_M};
use crate::index::IndexEntry;
use crate::model::*;
use compact_str::CompactString;
use rstar::PointDistance;
use smallvec::SmallVec;

/// Most worker records the walk defers before reading them together.
const PENDING_MAX: usize = 8;

/// Largest selection for which the walk guesses its last score (see [`Engine::rank_candidates`]).
const GUESS_MAX_K: usize = 16;

/// How a walk prunes before its selection is full.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pruning {
    /// With a guess of the selection's last score, checked at the end.
    Guessed,
    /// With nothing until the selection is full.
    Exact,
}

/// A candidate worker during matching.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub(super) score: f64,
    distance_m: f64,
    pub(super) key: WorkerKey,
}

/// What the matcher's best-first walk queues: a worker-tree node or entry and a
/// lower bound of the score of any worker under it. 16 bytes, so the queue's
/// moves are cheap: `what` packs the part (an index into the walk's list of
/// packed trees, bits 56-63), the node's level plus one or 0 for an entry (bits
/// 48-55) and the node's or entry's index in its part (bits 0-47).
#[derive(Clone, Copy)]
struct Queued {
    bound: f64,
    what: u64,
}

impl Queued {
    const ENTRY: u64 = 0;

    fn node(bound: f64, part: usize, level: usize, index: usize) -> Self {
        Self { bound, what: (part as u64) << 56 | ((level as u64 + 1) << 48) | index as u64 }
    }

    fn entry(bound: f64, part: usize, slot: usize) -> Self {
        Self { bound, what: (part as u64) << 56 | (Self::ENTRY << 48) | slot as u64 }
    }

    fn part(&self) -> usize {
        (self.what >> 56) as usize
    }

    /// The node's level, or `None` for an entry.
    fn level(&self) -> Option<usize> {
        let l = (self.what >> 48) & 0xff;
        (l != Self::ENTRY).then(|| l as usize - 1)
    }

    fn index(&self) -> usize {
        (self.what & ((1 << 48) - 1)) as usize
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    /// Reversed by bound, so that `BinaryHeap`'s greatest is the lowest bound
    /// (bounds are never NaN: distances less credits of finite inputs).
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.bound.partial_cmp(&self.bound).unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// The walk's queue: a min-heap of [`Queued`] by bound (16-byte items; a heap
/// of 40-byte items cost a quarter of a match's instructions).
type WalkQueue = std::collections::BinaryHeap<Queued>;

/// What a ranking fills: the selection, best first, and the walk's queue, kept
/// between matches so a match allocates nothing once they have grown.
#[derive(Default)]
pub(super) struct Ranking {
    pub(super) best: Vec<Candidate>,
    queue: WalkQueue,
}

impl Clone for Ranking {
    /// A fresh, empty one: what a ranking holds between matches is not state.
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Asks the CPU to start loading the first cache lines of `items`, which the
/// matcher will probably read soon: the R-trees and worker records are far
/// larger than the caches, and a walk is mostly waiting for memory.
#[inline(always)]
fn prefetch<T>(items: &[T]) {
    prefetch_bytes(items.as_ptr().cast(), std::mem::size_of_val(items));
}

/// As [`prefetch`], for the first bytes (at most 512) of `len` bytes at `base`.
#[inline(always)]
fn prefetch_bytes(base: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let bytes = len.min(512);
        for offset in (0..bytes).step_by(64) {
            // SAFETY: a prefetch is only a hint: it never faults and has no effect
            // on program state; the address is inside the `len` bytes at `base`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.add(offset).cast::<i8>()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (base, len);
}

impl Engine {
    /// 即时快招 with a caller-owned output buffer: offers up to `max_offers`
    /// (0 = all) of the posting's remaining slots to the best waiting workers.
    /// Returns the slots still open. Finding nobody is not an error. The
    /// events it produced are appended to `events`. Unlike applying
    /// [`Command::InstantMatch`], it leaves the ledger alone.
    pub fn instant_match_into(
        &mut self,
        now: Timestamp,
        posting: &str,
        max_offers: u8,
        out: &mut Vec<MatchedOffer>,
        events: &mut Vec<Event>,
    ) -> Result<u8> {
        let key = self.matchable_posting(posting)?;
        let remaining = self.postings[key as usize].remaining();
        let want = if max_offers == 0 { remaining } else { remaining.min(max_offers) };
        if want == 0 {
            return Ok(remaining);
        }
        let mut ranking = std::mem::take(&mut self.ranking);
        self.rank_candidates(now, key, want as usize, &mut ranking);
        let start = out.len();
        for c in &ranking.best {
            let offer = self.create_offer(now, key, c.key, c.distance_m, events);
            out.push(offer);
        }
        let made = (out.len() - start) as u8;
        self.ranking = ranking;
        if made > 0 {
            self.update_posting(now, key, |p| p.pending += made, events);
        }
        Ok(self.postings[key as usize].remaining())
    }

    /// The key of a posting that may be matched now: open, of an employer not suspended.
    pub(super) fn matchable_posting(&self, posting: &str) -> Result<PostingKey> {
        let key = self.posting_key(posting)?;
        let p = &self.postings[key as usize];
        if !p.state.is_open() {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action: "matching" });
        }
        if self.employers[p.employer as usize].suspended {
            return Err(EngineError::EmployerSuspended(self.employers[p.employer as usize].id.clone()));
        }
        Ok(key)
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
    /// its nearest possible distance less the largest credit of anyone under it
    /// for a node (each node's box records its workers' largest static credit
    /// and earliest waiting start), less the worker's own credit for a worker. Stops once that bound is
    /// worse than the current selection's last; nodes and workers that cannot
    /// make the selection are never queued.
    ///
    /// Until `k` records are read the selection has no last score to prune
    /// with, so the walk first guesses one from the entries ([`Pruning::Guessed`])
    /// and checks the guess at the end; when it was too low (a guessed worker
    /// was not eligible, say) the walk runs again without it, so the result is
    /// always what the walk without guessing gives.
    pub(super) fn rank_candidates(&self, now: Timestamp, key: PostingKey, k: usize, ranking: &mut Ranking) {
        let Ranking { best, queue } = ranking;
        if !self.walk(now, key, k, best, queue, Pruning::Guessed) {
            self.walk(now, key, k, best, queue, Pruning::Exact);
        }
    }

    /// One best-first walk for [`Engine::rank_candidates`]; false if the guessed
    /// bound of a [`Pruning::Guessed`] walk may have hidden a worker.
    fn walk(
        &self,
        now: Timestamp,
        key: PostingKey,
        k: usize,
        best: &mut Vec<Candidate>,
        queue: &mut WalkQueue,
        pruning: Pruning,
    ) -> bool {
        best.clear();
        queue.clear();
        let p = &self.postings[key as usize];
        let policy = &self.config.policy;
        let waiting_cap = policy.waiting_bonus_cap_m.max(0.0);
        let waiting_rate = policy.waiting_bonus_m_per_hour.max(0.0);
        let limit = p.max_distance_m as f64 + INDEX_SLACK_M;
        let q = p.position.to_unit();
        // Chord length times the radius: never more than the great-circle distance.
        let near = |d2: f32| (d2.max(0.0) as f64).sqrt() * EARTH_RADIUS_M;
        let credit = |static_bonus_m: f32, waiting_since_ms: i64| {
            let hours = now.0.saturating_sub(waiting_since_ms).max(0) as f64 / 3_600_000.0;
            static_bonus_m as f64 + (hours * waiting_rate).min(waiting_cap)
        };
        let entry_bound = |e: &IndexEntry, d: f64| d - INDEX_SLACK_M - credit(e.static_bonus_m, e.waiting_since_ms);
        // A node's: no worker inside has more credit than its largest static credit
        // plus the waiting credit of its earliest waiting start.
        let node_credit = |b: &Bounds| credit(b.static_bonus_max_m(), b.waiting_since_min_ms());
        let node_bound = |b: &Bounds, d: f64| d - INDEX_SLACK_M - node_credit(b);
        // The packed trees of both classes.
        let mut parts: SmallVec<[&PackedTree; 16]> = SmallVec::new();
        for hardship in [false, true] {
            let tree = self.worker_index.tree(p.trade, hardship);
            for packed in tree.parts() {
                if let Some((level, index)) = packed.root() {
                    let b = packed.bounds(level, index);
                    let d = near(b.distance_2(&q));
                    // A tree has a packed part and a few runs (each 8 times the last), so
                    // the part index fits its 8 bits.
                    debug_assert!(parts.len() < 256);
                    if d <= limit {
                        queue.push(Queued::node(node_bound(b, d), parts.len(), level, index));
                        parts.push(packed);
                    }
                }
            }
        }
        // Workers reached by the walk whose records are not read yet: their records are
        // prefetched when they are reached and read together, so the loads overlap
        // instead of following one another. Deferring a record only delays the lowering
        // of `worst`, which makes the walk queue more, never skip a worker it must see.
        let mut pending: SmallVec<[WorkerKey; PENDING_MAX]> = SmallVec::new();
        let worst_of = |best: &Vec<Candidate>| if best.len() == k { best[k - 1].score } else { f64::INFINITY };
        // The guess: the k-th lowest bound of the entries queued so far, plus what a
        // score may exceed its entry's bound by (the slack on both sides and the arc's
        // excess over the chord), as if those workers were all eligible.
        let guessing = pruning == Pruning::Guessed && k <= GUESS_MAX_K;
        let mut lowest: SmallVec<[f64; GUESS_MAX_K]> = SmallVec::new();
        let mut guess = f64::INFINITY;
        let prefetch_record = |key: WorkerKey| {
            if let Some(w) = self.workers.get(key as usize) {
                prefetch(std::slice::from_ref(w));
            }
        };
        loop {
            let worst = worst_of(best).min(guess);
            let stop = queue.peek().is_none_or(|item| item.bound > worst);
            if stop || pending.len() >= PENDING_MAX || (best.len() < k && best.len() + pending.len() >= k) {
                if pending.is_empty() {
                    break;
                }
                for key in pending.drain(..) {
                    self.consider(now, p, key, k, best);
                }
                continue;
            }
            let Some(item) = queue.pop() else { break };
            // Start loading what the next item will read while this one is handled: most
            // queued items are never reached, so they are not prefetched when queued.
            if let Some(next) = queue.peek() {
                let tree = parts[next.part()];
                match next.level() {
                    Some(level) => {
                        let (ptr, len) = tree.children_bytes(level, next.index());
                        prefetch_bytes(ptr, len);
                    }
                    None => prefetch_record(tree.entry(next.index()).key),
                }
            }
            let tree = parts[item.part()];
            // Nothing under this node has more credit than the node's box records, so a
            // child or entry farther than `reach` cannot make the selection: that test is
            // made on the squared chord, before the square root and the credit.
            let reach2 = |level: usize| {
                let reach = limit.min(worst + INDEX_SLACK_M + node_credit(tree.bounds(level, item.index())));
                if reach < 0.0 {
                    -1.0
                } else {
                    let chord = reach / EARTH_RADIUS_M;
                    chord * chord * (1.0 + 1e-9)
                }
            };
            match item.level() {
                Some(0) => {
                    let first = item.index() * NODE;
                    let reach2 = reach2(0);
                    for (i, e) in tree.leaf_entries(item.index()).iter().enumerate() {
                        // A worker asking more than the posting pays never makes the selection,
                        // nor does one on offer elsewhere (known without reading their record).
                        if e.key == REMOVED || e.min_daily_wage > p.daily_wage || self.worker_index.is_held(e.key) {
                            continue;
                        }
                        let d2 = e.distance_2(&q);
                        if d2.max(0.0) as f64 > reach2 {
                            continue;
                        }
                        let d = near(d2);
                        let bound = entry_bound(e, d);
                        if d <= limit && bound <= worst {
                            queue.push(Queued::entry(bound, item.part(), first + i));
                            if guessing {
                                let score_at_most = bound + 2.0 * INDEX_SLACK_M + 1.0 + d * 1e-5;
                                let at = lowest.partition_point(|&b| b <= score_at_most);
                                if at < k {
                                    lowest.truncate(k - 1);
                                    lowest.insert(at, score_at_most);
                                    if lowest.len() == k {
                                        guess = lowest[k - 1];
                                    }
                                }
                            }
                        }
                    }
                }
                Some(level) => {
                    let (first, children) = tree.child_bounds(level, item.index());
                    let reach2 = reach2(level);
                    for (i, b) in children.iter().enumerate() {
                        let d2 = b.distance_2(&q);
                        if d2.max(0.0) as f64 > reach2 {
                            continue;
                        }
                        let d = near(d2);
                        let bound = node_bound(b, d);
                        if d <= limit && bound <= worst {
                            queue.push(Queued::node(bound, item.part(), level - 1, first + i));
                        }
                    }
                }
                None => {
                    let key = tree.entry(item.index()).key;
                    prefetch_record(key);
                    pending.push(key);
                }
            }
        }
        // Every entry with a bound up to min(last score, guess) was read: the selection is
        // exact if it is full and its last score is within the guess.
        !guessing || (best.len() == k && best[k - 1].score <= guess)
    }

    /// Reads a reached worker's record and puts them into the selection `best`
    /// (at most `k`, best first) if they are eligible and good enough.
    #[inline]
    fn consider(&self, now: Timestamp, p: &Posting, key: WorkerKey, k: usize, best: &mut Vec<Candidate>) {
        let w = &self.workers[key as usize];
        if w.status != WorkerStatus::Waiting || !Self::eligible(w, p, key) {
            return;
        }
        let d = w.position.distance_m(p.position);
        if d > p.max_distance_m as f64 {
            return;
        }
        let c = Candidate { score: self.config.policy.effective_distance(d, w, now), distance_m: d, key };
        if best.len() == k && !self.better(&c, &best[k - 1]) {
            return;
        }
        let pos = best.partition_point(|b| self.better(b, &c));
        if best.len() == k {
            best.pop();
        }
        best.insert(pos, c);
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
        let mut ranking = Ranking::default();
        if k > 0 {
            self.rank_candidates(now, key, k, &mut ranking);
        }
        ranking.best.into_iter().map(|c| self.workers[c.key as usize].id.clone()).collect()
    }

    /// Matches a worker who just became waiting against open postings nearby:
    /// the nearest eligible one (ties: posting id) gets them an offer.
    pub(super) fn reverse_match(
        &mut self,
        now: Timestamp,
        key: WorkerKey,
        events: &mut Vec<Event>,
    ) -> Option<MatchedOffer> {
        if !self.config.reverse_match || self.workers[key as usize].status != WorkerStatus::Waiting {
            return None;
        }
        let w = &self.workers[key as usize];
        let q = w.position.to_unit();
        let limit = self.config.limits.max_travel_distance_m as f64 + INDEX_SLACK_M;
        let mut best: Option<(f64, PostingKey)> = None;
        for ts in &w.trades {
            for (entry, d2) in self.posting_index.tree(ts.trade).nearest_neighbor_iter_with_distance_2(q) {
                let approx = distance_m_for_chord2(d2);
                if approx > limit || best.is_some_and(|(d, _)| approx - INDEX_SLACK_M > d) {
                    break;
                }
                let p = &self.postings[entry.key as usize];
                let d = w.position.distance_m(p.position);
                if d > p.max_distance_m as f64 || !Self::eligible(w, p, key) {
                    continue;
                }
                // A posting waiting in a decision window is assigned when it closes, with the others.
                if self.batch.contains(entry.key) {
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
        let offer = self.create_offer(now, pk, key, d, events);
        self.update_posting(now, pk, |p| p.pending += 1, events);
        Some(offer)
    }
}
