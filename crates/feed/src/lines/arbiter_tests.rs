//! Unit tests of the arbiter's trades and lifecycle, one rule at a time (books and lag:
//! `book_tests.rs`), and the helpers both files use.

use rust_decimal::Decimal;

use super::arbiter::{Arbiter, Lag, LagPolicy, LineNote};
use super::trade_merge::{TradeMerge, HELD_CAPACITY, SEEN_CAPACITY};
use crate::feed::{DisconnectReason, FeedEvent};
use crate::normalized::{BookEvent, TradeEvent};
use crate::protocol::ws::BookKind;
use crate::protocol::ws::Side;

pub(super) const A: usize = 0;
pub(super) const B: usize = 1;
pub(super) const POLICY: LagPolicy = LagPolicy {
    stall_ms: 1000,
    max_behind_updates: 50,
    promote_after_ms: 500,
};

pub(super) fn trade(i: u64) -> TradeEvent {
    TradeEvent {
        symbol: "BTCUSDT".into(),
        id: format!("t{i:06}"),
        price: Decimal::ONE,
        qty: Decimal::ONE,
        side: Side::Buy,
        ts_ms: 1_000 + i / 3,
        seq: Some(i),
        block: false,
        category: None,
        recv_ns: None,
        recovered: false,
    }
}

pub(super) fn book(kind: BookKind, u: u64, ts_ms: u64) -> BookEvent {
    BookEvent {
        symbol: "BTCUSDT".into(),
        depth: 50,
        kind,
        u,
        seq: None,
        ts_ms,
        cts_ms: None,
        bids: vec![],
        asks: vec![],
        best_bid: None,
        best_ask: None,
        levels: (0, 0),
        category: None,
        recv_ns: None,
        top: None,
    }
}

pub(super) fn connected() -> FeedEvent {
    FeedEvent::Connected {
        category: "linear".into(),
        symbols: vec!["BTCUSDT".into()],
        connection: 1,
    }
}

pub(super) fn down() -> FeedEvent {
    FeedEvent::Disconnected {
        reason: DisconnectReason::ClosedByServer,
    }
}

fn gap() -> FeedEvent {
    FeedEvent::TradeGap {
        symbol: "BTCUSDT".into(),
        from_ms: 0,
        to_ms: 0,
    }
}

pub(super) fn both_up() -> Arbiter {
    let mut arb = Arbiter::new(2, "linear", &["BTCUSDT".to_string()]);
    arb.on_event(A, connected(), 0);
    arb.on_event(B, connected(), 0);
    arb
}

/// Trade indexes among the events.
pub(super) fn ids(events: &[FeedEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            FeedEvent::Trade(t) => t.seq,
            _ => None,
        })
        .collect()
}

pub(super) fn us(events: &[FeedEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            FeedEvent::Book(b) => Some(b.u),
            _ => None,
        })
        .collect()
}

pub(super) fn feed(arb: &mut Arbiter, line: usize, ev: FeedEvent) -> Vec<FeedEvent> {
    arb.on_event(line, ev, 0).events
}

#[test]
fn each_trade_is_emitted_once_by_whichever_line_delivers_it_first() {
    let mut arb = both_up();
    let mut out = Vec::new();
    for (line, i) in [(A, 1), (B, 1), (B, 2), (A, 2), (A, 3), (B, 3), (B, 4)] {
        out.extend(feed(&mut arb, line, FeedEvent::Trade(Box::new(trade(i)))));
    }
    assert_eq!(ids(&out), vec![1, 2, 3, 4]);
    let m = arb.trade_merge("BTCUSDT").expect("merged");
    assert_eq!((m.stats.emitted, m.stats.duplicates), (4, 3));
}

