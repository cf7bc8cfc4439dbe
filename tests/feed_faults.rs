//! The live feed against every simulator fault: detection for the right reason, recovery, zero lost
//! and zero duplicated trades against the journal, and a final book equal to the true book.
//! Timers are scaled down (stale after 1 s, pings every 0.5 s) so the suite stays fast. Every wait
//! is for the event itself with a generous guard (a loaded machine only makes it slower); how soon
//! each fault is detected is proven on a virtual clock in `crates/feed/src/feed/session/tests.rs`
//! and measured in RELIABILITY.md's fault matrix.

mod feed_common;

use std::time::Duration;

use feed_common::{Rig, STALE_S};
use hft_connector::feed::{DisconnectReason, FeedEvent, ResyncReason};
use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest};

/// A hang guard only: every wait ends as soon as what it waits for happened.
const RECOVER: Duration = Duration::from_secs(60);

async fn reconnect_case(
    kind: FaultKind,
    seconds: f64,
    expect: fn(&DisconnectReason) -> bool,
) -> Rig {
    let rig = Rig::start(Category::Linear).await;
    rig.until_flowing().await;
    let mark = rig.len();
    let report = rig.sim.inject(FaultRequest::new(kind).seconds(seconds));
    assert!(report.applied, "{report:?}");
    let (i, _) = rig
        .wait_for(mark, RECOVER, "disconnect", |e| {
            matches!(e, FeedEvent::Disconnected { .. })
        })
        .await;
    let reason = match &rig.events.lock().unwrap()[i].1 {
        FeedEvent::Disconnected { reason } => reason.clone(),
        _ => unreachable!(),
    };
    assert!(expect(&reason), "{kind:?} detected as {reason:?}");
    let (j, _) = rig
        .wait_for(i, RECOVER, "reconnected", |e| {
            matches!(e, FeedEvent::Connected { .. })
        })
        .await;
    // Live data after the reconnect, then stop the market and compare with the ground truth.
    rig.wait_for(
        j,
        RECOVER,
        "a live trade after the reconnect",
        |e| matches!(e, FeedEvent::Trade(t) if !t.recovered),
    )
    .await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.until_health("a reconnect counted", |h| h.reconnects >= 1)
        .await;
    rig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_frame_reconnects_and_refills_trades() {
    let rig = reconnect_case(FaultKind::Close, 0.0, |r| {
        *r == DisconnectReason::ClosedByServer
    })
    .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_reset_reconnects_and_refills_trades() {
    let rig = reconnect_case(FaultKind::Reset, 0.0, |r| {
        matches!(
            r,
            DisconnectReason::Error(_) | DisconnectReason::ClosedByServer
        )
    })
    .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_is_caught_by_the_heartbeat() {
    // Pings every 0.5 s, pong timeout 0.5 s: a dead socket is noticed within about 1 s.
    let rig = reconnect_case(FaultKind::Stall, 3.0, |r| {
        matches!(r, DisconnectReason::PongTimeout | DisconnectReason::Stale)
    })
    .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_with_pongs_is_caught_by_stale_detection() {
    let rig = reconnect_case(FaultKind::Silence, 3.0, |r| *r == DisconnectReason::Stale).await;
    // Judged by the rule, never early: the feed's own measure is past the threshold.
    let stale: Vec<(f64, f64)> = rig
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            FeedEvent::Stale {
                seconds_since_last_event,
                stale_threshold,
                ..
            } => Some((*seconds_since_last_event, *stale_threshold)),
            _ => None,
        })
        .collect();
    assert!(!stale.is_empty());
    for (since, threshold) in stale {
        assert_eq!(threshold, STALE_S);
        assert!(since >= threshold, "stale after {since} s < {threshold} s");
    }
    rig.until_health("a stale detection counted", |h| h.stale_detections >= 1)
        .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_resyncs_the_book_without_reconnecting() {
    let rig = Rig::start(Category::Linear).await;
    rig.until_flowing().await;
    let mark = rig.len();
    assert!(rig.sim.inject(FaultRequest::new(FaultKind::Gap)).applied);
    let (i, _) = rig
        .wait_for(mark, RECOVER, "resync", |e| {
            matches!(
                e,
                FeedEvent::Resync {
                    reason: ResyncReason::Gap,
                    ..
                }
            )
        })
        .await;
    // A fresh snapshot follows; no book event was built across the gap.
    rig.wait_for(i, RECOVER, "fresh snapshot", |e| {
        matches!(e, FeedEvent::Book(b) if b.kind == hft_connector::protocol::ws::BookKind::Snapshot)
    })
    .await;
    rig.until_live_trade_after(i).await;
    rig.quiesce().await;
    assert_eq!(
        rig.count(|e| matches!(e, FeedEvent::Disconnected { .. })),
        0,
        "no reconnect needed"
    );
    let ev = rig.events.lock().unwrap().clone();
    let after_gap: Vec<_> = ev[i..]
        .iter()
        .filter_map(|(_, e)| match e {
            FeedEvent::Book(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(
        after_gap[0].kind,
        hft_connector::protocol::ws::BookKind::Snapshot,
        "first book after the gap is a snapshot"
    );
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_snapshot_resets_the_book() {
    let rig = Rig::start(Category::Linear).await;
    rig.until_flowing().await;
    let mark = rig.len();
    assert!(
        rig.sim
            .inject(FaultRequest::new(FaultKind::Restart))
            .applied
    );
    let (i, _) = rig
        .wait_for(mark, RECOVER, "restart", |e| {
            matches!(
                e,
                FeedEvent::Resync {
                    reason: ResyncReason::Restart,
                    ..
                }
            )
        })
        .await;
    let (j, _) = rig
        .wait_for(i, RECOVER, "book after restart", |e| {
            matches!(e, FeedEvent::Book(_))
        })
        .await;
    match &rig.events.lock().unwrap()[j].1 {
        FeedEvent::Book(b) => assert_eq!(b.u, 1, "the restart snapshot itself"),
        _ => unreachable!(),
    }
    rig.until_live_trade_after(j).await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_counted_and_skipped() {
    let rig = Rig::start(Category::Linear).await;
    rig.until_flowing().await;
    let before = rig.shared.health.snapshot().error_count;
    let mark = rig.len();
    assert!(
        rig.sim
            .inject(FaultRequest::new(FaultKind::Malformed).count(3))
            .applied
    );
    rig.wait_for(mark, RECOVER, "malformed", |e| {
        matches!(e, FeedEvent::Malformed { .. })
    })
    .await;
    rig.until_live_trade_after(mark).await;
    rig.quiesce().await;
    assert_eq!(rig.count(|e| matches!(e, FeedEvent::Malformed { .. })), 3);
    let h = rig
        .until_health("the malformed frames counted", |h| {
            h.error_count >= before + 3
        })
        .await;
    assert_eq!(h.error_count, before + 3, "each counted once");
    assert_eq!(
        rig.count(|e| matches!(e, FeedEvent::Disconnected { .. })),
        0,
        "the loop goes on"
    );
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.stop().await;
}

/// A panic while the session handles one frame (a decoder bug, injected by the test hook on the
/// frames the `malformed` fault sends) is contained: each such frame is reported as malformed,
/// counted and skipped, the connection goes on, and the tape and book stay exact. In process
/// isolation the session runs in the supervisor, so this is what keeps the service up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_handling_a_frame_is_counted_and_skipped() {
    let sim = hft_connector::sim::Simulator::start(feed_common::sim_config(Category::Linear))
        .await
        .expect("simulator starts");
    let mut cfg = feed_common::feed_config(&sim, Category::Linear);
    // Only the `malformed` fault's frames carry a fill time of 1.
    cfg.test_panic_on = Some(r#""T":1,"s""#.to_string());
    let rig = Rig::with(sim, cfg, Category::Linear).await;
    rig.until_flowing().await;
    let before = rig.shared.health.snapshot().error_count;
    let mark = rig.len();
    assert!(
        rig.sim
            .inject(FaultRequest::new(FaultKind::Malformed).count(2))
            .applied
    );
    let panicked = |e: &FeedEvent| matches!(e, FeedEvent::Malformed { error } if error.starts_with("panic while handling a frame: test hook"));
    let (i, _) = rig
        .wait_for(mark, RECOVER, "the first panic", panicked)
        .await;
    rig.wait_for(i + 1, RECOVER, "the second panic", panicked)
        .await;
    rig.until_live_trade_after(mark).await;
    rig.quiesce().await;
    assert_eq!(rig.count(panicked), 2, "{:?}", rig.summary());
    rig.until_health("the panics counted", |h| h.error_count >= before + 2)
        .await;
    assert_eq!(
        rig.count(|e| matches!(e, FeedEvent::Disconnected { .. })),
        0,
        "the connection goes on"
    );
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscription_is_loud_then_heals() {
    let rig = Rig::start(Category::Linear).await;
    rig.until_flowing().await;
    let mark = rig.len();
    assert!(
        rig.sim
            .inject(FaultRequest::new(FaultKind::RejectSubscribe).seconds(1.5))
            .applied
    );
    assert!(rig.sim.inject(FaultRequest::new(FaultKind::Close)).applied);
    let (i, _) = rig
        .wait_for(mark, RECOVER, "refusal", |e| {
            matches!(e, FeedEvent::SubscriptionRefused { .. })
        })
        .await;
    // Loud: an error state operators see as "down" (until a connection is accepted again).
    let deadline = tokio::time::Instant::now() + RECOVER;
    loop {
        if rig.shared.health.snapshot().status == "down" {
            break;
        }
        // A refusal that already healed again went through "down" too (the state machine
        // only leaves `refused` by connecting anew).
        if rig.count(|e| matches!(e, FeedEvent::Connected { .. })) >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never down nor healed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rig.until_health("the refusal counted as an error", |h| h.error_count >= 1)
        .await;
    rig.wait_for(i, RECOVER, "accepted again", |e| {
        matches!(e, FeedEvent::Connected { .. })
    })
    .await;
    rig.until_live_trade_after(i).await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_retried_with_backoff() {
    let rig = Rig::start(Category::Linear).await;
    rig.until_flowing().await;
    let mark = rig.len();
    assert!(
        rig.sim
            .inject(FaultRequest::new(FaultKind::Refuse).seconds(1.0))
            .applied
    );
    assert!(rig.sim.inject(FaultRequest::new(FaultKind::Close)).applied);
    let (i, _) = rig
        .wait_for(mark, RECOVER, "disconnect", |e| {
            matches!(e, FeedEvent::Disconnected { .. })
        })
        .await;
    rig.wait_for(i, RECOVER, "reconnected", |e| {
        matches!(e, FeedEvent::Connected { .. })
    })
    .await;
    // Failed attempts are counted.
    rig.until_health("the failed attempts counted", |h| h.error_count >= 1)
        .await;
    rig.until_live_trade_after(i).await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.stop().await;
}
