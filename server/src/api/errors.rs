//! The one mapping from engine, host, validation and watch errors to gRPC
//! statuses, with `google.rpc` error details (including a zh-CN
//! `LocalizedMessage`) and machine-readable trailers.

use super::zh;
use crate::convert::api::InvalidRequest;
use crate::events::TooFarBehind;
use crate::host::SubmitError;
use linggong_engine::{EngineError, Outcome};
use std::collections::HashMap;
use std::time::Duration;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `google.rpc.ErrorInfo.domain` of every error this service reports.
pub const ERROR_DOMAIN: &str = "linggong";
/// Trailer with a posting's current version (stale updates, existing postings).
pub const CURRENT_VERSION_TRAILER: &str = "linggong-current-version";
/// Trailer with the oldest event still kept (watch resumed too late).
pub const OLDEST_SEQ_TRAILER: &str = "linggong-oldest-seq";
/// Trailer with the `after_seq` a watcher should resume with.
pub const RESUME_AFTER_SEQ_TRAILER: &str = "linggong-resume-after-seq";

fn with_number(key: &'static str, value: u64) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert(key, MetadataValue::from(value));
    metadata
}

fn error_info(reason: &str, metadata: &[(&str, String)]) -> ErrorDetails {
    let map: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, map)
}

/// The status with a zh-CN `google.rpc.LocalizedMessage` added to its
/// details, unless it already has one.
pub fn with_zh(status: Status, zh_message: impl FnOnce() -> String) -> Status {
    let mut details = status.get_error_details();
    if details.localized_message().is_some() {
        return status;
    }
    details.set_localized_message(zh::LOCALE, zh_message());
    Status::with_error_details_and_metadata(status.code(), status.message(), details, status.metadata().clone())
}

/// Every status an RPC returns passes here: one without a Chinese message
/// gets the one of its code (naming the fields of a `BadRequest`).
pub fn localized(status: Status) -> Status {
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    let code = status.code();
    with_zh(status, || {
        if fields.is_empty() {
            zh::by_code(code).to_string()
        } else {
            zh::invalid_fields(fields.iter().map(String::as_str))
        }
    })
}

/// A request that failed validation: INVALID_ARGUMENT with a
/// `google.rpc.BadRequest` listing every field violation.
pub fn invalid_request(e: &InvalidRequest) -> Status {
    let violations: Vec<FieldViolation> =
        e.violations.iter().map(|v| FieldViolation::new(v.field.clone(), v.description.clone())).collect();
    let mut details = ErrorDetails::with_bad_request(violations);
    details.set_localized_message(zh::LOCALE, zh::invalid_fields(e.violations.iter().map(|v| v.field.as_str())));
    Status::with_error_details(Code::InvalidArgument, e.to_string(), details)
}

/// A caller over its token's rate limit: RESOURCE_EXHAUSTED with a
/// `google.rpc.RetryInfo` saying when to retry.
pub fn rate_limited(token: &str, retry_after: Duration) -> Status {
    let mut details = ErrorDetails::with_retry_info(Some(retry_after));
    details.set_error_info("RATE_LIMITED", ERROR_DOMAIN, HashMap::from([("token".to_string(), token.to_string())]));
    details.set_localized_message(zh::LOCALE, zh::rate_limited(retry_after.as_secs_f64()));
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("token `{token}` is over its rate limit; retry in {:.1} s", retry_after.as_secs_f64()),
        details,
    )
}

/// The status of an engine refusal (nothing was changed).
pub fn engine_status(e: &EngineError) -> Status {
    with_zh(engine_status_en(e), || zh::engine(e))
}

fn engine_status_en(e: &EngineError) -> Status {
    let message = e.to_string();
    match e {
        EngineError::InvalidArgument(violations) => {
            let violations: Vec<FieldViolation> =
                violations.iter().map(|v| FieldViolation::new(v.field.clone(), v.reason.clone())).collect();
            Status::with_error_details(Code::InvalidArgument, message, ErrorDetails::with_bad_request(violations))
        }
        EngineError::UnknownWorker(_)
        | EngineError::UnknownEmployer(_)
        | EngineError::UnknownPosting(_)
        | EngineError::UnknownOffer(_)
        | EngineError::UnknownComplaint(_)
        | EngineError::UnknownMarket(_) => Status::not_found(message),
        EngineError::PostingExists { id, current_version } => Status::with_error_details_and_metadata(
            Code::AlreadyExists,
            message,
            error_info(
                "POSTING_EXISTS",
                &[("posting_id", id.to_string()), ("current_version", current_version.to_string())],
            ),
            with_number(CURRENT_VERSION_TRAILER, *current_version),
        ),
        EngineError::StaleVersion { id, given, current_version } => {
            let mut details = error_info(
                "STALE_VERSION",
                &[
                    ("posting_id", id.to_string()),
                    ("given_version", given.to_string()),
                    ("current_version", current_version.to_string()),
                ],
            );
            details.add_precondition_failure_violation(
                "STALE_VERSION",
                format!("postings/{id}"),
                format!("the current version is {current_version}; an update must carry a higher one"),
            );
            Status::with_error_details_and_metadata(
                Code::FailedPrecondition,
                message,
                details,
                with_number(CURRENT_VERSION_TRAILER, *current_version),
            )
        }
        EngineError::PostingState { .. }
        | EngineError::EmployerSuspended(_)
        | EngineError::OfferState { .. }
        | EngineError::OfferExpired(_)
        | EngineError::WorkerState { .. }
        | EngineError::ComplaintResolved(_) => Status::failed_precondition(message),
        EngineError::NotOfferHolder { .. } => Status::permission_denied(message),
    }
}

