//! The public gRPC API (`linggong.v1`): worker, posting, match, review,
//! directory and statistics services over the engine host.
//!
//! Every RPC goes through [`Api::call`], which authenticates the bearer token,
//! opens a tracing span carrying a request id (the client's `request_id`, an
//! `x-request-id` header, or a generated one), and records the RPC's status
//! code and latency. Handlers check the caller's role first, then validate
//! the request (all field conversions live in [`crate::convert::api`]), then
//! the caller's county or township scope, and only then submit to the host.
//! Writes carry the client's `request_id`, scoped by caller and RPC, as the
//! host's idempotency key.

// Handlers return `tonic::Status` as every tonic service does; boxing it would
// only move the allocation.
#![allow(clippy::result_large_err)]

mod audit;
mod directory;
pub mod errors;
mod lookups;
mod matching;
mod posting;
mod review;
mod stats;
mod watch;
mod worker;
mod zh;

#[cfg(test)]
mod tests;

use crate::auth::{Auth, AuthRefusal, Principal, Role};
use crate::convert::wal::Actor;
use crate::host::Host;
use crate::metrics::RpcMetrics;
use crate::proto::v1 as pb;
use crate::state::Applied;
use linggong_engine::Command;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

/// Largest request message accepted, bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Metadata key carrying the request id back to the client (and accepted from it).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What the API serves from.
pub struct ApiContext {
    /// The engine host.
    pub host: Arc<Host>,
    /// Token table.
    pub auth: Arc<Auth>,
    /// Per-RPC counters and latency histograms.
    pub rpc_metrics: Arc<RpcMetrics>,
}

