//! Unit tests of the arbiter's books (each `u` once, never rewound, restarts followed once,
//! resyncs announced only when no line carries the book) and of lag detection.

use super::arbiter::Lag;
use super::arbiter_tests::{book, both_up, feed, us, A, B, POLICY};
use crate::feed::{FeedEvent, ResyncReason};
use crate::protocol::ws::BookKind;

#[test]
fn each_book_update_is_emitted_once_and_a_late_snapshot_never_rewinds() {
    let mut arb = both_up();
    let mut out = feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 10, 100))),
    );
    out.extend(feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 11, 101))),
    ));
    out.extend(feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 12, 102))),
    ));
    // B subscribed later: its snapshot is older than A's book.
    out.extend(feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 11, 101))),
    ));
    out.extend(feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 12, 102))),
    ));
    out.extend(feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 13, 103))),
    ));
    out.extend(feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 13, 103))),
    ));
    assert_eq!(us(&out), vec![10, 11, 12, 13]);
    assert_eq!(arb.book_leader("BTCUSDT"), Some(B), "B delivered 13 first");
    // A snapshot ahead of the merged book (B fell behind) moves it forward.
    let out = feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 20, 110))),
    );
    assert_eq!(us(&out), vec![20]);
    assert!(feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 14, 104)))
    )
    .is_empty());
    assert_eq!(arb.book_merge("BTCUSDT").and_then(|b| b.behind(A)), Some(6));
}

#[test]
fn an_exchange_restart_starts_a_new_epoch_once() {
    let mut arb = both_up();
    feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 500, 100))),
    );
    feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 500, 100))),
    );
    let restart = FeedEvent::Resync {
        symbol: "BTCUSDT".into(),
        depth: 50,
        reason: ResyncReason::Restart,
    };
    assert!(feed(&mut arb, A, restart.clone()).is_empty());
    let out = feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 1, 200))),
    );
    assert_eq!(out[0], restart, "announced before the snapshot");
    assert_eq!(us(&out), vec![1]);
    // B still in the old epoch: its 501 is not newer than the new book.
    assert!(feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 501, 150)))
    )
    .is_empty());
    assert!(feed(&mut arb, B, restart).is_empty());
    assert!(feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 1, 200)))
    )
    .is_empty());
    assert_eq!(
        us(&feed(
            &mut arb,
            B,
            FeedEvent::Book(Box::new(book(BookKind::Delta, 2, 201)))
        )),
        vec![2]
    );
    assert!(feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 2, 201)))
    )
    .is_empty());
}

#[test]
fn a_restart_no_line_saw_as_one_is_recognised_by_time() {
    let mut arb = both_up();
    feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 500, 100))),
    );
    // Both lines were away when the u = 1 snapshot went out; A reconnects to u = 7.
    let out = feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 7, 300))),
    );
    assert!(matches!(
        out[0],
        FeedEvent::Resync {
            reason: ResyncReason::Restart,
            ..
        }
    ));
    assert_eq!(us(&out), vec![7]);
}

#[test]
fn a_gap_resync_reaches_the_feed_only_when_no_line_carries_the_book() {
    let mut arb = both_up();
    feed(
        &mut arb,
        A,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 10, 100))),
    );
    feed(
        &mut arb,
        B,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 10, 100))),
    );
    let resync = FeedEvent::Resync {
        symbol: "BTCUSDT".into(),
        depth: 50,
        reason: ResyncReason::Gap,
    };
    assert!(feed(&mut arb, A, resync.clone()).is_empty(), "B carries on");
    assert_eq!(
        us(&feed(
            &mut arb,
            B,
            FeedEvent::Book(Box::new(book(BookKind::Delta, 11, 101)))
        )),
        vec![11]
    );
    assert_eq!(feed(&mut arb, B, resync.clone()), vec![resync.clone()]);
    assert!(feed(&mut arb, A, resync).is_empty(), "announced once");
    assert_eq!(
        us(&feed(
            &mut arb,
            A,
            FeedEvent::Book(Box::new(book(BookKind::Snapshot, 15, 105)))
        )),
        vec![15]
    );
}

#[test]
fn a_stalled_or_lagging_line_is_named_only_while_the_other_delivers() {
    let mut arb = both_up();
    arb.on_event(
        A,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 10, 100))),
        0,
    );
    arb.on_event(
        B,
        FeedEvent::Book(Box::new(book(BookKind::Snapshot, 10, 100))),
        0,
    );
    arb.on_event(
        A,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 11, 101))),
        1_500,
    );
    assert_eq!(
        arb.laggards(1_600, POLICY),
        vec![(B, Lag::Stalled { ms: 1_600 })]
    );
    // Nobody delivers: nothing to compare against.
    assert!(arb.laggards(5_000, POLICY).is_empty());
    for u in 12..80 {
        arb.on_event(
            A,
            FeedEvent::Book(Box::new(book(BookKind::Delta, u, 101))),
            5_000,
        );
    }
    arb.on_event(
        B,
        FeedEvent::Book(Box::new(book(BookKind::Delta, 11, 101))),
        5_000,
    );
    assert_eq!(
        arb.laggards(5_100, POLICY),
        vec![(
            B,
            Lag::Behind {
                symbol: "BTCUSDT".into(),
                updates: 68
            }
        )]
    );
}
