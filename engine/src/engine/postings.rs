//! Posting commands: submit, update, review (automatic and by hand), cancel.

use super::{Engine, Result, WorkerAfter};
use crate::catalog::{CountyIdx, TradeIdx};
use crate::command::*;
use crate::error::EngineError;
use crate::model::*;
use compact_str::CompactString;

impl Engine {
    /// Validated, resolved parts of a posting spec.
    fn resolve_posting_spec(&self, spec: &PostingSpec) -> Result<(EmployerKey, TradeIdx, CountyIdx)> {
        let trade = self.trade_idx(&spec.trade)?;
        let county = self.county_idx(spec.county)?;
        let employer = self.employer_key(&spec.employer)?;
        Ok((employer, trade, county))
    }

    /// The automatic review (用工信息审核): `Err(reason)` rejects the posting.
    fn auto_review(
        &self,
        now: Timestamp,
        spec: &PostingSpec,
        employer: EmployerKey,
    ) -> std::result::Result<(), String> {
        let l = &self.config.limits;
        let e = &self.employers[employer as usize];
        if e.suspended {
            return Err(format!("employer {} is suspended", e.id));
        }
        let min = self.config.min_daily_wage_for(spec.county);
        if spec.daily_wage < min {
            return Err(format!("daily wage {} below the county minimum {}", spec.daily_wage, min));
        }
        if spec.start < now.plus_secs(-l.max_start_behind_secs) {
            return Err("start time is too far in the past".into());
        }
        if spec.start > now.plus_secs(l.max_start_ahead_secs) {
            return Err("start time is too far ahead".into());
        }
        if spec.expires_at_after(now) {
            Ok(())
        } else {
            Err("the job window has already ended".into())
        }
    }

    fn fill_posting_from_spec(&self, p: &mut Posting, spec: &PostingSpec, trade: TradeIdx, county: CountyIdx) {
        p.trade = trade;
        p.headcount = spec.headcount;
        p.position = spec.position;
        p.county = county;
        p.township = spec.township.clone();
        p.max_distance_m = spec.max_distance_m;
        p.daily_wage = spec.daily_wage;
        p.start = spec.start;
        p.duration_minutes = spec.duration_minutes;
        p.offer_ttl_secs =
            if spec.offer_ttl_secs == 0 { self.config.default_offer_ttl_secs } else { spec.offer_ttl_secs };
        p.description = spec.description.clone();
        p.source = spec.source;
        p.version = spec.version;
    }

    fn same_content(&self, p: &Posting, spec: &PostingSpec) -> bool {
        let mut probe = p.clone();
        if let (Ok((_, trade, county)), Some(&ek)) =
            (self.resolve_posting_spec(spec), self.employer_ids.get(&spec.employer))
        {
            self.fill_posting_from_spec(&mut probe, spec, trade, county);
            probe.employer = ek;
            probe == *p
        } else {
            false
        }
    }

    /// The outcome of a command that changed a posting.
    fn posting_changed(&self, key: PostingKey) -> Outcome {
        let p = &self.postings[key as usize];
        Outcome::PostingChanged { state: p.state, version: p.version, unchanged: false, reason: p.reason.clone() }
    }

    /// The outcome of a retry that found the posting as it would have made it.
    fn posting_unchanged(&self, key: PostingKey) -> Outcome {
        let p = &self.postings[key as usize];
        Outcome::PostingChanged { state: p.state, version: p.version, unchanged: true, reason: p.reason.clone() }
    }

    pub(super) fn submit_posting(
        &mut self,
        now: Timestamp,
        spec: &PostingSpec,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        if let Some(&key) = self.posting_ids.get(&spec.id) {
            let p = &self.postings[key as usize];
            if p.version == spec.version && self.same_content(p, spec) {
                return Ok(self.posting_unchanged(key));
            }
            return Err(EngineError::PostingExists { id: spec.id.clone(), current_version: p.version });
        }
        check_version_step(0, spec.version)?;
        let (employer, trade, county) = self.resolve_posting_spec(spec)?;
        let verdict = self.auto_review(now, spec, employer);
        let mut p = Posting {
            id: spec.id.clone(),
            employer,
            trade,
            headcount: 0,
            position: spec.position,
            county,
            township: None,
            max_distance_m: 0,
            daily_wage: 0,
            start: spec.start,
            duration_minutes: 0,
            offer_ttl_secs: 0,
            description: CompactString::default(),
            source: spec.source,
            version: 0,
            state: PostingState::PendingReview,
            reason: None,
            pending: 0,
            engaged: 0,
            completed: 0,
            passed_over: Vec::new(),
            submitted_at: now,
            published_at: None,
            filled_at: None,
            reviewed_by: None,
            reviewed_at: None,
        };
        self.fill_posting_from_spec(&mut p, spec, trade, county);
        let key = self.postings.len() as PostingKey;
        self.postings.push(p);
        self.posting_index.add(key);
        self.posting_ids.insert(spec.id.clone(), key);
        self.posting_index.sync(&self.employers, key, &self.postings[key as usize], None);
        self.ledger.posting_submitted(self.county_code(county), now, spec.source);
        self.apply_review_verdict(now, key, verdict, events);
        Ok(self.posting_changed(key))
    }

