//! Read accessors, county statistics, the ledger report and the standards report.

use super::Engine;
use crate::catalog::{CountyIdx, TradeIdx};
use crate::cow_vec::CowVec;
use crate::directory::Directory;
use crate::ledger::{Closing, Ledger, LedgerDay, LedgerReport};
use crate::model::*;
use crate::standards::{standards_report, StandardsReport};
use crate::stats::CountyStats;

impl Engine {
    /// A worker by id.
    pub fn worker(&self, id: &str) -> Option<&Worker> {
        self.worker_index.key(&self.workers, id).map(|k| &self.workers[k as usize])
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
        self.offers.get(id)
    }

    /// A complaint by id.
    pub fn complaint(&self, id: ComplaintId) -> Option<&Complaint> {
        id.checked_sub(1).and_then(|i| self.complaints.get(i as usize))
    }

    /// All complaints, by id.
    pub fn complaints(&self) -> &CowVec<Complaint> {
        &self.complaints
    }

    /// All employers in first-upsert order (their keys).
    pub fn employers(&self) -> &CowVec<Employer> {
        &self.employers
    }

    /// All postings in submission order.
    pub fn postings(&self) -> &CowVec<Posting> {
        &self.postings
    }

    /// All workers in registration order.
    pub fn workers(&self) -> &CowVec<Worker> {
        &self.workers
    }

    /// Number of workers registered.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Number of waiting workers.
    pub fn waiting_count(&self) -> usize {
        self.worker_index.waiting_count()
    }

    /// Live offers, in id order.
    pub fn live_offers(&self) -> Vec<&Offer> {
        self.offers.live()
    }

    /// Statistics of one county, or `None` for an unknown county.
    pub fn county_stats(&self, code: u32) -> Option<CountyStats> {
        let c = self.regions.index_of(code)?;
        let waiting_by_trade = (self.worker_index.waiting_by_trade(c).iter().enumerate())
            .map(|(t, &n)| (self.trades.get(t as TradeIdx).id.clone(), n))
            .collect();
        let counts = self.posting_index.state_counts(c);
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
                live = Closing {
                    waiting_by_trade: vec![0; self.trades.len()],
                    postings_by_state: [0; PostingState::ALL.len()],
                };
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

    /// A county's stocks now: waiting workers by trade, postings by state.
    pub(super) fn stocks_of(&self, c: CountyIdx) -> Closing {
        Closing {
            waiting_by_trade: self.worker_index.waiting_by_trade(c).to_vec(),
            postings_by_state: self.posting_index.state_counts(c),
        }
    }

    /// Every county's stocks now.
    pub(super) fn closing_stocks(&self) -> Vec<(u32, Closing)> {
        (0..self.regions.len() as CountyIdx).map(|c| (self.county_code(c), self.stocks_of(c))).collect()
    }
}
