//! Engine mode: the workload applied to an in-process [`Engine`] on one thread (the engine has a
//! single writer), no network, no log. Each call is timed on its own; the tool's drawing and
//! bookkeeping between calls is not, and the report says how much of the window the engine
//! itself was busy.

use crate::machine::{cpu_by_thread_group, cpu_share, system_cores_busy, system_cpu_jiffies, MachineInfo};
use crate::record::{Collector, ErrorClass};
use crate::report::{EngineReport, Report, ReportContext};
use crate::run::{wait_until_precisely, LoadShape, RunConfig, Sampler, Timeline};
use crate::workload::{Action, Observation, OfferRef, PostingPhase, Scenario, Workload};
use linggong_engine::validate::Violations;
use linggong_engine::{
    Command, Engine, EngineConfig, EngineError, Event, MatchedOffer, OfferResponse, Outcome, PostingState,
    ReviewDecision, Timestamp,
};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Why an engine run could not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum EngineRunError {
    /// The scenario needs the network.
    #[error("the `{0}` scenario needs gRPC mode")]
    NeedsGrpc(&'static str),
    /// The engine refused a setup command.
    #[error("building the market: {0}")]
    Setup(#[from] EngineError),
}

/// The class of an engine error: `engine:` and the variant name.
pub fn engine_error_class(e: &EngineError) -> ErrorClass {
    ErrorClass(match e {
        EngineError::InvalidArgument(_) => "engine:InvalidArgument",
        EngineError::UnknownWorker(_) => "engine:UnknownWorker",
        EngineError::UnknownEmployer(_) => "engine:UnknownEmployer",
        EngineError::UnknownPosting(_) => "engine:UnknownPosting",
        EngineError::UnknownOffer(_) => "engine:UnknownOffer",
        EngineError::UnknownComplaint(_) => "engine:UnknownComplaint",
        EngineError::UnknownMarket(_) => "engine:UnknownMarket",
        EngineError::PostingExists { .. } => "engine:PostingExists",
        EngineError::StaleVersion { .. } => "engine:StaleVersion",
        EngineError::PostingState { .. } => "engine:PostingState",
        EngineError::EmployerSuspended(_) => "engine:EmployerSuspended",
        EngineError::OfferState { .. } => "engine:OfferState",
        EngineError::OfferExpired(_) => "engine:OfferExpired",
        EngineError::NotOfferHolder { .. } => "engine:NotOfferHolder",
        EngineError::WorkerState { .. } => "engine:WorkerState",
        EngineError::ComplaintResolved(_) => "engine:ComplaintResolved",
    })
}

fn phase(state: PostingState) -> PostingPhase {
    match state {
        PostingState::PendingReview => PostingPhase::PendingReview,
        PostingState::Published | PostingState::Filling => PostingPhase::Open,
        _ => PostingPhase::Closed,
    }
}

fn offer_ref(m: &MatchedOffer) -> OfferRef {
    OfferRef { offer: m.offer, worker: m.worker.clone(), posting: m.posting.clone() }
}

/// What the workload needs to know of an outcome.
pub fn observe(outcome: Outcome) -> Observation {
    match outcome {
        Outcome::PostingChanged { state, .. } => Observation::Posting(phase(state)),
        Outcome::Matched { offers, remaining } => {
            Observation::Matched { offers: offers.iter().map(offer_ref).collect(), remaining: remaining.into() }
        }
        Outcome::WorkerUpserted { offer, .. } | Outcome::WorkerUpdated { offer, .. } => {
            Observation::Worker(offer.as_ref().map(offer_ref))
        }
        Outcome::OfferChanged { next_offer, .. } => Observation::Worker(next_offer.as_ref().map(offer_ref)),
        _ => Observation::Done,
    }
}

/// The command an action applies (instant matches go through the allocation-free call instead).
pub fn command(action: &Action) -> Command {
    match action {
        Action::RegisterWorker(spec) => Command::UpsertWorker(spec.clone()),
        Action::UpdateWorkerLocation { worker, position } => {
            Command::MoveWorker { worker: worker.clone(), position: *position }
        }
        Action::SetAvailability { worker, available } => Command::SetAvailability {
            worker: worker.clone(),
            window: available.then_some(linggong_engine::Availability::ALWAYS),
        },
        Action::WithdrawWorker { worker } => Command::WithdrawWorker { worker: worker.clone() },
        Action::UpsertEmployer(spec) => Command::UpsertEmployer(spec.clone()),
        Action::SubmitPosting(spec) => Command::SubmitPosting(spec.clone()),
        Action::UpdatePosting(spec) => Command::UpdatePosting(spec.clone()),
        Action::ReviewPosting { posting, approve } => Command::ReviewPosting {
            posting: posting.clone(),
            decision: if *approve {
                ReviewDecision::Approve
            } else {
                ReviewDecision::Reject { reason: "load test: rejected".into() }
            },
        },
        Action::CancelPosting { posting } => {
            Command::CancelPosting { posting: posting.clone(), reason: "load test: nobody to fill it".into() }
        }
        Action::InstantMatch { posting, max_offers } => {
            Command::InstantMatch { posting: posting.clone(), max_offers: *max_offers }
        }
        Action::RespondToOffer { offer, accept } => Command::RespondToOffer {
            offer: offer.offer,
            worker: offer.worker.clone(),
            response: if *accept { OfferResponse::Accept } else { OfferResponse::Decline },
        },
        Action::ConfirmArrival { offer } => Command::ConfirmArrival { offer: offer.offer },
        Action::CompleteJob { offer } => Command::CompleteJob { offer: offer.offer },
        Action::ReportNoShow { offer } => Command::ReportNoShow { offer: offer.offer },
        // A read, not a command: `Driver::perform` answers it from `Engine::county_stats`.
        Action::CountyStats { .. } => Command::Tick,
    }
}

/// The engine's clock: wall-clock milliseconds (the engine itself reads no clock).
fn wall_clock_now() -> Timestamp {
    Timestamp(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
}

struct Driver {
    engine: Engine,
    matched: Vec<MatchedOffer>,
    /// The events of the last action (dropped: nobody watches in engine mode).
    events: Vec<Event>,
}

impl Driver {
    /// Performs an action; returns the time spent in the engine and the result.
    fn perform(&mut self, now: Timestamp, action: &Action) -> (std::time::Duration, Result<Observation, EngineError>) {
        match action {
            Action::InstantMatch { posting, max_offers } => {
                self.matched.clear();
                let started = Instant::now();
                let result =
                    self.engine.instant_match_into(now, posting, *max_offers, &mut self.matched, &mut self.events);
                let took = started.elapsed();
                self.events.clear();
                let result = result.map(|remaining| Observation::Matched {
                    offers: self.matched.iter().map(offer_ref).collect(),
                    remaining: remaining.into(),
                });
                (took, result)
            }
            Action::CountyStats { county } => {
                let started = Instant::now();
                let stats = self.engine.county_stats(*county);
                let took = started.elapsed();
                let result = match stats {
                    Some(_) => Ok(Observation::Done),
                    None => {
                        let mut v = Violations::default();
                        v.add("county_code", format!("unknown county {county}"));
                        Err(EngineError::InvalidArgument(v))
                    }
                };
                (took, result)
            }
            _ => {
                let command = command(action);
                let started = Instant::now();
                let result = self.engine.apply(now, &command, &mut self.events);
                let took = started.elapsed();
                self.events.clear();
                (took, result.map(observe))
            }
        }
    }
}

/// Builds the market, runs the load and returns the report.
pub fn run_engine(config: &RunConfig) -> Result<Report, EngineRunError> {
    if config.workload.scenario == Scenario::Watch {
        return Err(EngineRunError::NeedsGrpc("watch"));
    }
    let mut machine = MachineInfo::probe(format!(
        "in-process engine, linggong-engine {} ({} build)",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    ));
    let setup_started = Instant::now();
    let mut workload = Workload::new(config.workload.clone());
    let mut driver = Driver {
        engine: Engine::linfen(EngineConfig::default()),
        matched: Vec::with_capacity(64),
        events: Vec::with_capacity(64),
    };
    let now = wall_clock_now();
    for action in workload.setup_employers() {
        driver.engine.apply(now, &command(&action), &mut driver.events)?;
    }
    for spec in workload.setup_workers() {
        driver.engine.apply(now, &linggong_engine::Command::UpsertWorker(spec), &mut driver.events)?;
        driver.events.clear();
    }
    for action in workload.setup_postings(now) {
        let outcome = driver.engine.apply(now, &command(&action), &mut driver.events)?;
        workload.complete(&action, Ok(observe(outcome)));
    }
    driver.events.clear();
    let setup_s = setup_started.elapsed().as_secs_f64();
    let waiting_workers_at_start = driver.engine.waiting_count();

    let collector = Arc::new(Collector::new());
    let timeline = Timeline::starting_now(config);
    let workload = Arc::new(Mutex::new(workload));
    let reset = workload.clone();
    let cpu_before = Arc::new(Mutex::new(None));
    let cpu_mark = cpu_before.clone();
    let sampler = Sampler::start(
        collector.clone(),
        timeline,
        config,
        Box::new(move || {
            reset.lock().reset_stats();
            *cpu_mark.lock() = Some((Instant::now(), cpu_by_thread_group(std::process::id()), system_cpu_jiffies()));
        }),
    );
    let mut busy = std::time::Duration::ZERO;
    let mut measuring_busy = false;
    let mut i = 0u64;
    loop {
        let (intended, now_instant) = match config.shape {
            LoadShape::Closed { .. } => {
                let now = Instant::now();
                (now, now)
            }
            LoadShape::Open { rate, .. } => {
                let intended = timeline.intended(i, rate);
                wait_until_precisely(intended);
                (intended, Instant::now())
            }
        };
        if now_instant >= timeline.deadline || intended >= timeline.deadline {
            break;
        }
        if !measuring_busy && now_instant >= timeline.measure_at {
            measuring_busy = true;
            busy = std::time::Duration::ZERO;
        }
        i += 1;
        let now = wall_clock_now();
        let Some(action) = workload.lock().next(now) else { continue };
        let (took, result) = driver.perform(now, &action);
        busy += took;
        let latency = match config.shape {
            LoadShape::Closed { .. } => took,
            LoadShape::Open { .. } => Instant::now().saturating_duration_since(intended),
        };
        let error = result.as_ref().err().map(engine_error_class);
        collector.record(action.rpc(), latency, error);
        workload.lock().complete(&action, result.map_err(|_| ()));
    }
    sampler.finish(false);
    let recorded = collector.recorded();
    let window = recorded.measured.as_secs_f64().max(1e-9);
    let cpu = match cpu_before.lock().take() {
        Some((at, before, jiffies)) => {
            let secs = at.elapsed().as_secs_f64();
            machine.machine_cores_busy = Some(system_cores_busy(jiffies, system_cpu_jiffies(), secs));
            cpu_share(&before, &cpu_by_thread_group(std::process::id()), secs)
        }
        None => Default::default(),
    };
    machine.load_average_end = crate::machine::load_average();
    let calls: u64 = recorded.rpcs.iter().map(|(_, s)| s.calls).sum();
    let engine = EngineReport {
        waiting_workers_at_start,
        setup_s,
        engine_busy_share: (busy.as_secs_f64() / window).min(1.0),
        engine_only_rate_per_s: calls as f64 / busy.as_secs_f64().max(1e-9),
    };
    let stats = workload.lock().stats().clone();
    Ok(Report::build(
        &recorded,
        ReportContext {
            settings: serde_json::json!({ "mode": "engine", "run": config }),
            machine,
            stations: 0,
            workload: stats,
            engine: Some(engine),
            cpu_cores_by_thread_group: cpu,
            server: None,
            server_processes: Vec::new(),
            server_cpu_cores: None,
            leader_changes: 0,
            route_switches: 0,
            retried_calls: 0,
        },
    ))
}
