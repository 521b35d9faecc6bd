//! Worker commands: register or update, move, availability, withdraw.

use super::{Engine, Result, WorkerAfter};
use crate::catalog::CountyIdx;
use crate::command::*;
use crate::error::EngineError;
use crate::geo::LatLon;
use crate::model::*;
use smallvec::SmallVec;

impl Engine {
    fn resolve_worker_spec(&self, spec: &WorkerSpec) -> Result<(SmallVec<[TradeSkill; 4]>, CountyIdx)> {
        let county = self.county_idx(spec.county)?;
        let mut trades: SmallVec<[TradeSkill; 4]> = SmallVec::new();
        for t in &spec.trades {
            trades.push(TradeSkill { trade: self.trade_idx(&t.trade)?, level: t.level });
        }
        Ok((trades, county))
    }

    pub(super) fn upsert_worker(
        &mut self,
        now: Timestamp,
        spec: &WorkerSpec,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        let (trades, county) = self.resolve_worker_spec(spec)?;
        let existing = self.worker_index.key(&self.workers, &spec.id);
        let created = existing.is_none();
        let offer = if let Some(key) = existing {
            let old_phone = self.workers[key as usize].phone.clone();
            let offer = self.update_worker_and_match(
                now,
                key,
                |w| {
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
                },
                events,
            );
            self.phone_index.change(&self.workers, key, &old_phone);
            offer
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
            self.worker_index.add(&self.workers, key);
            self.phone_index.add(&self.workers, key);
            self.counters[county as usize].registrations += 1;
            self.ledger.at(self.county_code(county), now).registrations += 1;
            self.worker_index.sync_deferred(&self.config.policy, key, &self.workers[key as usize], None);
            self.match_and_index(now, key, events)
        };
        Ok(Outcome::WorkerUpserted { created, offer })
    }

    pub(super) fn move_worker(
        &mut self,
        now: Timestamp,
        id: &str,
        position: LatLon,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        let key = self.worker_key(id)?;
        let offer = self.update_worker_and_match(now, key, |w| w.position = position, events);
        Ok(Outcome::WorkerUpdated { status: self.workers[key as usize].status, offer })
    }

    pub(super) fn set_availability(
        &mut self,
        now: Timestamp,
        id: &str,
        window: Option<Availability>,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        let key = self.worker_key(id)?;
        let w = &self.workers[key as usize];
        if let (None, WorkerStatus::Offered | WorkerStatus::Engaged) = (window, w.status) {
            return Err(EngineError::WorkerState {
                id: w.id.clone(),
                status: w.status,
                action: "going away (answer or withdraw first)",
            });
        }
        let offer = match (window, w.status) {
            (None, _) => self.update_worker_and_match(now, key, |w| w.status = WorkerStatus::Away, events),
            (Some(win), _) => self.update_worker_and_match(
                now,
                key,
                |w| {
                    w.availability = win;
                    if w.status == WorkerStatus::Away {
                        w.status = WorkerStatus::Waiting;
                        w.waiting_since = now;
                    }
                },
                events,
            ),
        };
        Ok(Outcome::WorkerUpdated { status: self.workers[key as usize].status, offer })
    }

    pub(super) fn withdraw_worker(&mut self, now: Timestamp, id: &str, events: &mut Vec<Event>) -> Result<Outcome> {
        let key = self.worker_key(id)?;
        let w = &self.workers[key as usize];
        let mut late = false;
        if let Some(offer_id) = w.offer {
            let state = self.live_offer(offer_id)?.state;
            match state {
                OfferState::Pending => {
                    self.close_offer(now, offer_id, OfferState::Withdrawn, WorkerAfter::Away, events);
                }
                OfferState::Accepted => {
                    late = true;
                    self.workers[key as usize].reliability.late_cancellations += 1;
                    self.close_offer(now, offer_id, OfferState::Cancelled, WorkerAfter::Away, events);
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
}
