//! The event hub: durable engine events, numbered, kept in a bounded history
//! and broadcast live, so watchers can resume from any recent position.

use crate::state::SequencedEvent;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events kept for resuming watchers, by default.
pub const DEFAULT_EVENT_HISTORY: usize = 100_000;

/// A watcher asked to resume from before the oldest event still kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("events after {requested} are no longer kept; the oldest kept is {oldest_kept}")]
pub struct TooFarBehind {
    /// Position asked for.
    pub requested: u64,
    /// Oldest event number still available.
    pub oldest_kept: u64,
}

/// A subscription: the backlog after the requested position, then live events.
pub struct Subscription {
    /// Events already published after the requested position, in order.
    pub backlog: Vec<Arc<SequencedEvent>>,
    /// Live events after the backlog. `Lagged` means the watcher fell behind:
    /// it should resume from the last event it saw.
    pub live: broadcast::Receiver<Arc<SequencedEvent>>,
}

struct Inner {
    history: VecDeque<Arc<SequencedEvent>>,
    capacity: usize,
    next_seq: u64,
}

/// Publishes events to watchers.
pub struct EventHub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<SequencedEvent>>,
}

impl EventHub {
    /// A hub keeping `capacity` events, whose next event will be `next_seq`.
    pub fn new(capacity: usize, next_seq: u64) -> Self {
        let (tx, _) = broadcast::channel(capacity.clamp(1024, 65_536));
        Self { inner: Mutex::new(Inner { history: VecDeque::new(), capacity: capacity.max(1), next_seq }), tx }
    }

    /// Publishes events (numbered consecutively by the state machine).
    pub fn publish(&self, events: impl IntoIterator<Item = SequencedEvent>) {
        let mut inner = self.inner.lock();
        for e in events {
            let e = Arc::new(e);
            inner.next_seq = e.seq + 1;
            inner.history.push_back(e.clone());
            if inner.history.len() > inner.capacity {
                inner.history.pop_front();
            }
            let _ = self.tx.send(e);
        }
    }

    /// Number of the next event to be published.
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().next_seq
    }

    /// Subscribes to events after `after`, the last event the watcher saw (0:
    /// none; `next_seq() - 1`: live only).
    pub fn subscribe(&self, after: u64) -> Result<Subscription, TooFarBehind> {
        let inner = self.inner.lock();
        let oldest = inner.history.front().map_or(inner.next_seq, |e| e.seq);
        if after + 1 < oldest {
            return Err(TooFarBehind { requested: after, oldest_kept: oldest });
        }
        let skip = (after + 1).saturating_sub(oldest) as usize;
        let backlog = inner.history.iter().skip(skip).cloned().collect();
        let live = self.tx.subscribe();
        Ok(Subscription { backlog, live })
    }
}
