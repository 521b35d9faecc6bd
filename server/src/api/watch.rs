//! Resumable event streams for `WatchPostings` and `WatchOffers`.
//!
//! A watch subscribes to the host's numbered events after the client's
//! `after_seq` (or after the newest event, when none is given), sends a
//! position marker first, then the backlog and live events the watch selects,
//! each with its `seq`. While events of no interest go by, markers keep the
//! client's position recent (after every [`MARKER_EVERY`] such events, and
//! when the stream has been idle for [`MARKER_IDLE`]). A watcher that falls
//! behind the live broadcast has its stream ended with ABORTED naming the
//! `after_seq` to resume from, so nothing is lost or repeated on reconnect.

use super::errors;
use crate::events::Subscription;
use crate::host::Host;
use crate::state::SequencedEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

/// Messages buffered per watcher before the pump waits for the client.
pub const WATCH_BUFFER: usize = 256;
/// A position marker is sent after this many events of no interest in a row.
pub const MARKER_EVERY: u64 = 1024;
/// A position marker is sent when events of no interest went by and the stream then idled this long.
pub const MARKER_IDLE: Duration = Duration::from_secs(1);

/// The stream a watch RPC returns.
pub type WatchStream<M> = ReceiverStream<Result<M, Status>>;

/// Starts a watch. `marker(seq)` builds a position marker; `select` turns the
/// events the watcher wants into messages.
pub(crate) fn watch<M, F>(
    host: &Host,
    after_seq: Option<u64>,
    marker: fn(u64) -> M,
    select: F,
) -> Result<WatchStream<M>, Status>
where
    M: Send + 'static,
    F: Fn(&SequencedEvent) -> Option<M> + Send + 'static,
{
    let newest = host.next_event_seq().saturating_sub(1);
    let after = after_seq.unwrap_or(newest);
    if after > newest {
        return Err(errors::watch_ahead(after, newest));
    }
    let subscription = host.subscribe(after).map_err(errors::too_far_behind)?;
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let pump = Pump { tx, last: after, unsent: 0, marker, select };
    tokio::spawn(pump.run(subscription).instrument(tracing::Span::current()));
    Ok(ReceiverStream::new(rx))
}

struct Pump<M, F> {
    tx: mpsc::Sender<Result<M, Status>>,
    /// Seq of the last event passed (sent or skipped).
    last: u64,
    /// Events skipped since the last message sent.
    unsent: u64,
    marker: fn(u64) -> M,
    select: F,
}

