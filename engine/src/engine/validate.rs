//! Input rules shared by the command families.

use super::{Engine, Result};
use crate::catalog::CountyIdx;
use crate::error::EngineError;
use crate::geo::LatLon;
use compact_str::CompactString;

impl Engine {
    pub(super) fn check_id(&self, field: &'static str, id: &str) -> Result<()> {
        if id.is_empty() {
            return Err(EngineError::invalid(field, "must not be empty"));
        }
        if id.len() > self.config.limits.max_id_len {
            return Err(EngineError::invalid(field, format!("longer than {} bytes", self.config.limits.max_id_len)));
        }
        if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(EngineError::invalid(field, "contains whitespace or control characters"));
        }
        Ok(())
    }

    pub(super) fn check_text(field: &'static str, text: &str, max: usize) -> Result<()> {
        if text.len() > max {
            return Err(EngineError::invalid(field, format!("longer than {max} bytes")));
        }
        Ok(())
    }

    pub(super) fn check_position(field: &'static str, p: LatLon) -> Result<()> {
        if !p.is_valid() {
            return Err(EngineError::invalid(field, "latitude must be in -90..=90 and longitude in -180..=180"));
        }
        Ok(())
    }

    pub(super) fn county_idx(&self, field: &'static str, code: u32) -> Result<CountyIdx> {
        self.regions.index_of(code).ok_or_else(|| EngineError::invalid(field, format!("unknown county {code}")))
    }

    pub(super) fn check_township(&self, t: &Option<CompactString>) -> Result<()> {
        if let Some(t) = t {
            self.check_id("township", t)?;
        }
        Ok(())
    }
}
