//! Matching: the best-first walk of the worker trees for a posting, the
//! reverse match of a worker against open postings, and the linear-scan
//! oracle the walk is tested against.

use super::worker_tree::{PackedTree, REMOVED};
use super::{Engine, Result};
use crate::command::*;
use crate::error::EngineError;
use crate::geo::{distance_m_for_chord2, EARTH_RADIUS_M, INDEX_SLACK_M};
use crate::index::IndexEntry;
use crate::model::*;
use compact_str::CompactString;
use rstar::PointDistance;
use smallvec::SmallVec;
use std::collections::BinaryHeap;

/// Most worker records the walk defers before reading them together.
const PENDING_MAX: usize = 8;

/// A candidate worker during matching.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub(super) score: f64,
    distance_m: f64,
    pub(super) key: WorkerKey,
}

/// A worker-tree node or entry queued by the matcher's best-first walk, keyed by
/// a lower bound of the score of any worker under it.
struct ScanItem<'a> {
    bound: f64,
    node: ScanNode<'a>,
}

enum ScanNode<'a> {
    /// A node of a packed tree (level, index), with the largest credit in its tree.
    Packed(&'a PackedTree, u32, u32, f64),
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
        let mut scratch = std::mem::take(&mut self.scratch);
        self.rank_candidates(now, key, want as usize, &mut scratch);
        let start = out.len();
        for c in &scratch {
            let offer = self.create_offer(now, key, c.key, c.distance_m, events);
            out.push(offer);
        }
        let made = (out.len() - start) as u8;
        scratch.clear();
        self.scratch = scratch;
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
    /// its nearest possible distance less the largest credit in that tree for a
    /// node, less the worker's own credit for a worker. Stops once that bound is
    /// worse than the current selection's last; nodes and workers that cannot
    /// make the selection are never queued.
    pub(super) fn rank_candidates<'a>(&'a self, now: Timestamp, key: PostingKey, k: usize, best: &mut Vec<Candidate>) {
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
        // A worker entry's bound, if it can still make the selection (a worker asking
        // more than the posting pays never can: the entry holds their minimum wage).
        let entry_item = |e: &'a IndexEntry, worst: f64| -> Option<ScanItem<'a>> {
            if e.min_daily_wage > p.daily_wage {
                return None;
            }
            let d = near(e.distance_2(&q));
            if d > limit {
                return None;
            }
            let bound = entry_bound(e, d);
            if bound > worst {
                return None;
            }
            Some(ScanItem { bound, node: ScanNode::Leaf(e) })
        };
        let mut queue: BinaryHeap<ScanItem<'_>> = BinaryHeap::with_capacity(64);
        for (class, hardship) in [false, true].into_iter().enumerate() {
            let tree = self.worker_index.tree(p.trade, hardship);
            let bonus = class_bonus[class];
            for packed in tree.parts() {
                if let Some((level, index)) = packed.root() {
                    let d = near(packed.bounds(level, index).distance_2(&q));
                    if d <= limit {
                        queue.push(ScanItem {
                            bound: d - INDEX_SLACK_M - bonus,
                            node: ScanNode::Packed(packed, level as u32, index as u32, bonus),
                        });
                    }
                }
            }
        }
        // Workers reached by the walk whose records are not read yet: their records are
        // prefetched when they are reached and read together, so the loads overlap
        // instead of following one another. Deferring a record only delays the lowering
        // of `worst`, which makes the walk queue more, never skip a worker it must see.
        let mut pending: SmallVec<[&IndexEntry; PENDING_MAX]> = SmallVec::new();
        let worst_of = |best: &Vec<Candidate>| if best.len() == k { best[k - 1].score } else { f64::INFINITY };
        loop {
            let worst = worst_of(best);
            let stop = queue.peek().is_none_or(|item| item.bound > worst);
            if stop || pending.len() >= PENDING_MAX || (best.len() < k && best.len() + pending.len() >= k) {
                if pending.is_empty() {
                    break;
                }
                for e in pending.drain(..) {
                    self.consider(now, p, e.key, k, best);
                }
                continue;
            }
            let Some(item) = queue.pop() else { break };
            // Start loading what the next item will read while this one is handled: most
            // queued items are never reached, so they are not prefetched when queued.
            if let Some(next) = queue.peek() {
                match next.node {
                    ScanNode::Packed(tree, level, index, _) => {
                        let (ptr, len) = tree.children_bytes(level as usize, index as usize);
                        prefetch_bytes(ptr, len);
                    }
                    ScanNode::Leaf(e) => {
                        if let Some(w) = self.workers.get(e.key as usize) {
                            prefetch(std::slice::from_ref(w));
                        }
                    }
                }
            }
            match item.node {
                ScanNode::Packed(tree, level, index, bonus) => {
                    let (level, index) = (level as usize, index as usize);
                    if level == 0 {
                        for e in tree.leaf_entries(index) {
                            if e.key != REMOVED {
                                queue.extend(entry_item(e, worst));
                            }
                        }
                    } else {
                        let (first, children) = tree.child_bounds(level, index);
                        for (i, b) in children.iter().enumerate() {
                            let d = near(b.distance_2(&q));
                            let bound = d - INDEX_SLACK_M - bonus;
                            if d > limit || bound > worst {
                                continue;
                            }
                            queue.push(ScanItem {
                                bound,
                                node: ScanNode::Packed(tree, (level - 1) as u32, (first + i) as u32, bonus),
                            });
                        }
                    }
                }
                ScanNode::Leaf(entry) => {
                    if let Some(w) = self.workers.get(entry.key as usize) {
                        prefetch(std::slice::from_ref(w));
                    }
                    pending.push(entry);
                }
            }
        }
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
        let mut best = Vec::new();
        if k > 0 {
            self.rank_candidates(now, key, k, &mut best);
        }
        best.into_iter().map(|c| self.workers[c.key as usize].id.clone()).collect()
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
