//! Snapshots: the engine's records as one canonical value, and restore, which
//! checks an untrusted snapshot and rebuilds the derived parts by bulk loads.

use super::batching::{BatchWindows, Window as BatchWindow};
use super::matching::Ranking;
use super::offers::OfferBook;
use super::phone_index::PhoneIndex;
use super::posting_index::PostingIndex;
use super::worker_index::WorkerIndex;
use super::Engine;
use crate::catalog::{County, Regions, Trade, TradeCatalog};
use crate::config::{BatchPolicy, EngineConfig, RankingPolicy};
use crate::cow_vec::CowVec;
use crate::directory::{Directory, MarketSpec};
use crate::error::SnapshotError;
use crate::ledger::Ledger;
use crate::model::*;
use crate::stats::CountyCounters;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

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
    /// Instant matches waiting in decision windows (empty in snapshots older than decision windows).
    #[serde(default)]
    pub batch_windows: Vec<BatchWindow>,
    /// The ranking policy in force, as logged `SetRankingPolicy` commands left
    /// it; `None` in older snapshots, which then rank by the configuration's.
    #[serde(default)]
    pub ranking_policy: Option<RankingPolicy>,
    /// The batch policy in force; `None` in older snapshots (the configuration's).
    #[serde(default)]
    pub batch_policy: Option<BatchPolicy>,
}

/// The engine's records at one moment, as a snapshot holds them, frozen while
/// the engine goes on: taking it shares the record tables (copy-on-write
/// [`CowVec`]s) instead of copying them, so a snapshot holds up applying only
/// for microseconds, and the encoding runs on this copy. Serialises to the
/// same bytes as the [`EngineSnapshot`] of the same state.
#[derive(Clone, Serialize)]
pub struct EngineRecords {
    counties: Vec<County>,
    trades: Vec<Trade>,
    workers: CowVec<Worker>,
    employers: CowVec<Employer>,
    postings: CowVec<Posting>,
    offers: Vec<Offer>,
    next_offer_id: OfferId,
    complaints: CowVec<Complaint>,
    counters: Vec<CountyCounters>,
    directory: Vec<MarketSpec>,
    ledger: Ledger,
    batch_windows: Vec<BatchWindow>,
    ranking_policy: Option<RankingPolicy>,
    batch_policy: Option<BatchPolicy>,
}

impl EngineRecords {
    /// Workers frozen, in registration order.
    pub fn workers(&self) -> &CowVec<Worker> {
        &self.workers
    }

    /// The owned snapshot of these records.
    pub fn into_snapshot(self) -> EngineSnapshot {
        EngineSnapshot {
            counties: self.counties,
            trades: self.trades,
            workers: self.workers.iter().cloned().collect(),
            employers: self.employers.iter().cloned().collect(),
            postings: self.postings.iter().cloned().collect(),
            offers: self.offers,
            next_offer_id: self.next_offer_id,
            complaints: self.complaints.iter().cloned().collect(),
            counters: self.counters,
            directory: self.directory,
            ledger: self.ledger,
            batch_windows: self.batch_windows,
            ranking_policy: self.ranking_policy,
            batch_policy: self.batch_policy,
        }
    }
}

impl Engine {
    /// The records, frozen (see [`EngineRecords`]): shares the record tables
    /// and copies only the small parts (catalogues, live offers, counters,
    /// directory, ledger, decision windows).
    pub fn records(&self) -> EngineRecords {
        EngineRecords {
            counties: self.regions.counties().to_vec(),
            trades: self.trades.trades().to_vec(),
            workers: self.workers.clone(),
            employers: self.employers.clone(),
            postings: self.postings.clone(),
            offers: self.offers.live().into_iter().cloned().collect(),
            next_offer_id: self.offers.next_id(),
            complaints: self.complaints.clone(),
            counters: self.counters.clone(),
            directory: self.directory.iter().cloned().collect(),
            ledger: self.ledger.clone(),
            batch_windows: self.batch.windows().to_vec(),
            ranking_policy: Some(self.config.policy.clone()),
            batch_policy: Some(self.config.batch.clone()),
        }
    }