#[test]
fn a_line_with_a_hole_holds_its_trades_until_it_proves_it_continues_the_tape() {
    let mut arb = both_up();
    let mut out = feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    out.extend(feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(1)))));
    // B lost 2..4 and says so; it then runs ahead of A.
    assert!(
        feed(&mut arb, B, gap()).is_empty(),
        "the line's hole is not the feed's"
    );
    for i in [5, 6] {
        assert!(
            feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(i)))).is_empty(),
            "held"
        );
    }
    assert_eq!(arb.trade_merge("BTCUSDT").map(|m| m.held(B)), Some(2));
    for i in [2, 3, 4, 5] {
        out.extend(feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(i)))));
    }
    // A's 5 is B's held 5: B continues the tape from there, its 6 follows at once.
    assert_eq!(ids(&out), vec![1, 2, 3, 4, 5, 6]);
    let m = arb.trade_merge("BTCUSDT").expect("merged");
    assert!(m.in_sync(B) && m.held(B) == 0);
    assert!(feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(6)))).is_empty());
    assert_eq!(
        ids(&feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(7))))),
        vec![7]
    );
}

#[test]
fn a_line_delivering_a_trade_the_tape_has_is_back_in_sync() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(2))));
    feed(&mut arb, B, gap());
    // B's recovery starts inside what A already delivered: contiguous from there.
    assert!(feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(2)))).is_empty());
    assert!(arb.trade_merge("BTCUSDT").is_some_and(|m| m.in_sync(B)));
    assert_eq!(
        ids(&feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(3))))),
        vec![3]
    );
}

#[test]
fn both_lines_down_at_once_the_holding_line_carries_on_after_an_explicit_gap() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(2))));
    feed(&mut arb, B, gap());
    assert!(feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(9)))).is_empty());
    let step = arb.on_event(A, down(), 0);
    assert!(
        !step
            .events
            .iter()
            .any(|e| matches!(e, FeedEvent::Disconnected { .. })),
        "B is still connected: degraded, not disconnected"
    );
    let gap_event = step.events.iter().find_map(|e| match e {
        FeedEvent::TradeGap { from_ms, to_ms, .. } => Some((*from_ms, *to_ms)),
        _ => None,
    });
    assert_eq!(gap_event, Some((trade(2).ts_ms, trade(9).ts_ms)));
    assert_eq!(ids(&step.events), vec![9]);
    assert!(step
        .notes
        .iter()
        .any(|n| matches!(n, LineNote::MergedTradeGap { line: B, .. })));
}

#[test]
fn a_line_holding_alone_waits_the_grace_period_for_the_other_connected_line() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, A, gap());
    feed(&mut arb, B, gap());
    assert!(arb
        .on_event(B, FeedEvent::Trade(Box::new(trade(7))), 100)
        .events
        .is_empty());
    assert!(
        arb.on_tick(550, POLICY).events.is_empty(),
        "A may still deliver"
    );
    let step = arb.on_tick(650, POLICY);
    assert!(matches!(step.events[0], FeedEvent::TradeGap { .. }));
    assert_eq!(ids(&step.events), vec![7]);
}

#[test]
fn with_both_lines_holding_the_earliest_held_run_carries_the_tape_at_once() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, A, gap());
    feed(&mut arb, B, gap());
    assert!(arb
        .on_event(B, FeedEvent::Trade(Box::new(trade(7))), 100)
        .events
        .is_empty());
    let step = arb.on_event(A, FeedEvent::Trade(Box::new(trade(5))), 200);
    assert!(matches!(step.events[0], FeedEvent::TradeGap { .. }));
    assert_eq!(ids(&step.events), vec![5]);
    // A's 7 is B's held 7: B continues the tape from there.
    assert_eq!(
        ids(&feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(7))))),
        vec![7]
    );
    assert!(arb.trade_merge("BTCUSDT").is_some_and(|m| m.in_sync(B)));
}

#[test]
fn the_first_trade_starts_the_tape_without_a_gap() {
    let mut arb = both_up();
    let out = feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(40))));
    assert_eq!(ids(&out), vec![40]);
    assert!(!out.iter().any(|e| matches!(e, FeedEvent::TradeGap { .. })));
    // A started earlier than B's first trade: its older trades are not the tape's.
    assert!(feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(39)))).is_empty());
    assert!(feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(40)))).is_empty());
    assert_eq!(
        ids(&feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(41))))),
        vec![41]
    );
}

