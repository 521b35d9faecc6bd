//! The logged policy change: a new ranking policy is validated, and the
//! worker index, whose entries carry each worker's static credit under the
//! policy, is rebuilt under it.

use super::worker_index::WorkerIndex;
use super::{Engine, Result};
use crate::command::Outcome;
use crate::config::RankingPolicy;
use crate::error::EngineError;

impl Engine {
    pub(super) fn set_ranking_policy(&mut self, policy: &RankingPolicy) -> Result<Outcome> {
        if let Some(v) = policy.violations().into_iter().next() {
            return Err(EngineError::invalid(v.field, v.reason));
        }
        if *policy == self.config.policy {
            return Ok(Outcome::PolicySet { changed: false });
        }
        let index = WorkerIndex::bulk_load(policy, self.regions.len(), self.trades.len(), &self.workers)
            .map_err(|i| EngineError::invalid("policy", format!("worker record {i} repeats an id")))?;
        self.worker_index = index;
        self.config.policy = policy.clone();
        Ok(Outcome::PolicySet { changed: true })
    }
}