    /// Publishes, rejects or leaves pending after the automatic review.
    fn apply_review_verdict(
        &mut self,
        now: Timestamp,
        key: PostingKey,
        verdict: std::result::Result<(), String>,
        events: &mut Vec<Event>,
    ) {
        let verified = self.employers[self.postings[key as usize].employer as usize].verified;
        self.update_posting(
            now,
            key,
            |p| match verdict {
                Err(reason) => {
                    p.state = PostingState::Rejected;
                    p.reason = Some(reason.into());
                }
                Ok(()) if verified => {
                    p.state = PostingState::Published;
                    p.reason = None;
                    p.published_at.get_or_insert(now);
                }
                Ok(()) => {
                    p.state = PostingState::PendingReview;
                    p.reason = None;
                }
            },
            events,
        );
    }

    pub(super) fn update_posting_spec(
        &mut self,
        now: Timestamp,
        spec: &PostingSpec,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        let key = self.posting_key(&spec.id)?;
        let p = &self.postings[key as usize];
        if spec.version <= p.version {
            if spec.version == p.version && self.same_content(p, spec) {
                return Ok(self.posting_unchanged(key));
            }
            return Err(EngineError::StaleVersion {
                id: spec.id.clone(),
                given: spec.version,
                current_version: p.version,
            });
        }
        check_version_step(p.version, spec.version)?;
        let (employer, trade, county) = self.resolve_posting_spec(spec)?;
        let action = "update";
        if matches!(p.state, PostingState::Cancelled | PostingState::Expired) {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action });
        }
        if employer != p.employer {
            return Err(EngineError::invalid("employer_id", "a posting's employer cannot change"));
        }
        let committed = p.engaged + p.completed;
        if committed > 0 && (trade != p.trade || spec.position != p.position) {
            return Err(EngineError::PostingState {
                id: p.id.clone(),
                state: p.state,
                action: "changing trade or place after workers accepted",
            });
        }
        if spec.headcount < committed {
            return Err(EngineError::invalid("headcount", format!("{committed} workers already accepted")));
        }
        let verified = self.employers[employer as usize].verified;
        if !verified && p.engaged > 0 {
            return Err(EngineError::PostingState {
                id: p.id.clone(),
                state: p.state,
                action: "updating an unverified employer's posting while workers are engaged",
            });
        }
        let verdict = self.auto_review(now, spec, employer);
        let mut updated = p.clone();
        self.fill_posting_from_spec(&mut updated, spec, trade, county);
        self.withdraw_pending_offers(now, key, events);
        self.update_posting(
            now,
            key,
            |slot| {
                updated.pending = slot.pending;
                *slot = updated;
            },
            events,
        );
        self.apply_review_verdict(now, key, verdict, events);
        Ok(self.posting_changed(key))
    }

    pub(super) fn review_posting(
        &mut self,
        now: Timestamp,
        id: &str,
        decision: &ReviewDecision,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        let key = self.posting_key(id)?;
        let p = &self.postings[key as usize];
        if p.state != PostingState::PendingReview {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action: "review" });
        }
        match decision {
            ReviewDecision::Approve => self.update_posting(
                now,
                key,
                |p| {
                    p.state = PostingState::Published;
                    p.published_at.get_or_insert(now);
                },
                events,
            ),
            ReviewDecision::Reject { reason } => self.update_posting(
                now,
                key,
                |p| {
                    p.state = PostingState::Rejected;
                    p.reason = Some(reason.clone());
                },
                events,
            ),
        }
        Ok(self.posting_changed(key))
    }

    pub(super) fn cancel_posting(
        &mut self,
        now: Timestamp,
        id: &str,
        reason: &str,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        let key = self.posting_key(id)?;
        let p = &self.postings[key as usize];
        if p.state.is_terminal() {
            return Err(EngineError::PostingState { id: p.id.clone(), state: p.state, action: "cancel" });
        }
        self.withdraw_pending_offers(now, key, events);
        for id in self.offers.of_posting(key) {
            self.close_offer(now, id, OfferState::Cancelled, WorkerAfter::WaitAgain, events);
        }
        self.update_posting(
            now,
            key,
            |p| {
                p.state = PostingState::Cancelled;
                p.reason = Some(reason.into());
            },
            events,
        );
        Ok(self.posting_changed(key))
    }
}

impl PostingSpec {
    fn expires_at_after(&self, now: Timestamp) -> bool {
        self.start.plus_minutes(self.duration_minutes as i64) > now
    }
}

/// The version bound: a submit or update raises a posting's version by at most
/// [`MAX_VERSION_STEP`] (the lower bound is checked by the caller).
fn check_version_step(current: u64, given: u64) -> Result<()> {
    if given.saturating_sub(current) <= MAX_VERSION_STEP {
        return Ok(());
    }
    Err(EngineError::invalid(
        "version",
        format!(
            "may rise by at most {MAX_VERSION_STEP} at a time: the current version is {current}, so at most {}",
            current.saturating_add(MAX_VERSION_STEP)
        ),
    ))
}
