//! Domain records held by the engine: workers, employers, postings, offers and
//! complaints, with their lifecycle states.

use crate::catalog::{CountyIdx, TradeIdx};
use crate::geo::LatLon;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Milliseconds since the Unix epoch. The engine never reads a clock: every
/// command carries the caller's `now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// `self` plus a number of seconds, saturating.
    pub fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }
    /// `self` plus a number of minutes, saturating.
    pub fn plus_minutes(self, minutes: i64) -> Timestamp {
        self.plus_secs(minutes.saturating_mul(60))
    }
}

/// Internal dense index of a worker (registration order).
pub type WorkerKey = u32;
/// Internal dense index of a posting (submission order).
pub type PostingKey = u32;
/// Internal dense index of an employer (first-upsert order).
pub type EmployerKey = u32;
/// Offer identifier, assigned by the engine in sequence from 1.
pub type OfferId = u64;
/// Complaint identifier, assigned by the engine in sequence from 1.
pub type ComplaintId = u64;

/// The seed's 困难零工 categories; any category other than `None` is given
/// priority among comparable candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hardship {
    /// No hardship category.
    #[default]
    None,
    /// Long-term unemployed (长期失业).
    LongTermUnemployed,
    /// Member of a low-income household (低收入家庭).
    LowIncomeHousehold,
    /// Person with a disability (残疾人).
    Disabled,
    /// Older worker (大龄).
    OlderWorker,
}

impl Hardship {
    /// Whether the worker gets hardship priority.
    pub fn is_hardship(self) -> bool {
        self != Hardship::None
    }
}

/// Where a worker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkerStatus {
    /// Waiting for work: indexed and matchable.
    Waiting,
    /// Holding one pending offer: skipped by matching.
    Offered,
    /// Accepted an offer (possibly arrived), not yet completed.
    Engaged,
    /// Not available (withdrawn, unavailable, or after a no-show).
    Away,
}

/// A trade the worker offers, with a self-declared or assessed skill level 1-5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeSkill {
    /// Trade index in the catalogue.
    pub trade: TradeIdx,
    /// Skill level 1..=5.
    pub level: u8,
}

/// Jobs completed, no-shows and late cancellations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reliability {
    /// Jobs completed.
    pub completed: u32,
    /// Accepted offers the worker did not turn up for.
    pub no_shows: u32,
    /// Accepted offers the worker withdrew from before arrival.
    pub late_cancellations: u32,
}

impl Reliability {
    /// A score in 0..=1: Laplace-smoothed share of good outcomes, no-shows
    /// weighing double. A new worker scores 0.5.
    pub fn score(&self) -> f64 {
        let good = self.completed as f64 + 1.0;
        let bad = 2.0 * self.no_shows as f64 + self.late_cancellations as f64 + 1.0;
        good / (good + bad)
    }
}

/// When a worker can start work: `from <= start < until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Earliest start.
    pub from: Timestamp,
    /// Latest start (exclusive).
    pub until: Timestamp,
}

impl Availability {
    /// Always available.
    pub const ALWAYS: Availability = Availability { from: Timestamp(i64::MIN), until: Timestamp(i64::MAX) };

    /// Whether a job starting at `t` fits.
    pub fn covers(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.until
    }
}

/// A registered worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    /// External id, unique.
    pub id: CompactString,
    /// Display name.
    pub name: CompactString,
    /// Phone number (masked by the service for other counties).
    pub phone: CompactString,
    /// 1 to 8 trades.
    #[serde(deserialize_with = "crate::decode::small_vec")]
    pub trades: SmallVec<[TradeSkill; 4]>,
    /// Where the worker waits.
    pub position: LatLon,
    /// County.
    pub county: CountyIdx,
    /// Township code, if known.
    pub township: Option<CompactString>,
    /// Availability window.
    pub availability: Availability,
    /// Minimum acceptable daily wage, yuan.
    pub min_daily_wage: u32,
    /// Hardship category.
    pub hardship: Hardship,
    /// Reliability record.
    pub reliability: Reliability,
    /// Current status.
    pub status: WorkerStatus,
    /// Since when the worker has been waiting (or last became waiting).
    pub waiting_since: Timestamp,
    /// The live offer (pending, accepted or arrived), if any.
    pub offer: Option<OfferId>,
}

