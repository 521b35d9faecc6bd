//! Batch decision windows: instant matches of a batching county wait until
//! their county's window closes and are then assigned together by
//! [`assign_batch`] (most slots filled, then least total effective distance),
//! under the same eligibility rules and policy credits as greedy matching.

use super::matching::Ranking;
use super::{Engine, Result};
use crate::batch::{assign_batch, BatchCandidate, BatchPosting};
use crate::command::*;
use crate::config::BatchPolicy;
use crate::cow_vec::CowVec;
use crate::error::{EngineError, InvariantViolation};
use crate::model::*;
use serde::{Deserialize, Serialize};

/// How many candidates per open slot a window looks at: the assignment can
/// give a posting's best candidates to another posting and still fill it
/// from the rest.
const CANDIDATES_PER_SLOT: usize = 3;

/// Most requests a window holds: the one that fills it closes it at once
/// (at the next tick). The assignment's cost grows with the cube of a
/// component's slots (about 3.6 ms for 100 postings, 6 s for 1,000 on the
/// bench), and the engine does nothing else meanwhile.
pub const MAX_WINDOW_REQUESTS: usize = 64;

/// One county's open decision window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// County (index) whose requests wait here.
    pub county: u16,
    /// When it closes.
    pub closes_at: Timestamp,
    /// Requests in arrival order: posting and its `max_offers` (0 = every open slot).
    pub requests: Vec<(PostingKey, u8)>,
}

/// The open decision windows, at most one per county. Owns: a posting waits
/// in at most one window (the county's it had when it joined; an update that
/// moves it leaves it there until that window closes); windows are kept in
/// county order, so closing several at once is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchWindows {
    windows: Vec<Window>,
}

impl BatchWindows {
    /// The windows, in county order.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Rebuilds from a snapshot's windows, refusing a posting in two windows or
    /// a county twice.
    pub fn from_windows(mut windows: Vec<Window>) -> std::result::Result<Self, String> {
        windows.sort_by_key(|w| w.county);
        if windows.windows(2).any(|p| p[0].county == p[1].county) {
            return Err("two decision windows for one county".into());
        }
        let mut seen: Vec<PostingKey> = windows.iter().flat_map(|w| w.requests.iter().map(|r| r.0)).collect();
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != n {
            return Err("a posting waits in two decision windows".into());
        }
        Ok(Self { windows })
    }

    /// When the earliest window closes.
    pub fn next_close(&self) -> Option<Timestamp> {
        self.windows.iter().map(|w| w.closes_at).min()
    }

    /// Whether this posting waits in a window.
    pub fn contains(&self, posting: PostingKey) -> bool {
        self.windows.iter().any(|w| w.requests.iter().any(|r| r.0 == posting))
    }

    /// Adds a request to its county's window, opening one that closes at
    /// `now + window_ms` if there is none; a posting already waiting keeps its
    /// place and takes the newer `max_offers`; a window that reaches
    /// [`MAX_WINDOW_REQUESTS`] closes now. Returns when the window closes.
    fn join(&mut self, now: Timestamp, window_ms: u32, county: u16, posting: PostingKey, max_offers: u8) -> Timestamp {
        // A posting already waiting keeps its window, even if an update moved it to another county.
        for window in &mut self.windows {
            if let Some(r) = window.requests.iter_mut().find(|r| r.0 == posting) {
                r.1 = max_offers;
                return window.closes_at;
            }
        }
        let at = match self.windows.binary_search_by_key(&county, |w| w.county) {
            Ok(at) => at,
            Err(at) => {
                let closes_at = Timestamp(now.0.saturating_add(i64::from(window_ms)));
                self.windows.insert(at, Window { county, closes_at, requests: Vec::new() });
                at
            }
        };
        let window = &mut self.windows[at];
        window.requests.push((posting, max_offers));
        if window.requests.len() >= MAX_WINDOW_REQUESTS {
            window.closes_at = window.closes_at.min(now);
        }
        window.closes_at
    }

    /// Every request names a known posting, once; windows in county order.
    pub(super) fn check(&self, postings: &CowVec<Posting>) -> std::result::Result<(), InvariantViolation> {
        let mut seen = rustc_hash::FxHashSet::default();
        for (i, w) in self.windows.iter().enumerate() {
            if i > 0 && self.windows[i - 1].county >= w.county {
                return Err(InvariantViolation("decision windows out of county order".into()));
            }
            for &(key, _) in &w.requests {
                if postings.get(key as usize).is_none() {
                    return Err(InvariantViolation(format!(
                        "decision window of county {} holds unknown posting {key}",
                        w.county
                    )));
                }
                if !seen.insert(key) {
                    return Err(InvariantViolation(format!("posting {key} waits in two decision windows")));
                }
            }
        }
        Ok(())
    }

    /// Removes and returns the windows closed at `now`, in county order.
    fn take_due(&mut self, now: Timestamp) -> Vec<Window> {
        let (due, open) = std::mem::take(&mut self.windows).into_iter().partition(|w| w.closes_at <= now);
        self.windows = open;
        due
    }
}

