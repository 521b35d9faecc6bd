//! The engine's input and output: commands (what callers ask), outcomes (what
//! happened) and events (what watchers are told). Commands refer to everything
//! by external id, so a logged command replays against any equal state.

use crate::config::{BatchPolicy, RankingPolicy};
use crate::directory::MarketSpec;
use crate::geo::LatLon;
use crate::model::*;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Largest step by which a posting's version may rise in one submit or update
/// (2^32). A single request can no longer push a version to `u64::MAX` and
/// freeze the posting: that would now take 2^32 updates of one posting, each
/// jumping the full step. Counters and Unix seconds fit within one step.
pub const MAX_VERSION_STEP: u64 = 1 << 32;

/// A trade by catalogue id, with a skill level 1-5.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeSkillSpec {
    /// Catalogue id, e.g. `mason`.
    pub trade: CompactString,
    /// Skill level 1..=5.
    pub level: u8,
}

/// Everything needed to register or update a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// External id.
    pub id: CompactString,
    /// Display name.
    pub name: CompactString,
    /// Phone.
    pub phone: CompactString,
    /// 1 to 8 trades, no repeats.
    pub trades: SmallVec<[TradeSkillSpec; 4]>,
    /// Where the worker waits.
    pub position: LatLon,
    /// County division code.
    pub county: u32,
    /// Township code.
    pub township: Option<CompactString>,
    /// Availability window.
    pub availability: Availability,
    /// Minimum acceptable daily wage, yuan.
    pub min_daily_wage: u32,
    /// Hardship category.
    pub hardship: Hardship,
}

/// Everything needed to upsert an employer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmployerSpec {
    /// External id.
    pub id: CompactString,
    /// Name.
    pub name: CompactString,
    /// Company or individual.
    pub kind: EmployerKind,
    /// Whether the employer has been verified.
    pub verified: bool,
}

/// Everything needed to submit or update a posting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostingSpec {
    /// External id.
    pub id: CompactString,
    /// Employer id.
    pub employer: CompactString,
    /// Trade id.
    pub trade: CompactString,
    /// Workers wanted, 1..=50.
    pub headcount: u8,
    /// Work place.
    pub position: LatLon,
    /// County division code.
    pub county: u32,
    /// Township code.
    pub township: Option<CompactString>,
    /// Farthest a worker may be, metres.
    pub max_distance_m: u32,
    /// Daily wage, yuan.
    pub daily_wage: u32,
    /// Start of work.
    pub start: Timestamp,
    /// Length of the job, minutes.
    pub duration_minutes: u32,
    /// Offer answer time, seconds; 0 means the configured default.
    pub offer_ttl_secs: u32,
    /// Description.
    pub description: CompactString,
    /// Origin.
    pub source: PostingSource,
    /// Version; a submit starts at 1 to [`MAX_VERSION_STEP`], an update must
    /// raise it by 1 to [`MAX_VERSION_STEP`].
    pub version: u64,
}

/// A reviewer's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewDecision {
    /// Publish.
    Approve,
    /// Reject, with the reason kept.
    Reject {
        /// Why.
        reason: CompactString,
    },
}

/// A worker's answer to an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfferResponse {
    /// Take the job.
    Accept,
    /// Turn it down.
    Decline,
}

