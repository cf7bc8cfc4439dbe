//! `FeedSource::reconnect` (what `POST /api/feeds/{category}/reconnect` calls) in both isolation
//! modes against the simulator: the live connection ends with `Requested` and its reason, a second
//! connection goes live on the normal path (in process isolation through the same worker), and
//! after it the tape is complete (zero lost, zero duplicated against the journal) and the book
//! equals the true book. `FeedSource::resync` rebuilds every book from a fresh snapshot on the
//! same connection, the tape going on without a hole.

mod feed_common;

use std::time::Duration;

use feed_common::Rig;
use hft_connector::cli::run::Isolation;
use hft_connector::feed::{DisconnectReason, FeedEvent, ResyncReason};
use hft_connector::protocol::ws::BookKind;
use hft_connector::protocol::Category;
use hft_connector::source::RequestOutcome;

/// A hang guard only.
const GUARD: Duration = Duration::from_secs(60);

async fn reconnect_on_request(isolation: Isolation) {
    let rig = Rig::start_with(Category::Linear, isolation).await;
    rig.until_flowing().await;
    let pid = rig.monitor().pid();
    let mark = rig.len();
    let outcome = rig.monitor().reconnect("test: operator asked");
    // In either isolation the session, which runs in this process, acts on it.
    assert_eq!(outcome, RequestOutcome::Requested);
    if isolation == Isolation::Process {
        assert!(pid.is_some(), "a worker runs");
    }
    let (i, _) = rig
        .wait_for(mark, GUARD, "the requested disconnect", |e| {
            matches!(e, FeedEvent::Disconnected { .. })
        })
        .await;
    let reason = match &rig.events.lock().unwrap()[i].1 {
        FeedEvent::Disconnected { reason } => reason.clone(),
        _ => unreachable!(),
    };
    match &reason {
        DisconnectReason::Requested(why) => assert_eq!(why, "test: operator asked"),
        other => panic!("disconnected for {other:?}, not on request"),
    }
    let (j, _) = rig
        .wait_for(i, GUARD, "the second connection", |e| {
            matches!(e, FeedEvent::Connected { connection: 2, .. })
        })
        .await;
    // Live trades after the new connection: the tape goes on past the reconnect.
    rig.wait_for(
        j,
        GUARD,
        "a live trade after the reconnect",
        |e| matches!(e, FeedEvent::Trade(t) if !t.recovered),
    )
    .await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    assert_eq!(
        rig.count(|e| matches!(e, FeedEvent::Disconnected { .. })),
        1,
        "exactly the requested reconnect: {:?}",
        rig.summary()
    );
    if isolation == Isolation::Process {
        assert_eq!(rig.monitor().pid(), pid, "the same worker reconnected");
        assert_eq!(rig.monitor().worker_restarts(), 0);
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_feed_reconnects_on_request_without_losing_a_trade() {
    reconnect_on_request(Isolation::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_reconnects_on_request_without_losing_a_trade() {
    reconnect_on_request(Isolation::Process).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_between_connections_ends_the_backoff_wait() {
    let sim = hft_connector::sim::Simulator::start(feed_common::sim_config(Category::Linear))
        .await
        .expect("simulator starts");
    let mut cfg = feed_common::feed_config(&sim, Category::Linear);
    // A backoff far longer than the test's guard: only the request can end it in time.
    cfg.reconnect.initial_delay_s = 3600.0;
    cfg.reconnect.max_delay_s = 3600.0;
    let rig = Rig::with_isolation(
        sim,
        cfg,
        Category::Linear,
        Isolation::InProcess,
        feed_common::worker_options(),
    )
    .await;
    rig.until_flowing().await;
    let mark = rig.len();
    assert!(
        rig.sim
            .inject(hft_connector::sim::FaultRequest::new(
                hft_connector::sim::FaultKind::Close
            ))
            .applied
    );
    rig.wait_for(mark, GUARD, "the disconnect", |e| {
        matches!(e, FeedEvent::Disconnected { .. })
    })
    .await;
    // The feed now waits most of an hour before reconnecting; a request ends that wait.
    assert_eq!(
        rig.monitor().reconnect("test: skip the wait"),
        RequestOutcome::Requested
    );
    rig.wait_for(
        mark,
        GUARD,
        "the reconnect the request brought forward",
        |e| matches!(e, FeedEvent::Connected { connection: 2, .. }),
    )
    .await;
    rig.stop().await;
}

/// `FeedSource::resync`: every book announces a requested resync and is rebuilt from a fresh
/// snapshot on the same connection; the tape goes on without a hole and the book ends equal to
/// the true book.
async fn resync_on_request(isolation: Isolation) {
    let rig = Rig::start_with(Category::Linear, isolation).await;
    rig.until_flowing().await;
    let pid = rig.monitor().pid();
    let mark = rig.len();
    let outcome = rig.monitor().resync("test: fresh books");
    assert_eq!(outcome, RequestOutcome::Requested);
    assert_eq!(
        pid.is_some(),
        isolation == Isolation::Process,
        "a worker runs in process isolation"
    );
    let (i, _) = rig
        .wait_for(mark, GUARD, "the requested resync", |e| {
            matches!(
                e,
                FeedEvent::Resync {
                    reason: ResyncReason::Requested,
                    ..
                }
            )
        })
        .await;
    let (j, _) = rig
        .wait_for(
            i,
            GUARD,
            "a fresh snapshot",
            |e| matches!(e, FeedEvent::Book(b) if b.kind == BookKind::Snapshot),
        )
        .await;
    rig.until_live_trade_after(j).await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    assert_eq!(
        rig.count(|e| matches!(e, FeedEvent::Disconnected { .. })),
        0,
        "the connection stayed up: {:?}",
        rig.summary()
    );
    if isolation == Isolation::Process {
        assert_eq!(rig.monitor().pid(), pid, "the same worker");
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_feed_resyncs_its_books_on_request() {
    resync_on_request(Isolation::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_resyncs_its_books_on_request() {
    resync_on_request(Isolation::Process).await;
}
