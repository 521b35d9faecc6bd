//! Frozen shapes of the service state in snapshot formats 1 to 3 (bincode 1,
//! positional: every field in declaration order, none may be added), and
//! their conversion to the current state. Records whose shape changed since
//! are copied here as they were; the others still have their old shape.

use crate::state::{Applied, RememberedRequest, StateSnapshot};
use compact_str::CompactString;
use linggong_engine::catalog::{CountyIdx, TradeIdx};
use linggong_engine::ledger::Ledger;
use linggong_engine::{
    Complaint, ComplaintCategory, ComplaintId, ComplaintResolution, County, CountyCounters, Employer, EmployerKey,
    EngineSnapshot, LatLon, MarketSpec, Offer, OfferId, Posting, PostingKey, PostingSource, PostingState, Timestamp,
    Trade, Worker, WorkerKey,
};
use serde::Deserialize;

/// Format 3 of the service state.
#[derive(Deserialize)]
pub(super) struct StateSnapshotV3 {
    last_seq: u64,
    next_event_seq: u64,
    dedupe: Vec<(String, RememberedRequest)>,
    engine: EngineSnapshotV3,
}

/// Format 2 of the service state: request ids had no fingerprints.
#[derive(Deserialize)]
pub(super) struct StateSnapshotV2 {
    last_seq: u64,
    next_event_seq: u64,
    dedupe: Vec<(String, Applied)>,
    engine: EngineSnapshotV3,
}

/// Format 1 of the service state: the engine state had no market directory
/// and no ledger.
#[derive(Deserialize)]
pub(super) struct StateSnapshotV1 {
    last_seq: u64,
    next_event_seq: u64,
    dedupe: Vec<(String, Applied)>,
    engine: EngineSnapshotV1,
}

/// The engine state of formats 2 and 3.
#[derive(Deserialize)]
struct EngineSnapshotV3 {
    counties: Vec<County>,
    trades: Vec<Trade>,
    workers: Vec<Worker>,
    employers: Vec<Employer>,
    postings: Vec<PostingV3>,
    offers: Vec<Offer>,
    next_offer_id: OfferId,
    complaints: Vec<ComplaintV3>,
    counters: Vec<CountyCounters>,
    directory: Vec<MarketSpec>,
    ledger: Ledger,
}

/// The engine state of format 1.
#[derive(Deserialize)]
struct EngineSnapshotV1 {
    counties: Vec<County>,
    trades: Vec<Trade>,
    workers: Vec<Worker>,
    employers: Vec<Employer>,
    postings: Vec<PostingV3>,
    offers: Vec<Offer>,
    next_offer_id: OfferId,
    complaints: Vec<ComplaintV3>,
    counters: Vec<CountyCounters>,
}

/// A posting in formats 1 to 3: no reviewer.
#[derive(Deserialize)]
struct PostingV3 {
    id: CompactString,
    employer: EmployerKey,
    trade: TradeIdx,
    headcount: u8,
    position: LatLon,
    county: CountyIdx,
    township: Option<CompactString>,
    max_distance_m: u32,
    daily_wage: u32,
    start: Timestamp,
    duration_minutes: u32,
    offer_ttl_secs: u32,
    description: CompactString,
    source: PostingSource,
    version: u64,
    state: PostingState,
    reason: Option<CompactString>,
    pending: u8,
    engaged: u8,
    completed: u8,
    passed_over: Vec<WorkerKey>,
    submitted_at: Timestamp,
    published_at: Option<Timestamp>,
    filled_at: Option<Timestamp>,
}

/// A complaint in formats 1 to 3: no resolver.
#[derive(Deserialize)]
struct ComplaintV3 {
    id: ComplaintId,
    employer: EmployerKey,
    posting: Option<PostingKey>,
    county: CountyIdx,
    category: ComplaintCategory,
    detail: CompactString,
    filed_at: Timestamp,
    resolution: Option<(ComplaintResolution, Timestamp, CompactString)>,
}

