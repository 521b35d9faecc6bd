//! The history of one worker, posting, employer or complaint, read from a
//! history log (a member's `raft/history/`, or a single-node `wal/`): who did what, when, and what came of it. Every record in
//! the log is a change that was applied (refused commands are never logged);
//! its actor and effects (the offers a match made, the complaint a filing
//! created) are logged with it, so offers are followed to their worker and
//! posting and complaints to their employer. Records older than the oldest
//! segment kept (removed after a snapshot covered them) are not in the log
//! any more; records written before actors were logged show no actor. A
//! cluster member's history log (`raft/history_log.rs`) holds the same
//! records and is read the same way.

use crate::convert::wal::{decode, Actor, LoggedCommand};
use crate::wal::{scan, WalError};
use linggong_engine::{Command, Timestamp};
use rustc_hash::FxHashMap;
use std::path::Path;

/// Whose history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A worker, by id.
    Worker(String),
    /// A posting, by id.
    Posting(String),
    /// An employer, by id.
    Employer(String),
    /// A complaint, by id.
    Complaint(u64),
}

/// One change in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Log sequence number.
    pub seq: u64,
    /// When it was applied.
    pub at: Timestamp,
    /// Who asked for it (`None`: the service itself, or a record from before actors were logged).
    pub actor: Option<Actor>,
    /// The command, e.g. `ReviewPosting`.
    pub action: &'static str,
    /// What it asked for, briefly.
    pub detail: String,
    /// What came of it: `applied`, plus the offers made or the complaint filed.
    pub outcome: String,
}

#[derive(Default)]
struct Links {
    offers: FxHashMap<u64, (String, String)>,
    posting_employer: FxHashMap<String, String>,
    complaint_employer: FxHashMap<u64, String>,
}

fn action(c: &Command) -> &'static str {
    match c {
        Command::UpsertWorker(_) => "RegisterWorker",
        Command::MoveWorker { .. } => "UpdateWorkerLocation",
        Command::SetAvailability { .. } => "SetAvailability",
        Command::WithdrawWorker { .. } => "WithdrawWorker",
        Command::UpsertEmployer(_) => "UpsertEmployer",
        Command::SuspendEmployer { .. } => "SuspendEmployer",
        Command::ReinstateEmployer { .. } => "ReinstateEmployer",
        Command::SubmitPosting(_) => "SubmitPosting",
        Command::UpdatePosting(_) => "UpdatePosting",
        Command::ReviewPosting { .. } => "ReviewPosting",
        Command::CancelPosting { .. } => "CancelPosting",
        Command::InstantMatch { .. } => "InstantMatch",
        Command::RespondToOffer { .. } => "RespondToOffer",
        Command::ConfirmArrival { .. } => "ConfirmArrival",
        Command::CompleteJob { .. } => "CompleteJob",
        Command::ReportNoShow { .. } => "ReportNoShow",
        Command::FileComplaint { .. } => "FileComplaint",
        Command::ResolveComplaint { .. } => "ResolveComplaint",
        Command::Tick => "Tick",
        Command::UpsertMarket(_) => "UpsertMarket",
        Command::RemoveMarket { .. } => "RemoveMarket",
        Command::SetRankingPolicy(_) => "SetRankingPolicy",
        Command::SetBatchPolicy(_) => "SetBatchPolicy",
    }
}

fn detail(c: &Command) -> String {
    match c {
        Command::UpsertWorker(w) => format!("worker {} in county {}", w.id, w.county),
        Command::MoveWorker { worker, position } => {
            format!("worker {worker} to {:.5},{:.5}", position.lat, position.lon)
        }
        Command::SetAvailability { worker, window } => {
            format!("worker {worker} {}", if window.is_some() { "available" } else { "unavailable" })
        }
        Command::WithdrawWorker { worker } => format!("worker {worker}"),
        Command::UpsertEmployer(e) => format!("employer {} ({}), verified {}", e.id, e.name, e.verified),
        Command::SuspendEmployer { employer, reason } => format!("employer {employer}: {reason}"),
        Command::ReinstateEmployer { employer } => format!("employer {employer}"),
        Command::SubmitPosting(p) | Command::UpdatePosting(p) => {
            format!("posting {} v{} of {}: {} x{}", p.id, p.version, p.employer, p.trade, p.headcount)
        }
        Command::ReviewPosting { posting, decision } => format!("posting {posting}: {decision:?}"),
        Command::CancelPosting { posting, reason } => format!("posting {posting}: {reason}"),
        Command::InstantMatch { posting, .. } => format!("posting {posting}"),
        Command::RespondToOffer { offer, worker, response } => format!("offer {offer} by {worker}: {response:?}"),
        Command::ConfirmArrival { offer } | Command::CompleteJob { offer } | Command::ReportNoShow { offer } => {
            format!("offer {offer}")
        }
        Command::FileComplaint { employer, category, .. } => format!("against {employer}: {category:?}"),
        Command::ResolveComplaint { complaint, resolution, note } => {
            format!("complaint {complaint}: {resolution:?} {note}")
        }
        Command::Tick => String::new(),
        Command::UpsertMarket(m) => format!("market {}", m.id),
        Command::RemoveMarket { market } => format!("market {market}"),
        Command::SetRankingPolicy(p) => format!("ranking policy {p:?}"),
        Command::SetBatchPolicy(b) => format!("batch window {} ms, counties {:?}", b.window_ms, b.counties),
    }
}