#[test]
fn recovered_trades_are_reported_only_for_what_the_merged_tape_took() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(1))));
    // B reconnected and refilled 2 and 3 from REST; A had 2 already.
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(2))));
    let mut r2 = trade(2);
    r2.recovered = true;
    let mut r3 = trade(3);
    r3.recovered = true;
    feed(&mut arb, B, FeedEvent::Trade(Box::new(r2)));
    assert_eq!(
        ids(&feed(&mut arb, B, FeedEvent::Trade(Box::new(r3)))),
        vec![3]
    );
    let out = feed(
        &mut arb,
        B,
        FeedEvent::TradesRecovered {
            symbol: "BTCUSDT".into(),
            count: 2,
            from_ms: 0,
            to_ms: 0,
        },
    );
    assert_eq!(
        out,
        vec![FeedEvent::TradesRecovered {
            symbol: "BTCUSDT".into(),
            count: 1,
            from_ms: trade(3).ts_ms,
            to_ms: trade(3).ts_ms
        }]
    );
    let none = FeedEvent::TradesRecovered {
        symbol: "BTCUSDT".into(),
        count: 5,
        from_ms: 0,
        to_ms: 0,
    };
    assert!(
        feed(&mut arb, A, none).is_empty(),
        "A's recovery added nothing"
    );
}

#[test]
fn the_feed_is_connected_while_any_line_is() {
    let mut arb = Arbiter::new(2, "linear", &["BTCUSDT".to_string()]);
    let step = arb.on_event(A, connected(), 0);
    assert!(matches!(
        step.events[..],
        [FeedEvent::Connected { connection: 1, .. }]
    ));
    assert!(arb.on_event(B, connected(), 0).events.is_empty());
    let step = arb.on_event(A, down(), 0);
    assert!(step.events.is_empty(), "one line down: degraded");
    assert!(matches!(
        step.notes[..],
        [LineNote::Down {
            line: A,
            live_lines: 1,
            ..
        }]
    ));
    assert!(arb.on_event(A, connected(), 0).events.is_empty());
    arb.on_event(A, down(), 0);
    let step = arb.on_event(B, down(), 0);
    assert_eq!(
        step.events,
        vec![down()],
        "both down: the feed is disconnected"
    );
    let step = arb.on_event(B, connected(), 0);
    assert!(matches!(
        step.events[..],
        [FeedEvent::Connected { connection: 2, .. }]
    ));
}

#[test]
fn stale_and_refusals_reach_the_feed_only_when_no_other_line_is_connected() {
    let mut arb = both_up();
    let stale = FeedEvent::Stale {
        seconds_since_last_event: 3.0,
        stale_threshold: 3.0,
        symbol: "BTCUSDT".into(),
    };
    assert!(feed(&mut arb, A, stale.clone()).is_empty());
    feed(&mut arb, B, down());
    assert_eq!(feed(&mut arb, A, stale.clone()), vec![stale]);
    let bad = FeedEvent::Malformed { error: "x".into() };
    assert_eq!(feed(&mut arb, A, bad.clone()), vec![bad]);
}

#[test]
fn a_restarted_line_must_prove_its_tape_again() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(1))));
    let step = arb.line_restarted(B, &Lag::Stalled { ms: 2_000 });
    assert!(step.events.is_empty(), "A carries the feed");
    assert!(!arb.lines()[B].connected && arb.lines()[B].restarts == 1);
    feed(&mut arb, B, connected());
    assert!(
        feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(3)))).is_empty(),
        "held"
    );
    assert_eq!(
        ids(&feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(2))))),
        vec![2]
    );
    assert_eq!(
        ids(&feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(3))))),
        vec![3]
    );
}

#[test]
fn trades_older_than_the_tape_that_the_id_set_forgot_are_not_repeated() {
    let mut m = TradeMerge::new(2);
    let up = [true, true];
    for i in 0..(SEEN_CAPACITY as u64 + 10) {
        m.on_trade(A, trade(i), &up, 0);
    }
    let head = SEEN_CAPACITY as u64 + 9;
    assert_eq!(m.on_trade(B, trade(head), &up, 0).trades().count(), 0);
    assert!(m.in_sync(B));
    let out = m.on_trade(B, trade(0), &up, 0);
    assert_eq!(out.trades().count(), 0, "forgotten but older than the head");
    assert_eq!(m.stats.emitted, head + 1);
}

