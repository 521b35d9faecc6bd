//! Typed engine errors: [`EngineError`] for refused commands (a command that
//! returns one has changed nothing), [`SnapshotError`] and
//! [`InvariantViolation`] for damaged snapshots and broken invariants.

use crate::model::{OfferState, PostingState, WorkerStatus};
use compact_str::CompactString;

/// Why a command was refused. Every variant leaves the engine unchanged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A field failed validation; `field` names it as callers spell it.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// Field name, e.g. `position` or `headcount`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No worker has this id.
    #[error("unknown worker `{0}`")]
    UnknownWorker(CompactString),
    /// No employer has this id.
    #[error("unknown employer `{0}`")]
    UnknownEmployer(CompactString),
    /// No posting has this id.
    #[error("unknown posting `{0}`")]
    UnknownPosting(CompactString),
    /// No live offer has this id (never made, or already finished).
    #[error("unknown or finished offer {0}")]
    UnknownOffer(u64),
    /// No market directory entry has this id.
    #[error("unknown market `{0}`")]
    UnknownMarket(CompactString),
    /// No complaint has this id.
    #[error("unknown complaint {0}")]
    UnknownComplaint(u64),
    /// A posting with this id exists with other content or version.
    #[error("posting `{id}` already exists at version {current_version}")]
    PostingExists {
        /// Posting id.
        id: CompactString,
        /// Its current version.
        current_version: u64,
    },
    /// An update carried a version not above the current one.
    #[error("stale version {given} for posting `{id}`: current version is {current_version}")]
    StaleVersion {
        /// Posting id.
        id: CompactString,
        /// Version given.
        given: u64,
        /// Current version.
        current_version: u64,
    },
    /// The posting is not in a state that allows the command.
    #[error("posting `{id}` is {state:?}: {action} not allowed")]
    PostingState {
        /// Posting id.
        id: CompactString,
        /// Its state.
        state: PostingState,
        /// What was attempted.
        action: &'static str,
    },
    /// The posting's employer is suspended.
    #[error("employer `{0}` is suspended")]
    EmployerSuspended(CompactString),
    /// The offer is not in a state that allows the command.
    #[error("offer {id} is {state:?}: {action} not allowed")]
    OfferState {
        /// Offer id.
        id: u64,
        /// Its state.
        state: OfferState,
        /// What was attempted.
        action: &'static str,
    },
    /// The offer's answer deadline has passed.
    #[error("offer {0} has expired")]
    OfferExpired(u64),
    /// The offer belongs to another worker.
    #[error("offer {offer} is not held by worker `{worker}`")]
    NotOfferHolder {
        /// Offer id.
        offer: u64,
        /// Worker who tried to answer.
        worker: CompactString,
    },
    /// The worker is not in a state that allows the command.
    #[error("worker `{id}` is {status:?}: {action} not allowed")]
    WorkerState {
        /// Worker id.
        id: CompactString,
        /// Status.
        status: WorkerStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The complaint was already resolved.
    #[error("complaint {0} is already resolved")]
    ComplaintResolved(u64),
}

/// A structural invariant of the engine's state that does not hold: a bug, or
/// a damaged snapshot. Never the result of a refused command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("broken invariant: {0}")]
pub struct InvariantViolation(pub String);

/// Why a snapshot could not be restored (it is damaged or was not written by
/// an engine). Kept apart from [`EngineError`]: a refused command is the
/// caller's problem, a damaged snapshot the operator's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// A record is invalid or refers to something that does not exist.
    #[error("damaged snapshot: {0}")]
    Damaged(String),
    /// The records are each valid but break an invariant together.
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(#[from] InvariantViolation),
}

impl EngineError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        EngineError::InvalidArgument { field, reason: reason.into() }
    }
}
