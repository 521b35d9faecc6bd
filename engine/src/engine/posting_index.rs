//! `PostingIndex`: the per-trade R-trees of open postings, the expiry queue and
//! the posting counts per county and state, kept in step with the posting
//! records by [`PostingIndex::sync`] and checked by [`PostingIndex::check`].

use crate::catalog::{CountyIdx, TradeIdx};
use crate::cow_vec::CowVec;
use crate::error::InvariantViolation;
use crate::index::IndexEntry;
use crate::model::{Employer, Posting, PostingKey, PostingState, Timestamp};
use rstar::RTree;
use std::collections::BTreeSet;

/// Posting counts of one county, by [`PostingState::ALL`] order.
pub(super) type StateCounts = [u32; PostingState::ALL.len()];

fn state_slot(s: PostingState) -> usize {
    PostingState::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// Whether a posting is matchable: open, with slots left, its employer not suspended.
fn should_be_indexed(employers: &CowVec<Employer>, p: &Posting) -> bool {
    p.state.is_open() && p.remaining() > 0 && !employers[p.employer as usize].suspended
}

/// Whether a posting can still expire (it is neither finished nor rejected).
fn expirable(p: &Posting) -> bool {
    matches!(p.state, PostingState::PendingReview | PostingState::Published | PostingState::Filling)
}

/// What decides a posting's expiry entry, state count and index entry, captured
/// before the posting record changes.
pub(super) struct PostingIndexView {
    expiry: Option<Timestamp>,
    county: CountyIdx,
    state: usize,
    indexed: Option<(TradeIdx, [f32; 3])>,
}

/// Owns: exactly the matchable postings are in their trade's tree; every
/// expirable posting has one expiry entry at its end time and no other posting
/// has one; the state counts per county equal the records'.
#[derive(Clone)]
pub(super) struct PostingIndex {
    trees: Vec<RTree<IndexEntry>>,
    indexed: Vec<bool>,
    expiries: BTreeSet<(Timestamp, PostingKey)>,
    state_counts: Vec<StateCounts>,
}

impl PostingIndex {
    /// An empty index for `counties` and `trades`.
    pub(super) fn new(counties: usize, trades: usize) -> Self {
        Self {
            trees: (0..trades).map(|_| RTree::new()).collect(),
            indexed: Vec::new(),
            expiries: BTreeSet::new(),
            state_counts: vec![[0; PostingState::ALL.len()]; counties],
        }
    }

    /// The tree of a trade's matchable postings.
    pub(super) fn tree(&self, trade: TradeIdx) -> &RTree<IndexEntry> {
        &self.trees[trade as usize]
    }

    /// Posting counts of a county, by state.
    pub(super) fn state_counts(&self, county: CountyIdx) -> StateCounts {
        self.state_counts[county as usize]
    }

    /// The earliest expiry not yet processed.
    pub(super) fn next_expiry(&self) -> Option<(Timestamp, PostingKey)> {
        self.expiries.first().copied()
    }

    /// Makes room for a new posting, `key` (the last record), counted nowhere yet;
    /// the caller then syncs it with `old = None`.
    pub(super) fn add(&mut self, key: PostingKey) {
        debug_assert_eq!(key as usize, self.indexed.len());
        self.indexed.push(false);
    }

    /// The fields of a posting that decide its expiry entry, state count and
    /// index entry.
    pub(super) fn view(&self, key: PostingKey, p: &Posting) -> PostingIndexView {
        PostingIndexView {
            expiry: expirable(p).then(|| p.expires_at()),
            county: p.county,
            state: state_slot(p.state),
            indexed: self.indexed[key as usize].then(|| (p.trade, p.position.to_unit())),
        }
    }

    /// Brings a posting's expiry entry, state count and index entry from `old`
    /// (before the record changed; `None` for a new posting) to the record's
    /// current state, touching each only if it changed.
    pub(super) fn sync(
        &mut self,
        employers: &CowVec<Employer>,
        key: PostingKey,
        p: &Posting,
        old: Option<PostingIndexView>,
    ) {
        let new = PostingIndexView {
            expiry: expirable(p).then(|| p.expires_at()),
            county: p.county,
            state: state_slot(p.state),
            indexed: should_be_indexed(employers, p).then(|| (p.trade, p.position.to_unit())),
        };
        let old =
            old.unwrap_or(PostingIndexView { expiry: None, county: new.county, state: usize::MAX, indexed: None });
        if old.expiry != new.expiry {
            if let Some(at) = old.expiry {
                self.expiries.remove(&(at, key));
            }
            if let Some(at) = new.expiry {
                self.expiries.insert((at, key));
            }
        }
        if (old.county, old.state) != (new.county, new.state) {
            if old.state != usize::MAX {
                self.state_counts[old.county as usize][old.state] -= 1;
            }
            self.state_counts[new.county as usize][new.state] += 1;
        }
        if old.indexed != new.indexed {
            if let Some((trade, point)) = old.indexed {
                self.trees[trade as usize].remove(&IndexEntry::posting(point, key));
            }
            if let Some((trade, point)) = new.indexed {
                self.trees[trade as usize].insert(IndexEntry::posting(point, key));
            }
            self.indexed[key as usize] = new.indexed.is_some();
        }
    }

    /// Builds the index of restored posting records.
    pub(super) fn bulk_load(
        counties: usize,
        trades: usize,
        employers: &CowVec<Employer>,
        postings: &CowVec<Posting>,
    ) -> Self {
        let mut index = Self::new(counties, trades);
        index.indexed = vec![false; postings.len()];
        for (k, p) in postings.iter().enumerate() {
            let k = k as PostingKey;
            index.state_counts[p.county as usize][state_slot(p.state)] += 1;
            if expirable(p) {
                index.expiries.insert((p.expires_at(), k));
            }
            if should_be_indexed(employers, p) {
                index.trees[p.trade as usize].insert(IndexEntry::posting(p.position.to_unit(), k));
                index.indexed[k as usize] = true;
            }
        }
        index
    }

    /// Checks this part's invariants against the posting records.
    pub(super) fn check(
        &self,
        employers: &CowVec<Employer>,
        postings: &CowVec<Posting>,
    ) -> Result<(), InvariantViolation> {
        let bad = |m: String| Err(InvariantViolation(m));
        if self.indexed.len() != postings.len() {
            return bad("posting index flags out of sync".into());
        }
        let mut indexed = 0;
        let mut expirable_count = 0;
        let mut counts = vec![[0u32; PostingState::ALL.len()]; self.state_counts.len()];
        for (k, p) in postings.iter().enumerate() {
            let should = should_be_indexed(employers, p);
            if should != self.indexed[k] {
                return bad(format!("posting {} index membership wrong", p.id));
            }
            if should
                && !self.trees[p.trade as usize].contains(&IndexEntry::posting(p.position.to_unit(), k as PostingKey))
            {
                return bad(format!("posting {} missing from its tree", p.id));
            }
            indexed += should as usize;
            if expirable(p) {
                expirable_count += 1;
                if !self.expiries.contains(&(p.expires_at(), k as PostingKey)) {
                    return bad(format!("posting {} missing from the expiry queue", p.id));
                }
            }
            counts[p.county as usize][state_slot(p.state)] += 1;
        }
        if self.trees.iter().map(|t| t.size()).sum::<usize>() != indexed {
            return bad("posting trees hold stray entries".into());
        }
        if self.expiries.len() != expirable_count {
            return bad("stray posting expiries".into());
        }
        if counts != self.state_counts {
            return bad("posting state counts out of sync".into());
        }
        Ok(())
    }
}
