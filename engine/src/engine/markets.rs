//! Market directory commands: upsert, remove.

use super::{Engine, Result};
use crate::command::*;
use crate::directory::{MarketKind, MarketSpec};
use crate::error::EngineError;

impl Engine {
    pub(super) fn upsert_market(&mut self, spec: &MarketSpec) -> Result<Outcome> {
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
