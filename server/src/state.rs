//! The replicated service state: the engine plus what the service adds around
//! it (request-id deduplication, event numbering, the last applied sequence).
//! Every replica's state machine, the migration's replay of a single-node log
//! and the offline tools all apply commands through [`ServiceState::apply`],
//! so all reach the same state.
//!
//! Request ids: each logged command carrying a request key is remembered with
//! a fingerprint of the command (a hash of its log encoding, so replay and
//! snapshots rebuild the same table). The last [`DEFAULT_DEDUPE_CAPACITY`]
//! keys (configurable) are remembered, the oldest forgotten first; keys of
//! refused commands and of commands that changed nothing are not remembered.

use crate::convert::wal::{command_fingerprint, LoggedCommand};
use crate::request_table::{FrozenRequests, RequestTable};
use linggong_engine::{
    Engine, EngineConfig, EngineError, EngineRecords, EngineSnapshot, Event, Outcome, SnapshotError, Timestamp,
};
use serde::{Deserialize, Serialize};

/// Request ids remembered for idempotent retries, by default.
pub const DEFAULT_DEDUPE_CAPACITY: usize = 200_000;

/// A command's durable result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Log sequence number of the command (0 if it changed nothing and was not logged).
    pub seq: u64,
    /// Time the command was applied with.
    pub at: Timestamp,
    /// What it did.
    pub outcome: Outcome,
}

/// A remembered request: its command's fingerprint and its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RememberedRequest {
    /// [`command_fingerprint`] of the command; `None` for requests remembered
    /// by a snapshot format older than 3, which match any retry.
    pub fingerprint: Option<u64>,
    /// The first result.
    pub applied: Applied,
}

/// What a request key with a command is, against the remembered requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RequestLookup<'a> {
    /// Not remembered: apply it.
    New,
    /// The same request again: answer the first result, apply nothing.
    Repeat(&'a Applied),
    /// The key was used for a different request: refuse.
    Reused,
}

/// An engine event with its stream position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequencedEvent {
    /// Event sequence number, from 1, gap-free: watchers resume after it.
    pub seq: u64,
    /// Log sequence number of the command that produced it.
    pub command_seq: u64,
    /// The event.
    pub event: Event,
}

/// Engine plus service bookkeeping.
#[derive(Clone)]
pub struct ServiceState {
    engine: Engine,
    last_seq: u64,
    next_event_seq: u64,
    requests: RequestTable,
    /// The engine's events of the command being applied (kept for its capacity only).
    scratch_events: Vec<Event>,
}

/// Serialised form of [`ServiceState`] (owned, for loading).
#[derive(Debug, PartialEq, Deserialize)]
pub struct StateSnapshot {
    /// Last applied sequence.
    pub last_seq: u64,
    /// Next event number.
    pub next_event_seq: u64,
    /// Remembered request ids, oldest first.
    pub dedupe: Vec<(String, RememberedRequest)>,
    /// Engine state.
    pub engine: EngineSnapshot,
}

/// A [`ServiceState`] frozen for a snapshot while the state goes on: taking
/// it shares the record tables and the request table (copy-on-write) instead
/// of copying them. Serialises to the same bytes as the [`StateSnapshot`] of
/// the same state.
#[derive(Clone, Serialize)]
pub struct FrozenState {
    last_seq: u64,
    next_event_seq: u64,
    dedupe: FrozenRequests,
    engine: EngineRecords,
}

impl FrozenState {
    /// Sequence number of the last logged command applied.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The engine's records.
    pub fn engine(&self) -> &EngineRecords {
        &self.engine
    }
}

impl ServiceState {
    /// A fresh state around an engine.
    pub fn new(engine: Engine, dedupe_capacity: usize) -> Self {
        Self {
            engine,
            last_seq: 0,
            next_event_seq: 1,
            requests: RequestTable::new(dedupe_capacity),
            scratch_events: Vec::new(),
        }
    }

    /// Rebuilds from a snapshot.
    pub fn restore(config: EngineConfig, s: StateSnapshot, dedupe_capacity: usize) -> Result<Self, SnapshotError> {
        let engine = Engine::restore(config, s.engine)?;
        let mut state = Self::new(engine, dedupe_capacity);
        state.last_seq = s.last_seq;
        state.next_event_seq = s.next_event_seq;
        for (key, request) in s.dedupe {
            state.requests.remember(key, request);
        }
        Ok(state)
    }

    /// The state frozen for a snapshot (see [`FrozenState`]).
    pub fn frozen(&self) -> FrozenState {
        FrozenState {
            last_seq: self.last_seq,
            next_event_seq: self.next_event_seq,
            dedupe: self.requests.frozen(),
            engine: self.engine.records(),
        }
    }

    /// The remembered requests.
    pub fn requests(&self) -> &RequestTable {
        &self.requests
    }

    /// The engine (read-only).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Sequence number of the last logged command applied.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Number the next event will get.
    pub fn next_event_seq(&self) -> u64 {
        self.next_event_seq
    }

    /// Whether a request key with this command is new, a repeat (with its
    /// first result) or reused for a different command.
    pub fn lookup_request(&self, key: &str, fingerprint: u64) -> RequestLookup<'_> {
        match self.requests.get(key) {
            None => RequestLookup::New,
            Some(r) if r.fingerprint.is_none_or(|f| f == fingerprint) => RequestLookup::Repeat(&r.applied),
            Some(_) => RequestLookup::Reused,
        }
    }

    /// Applies a command as the next log record. On success returns the result
    /// and whether it must be logged (false when it changed nothing; the
    /// sequence number is then not consumed). Events get numbers and are
    /// appended to `events`. On error nothing changed.
    pub fn apply(
        &mut self,
        logged: &LoggedCommand,
        events: &mut Vec<SequencedEvent>,
    ) -> Result<(Applied, bool), EngineError> {
        let mut produced = std::mem::take(&mut self.scratch_events);
        produced.clear();
        let actor = logged.actor.as_ref().map(|a| a.name.as_str());
        let result = self.engine.apply_by(logged.now, actor, &logged.command, &mut produced);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                self.scratch_events = produced;
                return Err(e);
            }
        };
        if outcome.is_no_op() {
            debug_assert!(produced.is_empty());
            self.scratch_events = produced;
            return Ok((Applied { seq: 0, at: logged.now, outcome }, false));
        }
        self.last_seq += 1;
        let seq = self.last_seq;
        for event in produced.drain(..) {
            events.push(SequencedEvent { seq: self.next_event_seq, command_seq: seq, event });
            self.next_event_seq += 1;
        }
        self.scratch_events = produced;
        let applied = Applied { seq, at: logged.now, outcome };
        if let Some(key) = &logged.request_key {
            let fingerprint = Some(command_fingerprint(&logged.command));
            self.requests.remember(key.clone(), RememberedRequest { fingerprint, applied: applied.clone() });
        }
        Ok((applied, true))
    }
}