/// The status of a write the host did not apply.
pub fn submit_status(e: &SubmitError) -> Status {
    match e {
        SubmitError::Engine(engine) => engine_status(engine),
        SubmitError::Overloaded(_) => Status::resource_exhausted(format!("{e}; retry with backoff")),
        SubmitError::Unavailable(_) => Status::unavailable(e.to_string()),
        SubmitError::NotLeader { leader_id, leader_addr, leader_http_addr, leader_raft_addr } => {
            let id = leader_id.map(|i| i.to_string()).unwrap_or_default();
            let details = error_info(
                "NOT_LEADER",
                &[
                    ("leader_id", id),
                    ("leader_addr", leader_addr.clone().unwrap_or_default()),
                    ("leader_http_addr", leader_http_addr.clone().unwrap_or_default()),
                    ("leader_raft_addr", leader_raft_addr.clone().unwrap_or_default()),
                ],
            );
            Status::with_error_details(Code::Unavailable, e.to_string(), details)
        }
        SubmitError::RequestIdReused => {
            let mut details = error_info("REQUEST_ID_REUSED", &[]);
            details.add_precondition_failure_violation(
                "REQUEST_ID_REUSED",
                "request_id",
                "this request_id was first used for a different request; a retry must repeat that request exactly, \
                 a new request needs a new request_id",
            );
            Status::with_error_details(
                Code::FailedPrecondition,
                "request_id was already used for a different request: nothing was changed; use a new request_id",
                details,
            )
        }
    }
}

/// No usable credentials.
pub fn unauthenticated(message: impl Into<String>) -> Status {
    Status::unauthenticated(message)
}

/// The caller may not do this (role or scope).
pub fn permission_denied(message: impl Into<String>) -> Status {
    Status::permission_denied(message)
}

/// A read of something that does not exist.
pub fn not_found(message: impl Into<String>) -> Status {
    Status::not_found(message)
}

/// A result of the wrong kind for the RPC: a server bug, reported rather than panicking.
pub fn unexpected_outcome(rpc: &str, outcome: &Outcome) -> Status {
    tracing::error!(rpc, ?outcome, "command returned an outcome of the wrong kind");
    Status::internal(format!("{rpc}: unexpected result"))
}

/// Something the service just wrote could not be read back: a server bug.
pub fn vanished(what: &str) -> Status {
    tracing::error!(what, "record missing right after it was written");
    Status::internal(format!("{what} could not be read back"))
}

/// A watcher asked to resume from before the oldest event still kept.
pub fn too_far_behind(e: TooFarBehind) -> Status {
    Status::with_error_details_and_metadata(
        Code::OutOfRange,
        format!(
            "events after {} are no longer kept; the oldest kept is {}: resume with after_seq = {} and \
             re-read current state to cover the gap",
            e.requested,
            e.oldest_kept,
            e.oldest_kept.saturating_sub(1)
        ),
        error_info("EVENTS_NOT_KEPT", &[("oldest_kept_seq", e.oldest_kept.to_string())]),
        with_number(OLDEST_SEQ_TRAILER, e.oldest_kept),
    )
}

/// A watcher asked to resume after an event that does not exist yet.
pub fn watch_ahead(after: u64, newest: u64) -> Status {
    Status::with_error_details_and_metadata(
        Code::OutOfRange,
        format!("after_seq {after} is ahead of the newest event {newest}"),
        error_info("AFTER_SEQ_AHEAD", &[("newest_seq", newest.to_string())]),
        with_number(RESUME_AFTER_SEQ_TRAILER, newest),
    )
}

/// A watcher fell behind the live stream; its stream ends here.
pub fn watcher_lagged(last_sent: u64, missed: u64) -> Status {
    Status::with_error_details_and_metadata(
        Code::Aborted,
        format!(
            "the watcher fell behind the live stream ({missed} events dropped): reconnect with after_seq = {last_sent}"
        ),
        error_info("WATCHER_LAGGED", &[("resume_after_seq", last_sent.to_string())]),
        with_number(RESUME_AFTER_SEQ_TRAILER, last_sent),
    )
}

/// The event stream closed (the host is shutting down).
pub fn events_closed(last_sent: u64) -> Status {
    Status::with_error_details_and_metadata(
        Code::Unavailable,
        format!("the event stream closed: reconnect with after_seq = {last_sent}"),
        error_info("EVENTS_CLOSED", &[("resume_after_seq", last_sent.to_string())]),
        with_number(RESUME_AFTER_SEQ_TRAILER, last_sent),
    )
}
