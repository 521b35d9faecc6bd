//! Conversions between the public API's messages (`linggong.v1`) and engine
//! types. Requests are parsed here (required messages, enum numbers,
//! timestamps); their input rules are the engine's ([`validate::Rules`]), run
//! here on the parsed command so that every failure is reported at once as a
//! field violation naming the field (`posting.headcount`,
//! `worker.trades[1].level`). Responses are built here
//! too, with phone numbers masked for callers whose scope does not cover the
//! worker's county.

use super::crs::{crs_from_pb, position_to_pb};
use crate::auth::Principal;
use crate::proto::v1 as pb;
use linggong_engine::catalog::TradeIdx;
use linggong_engine::directory::MAX_MARKET_TRADES;
use linggong_engine::ledger::ComplaintLine;
use linggong_engine::standards::{Fund, StandardsReport, Verdict};
use linggong_engine::validate::{self, Violations};
use linggong_engine::{
    Availability, Command, Complaint, ComplaintCategory, ComplaintResolution, CountyStats, Crs, Employer, EmployerKind,
    EmployerSpec, Engine, Hardship, LatLon, LedgerDay, LedgerReport, Limits, MarketKind, MarketSpec, MatchedOffer,
    Offer, OfferEvent, OfferResponse, OfferState, Posting, PostingEvent, PostingSource, PostingSpec, PostingState,
    Regions, ReviewDecision, Timestamp, TradeCatalog, TradeSkillSpec, Worker, WorkerSpec, WorkerStatus,
};

pub use linggong_engine::validate::MAX_DAILY_WAGE_YUAN;
/// Longest client `request_id`, bytes.
pub const MAX_REQUEST_ID_LEN: usize = 64;
/// Page size when a list request gives none.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size.
pub const MAX_PAGE_SIZE: usize = 500;
/// Highest `Timestamp.seconds` protobuf allows (9999-12-31T23:59:59Z).
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// Lowest `Timestamp.seconds` protobuf allows (0001-01-01T00:00:00Z).
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;

/// One request field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `posting.headcount`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// A request that failed validation, with every violated field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", describe(.violations))]
pub struct InvalidRequest {
    /// The violations, in field order.
    pub violations: Vec<FieldViolation>,
}

fn describe(violations: &[FieldViolation]) -> String {
    let parts: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
    parts.join("; ")
}

impl InvalidRequest {
    /// A request with one bad field.
    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { violations: vec![FieldViolation { field: field.into(), description: description.into() }] }
    }

    /// Whether a field of this path was reported.
    pub fn names(&self, field: &str) -> bool {
        self.violations.iter().any(|v| v.field == field)
    }
}

/// `Ok(value)` when nothing was reported. The value is built regardless; it
/// is only meaningful when there are no violations.
pub(crate) fn finish<T>(v: Violations, value: T) -> Result<T, InvalidRequest> {
    if v.is_empty() {
        Ok(value)
    } else {
        let violations = v.into_iter().map(|v| FieldViolation { field: v.field, description: v.reason }).collect();
        Err(InvalidRequest { violations })
    }
}

/// What requests are checked against: the engine's limits, counties and trades.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// Input limits.
    pub limits: &'a Limits,
    /// Counties served.
    pub regions: &'a Regions,
    /// Trade catalogue.
    pub trades: &'a TradeCatalog,
}

impl<'a> Rules<'a> {
    /// The rules of a running engine.
    pub fn of(engine: &'a Engine) -> Self {
        Self { limits: &engine.config().limits, regions: engine.regions(), trades: engine.trades() }
    }

    /// The engine's input rules.
    fn engine(&self) -> validate::Rules<'a> {
        validate::Rules { limits: self.limits, regions: self.regions, trades: self.trades }
    }
}

// ------------------------------------------------------------------ fields

fn path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

fn has_bad_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// A required id (of a read or a list filter), by the engine's rule.
pub(crate) fn id<'a>(v: &mut Violations, rules: &Rules, field: String, value: &'a str) -> &'a str {
    rules.engine().id(v, &field, value);
    value
}

/// An optional code (empty for none), by the engine's rule for ids.
pub(crate) fn optional_code<'a>(v: &mut Violations, rules: &Rules, field: String, value: &'a str) -> Option<&'a str> {
    (!value.is_empty()).then(|| id(v, rules, field, value))
}

/// An optional string field: empty for none.
fn optional_str(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// A phone number, by the engine's rule.
pub(crate) fn phone<'a>(v: &mut Violations, rules: &Rules, field: String, value: &'a str) -> &'a str {
    rules.engine().phone(v, &field, value);
    value
}

/// A number narrowed to the engine's type; one too large for it saturates, so
/// the engine's bound still reports it.
fn narrow(value: u32) -> u8 {
    u8::try_from(value).unwrap_or(u8::MAX)
}

pub(crate) fn county(v: &mut Violations, rules: &Rules, field: String, code: u32) -> u32 {
    rules.engine().county(v, &field, code);
    code
}

fn trade<'a>(v: &mut Violations, rules: &Rules, field: String, value: &'a str) -> &'a str {
    rules.engine().trade(v, &field, value);
    value
}

/// A position; its range is the engine's rule.
fn position(v: &mut Violations, field: String, value: Option<&pb::LatLon>) -> LatLon {
    match value {
        None => {
            v.add(field, "required");
            LatLon { lat: 0.0, lon: 0.0 }
        }
        Some(p) => match (LatLon::new(p.lat, p.lon), pb::CoordinateSystem::try_from(p.crs)) {
            (Some(given), Ok(crs)) => crs_from_pb(crs).to_wgs84(given),
            (_, Err(_)) => {
                v.add(path(&field, "crs"), format!("unknown coordinate system {}", p.crs));
                LatLon { lat: 0.0, lon: 0.0 }
            }
            (None, _) => {
                v.add(field, "latitude must be in -90..=90 and longitude in -180..=180 (finite numbers)");
                LatLon { lat: 0.0, lon: 0.0 }
            }
        },
    }
}

pub(crate) fn timestamp(v: &mut Violations, field: String, value: &prost_types::Timestamp) -> Timestamp {
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&value.seconds) {
        v.add(field, "seconds out of range (years 1 to 9999)");
        return Timestamp(0);
    }
    if !(0..1_000_000_000).contains(&value.nanos) {
        v.add(field, "nanos must be in 0..=999999999");
        return Timestamp(0);
    }
    Timestamp(value.seconds * 1000 + i64::from(value.nanos / 1_000_000))
}

fn required_timestamp(v: &mut Violations, field: String, value: Option<&prost_types::Timestamp>) -> Timestamp {
    match value {
        Some(t) => timestamp(v, field, t),
        None => {
            v.add(field, "required");
            Timestamp(0)
        }
    }
}

/// A window; missing (or a missing bound) is unbounded. That it is not
/// empty is the engine's rule.
fn window(v: &mut Violations, field: &str, value: Option<&pb::TimeWindow>) -> Availability {
    let Some(w) = value else { return Availability::ALWAYS };
    let from = w.start_time.as_ref().map_or(Availability::ALWAYS.from, |t| timestamp(v, path(field, "start_time"), t));
    let until = w.end_time.as_ref().map_or(Availability::ALWAYS.until, |t| timestamp(v, path(field, "end_time"), t));
    Availability { from, until }
}

/// A parsed command with the engine's verdict on its input rules.
fn checked(mut v: Violations, rules: &Rules, command: Command) -> Result<Command, InvalidRequest> {
    for found in rules.engine().command(&command) {
        v.add(found.field, found.reason);
    }
    finish(v, command)
}

/// A known enum number, or a violation naming the field.
fn known_enum<P: TryFrom<i32>>(v: &mut Violations, field: &str, raw: i32) -> Option<P> {
    let known = P::try_from(raw).ok();
    if known.is_none() {
        v.add(field, format!("unknown value {raw}"));
    }
    known
}

