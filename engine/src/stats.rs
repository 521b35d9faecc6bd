//! Per-county counters kept as commands apply, and the statistics view built from them.

use crate::model::PostingState;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// How many recent time-to-fill samples each county keeps for its median.
pub const FILL_TIME_SAMPLES: usize = 1024;

/// Running counters of one county. Part of the engine state (and snapshots).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CountyCounters {
    /// New worker registrations.
    pub registrations: u64,
    /// Offers made (instant and reverse matches).
    pub offers_made: u64,
    /// Offers accepted.
    pub offers_accepted: u64,
    /// Offers declined.
    pub offers_declined: u64,
    /// Offers that expired unanswered.
    pub offers_expired: u64,
    /// Postings that became filled.
    pub postings_filled: u64,
    /// Accepted offers that went to hardship workers.
    pub hardship_placements: u64,
    /// Jobs completed.
    pub completions: u64,
    /// No-shows reported.
    pub no_shows: u64,
    /// Complaints filed.
    pub complaints_filed: u64,
    /// Complaints resolved.
    pub complaints_resolved: u64,
    /// Recent times from publication to filled, seconds (ring of [`FILL_TIME_SAMPLES`]).
    pub fill_times_secs: Vec<u64>,
    /// Next slot to overwrite in `fill_times_secs` once full.
    pub fill_times_next: usize,
}

impl CountyCounters {
    pub(crate) fn record_fill(&mut self, secs: u64) {
        self.postings_filled += 1;
        if self.fill_times_secs.len() < FILL_TIME_SAMPLES {
            self.fill_times_secs.push(secs);
        } else {
            // `%` also keeps a cursor from a damaged snapshot in range.
            let len = self.fill_times_secs.len();
            self.fill_times_secs[self.fill_times_next % len] = secs;
            self.fill_times_next = (self.fill_times_next % len + 1) % len;
        }
    }

    /// Median of the recent time-to-fill samples, seconds.
    pub fn median_fill_secs(&self) -> Option<u64> {
        median(&self.fill_times_secs)
    }
}

/// The median of samples (the lower one of an even count), `None` when empty.
pub fn median<T: Copy + Ord>(samples: &[T]) -> Option<T> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    Some(v[(v.len() - 1) / 2])
}

/// Statistics of one county.
#[derive(Clone, Debug, PartialEq)]
pub struct CountyStats {
    /// County division code.
    pub county: u32,
    /// Waiting workers per trade id (a worker counts once per trade).
    pub waiting_by_trade: Vec<(CompactString, u32)>,
    /// Postings per state.
    pub postings_by_state: Vec<(PostingState, u32)>,
    /// Running counters.
    pub counters: CountyCounters,
}
