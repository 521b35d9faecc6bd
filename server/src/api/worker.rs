//! `WorkerService`: register (upsert), move, availability, withdraw and read
//! workers. County systems act on workers of their counties; reviewers and
//! operators may read; phones are masked outside the caller's scope.

use super::{errors, lookups, Api, Caller};
use crate::auth::Role;
use crate::convert::api::{self as convert, Rules};
use crate::convert::crs::{response_crs, InCrs};
use crate::proto::v1 as pb;
use linggong_engine::{Command, Engine, Outcome};
use tonic::{Request, Response, Status};

const WRITERS: &[Role] = &[Role::County, Role::Operator];
const READERS: &[Role] = &[Role::County, Role::Reviewer, Role::Operator];

/// County code of a worker, if registered.
pub(crate) fn worker_county(engine: &Engine, worker_id: &str) -> Option<u32> {
    engine.worker(worker_id).map(|w| engine.regions().get(w.county).code)
}

impl Api {
    /// Validates a command about one existing worker and checks the caller's
    /// scope over the worker's county (an unknown worker is left to the
    /// engine, which answers NOT_FOUND, or to the host, which answers a retry).
    fn worker_command(
        &self,
        caller: &Caller,
        worker_id: &str,
        convert: impl FnOnce(&Rules) -> Result<Command, convert::InvalidRequest>,
    ) -> Result<Command, Status> {
        caller.require_role(WRITERS)?;
        let (command, county) = self.ctx.host.read_engine(|e| (convert(&Rules::of(e)), worker_county(e, worker_id)));
        let command = command.map_err(|e| errors::invalid_request(&e))?;
        if let Some(county) = county {
            caller.require_county(county)?;
        }
        Ok(command)
    }

    async fn updated_worker(
        &self,
        caller: &Caller,
        outcome: Outcome,
    ) -> Result<(pb::WorkerStatus, Option<pb::Offer>), Status> {
        match outcome {
            Outcome::WorkerUpdated { status, offer } => {
                let offer =
                    self.answer_after_write(|e| offer.map(|o| convert::offer_to_pb(e, &o, &caller.principal))).await?;
                Ok((convert::worker_status_to_pb(status), offer))
            }
            other => Err(errors::unexpected_outcome(caller.rpc, &other)),
        }
    }
}

#[tonic::async_trait]
impl pb::worker_service_server::WorkerService for Api {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        self.call("RegisterWorker", request, |caller, req| async move {
            caller.require_role(WRITERS)?;
            let (spec, existing_county) = self.ctx.host.read_engine(|e| {
                let spec = convert::register_worker_spec(&Rules::of(e), &req);
                let existing = spec.as_ref().ok().and_then(|s| worker_county(e, &s.id));
                (spec, existing)
            });
            let spec = spec.map_err(|e| errors::invalid_request(&e))?;
            caller.require_county(spec.county)?;
            if let Some(county) = existing_county {
                caller.require_county(county)?;
            }
            let worker_id = spec.id.clone();
            let applied = self.submit(&caller, &req.request_id, Command::UpsertWorker(spec)).await?;
            let Outcome::WorkerUpserted { created, offer } = applied.outcome else {
                return Err(errors::unexpected_outcome(caller.rpc, &applied.outcome));
            };
            let (worker, offer) = self
                .answer_after_write(|e| {
                    (
                        e.worker(&worker_id).map(|w| convert::worker_to_pb(e, w, &caller.principal)),
                        offer.map(|o| convert::offer_to_pb(e, &o, &caller.principal)),
                    )
                })
                .await?;
            let worker = worker.ok_or_else(|| errors::vanished("worker"))?;
            Ok(pb::RegisterWorkerResponse { created, worker: Some(worker), offer })
        })
        .await
    }

    async fn update_worker_location(
        &self,
        request: Request<pb::UpdateWorkerLocationRequest>,
    ) -> Result<Response<pb::UpdateWorkerLocationResponse>, Status> {
        self.call("UpdateWorkerLocation", request, |caller, req| async move {
            let command =
                self.worker_command(&caller, &req.worker_id, |r| convert::update_worker_location_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            let (status, offer) = self.updated_worker(&caller, applied.outcome).await?;
            Ok(pb::UpdateWorkerLocationResponse { status: status as i32, offer })
        })
        .await
    }

    async fn set_availability(
        &self,
        request: Request<pb::SetAvailabilityRequest>,
    ) -> Result<Response<pb::SetAvailabilityResponse>, Status> {
        self.call("SetAvailability", request, |caller, req| async move {
            let command =
                self.worker_command(&caller, &req.worker_id, |r| convert::set_availability_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            let (status, offer) = self.updated_worker(&caller, applied.outcome).await?;
            Ok(pb::SetAvailabilityResponse { status: status as i32, offer })
        })
        .await
    }

    async fn withdraw_worker(
        &self,
        request: Request<pb::WithdrawWorkerRequest>,
    ) -> Result<Response<pb::WithdrawWorkerResponse>, Status> {
        self.call("WithdrawWorker", request, |caller, req| async move {
            let command =
                self.worker_command(&caller, &req.worker_id, |r| convert::withdraw_worker_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            match applied.outcome {
                Outcome::WorkerWithdrawn { late_cancellation } => Ok(pb::WithdrawWorkerResponse { late_cancellation }),
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn get_worker(
        &self,
        request: Request<pb::GetWorkerRequest>,
    ) -> Result<Response<pb::GetWorkerResponse>, Status> {
        self.call("GetWorker", request, |caller, req| async move {
            caller.require_role(READERS)?;
            let crs = response_crs("response_crs", req.response_crs).map_err(|e| errors::invalid_request(&e))?;
            let found = self
                .read_answer(|e| {
                    let id = convert::checked_id(&Rules::of(e), "worker_id", &req.worker_id)?;
                    Ok(e.worker(id).map(|w| convert::worker_to_pb(e, w, &caller.principal)))
                })
                .await?;
            let found = found.map_err(|e| errors::invalid_request(&e))?;
            let worker = found.ok_or_else(|| errors::not_found(format!("unknown worker `{}`", req.worker_id)))?;
            Ok(pb::GetWorkerResponse { worker: Some(worker.in_crs(crs)) })
        })
        .await
    }

    async fn find_workers_by_phone(
        &self,
        request: Request<pb::FindWorkersByPhoneRequest>,
    ) -> Result<Response<pb::FindWorkersByPhoneResponse>, Status> {
        self.call("FindWorkersByPhone", request, |caller, req| async move {
            let workers = lookups::find_workers_by_phone(&self.ctx.host, &caller, &req).await?;
            Ok(pb::FindWorkersByPhoneResponse { workers })
        })
        .await
    }
}