/// A required enum: unknown numbers and `*_UNSPECIFIED` are rejected.
pub(crate) fn required_enum<P, T>(
    v: &mut Violations,
    field: String,
    raw: i32,
    map: impl Fn(P) -> Option<T>,
) -> Option<T>
where
    P: TryFrom<i32>,
{
    let p = known_enum(v, &field, raw)?;
    let mapped = map(p);
    if mapped.is_none() {
        v.add(field, "required (UNSPECIFIED is not a value)");
    }
    mapped
}

/// An optional enum used as a filter: `*_UNSPECIFIED` means any, unknown numbers are rejected.
pub(crate) fn optional_enum<P, T>(
    v: &mut Violations,
    field: String,
    raw: i32,
    map: impl Fn(P) -> Option<T>,
) -> Option<T>
where
    P: TryFrom<i32>,
{
    known_enum(v, &field, raw).and_then(map)
}

fn request_id(v: &mut Violations, value: &str) {
    if value.len() > MAX_REQUEST_ID_LEN {
        v.add("request_id", format!("longer than {MAX_REQUEST_ID_LEN} bytes"));
    } else if has_bad_chars(value) {
        v.add("request_id", "must not contain whitespace or control characters");
    }
}

// ------------------------------------------------------------------- enums

/// Engine hardship from the API enum (`None` for UNSPECIFIED).
pub fn hardship_from_pb(h: pb::Hardship) -> Option<Hardship> {
    Some(match h {
        pb::Hardship::Unspecified => return None,
        pb::Hardship::None => Hardship::None,
        pb::Hardship::LongTermUnemployed => Hardship::LongTermUnemployed,
        pb::Hardship::LowIncomeHousehold => Hardship::LowIncomeHousehold,
        pb::Hardship::Disabled => Hardship::Disabled,
        pb::Hardship::OlderWorker => Hardship::OlderWorker,
    })
}

/// API hardship enum.
pub fn hardship_to_pb(h: Hardship) -> pb::Hardship {
    match h {
        Hardship::None => pb::Hardship::None,
        Hardship::LongTermUnemployed => pb::Hardship::LongTermUnemployed,
        Hardship::LowIncomeHousehold => pb::Hardship::LowIncomeHousehold,
        Hardship::Disabled => pb::Hardship::Disabled,
        Hardship::OlderWorker => pb::Hardship::OlderWorker,
    }
}

/// Engine posting source from the API enum (`None` for UNSPECIFIED).
pub fn posting_source_from_pb(s: pb::PostingSource) -> Option<PostingSource> {
    Some(match s {
        pb::PostingSource::Unspecified => return None,
        pb::PostingSource::CountyDesk => PostingSource::CountyDesk,
        pb::PostingSource::TownshipStation => PostingSource::TownshipStation,
        pb::PostingSource::Online => PostingSource::Online,
    })
}

/// API posting source enum.
pub fn posting_source_to_pb(s: PostingSource) -> pb::PostingSource {
    match s {
        PostingSource::CountyDesk => pb::PostingSource::CountyDesk,
        PostingSource::TownshipStation => pb::PostingSource::TownshipStation,
        PostingSource::Online => pb::PostingSource::Online,
    }
}

/// Engine posting state from the API enum (`None` for UNSPECIFIED).
pub fn posting_state_from_pb(s: pb::PostingState) -> Option<PostingState> {
    Some(match s {
        pb::PostingState::Unspecified => return None,
        pb::PostingState::PendingReview => PostingState::PendingReview,
        pb::PostingState::Published => PostingState::Published,
        pb::PostingState::Filling => PostingState::Filling,
        pb::PostingState::Filled => PostingState::Filled,
        pb::PostingState::Expired => PostingState::Expired,
        pb::PostingState::Cancelled => PostingState::Cancelled,
        pb::PostingState::Rejected => PostingState::Rejected,
    })
}

/// API posting state enum.
pub fn posting_state_to_pb(s: PostingState) -> pb::PostingState {
    match s {
        PostingState::PendingReview => pb::PostingState::PendingReview,
        PostingState::Published => pb::PostingState::Published,
        PostingState::Filling => pb::PostingState::Filling,
        PostingState::Filled => pb::PostingState::Filled,
        PostingState::Expired => pb::PostingState::Expired,
        PostingState::Cancelled => pb::PostingState::Cancelled,
        PostingState::Rejected => pb::PostingState::Rejected,
    }
}

/// API offer state enum.
pub fn offer_state_to_pb(s: OfferState) -> pb::OfferState {
    match s {
        OfferState::Pending => pb::OfferState::Pending,
        OfferState::Accepted => pb::OfferState::Accepted,
        OfferState::Arrived => pb::OfferState::Arrived,
        OfferState::Completed => pb::OfferState::Completed,
        OfferState::Declined => pb::OfferState::Declined,
        OfferState::Expired => pb::OfferState::Expired,
        OfferState::Withdrawn => pb::OfferState::Withdrawn,
        OfferState::Cancelled => pb::OfferState::Cancelled,
        OfferState::NoShow => pb::OfferState::NoShow,
    }
}

/// API worker status enum.
pub fn worker_status_to_pb(s: WorkerStatus) -> pb::WorkerStatus {
    match s {
        WorkerStatus::Waiting => pb::WorkerStatus::Waiting,
        WorkerStatus::Offered => pb::WorkerStatus::Offered,
        WorkerStatus::Engaged => pb::WorkerStatus::Engaged,
        WorkerStatus::Away => pb::WorkerStatus::Away,
    }
}

fn offer_response_from_pb(r: pb::OfferResponse) -> Option<OfferResponse> {
    Some(match r {
        pb::OfferResponse::Unspecified => return None,
        pb::OfferResponse::Accept => OfferResponse::Accept,
        pb::OfferResponse::Decline => OfferResponse::Decline,
    })
}

pub(crate) fn complaint_category_from_pb(c: pb::ComplaintCategory) -> Option<ComplaintCategory> {
    Some(match c {
        pb::ComplaintCategory::Unspecified => return None,
        pb::ComplaintCategory::WageArrears => ComplaintCategory::WageArrears,
        pb::ComplaintCategory::Safety => ComplaintCategory::Safety,
        pb::ComplaintCategory::FalsePosting => ComplaintCategory::FalsePosting,
        pb::ComplaintCategory::Discrimination => ComplaintCategory::Discrimination,
        pb::ComplaintCategory::Other => ComplaintCategory::Other,
    })
}

fn complaint_category_to_pb(c: ComplaintCategory) -> pb::ComplaintCategory {
    match c {
        ComplaintCategory::WageArrears => pb::ComplaintCategory::WageArrears,
        ComplaintCategory::Safety => pb::ComplaintCategory::Safety,
        ComplaintCategory::FalsePosting => pb::ComplaintCategory::FalsePosting,
        ComplaintCategory::Discrimination => pb::ComplaintCategory::Discrimination,
        ComplaintCategory::Other => pb::ComplaintCategory::Other,
    }
}

fn complaint_resolution_from_pb(r: pb::ComplaintResolution) -> Option<ComplaintResolution> {
    Some(match r {
        pb::ComplaintResolution::Unspecified => return None,
        pb::ComplaintResolution::Upheld => ComplaintResolution::Upheld,
        pb::ComplaintResolution::Dismissed => ComplaintResolution::Dismissed,
    })
}

fn complaint_resolution_to_pb(r: ComplaintResolution) -> pb::ComplaintResolution {
    match r {
        ComplaintResolution::Upheld => pb::ComplaintResolution::Upheld,
        ComplaintResolution::Dismissed => pb::ComplaintResolution::Dismissed,
    }
}

// ----------------------------------------------------------- request specs