/// Every state change the engine knows. Each is applied with the caller's `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Register a new worker or update an existing one's profile.
    UpsertWorker(WorkerSpec),
    /// Move a worker to a new waiting place.
    MoveWorker {
        /// Worker id.
        worker: CompactString,
        /// New position.
        position: LatLon,
    },
    /// Make a worker available in a window (waiting) or unavailable (away).
    SetAvailability {
        /// Worker id.
        worker: CompactString,
        /// `Some` to wait for work in this window, `None` to go away.
        window: Option<Availability>,
    },
    /// Take a worker out of the market (a late cancellation if engaged before arrival).
    WithdrawWorker {
        /// Worker id.
        worker: CompactString,
    },
    /// Create or update an employer.
    UpsertEmployer(EmployerSpec),
    /// Suspend an employer: its postings stop matching, pending offers are withdrawn.
    SuspendEmployer {
        /// Employer id.
        employer: CompactString,
        /// Why.
        reason: CompactString,
    },
    /// Lift a suspension.
    ReinstateEmployer {
        /// Employer id.
        employer: CompactString,
    },
    /// Submit a new posting (idempotent for the same id, version and content).
    SubmitPosting(PostingSpec),
    /// Update a posting to a higher version.
    UpdatePosting(PostingSpec),
    /// Approve or reject a posting pending review.
    ReviewPosting {
        /// Posting id.
        posting: CompactString,
        /// Decision.
        decision: ReviewDecision,
    },
    /// Cancel a posting; live offers are withdrawn or cancelled.
    CancelPosting {
        /// Posting id.
        posting: CompactString,
        /// Why.
        reason: CompactString,
    },
    /// 即时快招: offer a published posting's remaining slots to the best waiting workers.
    InstantMatch {
        /// Posting id.
        posting: CompactString,
        /// At most this many offers (0 = all remaining slots).
        max_offers: u8,
    },
    /// A worker's answer to an offer.
    RespondToOffer {
        /// Offer id.
        offer: OfferId,
        /// The worker answering (must hold the offer).
        worker: CompactString,
        /// Accept or decline.
        response: OfferResponse,
    },
    /// The worker arrived at work (到岗).
    ConfirmArrival {
        /// Offer id.
        offer: OfferId,
    },
    /// The job was done; the worker waits again.
    CompleteJob {
        /// Offer id.
        offer: OfferId,
    },
    /// The worker did not turn up; the slot reopens.
    ReportNoShow {
        /// Offer id.
        offer: OfferId,
    },
    /// File a complaint against an employer.
    FileComplaint {
        /// Employer id.
        employer: CompactString,
        /// Posting concerned.
        posting: Option<CompactString>,
        /// County division code where it is filed.
        county: u32,
        /// Category.
        category: ComplaintCategory,
        /// What happened.
        detail: CompactString,
    },
    /// Resolve a complaint.
    ResolveComplaint {
        /// Complaint id.
        complaint: ComplaintId,
        /// Upheld or dismissed.
        resolution: ComplaintResolution,
        /// Note.
        note: CompactString,
    },
    /// Expire offers past their deadline and postings past their window.
    Tick,
    /// Add or replace a market directory entry (零工市场名录).
    UpsertMarket(MarketSpec),
    /// Remove a market directory entry.
    RemoveMarket {
        /// Market id.
        market: CompactString,
    },
    /// Rank by this policy from now on (a logged policy change, so replay and
    /// recovery see the same policy at the same time).
    SetRankingPolicy(RankingPolicy),
    /// Assign instant matches in decision windows from now on, or greedily
    /// (window 0); a logged change like the ranking policy. Requests already
    /// waiting keep their window.
    SetBatchPolicy(BatchPolicy),
}

impl Command {
    /// A short stable name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::UpsertWorker(_) => "upsert_worker",
            Command::MoveWorker { .. } => "move_worker",
            Command::SetAvailability { .. } => "set_availability",
            Command::WithdrawWorker { .. } => "withdraw_worker",
            Command::UpsertEmployer(_) => "upsert_employer",
            Command::SuspendEmployer { .. } => "suspend_employer",
            Command::ReinstateEmployer { .. } => "reinstate_employer",
            Command::SubmitPosting(_) => "submit_posting",
            Command::UpdatePosting(_) => "update_posting",
            Command::ReviewPosting { .. } => "review_posting",
            Command::CancelPosting { .. } => "cancel_posting",
            Command::InstantMatch { .. } => "instant_match",
            Command::RespondToOffer { .. } => "respond_to_offer",
            Command::ConfirmArrival { .. } => "confirm_arrival",
            Command::CompleteJob { .. } => "complete_job",
            Command::ReportNoShow { .. } => "report_no_show",
            Command::FileComplaint { .. } => "file_complaint",
            Command::ResolveComplaint { .. } => "resolve_complaint",
            Command::Tick => "tick",
            Command::UpsertMarket(_) => "upsert_market",
            Command::RemoveMarket { .. } => "remove_market",
            Command::SetRankingPolicy(_) => "set_ranking_policy",
            Command::SetBatchPolicy(_) => "set_batch_policy",
        }
    }
}

/// One offer made by a match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchedOffer {
    /// Offer id.
    pub offer: OfferId,
    /// Worker id.
    pub worker: CompactString,
    /// Posting id.
    pub posting: CompactString,
    /// Great-circle distance, metres.
    pub distance_m: u32,
    /// Answer deadline.
    pub deadline: Timestamp,
}

