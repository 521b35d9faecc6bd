//! Market directory commands: upsert, remove.

use super::{Engine, Result};
use crate::command::*;
use crate::directory::{MarketKind, MarketSpec, MAX_INDOOR_AREA_M2, MAX_MARKET_TRADES};
use crate::error::EngineError;

impl Engine {
    pub(super) fn upsert_market(&mut self, spec: &MarketSpec) -> Result<Outcome> {
        let l = &self.config.limits;
        self.check_id("market_id", &spec.id)?;
        self.county_idx("county", spec.county)?;
        match (&spec.township, spec.kind) {
            (None, MarketKind::TownshipStation) => {
                return Err(EngineError::invalid("township", "a township station needs its township code"))
            }
            (t, _) => self.check_township(t)?,
        }
        for (field, text, max) in [
            ("name", &spec.name, l.max_name_len),
            ("address", &spec.address, l.max_text_len),
            ("opening_hours", &spec.opening_hours, l.max_name_len),
            ("hotline", &spec.hotline, l.max_phone_len),
            ("complaint_channel", &spec.complaint_channel, l.max_name_len),
        ] {
            if text.trim().is_empty() {
                return Err(EngineError::invalid(field, "must not be empty"));
            }
            Self::check_text(field, text, max)?;
        }
        Self::check_position("position", spec.position)?;
        if spec.indoor_area_m2 == 0 || spec.indoor_area_m2 > MAX_INDOOR_AREA_M2 {
            return Err(EngineError::invalid("indoor_area_m2", format!("must be 1 to {MAX_INDOOR_AREA_M2}")));
        }
        if spec.trades.len() > MAX_MARKET_TRADES {
            return Err(EngineError::invalid("trades", format!("at most {MAX_MARKET_TRADES} trades")));
        }
        for (i, t) in spec.trades.iter().enumerate() {
            if self.trades.index_of(t).is_none() {
                return Err(EngineError::invalid("trades", format!("unknown trade `{t}`")));
            }
            if spec.trades[..i].contains(t) {
                return Err(EngineError::invalid("trades", format!("trade `{t}` repeated")));
            }
        }
        if spec.kind == MarketKind::CountyMarket {
            if let Some(other) = self.directory.county_market(spec.county).filter(|m| m.id != spec.id) {
                return Err(EngineError::invalid(
                    "kind",
                    format!("county {} already has county market `{}`", spec.county, other.id),
                ));
            }
        }
        let created = self.directory.upsert(spec.clone());
        Ok(Outcome::MarketUpserted { created })
    }

    pub(super) fn remove_market(&mut self, market: &str) -> Result<Outcome> {
        match self.directory.remove(market) {
            Some(_) => Ok(Outcome::MarketRemoved),
            None => Err(EngineError::UnknownMarket(market.into())),
        }
    }
}
