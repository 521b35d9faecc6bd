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

    /// Starts numbering afresh at `next_seq` with no history, after the state
    /// was replaced by a snapshot: the events between the old position and the
    /// snapshot's were never published here, so a watcher asking for them is
    /// told it is too far behind instead of silently skipping them, and a live
    /// watcher sees the jump in numbers and is told to resume.
    pub fn restart_at(&self, next_seq: u64) {
        let mut inner = self.inner.lock();
        inner.history.clear();
        inner.next_seq = next_seq;
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

#[cfg(test)]
mod tests {
    use super::*;
    use linggong_engine::{Event, PostingEvent, PostingState, Timestamp};

    fn event(seq: u64) -> SequencedEvent {
        SequencedEvent {
            seq,
            command_seq: seq,
            event: Event::Posting(PostingEvent {
                posting: format!("p-{seq}").into(),
                county: 1,
                township: None,
                state: PostingState::Published,
                version: 1,
                remaining: 1,
                at: Timestamp(0),
            }),
        }
    }

    #[test]
    fn after_a_restart_numbering_goes_on_from_the_snapshot_and_older_positions_are_refused() {
        let hub = EventHub::new(100, 1);
        hub.publish((1..=3).map(event));
        hub.restart_at(10);
        assert_eq!(hub.next_seq(), 10);
        let refused = hub.subscribe(3).err();
        assert_eq!(refused, Some(TooFarBehind { requested: 3, oldest_kept: 10 }), "events 4..=9 were never here");
        hub.publish([event(10), event(11)]);
        let from_snapshot = hub.subscribe(9).expect("the snapshot's position is served");
        let seqs: Vec<u64> = from_snapshot.backlog.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![10, 11]);
    }
}
