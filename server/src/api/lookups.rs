//! The list and look-up RPCs people act on: complaints, employers, a
//! posting's offers, workers by phone and markets of any set of counties.
//! Each checks the caller's role, validates the request (naming every bad
//! field), narrows to the caller's counties, and reads under the state lock
//! for a bounded scan. Answers read durable state ([`Host::read_durable`]):
//! they show nothing a crash could erase.

use super::posting::{posting_place, MAX_SCAN_PER_PAGE};
use super::{errors, Caller};
use crate::auth::Role;
use crate::convert::api::{self as convert, page_token, PageRequest, Rules};
use crate::convert::crs::InCrs;
use crate::convert::lists::{self, market_page_token, ComplaintFilter, CountySet, EmployerFilter};
use crate::host::Host;
use crate::proto::v1 as pb;
use linggong_engine::Engine;
use tonic::Status;

/// Who may read complaints and employers.
pub(crate) const CASE_READERS: &[Role] = &[Role::County, Role::Reviewer, Role::Operator];
/// Who may look workers up.
const WORKER_READERS: &[Role] = &[Role::County, Role::Reviewer, Role::Operator];
/// Most workers one phone look-up returns.
pub const MAX_PHONE_MATCHES: usize = 50;

/// The counties a caller may list: the request's (each checked against the
/// caller's scope), or, when it names none, the caller's own (county
/// systems) or every county (`None`: reviewers and operators).
fn scoped(caller: &Caller, requested: CountySet) -> Result<CountySet, Status> {
    match requested {
        Some(set) => {
            for &c in &set {
                caller.require_county(c)?;
            }
            Ok(Some(set))
        }
        None if matches!(caller.principal.role, Role::County | Role::Station) => {
            Ok(Some(caller.principal.counties.clone()))
        }
        None => Ok(None),
    }
}

/// Reads the engine for an answer, once everything it shows is durable.
async fn answer<R>(host: &Host, f: impl FnOnce(&Engine) -> R) -> Result<R, Status> {
    host.read_durable(f).await.map_err(|e| errors::submit_status(&e))
}

fn complaint_page(engine: &Engine, filter: &ComplaintFilter, page: PageRequest) -> (Vec<pb::Complaint>, String) {
    let all = engine.complaints();
    let scan_end = all.len().min(page.start.saturating_add(MAX_SCAN_PER_PAGE));
    let mut out = Vec::with_capacity(page.size.min(64));
    let mut next = page.start;
    while next < scan_end && out.len() < page.size {
        if filter.matches(engine, &all[next]) {
            out.push(convert::complaint_to_pb(engine, &all[next]));
        }
        next += 1;
    }
    let token = if next < all.len() { page_token(next, page.fingerprint) } else { String::new() };
    (out, token)
}

/// `GetComplaint`.
pub(crate) async fn get_complaint(
    host: &Host,
    caller: &Caller,
    req: &pb::GetComplaintRequest,
) -> Result<pb::Complaint, Status> {
    caller.require_role(CASE_READERS)?;
    let id = lists::get_complaint_request(req).map_err(|e| errors::invalid_request(&e))?;
    let found = answer(host, |e| e.complaint(id).map(|c| convert::complaint_to_pb(e, c))).await?;
    let complaint = found.ok_or_else(|| errors::not_found(format!("unknown complaint {id}")))?;
    caller.require_county(complaint.county_code)?;
    Ok(complaint)
}

/// `ListComplaints`.
pub(crate) async fn list_complaints(
    host: &Host,
    caller: &Caller,
    req: &pb::ListComplaintsRequest,
) -> Result<pb::ListComplaintsResponse, Status> {
    caller.require_role(CASE_READERS)?;
    let parsed = host.read_engine(|e| lists::list_complaints_request(&Rules::of(e), req));
    let (mut filter, page) = parsed.map_err(|e| errors::invalid_request(&e))?;
    filter.counties = scoped(caller, filter.counties)?;
    let (complaints, next_page_token) = answer(host, |e| complaint_page(e, &filter, page)).await?;
    Ok(pb::ListComplaintsResponse { complaints, next_page_token })
}

/// `GetEmployer`.
pub(crate) async fn get_employer(
    host: &Host,
    caller: &Caller,
    req: &pb::GetEmployerRequest,
) -> Result<pb::Employer, Status> {
    caller.require_role(CASE_READERS)?;
    let found = answer(host, |e| {
        let id = lists::get_employer_request(&Rules::of(e), req)?;
        Ok(e.employer(id).map(convert::employer_to_pb))
    })
    .await?;
    let found = found.map_err(|e| errors::invalid_request(&e))?;
    found.ok_or_else(|| errors::not_found(format!("unknown employer `{}`", req.employer_id)))
}

