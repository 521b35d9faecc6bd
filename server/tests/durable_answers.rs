//! What an answer may show: with the log's fsync held back, no command is
//! answered, not even one that changes nothing (a match that finds nobody,
//! an idle tick): every command is a Raft entry, answered once committed, so
//! no answer shows state that a crash could erase. Once the fsync goes
//! through, all are answered, in order.

use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, LatLon, Outcome, Timestamp, TradeSkillSpec};
use linggong_server::host::{Host, HostConfig};
use linggong_server::wal::{Durability, HoldableStorage};
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;
const SITE: LatLon = LatLon { lat: 36.08, lon: 111.52 };

async fn host(dir: &std::path::Path, storage: &HoldableStorage) -> Arc<Host> {
    let mut config = HostConfig::new(dir);
    config.durability = Durability::Always;
    config.storage = Arc::new(storage.clone());
    config.clock = Arc::new(|| Timestamp(T0));
    Host::open(config).await.expect("host opens")
}

/// Whether `task` is still running after a moment.
async fn still_waiting<T>(task: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(std::time::Duration::from_millis(300), task).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_a_record_wait_for_the_state_they_show_to_be_durable() {
    let dir = tempfile::tempdir().unwrap();
    let storage = HoldableStorage::new();
    let host = host(dir.path(), &storage).await;
    let mut pop = Population::linfen(PopulationConfig::default());
    let mut employer = pop.employer(1);
    employer.verified = true;
    host.submit(None, Command::UpsertEmployer(employer)).await.unwrap();
    let mut posting = pop.posting(1, "e1", Timestamp(T0));
    (posting.county, posting.position, posting.trade, posting.headcount) = (141002, SITE, "porter".into(), 2);
    posting.daily_wage = 300;
    let posting_id = posting.id.clone();
    host.submit(None, Command::SubmitPosting(posting)).await.unwrap();

    // With fsync held, a worker registers: the reverse match would offer them
    // the posting, but the entry is not durable, so not committed.
    let held = storage.hold();
    let mut worker = pop.worker(1);
    (worker.county, worker.position, worker.min_daily_wage) = (141002, SITE, 100);
    worker.trades = smallvec::smallvec![TradeSkillSpec { trade: "porter".into(), level: 3 }];
    let submit = |command: Command| {
        let host = host.clone();
        tokio::spawn(async move { host.submit(None, command).await })
    };
    let mut register = submit(Command::UpsertWorker(worker));
    assert!(still_waiting(&mut register).await, "the registration waits for its fsync");

    // A match that finds nobody changes nothing, but its answer (one slot
    // left) shows the offer that is not durable yet: it must wait too.
    let mut matched = submit(Command::InstantMatch { posting: posting_id, max_offers: 0 });
    assert!(still_waiting(&mut matched).await, "answered before the state it shows was durable");
    // So must an idle tick.
    let mut tick = submit(Command::Tick);
    assert!(still_waiting(&mut tick).await, "an idle tick answered before the state was durable");

    drop(held);
    let registered = register.await.unwrap().unwrap();
    let matched = matched.await.unwrap().unwrap();
    assert!(
        matches!(matched.outcome, Outcome::Matched { ref offers, remaining: 1 } if offers.is_empty()),
        "{matched:?}"
    );
    assert_eq!(matched.seq, 0, "the match changed nothing");
    assert!(registered.seq > 0);
    tick.await.unwrap().unwrap();
    host.shutdown().await;
}
