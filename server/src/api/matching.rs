//! `MatchService`: instant matching (即时快招), the offer lifecycle and the
//! offer stream. County systems act for postings or workers of their
//! counties; reviewers may watch; operators may do everything.

use super::watch::{watch, WatchStream};
use super::{errors, Api, Caller};
use crate::auth::Role;
use crate::convert::api::{self as convert, OfferStep, Rules};
use crate::proto::v1 as pb;
use linggong_engine::{Command, Event, OfferState, Outcome, PostingState};
use tonic::{Request, Response, Status};

const WRITERS: &[Role] = &[Role::County, Role::Operator];
const WATCHERS: &[Role] = &[Role::County, Role::Reviewer, Role::Operator];
const POLICY_EDITORS: &[Role] = &[Role::Operator];

/// The result of an offer-lifecycle command.
struct OfferChange {
    state: OfferState,
    posting_state: PostingState,
    next_offer: Option<pb::Offer>,
}

impl Api {
    /// Checks the caller may act on an offer: its scope must cover the county
    /// of the offer's posting or of its worker. A finished or unknown offer is
    /// left to the engine (NOT_FOUND) or the host (a retry's first result).
    fn require_offer_scope(&self, caller: &Caller, offer_id: u64) -> Result<(), Status> {
        let counties = self.ctx.host.read_engine(|e| {
            e.offer(offer_id).map(|o| {
                let posting = e.posting_by_key(o.posting);
                let worker = e.worker_by_key(o.worker);
                (e.regions().get(posting.county).code, e.regions().get(worker.county).code)
            })
        });
        match counties {
            Some((posting_county, worker_county)) if !caller.principal.covers_county(worker_county) => {
                caller.require_county(posting_county)
            }
            _ => Ok(()),
        }
    }

    /// Validates, authorises and submits an offer-lifecycle command.
    async fn offer_command(
        &self,
        caller: &Caller,
        request_id: &str,
        offer_id: u64,
        command: Result<Command, convert::InvalidRequest>,
    ) -> Result<OfferChange, Status> {
        caller.require_role(WRITERS)?;
        let command = command.map_err(|e| errors::invalid_request(&e))?;
        self.require_offer_scope(caller, offer_id)?;
        let applied = self.submit(caller, request_id, command).await?;
        match applied.outcome {
            Outcome::OfferChanged { state, posting_state, next_offer } => {
                let next_offer = self
                    .answer_after_write(|e| next_offer.map(|o| convert::offer_to_pb(e, &o, &caller.principal)))
                    .await?;
                Ok(OfferChange { state, posting_state, next_offer })
            }
            other => Err(errors::unexpected_outcome(caller.rpc, &other)),
        }
    }
}

fn offer_marker(seq: u64) -> pb::WatchOffersResponse {
    pb::WatchOffersResponse { seq, event: None }
}

fn states(change: &OfferChange) -> (i32, i32) {
    (convert::offer_state_to_pb(change.state) as i32, convert::posting_state_to_pb(change.posting_state) as i32)
}

#[tonic::async_trait]
impl pb::match_service_server::MatchService for Api {
    async fn instant_match(
        &self,
        request: Request<pb::InstantMatchRequest>,
    ) -> Result<Response<pb::InstantMatchResponse>, Status> {
        self.call("InstantMatch", request, |caller, req| async move {
            caller.require_role(WRITERS)?;
            let (command, place) = self.ctx.host.read_engine(|e| {
                (convert::instant_match_command(&Rules::of(e), &req), super::posting::posting_place(e, &req.posting_id))
            });
            let command = command.map_err(|e| errors::invalid_request(&e))?;
            if let Some((county, _)) = place {
                caller.require_county(county)?;
            }
            let applied = self.submit(&caller, &req.request_id, command).await?;
            let (offers, remaining) = match applied.outcome {
                Outcome::Matched { offers, remaining } => (offers, remaining),
                Outcome::Queued { decide_at, remaining } => {
                    return Ok(pb::InstantMatchResponse {
                        offers: Vec::new(),
                        remaining_slots: u32::from(remaining),
                        offer_deadline: None,
                        decision_at: Some(convert::timestamp_to_pb(decide_at)),
                    });
                }
                other => return Err(errors::unexpected_outcome(caller.rpc, &other)),
            };
            let offer_deadline = offers.first().map(|o| convert::timestamp_to_pb(o.deadline));
            let offers = self
                .answer_after_write(|e| offers.iter().map(|o| convert::offer_to_pb(e, o, &caller.principal)).collect())
                .await?;
            Ok(pb::InstantMatchResponse {
                offers,
                remaining_slots: u32::from(remaining),
                offer_deadline,
                decision_at: None,
            })
        })
        .await
    }

    async fn respond_to_offer(
        &self,
        request: Request<pb::RespondToOfferRequest>,
    ) -> Result<Response<pb::RespondToOfferResponse>, Status> {
        self.call("RespondToOffer", request, |caller, req| async move {
            let command = self.ctx.host.read_engine(|e| convert::respond_to_offer_command(&Rules::of(e), &req));
            let change = self.offer_command(&caller, &req.request_id, req.offer_id, command).await?;
            let (offer_state, posting_state) = states(&change);
            Ok(pb::RespondToOfferResponse { offer_state, posting_state })
        })
        .await
    }

