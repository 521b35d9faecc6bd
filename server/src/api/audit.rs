//! `AuditService`: the history of one worker, posting, employer or complaint
//! from the write-ahead log (who did what, when, with what outcome), or in
//! cluster mode from the member's history log (`raft/history_log.rs`). The
//! log is read on a blocking thread, never under the state lock.

use super::{errors, Api, Caller};
use crate::auth::Role;
use crate::convert::api::timestamp_to_pb;
use crate::history::{history, Subject};
use crate::proto::v1 as pb;
use std::path::PathBuf;
use tonic::{Request, Response, Status};

const READERS: &[Role] = &[Role::County, Role::Reviewer, Role::Operator];

fn subject(req: &pb::GetHistoryRequest) -> Result<Subject, Status> {
    use pb::get_history_request::Subject as S;
    let bad =
        |field: &str, why: &str| errors::invalid_request(&crate::convert::api::InvalidRequest::single(field, why));
    match &req.subject {
        None => Err(bad("subject", "one of worker_id, posting_id, employer_id, complaint_id is required")),
        Some(S::WorkerId(id)) if id.is_empty() => Err(bad("worker_id", "required")),
        Some(S::PostingId(id)) if id.is_empty() => Err(bad("posting_id", "required")),
        Some(S::EmployerId(id)) if id.is_empty() => Err(bad("employer_id", "required")),
        Some(S::ComplaintId(0)) => Err(bad("complaint_id", "required")),
        Some(S::WorkerId(id)) => Ok(Subject::Worker(id.clone())),
        Some(S::PostingId(id)) => Ok(Subject::Posting(id.clone())),
        Some(S::EmployerId(id)) => Ok(Subject::Employer(id.clone())),
        Some(S::ComplaintId(id)) => Ok(Subject::Complaint(*id)),
    }
}

/// The county of the history's subject, for county-scoped callers (none for employers).
fn subject_county(e: &linggong_engine::Engine, s: &Subject) -> Option<u32> {
    match s {
        Subject::Worker(id) => e.worker(id).map(|w| e.regions().get(w.county).code),
        Subject::Posting(id) => e.posting(id).map(|p| e.regions().get(p.county).code),
        Subject::Complaint(id) => e.complaint(*id).map(|c| e.regions().get(c.county).code),
        Subject::Employer(_) => None,
    }
}

impl Api {
    /// The log to read `s`'s history from, once the caller may read it: this
    /// member's history log; on the leader after a linearizable read (so it
    /// holds every acknowledged write), on a follower as far as the member
    /// has applied (it may lag the leader).
    async fn history_log(&self, caller: &Caller, s: &Subject) -> Result<PathBuf, Status> {
        let node = self.ctx.host.member();
        let county = if node.is_leader() {
            node.read_linearizable(|e| subject_county(e, s)).await.map_err(|e| errors::submit_status(&e))?
        } else {
            node.read_local(|state| subject_county(state.engine(), s))
        };
        if caller.principal.role == Role::County {
            check_history_scope(caller, county)?;
        }
        if let Some(failed) = node.shared.history_failure() {
            return Err(Status::unavailable(format!(
                "this member's history log stopped ({failed}); it restarts when the member does: ask another member"
            )));
        }
        Ok(node.shared.history_dir())
    }
}

/// County systems see histories of records in their counties only.
fn check_history_scope(caller: &Caller, county: Option<u32>) -> Result<(), Status> {
    match county {
        Some(c) => caller.require_county(c),
        None => Err(errors::permission_denied(format!(
            "token `{}` may read histories only of records in its counties",
            caller.principal.name
        ))),
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for Api {
    async fn get_history(
        &self,
        request: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<pb::GetHistoryResponse>, Status> {
        self.call("GetHistory", request, |caller, req| async move {
            caller.require_role(READERS)?;
            let subject = subject(&req)?;
            let size = match req.page_size {
                0 => 50,
                n if n < 0 => {
                    return Err(errors::invalid_request(&crate::convert::api::InvalidRequest::single(
                        "page_size",
                        "must not be negative",
                    )))
                }
                n => (n as usize).min(500),
            };
            let after = if req.page_token.is_empty() {
                0
            } else {
                let decoded = hex::decode(&req.page_token).ok().and_then(|b| String::from_utf8(b).ok());
                decoded.as_deref().and_then(|s| s.strip_prefix("h1:")).and_then(|s| s.parse().ok()).ok_or_else(
                    || {
                        errors::invalid_request(&crate::convert::api::InvalidRequest::single(
                            "page_token",
                            "not a token this service issued",
                        ))
                    },
                )?
            };
            let wal_dir = self.history_log(&caller, &subject).await?;
            // One more than asked for tells whether another page follows.
            let entries = tokio::task::spawn_blocking(move || history(&wal_dir, &subject, after, size + 1))
                .await
                .map_err(|e| Status::internal(format!("history task: {e}")))?
                .map_err(|e| Status::unavailable(format!("reading the log: {e}")))?;
            let more = entries.len() > size;
            let entries: Vec<pb::HistoryEntry> = entries
                .into_iter()
                .take(size)
                .map(|h| pb::HistoryEntry {
                    seq: h.seq,
                    time: Some(timestamp_to_pb(h.at)),
                    actor: h.actor.map(|a| pb::HistoryActor {
                        name: a.name,
                        person_id: a.person_id.unwrap_or_default(),
                        role: a.role,
                    }),
                    action: h.action.to_string(),
                    detail: h.detail,
                    outcome: h.outcome,
                })
                .collect();
            let next_page_token = match entries.last() {
                Some(last) if more => hex::encode(format!("h1:{}", last.seq)),
                _ => String::new(),
            };
            Ok(pb::GetHistoryResponse { entries, next_page_token })
        })
        .await
    }
}