impl<M, F> Pump<M, F>
where
    M: Send + 'static,
    F: Fn(&SequencedEvent) -> Option<M> + Send + 'static,
{
    /// Sends a message; false once the client has gone.
    async fn send(&mut self, message: Result<M, Status>) -> bool {
        self.unsent = 0;
        self.tx.send(message).await.is_ok()
    }

    async fn send_marker(&mut self) -> bool {
        let marker = (self.marker)(self.last);
        self.send(Ok(marker)).await
    }

    /// Passes one event on, or counts it as skipped. False once the client has gone.
    async fn pass(&mut self, event: &Arc<SequencedEvent>) -> bool {
        if event.seq <= self.last {
            return true;
        }
        if event.seq > self.last + 1 {
            // Events were never published here (the member installed a snapshot):
            // the watcher resumes from its last event, on a member that has them.
            let missed = event.seq - self.last - 1;
            tracing::info!(resume_after = self.last, missed, "gap in event numbers; ending the watch");
            let _ = self.send(Err(errors::watcher_lagged(self.last, missed))).await;
            return false;
        }
        self.last = event.seq;
        match (self.select)(event) {
            Some(message) => self.send(Ok(message)).await,
            None => {
                self.unsent += 1;
                if self.unsent >= MARKER_EVERY {
                    return self.send_marker().await;
                }
                true
            }
        }
    }

    async fn run(mut self, subscription: Subscription) {
        let Subscription { backlog, mut live } = subscription;
        if !self.send_marker().await {
            return;
        }
        for event in &backlog {
            if !self.pass(event).await {
                return;
            }
        }
        drop(backlog);
        if self.unsent > 0 && !self.send_marker().await {
            return;
        }
        loop {
            let received = if self.unsent > 0 {
                tokio::select! {
                    _ = self.tx.closed() => return,
                    r = live.recv() => r,
                    _ = tokio::time::sleep(MARKER_IDLE) => {
                        if !self.send_marker().await {
                            return;
                        }
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    _ = self.tx.closed() => return,
                    r = live.recv() => r,
                }
            };
            match received {
                Ok(event) => {
                    if !self.pass(&event).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(resume_after = self.last, missed, "watcher fell behind; ending its stream");
                    let status = errors::watcher_lagged(self.last, missed);
                    let _ = self.send(Err(status)).await;
                    return;
                }
                Err(RecvError::Closed) => {
                    let status = errors::events_closed(self.last);
                    let _ = self.send(Err(status)).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::errors::RESUME_AFTER_SEQ_TRAILER;
    use linggong_engine::{Event, PostingEvent, PostingState, Timestamp};
    use tokio::sync::broadcast;

    fn event(seq: u64, county: u32) -> Arc<SequencedEvent> {
        Arc::new(SequencedEvent {
            seq,
            command_seq: seq,
            event: Event::Posting(PostingEvent {
                posting: format!("p-{seq}").into(),
                county,
                township: None,
                state: PostingState::Published,
                version: 1,
                remaining: 1,
                at: Timestamp(0),
            }),
        })
    }

    /// Messages as (seq, is_event); markers are (seq, false).
    fn start_pump(
        backlog: Vec<Arc<SequencedEvent>>,
        live: broadcast::Receiver<Arc<SequencedEvent>>,
        wanted_county: u32,
    ) -> mpsc::Receiver<Result<(u64, bool), Status>> {
        let (tx, rx) = mpsc::channel(4096);
        let pump = Pump {
            tx,
            last: 0,
            unsent: 0,
            marker: |seq| (seq, false),
            select: move |e: &SequencedEvent| (e.event.county() == wanted_county).then_some((e.seq, true)),
        };
        tokio::spawn(pump.run(Subscription { backlog, live }));
        rx
    }

    async fn recv<T>(rx: &mut mpsc::Receiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("bounded wait").expect("open")
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_told_where_to_resume() {
        let (sender, live) = broadcast::channel(4);
        for seq in 3..=12 {
            sender.send(event(seq, 1)).expect("a receiver exists");
        }
        let mut rx = start_pump(vec![event(1, 1), event(2, 1)], live, 1);
        assert_eq!(recv(&mut rx).await.unwrap(), (0, false));
        assert_eq!(recv(&mut rx).await.unwrap(), (1, true));
        assert_eq!(recv(&mut rx).await.unwrap(), (2, true));
        let status = recv(&mut rx).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(status.message().contains("after_seq = 2"), "{}", status.message());
        let trailer = status.metadata().get(RESUME_AFTER_SEQ_TRAILER).and_then(|v| v.to_str().ok());
        assert_eq!(trailer, Some("2"));
        assert!(recv_closed(&mut rx).await, "the stream ends after the error");
    }

    #[tokio::test]
    async fn a_gap_in_event_numbers_ends_the_stream_with_where_to_resume() {
        let (sender, live) = broadcast::channel(16);
        let mut rx = start_pump(vec![event(1, 1)], live, 1);
        assert_eq!(recv(&mut rx).await.unwrap(), (0, false));
        assert_eq!(recv(&mut rx).await.unwrap(), (1, true));
        sender.send(event(5, 1)).expect("a receiver exists");
        let status = recv(&mut rx).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
        let trailer = status.metadata().get(RESUME_AFTER_SEQ_TRAILER).and_then(|v| v.to_str().ok());
        assert_eq!(trailer, Some("1"));
        assert!(recv_closed(&mut rx).await, "the stream ends after the error");
    }

    async fn recv_closed<T>(rx: &mut mpsc::Receiver<T>) -> bool {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("bounded wait").is_none()
    }

    #[tokio::test]
    async fn markers_keep_a_quiet_watchers_position_recent() {
        let (sender, live) = broadcast::channel(16);
        let n = MARKER_EVERY + 6;
        let backlog: Vec<_> = (1..=n).map(|seq| event(seq, 2)).collect();
        let mut rx = start_pump(backlog, live, 1);
        assert_eq!(recv(&mut rx).await.unwrap(), (0, false));
        assert_eq!(recv(&mut rx).await.unwrap(), (MARKER_EVERY, false));
        assert_eq!(recv(&mut rx).await.unwrap(), (n, false), "end of backlog");
        sender.send(event(n + 1, 1)).expect("a receiver exists");
        assert_eq!(recv(&mut rx).await.unwrap(), (n + 1, true));
        // An event seen twice (backlog and live overlap) is passed on once.
        sender.send(event(n + 1, 1)).expect("a receiver exists");
        sender.send(event(n + 2, 1)).expect("a receiver exists");
        assert_eq!(recv(&mut rx).await.unwrap(), (n + 2, true));
    }
}
