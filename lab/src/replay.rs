//! Counterfactual replay: a logged window's supply and demand fed to a fresh
//! engine under another policy, with workers' answers recorded or modelled.
//!
//! [`Replay`] is the core without IO, in the shape of the load tool's
//! workload: [`Replay::next`] gives the next command in log time (a logged
//! one, or one the response model scheduled), the driver applies it and hands
//! back what happened with [`Replay::complete`]. [`run`] is the in-process
//! driver.
//!
//! Which logged commands are replayed:
//!
//! - supply and demand — registrations, moves, availability, withdrawals,
//!   employers, postings and their reviews and cancellations, instant-match
//!   requests, complaints, directory changes, ticks — always, in log order
//!   at log time;
//! - answers, arrivals, completions and no-shows of offers made before the
//!   window — always (those offers exist in every fork);
//! - the same for offers made inside the window — only with
//!   [`Answers::Recorded`] (the baseline check). With [`Answers::Modelled`]
//!   the response model answers every offer made in the window instead, a
//!   tick is scheduled at the deadline of an offer it leaves unanswered, and a
//!   posting whose slot reopens (decline, no reply, no-show) is matched again
//!   at once, as a desk would.
//!
//! A logged policy change (`SetRankingPolicy`) applies with recorded answers
//! and is left out with modelled ones: there the replayed policy holds for
//! the whole window.
//!
//! A logged command the counterfactual state refuses (a match for a posting
//! already filled, an answer from a worker who is no longer offered) is
//! counted and skipped.

use crate::figures::{Figures, Observer};
use crate::model::{offer_rng, Answer, History, OfferFeatures, ResponseFit, ResponseModel};
use linggong_engine::{
    BatchPolicy, Command, Engine, EngineError, Event, OfferId, OfferResponse, OfferState, Outcome, RankingPolicy,
    SnapshotError, Timestamp,
};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;

/// One logged command with the time it was applied at.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedStep {
    /// Log time.
    pub now: Timestamp,
    /// The command.
    pub command: Command,
}

/// Where workers' answers come from.
#[derive(Clone, Copy, Debug)]
pub enum Answers<'m> {
    /// As logged (meaningful for the policy that was live: offers then match the log's).
    Recorded,
    /// Drawn from a fitted model with a seed.
    Modelled {
        /// The model.
        model: &'m ResponseModel,
        /// Seed of the draws.
        seed: u64,
    },
}

/// Where a step came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Origin {
    /// The log.
    Log,
    /// The response model (an answer, an arrival, a completion, a no-show, a deadline tick or a re-match).
    Model,
}

/// A command to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// When.
    pub now: Timestamp,
    /// What.
    pub command: Command,
    /// From where.
    pub origin: Origin,
}

/// Counts of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayStats {
    /// Logged commands applied.
    pub logged_applied: u64,
    /// Logged commands the counterfactual state refused.
    pub logged_refused: u64,
    /// Logged answers to offers of the window left to the model.
    pub logged_answers_replaced: u64,
    /// Logged policy changes left out (a replayed policy holds for the whole window).
    pub logged_policy_changes_skipped: u64,
    /// Modelled commands applied.
    pub modelled_applied: u64,
    /// Modelled commands refused (e.g. an answer to an offer withdrawn meanwhile).
    pub modelled_refused: u64,
}

/// The replay core (no IO).
pub struct Replay<'a> {
    steps: &'a [LoggedStep],
    cursor: usize,
    answers: Answers<'a>,
    first_window_offer: OfferId,
    to: Timestamp,
    scheduled: BTreeMap<(Timestamp, u64), Command>,
    seq: u64,
    work_ms: FxHashMap<OfferId, i64>,
    history: FxHashMap<OfferId, History>,
    stats: ReplayStats,
}

/// The offer a logged command answers or follows up, if any.
fn offer_of(command: &Command) -> Option<OfferId> {
    match command {
        Command::RespondToOffer { offer, .. }
        | Command::ConfirmArrival { offer }
        | Command::CompleteJob { offer }
        | Command::ReportNoShow { offer } => Some(*offer),
        _ => None,
    }
}

