//! `PostingService`: submit, update (versioned), cancel, read, list and watch
//! postings. Stations act only in their own county and township, county
//! systems in their counties; reviewers may read; operators may do everything.

use super::watch::{watch, WatchStream};
use super::{errors, lookups, Api, Caller};
use crate::auth::Role;
use crate::convert::api::{self as convert, PageRequest, PostingFilter, Rules};
use crate::convert::crs::{response_crs, InCrs};
use crate::proto::v1 as pb;
use crate::state::Applied;
use linggong_engine::{Command, Engine, Event, Outcome, PostingSpec};
use tonic::{Request, Response, Status};

const WRITERS: &[Role] = &[Role::Station, Role::County, Role::Operator];
const READERS: &[Role] = &[Role::Station, Role::County, Role::Reviewer, Role::Operator];
/// Most postings examined for one page, so a sparse filter cannot hold the state lock for long.
pub const MAX_SCAN_PER_PAGE: usize = 20_000;

/// County code and township of a posting, if it exists.
pub(crate) fn posting_place(engine: &Engine, posting_id: &str) -> Option<(u32, Option<String>)> {
    engine.posting(posting_id).map(|p| (engine.regions().get(p.county).code, p.township.as_deref().map(String::from)))
}

/// One page of postings in submission order.
pub(crate) fn list_page(engine: &Engine, filter: &PostingFilter, page: PageRequest) -> (Vec<pb::Posting>, String) {
    let all = engine.postings();
    let scan_end = all.len().min(page.start.saturating_add(MAX_SCAN_PER_PAGE));
    let mut out = Vec::with_capacity(page.size.min(64));
    let mut next = page.start;
    while next < scan_end && out.len() < page.size {
        let p = &all[next];
        if filter.matches(engine, p) {
            out.push(convert::posting_to_pb(engine, p));
        }
        next += 1;
    }
    let token = if next < all.len() { convert::page_token(next, page.fingerprint) } else { String::new() };
    (out, token)
}

impl Api {
    /// The posting as it stands, for the response to a write.
    pub(crate) async fn read_posting(&self, posting_id: &str) -> Result<pb::Posting, Status> {
        self.answer_after_write(|e| e.posting(posting_id).map(|p| convert::posting_to_pb(e, p)))
            .await?
            .ok_or_else(|| errors::vanished("posting"))
    }

    /// Validates a submitted or updated posting and checks the caller may act
    /// both where it is to be and where it is now.
    fn checked_posting(
        &self,
        caller: &Caller,
        request_id: &str,
        posting: Option<&pb::Posting>,
    ) -> Result<PostingSpec, Status> {
        caller.require_role(WRITERS)?;
        let (spec, existing) = self.ctx.host.read_engine(|e| {
            let spec = convert::posting_spec_of(&Rules::of(e), request_id, posting);
            let existing = spec.as_ref().ok().and_then(|s| posting_place(e, &s.id));
            (spec, existing)
        });
        let spec = spec.map_err(|e| errors::invalid_request(&e))?;
        caller.require_place(spec.county, spec.township.as_deref())?;
        if let Some((county, township)) = existing {
            caller.require_place(county, township.as_deref())?;
        }
        Ok(spec)
    }

    async fn posting_changed(
        &self,
        caller: &Caller,
        posting_id: &str,
        applied: Applied,
    ) -> Result<(pb::Posting, bool), Status> {
        match applied.outcome {
            Outcome::PostingChanged { unchanged, .. } => Ok((self.read_posting(posting_id).await?, unchanged)),
            other => Err(errors::unexpected_outcome(caller.rpc, &other)),
        }
    }
}

fn posting_marker(seq: u64) -> pb::WatchPostingsResponse {
    pb::WatchPostingsResponse { seq, event: None }
}

#[tonic::async_trait]
impl pb::posting_service_server::PostingService for Api {
    async fn submit_posting(
        &self,
        request: Request<pb::SubmitPostingRequest>,
    ) -> Result<Response<pb::SubmitPostingResponse>, Status> {
        self.call("SubmitPosting", request, |caller, req| async move {
            let spec = self.checked_posting(&caller, &req.request_id, req.posting.as_ref())?;
            let id = spec.id.clone();
            let applied = self.submit(&caller, &req.request_id, Command::SubmitPosting(spec)).await?;
            let (posting, unchanged) = self.posting_changed(&caller, &id, applied).await?;
            Ok(pb::SubmitPostingResponse { posting: Some(posting), unchanged })
        })
        .await
    }

    async fn update_posting(
        &self,
        request: Request<pb::UpdatePostingRequest>,
    ) -> Result<Response<pb::UpdatePostingResponse>, Status> {
        self.call("UpdatePosting", request, |caller, req| async move {
            let spec = self.checked_posting(&caller, &req.request_id, req.posting.as_ref())?;
            let id = spec.id.clone();
            let applied = self.submit(&caller, &req.request_id, Command::UpdatePosting(spec)).await?;
            let (posting, unchanged) = self.posting_changed(&caller, &id, applied).await?;
            Ok(pb::UpdatePostingResponse { posting: Some(posting), unchanged })
        })
        .await
    }

