//! End-to-end tests of streams and concurrency: a posting watcher that
//! disconnects and resumes misses nothing and sees nothing twice, and 200
//! concurrent instant matches on one area never offer a worker twice.

use linggong_server::proto::v1 as pb;
use linggong_tests::*;
use std::collections::HashSet;
use std::time::Duration;

type Change = (u64, String, i32, u64);

/// Reads messages until `want` posting events (not markers) arrived; returns
/// the changes and the last `seq` seen.
async fn read_changes(
    stream: &mut tonic::Streaming<pb::WatchPostingsResponse>,
    want: usize,
    mut last_seq: u64,
) -> anyhow::Result<(Vec<Change>, u64)> {
    let mut changes = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        while changes.len() < want {
            let Some(message) = stream.message().await? else { anyhow::bail!("stream ended early") };
            anyhow::ensure!(
                message.seq > last_seq || (message.event.is_none() && message.seq == last_seq),
                "seq went back: {} after {last_seq}",
                message.seq
            );
            last_seq = message.seq;
            if let Some(e) = message.event {
                anyhow::ensure!(e.county_code == YAODU, "an event of county {} in Yaodu's stream", e.county_code);
                changes.push((message.seq, e.posting_id, e.state, e.version));
            }
        }
        Ok(())
    })
    .await??;
    Ok((changes, last_seq))
}

#[tokio::test]
async fn a_watcher_that_reconnects_misses_nothing_and_sees_nothing_twice() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;

    let mut stream = c
        .postings
        .watch_postings(authed(&t.yaodu, pb::WatchPostingsRequest { county_code: YAODU, after_seq: None }))
        .await?
        .into_inner();
    let start = tokio::time::timeout(Duration::from_secs(10), stream.message()).await??.expect("a position marker");
    assert!(start.event.is_none(), "a stream starts with a position marker");
    let start_seq = start.seq;

    let submit = |id: String, county: u32| {
        let seat = if county == YAODU { YAODU_SEAT } else { HOUMA_SEAT };
        posting(&id, "e1", "porter", county, offset(seat, 0.0, 0.0), 1)
    };
    for i in 0..5 {
        submit_posting(&mut c, &t.operator, submit(format!("a{i}"), YAODU)).await?;
        submit_posting(&mut c, &t.operator, submit(format!("h{i}"), HOUMA)).await?;
    }
    let (mut before, last_seen) = read_changes(&mut stream, 5, start_seq).await?;
    // Disconnect: drop the stream and its channel, then change more while away.
    drop(stream);
    drop(c);
    let mut c = server.clients().await?;
    for i in 5..10 {
        submit_posting(&mut c, &t.operator, submit(format!("a{i}"), YAODU)).await?;
        submit_posting(&mut c, &t.operator, submit(format!("h{i}"), HOUMA)).await?;
    }
    for i in [0, 7] {
        c.postings
            .cancel_posting(authed(
                &t.operator,
                pb::CancelPostingRequest {
                    request_id: String::new(),
                    posting_id: format!("a{i}"),
                    reason: "取消".into(),
                },
            ))
            .await?;
    }
    let mut resumed = c
        .postings
        .watch_postings(authed(&t.yaodu, pb::WatchPostingsRequest { county_code: YAODU, after_seq: Some(last_seen) }))
        .await?
        .into_inner();
    let (after, _) = read_changes(&mut resumed, 7, last_seen).await?;
    drop(resumed);

    // The reference: one uninterrupted read of the same span.
    let mut full = c
        .postings
        .watch_postings(authed(&t.yaodu, pb::WatchPostingsRequest { county_code: YAODU, after_seq: Some(start_seq) }))
        .await?
        .into_inner();
    let (reference, _) = read_changes(&mut full, 12, start_seq).await?;
    drop(full);

    before.extend(after);
    assert_eq!(before, reference, "resumed = uninterrupted: nothing lost, nothing repeated");
    let seqs: HashSet<u64> = before.iter().map(|c| c.0).collect();
    assert_eq!(seqs.len(), before.len());
    let cancelled: Vec<&str> =
        before.iter().filter(|c| c.2 == pb::PostingState::Cancelled as i32).map(|c| c.1.as_str()).collect();
    assert_eq!(cancelled, ["a0", "a7"]);
    server.stop().await
}

#[tokio::test]
async fn concurrent_instant_matches_never_double_book_a_worker() -> anyhow::Result<()> {
    const WORKERS: usize = 150;
    const POSTINGS: usize = 100;
    const CALLS: usize = 200;
    let server = TestServer::start().await?;
    let t = server.tokens.clone();
    let mut c = server.clients().await?;
    upsert_employer(&mut c, &t.operator, "e1", true).await?;
    register_workers(
        &mut c,
        &t.yaodu,
        &WorkerGroup {
            prefix: "w",
            count: WORKERS,
            county: YAODU,
            trade: "porter",
            centre: YAODU_SEAT,
            spread_m: 3_000.0,
        },
    )
    .await?;
    for i in 0..POSTINGS {
        let p = posting(&format!("p{i}"), "e1", "porter", YAODU, offset(YAODU_SEAT, (i % 10) as f64 * 50.0, 0.0), 3);
        submit_posting(&mut c, &t.yaodu, p).await?;
    }

    // 200 calls at once (two per posting) over four connections.
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(server.clients().await?);
    }
    let mut calls = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let mut client = connections[i % connections.len()].matches.clone();
        let token = t.yaodu.clone();
        calls.push(tokio::spawn(async move {
            client
                .instant_match(authed(
                    &token,
                    pb::InstantMatchRequest {
                        request_id: format!("m{i}"),
                        posting_id: format!("p{}", i % POSTINGS),
                        max_offers: 0,
                    },
                ))
                .await
        }));
    }
    let mut offered = Vec::new();
    for call in calls {
        let response = call.await??.into_inner();
        offered.extend(response.offers.into_iter().map(|o| o.worker_id));
    }
    let unique: HashSet<&String> = offered.iter().collect();
    assert_eq!(unique.len(), offered.len(), "a worker was offered twice");
    assert_eq!(offered.len(), WORKERS, "slots outnumber workers, so every worker got exactly one offer");

    let (live, invariants) = server.running().host.read_engine(|e| {
        let live: Vec<String> = e.live_offers().iter().map(|o| e.worker_by_key(o.worker).id.to_string()).collect();
        (live, e.check_invariants())
    });
    let live_unique: HashSet<&String> = live.iter().collect();
    assert_eq!(live_unique.len(), live.len(), "no worker holds two live offers");
    assert_eq!(live.len(), WORKERS);
    invariants.map_err(anyhow::Error::msg)?;
    server.stop().await
}