/// Parses a worker and adds the engine's verdict on its fields, under `field`.
fn worker_spec(v: &mut Violations, rules: &Rules, field: &str, worker: Option<&pb::Worker>) -> WorkerSpec {
    let default = pb::Worker::default();
    let w = match worker {
        Some(w) => w,
        None => {
            v.add(field, "required");
            &default
        }
    };
    let spec = WorkerSpec {
        id: w.worker_id.as_str().into(),
        name: w.display_name.as_str().into(),
        phone: w.phone.as_str().into(),
        trades: w
            .trades
            .iter()
            .take(rules.limits.max_trades_per_worker + 1)
            .map(|t| TradeSkillSpec { trade: t.trade_id.as_str().into(), level: narrow(t.level) })
            .collect(),
        position: position(v, path(field, "position"), w.position.as_ref()),
        county: w.county_code,
        township: optional_str(&w.township_code).map(Into::into),
        availability: window(v, &path(field, "availability"), w.availability.as_ref()),
        min_daily_wage: w.min_daily_wage_yuan,
        hardship: required_enum(v, path(field, "hardship"), w.hardship, hardship_from_pb).unwrap_or_default(),
    };
    rules.engine().worker_spec(v, field, &spec);
    spec
}

/// Parses a posting and adds the engine's verdict on its fields, under `field`.
fn posting_spec(v: &mut Violations, rules: &Rules, field: &str, posting: Option<&pb::Posting>) -> PostingSpec {
    let default = pb::Posting::default();
    let p = match posting {
        Some(p) => p,
        None => {
            v.add(field, "required");
            &default
        }
    };
    let spec = PostingSpec {
        id: p.posting_id.as_str().into(),
        employer: p.employer_id.as_str().into(),
        trade: p.trade_id.as_str().into(),
        headcount: narrow(p.headcount),
        position: position(v, path(field, "position"), p.position.as_ref()),
        county: p.county_code,
        township: optional_str(&p.township_code).map(Into::into),
        max_distance_m: p.max_distance_m,
        daily_wage: p.daily_wage_yuan,
        start: required_timestamp(v, path(field, "start_time"), p.start_time.as_ref()),
        duration_minutes: p.duration_minutes,
        offer_ttl_secs: p.offer_ttl_seconds,
        description: p.description.as_str().into(),
        source: required_enum(v, path(field, "source"), p.source, posting_source_from_pb)
            .unwrap_or(PostingSource::Online),
        version: p.version,
    };
    rules.engine().posting_spec(v, field, &spec);
    spec
}

fn employer_spec(v: &mut Violations, rules: &Rules, field: &str, employer: Option<&pb::Employer>) -> EmployerSpec {
    let default = pb::Employer::default();
    let e = match employer {
        Some(e) => e,
        None => {
            v.add(field, "required");
            &default
        }
    };
    let kind = required_enum(v, path(field, "kind"), e.kind, |k: pb::EmployerKind| match k {
        pb::EmployerKind::Unspecified => None,
        pb::EmployerKind::Company => Some(EmployerKind::Company { credit_code: e.credit_code.as_str().into() }),
        pb::EmployerKind::Individual => Some(EmployerKind::Individual),
    });
    // An individual has no credit code in the engine's model: one given is a wire-level mistake.
    if matches!(kind, Some(EmployerKind::Individual)) && !e.credit_code.is_empty() {
        v.add(path(field, "credit_code"), "must be empty for an individual");
    }
    let spec = EmployerSpec {
        id: e.employer_id.as_str().into(),
        name: e.display_name.as_str().into(),
        kind: kind.unwrap_or(EmployerKind::Individual),
        verified: e.verified,
    };
    rules.engine().employer_spec(v, field, &spec);
    spec
}

// ------------------------------------------------------- request commands

/// `RegisterWorker` → the spec of an `UpsertWorker`.
pub fn register_worker_spec(rules: &Rules, req: &pb::RegisterWorkerRequest) -> Result<WorkerSpec, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let spec = worker_spec(&mut v, rules, "worker", req.worker.as_ref());
    finish(v, spec)
}

/// `UpdateWorkerLocation` → `MoveWorker`.
pub fn update_worker_location_command(
    rules: &Rules,
    req: &pb::UpdateWorkerLocationRequest,
) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let worker = req.worker_id.as_str().into();
    let position = position(&mut v, "position".into(), req.position.as_ref());
    checked(v, rules, Command::MoveWorker { worker, position })
}

/// `SetAvailability` → `SetAvailability`.
pub fn set_availability_command(rules: &Rules, req: &pb::SetAvailabilityRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let worker = req.worker_id.as_str().into();
    let window = if req.available {
        Some(window(&mut v, "window", req.window.as_ref()))
    } else {
        if req.window.is_some() {
            v.add("window", "must be unset when the worker is not available");
        }
        None
    };
    checked(v, rules, Command::SetAvailability { worker, window })
}

/// `WithdrawWorker` → `WithdrawWorker`.
pub fn withdraw_worker_command(rules: &Rules, req: &pb::WithdrawWorkerRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let worker = req.worker_id.as_str().into();
    checked(v, rules, Command::WithdrawWorker { worker })
}

/// A lone id field of a read request.
pub fn checked_id<'a>(rules: &Rules, field: &'static str, value: &'a str) -> Result<&'a str, InvalidRequest> {
    let mut v = Violations::default();
    let value = id(&mut v, rules, field.into(), value);
    finish(v, value)
}

/// A lone required county of a request.
pub fn checked_county(rules: &Rules, field: &'static str, code: u32) -> Result<u32, InvalidRequest> {
    let mut v = Violations::default();
    let code = county(&mut v, rules, field.into(), code);
    finish(v, code)
}

/// `SubmitPosting` or `UpdatePosting` (same fields) → the posting spec.
pub fn posting_spec_of(
    rules: &Rules,
    request_id_value: &str,
    posting: Option<&pb::Posting>,
) -> Result<PostingSpec, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, request_id_value);
    let spec = posting_spec(&mut v, rules, "posting", posting);
    finish(v, spec)
}

/// `CancelPosting` → `CancelPosting`.
pub fn cancel_posting_command(rules: &Rules, req: &pb::CancelPostingRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let posting = req.posting_id.as_str().into();
    let reason = req.reason.as_str().into();
    checked(v, rules, Command::CancelPosting { posting, reason })
}

/// `InstantMatch` → `InstantMatch`.
pub fn instant_match_command(rules: &Rules, req: &pb::InstantMatchRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let posting = req.posting_id.as_str().into();
    checked(v, rules, Command::InstantMatch { posting, max_offers: narrow(req.max_offers) })
}

/// `RespondToOffer` → `RespondToOffer`.
pub fn respond_to_offer_command(rules: &Rules, req: &pb::RespondToOfferRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let worker = req.worker_id.as_str().into();
    let response = required_enum(&mut v, "response".into(), req.response, offer_response_from_pb);
    let response = response.unwrap_or(OfferResponse::Decline);
    checked(v, rules, Command::RespondToOffer { offer: req.offer_id, worker, response })
}

/// Which offer-progress command a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferStep {
    /// `ConfirmArrival`.
    ConfirmArrival,
    /// `CompleteJob`.
    CompleteJob,
    /// `ReportNoShow`.
    ReportNoShow,
}

/// `ConfirmArrival`, `CompleteJob` or `ReportNoShow` (each has a request id and an offer id).
pub fn offer_step_command(rules: &Rules, step: OfferStep, req_id: &str, offer: u64) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, req_id);
    let command = match step {
        OfferStep::ConfirmArrival => Command::ConfirmArrival { offer },
        OfferStep::CompleteJob => Command::CompleteJob { offer },
        OfferStep::ReportNoShow => Command::ReportNoShow { offer },
    };
    checked(v, rules, command)
}