    async fn cancel_posting(
        &self,
        request: Request<pb::CancelPostingRequest>,
    ) -> Result<Response<pb::CancelPostingResponse>, Status> {
        self.call("CancelPosting", request, |caller, req| async move {
            caller.require_role(WRITERS)?;
            let (command, place) = self.ctx.host.read_engine(|e| {
                (convert::cancel_posting_command(&Rules::of(e), &req), posting_place(e, &req.posting_id))
            });
            let command = command.map_err(|e| errors::invalid_request(&e))?;
            if let Some((county, township)) = place {
                caller.require_place(county, township.as_deref())?;
            }
            let applied = self.submit(&caller, &req.request_id, command).await?;
            let (posting, _) = self.posting_changed(&caller, &req.posting_id, applied).await?;
            Ok(pb::CancelPostingResponse { posting: Some(posting) })
        })
        .await
    }

    async fn get_posting(
        &self,
        request: Request<pb::GetPostingRequest>,
    ) -> Result<Response<pb::GetPostingResponse>, Status> {
        self.call("GetPosting", request, |caller, req| async move {
            caller.require_role(READERS)?;
            let crs = response_crs("response_crs", req.response_crs).map_err(|e| errors::invalid_request(&e))?;
            let found = self
                .read_answer(|e| {
                    let id = convert::checked_id(&Rules::of(e), "posting_id", &req.posting_id)?;
                    Ok(e.posting(id).map(|p| convert::posting_to_pb(e, p)))
                })
                .await?;
            let found = found.map_err(|e| errors::invalid_request(&e))?;
            let posting = found.ok_or_else(|| errors::not_found(format!("unknown posting `{}`", req.posting_id)))?;
            caller
                .require_place(posting.county_code, Some(posting.township_code.as_str()).filter(|t| !t.is_empty()))?;
            Ok(pb::GetPostingResponse { posting: Some(posting.in_crs(crs)) })
        })
        .await
    }

    async fn list_postings(
        &self,
        request: Request<pb::ListPostingsRequest>,
    ) -> Result<Response<pb::ListPostingsResponse>, Status> {
        self.call("ListPostings", request, |caller, req| async move {
            caller.require_role(READERS)?;
            let crs = response_crs("response_crs", req.response_crs).map_err(|e| errors::invalid_request(&e))?;
            let parsed = self.ctx.host.read_engine(|e| convert::list_postings_request(&Rules::of(e), &req));
            let (mut filter, page) = parsed.map_err(|e| errors::invalid_request(&e))?;
            let p = &caller.principal;
            match p.role {
                Role::Station => {
                    let own_county = p.counties.first().copied();
                    let own_township = p.township.clone();
                    if filter.county.is_some_and(|c| Some(c) != own_county)
                        || filter.township.as_ref().is_some_and(|t| Some(t) != own_township.as_ref())
                    {
                        return Err(errors::permission_denied(format!(
                            "station `{}` may list only its own county and township",
                            p.name
                        )));
                    }
                    filter.county = own_county;
                    filter.township = own_township;
                }
                Role::County => match filter.county {
                    Some(c) => caller.require_county(c)?,
                    None => filter.scope_counties = p.counties.clone(),
                },
                Role::Reviewer | Role::Operator => {}
            }
            let (postings, next_page_token) = self.read_answer(|e| list_page(e, &filter, page)).await?;
            Ok(pb::ListPostingsResponse { postings: postings.in_crs(crs), next_page_token })
        })
        .await
    }

    async fn list_posting_offers(
        &self,
        request: Request<pb::ListPostingOffersRequest>,
    ) -> Result<Response<pb::ListPostingOffersResponse>, Status> {
        self.call("ListPostingOffers", request, |caller, req| async move {
            let offers = lookups::list_posting_offers(&self.ctx.host, &caller, READERS, &req).await?;
            Ok(pb::ListPostingOffersResponse { offers })
        })
        .await
    }

    type WatchPostingsStream = WatchStream<pb::WatchPostingsResponse>;

    async fn watch_postings(
        &self,
        request: Request<pb::WatchPostingsRequest>,
    ) -> Result<Response<Self::WatchPostingsStream>, Status> {
        self.call("WatchPostings", request, |caller, req| async move {
            caller.require_role(READERS)?;
            let county = self
                .ctx
                .host
                .read_engine(|e| convert::checked_county(&Rules::of(e), "county_code", req.county_code))
                .map_err(|e| errors::invalid_request(&e))?;
            let township = match caller.principal.role {
                Role::Station => {
                    caller.require_place(county, caller.principal.township.as_deref())?;
                    caller.principal.township.clone()
                }
                _ => {
                    caller.require_county(county)?;
                    None
                }
            };
            watch(&self.ctx.host, req.after_seq, posting_marker, move |event| match &event.event {
                Event::Posting(p)
                    if p.county == county && township.as_deref().is_none_or(|t| p.township.as_deref() == Some(t)) =>
                {
                    Some(pb::WatchPostingsResponse { seq: event.seq, event: Some(convert::posting_event_to_pb(p)) })
                }
                _ => None,
            })
        })
        .await
    }
}