/// Company (with a unified social credit code) or individual employer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmployerKind {
    /// A company, with its 18-character unified social credit code.
    Company {
        /// 统一社会信用代码.
        credit_code: CompactString,
    },
    /// A private individual.
    Individual,
}

/// An employer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Employer {
    /// External id, unique.
    pub id: CompactString,
    /// Name.
    pub name: CompactString,
    /// Company or individual.
    pub kind: EmployerKind,
    /// Verified employers' postings are published without manual review.
    pub verified: bool,
    /// Suspended employers' postings are never matched.
    pub suspended: bool,
    /// Why the employer was suspended.
    pub suspension_reason: Option<CompactString>,
    /// Complaints ever filed against the employer.
    pub complaints: u32,
}

/// Where a posting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PostingSource {
    /// Entered at the county market desk.
    CountyDesk,
    /// Pushed by a township station.
    TownshipStation,
    /// Submitted online by the employer.
    Online,
}

impl PostingSource {
    /// All sources, for statistics.
    pub const ALL: [PostingSource; 3] =
        [PostingSource::CountyDesk, PostingSource::TownshipStation, PostingSource::Online];
}

/// Posting lifecycle: pending review → published → filling → filled | expired
/// | cancelled; or rejected (with reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PostingState {
    /// Waiting for a reviewer.
    PendingReview,
    /// Open, nothing in flight.
    Published,
    /// Open with offers out or workers engaged, not yet full.
    Filling,
    /// Every slot taken by a worker who accepted.
    Filled,
    /// The job window passed before it was filled.
    Expired,
    /// Cancelled by the employer or station.
    Cancelled,
    /// Rejected by review (automatic or manual), with a reason.
    Rejected,
}

impl PostingState {
    /// Whether the posting takes part in matching (subject to its employer).
    pub fn is_open(self) -> bool {
        matches!(self, PostingState::Published | PostingState::Filling)
    }
    /// Whether nothing more can happen to the posting except an update.
    pub fn is_terminal(self) -> bool {
        matches!(self, PostingState::Expired | PostingState::Cancelled | PostingState::Rejected)
    }
    /// All states, for statistics.
    pub const ALL: [PostingState; 7] = [
        PostingState::PendingReview,
        PostingState::Published,
        PostingState::Filling,
        PostingState::Filled,
        PostingState::Expired,
        PostingState::Cancelled,
        PostingState::Rejected,
    ];
}

/// A request for workers (用工信息).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Posting {
    /// External id, unique (stations choose their own).
    pub id: CompactString,
    /// Employer.
    pub employer: EmployerKey,
    /// Trade wanted.
    pub trade: TradeIdx,
    /// Workers wanted, 1..=50.
    pub headcount: u8,
    /// Work place.
    pub position: LatLon,
    /// County.
    pub county: CountyIdx,
    /// Township code, if any.
    pub township: Option<CompactString>,
    /// Farthest a worker may be, metres.
    pub max_distance_m: u32,
    /// Daily wage offered, yuan.
    pub daily_wage: u32,
    /// Start of work.
    pub start: Timestamp,
    /// Length of the job in minutes.
    pub duration_minutes: u32,
    /// How long a worker has to answer an offer, seconds.
    pub offer_ttl_secs: u32,
    /// Free-text description.
    pub description: CompactString,
    /// Where it came from.
    pub source: PostingSource,
    /// Version, increasing with every accepted update.
    pub version: u64,
    /// Lifecycle state.
    pub state: PostingState,
    /// Rejection or cancellation reason.
    pub reason: Option<CompactString>,
    /// Offers out and unanswered.
    pub pending: u8,
    /// Workers who accepted (including arrived), not yet completed.
    pub engaged: u8,
    /// Workers who completed the job.
    pub completed: u8,
    /// Workers who declined, let an offer expire, completed a slot or did not turn up:
    /// never offered this posting again.
    pub passed_over: Vec<WorkerKey>,
    /// Submission time.
    pub submitted_at: Timestamp,
    /// First publication time.
    pub published_at: Option<Timestamp>,
    /// When it became filled.
    pub filled_at: Option<Timestamp>,
    /// Who decided the review (the actor of the logged review command), if a reviewer did.
    #[serde(default)]
    pub reviewed_by: Option<CompactString>,
    /// When a reviewer decided.
    #[serde(default)]
    pub reviewed_at: Option<Timestamp>,
}

