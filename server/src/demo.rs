//! The `--demo` population: a seeded Linfen-shaped set of waiting workers and
//! verified employers, submitted through the host like any other write (so it
//! is logged and survives restarts), letting a newcomer match at once.

use crate::host::{Host, SubmitError};
use futures::StreamExt;
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, Regions, TradeCatalog};
use std::time::{Duration, Instant};

/// What to load.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Waiting workers (ids `w0`, `w1`, ...).
    pub workers: u64,
    /// Verified employers (ids `e0`, `e1`, ...).
    pub employers: u64,
    /// Generator seed: the same seed gives the same population.
    pub seed: u64,
    /// Writes in flight at once while loading (they share fsyncs).
    pub concurrency: usize,
}

impl DemoConfig {
    /// A population of `workers` workers and one verified employer per 250 workers (at least 20).
    pub fn with_workers(workers: u64) -> Self {
        Self { workers, employers: (workers / 250).max(20), seed: PopulationConfig::default().seed, concurrency: 512 }
    }
}

/// What loading did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoOutcome {
    /// The data directory already had workers; nothing was loaded.
    Skipped {
        /// Workers already there.
        existing_workers: usize,
    },
    /// The population was loaded.
    Loaded {
        /// Workers registered.
        workers: u64,
        /// Employers created.
        employers: u64,
        /// Commands the engine refused (a generated entity outside the configured limits).
        refused: u64,
        /// Wall time.
        elapsed: Duration,
    },
}

/// Why loading stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The host stopped accepting writes (log failure or shutdown).
    #[error("loading the demo population stopped: {0}")]
    Host(SubmitError),
}

/// Loads the demo population unless the host already has workers.
pub async fn load(
    host: &Host,
    config: &DemoConfig,
    regions: Regions,
    trades: TradeCatalog,
) -> Result<DemoOutcome, DemoError> {
    let existing_workers = host.read_engine(|e| e.worker_count());
    if existing_workers > 0 {
        return Ok(DemoOutcome::Skipped { existing_workers });
    }
    let started = Instant::now();
    let mut population = Population::new(PopulationConfig { seed: config.seed, ..Default::default() }, regions, trades);
    let mut commands = Vec::with_capacity(config.employers as usize);
    for i in 0..config.employers {
        let mut spec = population.employer(i);
        spec.verified = true;
        commands.push(Command::UpsertEmployer(spec));
    }
    let employers = submit_all(host, commands.into_iter(), config.concurrency).await?;
    let workers = submit_all(
        host,
        (0..config.workers).map(move |i| Command::UpsertWorker(population.worker(i))),
        config.concurrency,
    )
    .await?;
    Ok(DemoOutcome::Loaded {
        workers: workers.applied,
        employers: employers.applied,
        refused: workers.refused + employers.refused,
        elapsed: started.elapsed(),
    })
}

struct Submitted {
    applied: u64,
    refused: u64,
}

async fn submit_all(
    host: &Host,
    commands: impl Iterator<Item = Command>,
    concurrency: usize,
) -> Result<Submitted, DemoError> {
    let mut results =
        futures::stream::iter(commands).map(|c| host.submit(None, c)).buffer_unordered(concurrency.max(1));
    let mut done = Submitted { applied: 0, refused: 0 };
    while let Some(result) = results.next().await {
        match result {
            Ok(_) => done.applied += 1,
            Err(SubmitError::Engine(e)) => {
                tracing::debug!(error = %e, "demo command refused");
                done.refused += 1;
            }
            Err(SubmitError::Overloaded(_) | SubmitError::RequestIdReused) => {
                // Neither can happen: concurrency is below max_inflight and demo commands carry no request id.
                done.refused += 1;
            }
            Err(e @ (SubmitError::Unavailable(_) | SubmitError::NotLeader { .. })) => return Err(DemoError::Host(e)),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostConfig;
    use crate::wal::Durability;

    #[tokio::test]
    async fn loads_once_then_skips() {
        let dir = tempfile::tempdir().unwrap();
        let mut host_config = HostConfig::new(dir.path());
        host_config.durability = Durability::None;
        let host = Host::open(host_config).await.unwrap();
        let config = DemoConfig { workers: 300, employers: 5, seed: 7, concurrency: 64 };
        let outcome = load(&host, &config, Regions::linfen(), TradeCatalog::default_catalog()).await.unwrap();
        let DemoOutcome::Loaded { workers, employers, refused, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!((workers, employers, refused), (300, 5, 0));
        assert_eq!(host.read_engine(|e| (e.worker_count(), e.waiting_count())), (300, 300));
        assert!(host.read_engine(|e| e.employer("e4").is_some_and(|e| e.verified)));
        let again = load(&host, &config, Regions::linfen(), TradeCatalog::default_catalog()).await.unwrap();
        assert_eq!(again, DemoOutcome::Skipped { existing_workers: 300 });
        host.shutdown().await;
    }
}
