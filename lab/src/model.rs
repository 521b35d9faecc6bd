//! The response model: how workers answer offers that were never made in
//! reality, fitted from the same log.
//!
//! An offer falls in a cell of three features taken when it is made:
//!
//! - distance to the work place: under 1 km, 1–3, 3–6, 6–10, 10 km and more;
//! - wage ratio, the posting's daily wage over the worker's minimum: under
//!   1.25, 1.25–1.6, 1.6–2, 2 and more;
//! - the worker's own history: new (nothing completed, no no-show), reliable
//!   (completed jobs, no no-show), or with a no-show.
//!
//! In each cell the model gives the chances of accept, decline and no reply:
//! the cell's counts of answered offers smoothed towards the log-wide shares
//! (`(n_k + α p_k) / (n + α)`, α = [`SMOOTHING`]), so thin cells lean on the
//! whole log. An accepted worker then turns up or not with the no-show share
//! of their history class (smoothed the same way). Delays — offer to answer
//! (per answer), start of work to arrival or no-show report, arrival to
//! completion — are drawn from the log's own samples. Offers withdrawn by the
//! market are left out of the fit.
//!
//! Draws are seeded by the run's seed and the (worker, posting) pair, so the
//! same worker offered the same posting answers alike under every policy of a
//! run (common random numbers: differences between policies are not noise of
//! the draws).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::hash::{Hash, Hasher};

/// Weight of the log-wide shares in a cell, in offers.
pub const SMOOTHING: f64 = 5.0;
/// Samples of each delay kept for drawing.
const MAX_SAMPLES: usize = 20_000;

const DISTANCE_EDGES_M: [u32; 4] = [1_000, 3_000, 6_000, 10_000];
const WAGE_EDGES: [f64; 3] = [1.25, 1.6, 2.0];
/// Cells: distance classes × wage classes × history classes.
const CELLS: usize = 5 * 4 * 3;

/// A worker's history as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum History {
    /// Nothing completed, no no-show.
    New,
    /// Completed jobs, no no-show.
    Reliable,
    /// At least one no-show.
    NoShows,
}

impl History {
    /// The class of a reliability record.
    pub fn of(r: &linggong_engine::Reliability) -> History {
        if r.no_shows > 0 {
            History::NoShows
        } else if r.completed > 0 {
            History::Reliable
        } else {
            History::New
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// What the model knows about an offer when it is made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OfferFeatures {
    /// Distance, metres.
    pub distance_m: u32,
    /// Posting wage over the worker's minimum.
    pub wage_ratio: f64,
    /// The worker's history.
    pub history: History,
}

impl OfferFeatures {
    fn cell(&self) -> usize {
        let d = DISTANCE_EDGES_M.iter().filter(|e| self.distance_m >= **e).count();
        let w = WAGE_EDGES.iter().filter(|e| self.wage_ratio >= **e).count();
        (d * 4 + w) * 3 + self.history.index()
    }
}

/// How an offer ends, as observed in the log or drawn by the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Answer {
    /// Accepted.
    Accept,
    /// Declined.
    Decline,
    /// Not answered before the deadline.
    NoReply,
}

const ANSWERS: [Answer; 3] = [Answer::Accept, Answer::Decline, Answer::NoReply];

/// What the model decides for an offer: the answer and, if any, its delay after the offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerPlan {
    /// The answer.
    pub answer: Answer,
    /// Delay from the offer, milliseconds (ignored for no reply).
    pub after_ms: i64,
}

/// What the model decides for an accepted offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttendancePlan {
    /// Whether the worker turns up.
    pub arrives: bool,
    /// Arrival (or no-show report) after the later of acceptance and the start of work, milliseconds.
    pub after_start_ms: i64,
    /// Completion after arrival, milliseconds.
    pub work_ms: i64,
}

/// Delay samples in log order, thinned evenly to a bounded number: when full,
/// every second sample is dropped and only every second later one is kept.
#[derive(Clone, Debug, Serialize)]
struct Delays {
    samples: Vec<i64>,
    seen: u64,
    stride: u64,
}

impl Default for Delays {
    fn default() -> Self {
        Self { samples: Vec::new(), seen: 0, stride: 1 }
    }
}

