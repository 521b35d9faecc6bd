//! Offers: the `OfferBook` of live offers and their answer deadlines, and the
//! commands that move an offer along (respond, arrive, complete, no-show).

use super::{Engine, Result, WorkerAfter};
use crate::catalog::CountyIdx;
use crate::command::*;
use crate::cow_vec::CowVec;
use crate::error::{EngineError, InvariantViolation};
use crate::model::*;
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// Owns: every live offer is in `live` under its id, below `next_id`; exactly
/// the pending ones have an entry in `deadlines`, at their deadline.
#[derive(Clone)]
pub(super) struct OfferBook {
    live: FxHashMap<OfferId, Offer>,
    deadlines: BTreeSet<(Timestamp, OfferId)>,
    next_id: OfferId,
}

impl OfferBook {
    /// No offers; the first will be number 1.
    pub(super) fn new() -> Self {
        Self { live: FxHashMap::default(), deadlines: BTreeSet::new(), next_id: 1 }
    }

    /// A live offer.
    pub(super) fn get(&self, id: OfferId) -> Option<&Offer> {
        self.live.get(&id)
    }

    /// The id the next offer will get.
    pub(super) fn next_id(&self) -> OfferId {
        self.next_id
    }

    /// The earliest answer deadline of a pending offer.
    pub(super) fn next_deadline(&self) -> Option<(Timestamp, OfferId)> {
        self.deadlines.first().copied()
    }

    /// Makes a pending offer.
    pub(super) fn create(
        &mut self,
        now: Timestamp,
        posting: PostingKey,
        worker: WorkerKey,
        distance_m: u32,
        deadline: Timestamp,
    ) -> Offer {
        let id = self.next_id;
        self.next_id += 1;
        self.deadlines.insert((deadline, id));
        let offer = Offer { id, posting, worker, distance_m, made_at: now, deadline, state: OfferState::Pending };
        self.live.insert(id, offer.clone());
        offer
    }

    /// Moves a live offer to another live state (its deadline stops counting once it leaves pending).
    pub(super) fn set_state(&mut self, id: OfferId, state: OfferState) -> Option<Offer> {
        debug_assert!(state.is_live());
        let offer = self.live.get_mut(&id)?;
        if offer.state == OfferState::Pending && state != OfferState::Pending {
            self.deadlines.remove(&(offer.deadline, id));
        }
        offer.state = state;
        Some(offer.clone())
    }

    /// Takes a live offer out of the book, in the state it had.
    pub(super) fn remove(&mut self, id: OfferId) -> Option<Offer> {
        let offer = self.live.remove(&id)?;
        if offer.state == OfferState::Pending {
            self.deadlines.remove(&(offer.deadline, id));
        }
        Some(offer)
    }

