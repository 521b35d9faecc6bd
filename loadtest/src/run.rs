//! What every run shares: the load shape and timing settings, the timeline (warmup, window,
//! end), and the sampler thread that closes an interval every second, feeds the live display and
//! starts and ends the measurement window.

use crate::progress::{Progress, ProgressMode};
use crate::record::Collector;
use crate::workload::WorkloadConfig;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How requests are issued.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadShape {
    /// Closed loop: `concurrency` callers, each sending its next request as soon as the last one
    /// returned. Measures the most the target sustains; latency is measured from each send.
    Closed {
        /// Callers.
        concurrency: usize,
    },
    /// Open loop: requests start on a fixed schedule of `rate` per second whatever the target does,
    /// and latency is measured from each request's intended start, so a stall is charged to every
    /// request it delayed (no coordinated omission). At most `max_in_flight` are outstanding;
    /// requests beyond that wait, still charged from their intended start.
    Open {
        /// Requests per second.
        rate: f64,
        /// Most requests outstanding at once.
        max_in_flight: usize,
    },
}

/// Settings shared by both modes.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// What to run and on what market.
    pub workload: WorkloadConfig,
    /// Open or closed loop.
    pub shape: LoadShape,
    /// Measured window.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Load before the window that is not measured.
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    /// Length of one sample (live display and plot).
    #[serde(serialize_with = "secs")]
    pub sample_interval: Duration,
    /// Deadline of every request (gRPC mode); in open loop, requests whose intended start is
    /// older than this when a slot frees up are not sent (`CLIENT_BACKLOG`).
    #[serde(serialize_with = "secs")]
    pub request_timeout: Duration,
    /// Live display.
    #[serde(skip)]
    pub progress: ProgressMode,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The run's fixed points in time.
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    /// Load starts.
    pub start: Instant,
    /// Warmup ends, the window starts.
    pub measure_at: Instant,
    /// No request starts at or after this.
    pub deadline: Instant,
}

impl Timeline {
    /// A timeline starting now.
    pub fn starting_now(config: &RunConfig) -> Self {
        let start = Instant::now();
        let measure_at = start + config.warmup;
        Self { start, measure_at, deadline: measure_at + config.duration }
    }

    /// The intended start of the `i`-th request of an open loop at `rate` per second.
    pub fn intended(&self, i: u64, rate: f64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / rate)
    }
}

/// The sampler thread: one sample per interval, the window's start and end.
pub struct Sampler {
    handle: Option<JoinHandle<Progress>>,
    stopped: Arc<AtomicBool>,
}

impl Sampler {
    /// Starts sampling. `on_measure` runs once, when the window starts.
    pub fn start(
        collector: Arc<Collector>,
        timeline: Timeline,
        config: &RunConfig,
        on_measure: Box<dyn FnOnce() + Send>,
    ) -> Sampler {
        let interval = config.sample_interval.max(Duration::from_millis(50));
        let mut progress = Progress::new(config.progress, timeline.deadline - timeline.start);
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        let handle = std::thread::Builder::new()
            .name("lg-sampler".into())
            .spawn(move || {
                let mut on_measure = Some(on_measure);
                let mut k = 1u32;
                loop {
                    let next_tick = timeline.start + interval * k;
                    let mut wake = next_tick.min(timeline.deadline);
                    if on_measure.is_some() {
                        wake = wake.min(timeline.measure_at);
                    }
                    let now = Instant::now();
                    if wake > now {
                        std::thread::sleep((wake - now).min(Duration::from_millis(100)));
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let now = Instant::now();
                    // An interval that ends as the window starts still belongs to the warmup.
                    if now >= next_tick || now >= timeline.deadline {
                        let sample = collector.sample();
                        progress.update(&sample);
                        k += 1;
                    }
                    if now >= timeline.measure_at {
                        if let Some(f) = on_measure.take() {
                            collector.start_measuring();
                            f();
                        }
                    }
                    if now >= timeline.deadline {
                        collector.end_window();
                        break;
                    }
                }
                progress
            })
            .expect("spawning the sampler thread");
        Sampler { handle: Some(handle), stopped }
    }

    /// Waits for the sampler to end the window (or stops it early) and clears the display.
    pub fn finish(mut self, early: bool) {
        if early {
            self.stopped.store(true, Ordering::Relaxed);
        }
        if let Some(handle) = self.handle.take() {
            if let Ok(progress) = handle.join() {
                progress.finish();
            }
        }
    }
}

/// Waits until `at` without oversleeping much: sleeps while more than a millisecond remains,
/// then spins (engine mode only, where the tool has the core to itself).
pub fn wait_until_precisely(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > Duration::from_millis(1) {
            std::thread::sleep(left - Duration::from_micros(500));
        } else {
            std::hint::spin_loop();
        }
    }
}
