//! Engine configuration: the ranking policy, input limits and market rules.

use crate::model::{Timestamp, Worker};
use serde::{Deserialize, Serialize};

/// How candidates for a posting are ranked.
///
/// Each candidate gets an *effective distance* in metres:
///
/// ```text
/// effective = distance
///           - hardship_bonus_m                      (if the worker has a hardship category)
///           - min(hours_waiting * waiting_bonus_m_per_hour, waiting_bonus_cap_m)
///           - reliability_bonus_m * reliability_score   (score in 0..=1, a new worker 0.5)
/// ```
///
/// Lower is better; equal effective distances break on worker id. So nearer is
/// better; a hardship worker is preferred over one up to `hardship_bonus_m`
/// nearer ("comparable"); waiting time and reliability break near-ties worth at
/// most their caps. All bonuses are bounded, which lets the matcher stop
/// scanning once the next-nearest worker cannot beat the current selection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankingPolicy {
    /// Head start for hardship workers, metres.
    pub hardship_bonus_m: f64,
    /// Credit per hour of waiting, metres.
    pub waiting_bonus_m_per_hour: f64,
    /// Cap of the waiting credit, metres.
    pub waiting_bonus_cap_m: f64,
    /// Credit for a perfect reliability score, metres.
    pub reliability_bonus_m: f64,
}

impl Default for RankingPolicy {
    fn default() -> Self {
        Self {
            hardship_bonus_m: 1_500.0,
            waiting_bonus_m_per_hour: 100.0,
            waiting_bonus_cap_m: 400.0,
            reliability_bonus_m: 300.0,
        }
    }
}

impl RankingPolicy {
    /// Largest credit of any kind a policy may give, metres: beyond it a credit
    /// would outweigh every travel distance the limits allow.
    pub const MAX_CREDIT_M: f64 = 100_000.0;

    /// Every way the policy is unusable (empty when it is fine): each credit
    /// must be a finite number from 0 to [`RankingPolicy::MAX_CREDIT_M`].
    pub fn violations(&self) -> Vec<PolicyViolation> {
        let mut out = Vec::new();
        for (field, value) in [
            ("hardship_bonus_m", self.hardship_bonus_m),
            ("waiting_bonus_m_per_hour", self.waiting_bonus_m_per_hour),
            ("waiting_bonus_cap_m", self.waiting_bonus_cap_m),
            ("reliability_bonus_m", self.reliability_bonus_m),
        ] {
            if !value.is_finite() || !(0.0..=Self::MAX_CREDIT_M).contains(&value) {
                out.push(PolicyViolation {
                    field,
                    reason: format!("must be a number from 0 to {}, not {value}", Self::MAX_CREDIT_M),
                });
            }
        }
        out
    }

    /// Largest total credit any worker can get.
    pub fn max_bonus_m(&self) -> f64 {
        self.hardship_bonus_m.max(0.0) + self.waiting_bonus_cap_m.max(0.0) + self.reliability_bonus_m.max(0.0)
    }

    /// Effective distance of a worker at `distance_m` (lower ranks first).
    pub fn effective_distance(&self, distance_m: f64, worker: &Worker, now: Timestamp) -> f64 {
        let mut score = distance_m;
        if worker.hardship.is_hardship() {
            score -= self.hardship_bonus_m.max(0.0);
        }
        let hours = (now.0.saturating_sub(worker.waiting_since.0)).max(0) as f64 / 3_600_000.0;
        score -= (hours * self.waiting_bonus_m_per_hour.max(0.0)).min(self.waiting_bonus_cap_m.max(0.0));
        score -= self.reliability_bonus_m.max(0.0) * worker.reliability.score();
        score
    }
}