#[test]
fn held_trades_are_bounded() {
    let mut m = TradeMerge::new(2);
    let up = [true, true];
    m.on_trade(A, trade(0), &up, 0);
    m.on_trade(B, trade(0), &up, 0);
    m.line_hole(B);
    for i in 10..(HELD_CAPACITY as u64 + 20) {
        m.on_trade(B, trade(i), &up, 0);
    }
    assert_eq!(m.held(B), HELD_CAPACITY);
    assert_eq!(m.stats.overflow, 10);
}

#[test]
fn a_held_trade_the_tape_moved_past_is_reported_as_a_hole_never_dropped_silently() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, B, gap());
    assert!(feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(5)))).is_empty());
    // A's tape skipped 5 without saying so; B then reaches 6, which the tape has.
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(6))));
    let out = feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(6))));
    assert_eq!(
        out,
        vec![FeedEvent::TradeGap {
            symbol: "BTCUSDT".into(),
            from_ms: trade(5).ts_ms,
            to_ms: trade(5).ts_ms
        }]
    );
    assert_eq!(
        arb.trade_merge("BTCUSDT").map(|m| m.stats.discarded),
        Some(1)
    );
}

#[test]
fn a_book_gap_on_a_line_makes_it_prove_its_trades_again() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(1))));
    // A lost frames (its book saw a gap): its next live trade may lie after lost ones.
    let resync = FeedEvent::Resync {
        symbol: "BTCUSDT".into(),
        depth: 50,
        reason: crate::feed::ResyncReason::Gap,
    };
    feed(&mut arb, A, resync);
    assert!(
        feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(4)))).is_empty(),
        "held"
    );
    let mut out = Vec::new();
    for i in 2..=4 {
        out.extend(feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(i)))));
    }
    assert_eq!(
        ids(&out),
        vec![2, 3, 4],
        "B carried the trades A lost, in order"
    );
    assert!(arb.trade_merge("BTCUSDT").is_some_and(|m| m.in_sync(A)));
}

#[test]
fn a_book_gap_on_every_line_is_the_exchange_skipping_ids_and_costs_no_trade() {
    let mut arb = both_up();
    feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(1))));
    feed(&mut arb, B, FeedEvent::Trade(Box::new(trade(1))));
    let resync = FeedEvent::Resync {
        symbol: "BTCUSDT".into(),
        depth: 50,
        reason: crate::feed::ResyncReason::Gap,
    };
    feed(&mut arb, A, resync.clone());
    assert!(
        feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(2)))).is_empty(),
        "held"
    );
    // B sees the same gap: A was right all along, its held trade goes out.
    let out = feed(&mut arb, B, resync);
    assert_eq!(ids(&out), vec![2]);
    assert!(!out.iter().any(|e| matches!(e, FeedEvent::TradeGap { .. })));
    assert_eq!(
        ids(&feed(&mut arb, A, FeedEvent::Trade(Box::new(trade(3))))),
        vec![3]
    );
}

#[test]
fn each_line_reports_the_newest_trade_it_delivered_even_a_repeat() {
    let mut arb = Arbiter::new(2, "linear", &["BTCUSDT".to_string()]);
    arb.on_event(A, connected(), 0);
    arb.on_event(B, connected(), 0);
    assert_eq!(arb.lines()[A].last_trade_ms, None);
    arb.on_event(A, FeedEvent::Trade(Box::new(trade(2))), 0);
    arb.on_event(A, FeedEvent::Trade(Box::new(trade(3))), 0);
    // B delivers the same trades later: repeats for the tape, but B is delivering.
    arb.on_event(B, FeedEvent::Trade(Box::new(trade(2))), 0);
    let (a, b) = (trade(3).ts_ms, trade(2).ts_ms);
    assert!(a > b, "the fixture's trades are in time order");
    assert_eq!(arb.lines()[A].last_trade_ms, Some(a));
    assert_eq!(arb.lines()[B].last_trade_ms, Some(b));
}
