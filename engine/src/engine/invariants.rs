//! `check_invariants`: the records' own rules (worker status against offer,
//! posting headcounts and states, directory, ledger), then each derived part's
//! `check` ([`WorkerIndex`](super::worker_index::WorkerIndex),
//! [`PostingIndex`](super::posting_index::PostingIndex),
//! [`PhoneIndex`](super::phone_index::PhoneIndex),
//! [`OfferBook`](super::offers::OfferBook),
//! [`BatchWindows`](super::batching::BatchWindows)).

use super::Engine;
use crate::directory::MarketKind;
use crate::error::InvariantViolation;
use crate::model::*;

impl Engine {
    /// Checks every structural invariant; used by tests after each step and on
    /// restore. Returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_restored()?;
        self.worker_index.check(&self.config.policy, &self.workers)?;
        self.phone_index.check(&self.workers)
    }

    /// The checks a restore needs: every invariant except the worker index's
    /// and the phone index's, which
    /// [`WorkerIndex::bulk_load`](super::worker_index::WorkerIndex::bulk_load)
    /// and [`PhoneIndex::bulk_load`](super::phone_index::PhoneIndex::bulk_load)
    /// establish by construction from the records (the first refuses repeated
    /// ids; the tests check the restored indexes with [`Engine::check_invariants`]).
    pub(super) fn check_restored(&self) -> Result<(), InvariantViolation> {
        self.check_records()?;
        self.offers.check(&self.workers, &self.postings)?;
        self.posting_index.check(&self.employers, &self.postings)?;
        self.batch.check(&self.postings)?;
        Ok(())
    }

    fn check_records(&self) -> Result<(), InvariantViolation> {
        let bad = |m: String| Err(InvariantViolation(m));
        for w in &self.workers {
            if w.offer.is_none() && matches!(w.status, WorkerStatus::Offered | WorkerStatus::Engaged) {
                return bad(format!("worker {} is {:?} without an offer", w.id, w.status));
            }
        }
        if self.posting_ids.len() != self.postings.len() || self.employer_ids.len() != self.employers.len() {
            return bad("id tables out of sync".into());
        }
        for (k, p) in self.postings.iter().enumerate() {
            if self.posting_ids.get(&p.id) != Some(&(k as PostingKey)) {
                return bad(format!("posting {} not found by id", p.id));
            }
            if p.pending + p.engaged + p.completed > p.headcount {
                return bad(format!("posting {} over headcount", p.id));
            }
            if p.state.is_terminal() && p.pending > 0 {
                return bad(format!("posting {} is {:?} with pending offers", p.id, p.state));
            }
            if matches!(p.state, PostingState::PendingReview) && p.pending + p.engaged > 0 {
                return bad(format!("posting {} pending review with offers", p.id));
            }
        }
        // Directory: known counties, positions and trades; at most one county market per county.
        for m in self.directory.iter() {
            let known = self.regions.index_of(m.county).is_some()
                && m.position.is_valid()
                && m.trades.iter().all(|t| self.trades.index_of(t).is_some());
            if !known {
                return bad(format!("market {} has an unknown county or trade, or an invalid position", m.id));
            }
            if m.kind == MarketKind::CountyMarket
                && self.directory.county_market(m.county).map(|c| &c.id) != Some(&m.id)
            {
                return bad(format!("county {} has more than one county market", m.county));
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
                return bad(format!("ledger of county {county} on {day} is inconsistent"));
            }
        }
        Ok(())
    }
}