impl<'a> Replay<'a> {
    /// A replay of `steps` up to `to`; offers numbered from `first_window_offer` on are the window's.
    pub fn new(steps: &'a [LoggedStep], answers: Answers<'a>, first_window_offer: OfferId, to: Timestamp) -> Self {
        Self {
            steps,
            cursor: 0,
            answers,
            first_window_offer,
            to,
            scheduled: BTreeMap::new(),
            seq: 0,
            work_ms: FxHashMap::default(),
            history: FxHashMap::default(),
            stats: ReplayStats::default(),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> &ReplayStats {
        &self.stats
    }

    fn modelled(&self) -> bool {
        matches!(self.answers, Answers::Modelled { .. })
    }

    fn schedule(&mut self, at: Timestamp, command: Command) {
        if at < self.to {
            self.seq += 1;
            self.scheduled.insert((at, self.seq), command);
        }
    }

    /// Asks for a `Tick` at `at` (a decision window closes then), unless one is
    /// already asked for at that time.
    pub fn tick_at(&mut self, at: Timestamp) {
        let asked = self.scheduled.range((at, 0)..=(at, u64::MAX)).any(|(_, c)| matches!(c, Command::Tick));
        if !asked {
            self.schedule(at, Command::Tick);
        }
    }

    /// The next command in log time, or `None` at the end of the window.
    pub fn next(&mut self) -> Option<Step> {
        loop {
            let log = self.steps.get(self.cursor).filter(|s| s.now < self.to);
            let due = self.scheduled.first_key_value().map(|(k, _)| k.0);
            match (log, due) {
                (None, None) => return None,
                (Some(s), Some(at)) if at < s.now => {}
                (None, Some(_)) => {}
                (Some(s), _) => {
                    self.cursor += 1;
                    let replaced =
                        self.modelled() && offer_of(&s.command).is_some_and(|o| o >= self.first_window_offer);
                    if replaced {
                        self.stats.logged_answers_replaced += 1;
                        continue;
                    }
                    if self.modelled() && matches!(s.command, Command::SetRankingPolicy(_) | Command::SetBatchPolicy(_))
                    {
                        self.stats.logged_policy_changes_skipped += 1;
                        continue;
                    }
                    return Some(Step { now: s.now, command: s.command.clone(), origin: Origin::Log });
                }
            }
            let ((now, _), command) = self.scheduled.pop_first()?;
            return Some(Step { now, command, origin: Origin::Model });
        }
    }

    /// What applying `step` did: the outcome (or the refusal), its events and the engine afterwards.
    pub fn complete(&mut self, step: &Step, result: Result<&Outcome, &EngineError>, events: &[Event], engine: &Engine) {
        let counter = match (step.origin, result.is_ok()) {
            (Origin::Log, true) => &mut self.stats.logged_applied,
            (Origin::Log, false) => &mut self.stats.logged_refused,
            (Origin::Model, true) => &mut self.stats.modelled_applied,
            (Origin::Model, false) => &mut self.stats.modelled_refused,
        };
        *counter += 1;
        let Answers::Modelled { model, seed } = self.answers else { return };
        for event in events {
            let Event::Offer(e) = event else { continue };
            let window_offer = e.offer >= self.first_window_offer;
            match e.state {
                OfferState::Pending if window_offer => {
                    let (Some(w), Some(p)) = (engine.worker(&e.worker), engine.posting(&e.posting)) else { continue };
                    let features = OfferFeatures {
                        distance_m: e.distance_m,
                        wage_ratio: p.daily_wage as f64 / w.min_daily_wage.max(1) as f64,
                        history: History::of(&w.reliability),
                    };
                    let mut rng = offer_rng(seed, &e.worker, &e.posting);
                    let plan = model.answer(&features, &mut rng);
                    let deadline = engine.offer(e.offer).map_or(e.at, |o| o.deadline);
                    let answer_at = Timestamp(e.at.0 + plan.after_ms);
                    let response = match plan.answer {
                        Answer::Accept => Some(OfferResponse::Accept),
                        Answer::Decline => Some(OfferResponse::Decline),
                        Answer::NoReply => None,
                    };
                    match response {
                        Some(response) if answer_at < deadline => self.schedule(
                            answer_at,
                            Command::RespondToOffer { offer: e.offer, worker: e.worker.clone(), response },
                        ),
                        _ => self.schedule(deadline, Command::Tick),
                    }
                    self.history.insert(e.offer, features.history);
                }
                OfferState::Accepted if window_offer => {
                    let history = self.history.remove(&e.offer).unwrap_or(History::New);
                    let start = engine.posting(&e.posting).map_or(e.at, |p| p.start);
                    // Separate draws from the answer's, still fixed by the pair.
                    let mut rng = offer_rng(seed ^ 0xa77e, &e.worker, &e.posting);
                    let plan = model.attendance(history, &mut rng);
                    let at = Timestamp(e.at.max(start).0 + plan.after_start_ms);
                    if plan.arrives {
                        self.work_ms.insert(e.offer, plan.work_ms);
                        self.schedule(at, Command::ConfirmArrival { offer: e.offer });
                    } else {
                        self.schedule(at, Command::ReportNoShow { offer: e.offer });
                    }
                }
                OfferState::Arrived if window_offer => {
                    let work = self.work_ms.remove(&e.offer).unwrap_or(0);
                    self.schedule(Timestamp(e.at.0 + work), Command::CompleteJob { offer: e.offer });
                }
                OfferState::Declined | OfferState::Expired | OfferState::NoShow => {
                    self.history.remove(&e.offer);
                    let open = engine.posting(&e.posting).is_some_and(|p| p.state.is_open() && p.remaining() > 0);
                    if open {
                        self.schedule(e.at, Command::InstantMatch { posting: e.posting.clone(), max_offers: 0 });
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a run gives.
pub struct RunResult {
    /// The figures of the window.
    pub figures: Figures,
    /// The counts.
    pub stats: ReplayStats,
    /// The engine at the end of the window.
    pub engine: Engine,
    /// The response fit gathered from the run's answers.
    pub fit: ResponseFit,
}

/// Why a run could not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command that must apply (building a generated day's state) was refused.
    #[error("a command was refused: {0}")]
    Refused(#[from] EngineError),
    /// The start state could not be copied under another policy.
    #[error("forking the start state: {0}")]
    Fork(#[from] SnapshotError),
}

/// A copy of `start` ranking with `policy` and assigning by `batch`.
pub fn fork(start: &Engine, policy: &RankingPolicy, batch: &BatchPolicy) -> Result<Engine, SnapshotError> {
    let mut engine = start.clone();
    if engine.config().policy != *policy || engine.config().batch != *batch {
        let mut snapshot = start.snapshot();
        snapshot.ranking_policy = Some(policy.clone());
        snapshot.batch_policy = Some(batch.clone());
        engine = Engine::restore(engine.config().clone(), snapshot)?;
    }
    Ok(engine)
}

/// Replays `steps` (the commands of `[from, to)`) on a fork of `start` (the state at `from`) under `policy`.
pub fn run(
    start: &Engine,
    policy: &RankingPolicy,
    steps: &[LoggedStep],
    window: (Timestamp, Timestamp),
    answers: Answers<'_>,
) -> Result<RunResult, LabError> {
    run_with(start, policy, &BatchPolicy::default(), steps, window, answers, |_, _| {})
}

/// [`run`] under a batch policy too: instant matches of batching counties wait
/// in decision windows, closed by ticks at their close times.
pub fn run_batched(
    start: &Engine,
    policy: &RankingPolicy,
    batch: &BatchPolicy,
    steps: &[LoggedStep],
    window: (Timestamp, Timestamp),
    answers: Answers<'_>,
) -> Result<RunResult, LabError> {
    run_with(start, policy, batch, steps, window, answers, |_, _| {})
}

/// [`run`], calling `on_applied` with every step the engine accepted and its outcome.
pub fn run_with(
    start: &Engine,
    policy: &RankingPolicy,
    batch: &BatchPolicy,
    steps: &[LoggedStep],
    (from, to): (Timestamp, Timestamp),
    answers: Answers<'_>,
    mut on_applied: impl FnMut(&Step, &Outcome),
) -> Result<RunResult, LabError> {
    let mut engine = fork(start, policy, batch)?;
    let first_window_offer = start.snapshot().next_offer_id;
    let mut observer = Observer::new(&engine, from);
    let mut replay = Replay::new(steps, answers, first_window_offer, to);
    let mut events = Vec::new();
    while let Some(step) = replay.next() {
        events.clear();
        match engine.apply(step.now, &step.command, &mut events) {
            Ok(outcome) => {
                observer.applied(&engine, step.now, &step.command, &events);
                replay.complete(&step, Ok(&outcome), &events, &engine);
                on_applied(&step, &outcome);
            }
            Err(e) => replay.complete(&step, Err(&e), &[], &engine),
        }
        if let Some(close) = engine.batch_windows().next_close() {
            replay.tick_at(close);
        }
    }
    let fit = observer.fit().clone();
    let figures = observer.finish(&engine, to);
    Ok(RunResult { figures, stats: replay.stats().clone(), engine, fit })
}