/// The seven services, ready to be served (`Server::builder().add_routes(..)`).
pub fn routes(ctx: Arc<ApiContext>) -> Routes {
    let api = Arc::new(Api { ctx });
    Routes::new(
        pb::worker_service_server::WorkerServiceServer::from_arc(api.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(
        pb::posting_service_server::PostingServiceServer::from_arc(api.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(
        pb::match_service_server::MatchServiceServer::from_arc(api.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(
        pb::review_service_server::ReviewServiceServer::from_arc(api.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(
        pb::directory_service_server::DirectoryServiceServer::from_arc(api.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(
        pb::stats_service_server::StatsServiceServer::from_arc(api.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(
        pb::audit_service_server::AuditServiceServer::from_arc(api).max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
}

/// Implements every service trait.
pub(crate) struct Api {
    ctx: Arc<ApiContext>,
}

/// The authenticated caller of one RPC.
pub(crate) struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// Name of the RPC, as logged and measured.
    pub rpc: &'static str,
}

impl Caller {
    /// PERMISSION_DENIED unless the caller's role is one of `allowed`.
    fn require_role(&self, allowed: &[Role]) -> Result<(), Status> {
        if allowed.contains(&self.principal.role) {
            return Ok(());
        }
        Err(errors::permission_denied(format!(
            "token `{}` has role {}, which may not call {}",
            self.principal.name,
            role_name(self.principal.role),
            self.rpc
        )))
    }

    /// PERMISSION_DENIED unless the caller's scope covers the county.
    fn require_county(&self, county: u32) -> Result<(), Status> {
        if self.principal.covers_county(county) {
            return Ok(());
        }
        Err(errors::permission_denied(format!(
            "county {county} is outside the scope of token `{}`",
            self.principal.name
        )))
    }

    /// Like [`Caller::require_county`], and a station only in its own township.
    fn require_place(&self, county: u32, township: Option<&str>) -> Result<(), Status> {
        if self.principal.role != Role::Station {
            return self.require_county(county);
        }
        if self.principal.counties.contains(&county) && township == self.principal.township.as_deref() {
            return Ok(());
        }
        Err(errors::permission_denied(format!(
            "station `{}` may act only in county {} township {}",
            self.principal.name,
            self.principal.counties.first().copied().unwrap_or_default(),
            self.principal.township.as_deref().unwrap_or("-")
        )))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::County => "county",
        Role::Station => "station",
        Role::Reviewer => "reviewer",
        Role::Operator => "operator",
    }
}

/// Requests that may carry a client request id.
pub(crate) trait ClientRequestId {
    /// The client's `request_id`, empty when none.
    fn client_request_id(&self) -> &str {
        ""
    }
}

macro_rules! with_request_id {
    ($($t:ty),* $(,)?) => {$(
        impl ClientRequestId for $t {
            fn client_request_id(&self) -> &str {
                &self.request_id
            }
        }
    )*};
}

macro_rules! without_request_id {
    ($($t:ty),* $(,)?) => {$( impl ClientRequestId for $t {} )*};
}

with_request_id!(
    pb::RegisterWorkerRequest,
    pb::UpdateWorkerLocationRequest,
    pb::SetAvailabilityRequest,
    pb::WithdrawWorkerRequest,
    pb::SubmitPostingRequest,
    pb::UpdatePostingRequest,
    pb::CancelPostingRequest,
    pb::InstantMatchRequest,
    pb::RespondToOfferRequest,
    pb::ConfirmArrivalRequest,
    pb::CompleteJobRequest,
    pb::ReportNoShowRequest,
    pb::ReviewPostingRequest,
    pb::FileComplaintRequest,
    pb::ResolveComplaintRequest,
    pb::SuspendEmployerRequest,
    pb::ReinstateEmployerRequest,
    pb::UpsertEmployerRequest,
    pb::UpsertMarketRequest,
    pb::RemoveMarketRequest,
    pb::SetMatchingPolicyRequest,
);

without_request_id!(
    pb::GetWorkerRequest,
    pb::GetPostingRequest,
    pb::ListPostingsRequest,
    pb::WatchPostingsRequest,
    pb::WatchOffersRequest,
    pb::ListPendingPostingsRequest,
    pb::CountyStatsRequest,
    pb::CountyLedgerRequest,
    pb::StandardsReportRequest,
    pb::ListMarketsRequest,
    pb::GetComplaintRequest,
    pb::ListComplaintsRequest,
    pb::GetEmployerRequest,
    pb::ListEmployersRequest,
    pb::FindWorkersByPhoneRequest,
    pb::ListPostingOffersRequest,
    pb::ExportLedgerRequest,
    pb::GetHistoryRequest,
    pb::GetMatchingPolicyRequest,
);

/// A usable id for logs: printable ASCII without spaces, at most 64 bytes.
fn loggable(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())).then_some(id)
}

/// The request id of a call, for logs: the client's, else an `x-request-id`
/// header, else a generated one.
fn log_request_id(metadata: &MetadataMap, client: &str) -> String {
    if let Some(id) = loggable(client) {
        return id.to_string();
    }
    if let Some(id) = metadata.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).and_then(loggable) {
        return id.to_string();
    }
    format!("srv-{:016x}", rand::random::<u64>())
}

/// Log level by status: client mistakes are `info`, server trouble `warn`.
fn log_finished(code: Code, elapsed_ms: f64, status: Option<&Status>) {
    let message = status.map(|s| s.message()).unwrap_or_default();
    match code {
        Code::Ok => tracing::debug!(code = ?code, elapsed_ms, "rpc finished"),
        Code::Internal | Code::Unavailable | Code::ResourceExhausted | Code::Unknown | Code::DataLoss => {
            tracing::warn!(code = ?code, elapsed_ms, error = message, "rpc failed")
        }
        _ => tracing::info!(code = ?code, elapsed_ms, error = message, "rpc refused"),
    }
}

impl Api {
    /// Runs one RPC: authentication, span with request id, metrics, logging.
    async fn call<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        request: Request<Req>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: ClientRequestId,
        F: FnOnce(Caller, Req) -> Fut,
        Fut: Future<Output = Result<Resp, Status>>,
    {
        let started = Instant::now();
        let request_id = log_request_id(request.metadata(), request.get_ref().client_request_id());
        let span = tracing::info_span!("rpc", rpc, request_id = %request_id, caller = tracing::field::Empty);
        let result = async {
            let principal = self.authenticate(request.metadata())?;
            tracing::Span::current().record("caller", principal.name.as_str());
            handler(Caller { principal, rpc }, request.into_inner()).await
        }
        .instrument(span.clone())
        .await;
        let elapsed = started.elapsed();
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        self.ctx.rpc_metrics.record(rpc, code, elapsed);
        span.in_scope(|| log_finished(code, elapsed.as_secs_f64() * 1e3, result.as_ref().err()));
        let echo = MetadataValue::try_from(request_id.as_str()).ok();
        match result {
            Ok(body) => {
                let mut response = Response::new(body);
                if let Some(v) = echo {
                    response.metadata_mut().insert(REQUEST_ID_HEADER, v);
                }
                Ok(response)
            }
            Err(status) => {
                let mut status = errors::localized(status);
                if let Some(v) = echo {
                    status.metadata_mut().insert(REQUEST_ID_HEADER, v);
                }
                Err(status)
            }
        }
    }

    /// The caller of a request, from its `authorization: Bearer <token>` metadata.
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let Some(value) = metadata.get("authorization") else {
            return Err(errors::unauthenticated("missing `authorization: Bearer <token>` metadata"));
        };
        let value = value.to_str().map_err(|_| errors::unauthenticated("malformed authorization metadata"))?;
        self.ctx.auth.authenticate(value).map_err(|refusal| match refusal {
            AuthRefusal::Unknown => errors::unauthenticated("unknown token"),
            AuthRefusal::RateLimited { name, retry_after } => errors::rate_limited(&name, retry_after),
        })
    }

    /// Reads the engine for an answer: returned once everything it shows is
    /// durable (see [`Host::read_durable`]).
    async fn read_answer<R>(&self, f: impl FnOnce(&linggong_engine::Engine) -> R) -> Result<R, Status> {
        self.ctx.host.read_durable(f).await.map_err(|e| errors::submit_status(&e))
    }

    /// Reads the engine for the answer to the caller's write, after
    /// [`Api::submit`] returned (see [`Host::read_after_write`]).
    async fn answer_after_write<R>(&self, f: impl FnOnce(&linggong_engine::Engine) -> R) -> Result<R, Status> {
        self.ctx.host.read_after_write(f).await.map_err(|e| errors::submit_status(&e))
    }

    /// Submits a command; a non-empty `request_id` makes it idempotent per caller and RPC.
    async fn submit(&self, caller: &Caller, request_id: &str, command: Command) -> Result<Applied, Status> {
        let key = (!request_id.is_empty()).then(|| format!("{}/{}/{}", caller.principal.name, caller.rpc, request_id));
        let actor = Actor {
            name: caller.principal.name.clone(),
            person_id: caller.principal.person_id.clone(),
            role: role_name(caller.principal.role).to_string(),
        };
        self.ctx.host.submit_by(Some(actor), key, command).await.map_err(|e| errors::submit_status(&e))
    }
}