impl Delays {
    fn push(&mut self, ms: i64) {
        self.seen += 1;
        if self.seen % self.stride != 0 {
            return;
        }
        if self.samples.len() == MAX_SAMPLES {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 0
            });
            self.stride *= 2;
            if self.seen % self.stride != 0 {
                return;
            }
        }
        self.samples.push(ms.max(0));
    }
    fn draw(&self, rng: &mut ChaCha8Rng, fallback_ms: i64) -> i64 {
        if self.samples.is_empty() {
            return fallback_ms;
        }
        self.samples[rng.random_range(0..self.samples.len())]
    }
    fn median(&self) -> Option<i64> {
        let mut s = self.samples.clone();
        s.sort_unstable();
        s.get(s.len() / 2).copied()
    }
}

/// Counts and samples gathered from a log; [`ResponseFit::model`] turns them into a model.
#[derive(Clone, Debug, Serialize)]
pub struct ResponseFit {
    answers: Vec<[u32; 3]>,
    attendance: [[u32; 2]; 3],
    accept_delay: Delays,
    decline_delay: Delays,
    arrival_delay: Delays,
    no_show_delay: Delays,
    work: Delays,
}

impl Default for ResponseFit {
    fn default() -> Self {
        Self {
            answers: vec![[0; 3]; CELLS],
            attendance: [[0; 2]; 3],
            accept_delay: Delays::default(),
            decline_delay: Delays::default(),
            arrival_delay: Delays::default(),
            no_show_delay: Delays::default(),
            work: Delays::default(),
        }
    }
}

impl ResponseFit {
    /// An offer's answer seen in the log, `after_ms` after the offer.
    pub fn answer(&mut self, f: &OfferFeatures, answer: Answer, after_ms: i64) {
        self.answers[f.cell()][answer as usize] += 1;
        match answer {
            Answer::Accept => self.accept_delay.push(after_ms),
            Answer::Decline => self.decline_delay.push(after_ms),
            Answer::NoReply => {}
        }
    }

    /// An accepted worker arrived (or did not), `after_start_ms` after the later of acceptance and the start.
    pub fn attendance(&mut self, history: History, arrived: bool, after_start_ms: i64) {
        self.attendance[history.index()][usize::from(!arrived)] += 1;
        if arrived {
            self.arrival_delay.push(after_start_ms);
        } else {
            self.no_show_delay.push(after_start_ms);
        }
    }

    /// A job completed `work_ms` after arrival.
    pub fn completion(&mut self, work_ms: i64) {
        self.work.push(work_ms);
    }

    /// Offers whose answer was seen.
    pub fn offers(&self) -> u64 {
        self.answers.iter().flatten().map(|n| u64::from(*n)).sum()
    }

    /// The fitted model.
    pub fn model(&self) -> ResponseModel {
        let mut total = [0.0f64; 3];
        for cell in &self.answers {
            for k in 0..3 {
                total[k] += cell[k] as f64;
            }
        }
        let n: f64 = total.iter().sum();
        // With an empty log every answer is equally likely.
        let marginal = total.map(|t| if n > 0.0 { t / n } else { 1.0 / 3.0 });
        let cells = self
            .answers
            .iter()
            .map(|cell| {
                let m: f64 = cell.iter().map(|c| *c as f64).sum();
                let p: [f64; 3] = std::array::from_fn(|k| (cell[k] as f64 + SMOOTHING * marginal[k]) / (m + SMOOTHING));
                [p[0], p[0] + p[1]]
            })
            .collect();
        let shows: f64 = self.attendance.iter().map(|a| a[1] as f64).sum();
        let attended: f64 = self.attendance.iter().map(|a| (a[0] + a[1]) as f64).sum();
        let no_show_all = if attended > 0.0 { shows / attended } else { 0.0 };
        let no_show = std::array::from_fn(|h| {
            let a = self.attendance[h];
            (a[1] as f64 + SMOOTHING * no_show_all) / ((a[0] + a[1]) as f64 + SMOOTHING)
        });
        ResponseModel {
            cells,
            marginal,
            no_show,
            accept_delay: self.accept_delay.clone(),
            decline_delay: self.decline_delay.clone(),
            arrival_delay: self.arrival_delay.clone(),
            no_show_delay: self.no_show_delay.clone(),
            work: self.work.clone(),
            offers: self.offers(),
        }
    }
}

/// The fitted response model (see the module docs).
#[derive(Clone, Debug, Serialize)]
pub struct ResponseModel {
    /// Per cell: P(accept), P(accept or decline).
    cells: Vec<[f64; 2]>,
    marginal: [f64; 3],
    no_show: [f64; 3],
    accept_delay: Delays,
    decline_delay: Delays,
    arrival_delay: Delays,
    no_show_delay: Delays,
    work: Delays,
    offers: u64,
}

