//! Employer commands: upsert, suspend, reinstate.

use super::{Engine, Result};
use crate::command::*;
use crate::error::EngineError;
use crate::model::*;

impl Engine {
    pub(super) fn upsert_employer(&mut self, spec: &EmployerSpec) -> Result<Outcome> {
        self.check_id("employer_id", &spec.id)?;
        if spec.name.trim().is_empty() {
            return Err(EngineError::invalid("name", "must not be empty"));
        }
        Self::check_text("name", &spec.name, self.config.limits.max_name_len)?;
        if let EmployerKind::Company { credit_code } = &spec.kind {
            let ok =
                credit_code.len() == 18 && credit_code.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
            if !ok {
                return Err(EngineError::invalid("credit_code", "must be 18 digits or capital letters"));
            }
        }
        match self.employer_ids.get(&spec.id) {
            Some(&key) => {
                let e = &mut self.employers[key as usize];
                e.name = spec.name.clone();
                e.kind = spec.kind.clone();
                e.verified = spec.verified;
                Ok(Outcome::EmployerUpserted { created: false })
            }
            None => {
                let key = self.employers.len() as EmployerKey;
                self.employers.push(Employer {
                    id: spec.id.clone(),
                    name: spec.name.clone(),
                    kind: spec.kind.clone(),
                    verified: spec.verified,
                    suspended: false,
                    suspension_reason: None,
                    complaints: 0,
                });
                self.employer_ids.insert(spec.id.clone(), key);
                Ok(Outcome::EmployerUpserted { created: true })
            }
        }
    }

    fn postings_of(&self, employer: EmployerKey) -> Vec<PostingKey> {
        (0..self.postings.len() as PostingKey)
            .filter(|&k| {
                let p = &self.postings[k as usize];
                p.employer == employer && !p.state.is_terminal()
            })
            .collect()
    }

    pub(super) fn suspend_employer(
        &mut self,
        now: Timestamp,
        id: &str,
        reason: &str,
        events: &mut Vec<Event>,
    ) -> Result<Outcome> {
        Self::check_text("reason", reason, self.config.limits.max_text_len)?;
        let key = self.employer_key(id)?;
        let e = &mut self.employers[key as usize];
        e.suspended = true;
        e.suspension_reason = Some(reason.into());
        let mut withdrawn = 0;
        for pk in self.postings_of(key) {
            withdrawn += self.withdraw_pending_offers(now, pk, events);
            self.update_posting(now, pk, |_| {}, events);
        }
        Ok(Outcome::EmployerStatusChanged { suspended: true, offers_withdrawn: withdrawn })
    }

    pub(super) fn reinstate_employer(&mut self, now: Timestamp, id: &str, events: &mut Vec<Event>) -> Result<Outcome> {
        let key = self.employer_key(id)?;
        let e = &mut self.employers[key as usize];
        e.suspended = false;
        e.suspension_reason = None;
        for pk in self.postings_of(key) {
            self.update_posting(now, pk, |_| {}, events);
        }
        Ok(Outcome::EmployerStatusChanged { suspended: false, offers_withdrawn: 0 })
    }
}