/// `ListPostingOffers`: the posting's live offers, in offer order.
pub(crate) async fn list_posting_offers(
    host: &Host,
    caller: &Caller,
    readers: &[Role],
    req: &pb::ListPostingOffersRequest,
) -> Result<Vec<pb::Offer>, Status> {
    caller.require_role(readers)?;
    let place = answer(host, |e| {
        let id = lists::list_posting_offers_request(&Rules::of(e), req)?;
        Ok(posting_place(e, id))
    })
    .await?;
    let place = place.map_err(|e| errors::invalid_request(&e))?;
    let (county, township) = place.ok_or_else(|| errors::not_found(format!("unknown posting `{}`", req.posting_id)))?;
    caller.require_place(county, township.as_deref())?;
    answer(host, |e| {
        let Some(posting) = e.posting(&req.posting_id) else { return Vec::new() };
        e.live_offers()
            .into_iter()
            .filter(|o| e.posting_by_key(o.posting).id == posting.id)
            .map(|o| convert::live_offer_to_pb(e, o, &caller.principal))
            .collect()
    })
    .await
}

/// `FindWorkersByPhone`.
pub(crate) async fn find_workers_by_phone(
    host: &Host,
    caller: &Caller,
    req: &pb::FindWorkersByPhoneRequest,
) -> Result<Vec<pb::Worker>, Status> {
    caller.require_role(WORKER_READERS)?;
    let parsed = host.read_engine(|e| lists::find_workers_by_phone_request(&Rules::of(e), req));
    let (phone, crs) = parsed.map_err(|e| errors::invalid_request(&e))?;
    let scope = scoped(caller, None)?;
    let workers = answer(host, |e| {
        e.workers_with_phone(&phone)
            .filter(|w| scope.as_ref().is_none_or(|set| set.contains(&e.regions().get(w.county).code)))
            .take(MAX_PHONE_MATCHES)
            .map(|w| convert::worker_to_pb(e, w, &caller.principal))
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(workers.in_crs(crs))
}

/// `ListMarkets`: markets of any set of counties, in id order, a page at a time.
pub(crate) async fn list_markets(
    host: &Host,
    caller: &Caller,
    readers: &[Role],
    req: &pb::ListMarketsRequest,
) -> Result<pb::ListMarketsResponse, Status> {
    caller.require_role(readers)?;
    let page = host.read_engine(|e| lists::list_markets_request(&Rules::of(e), req));
    let page = page.map_err(|e| errors::invalid_request(&e))?;
    // The directory is public: every caller may list every county.
    let (markets, next_page_token) = answer(host, |e| {
        let mut entries = e
            .directory()
            .iter()
            .filter(|m| page.after.as_deref().is_none_or(|after| m.id.as_str() > after))
            .filter(|m| page.covers(m));
        let markets: Vec<pb::Market> = entries.by_ref().take(page.size).map(convert::market_to_pb).collect();
        let more = entries.next().is_some();
        let token = match markets.last() {
            Some(last) if more => market_page_token(&last.market_id, page.fingerprint),
            _ => String::new(),
        };
        (markets, token)
    })
    .await?;
    Ok(pb::ListMarketsResponse { markets: markets.in_crs(page.crs), next_page_token })
}

/// `ListEmployers`: employers in first-registration order.
pub(crate) async fn list_employers(
    host: &Host,
    caller: &Caller,
    req: &pb::ListEmployersRequest,
) -> Result<pb::ListEmployersResponse, Status> {
    caller.require_role(CASE_READERS)?;
    let parsed = host.read_engine(|e| lists::list_employers_request(&Rules::of(e), req));
    let (mut filter, page) = parsed.map_err(|e| errors::invalid_request(&e))?;
    filter.counties = scoped(caller, filter.counties)?;
    let (employers, next_page_token) = answer(host, |e| employer_page(e, &filter, page)).await?;
    Ok(pb::ListEmployersResponse { employers, next_page_token })
}

fn employer_page(engine: &Engine, filter: &EmployerFilter, page: PageRequest) -> (Vec<pb::Employer>, String) {
    // Employers with a posting in the counties asked for, by key.
    let present: Option<Vec<bool>> = filter.counties.as_ref().map(|set| {
        let mut present = vec![false; engine.employers().len()];
        for p in engine.postings() {
            if set.contains(&engine.regions().get(p.county).code) {
                if let Some(slot) = present.get_mut(p.employer as usize) {
                    *slot = true;
                }
            }
        }
        present
    });
    let all = engine.employers();
    let scan_end = all.len().min(page.start.saturating_add(MAX_SCAN_PER_PAGE));
    let mut out = Vec::with_capacity(page.size.min(64));
    let mut next = page.start;
    while next < scan_end && out.len() < page.size {
        let in_county = present.as_ref().is_none_or(|p| p.get(next).copied().unwrap_or(false));
        if in_county && filter.matches_standing(&all[next]) {
            out.push(convert::employer_to_pb(&all[next]));
        }
        next += 1;
    }
    let token = if next < all.len() { page_token(next, page.fingerprint) } else { String::new() };
    (out, token)
}