/// What a successfully applied command did. Expected conditions such as "no
/// worker found" are outcomes (an empty match), not errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// A worker was registered or updated; a reverse match may have offered them a posting.
    WorkerUpserted {
        /// Whether the worker was new.
        created: bool,
        /// Offer made by reverse matching, if any.
        offer: Option<MatchedOffer>,
    },
    /// A worker changed position or availability.
    WorkerUpdated {
        /// Status afterwards.
        status: WorkerStatus,
        /// Offer made by reverse matching, if any.
        offer: Option<MatchedOffer>,
    },
    /// A worker was withdrawn.
    WorkerWithdrawn {
        /// Whether this counted as a late cancellation.
        late_cancellation: bool,
    },
    /// An employer was created or updated.
    EmployerUpserted {
        /// Whether it was new.
        created: bool,
    },
    /// An employer was suspended or reinstated.
    EmployerStatusChanged {
        /// Suspended afterwards.
        suspended: bool,
        /// Offers withdrawn by the change.
        offers_withdrawn: u32,
    },
    /// A posting was submitted, updated, reviewed or cancelled.
    PostingChanged {
        /// State afterwards.
        state: PostingState,
        /// Version afterwards.
        version: u64,
        /// True when the command repeated what was already there (idempotent retry).
        unchanged: bool,
        /// Rejection reason, if rejected.
        reason: Option<CompactString>,
    },
    /// An instant match ran.
    Matched {
        /// Offers made, best first; empty when no candidate was found.
        offers: Vec<MatchedOffer>,
        /// Slots still open after this match.
        remaining: u8,
    },
    /// An offer changed state.
    OfferChanged {
        /// Offer state afterwards.
        state: OfferState,
        /// The posting's state afterwards.
        posting_state: PostingState,
        /// Offer made to the worker by reverse matching (after a completed job).
        next_offer: Option<MatchedOffer>,
    },
    /// A complaint was filed.
    ComplaintFiled {
        /// Its id.
        complaint: ComplaintId,
    },
    /// A complaint was resolved.
    ComplaintResolved,
    /// The instant match waits in its county's decision window and is
    /// assigned together with the others there when the window closes (at a
    /// tick at or after `decide_at`).
    Queued {
        /// When the window closes.
        decide_at: Timestamp,
        /// Slots open now (none is offered before the window closes).
        remaining: u8,
    },
    /// Expiry ran, and the decision windows due were assigned.
    Ticked {
        /// Offers expired.
        offers_expired: u32,
        /// Postings expired.
        postings_expired: u32,
        /// Offers made by the decision windows that closed.
        offers_made: u32,
    },
    /// A directory entry was added or replaced.
    MarketUpserted {
        /// Whether it was new.
        created: bool,
    },
    /// A directory entry was removed.
    MarketRemoved,
    /// The ranking policy was set.
    PolicySet {
        /// False when the policy was already in force (nothing changed).
        changed: bool,
    },
}

impl Outcome {
    /// Whether the command changed nothing at all (an idle tick, a repeated
    /// posting, a match that found nobody): such commands need not be logged
    /// and leave the ledger alone.
    pub fn is_no_op(&self) -> bool {
        match self {
            Outcome::Ticked { offers_expired, postings_expired, offers_made } => {
                *offers_expired == 0 && *postings_expired == 0 && *offers_made == 0
            }
            Outcome::PostingChanged { unchanged, .. } => *unchanged,
            Outcome::Matched { offers, .. } => offers.is_empty(),
            Outcome::PolicySet { changed } => !changed,
            _ => false,
        }
    }
}

/// What watchers of a county see about a posting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostingEvent {
    /// Posting id.
    pub posting: CompactString,
    /// County division code.
    pub county: u32,
    /// Township code.
    pub township: Option<CompactString>,
    /// State afterwards.
    pub state: PostingState,
    /// Version afterwards.
    pub version: u64,
    /// Slots still open.
    pub remaining: u8,
    /// When it happened.
    pub at: Timestamp,
}

/// What watchers of a county see about an offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferEvent {
    /// Offer id.
    pub offer: OfferId,
    /// Posting id.
    pub posting: CompactString,
    /// Worker id.
    pub worker: CompactString,
    /// County division code of the posting.
    pub county: u32,
    /// State afterwards.
    pub state: OfferState,
    /// Distance, metres.
    pub distance_m: u32,
    /// When it happened.
    pub at: Timestamp,
}

/// A change watchers may follow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A posting changed.
    Posting(PostingEvent),
    /// An offer changed.
    Offer(OfferEvent),
}

impl Event {
    /// County the event belongs to.
    pub fn county(&self) -> u32 {
        match self {
            Event::Posting(e) => e.county,
            Event::Offer(e) => e.county,
        }
    }
}
