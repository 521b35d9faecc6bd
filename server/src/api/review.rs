//! `ReviewService`: posting review (用工信息审核), complaints (投诉举报) and
//! employer standing. Callers: reviewers and operators.

use super::posting::list_page;
use super::{errors, lookups, Api, Caller};
use crate::auth::Role;
use crate::convert::api::{self as convert, Rules};
use crate::convert::crs::{response_crs, InCrs};
use crate::proto::v1 as pb;
use linggong_engine::{Command, Outcome};
use tonic::{Request, Response, Status};

const REVIEWERS: &[Role] = &[Role::Reviewer, Role::Operator];

impl Api {
    /// Validates a review-service command (after the role check).
    fn review_command(
        &self,
        caller: &Caller,
        convert: impl FnOnce(&Rules) -> Result<Command, convert::InvalidRequest>,
    ) -> Result<Command, Status> {
        caller.require_role(REVIEWERS)?;
        self.ctx.host.read_engine(|e| convert(&Rules::of(e))).map_err(|e| errors::invalid_request(&e))
    }

    /// The employer as it stands, for the response to a write.
    async fn read_employer(&self, employer_id: &str) -> Result<pb::Employer, Status> {
        self.answer_after_write(|e| e.employer(employer_id).map(convert::employer_to_pb))
            .await?
            .ok_or_else(|| errors::vanished("employer"))
    }

    /// The complaint as it stands, for the response to a write.
    async fn read_complaint(&self, complaint_id: u64) -> Result<pb::Complaint, Status> {
        self.answer_after_write(|e| e.complaint(complaint_id).map(|c| convert::complaint_to_pb(e, c)))
            .await?
            .ok_or_else(|| errors::vanished("complaint"))
    }
}

#[tonic::async_trait]
impl pb::review_service_server::ReviewService for Api {
    async fn list_pending_postings(
        &self,
        request: Request<pb::ListPendingPostingsRequest>,
    ) -> Result<Response<pb::ListPendingPostingsResponse>, Status> {
        self.call("ListPendingPostings", request, |caller, req| async move {
            caller.require_role(REVIEWERS)?;
            let crs = response_crs("response_crs", req.response_crs).map_err(|e| errors::invalid_request(&e))?;
            let (postings, next_page_token) = self
                .read_answer(|e| {
                    let (filter, page) = convert::list_pending_postings_request(&Rules::of(e), &req)?;
                    Ok(list_page(e, &filter, page))
                })
                .await?
                .map_err(|e| errors::invalid_request(&e))?;
            Ok(pb::ListPendingPostingsResponse { postings: postings.in_crs(crs), next_page_token })
        })
        .await
    }

    async fn review_posting(
        &self,
        request: Request<pb::ReviewPostingRequest>,
    ) -> Result<Response<pb::ReviewPostingResponse>, Status> {
        self.call("ReviewPosting", request, |caller, req| async move {
            let command = self.review_command(&caller, |r| convert::review_posting_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            match applied.outcome {
                Outcome::PostingChanged { .. } => {
                    Ok(pb::ReviewPostingResponse { posting: Some(self.read_posting(&req.posting_id).await?) })
                }
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn file_complaint(
        &self,
        request: Request<pb::FileComplaintRequest>,
    ) -> Result<Response<pb::FileComplaintResponse>, Status> {
        self.call("FileComplaint", request, |caller, req| async move {
            let command = self.review_command(&caller, |r| convert::file_complaint_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            match applied.outcome {
                Outcome::ComplaintFiled { complaint } => {
                    Ok(pb::FileComplaintResponse { complaint: Some(self.read_complaint(complaint).await?) })
                }
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn resolve_complaint(
        &self,
        request: Request<pb::ResolveComplaintRequest>,
    ) -> Result<Response<pb::ResolveComplaintResponse>, Status> {
        self.call("ResolveComplaint", request, |caller, req| async move {
            let command = self.review_command(&caller, |r| convert::resolve_complaint_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            match applied.outcome {
                Outcome::ComplaintResolved => {
                    Ok(pb::ResolveComplaintResponse { complaint: Some(self.read_complaint(req.complaint_id).await?) })
                }
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn suspend_employer(
        &self,
        request: Request<pb::SuspendEmployerRequest>,
    ) -> Result<Response<pb::SuspendEmployerResponse>, Status> {
        self.call("SuspendEmployer", request, |caller, req| async move {
            let command = self.review_command(&caller, |r| convert::suspend_employer_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            match applied.outcome {
                Outcome::EmployerStatusChanged { offers_withdrawn, .. } => Ok(pb::SuspendEmployerResponse {
                    employer: Some(self.read_employer(&req.employer_id).await?),
                    offers_withdrawn,
                }),
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn reinstate_employer(
        &self,
        request: Request<pb::ReinstateEmployerRequest>,
    ) -> Result<Response<pb::ReinstateEmployerResponse>, Status> {
        self.call("ReinstateEmployer", request, |caller, req| async move {
            let command = self.review_command(&caller, |r| convert::reinstate_employer_command(r, &req))?;
            let applied = self.submit(&caller, &req.request_id, command).await?;
            match applied.outcome {
                Outcome::EmployerStatusChanged { .. } => {
                    Ok(pb::ReinstateEmployerResponse { employer: Some(self.read_employer(&req.employer_id).await?) })
                }
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn upsert_employer(
        &self,
        request: Request<pb::UpsertEmployerRequest>,
    ) -> Result<Response<pb::UpsertEmployerResponse>, Status> {
        self.call("UpsertEmployer", request, |caller, req| async move {
            caller.require_role(REVIEWERS)?;
            let spec = self
                .ctx
                .host
                .read_engine(|e| convert::upsert_employer_spec(&Rules::of(e), &req))
                .map_err(|e| errors::invalid_request(&e))?;
            let id = spec.id.clone();
            let applied = self.submit(&caller, &req.request_id, Command::UpsertEmployer(spec)).await?;
            match applied.outcome {
                Outcome::EmployerUpserted { created } => {
                    Ok(pb::UpsertEmployerResponse { created, employer: Some(self.read_employer(&id).await?) })
                }
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Result<Response<pb::GetComplaintResponse>, Status> {
        self.call("GetComplaint", request, |caller, req| async move {
            let complaint = lookups::get_complaint(&self.ctx.host, &caller, &req).await?;
            Ok(pb::GetComplaintResponse { complaint: Some(complaint) })
        })
        .await
    }

    async fn list_complaints(
        &self,
        request: Request<pb::ListComplaintsRequest>,
    ) -> Result<Response<pb::ListComplaintsResponse>, Status> {
        self.call("ListComplaints", request, |caller, req| async move {
            lookups::list_complaints(&self.ctx.host, &caller, &req).await
        })
        .await
    }

    async fn get_employer(
        &self,
        request: Request<pb::GetEmployerRequest>,
    ) -> Result<Response<pb::GetEmployerResponse>, Status> {
        self.call("GetEmployer", request, |caller, req| async move {
            let employer = lookups::get_employer(&self.ctx.host, &caller, &req).await?;
            Ok(pb::GetEmployerResponse { employer: Some(employer) })
        })
        .await
    }

    async fn list_employers(
        &self,
        request: Request<pb::ListEmployersRequest>,
    ) -> Result<Response<pb::ListEmployersResponse>, Status> {
        self.call("ListEmployers", request, |caller, req| async move {
            lookups::list_employers(&self.ctx.host, &caller, &req).await
        })
        .await
    }
}