/// `ReviewPosting` → `ReviewPosting`.
pub fn review_posting_command(rules: &Rules, req: &pb::ReviewPostingRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let posting = req.posting_id.as_str().into();
    let decision = required_enum(&mut v, "decision".into(), req.decision, |d: pb::ReviewDecision| match d {
        pb::ReviewDecision::Unspecified => None,
        pb::ReviewDecision::Approve => Some(ReviewDecision::Approve),
        pb::ReviewDecision::Reject => Some(ReviewDecision::Reject { reason: req.reason.as_str().into() }),
    });
    // An approval has no reason in the engine's model: one given is a wire-level mistake.
    if matches!(decision, Some(ReviewDecision::Approve)) && !req.reason.is_empty() {
        v.add("reason", "must be empty for an approval");
    }
    checked(v, rules, Command::ReviewPosting { posting, decision: decision.unwrap_or(ReviewDecision::Approve) })
}

/// `FileComplaint` → `FileComplaint`.
pub fn file_complaint_command(rules: &Rules, req: &pb::FileComplaintRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let category = required_enum(&mut v, "category".into(), req.category, complaint_category_from_pb);
    let command = Command::FileComplaint {
        employer: req.employer_id.as_str().into(),
        posting: optional_str(&req.posting_id).map(Into::into),
        county: req.county_code,
        category: category.unwrap_or(ComplaintCategory::Other),
        detail: req.detail.as_str().into(),
    };
    checked(v, rules, command)
}

/// `ResolveComplaint` → `ResolveComplaint`.
pub fn resolve_complaint_command(rules: &Rules, req: &pb::ResolveComplaintRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let resolution = required_enum(&mut v, "resolution".into(), req.resolution, complaint_resolution_from_pb);
    let command = Command::ResolveComplaint {
        complaint: req.complaint_id,
        resolution: resolution.unwrap_or(ComplaintResolution::Dismissed),
        note: req.note.as_str().into(),
    };
    checked(v, rules, command)
}

/// `SuspendEmployer` → `SuspendEmployer`.
pub fn suspend_employer_command(rules: &Rules, req: &pb::SuspendEmployerRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let command =
        Command::SuspendEmployer { employer: req.employer_id.as_str().into(), reason: req.reason.as_str().into() };
    checked(v, rules, command)
}

/// `ReinstateEmployer` → `ReinstateEmployer`.
pub fn reinstate_employer_command(
    rules: &Rules,
    req: &pb::ReinstateEmployerRequest,
) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    checked(v, rules, Command::ReinstateEmployer { employer: req.employer_id.as_str().into() })
}

/// `UpsertEmployer` → the spec of an `UpsertEmployer`.
pub fn upsert_employer_spec(rules: &Rules, req: &pb::UpsertEmployerRequest) -> Result<EmployerSpec, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let spec = employer_spec(&mut v, rules, "employer", req.employer.as_ref());
    finish(v, spec)
}

// ------------------------------------------------------------------ lists

/// Which postings a list asks for (before the caller's scope is applied).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostingFilter {
    /// Only this county.
    pub county: Option<u32>,
    /// Only these counties (the caller's scope); empty for any.
    pub scope_counties: Vec<u32>,
    /// Only this township.
    pub township: Option<String>,
    /// Only this state.
    pub state: Option<PostingState>,
    /// Only this trade.
    pub trade: Option<TradeIdx>,
    /// Only this employer (by id).
    pub employer: Option<String>,
}

impl PostingFilter {
    /// Whether a posting passes.
    pub fn matches(&self, engine: &Engine, p: &Posting) -> bool {
        let code = engine.regions().get(p.county).code;
        self.county.is_none_or(|c| c == code)
            && (self.scope_counties.is_empty() || self.scope_counties.contains(&code))
            && self.state.is_none_or(|s| s == p.state)
            && self.trade.is_none_or(|t| t == p.trade)
            && self.township.as_deref().is_none_or(|t| p.township.as_deref() == Some(t))
            && self.employer.as_deref().is_none_or(|e| engine.employer_by_key(p.employer).id == e)
    }
}

/// A page of a list: where to start and how many at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Index (submission order) to start at.
    pub start: usize,
    /// Most items to return.
    pub size: usize,
    /// Fingerprint of the filters, carried in page tokens.
    pub fingerprint: u64,
}

/// FNV-1a over the filter fields, so a page token is refused with other filters.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The opaque token for the page starting at `start`.
pub fn page_token(start: usize, fingerprint: u64) -> String {
    hex::encode(format!("v1:{start}:{fingerprint:016x}"))
}

pub(crate) fn page(v: &mut Violations, page_size: i32, token: &str, fingerprint: u64) -> PageRequest {
    let size = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n < 0 => {
            v.add("page_size", "must not be negative");
            DEFAULT_PAGE_SIZE
        }
        n => (n as usize).min(MAX_PAGE_SIZE),
    };
    let mut start = 0;
    if !token.is_empty() {
        let decoded = hex::decode(token).ok().and_then(|b| String::from_utf8(b).ok());
        let parsed = decoded.as_deref().and_then(|s| {
            let mut parts = s.split(':');
            let (version, index, fp) = (parts.next()?, parts.next()?, parts.next()?);
            if version != "v1" || parts.next().is_some() {
                return None;
            }
            Some((index.parse::<usize>().ok()?, u64::from_str_radix(fp, 16).ok()?))
        });
        match parsed {
            Some((index, fp)) if fp == fingerprint => start = index,
            Some(_) => v.add("page_token", "was issued for other filters"),
            None => v.add("page_token", "not a token this service issued"),
        }
    }
    PageRequest { start, size, fingerprint }
}

/// `ListPostings` → a filter and a page.
pub fn list_postings_request(
    rules: &Rules,
    req: &pb::ListPostingsRequest,
) -> Result<(PostingFilter, PageRequest), InvalidRequest> {
    let mut v = Violations::default();
    let county = (req.county_code != 0).then(|| county(&mut v, rules, "county_code".into(), req.county_code));
    let township = optional_code(&mut v, rules, "township_code".into(), &req.township_code).map(String::from);
    let state = optional_enum(&mut v, "state".into(), req.state, posting_state_from_pb);
    let trade = if req.trade_id.is_empty() {
        None
    } else {
        let t = trade(&mut v, rules, "trade_id".into(), &req.trade_id);
        rules.trades.index_of(t)
    };
    let employer = optional_code(&mut v, rules, "employer_id".into(), &req.employer_id).map(String::from);
    let fp = fingerprint(&[
        b"postings",
        &req.county_code.to_le_bytes(),
        req.township_code.as_bytes(),
        &req.state.to_le_bytes(),
        req.trade_id.as_bytes(),
        req.employer_id.as_bytes(),
    ]);
    let page = page(&mut v, req.page_size, &req.page_token, fp);
    finish(v, (PostingFilter { county, scope_counties: Vec::new(), township, state, trade, employer }, page))
}

/// `ListPendingPostings` → a filter and a page.
pub fn list_pending_postings_request(
    rules: &Rules,
    req: &pb::ListPendingPostingsRequest,
) -> Result<(PostingFilter, PageRequest), InvalidRequest> {
    let mut v = Violations::default();
    let county = (req.county_code != 0).then(|| county(&mut v, rules, "county_code".into(), req.county_code));
    let fp = fingerprint(&[b"pending", &req.county_code.to_le_bytes()]);
    let page = page(&mut v, req.page_size, &req.page_token, fp);
    let filter = PostingFilter { county, state: Some(PostingState::PendingReview), ..PostingFilter::default() };
    finish(v, (filter, page))
}

// -------------------------------------------------------------- responses

/// Protobuf time of an engine timestamp.
pub fn timestamp_to_pb(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.0.div_euclid(1000), nanos: (t.0.rem_euclid(1000) * 1_000_000) as i32 }
}

