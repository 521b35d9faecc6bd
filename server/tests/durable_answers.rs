//! What an answer may show: with the log's fsync held back, a command that
//! writes no record of its own (a match that finds nobody, an idle tick, a
//! retry, a refusal) is not answered while the state it was computed from is
//! not yet durable; it is answered once that state is.

use futures::executor::block_on;
use futures::FutureExt as _;
use linggong_engine::population::{Population, PopulationConfig};
use linggong_engine::{Command, LatLon, Outcome, Timestamp, TradeSkillSpec};
use linggong_server::host::{Host, HostConfig};
use linggong_server::wal::{Durability, HoldableStorage};
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;
const SITE: LatLon = LatLon { lat: 36.08, lon: 111.52 };

fn host(dir: &std::path::Path, storage: &HoldableStorage) -> Arc<Host> {
    let mut config = HostConfig::new(dir);
    config.durability = Durability::Always;
    config.storage = Arc::new(storage.clone());
    config.clock = Arc::new(|| Timestamp(T0));
    Host::open(config).expect("host opens")
}

#[test]
fn answers_without_a_record_wait_for_the_state_they_show_to_be_durable() {
    let dir = tempfile::tempdir().unwrap();
    let storage = HoldableStorage::new();
    let host = host(dir.path(), &storage);
    let mut pop = Population::linfen(PopulationConfig::default());
    let mut employer = pop.employer(1);
    employer.verified = true;
    block_on(host.submit(None, Command::UpsertEmployer(employer))).unwrap();
    let mut posting = pop.posting(1, "e1", Timestamp(T0));
    (posting.county, posting.position, posting.trade, posting.headcount) = (141002, SITE, "porter".into(), 2);
    posting.daily_wage = 300;
    let posting_id = posting.id.clone();
    block_on(host.submit(None, Command::SubmitPosting(posting))).unwrap();

    // With fsync held, a worker registers: the reverse match offers them the
    // posting, in memory only.
    let held = storage.hold();
    let mut worker = pop.worker(1);
    (worker.county, worker.position, worker.min_daily_wage) = (141002, SITE, 100);
    worker.trades = smallvec::smallvec![TradeSkillSpec { trade: "porter".into(), level: 3 }];
    let mut register = Box::pin(host.submit(None, Command::UpsertWorker(worker)));
    assert!((&mut register).now_or_never().is_none(), "the registration waits for its fsync");

    // A match that finds nobody writes no record, but its answer (one slot
    // left) shows the offer that is not durable yet: it must wait too.
    let mut matched = Box::pin(host.submit(None, Command::InstantMatch { posting: posting_id, max_offers: 0 }));
    assert!((&mut matched).now_or_never().is_none(), "answered before the state it shows was durable");
    // So must an idle tick.
    let mut tick = Box::pin(host.submit(None, Command::Tick));
    assert!((&mut tick).now_or_never().is_none(), "an idle tick answered before the state was durable");

    drop(held);
    let registered = block_on(register).unwrap();
    let matched = block_on(matched).unwrap();
    assert!(
        matches!(matched.outcome, Outcome::Matched { ref offers, remaining: 1 } if offers.is_empty()),
        "{matched:?}"
    );
    assert_eq!(matched.seq, 0, "the match wrote no record");
    assert!(host.durable_watch().borrow().seq >= registered.seq);
    block_on(tick).unwrap();
}