    /// The full state, owned.
    pub fn snapshot(&self) -> EngineSnapshot {
        self.records().into_snapshot()
    }

    /// Rebuilds an engine from a snapshot, checking it for consistency (a
    /// snapshot read from disk is untrusted input). The policies the snapshot
    /// records (set by logged commands) take the place of `config`'s.
    pub fn restore(mut config: EngineConfig, s: EngineSnapshot) -> Result<Self, SnapshotError> {
        let bad = |m: String| SnapshotError::Damaged(m);
        if let Some(policy) = s.ranking_policy {
            if let Some(v) = policy.violations().into_iter().next() {
                return Err(bad(format!("ranking policy: {v}")));
            }
            config.policy = policy;
        }
        if let Some(batch) = s.batch_policy {
            if let Some(v) = batch.violations().into_iter().next() {
                return Err(bad(format!("batch policy: {v}")));
            }
            config.batch = batch;
        }
        let regions = Regions::new(s.counties).map_err(|e| bad(e.to_string()))?;
        let trades = TradeCatalog::new(s.trades).map_err(|e| bad(e.to_string()))?;
        if s.counters.len() != regions.len() {
            return Err(bad("counter table does not match the counties".into()));
        }
        let workers = CowVec::from(s.workers);
        let employers = CowVec::from(s.employers);
        let postings = CowVec::from(s.postings);
        let (nw, np, ne, nt, nc) = (workers.len(), postings.len(), employers.len(), trades.len(), regions.len());
        for w in &workers {
            let ok = w.position.is_valid()
                && (w.county as usize) < nc
                && !w.trades.is_empty()
                && w.trades.iter().all(|t| (t.trade as usize) < nt)
                && w.trades.iter().enumerate().all(|(i, t)| w.trades[..i].iter().all(|u| u.trade != t.trade))
                && (w.offer.is_some() == matches!(w.status, WorkerStatus::Offered | WorkerStatus::Engaged));
            if !ok {
                return Err(bad(format!("worker {} is invalid or repeated", w.id)));
            }
        }
        let worker_index = WorkerIndex::bulk_load(&config.policy, nc, nt, &workers)
            .map_err(|i| bad(format!("worker {} is invalid or repeated", workers[i].id)))?;
        let mut employer_ids = FxHashMap::default();
        for (i, em) in employers.iter().enumerate() {
            if employer_ids.insert(em.id.clone(), i as EmployerKey).is_some() {
                return Err(bad(format!("employer {} repeated", em.id)));
            }
        }
        let mut posting_ids = FxHashMap::default();
        for (i, p) in postings.iter().enumerate() {
            let ok = p.position.is_valid()
                && (p.county as usize) < nc
                && (p.trade as usize) < nt
                && (p.employer as usize) < ne
                && p.passed_over.iter().all(|&w| (w as usize) < nw)
                && p.pending as u16 + p.engaged as u16 + p.completed as u16 <= p.headcount as u16;
            if !ok || posting_ids.insert(p.id.clone(), i as PostingKey).is_some() {
                return Err(bad(format!("posting {} is invalid or repeated", p.id)));
            }
        }
        let offers = OfferBook::restore(&s.offers, s.next_offer_id, &workers, np).map_err(bad)?;
        for (i, w) in workers.iter().enumerate() {
            if let Some(id) = w.offer {
                if offers.get(id).map(|o| o.worker == i as WorkerKey) != Some(true) {
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
        let directory = Directory::from_entries(s.directory).ok_or_else(|| bad("market repeated".into()))?;
        let posting_index = PostingIndex::bulk_load(nc, nt, &employers, &postings);
        let phone_index = PhoneIndex::bulk_load(&workers);
        let batch = BatchWindows::from_windows(s.batch_windows).map_err(bad)?;
        let e = Engine {
            batch,
            config,
            regions,
            trades,
            workers,
            employers,
            employer_ids,
            postings,
            posting_ids,
            offers,
            complaints: CowVec::from(s.complaints),
            counters: s.counters,
            directory,
            ledger: s.ledger,
            worker_index,
            posting_index,
            phone_index,
            ranking: Ranking::default(),
        };
        e.check_restored()?;
        Ok(e)
    }
}