/// Masks the middle of a phone number: `13812341234` → `138****1234`.
/// Numbers too short to keep both ends keep at most their last two characters.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        0 => (0, 0),
        1..=4 => (0, 0),
        5..=7 => (0, 2),
        _ => (3, 4),
    };
    chars.iter().enumerate().map(|(i, &c)| if i < head || i >= n - tail { c } else { '*' }).collect()
}

fn phone_for(viewer: &Principal, county_code: u32, phone: &str) -> String {
    if viewer.covers_county(county_code) {
        phone.to_string()
    } else {
        mask_phone(phone)
    }
}

/// A worker as `viewer` may see it (phone masked outside the viewer's scope).
pub fn worker_to_pb(engine: &Engine, w: &Worker, viewer: &Principal) -> pb::Worker {
    let county_code = engine.regions().get(w.county).code;
    let bound = |t: Timestamp| (t != Availability::ALWAYS.from && t != Availability::ALWAYS.until).then_some(t);
    let availability = (w.availability != Availability::ALWAYS).then(|| pb::TimeWindow {
        start_time: bound(w.availability.from).map(timestamp_to_pb),
        end_time: bound(w.availability.until).map(timestamp_to_pb),
    });
    pb::Worker {
        worker_id: w.id.to_string(),
        display_name: w.name.to_string(),
        phone: phone_for(viewer, county_code, &w.phone),
        trades: w
            .trades
            .iter()
            .map(|t| pb::TradeSkill {
                trade_id: engine.trades().get(t.trade).id.to_string(),
                level: u32::from(t.level),
            })
            .collect(),
        position: Some(position_to_pb(w.position, Crs::Wgs84)),
        county_code,
        township_code: w.township.as_deref().unwrap_or_default().to_string(),
        availability,
        min_daily_wage_yuan: w.min_daily_wage,
        hardship: hardship_to_pb(w.hardship) as i32,
        status: worker_status_to_pb(w.status) as i32,
        waiting_since: Some(timestamp_to_pb(w.waiting_since)),
        live_offer_id: w.offer.unwrap_or(0),
        reliability: Some(pb::Reliability {
            completed: w.reliability.completed,
            no_shows: w.reliability.no_shows,
            late_cancellations: w.reliability.late_cancellations,
        }),
    }
}

/// An offer made by a match, with the worker's name and phone as `viewer` may see them.
pub fn offer_to_pb(engine: &Engine, offer: &MatchedOffer, viewer: &Principal) -> pb::Offer {
    let (name, phone) = match engine.worker(&offer.worker) {
        Some(w) => (w.name.to_string(), phone_for(viewer, engine.regions().get(w.county).code, &w.phone)),
        None => (String::new(), String::new()),
    };
    pb::Offer {
        offer_id: offer.offer,
        posting_id: offer.posting.to_string(),
        worker_id: offer.worker.to_string(),
        worker_display_name: name,
        worker_phone: phone,
        distance_m: offer.distance_m,
        answer_deadline: Some(timestamp_to_pb(offer.deadline)),
        // As made by the answer that carries it, so a retry of that request returns the same
        // answer; the offer's current state is read through the offer look-ups.
        state: pb::OfferState::Pending as i32,
        make_time: engine.offer(offer.offer).map(|o| timestamp_to_pb(o.made_at)),
    }
}

/// A live offer as `viewer` may see it.
pub fn live_offer_to_pb(engine: &Engine, offer: &Offer, viewer: &Principal) -> pb::Offer {
    let w = engine.worker_by_key(offer.worker);
    pb::Offer {
        offer_id: offer.id,
        posting_id: engine.posting_by_key(offer.posting).id.to_string(),
        worker_id: w.id.to_string(),
        worker_display_name: w.name.to_string(),
        worker_phone: phone_for(viewer, engine.regions().get(w.county).code, &w.phone),
        distance_m: offer.distance_m,
        answer_deadline: Some(timestamp_to_pb(offer.deadline)),
        state: offer_state_to_pb(offer.state) as i32,
        make_time: Some(timestamp_to_pb(offer.made_at)),
    }
}

/// A posting.
pub fn posting_to_pb(engine: &Engine, p: &Posting) -> pb::Posting {
    pb::Posting {
        posting_id: p.id.to_string(),
        employer_id: engine.employer_by_key(p.employer).id.to_string(),
        trade_id: engine.trades().get(p.trade).id.to_string(),
        headcount: u32::from(p.headcount),
        position: Some(position_to_pb(p.position, Crs::Wgs84)),
        county_code: engine.regions().get(p.county).code,
        township_code: p.township.as_deref().unwrap_or_default().to_string(),
        max_distance_m: p.max_distance_m,
        daily_wage_yuan: p.daily_wage,
        start_time: Some(timestamp_to_pb(p.start)),
        duration_minutes: p.duration_minutes,
        offer_ttl_seconds: p.offer_ttl_secs,
        description: p.description.to_string(),
        source: posting_source_to_pb(p.source) as i32,
        version: p.version,
        state: posting_state_to_pb(p.state) as i32,
        state_reason: p.reason.as_deref().unwrap_or_default().to_string(),
        remaining_slots: if p.state.is_open() { u32::from(p.remaining()) } else { 0 },
        pending_offers: u32::from(p.pending),
        engaged_workers: u32::from(p.engaged),
        completed_workers: u32::from(p.completed),
        submit_time: Some(timestamp_to_pb(p.submitted_at)),
        publish_time: p.published_at.map(timestamp_to_pb),
        fill_time: p.filled_at.map(timestamp_to_pb),
        end_time: Some(timestamp_to_pb(p.expires_at())),
        reviewed_by: p.reviewed_by.as_deref().unwrap_or_default().to_string(),
        review_time: p.reviewed_at.map(timestamp_to_pb),
    }
}

/// An employer.
pub fn employer_to_pb(e: &Employer) -> pb::Employer {
    let (kind, credit_code) = match &e.kind {
        EmployerKind::Company { credit_code } => (pb::EmployerKind::Company, credit_code.to_string()),
        EmployerKind::Individual => (pb::EmployerKind::Individual, String::new()),
    };
    pb::Employer {
        employer_id: e.id.to_string(),
        display_name: e.name.to_string(),
        kind: kind as i32,
        credit_code,
        verified: e.verified,
        suspended: e.suspended,
        suspension_reason: e.suspension_reason.as_deref().unwrap_or_default().to_string(),
        complaint_count: e.complaints,
    }
}

/// A complaint.
pub fn complaint_to_pb(engine: &Engine, c: &Complaint) -> pb::Complaint {
    let (resolution, resolve_time, note) = match &c.resolution {
        Some((r, at, note)) => (complaint_resolution_to_pb(*r), Some(timestamp_to_pb(*at)), note.to_string()),
        None => (pb::ComplaintResolution::Unspecified, None, String::new()),
    };
    pb::Complaint {
        complaint_id: c.id,
        employer_id: engine.employer_by_key(c.employer).id.to_string(),
        posting_id: c.posting.map(|k| engine.posting_by_key(k).id.to_string()).unwrap_or_default(),
        county_code: engine.regions().get(c.county).code,
        category: complaint_category_to_pb(c.category) as i32,
        detail: c.detail.to_string(),
        file_time: Some(timestamp_to_pb(c.filed_at)),
        resolution: resolution as i32,
        state: if c.resolution.is_some() { pb::ComplaintState::Resolved } else { pb::ComplaintState::Open } as i32,
        resolve_time,
        resolution_note: note,
        resolved_by: c.resolved_by.as_deref().unwrap_or_default().to_string(),
    }
}