impl From<PostingV3> for Posting {
    fn from(p: PostingV3) -> Self {
        Posting {
            id: p.id,
            employer: p.employer,
            trade: p.trade,
            headcount: p.headcount,
            position: p.position,
            county: p.county,
            township: p.township,
            max_distance_m: p.max_distance_m,
            daily_wage: p.daily_wage,
            start: p.start,
            duration_minutes: p.duration_minutes,
            offer_ttl_secs: p.offer_ttl_secs,
            description: p.description,
            source: p.source,
            version: p.version,
            state: p.state,
            reason: p.reason,
            pending: p.pending,
            engaged: p.engaged,
            completed: p.completed,
            passed_over: p.passed_over,
            submitted_at: p.submitted_at,
            published_at: p.published_at,
            filled_at: p.filled_at,
            reviewed_by: None,
            reviewed_at: None,
        }
    }
}

impl From<ComplaintV3> for Complaint {
    fn from(c: ComplaintV3) -> Self {
        Complaint {
            id: c.id,
            employer: c.employer,
            posting: c.posting,
            county: c.county,
            category: c.category,
            detail: c.detail,
            filed_at: c.filed_at,
            resolution: c.resolution,
            resolved_by: None,
        }
    }
}

impl From<EngineSnapshotV3> for EngineSnapshot {
    fn from(e: EngineSnapshotV3) -> Self {
        EngineSnapshot {
            counties: e.counties,
            trades: e.trades,
            workers: e.workers,
            employers: e.employers,
            postings: e.postings.into_iter().map(Posting::from).collect(),
            offers: e.offers,
            next_offer_id: e.next_offer_id,
            complaints: e.complaints.into_iter().map(Complaint::from).collect(),
            counters: e.counters,
            directory: e.directory,
            ledger: e.ledger,
            batch_windows: Vec::new(),
            ranking_policy: None,
            batch_policy: None,
        }
    }
}

impl From<EngineSnapshotV1> for EngineSnapshot {
    fn from(e: EngineSnapshotV1) -> Self {
        EngineSnapshot {
            counties: e.counties,
            trades: e.trades,
            workers: e.workers,
            employers: e.employers,
            postings: e.postings.into_iter().map(Posting::from).collect(),
            offers: e.offers,
            next_offer_id: e.next_offer_id,
            complaints: e.complaints.into_iter().map(Complaint::from).collect(),
            counters: e.counters,
            directory: Vec::new(),
            ledger: Default::default(),
            batch_windows: Vec::new(),
            ranking_policy: None,
            batch_policy: None,
        }
    }
}

/// Request ids of formats 1 and 2, without fingerprints: they match any retry.
fn without_fingerprints(dedupe: Vec<(String, Applied)>) -> Vec<(String, RememberedRequest)> {
    dedupe.into_iter().map(|(key, applied)| (key, RememberedRequest { fingerprint: None, applied })).collect()
}

impl From<StateSnapshotV3> for StateSnapshot {
    fn from(s: StateSnapshotV3) -> Self {
        StateSnapshot {
            last_seq: s.last_seq,
            next_event_seq: s.next_event_seq,
            dedupe: s.dedupe,
            engine: s.engine.into(),
        }
    }
}

impl From<StateSnapshotV2> for StateSnapshot {
    fn from(s: StateSnapshotV2) -> Self {
        StateSnapshot {
            last_seq: s.last_seq,
            next_event_seq: s.next_event_seq,
            dedupe: without_fingerprints(s.dedupe),
            engine: s.engine.into(),
        }
    }
}

impl From<StateSnapshotV1> for StateSnapshot {
    fn from(s: StateSnapshotV1) -> Self {
        StateSnapshot {
            last_seq: s.last_seq,
            next_event_seq: s.next_event_seq,
            dedupe: without_fingerprints(s.dedupe),
            engine: s.engine.into(),
        }
    }
}
