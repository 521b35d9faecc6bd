//! Group commit at the Raft level: writes waiting at the same moment are
//! proposed together as one entry (see [`super::batch`]).
//!
//! openraft 0.9 appends each proposed entry on its own and waits in its core
//! loop until that append is flushed, so one entry per write means one
//! fdatasync per write, one after the other. The [`Proposer`] keeps a few
//! entries in flight ([`MAX_IN_FLIGHT`]); whatever arrives while they are out
//! goes into the next one, so the batch grows with the load and the number of
//! fdatasyncs and replication rounds per second stays what the disk and the
//! network allow. Entries are handed to openraft in the order they were cut,
//! and every command in an entry gets its own result from the leader's apply.

use super::{batch, ClusterCommand, TypeConfig};
use crate::host::SubmitError;
use crate::state::Applied;
use openraft::error::ClientWriteError;
use openraft::Raft;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Entries proposed and not yet answered, at most.
pub const MAX_IN_FLIGHT: usize = 4;
/// Commands in one entry, at most.
pub const MAX_BATCH: usize = 1024;
/// Bytes of commands in one entry, at most (a single larger command still goes alone).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Writes waiting for an entry, at most; more are refused as overloaded.
pub const MAX_WAITING: usize = 16 * 1024;

/// Why a proposal got no result of its own.
#[derive(Debug, Clone, PartialEq)]
pub enum ProposeError {
    /// This member is not (or no longer) the leader; the leader's id if known.
    NotLeader(Option<u64>),
    /// Anything else: Raft stopped, the entry was lost to a change of leader…
    Refused(SubmitError),
}

struct Proposal {
    command: Vec<u8>,
    answer: oneshot::Sender<Result<Applied, ProposeError>>,
}

/// The sending side; the batching task ends when it is dropped.
pub struct Proposer {
    tx: mpsc::Sender<Proposal>,
}

impl Proposer {
    /// Starts the batching task over `raft` (on the current tokio runtime).
    pub fn start(raft: Raft<TypeConfig>) -> Proposer {
        let (tx, rx) = mpsc::channel(MAX_WAITING);
        tokio::spawn(run(raft, rx));
        Proposer { tx }
    }

    /// Proposes one WAL-encoded command and waits for its result on the leader.
    pub async fn propose(&self, command: Vec<u8>) -> Result<Applied, ProposeError> {
        let (answer, result) = oneshot::channel();
        match self.tx.try_send(Proposal { command, answer }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(ProposeError::Refused(SubmitError::Overloaded(MAX_WAITING)))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(ProposeError::Refused(SubmitError::Unavailable("the member is shutting down".into())))
            }
        }
        result.await.unwrap_or_else(|_| {
            Err(ProposeError::Refused(SubmitError::Unavailable("the proposal was dropped before its result".into())))
        })
    }
}

async fn run(raft: Raft<TypeConfig>, mut rx: mpsc::Receiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut bytes = first.command.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.command.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let payload = batch::encode(batch.iter().map(|p| p.command.as_slice()));
        // Handing the entry over is a channel send: entries reach openraft in this order.
        let pending = raft.client_write_ff(ClusterCommand { payload }).await;
        tokio::spawn(async move {
            let _permit = permit;
            let result = match pending {
                Ok(rx) => match rx.await {
                    Ok(Ok(response)) => Ok(response.data.outcomes),
                    Ok(Err(ClientWriteError::ForwardToLeader(f))) => Err(ProposeError::NotLeader(f.leader_id)),
                    Ok(Err(e)) => Err(ProposeError::Refused(SubmitError::Unavailable(e.to_string()))),
                    Err(_) => Err(ProposeError::Refused(SubmitError::Unavailable(
                        "Raft dropped the entry before answering (a change of leader?)".into(),
                    ))),
                },
                Err(fatal) => Err(ProposeError::Refused(SubmitError::Unavailable(fatal.to_string()))),
            };
            distribute(batch, result);
        });
    }
}

/// Answers every proposal of an entry: its own outcome, or the entry's error.
fn distribute(batch: Vec<Proposal>, result: Result<Vec<Result<Applied, SubmitError>>, ProposeError>) {
    match result {
        Ok(outcomes) if outcomes.len() == batch.len() => {
            for (p, outcome) in batch.into_iter().zip(outcomes) {
                let _ = p.answer.send(outcome.map_err(ProposeError::Refused));
            }
        }
        Ok(outcomes) => {
            let e = SubmitError::Unavailable(format!(
                "the entry applied {} results for {} commands",
                outcomes.len(),
                batch.len()
            ));
            for p in batch {
                let _ = p.answer.send(Err(ProposeError::Refused(e.clone())));
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.answer.send(Err(e.clone()));
            }
        }
    }
}