/// A posting change for watchers.
pub fn posting_event_to_pb(e: &PostingEvent) -> pb::PostingEvent {
    pb::PostingEvent {
        posting_id: e.posting.to_string(),
        county_code: e.county,
        township_code: e.township.as_deref().unwrap_or_default().to_string(),
        state: posting_state_to_pb(e.state) as i32,
        version: e.version,
        remaining_slots: u32::from(e.remaining),
        event_time: Some(timestamp_to_pb(e.at)),
    }
}

/// An offer change for watchers.
pub fn offer_event_to_pb(e: &OfferEvent) -> pb::OfferEvent {
    pb::OfferEvent {
        offer_id: e.offer,
        posting_id: e.posting.to_string(),
        worker_id: e.worker.to_string(),
        county_code: e.county,
        state: offer_state_to_pb(e.state) as i32,
        distance_m: e.distance_m,
        event_time: Some(timestamp_to_pb(e.at)),
    }
}

/// A county's statistics.
pub fn county_stats_to_pb(s: &CountyStats) -> pb::CountyStatsResponse {
    let c = &s.counters;
    pb::CountyStatsResponse {
        county_code: s.county,
        waiting_by_trade: s
            .waiting_by_trade
            .iter()
            .map(|(trade, n)| pb::TradeCount { trade_id: trade.to_string(), waiting_workers: *n })
            .collect(),
        postings_by_state: s
            .postings_by_state
            .iter()
            .map(|(state, n)| pb::StateCount { state: posting_state_to_pb(*state) as i32, postings: *n })
            .collect(),
        registrations: c.registrations,
        offers_made: c.offers_made,
        offers_accepted: c.offers_accepted,
        offers_declined: c.offers_declined,
        offers_expired: c.offers_expired,
        postings_filled: c.postings_filled,
        hardship_placements: c.hardship_placements,
        completions: c.completions,
        no_shows: c.no_shows,
        complaints_filed: c.complaints_filed,
        complaints_resolved: c.complaints_resolved,
        median_time_to_fill: c
            .median_fill_secs()
            .map(|secs| prost_types::Duration { seconds: i64::try_from(secs).unwrap_or(i64::MAX), nanos: 0 }),
        time_to_fill_samples: c.fill_times_secs.len() as u32,
    }
}

// ---------------------------------------------------------------- directory

/// Parses a directory entry and adds the engine's verdict on its fields, under `field`.
fn market_spec(v: &mut Violations, rules: &Rules, field: &str, market: Option<&pb::Market>) -> MarketSpec {
    let default = pb::Market::default();
    let m = match market {
        Some(m) => m,
        None => {
            v.add(field, "required");
            &default
        }
    };
    let kind = required_enum(v, path(field, "kind"), m.kind, |k: pb::MarketKind| match k {
        pb::MarketKind::Unspecified => None,
        pb::MarketKind::CountyMarket => Some(MarketKind::CountyMarket),
        pb::MarketKind::TownshipStation => Some(MarketKind::TownshipStation),
    });
    let spec = MarketSpec {
        id: m.market_id.as_str().into(),
        county: m.county_code,
        township: optional_str(&m.township_code).map(Into::into),
        name: m.display_name.as_str().into(),
        kind: kind.unwrap_or(MarketKind::TownshipStation),
        address: m.address.as_str().into(),
        position: position(v, path(field, "position"), m.position.as_ref()),
        indoor_area_m2: m.indoor_area_m2,
        adapts_recruitment_hall: m.adapts_recruitment_hall,
        opening_hours: m.opening_hours.as_str().into(),
        hotline: m.hotline.as_str().into(),
        complaint_channel: m.complaint_channel.as_str().into(),
        trades: m.trade_ids.iter().take(MAX_MARKET_TRADES + 1).map(|t| t.as_str().into()).collect(),
    };
    rules.engine().market_spec(v, field, &spec);
    spec
}

/// `UpsertMarket` → the directory entry.
pub fn upsert_market_spec(rules: &Rules, req: &pb::UpsertMarketRequest) -> Result<MarketSpec, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    let spec = market_spec(&mut v, rules, "market", req.market.as_ref());
    finish(v, spec)
}

/// `RemoveMarket` → `RemoveMarket`.
pub fn remove_market_command(rules: &Rules, req: &pb::RemoveMarketRequest) -> Result<Command, InvalidRequest> {
    let mut v = Violations::default();
    request_id(&mut v, &req.request_id);
    checked(v, rules, Command::RemoveMarket { market: req.market_id.as_str().into() })
}

/// A directory entry.
pub fn market_to_pb(m: &MarketSpec) -> pb::Market {
    pb::Market {
        market_id: m.id.to_string(),
        county_code: m.county,
        township_code: m.township.as_deref().unwrap_or_default().to_string(),
        display_name: m.name.to_string(),
        kind: match m.kind {
            MarketKind::CountyMarket => pb::MarketKind::CountyMarket,
            MarketKind::TownshipStation => pb::MarketKind::TownshipStation,
        } as i32,
        address: m.address.to_string(),
        position: Some(position_to_pb(m.position, Crs::Wgs84)),
        indoor_area_m2: m.indoor_area_m2,
        adapts_recruitment_hall: m.adapts_recruitment_hall,
        opening_hours: m.opening_hours.to_string(),
        hotline: m.hotline.to_string(),
        complaint_channel: m.complaint_channel.to_string(),
        trade_ids: m.trades.iter().map(|t| t.to_string()).collect(),
    }
}

// ------------------------------------------------------------ ledger, standards

pub(crate) fn date(v: &mut Violations, field: &str, value: Option<&pb::Date>) -> LedgerDay {
    let Some(d) = value else {
        v.add(field, "required");
        return LedgerDay(0);
    };
    let day = (u32::try_from(d.month).ok(), u32::try_from(d.day).ok());
    match day {
        (Some(month), Some(day)) => LedgerDay::from_ymd(d.year, month, day),
        _ => None,
    }
    .unwrap_or_else(|| {
        v.add(field, format!("{}-{}-{} is not a date", d.year, d.month, d.day));
        LedgerDay(0)
    })
}

fn date_to_pb(day: LedgerDay) -> pb::Date {
    let (year, month, day) = day.ymd();
    pb::Date { year, month: month as i32, day: day as i32 }
}

fn duration_secs(secs: u64) -> prost_types::Duration {
    prost_types::Duration { seconds: i64::try_from(secs).unwrap_or(i64::MAX), nanos: 0 }
}

/// `CountyLedger` → (county, day).
pub fn county_ledger_request(rules: &Rules, req: &pb::CountyLedgerRequest) -> Result<(u32, LedgerDay), InvalidRequest> {
    let mut v = Violations::default();
    let code = county(&mut v, rules, "county_code".into(), req.county_code);
    let day = date(&mut v, "date", req.date.as_ref());
    finish(v, (code, day))
}

fn complaint_count_to_pb(c: &ComplaintLine) -> pb::ComplaintCount {
    pb::ComplaintCount {
        category: complaint_category_to_pb(c.category) as i32,
        filed: c.filed,
        resolved: c.resolved,
        median_time_to_resolve: c.median_resolve_secs.map(|s| duration_secs(s.into())),
    }
}

