//! Complaint commands: file, resolve.

use super::{Engine, Result};
use crate::command::*;
use crate::error::EngineError;
use crate::model::*;

impl Engine {
    pub(super) fn file_complaint(
        &mut self,
        now: Timestamp,
        employer: &str,
        posting: Option<&str>,
        county: u32,
        category: ComplaintCategory,
        detail: &str,
    ) -> Result<Outcome> {
        let county = self.county_idx(county)?;
        let ek = self.employer_key(employer)?;
        let posting = posting.map(|p| self.posting_key(p)).transpose()?;
        let id = self.complaints.len() as ComplaintId + 1;
        self.complaints.push(Complaint {
            id,
            employer: ek,
            posting,
            county,
            category,
            detail: detail.into(),
            filed_at: now,
            resolution: None,
            resolved_by: None,
        });
        self.employers[ek as usize].complaints += 1;
        self.counters[county as usize].complaints_filed += 1;
        self.ledger.complaint_filed(self.county_code(county), now, category);
        Ok(Outcome::ComplaintFiled { complaint: id })
    }

    pub(super) fn resolve_complaint(
        &mut self,
        now: Timestamp,
        id: ComplaintId,
        resolution: ComplaintResolution,
        note: &str,
    ) -> Result<Outcome> {
        let c = id
            .checked_sub(1)
            .and_then(|i| self.complaints.get_mut(i as usize))
            .ok_or(EngineError::UnknownComplaint(id))?;
        if c.resolution.is_some() {
            return Err(EngineError::ComplaintResolved(id));
        }
        c.resolution = Some((resolution, now, note.into()));
        let (county, category, filed_at) = (c.county, c.category, c.filed_at);
        self.counters[county as usize].complaints_resolved += 1;
        self.ledger.complaint_resolved(self.county_code(county), now, category, filed_at);
        Ok(Outcome::ComplaintResolved)
    }
}