impl Engine {
    /// The batch policy in force.
    pub fn batch_policy(&self) -> &BatchPolicy {
        &self.config.batch
    }

    /// The open decision windows.
    pub fn batch_windows(&self) -> &BatchWindows {
        &self.batch
    }

    pub(super) fn set_batch_policy(&mut self, batch: &BatchPolicy) -> Result<Outcome> {
        if let Some(v) = batch.violations().into_iter().next() {
            return Err(EngineError::invalid(v.field, v.reason));
        }
        if let Some(code) = batch.counties.iter().find(|c| self.regions.index_of(**c).is_none()) {
            return Err(EngineError::invalid("counties", format!("unknown county {code}")));
        }
        if *batch == self.config.batch {
            return Ok(Outcome::PolicySet { changed: false });
        }
        self.config.batch = batch.clone();
        Ok(Outcome::PolicySet { changed: true })
    }

    /// Whether an instant match of this posting waits for a window.
    pub(super) fn batches_posting(&self, posting: &str) -> bool {
        self.config.batch.window_ms > 0
            && self.posting(posting).is_some_and(|p| self.config.batch.batches(self.county_code(p.county)))
    }

    /// An instant match in a batching county: the same checks as greedy
    /// matching, then the request joins the county's window.
    pub(super) fn queue_instant_match(&mut self, now: Timestamp, posting: &str, max_offers: u8) -> Result<Outcome> {
        let key = self.matchable_posting(posting)?;
        let p = &self.postings[key as usize];
        let remaining = p.remaining();
        if remaining == 0 {
            return Ok(Outcome::Matched { offers: Vec::new(), remaining });
        }
        let county = p.county;
        let decide_at = self.batch.join(now, self.config.batch.window_ms, county, key, max_offers);
        Ok(Outcome::Queued { decide_at, remaining })
    }

    /// Assigns the windows due at `now`; returns the offers made. Requests whose
    /// posting closed or whose employer was suspended meanwhile are dropped.
    /// Slots the assignment leaves open (every candidate it looked at went
    /// elsewhere) are then filled greedily, in arrival order, so a window
    /// never fills fewer slots than asking one by one would have.
    pub(super) fn close_due_windows(&mut self, now: Timestamp, events: &mut Vec<Event>) -> u32 {
        let due = self.batch.take_due(now);
        let mut made = 0;
        let mut ranking = Ranking::default();
        for window in due {
            let mut wanted = Vec::with_capacity(window.requests.len());
            let mut input = Vec::with_capacity(window.requests.len());
            for &(key, max_offers) in &window.requests {
                let p = &self.postings[key as usize];
                if !p.state.is_open() || self.employers[p.employer as usize].suspended {
                    continue;
                }
                let remaining = p.remaining();
                let want = if max_offers == 0 { remaining } else { remaining.min(max_offers) };
                if want == 0 {
                    continue;
                }
                self.rank_candidates(now, key, CANDIDATES_PER_SLOT * want as usize, &mut ranking);
                let candidates =
                    ranking.best.iter().map(|c| BatchCandidate { worker: c.key, cost_m: c.score }).collect::<Vec<_>>();
                wanted.push((key, want));
                input.push(BatchPosting { slots: want, candidates });
            }
            let pairs = assign_batch(&input);
            let mut offered = vec![0u8; wanted.len()];
            let mut county_matches = 0;
            let mut start = 0;
            while start < pairs.len() {
                let i = pairs[start].posting;
                let end = start + pairs[start..].iter().take_while(|q| q.posting == i).count();
                let key = wanted[i].0;
                // Offers of one posting best first, as greedy matching makes them.
                let mut mine: Vec<(f64, WorkerKey)> = pairs[start..end]
                    .iter()
                    .map(|q| {
                        let cost = input[i].candidates.iter().find(|c| c.worker == q.worker).map_or(0.0, |c| c.cost_m);
                        (cost, q.worker)
                    })
                    .collect();
                mine.sort_by(|a, b| {
                    a.0.total_cmp(&b.0).then_with(|| self.workers[a.1 as usize].id.cmp(&self.workers[b.1 as usize].id))
                });
                for (_, worker) in mine {
                    let d = self.workers[worker as usize].position.distance_m(self.postings[key as usize].position);
                    self.create_offer(now, key, worker, d, events);
                    offered[i] += 1;
                }
                self.update_posting(now, key, |p| p.pending += offered[i], events);
                made += u32::from(offered[i]);
                county_matches += 1;
                start = end;
            }
            // Greedy top-up of what the assignment left open.
            let mut out = Vec::new();
            for (i, &(key, want)) in wanted.iter().enumerate() {
                let short = want - offered[i];
                if short == 0 {
                    continue;
                }
                let id = self.postings[key as usize].id.clone();
                out.clear();
                if self.instant_match_into(now, &id, short, &mut out, events).is_ok() && !out.is_empty() {
                    made += out.len() as u32;
                    if offered[i] == 0 {
                        county_matches += 1;
                    }
                }
            }
            if county_matches > 0 {
                let code = self.county_code(window.county);
                self.ledger.at(code, now).instant_matches += county_matches;
            }
        }
        made
    }
}