    /// Ids of a posting's live offers in id order.
    pub(super) fn of_posting(&self, posting: PostingKey) -> Vec<OfferId> {
        let mut ids: Vec<OfferId> = self.live.values().filter(|o| o.posting == posting).map(|o| o.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Ids of a posting's pending offers, in id order.
    pub(super) fn pending_of_posting(&self, posting: PostingKey) -> Vec<OfferId> {
        let mut ids: Vec<OfferId> = self
            .live
            .values()
            .filter(|o| o.posting == posting && o.state == OfferState::Pending)
            .map(|o| o.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Live offers, in id order.
    pub(super) fn live(&self) -> Vec<&Offer> {
        let mut v: Vec<&Offer> = self.live.values().collect();
        v.sort_unstable_by_key(|o| o.id);
        v
    }

    /// The book of restored offers. `Err` names what is wrong.
    pub(super) fn restore(
        offers: &[Offer],
        next_id: OfferId,
        workers: &CowVec<Worker>,
        postings: usize,
    ) -> std::result::Result<Self, String> {
        let mut book = Self { next_id, ..Self::new() };
        for o in offers {
            let ok = (o.worker as usize) < workers.len()
                && (o.posting as usize) < postings
                && o.state.is_live()
                && o.id < next_id
                && workers[o.worker as usize].offer == Some(o.id);
            if !ok || book.live.insert(o.id, o.clone()).is_some() {
                return Err(format!("offer {} is invalid or repeated", o.id));
            }
            if o.state == OfferState::Pending {
                book.deadlines.insert((o.deadline, o.id));
            }
        }
        Ok(book)
    }

    /// Checks this part's invariants, and that each live offer is the one its
    /// worker holds, with the worker's status, and that the postings' pending
    /// and engaged counts equal their offers.
    pub(super) fn check(
        &self,
        workers: &CowVec<Worker>,
        postings: &CowVec<Posting>,
    ) -> std::result::Result<(), InvariantViolation> {
        let bad = |m: String| Err(InvariantViolation(m));
        let mut per_posting: FxHashMap<PostingKey, (u32, u32)> = FxHashMap::default();
        for o in self.live.values() {
            if o.id >= self.next_id || !o.state.is_live() {
                return bad(format!("offer {} is {:?} with next id {}", o.id, o.state, self.next_id));
            }
            let Some(w) = workers.get(o.worker as usize) else {
                return bad(format!("offer {} of an unknown worker", o.id));
            };
            if w.offer != Some(o.id) {
                return bad(format!("offer {} not held by its worker {}", o.id, w.id));
            }
            let expected = if o.state == OfferState::Pending { WorkerStatus::Offered } else { WorkerStatus::Engaged };
            if w.status != expected {
                return bad(format!("worker {} is {:?} with offer {} {:?}", w.id, w.status, o.id, o.state));
            }
            let e = per_posting.entry(o.posting).or_default();
            if o.state == OfferState::Pending {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            if (o.state == OfferState::Pending) != self.deadlines.contains(&(o.deadline, o.id)) {
                return bad(format!("offer {} deadline index out of sync", o.id));
            }
        }
        if self.deadlines.len() != self.live.values().filter(|o| o.state == OfferState::Pending).count() {
            return bad("stray offer deadlines".into());
        }
        for (k, w) in workers.iter().enumerate() {
            if let Some(id) = w.offer {
                if self.live.get(&id).map(|o| o.worker) != Some(k as WorkerKey) {
                    return bad(format!("worker {} holds offer {id} that is not theirs", w.id));
                }
            }
        }
        for (k, p) in postings.iter().enumerate() {
            let (pending, engaged) = per_posting.get(&(k as PostingKey)).copied().unwrap_or_default();
            if p.pending as u32 != pending || p.engaged as u32 != engaged {
                return bad(format!(
                    "posting {} counts {}/{} but offers {pending}/{engaged}",
                    p.id, p.pending, p.engaged
                ));
            }
        }
        Ok(())
    }
}

impl Engine {
    pub(super) fn live_offer(&self, id: OfferId) -> Result<&Offer> {
        self.offers.get(id).ok_or(EngineError::UnknownOffer(id))
    }

    /// Creates a pending offer; the caller adjusts the posting's `pending` count.
    pub(super) fn create_offer(
        &mut self,
        now: Timestamp,
        posting: PostingKey,
        worker: WorkerKey,
        distance_m: f64,
        events: &mut Vec<Event>,
    ) -> MatchedOffer {
        let p = &self.postings[posting as usize];
        let deadline = now.plus_secs(p.offer_ttl_secs as i64);
        let county = p.county;
        let offer = self.offers.create(now, posting, worker, distance_m.round() as u32, deadline);
        let id = offer.id;
        let matched = MatchedOffer {
            offer: id,
            worker: self.workers[worker as usize].id.clone(),
            posting: p.id.clone(),
            distance_m: offer.distance_m,
            deadline,
        };
        self.emit_offer(now, &offer, events);
        self.hold_worker(worker, id);
        self.counters[county as usize].offers_made += 1;
        matched
    }

    /// Closes a live offer: updates posting counts, the worker and the counters.
    pub(super) fn close_offer(
        &mut self,
        now: Timestamp,
        id: OfferId,
        state: OfferState,
        after: WorkerAfter,
        events: &mut Vec<Event>,
    ) {
        let Some(mut offer) = self.offers.remove(id) else { return };
        let was = offer.state;
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
        self.emit_offer(now, &offer, events);
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
        self.update_posting(
            now,
            pk,
            |p| {
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
            },
            events,
        );
    }

    /// Withdraws every pending offer of a posting, in offer-id order. Returns how many.
    pub(super) fn withdraw_pending_offers(&mut self, now: Timestamp, key: PostingKey, events: &mut Vec<Event>) -> u32 {
        if self.postings[key as usize].pending == 0 {
            return 0;
        }
        let ids = self.offers.pending_of_posting(key);
        for &id in &ids {
            self.close_offer(now, id, OfferState::Withdrawn, WorkerAfter::KeepWaiting, events);
        }
        ids.len() as u32
    }

    pub(super) fn respond_to_offer(
        &mut self,
        now: Timestamp,
        id: OfferId,
        worker: &str,
        response: OfferResponse,
        events: &mut Vec<Event>,
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
                self.close_offer(now, id, OfferState::Declined, WorkerAfter::KeepWaiting, events);
                OfferState::Declined
            }
            OfferResponse::Accept => {
                let offer = self.offers.set_state(id, OfferState::Accepted).expect("checked above");
                let distance_m = offer.distance_m;
                self.emit_offer(now, &offer, events);
                let county = self.postings[pk as usize].county as usize;
                self.counters[county].offers_accepted += 1;
                let hardship = self.workers[wk as usize].hardship.is_hardship();
                if hardship {
                    self.counters[county].hardship_placements += 1;
                }
                self.ledger.placement(self.county_code(county as CountyIdx), now, distance_m, hardship);
                self.update_worker(wk, |w| w.status = WorkerStatus::Engaged);
                self.update_posting(
                    now,
                    pk,
                    |p| {
                        p.pending -= 1;
                        p.engaged += 1;
                    },
                    events,
                );
                OfferState::Accepted
            }
        };
        Ok(Outcome::OfferChanged { state, posting_state: self.postings[pk as usize].state, next_offer: None })
    }

    pub(super) fn confirm_arrival(&mut self, now: Timestamp, id: OfferId, events: &mut Vec<Event>) -> Result<Outcome> {
        let offer = self.live_offer(id)?;
        if offer.state != OfferState::Accepted {
            return Err(EngineError::OfferState { id, state: offer.state, action: "confirming arrival" });
        }
        let offer = self.offers.set_state(id, OfferState::Arrived).expect("checked above");
        let posting = offer.posting;
        self.emit_offer(now, &offer, events);
        Ok(Outcome::OfferChanged {
            state: OfferState::Arrived,
            posting_state: self.postings[posting as usize].state,
            next_offer: None,
        })
    }

    pub(super) fn complete_job(&mut self, now: Timestamp, id: OfferId, events: &mut Vec<Event>) -> Result<Outcome> {
        let offer = self.live_offer(id)?;
        if !matches!(offer.state, OfferState::Accepted | OfferState::Arrived) {
            return Err(EngineError::OfferState { id, state: offer.state, action: "completing" });
        }
        let (pk, wk) = (offer.posting, offer.worker);
        self.workers[wk as usize].reliability.completed += 1;
        self.close_offer(now, id, OfferState::Completed, WorkerAfter::WaitAgain, events);
        let next_offer = self.reverse_match(now, wk, events);
        Ok(Outcome::OfferChanged {
            state: OfferState::Completed,
            posting_state: self.postings[pk as usize].state,
            next_offer,
        })
    }

    pub(super) fn report_no_show(&mut self, now: Timestamp, id: OfferId, events: &mut Vec<Event>) -> Result<Outcome> {
        let offer = self.live_offer(id)?;
        if offer.state != OfferState::Accepted {
            return Err(EngineError::OfferState { id, state: offer.state, action: "reporting a no-show" });
        }
        let (pk, wk) = (offer.posting, offer.worker);
        self.workers[wk as usize].reliability.no_shows += 1;
        self.close_offer(now, id, OfferState::NoShow, WorkerAfter::Away, events);
        Ok(Outcome::OfferChanged {
            state: OfferState::NoShow,
            posting_state: self.postings[pk as usize].state,
            next_offer: None,
        })
    }
}
