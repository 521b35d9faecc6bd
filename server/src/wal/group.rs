//! A group-commit writer thread over a [`WalWriter`]: callers hand it records
//! and a completion; it writes everything queued in one go, syncs once
//! (per the durability mode) and only then runs each completion. Any write or
//! sync error is fail-stop: that batch and every later one fail.

use super::writer::WalWriter;
use crate::histogram::{AtomicHistogram, COUNT_BUCKETS, LATENCY_BUCKETS};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a log writer has done, for metrics.
pub struct WalStats {
    /// fdatasync latency, seconds.
    pub fsync_seconds: AtomicHistogram,
    /// Records made durable per fdatasync (group commit).
    pub records_per_fsync: AtomicHistogram,
    /// Records written.
    pub records_written: AtomicU64,
    /// Payload bytes written.
    pub bytes_written: AtomicU64,
}

impl Default for WalStats {
    fn default() -> Self {
        Self {
            fsync_seconds: AtomicHistogram::new(LATENCY_BUCKETS),
            records_per_fsync: AtomicHistogram::new(COUNT_BUCKETS),
            records_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        }
    }
}

impl WalStats {
    /// Counts records written.
    pub fn written(&self, records: u64, bytes: u64) {
        self.records_written.fetch_add(records, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one fdatasync that made `records` durable.
    pub fn synced(&self, took: Duration, records: u64) {
        self.fsync_seconds.observe(took.as_secs_f64());
        self.records_per_fsync.observe(records as f64);
    }
}

/// What a completion learns: the last sequence number of its records once
/// they are written (and synced, if the durability mode syncs), or why not.
pub type Completion = Box<dyn FnOnce(Result<u64, String>) + Send>;

struct Job {
    payloads: Vec<Vec<u8>>,
    done: Completion,
    sync: SyncWait,
}

/// Whether a job's completion waits for a sync.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SyncWait {
    /// After the fdatasync covering it (per the durability mode).
    Covering,
    /// After the write; synced with the next job that waits for a sync.
    Later,
}

/// The sending side of a group-commit writer; dropping it stops the thread
/// after it has written and synced what was queued.
pub struct GroupWriter {
    tx: Option<Sender<Job>>,
    failed: Arc<parking_lot::Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

/// Records in one batch at most.
const MAX_BATCH: usize = 8192;

impl GroupWriter {
    /// Starts the writer thread `name` over `wal`, numbering records from `next_seq`.
    /// `stats` counts its writes and syncs.
    pub fn start(name: &str, wal: WalWriter, next_seq: u64, stats: Arc<WalStats>) -> std::io::Result<GroupWriter> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let failed = Arc::new(parking_lot::Mutex::new(None));
        let thread = {
            let failed = failed.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || group_loop(wal, rx, next_seq, failed, &stats))?
        };
        Ok(GroupWriter { tx: Some(tx), failed, thread: Some(thread) })
    }

    /// Queues `payloads` as consecutive records; `done` runs on the writer
    /// thread once they are written and synced, or with the error.
    pub fn submit(&self, payloads: Vec<Vec<u8>>, done: Completion) {
        self.send(Job { payloads, done, sync: SyncWait::Covering });
    }

    /// Queues `payloads` that need not be durable on their own (they are
    /// synced with the next records that do): a batch of only such records
    /// costs no fdatasync.
    pub fn submit_unsynced(&self, payloads: Vec<Vec<u8>>) {
        self.send(Job { payloads, done: Box::new(|_| {}), sync: SyncWait::Later });
    }

    fn send(&self, job: Job) {
        match &self.tx {
            Some(tx) => {
                if let Err(e) = tx.send(job) {
                    (e.into_inner().done)(Err("the log writer has stopped".into()));
                }
            }
            None => (job.done)(Err("the log writer has stopped".into())),
        }
    }

    /// Queues `payloads` and waits until they are durable (or failed).
    pub fn submit_and_wait(&self, payloads: Vec<Vec<u8>>) -> Result<u64, String> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(
            payloads,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or_else(|_| Err("the log writer has stopped".into()))
    }

    /// The error that stopped the log, if one did (fail-stop).
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().clone()
    }
}

impl Drop for GroupWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn group_loop(
    mut wal: WalWriter,
    rx: Receiver<Job>,
    mut next_seq: u64,
    failed: Arc<parking_lot::Mutex<Option<String>>>,
    stats: &WalStats,
) {
    let mut unsynced_records = 0u64;
    let idle_wait = match wal.durability() {
        super::Durability::Interval(every) => every,
        _ => Duration::from_secs(3600),
    };
    let mut batch: Vec<Job> = Vec::new();
    let fail = |message: String, batch: &mut Vec<Job>| {
        tracing::error!(error = %message, "log write failed: no more writes will be accepted (fail-stop)");
        *failed.lock() = Some(message.clone());
        for job in batch.drain(..) {
            (job.done)(Err(message.clone()));
        }
        for job in rx.iter() {
            (job.done)(Err(format!("the log failed earlier: {message}")));
        }
    };
    loop {
        let first = match rx.recv_timeout(idle_wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = wal.sync_now() {
                    return fail(e.to_string(), &mut batch);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut records = first.payloads.len();
        batch.push(first);
        while records < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    records += job.payloads.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let start = next_seq;
        let numbered = batch.iter().flat_map(|j| j.payloads.iter()).enumerate();
        let written = wal.append(numbered.map(|(i, p)| (start + i as u64, p.as_slice())));
        let bytes: usize = batch.iter().flat_map(|j| j.payloads.iter()).map(Vec::len).sum();
        stats.written(records as u64, bytes as u64);
        unsynced_records += records as u64;
        let wants_sync = batch.iter().any(|j| j.sync == SyncWait::Covering);
        let sync_started = Instant::now();
        let synced = written.and_then(|()| if wants_sync { wal.sync_if_due() } else { Ok(false) });
        match synced {
            Ok(true) => {
                stats.synced(sync_started.elapsed(), unsynced_records);
                unsynced_records = 0;
            }
            Ok(false) => {}
            Err(e) => return fail(e.to_string(), &mut batch),
        }
        for job in batch.drain(..) {
            next_seq += job.payloads.len() as u64;
            (job.done)(Ok(next_seq - 1));
        }
    }
    if let Err(e) = wal.sync_now() {
        fail(e.to_string(), &mut batch);
    }
}