impl Links {
    /// Records what the command establishes (before asking whether it concerns the subject).
    fn learn(&mut self, r: &LoggedCommand) {
        if let Command::SubmitPosting(p) = &r.command {
            self.posting_employer.insert(p.id.to_string(), p.employer.to_string());
        }
        if let Some(effect) = &r.effect {
            for (offer, worker, posting) in &effect.offers {
                self.offers.insert(*offer, (worker.clone(), posting.clone()));
            }
            if let (Some(id), Command::FileComplaint { employer, .. }) = (effect.complaint, &r.command) {
                self.complaint_employer.insert(id, employer.to_string());
            }
        }
    }

    fn offer_concerns(&self, offer: u64, s: &Subject) -> bool {
        let Some((worker, posting)) = self.offers.get(&offer) else { return false };
        match s {
            Subject::Worker(w) => worker == w,
            Subject::Posting(p) => posting == p,
            Subject::Employer(e) => self.posting_employer.get(posting) == Some(e),
            Subject::Complaint(_) => false,
        }
    }

    fn posting_concerns(&self, posting: &str, s: &Subject) -> bool {
        match s {
            Subject::Posting(p) => p == posting,
            Subject::Employer(e) => self.posting_employer.get(posting) == Some(e),
            _ => false,
        }
    }

    fn concerns(&self, r: &LoggedCommand, s: &Subject) -> bool {
        let by_effect = r.effect.as_ref().is_some_and(|e| {
            e.offers.iter().any(|(offer, _, _)| self.offer_concerns(*offer, s))
                || matches!((e.complaint, s), (Some(c), Subject::Complaint(want)) if c == *want)
        });
        by_effect
            || match (&r.command, s) {
                (Command::UpsertWorker(w), Subject::Worker(id)) => w.id == id.as_str(),
                (
                    Command::MoveWorker { worker, .. }
                    | Command::SetAvailability { worker, .. }
                    | Command::WithdrawWorker { worker },
                    Subject::Worker(id),
                ) => worker == id.as_str(),
                (Command::UpsertEmployer(e), Subject::Employer(id)) => e.id == id.as_str(),
                (
                    Command::SuspendEmployer { employer, .. } | Command::ReinstateEmployer { employer },
                    Subject::Employer(id),
                ) => employer == id.as_str(),
                (Command::SubmitPosting(p) | Command::UpdatePosting(p), s) => self.posting_concerns(&p.id, s),
                (
                    Command::ReviewPosting { posting, .. }
                    | Command::CancelPosting { posting, .. }
                    | Command::InstantMatch { posting, .. },
                    s,
                ) => self.posting_concerns(posting, s),
                (
                    Command::RespondToOffer { offer, .. }
                    | Command::ConfirmArrival { offer }
                    | Command::CompleteJob { offer }
                    | Command::ReportNoShow { offer },
                    s,
                ) => self.offer_concerns(*offer, s),
                (Command::FileComplaint { employer, posting, .. }, s) => match s {
                    Subject::Employer(id) => employer == id.as_str(),
                    Subject::Posting(id) => posting.as_deref() == Some(id.as_str()),
                    _ => false,
                },
                (Command::ResolveComplaint { complaint, .. }, s) => match s {
                    Subject::Complaint(id) => complaint == id,
                    Subject::Employer(id) => self.complaint_employer.get(complaint) == Some(id),
                    _ => false,
                },
                _ => false,
            }
    }
}

fn outcome(r: &LoggedCommand) -> String {
    let mut out = String::from("applied");
    if let Some(e) = &r.effect {
        for (offer, worker, posting) in &e.offers {
            out.push_str(&format!("; offer {offer} of {posting} to {worker}"));
        }
        if let Some(c) = e.complaint {
            out.push_str(&format!("; complaint {c} filed"));
        }
    }
    out
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The log could not be read.
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// The history of `subject` in the log under `wal_dir`, oldest first, at most
/// `limit` entries after sequence number `after_seq`. A torn or damaged tail
/// ends the history there.
pub fn history(
    wal_dir: &Path,
    subject: &Subject,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<HistoryEntry>, HistoryError> {
    let mut links = Links::default();
    let mut out = Vec::new();
    scan(wal_dir, 0, |seq, payload| {
        let r = decode(payload).map_err(|e| e.to_string())?;
        links.learn(&r);
        if seq > after_seq && out.len() < limit && links.concerns(&r, subject) {
            out.push(HistoryEntry {
                seq,
                at: r.now,
                actor: r.actor.clone(),
                action: action(&r.command),
                detail: detail(&r.command),
                outcome: outcome(&r),
            });
        }
        Ok(())
    })?;
    Ok(out)
}
