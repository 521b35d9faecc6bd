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
                let next_offer =
                    self.read_answer(|e| next_offer.map(|o| convert::offer_to_pb(e, &o, &caller.principal))).await?;
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
            let Outcome::Matched { offers, remaining } = applied.outcome else {
                return Err(errors::unexpected_outcome(caller.rpc, &applied.outcome));
            };
            let offer_deadline = offers.first().map(|o| convert::timestamp_to_pb(o.deadline));
            let offers = self
                .read_answer(|e| offers.iter().map(|o| convert::offer_to_pb(e, o, &caller.principal)).collect())
                .await?;
            Ok(pb::InstantMatchResponse { offers, remaining_slots: u32::from(remaining), offer_deadline })
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
            let command = convert::offer_step_command(OfferStep::ConfirmArrival, &req.request_id, req.offer_id);
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
            let command = convert::offer_step_command(OfferStep::CompleteJob, &req.request_id, req.offer_id);
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
            let command = convert::offer_step_command(OfferStep::ReportNoShow, &req.request_id, req.offer_id);
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
}