    async fn confirm_arrival(
        &self,
        request: Request<pb::ConfirmArrivalRequest>,
    ) -> Result<Response<pb::ConfirmArrivalResponse>, Status> {
        self.call("ConfirmArrival", request, |caller, req| async move {
            let command = self.ctx.host.read_engine(|e| {
                convert::offer_step_command(&Rules::of(e), OfferStep::ConfirmArrival, &req.request_id, req.offer_id)
            });
            let change = self.offer_command(&caller, &req.request_id, req.offer_id, command).await?;
            let (offer_state, posting_state) = states(&change);
            Ok(pb::ConfirmArrivalResponse { offer_state, posting_state })
        })
        .await
    }

    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::CompleteJobResponse>, Status> {
        self.call("CompleteJob", request, |caller, req| async move {
            let command = self.ctx.host.read_engine(|e| {
                convert::offer_step_command(&Rules::of(e), OfferStep::CompleteJob, &req.request_id, req.offer_id)
            });
            let change = self.offer_command(&caller, &req.request_id, req.offer_id, command).await?;
            let (offer_state, posting_state) = states(&change);
            Ok(pb::CompleteJobResponse { offer_state, posting_state, next_offer: change.next_offer })
        })
        .await
    }

    async fn report_no_show(
        &self,
        request: Request<pb::ReportNoShowRequest>,
    ) -> Result<Response<pb::ReportNoShowResponse>, Status> {
        self.call("ReportNoShow", request, |caller, req| async move {
            let command = self.ctx.host.read_engine(|e| {
                convert::offer_step_command(&Rules::of(e), OfferStep::ReportNoShow, &req.request_id, req.offer_id)
            });
            let change = self.offer_command(&caller, &req.request_id, req.offer_id, command).await?;
            let (offer_state, posting_state) = states(&change);
            Ok(pb::ReportNoShowResponse { offer_state, posting_state })
        })
        .await
    }

    type WatchOffersStream = WatchStream<pb::WatchOffersResponse>;

    async fn watch_offers(
        &self,
        request: Request<pb::WatchOffersRequest>,
    ) -> Result<Response<Self::WatchOffersStream>, Status> {
        self.call("WatchOffers", request, |caller, req| async move {
            caller.require_role(WATCHERS)?;
            let county = self
                .ctx
                .host
                .read_engine(|e| convert::checked_county(&Rules::of(e), "county_code", req.county_code))
                .map_err(|e| errors::invalid_request(&e))?;
            caller.require_county(county)?;
            watch(&self.ctx.host, req.after_seq, offer_marker, move |event| match &event.event {
                Event::Offer(o) if o.county == county => {
                    Some(pb::WatchOffersResponse { seq: event.seq, event: Some(convert::offer_event_to_pb(o)) })
                }
                _ => None,
            })
        })
        .await
    }

    async fn get_matching_policy(
        &self,
        request: Request<pb::GetMatchingPolicyRequest>,
    ) -> Result<Response<pb::GetMatchingPolicyResponse>, Status> {
        self.call("GetMatchingPolicy", request, |_caller, _req| async move {
            let policy = self.read_answer(|e| convert::matching_policy_to_pb(e.config())).await?;
            Ok(pb::GetMatchingPolicyResponse { policy: Some(policy) })
        })
        .await
    }

    async fn set_matching_policy(
        &self,
        request: Request<pb::SetMatchingPolicyRequest>,
    ) -> Result<Response<pb::SetMatchingPolicyResponse>, Status> {
        self.call("SetMatchingPolicy", request, |caller, req| async move {
            caller.require_role(POLICY_EDITORS)?;
            let (ranking, batch) = self
                .ctx
                .host
                .read_engine(|e| convert::matching_policy(e.regions(), &req))
                .map_err(|e| errors::invalid_request(&e))?;
            // Two logged commands; a retry with the same request id repeats neither.
            let part = |name: &str| {
                if req.request_id.is_empty() {
                    String::new()
                } else {
                    format!("{}/{name}", req.request_id)
                }
            };
            let mut changed = [false; 2];
            for (i, (key, command)) in
                [(part("ranking"), Command::SetRankingPolicy(ranking)), (part("batch"), Command::SetBatchPolicy(batch))]
                    .into_iter()
                    .enumerate()
            {
                match self.submit(&caller, &key, command).await?.outcome {
                    Outcome::PolicySet { changed: c } => changed[i] = c,
                    other => return Err(errors::unexpected_outcome(caller.rpc, &other)),
                }
            }
            let policy = self.answer_after_write(|e| convert::matching_policy_to_pb(e.config())).await?;
            Ok(pb::SetMatchingPolicyResponse {
                policy: Some(policy),
                ranking_changed: changed[0],
                batch_changed: changed[1],
            })
        })
        .await
    }
}