impl Posting {
    /// Slots neither offered nor taken.
    pub fn remaining(&self) -> u8 {
        self.headcount.saturating_sub(self.pending + self.engaged + self.completed)
    }
    /// When the job window ends and an unfilled posting expires.
    pub fn expires_at(&self) -> Timestamp {
        self.start.plus_minutes(self.duration_minutes as i64)
    }
}

/// Offer lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OfferState {
    /// Sent, awaiting the worker's answer.
    Pending,
    /// Accepted by the worker.
    Accepted,
    /// The worker arrived at work (到岗).
    Arrived,
    /// The job was completed.
    Completed,
    /// Declined by the worker.
    Declined,
    /// Not answered in time.
    Expired,
    /// Withdrawn by the market (posting cancelled or employer suspended) before acceptance.
    Withdrawn,
    /// Cancelled after acceptance (by worker: a late cancellation; or by the employer).
    Cancelled,
    /// The worker did not turn up.
    NoShow,
}

impl OfferState {
    /// Whether the offer still binds the worker.
    pub fn is_live(self) -> bool {
        matches!(self, OfferState::Pending | OfferState::Accepted | OfferState::Arrived)
    }
}

/// An offer of one posting's slot to one worker. Only live offers are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// Offer id.
    pub id: OfferId,
    /// Posting.
    pub posting: PostingKey,
    /// Worker.
    pub worker: WorkerKey,
    /// Great-circle distance from worker to work place, metres.
    pub distance_m: u32,
    /// When the offer was made.
    pub made_at: Timestamp,
    /// Answer deadline.
    pub deadline: Timestamp,
    /// State.
    pub state: OfferState,
}

/// What a complaint is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ComplaintCategory {
    /// Unpaid or underpaid wages.
    WageArrears,
    /// Unsafe working conditions.
    Safety,
    /// A posting that was not genuine.
    FalsePosting,
    /// Discrimination.
    Discrimination,
    /// Anything else.
    Other,
}

impl ComplaintCategory {
    /// All categories, for statistics.
    pub const ALL: [ComplaintCategory; 5] = [
        ComplaintCategory::WageArrears,
        ComplaintCategory::Safety,
        ComplaintCategory::FalsePosting,
        ComplaintCategory::Discrimination,
        ComplaintCategory::Other,
    ];
}

/// How a complaint ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ComplaintResolution {
    /// The complaint was upheld.
    Upheld,
    /// The complaint was dismissed.
    Dismissed,
}

/// A complaint or report (投诉举报) against an employer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Complaint {
    /// Complaint id.
    pub id: ComplaintId,
    /// Employer complained about.
    pub employer: EmployerKey,
    /// Posting concerned, if any.
    pub posting: Option<PostingKey>,
    /// County where it was filed.
    pub county: CountyIdx,
    /// Category.
    pub category: ComplaintCategory,
    /// What happened.
    pub detail: CompactString,
    /// Filing time.
    pub filed_at: Timestamp,
    /// Resolution, once resolved.
    pub resolution: Option<(ComplaintResolution, Timestamp, CompactString)>,
    /// Who resolved it (the actor of the logged resolve command).
    #[serde(default)]
    pub resolved_by: Option<CompactString>,
}