/// One county's ledger for one day.
pub fn ledger_to_pb(r: &LedgerReport) -> pb::CountyLedgerResponse {
    pb::CountyLedgerResponse {
        county_code: r.county,
        date: Some(date_to_pb(r.day)),
        registrations: r.registrations,
        waiting_by_trade: r
            .waiting_by_trade
            .iter()
            .map(|(trade, n)| pb::TradeCount { trade_id: trade.to_string(), waiting_workers: *n })
            .collect(),
        postings_by_state: r
            .postings_by_state
            .iter()
            .map(|(state, n)| pb::StateCount { state: posting_state_to_pb(*state) as i32, postings: *n })
            .collect(),
        postings_by_source: r
            .postings_by_source
            .iter()
            .map(|(source, n)| pb::SourceCount { source: posting_source_to_pb(*source) as i32, postings: *n })
            .collect(),
        instant_matches: r.instant_matches,
        offers_made: r.offers_made,
        placements: r.placements,
        hardship_placements: r.hardship_placements,
        hardship_share: r.hardship_share,
        postings_filled: r.postings_filled,
        postings_unfilled: r.postings_unfilled,
        fill_rate: r.fill_rate,
        median_time_to_fill: r.median_fill_secs.map(|s| duration_secs(s.into())),
        median_travel_distance_m: r.median_travel_m,
        no_shows: r.no_shows,
        complaints: r.complaints.iter().map(complaint_count_to_pb).collect(),
        active_hours: r.active_hours.iter().map(|&h| u32::from(h)).collect(),
    }
}

