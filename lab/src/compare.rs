//! A comparison of policies over one logged window: the live figures (the
//! log as it happened), the baseline policy and each other policy replayed
//! with the response model over several seeds, with means, 95% confidence
//! intervals across seeds, and each policy's paired difference from the
//! baseline (same seed, so the same draws for the same worker and posting).

use crate::figures::{metrics, Area, Figures, Metric};
use crate::model::ModelSummary;
use crate::policy::PolicyFile;
use crate::replay::{run, run_batched, Answers, LabError, LoggedStep, ReplayStats};
use linggong_engine::{Engine, Timestamp};
use serde::Serialize;

/// Two-sided 95% quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// Mean and 95% confidence interval of a figure across seeds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Mean over the seeds that gave a value.
    pub mean: f64,
    /// Half-width of the 95% interval (0 with a single seed).
    pub half_width: f64,
    /// Seeds that gave a value.
    pub n: usize,
}

impl Estimate {
    /// Mean and interval of the values present.
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Option<Estimate> {
        let v: Vec<f64> = values.into_iter().flatten().collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let half_width = if n < 2 {
            0.0
        } else {
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let t = T975.get(n - 2).copied().unwrap_or(1.96);
            t * (var / n as f64).sqrt()
        };
        Some(Estimate { mean, half_width, n })
    }
}

/// One replayed policy across seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Column {
    /// The policy.
    pub policy: PolicyFile,
    /// Figures per seed, in seed order.
    pub seeds: Vec<Figures>,
    /// Counts per seed.
    pub stats: Vec<ReplayStats>,
}

/// What to compare.
pub struct LabRequest<'a> {
    /// State at the window start.
    pub start: &'a Engine,
    /// The window's logged commands.
    pub steps: &'a [LoggedStep],
    /// Window start.
    pub from: Timestamp,
    /// Window end (exclusive).
    pub to: Timestamp,
    /// The baseline policy (usually the one that was live).
    pub baseline: PolicyFile,
    /// The policies to compare with it.
    pub policies: Vec<PolicyFile>,
    /// Response-model seeds: 1, 2, ..., `seeds`.
    pub seeds: u32,
}

/// The result: live figures, the model and every policy's replays.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Figure definitions, in row order.
    pub metrics: Vec<Metric>,
    /// Window start, log time.
    pub from: Timestamp,
    /// Window end, log time.
    pub to: Timestamp,
    /// The window as it happened (the log replayed with its own answers under the live policy).
    pub live: Figures,
    /// Counts of the live replay (nothing should be refused).
    pub live_stats: ReplayStats,
    /// The response model fitted from the window.
    pub model: ModelSummary,
    /// The baseline first, then each policy.
    pub columns: Vec<Column>,
}

impl LabRequest<'_> {
    /// Runs the comparison: the live replay (which also fits the response
    /// model), then every policy under every seed. Also returns the live
    /// replay's final engine, for checking it against the live state.
    pub fn compare(&self, live_policy: &linggong_engine::RankingPolicy) -> Result<(Comparison, Engine), LabError> {
        let live = run(self.start, live_policy, self.steps, (self.from, self.to), Answers::Recorded)?;
        let model = live.fit.model();
        let mut columns = Vec::new();
        for policy in std::iter::once(&self.baseline).chain(&self.policies) {
            let mut column = Column { policy: policy.clone(), seeds: Vec::new(), stats: Vec::new() };
            for seed in 1..=u64::from(self.seeds.max(1)) {
                let r = run_batched(
                    self.start,
                    &policy.ranking,
                    &policy.batch.engine_policy(),
                    self.steps,
                    (self.from, self.to),
                    Answers::Modelled { model: &model, seed },
                )?;
                column.seeds.push(r.figures);
                column.stats.push(r.stats);
            }
            columns.push(column);
        }
        let comparison = Comparison {
            metrics: metrics(),
            from: self.from,
            to: self.to,
            live: live.figures,
            live_stats: live.stats,
            model: model.summary(),
            columns,
        };
        Ok((comparison, live.engine))
    }
}

impl Comparison {
    /// Areas in the comparison: the city, then counties by code.
    pub fn areas(&self) -> Vec<Area> {
        self.live.areas.keys().copied().collect()
    }

    /// A column's estimate of a figure.
    pub fn estimate(&self, column: usize, area: Area, metric: usize) -> Option<Estimate> {
        let c = self.columns.get(column)?;
        Estimate::of(c.seeds.iter().map(|f| f.areas.get(&area).and_then(|r| r[metric])))
    }

    /// A column's paired difference from the baseline (column 0), seed by seed.
    pub fn difference(&self, column: usize, area: Area, metric: usize) -> Option<Estimate> {
        let (base, c) = (self.columns.first()?, self.columns.get(column)?);
        Estimate::of(base.seeds.iter().zip(&c.seeds).map(|(b, x)| {
            let b = b.areas.get(&area).and_then(|r| r[metric])?;
            let x = x.areas.get(&area).and_then(|r| r[metric])?;
            Some(x - b)
        }))
    }

    /// The live figure.
    pub fn live(&self, area: Area, metric: usize) -> Option<f64> {
        self.live.areas.get(&area).and_then(|r| r[metric])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_use_students_t() {
        let e = Estimate::of([Some(1.0), Some(2.0), Some(3.0), None]).unwrap();
        assert_eq!((e.mean, e.n), (2.0, 3));
        // sd = 1, t(2) = 4.303: 4.303 / sqrt(3).
        assert!((e.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{e:?}");
        assert_eq!(Estimate::of([None, None]), None);
        assert_eq!(Estimate::of([Some(5.0)]).unwrap().half_width, 0.0);
    }
}