/// One reason a ranking policy is unusable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyViolation {
    /// The field, e.g. `hardship_bonus_m`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Sizes and ranges inputs must respect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest id (worker, employer, posting), bytes.
    pub max_id_len: usize,
    /// Longest name, bytes.
    pub max_name_len: usize,
    /// Longest phone number, bytes.
    pub max_phone_len: usize,
    /// Longest free text (description, reason, complaint detail), bytes.
    pub max_text_len: usize,
    /// Most trades per worker.
    pub max_trades_per_worker: usize,
    /// Most workers per posting.
    pub max_headcount: u8,
    /// Farthest travel distance a posting may ask for, metres.
    pub max_travel_distance_m: u32,
    /// Longest job, minutes.
    pub max_duration_minutes: u32,
    /// How far ahead a posting may start, seconds.
    pub max_start_ahead_secs: i64,
    /// How long after its start a posting may still be submitted, seconds.
    pub max_start_behind_secs: i64,
    /// Longest offer answer time, seconds.
    pub max_offer_ttl_secs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_id_len: 64,
            max_name_len: 128,
            max_phone_len: 32,
            max_text_len: 2_000,
            max_trades_per_worker: 8,
            max_headcount: 50,
            max_travel_distance_m: 100_000,
            max_duration_minutes: 31 * 24 * 60,
            max_start_ahead_secs: 90 * 24 * 3600,
            max_start_behind_secs: 24 * 3600,
            max_offer_ttl_secs: 24 * 3600,
        }
    }
}

/// Engine configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Candidate ranking.
    pub policy: RankingPolicy,
    /// Input limits.
    pub limits: Limits,
    /// Minimum daily wage, yuan, for counties without an override.
    pub min_daily_wage: u32,
    /// Per-county minimum daily wage overrides: (division code, yuan).
    pub county_min_daily_wage: Vec<(u32, u32)>,
    /// Offer answer time when a posting gives none, seconds.
    pub default_offer_ttl_secs: u32,
    /// Whether a worker who becomes available is matched against open postings.
    pub reverse_match: bool,
    /// Batch decision windows (greedy, one posting at a time, by default).
    pub batch: BatchPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policy: RankingPolicy::default(),
            limits: Limits::default(),
            min_daily_wage: 80,
            county_min_daily_wage: Vec::new(),
            default_offer_ttl_secs: 300,
            reverse_match: true,
            batch: BatchPolicy::default(),
        }
    }
}

impl EngineConfig {
    /// Minimum daily wage in a county.
    pub fn min_daily_wage_for(&self, county_code: u32) -> u32 {
        self.county_min_daily_wage.iter().find(|(c, _)| *c == county_code).map_or(self.min_daily_wage, |(_, w)| *w)
    }
}

/// Batch assignment: instant-match requests of a batching county wait in a
/// decision window and are assigned together (most slots filled, then least
/// total effective distance) when it closes, instead of one by one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPolicy {
    /// Decision window, milliseconds; 0 means greedy matching.
    pub window_ms: u32,
    /// Counties (division codes) that batch; empty means every county.
    pub counties: Vec<u32>,
}

impl BatchPolicy {
    /// Shortest and longest decision windows, milliseconds (when not greedy).
    pub const WINDOW_MS: std::ops::RangeInclusive<u32> = 1_000..=60_000;

    /// Whether instant matches of this county wait for a window.
    pub fn batches(&self, county_code: u32) -> bool {
        self.window_ms > 0 && (self.counties.is_empty() || self.counties.contains(&county_code))
    }

    /// Every problem with these settings (counties are checked by the engine,
    /// which knows them).
    pub fn violations(&self) -> Vec<PolicyViolation> {
        let mut out = Vec::new();
        if self.window_ms != 0 && !Self::WINDOW_MS.contains(&self.window_ms) {
            out.push(PolicyViolation {
                field: "window_ms",
                reason: format!(
                    "must be 0 (greedy) or from {} to {} milliseconds, not {}",
                    Self::WINDOW_MS.start(),
                    Self::WINDOW_MS.end(),
                    self.window_ms
                ),
            });
        }
        out
    }
}