fn yuan(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The standards acceptance check and the city funds.
pub fn standards_to_pb(r: &StandardsReport) -> pb::StandardsReportResponse {
    pb::StandardsReportResponse {
        counties: r
            .counties
            .iter()
            .map(|c| pb::CountyCheck {
                county_code: c.county,
                county_name: c.name.to_string(),
                population: c.population,
                required_area_m2: c.required.m2,
                required_over: c.required.over,
                market_id: c.market.as_ref().map(|(id, _, _)| id.to_string()).unwrap_or_default(),
                indoor_area_m2: c.market.as_ref().map_or(0, |(_, area, _)| *area),
                verdict: match c.verdict {
                    Verdict::Pass => pb::Verdict::Pass,
                    Verdict::Fail => pb::Verdict::Fail,
                    Verdict::Missing => pb::Verdict::Missing,
                } as i32,
                reason: c.reason.clone(),
                employment_subsidy_yuan: yuan(c.employment_subsidy),
                special_fund_yuan: yuan(c.special_fund),
            })
            .collect(),
        totals: r
            .totals
            .iter()
            .map(|t| pb::FundTotal {
                fund: match t.fund {
                    Fund::EmploymentSubsidy => "employment_subsidy",
                    Fund::SpecialFiscalFund => "special_fiscal_fund",
                }
                .to_string(),
                computed_yuan: yuan(t.computed),
                stated_yuan: yuan(t.stated),
                explained_by_county_codes: t.explained_by.iter().map(|e| e.county).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use linggong_engine::EngineConfig;

    fn engine() -> Engine {
        Engine::linfen(EngineConfig::default())
    }

    fn good_worker() -> pb::Worker {
        pb::Worker {
            worker_id: "w-1".into(),
            display_name: "王师傅".into(),
            phone: "13812341234".into(),
            trades: vec![pb::TradeSkill { trade_id: "mason".into(), level: 3 }],
            position: Some(pb::LatLon { lat: 36.08, lon: 111.52, ..Default::default() }),
            county_code: 141002,
            hardship: pb::Hardship::None as i32,
            ..Default::default()
        }
    }

    fn good_posting() -> pb::Posting {
        pb::Posting {
            posting_id: "p-1".into(),
            employer_id: "e-1".into(),
            trade_id: "mason".into(),
            headcount: 2,
            position: Some(pb::LatLon { lat: 36.08, lon: 111.52, ..Default::default() }),
            county_code: 141002,
            max_distance_m: 10_000,
            daily_wage_yuan: 200,
            start_time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            duration_minutes: 480,
            source: pb::PostingSource::TownshipStation as i32,
            version: 1,
            ..Default::default()
        }
    }

    fn submit(posting: pb::Posting) -> Result<PostingSpec, InvalidRequest> {
        let e = engine();
        posting_spec_of(&Rules::of(&e), "r", Some(&posting))
    }

    fn register(worker: pb::Worker) -> Result<WorkerSpec, InvalidRequest> {
        let e = engine();
        register_worker_spec(
            &Rules::of(&e),
            &pb::RegisterWorkerRequest { request_id: String::new(), worker: Some(worker) },
        )
    }

    fn viewer(role: Role, counties: Vec<u32>) -> Principal {
        Principal { name: "t".into(), role, counties, township: None, person_id: None }
    }

    #[test]
    fn a_valid_posting_converts_field_by_field() {
        let spec = submit(good_posting()).unwrap();
        assert_eq!(spec.id, "p-1");
        assert_eq!(spec.headcount, 2);
        assert_eq!(spec.county, 141002);
        assert_eq!(spec.township, None);
        assert_eq!(spec.start, Timestamp(1_700_000_000_000));
        assert_eq!(spec.source, PostingSource::TownshipStation);
    }

    #[test]
    fn every_bad_posting_field_is_named() {
        let bad = pb::Posting {
            headcount: 51,
            position: Some(pb::LatLon { lat: f64::NAN, lon: 111.0, ..Default::default() }),
            county_code: 999_999,
            trade_id: "astronaut".into(),
            posting_id: "has space".into(),
            description: "x".repeat(2001),
            start_time: None,
            version: 0,
            ..good_posting()
        };
        let err = submit(bad).unwrap_err();
        for field in [
            "posting.headcount",
            "posting.position",
            "posting.county_code",
            "posting.trade_id",
            "posting.posting_id",
            "posting.description",
            "posting.start_time",
            "posting.version",
        ] {
            assert!(err.names(field), "{field} not reported in {err}");
        }
        assert_eq!(err.violations.len(), 8, "{err}");
        assert!(submit(pb::Posting { headcount: 0, ..good_posting() }).unwrap_err().names("posting.headcount"));
        assert!(submit(pb::Posting { headcount: 50, ..good_posting() }).is_ok());
    }

    #[test]
    fn missing_message_and_out_of_range_times_are_rejected() {
        let e = engine();
        let err = posting_spec_of(&Rules::of(&e), "", None).unwrap_err();
        assert!(err.names("posting"));
        let far = prost_types::Timestamp { seconds: i64::MAX, nanos: 0 };
        assert!(submit(pb::Posting { start_time: Some(far), ..good_posting() })
            .unwrap_err()
            .names("posting.start_time"));
        let bad_nanos = prost_types::Timestamp { seconds: 0, nanos: -1 };
        let err = submit(pb::Posting { start_time: Some(bad_nanos), ..good_posting() }).unwrap_err();
        assert!(err.names("posting.start_time"));
    }

    #[test]
    fn unspecified_and_unknown_enums_are_rejected() {
        let err = submit(pb::Posting { source: pb::PostingSource::Unspecified as i32, ..good_posting() }).unwrap_err();
        assert!(err.names("posting.source"));
        let err = submit(pb::Posting { source: 42, ..good_posting() }).unwrap_err();
        assert_eq!(err.violations[0].description, "unknown value 42");
        let err = register(pb::Worker { hardship: 0, ..good_worker() }).unwrap_err();
        assert!(err.names("worker.hardship"), "{err}");
        let e = engine();
        let req = pb::RespondToOfferRequest { offer_id: 1, worker_id: "w".into(), ..Default::default() };
        assert!(respond_to_offer_command(&Rules::of(&e), &req).unwrap_err().names("response"));
        let req = pb::ReviewPostingRequest { posting_id: "p".into(), decision: 7, ..Default::default() };
        assert!(review_posting_command(&Rules::of(&e), &req).unwrap_err().names("decision"));
        // In a list filter UNSPECIFIED means any, but an unknown number is still refused.
        let list = pb::ListPostingsRequest { state: 0, ..Default::default() };
        assert_eq!(list_postings_request(&Rules::of(&e), &list).unwrap().0.state, None);
        let list = pb::ListPostingsRequest { state: 99, ..Default::default() };
        assert!(list_postings_request(&Rules::of(&e), &list).unwrap_err().names("state"));
    }

    #[test]
    fn worker_trades_are_checked_one_by_one() {
        let w = pb::Worker {
            trades: vec![
                pb::TradeSkill { trade_id: "mason".into(), level: 3 },
                pb::TradeSkill { trade_id: "mason".into(), level: 6 },
                pb::TradeSkill { trade_id: "nope".into(), level: 1 },
            ],
            ..good_worker()
        };
        let err = register(w).unwrap_err();
        assert!(err.names("worker.trades[1].trade_id"), "{err}");
        assert!(err.names("worker.trades[1].level"), "{err}");
        assert!(err.names("worker.trades[2].trade_id"), "{err}");
        assert!(register(pb::Worker { trades: vec![], ..good_worker() }).unwrap_err().names("worker.trades"));
        assert!(register(pb::Worker { phone: "call me".into(), ..good_worker() }).unwrap_err().names("worker.phone"));
        assert!(register(pb::Worker { display_name: "  ".into(), ..good_worker() })
            .unwrap_err()
            .names("worker.display_name"));
        let empty_window = pb::TimeWindow {
            start_time: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
            end_time: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
        };
        let err = register(pb::Worker { availability: Some(empty_window), ..good_worker() }).unwrap_err();
        assert!(err.names("worker.availability"));
        let spec = register(good_worker()).unwrap();
        assert_eq!(spec.availability, Availability::ALWAYS);
        assert_eq!(spec.trades[0], TradeSkillSpec { trade: "mason".into(), level: 3 });
    }

    #[test]
    fn request_ids_and_offer_ids_are_checked() {
        let e = engine();
        let rules = Rules::of(&e);
        let err = offer_step_command(&Rules::of(&e), OfferStep::CompleteJob, &"r".repeat(65), 0).unwrap_err();
        assert!(err.names("request_id") && err.names("offer_id"), "{err}");
        assert_eq!(
            offer_step_command(&Rules::of(&e), OfferStep::ReportNoShow, "retry-1", 7).unwrap(),
            Command::ReportNoShow { offer: 7 }
        );
        let req = pb::SetAvailabilityRequest {
            worker_id: "w".into(),
            available: false,
            window: Some(pb::TimeWindow::default()),
            ..Default::default()
        };
        assert!(set_availability_command(&rules, &req).unwrap_err().names("window"));
        let req = pb::InstantMatchRequest { posting_id: "p".into(), max_offers: 51, ..Default::default() };
        assert!(instant_match_command(&rules, &req).unwrap_err().names("max_offers"));
    }

    #[test]
    fn employers_need_a_credit_code_only_as_companies() {
        let e = engine();
        let rules = Rules::of(&e);
        let company = pb::Employer {
            employer_id: "e".into(),
            display_name: "临汾建工".into(),
            kind: pb::EmployerKind::Company as i32,
            credit_code: "91141000MA0K123456".into(),
            ..Default::default()
        };
        let req = |employer| pb::UpsertEmployerRequest { request_id: String::new(), employer: Some(employer) };
        assert!(upsert_employer_spec(&rules, &req(company.clone())).is_ok());
        let bad = pb::Employer { credit_code: "short".into(), ..company.clone() };
        assert!(upsert_employer_spec(&rules, &req(bad)).unwrap_err().names("employer.credit_code"));
        let person = pb::Employer { kind: pb::EmployerKind::Individual as i32, ..company };
        assert!(upsert_employer_spec(&rules, &req(person)).unwrap_err().names("employer.credit_code"));
    }

    #[test]
    fn phones_are_masked_outside_the_viewers_scope() {
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("+86 138 1234 5678"), "+86**********5678");
        assert_eq!(mask_phone("12345"), "***45");
        assert_eq!(mask_phone("1234"), "****");
        assert_eq!(mask_phone(""), "");
        let mut e = engine();
        let spec = register(good_worker()).unwrap();
        e.apply(Timestamp(1_700_000_000_000), &Command::UpsertWorker(spec), &mut Vec::new()).unwrap();
        let w = e.worker("w-1").unwrap();
        let own = viewer(Role::County, vec![141002]);
        let other = viewer(Role::County, vec![141081]);
        assert_eq!(worker_to_pb(&e, w, &own).phone, "13812341234");
        assert_eq!(worker_to_pb(&e, w, &other).phone, "138****1234");
        assert_eq!(worker_to_pb(&e, w, &viewer(Role::Operator, vec![])).phone, "13812341234");
        let offer = MatchedOffer {
            offer: 1,
            worker: "w-1".into(),
            posting: "p".into(),
            distance_m: 5,
            deadline: Timestamp(1_700_000_300_000),
        };
        let pb_offer = offer_to_pb(&e, &offer, &other);
        assert_eq!(pb_offer.worker_phone, "138****1234");
        assert_eq!(pb_offer.worker_display_name, "王师傅");
        assert_eq!(pb_offer.answer_deadline.unwrap().seconds, 1_700_000_300);
    }

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_filters() {
        let e = engine();
        let rules = Rules::of(&e);
        let req = pb::ListPostingsRequest { county_code: 141002, page_size: 10, ..Default::default() };
        let (filter, page) = list_postings_request(&rules, &req).unwrap();
        assert_eq!((filter.county, page.start, page.size), (Some(141002), 0, 10));
        let next = pb::ListPostingsRequest { page_token: page_token(37, page.fingerprint), ..req.clone() };
        assert_eq!(list_postings_request(&rules, &next).unwrap().1.start, 37);
        let other_filter = pb::ListPostingsRequest { county_code: 141081, ..next.clone() };
        assert!(list_postings_request(&rules, &other_filter).unwrap_err().names("page_token"));
        let garbage = pb::ListPostingsRequest { page_token: "zz".into(), ..req.clone() };
        assert!(list_postings_request(&rules, &garbage).unwrap_err().names("page_token"));
        let huge = pb::ListPostingsRequest { page_size: i32::MAX, ..req.clone() };
        assert_eq!(list_postings_request(&rules, &huge).unwrap().1.size, MAX_PAGE_SIZE);
        let negative = pb::ListPostingsRequest { page_size: -1, ..req };
        assert!(list_postings_request(&rules, &negative).unwrap_err().names("page_size"));
    }

    #[test]
    fn timestamps_convert_both_ways_including_before_1970() {
        assert_eq!(timestamp_to_pb(Timestamp(-1)), prost_types::Timestamp { seconds: -1, nanos: 999_000_000 });
        let mut v = Violations::default();
        let t = timestamp(&mut v, "t".into(), &prost_types::Timestamp { seconds: -1, nanos: 999_000_000 });
        assert_eq!(t, Timestamp(-1));
        assert!(v.is_empty());
    }
}

/// A `SetMatchingPolicy` request's policy file, parsed and validated by the
/// policy lab's reader (every problem reported), as the two engine policies.
pub fn matching_policy(
    regions: &linggong_engine::Regions,
    req: &pb::SetMatchingPolicyRequest,
) -> Result<(linggong_engine::RankingPolicy, linggong_engine::BatchPolicy), InvalidRequest> {
    let file = linggong_lab::PolicyFile::parse(&req.policy_toml, "policy_toml", "policy", regions)
        .map_err(|e| InvalidRequest::single("policy_toml", e.to_string()))?;
    let batch = file.batch.engine_policy();
    Ok((file.ranking, batch))
}

/// The policy in force.
pub fn matching_policy_to_pb(config: &linggong_engine::EngineConfig) -> pb::MatchingPolicy {
    let r = &config.policy;
    pb::MatchingPolicy {
        hardship_bonus_m: r.hardship_bonus_m,
        waiting_bonus_m_per_hour: r.waiting_bonus_m_per_hour,
        waiting_bonus_cap_m: r.waiting_bonus_cap_m,
        reliability_bonus_m: r.reliability_bonus_m,
        batch_window_ms: config.batch.window_ms,
        batch_counties: config.batch.counties.clone(),
    }
}
