//! Policies as files: a ranking policy and batch settings in TOML, validated
//! once with every problem reported.
//!
//! ```toml
//! name = "hardship-first"          # shown in tables; defaults to the file name
//!
//! [ranking]                        # any field left out keeps today's default
//! hardship_bonus_m = 4000
//! waiting_bonus_m_per_hour = 100
//! waiting_bonus_cap_m = 400
//! reliability_bonus_m = 300
//!
//! [batch]                          # optional: assign postings together
//! window_secs = 5                  # 0 = greedy (one by one), else 2..=60
//! counties = [141002]              # empty = every county
//! ```

use linggong_engine::{RankingPolicy, Regions};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Shortest and longest batch decision windows, seconds.
pub const BATCH_WINDOW_SECS: std::ops::RangeInclusive<u32> = 2..=60;

/// Batch assignment settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// Decision window, seconds; 0 means greedy matching, one posting at a time.
    pub window_secs: u32,
    /// Counties (division codes) that batch; empty means every county.
    pub counties: Vec<u32>,
}

impl BatchSettings {
    /// The engine's batch policy for these settings.
    pub fn engine_policy(&self) -> linggong_engine::BatchPolicy {
        linggong_engine::BatchPolicy {
            window_ms: self.window_secs.saturating_mul(1_000),
            counties: self.counties.clone(),
        }
    }

    /// Whether postings of this county are batched.
    pub fn batches(&self, county: u32) -> bool {
        self.window_secs > 0 && (self.counties.is_empty() || self.counties.contains(&county))
    }
}

/// A policy file: a name, a ranking policy and batch settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyFile {
    /// Name used in tables and charts.
    pub name: String,
    /// Candidate ranking.
    pub ranking: RankingPolicy,
    /// Batch assignment.
    pub batch: BatchSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Option<String>,
    #[serde(default)]
    ranking: RawRanking,
    #[serde(default)]
    batch: BatchSettings,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRanking {
    hardship_bonus_m: Option<f64>,
    waiting_bonus_m_per_hour: Option<f64>,
    waiting_bonus_cap_m: Option<f64>,
    reliability_bonus_m: Option<f64>,
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML of the policy's shape (the message names the line and the key).
    #[error("policy {origin} is not a valid policy file: {source}")]
    Toml {
        /// File or origin.
        origin: String,
        /// The parser's message.
        source: toml::de::Error,
    },
    /// Values out of range: every problem, one per line.
    #[error("policy {origin} is invalid:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// File or origin.
        origin: String,
        /// Every problem found, `field: reason`.
        problems: Vec<String>,
    },
}

impl PolicyFile {
    /// Today's policy in force: `ranking` as configured, no batching.
    pub fn current(name: impl Into<String>, ranking: RankingPolicy) -> Self {
        Self { name: name.into(), ranking, batch: BatchSettings::default() }
    }

    /// Reads and validates a policy file (counties are checked against `regions`).
    pub fn load(path: &Path, regions: &Regions) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Io { path: path.display().to_string(), source })?;
        let default_name = path.file_stem().map_or_else(|| "policy".into(), |s| s.to_string_lossy().into_owned());
        Self::parse(&text, &path.display().to_string(), &default_name, regions)
    }

    /// Parses and validates policy TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, default_name: &str, regions: &Regions) -> Result<Self, PolicyError> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|source| PolicyError::Toml { origin: origin.into(), source })?;
        let d = RankingPolicy::default();
        let r = raw.ranking;
        let policy = PolicyFile {
            name: raw.name.unwrap_or_else(|| default_name.into()),
            ranking: RankingPolicy {
                hardship_bonus_m: r.hardship_bonus_m.unwrap_or(d.hardship_bonus_m),
                waiting_bonus_m_per_hour: r.waiting_bonus_m_per_hour.unwrap_or(d.waiting_bonus_m_per_hour),
                waiting_bonus_cap_m: r.waiting_bonus_cap_m.unwrap_or(d.waiting_bonus_cap_m),
                reliability_bonus_m: r.reliability_bonus_m.unwrap_or(d.reliability_bonus_m),
            },
            batch: raw.batch,
        };
        let problems = policy.problems(regions);
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError::Invalid { origin: origin.into(), problems })
        }
    }

    /// Every problem of the policy, `field: reason` (empty when it is usable).
    pub fn problems(&self, regions: &Regions) -> Vec<String> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 64 {
            out.push("name: must be 1 to 64 characters".to_string());
        }
        out.extend(self.ranking.violations().into_iter().map(|v| format!("ranking.{v}")));
        let w = self.batch.window_secs;
        if w != 0 && !BATCH_WINDOW_SECS.contains(&w) {
            out.push(format!(
                "batch.window_secs: must be 0 (greedy) or {} to {} seconds, not {w}",
                BATCH_WINDOW_SECS.start(),
                BATCH_WINDOW_SECS.end()
            ));
        }
        for (i, code) in self.batch.counties.iter().enumerate() {
            if regions.index_of(*code).is_none() {
                out.push(format!("batch.counties[{i}]: {code} is not one of the counties served"));
            } else if self.batch.counties[..i].contains(code) {
                out.push(format!("batch.counties[{i}]: {code} is listed twice"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
        PolicyFile::parse(text, "test.toml", "test", &Regions::linfen())
    }

    #[test]
    fn a_full_file_loads_and_missing_fields_keep_the_defaults() {
        let p =
            parse("name = \"hf\"\n[ranking]\nhardship_bonus_m = 4000\n[batch]\nwindow_secs = 5\ncounties = [141002]\n")
                .unwrap();
        assert_eq!(p.name, "hf");
        assert_eq!(p.ranking.hardship_bonus_m, 4000.0);
        assert_eq!(p.ranking.waiting_bonus_cap_m, RankingPolicy::default().waiting_bonus_cap_m);
        assert!(p.batch.batches(141002) && !p.batch.batches(141021));
        let empty = parse("").unwrap();
        assert_eq!(
            (empty.name.as_str(), &empty.ranking, empty.batch.window_secs),
            ("test", &RankingPolicy::default(), 0)
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = parse("[ranking]\nhardship_bonus_m = -1\nreliability_bonus_m = 1e9\n[batch]\nwindow_secs = 1\ncounties = [1, 141002, 141002]\n")
            .unwrap_err();
        let PolicyError::Invalid { problems, .. } = &e else { panic!("{e}") };
        assert_eq!(problems.len(), 5, "{problems:?}");
        let text = e.to_string();
        for needle in [
            "ranking.hardship_bonus_m",
            "ranking.reliability_bonus_m",
            "batch.window_secs",
            "counties[0]",
            "listed twice",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_line() {
        let e = parse("[ranking]\nhardship_bonus = 4000\n").unwrap_err();
        assert!(matches!(e, PolicyError::Toml { .. }) && e.to_string().contains("hardship_bonus"), "{e}");
        let e = parse("[ranking]\nhardship_bonus_m = \"far\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