/// A summary of a model for reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSummary {
    /// Offers with an answer the model was fitted on.
    pub offers: u64,
    /// Log-wide shares of accept, decline and no reply.
    pub shares: [f64; 3],
    /// No-show chance for new, reliable and no-show-history workers.
    pub no_show: [f64; 3],
    /// Median answer delays (accept, decline), seconds.
    pub median_answer_secs: [Option<f64>; 2],
}

impl ResponseModel {
    /// Draws the answer to an offer of `posting` to `worker`.
    pub fn answer(&self, f: &OfferFeatures, rng: &mut ChaCha8Rng) -> AnswerPlan {
        let [accept, answered] = self.cells[f.cell()];
        let u: f64 = rng.random();
        let answer = if u < accept {
            Answer::Accept
        } else if u < answered {
            Answer::Decline
        } else {
            Answer::NoReply
        };
        let after_ms = match answer {
            Answer::Accept => self.accept_delay.draw(rng, 60_000),
            Answer::Decline => self.decline_delay.draw(rng, 60_000),
            Answer::NoReply => 0,
        };
        AnswerPlan { answer, after_ms }
    }

    /// Draws whether an accepted worker turns up, and when.
    pub fn attendance(&self, history: History, rng: &mut ChaCha8Rng) -> AttendancePlan {
        let arrives = rng.random::<f64>() >= self.no_show[history.index()];
        let after_start_ms =
            if arrives { self.arrival_delay.draw(rng, 0) } else { self.no_show_delay.draw(rng, 1_800_000) };
        AttendancePlan { arrives, after_start_ms, work_ms: self.work.draw(rng, 8 * 3_600_000) }
    }

    /// Chances of accept, decline and no reply in the offer's cell.
    pub fn chances(&self, f: &OfferFeatures) -> [f64; 3] {
        let [a, ad] = self.cells[f.cell()];
        [a, ad - a, 1.0 - ad]
    }

    /// The model in a few numbers.
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            offers: self.offers,
            shares: self.marginal,
            no_show: self.no_show,
            median_answer_secs: [
                self.accept_delay.median().map(|m| m as f64 / 1000.0),
                self.decline_delay.median().map(|m| m as f64 / 1000.0),
            ],
        }
    }
}

/// The generator for one offer's draws: seeded by the run seed and the (worker, posting) pair.
pub fn offer_rng(seed: u64, worker: &str, posting: &str) -> ChaCha8Rng {
    let mut h = rustc_hash::FxHasher::default();
    seed.hash(&mut h);
    worker.hash(&mut h);
    posting.hash(&mut h);
    ChaCha8Rng::seed_from_u64(h.finish())
}

/// The answers in the order of [`Answer`], for tables.
pub fn answers() -> [Answer; 3] {
    ANSWERS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(distance_m: u32) -> OfferFeatures {
        OfferFeatures { distance_m, wage_ratio: 1.5, history: History::New }
    }

    #[test]
    fn the_fit_reproduces_the_shares_it_saw_and_smooths_empty_cells() {
        let mut fit = ResponseFit::default();
        for i in 0..1_000 {
            let answer = if i % 4 == 0 { Answer::Decline } else { Answer::Accept };
            fit.answer(&features(500), answer, 30_000);
            fit.answer(&features(12_000), if i % 4 == 0 { Answer::Accept } else { Answer::NoReply }, 30_000);
        }
        let m = fit.model();
        let near = m.chances(&features(500));
        assert!((near[0] - 0.75).abs() < 0.01 && (near[1] - 0.25).abs() < 0.01, "{near:?}");
        let far = m.chances(&features(12_000));
        assert!((far[2] - 0.75).abs() < 0.01, "{far:?}");
        // A cell never seen takes the log-wide shares.
        let unseen = m.chances(&features(4_000));
        assert!((unseen[0] - 0.5).abs() < 1e-9, "{unseen:?}");
        let mut rng = offer_rng(1, "w1", "p1");
        let accepted = (0..2_000).filter(|_| m.answer(&features(500), &mut rng).answer == Answer::Accept).count();
        assert!((1_400..1_600).contains(&accepted), "{accepted}");
    }

    #[test]
    fn the_same_seed_and_pair_draw_the_same() {
        let mut fit = ResponseFit::default();
        fit.answer(&features(500), Answer::Accept, 10_000);
        fit.answer(&features(500), Answer::Decline, 20_000);
        let m = fit.model();
        let draw = |seed| {
            let mut rng = offer_rng(seed, "w7", "p3");
            (0..20).map(|_| m.answer(&features(500), &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }
}
