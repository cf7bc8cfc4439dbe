//! Property tests of the arbiter: two lines carrying the same true sequence, each with arbitrary
//! drops (announced the way a real line announces them), duplicates and snapshots, interleaved
//! arbitrarily: the merged feed delivers each trade exactly once, in the true order, and a book
//! sequence that never rewinds and never skips an id except through a snapshot.

use proptest::prelude::*;

use super::arbiter::{Arbiter, LagPolicy};
use super::arbiter_tests::{book, trade};
use crate::feed::{FeedEvent, ResyncReason};
use crate::protocol::ws::BookKind;

const POLICY: LagPolicy = LagPolicy {
    stall_ms: 1000,
    max_behind_updates: 1_000_000,
    promote_after_ms: 500,
};

/// What one line delivers of the true sequence (`n` trades, `m` book updates): `keep_t[i]`,
/// `keep_b[u]` say what reaches it; a dropped run is announced (`TradeGap`, `Resync`) before the
/// next delivered item, and a book resumes with a snapshot; `dup[i]` repeats an item at once.
fn line_events(keep_t: &[bool], keep_b: &[bool], dup: &[bool]) -> Vec<FeedEvent> {
    let mut trades = Vec::new();
    let mut hole = false;
    for (i, keep) in keep_t.iter().enumerate() {
        if !keep {
            hole = true;
            continue;
        }
        if std::mem::take(&mut hole) {
            trades.push(FeedEvent::TradeGap {
                symbol: "BTCUSDT".into(),
                from_ms: 0,
                to_ms: 0,
            });
        }
        trades.push(FeedEvent::Trade(Box::new(trade(i as u64))));
        if dup.get(i).copied().unwrap_or(false) {
            trades.push(FeedEvent::Trade(Box::new(trade(i as u64))));
        }
    }
    if hole {
        // A line that lost the last trades says so when it recovers.
        trades.push(FeedEvent::TradeGap {
            symbol: "BTCUSDT".into(),
            from_ms: 0,
            to_ms: 0,
        });
    }
    let mut books = Vec::new();
    let mut snapshot_next = true;
    for (k, keep) in keep_b.iter().enumerate() {
        let u = k as u64 + 1;
        if !keep {
            if !snapshot_next {
                books.push(FeedEvent::Resync {
                    symbol: "BTCUSDT".into(),
                    depth: 50,
                    reason: ResyncReason::Gap,
                });
            }
            snapshot_next = true;
            continue;
        }
        let kind = if std::mem::take(&mut snapshot_next) {
            BookKind::Snapshot
        } else {
            BookKind::Delta
        };
        books.push(FeedEvent::Book(Box::new(book(kind, u, 100))));
    }
    // Trades and books arrive interleaved in a fixed way; the schedule mixes the two lines.
    let mut out = Vec::new();
    let (mut t, mut b) = (trades.into_iter(), books.into_iter());
    loop {
        match (t.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

/// Runs both lines' events through an arbiter in the order `schedule` picks (true: line A), then
/// lets held trades out as time passes. Returns every merged event.
fn merge(a: Vec<FeedEvent>, b: Vec<FeedEvent>, schedule: &[bool]) -> Vec<FeedEvent> {
    let mut arb = Arbiter::new(2, "linear", &["BTCUSDT".to_string()]);
    let connected = FeedEvent::Connected {
        category: "linear".into(),
        symbols: vec!["BTCUSDT".into()],
        connection: 1,
    };
    let mut out = Vec::new();
    out.extend(arb.on_event(0, connected.clone(), 0).events);
    out.extend(arb.on_event(1, connected, 0).events);
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    let mut pick = schedule.iter().cycle();
    while a.peek().is_some() || b.peek().is_some() {
        let want_a = *pick.next().unwrap_or(&true);
        let line = match (a.peek().is_some(), b.peek().is_some()) {
            (true, false) => 0,
            (false, _) => 1,
            (true, true) => usize::from(!want_a),
        };
        let ev = if line == 0 { a.next() } else { b.next() };
        if let Some(ev) = ev {
            out.extend(arb.on_event(line, ev, 0).events);
        }
    }
    out.extend(arb.on_tick(10_000, POLICY).events);
    out
}

fn trade_ids(events: &[FeedEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            FeedEvent::Trade(t) => t.seq,
            _ => None,
        })
        .collect()
}

/// Emitted book updates never rewind and skip ids only through a snapshot.
fn check_books(events: &[FeedEvent], last_expected: Option<u64>) -> Result<(), TestCaseError> {
    let mut last: Option<u64> = None;
    for e in events {
        if let FeedEvent::Book(b) = e {
            if let Some(l) = last {
                prop_assert!(b.u > l, "rewound: {} after {}", b.u, l);
                prop_assert!(
                    b.u == l + 1 || b.kind == BookKind::Snapshot,
                    "delta {} after {} skips ids",
                    b.u,
                    l
                );
            }
            last = Some(b.u);
        }
    }
    if let Some(want) = last_expected {
        prop_assert_eq!(last, Some(want));
    }
    Ok(())
}

fn masks(n: usize) -> impl Strategy<Value = Vec<bool>> {
    // Mostly delivered: runs of drops, not noise.
    proptest::collection::vec(prop_oneof![4 => Just(true), 1 => Just(false)], n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// One line has faults, the other delivers everything (at its own pace): the merged feed is
    /// the true sequence, exactly once, in order, without any reported hole.
    #[test]
    fn one_faulty_line_loses_and_duplicates_nothing(
        n in 1usize..60,
        m in 1usize..60,
        keep_t in masks(60),
        keep_b in masks(60),
        dup_a in proptest::collection::vec(any::<bool>(), 60),
        dup_b in proptest::collection::vec(any::<bool>(), 60),
        schedule in proptest::collection::vec(any::<bool>(), 1..200),
        faulty_first in any::<bool>(),
    ) {
        let mut keep_t = keep_t[..n].to_vec();
        keep_t[0] = true;
        let faulty = line_events(&keep_t, &keep_b[..m], &dup_a);
        let good = line_events(&vec![true; n], &vec![true; m], &dup_b);
        let (a, b) = if faulty_first { (faulty, good) } else { (good, faulty) };
        let out = merge(a, b, &schedule);
        prop_assert_eq!(trade_ids(&out), (0..n as u64).collect::<Vec<_>>());
        let holes = out.iter().filter(|e| matches!(e, FeedEvent::TradeGap { .. })).count();
        prop_assert_eq!(holes, 0, "no hole reported");
        check_books(&out, Some(m as u64))?;
    }

    /// Both lines have faults (every trade reaches at least one of them): nothing is emitted twice
    /// or out of order, and a trade is missing only where the merged feed reported a hole.
    #[test]
    fn two_faulty_lines_never_duplicate_or_reorder_and_report_what_they_miss(
        n in 1usize..60,
        m in 1usize..60,
        keep_a in masks(60),
        keep_b in masks(60),
        keep_ba in masks(60),
        keep_bb in masks(60),
        dup in proptest::collection::vec(any::<bool>(), 60),
        schedule in proptest::collection::vec(any::<bool>(), 1..200),
    ) {
        let mut ka = keep_a[..n].to_vec();
        // Whatever A lost, B has.
        let kb: Vec<bool> = (0..n).map(|i| keep_b[i] || !ka[i]).collect();
        ka[0] = true;
        let a = line_events(&ka, &keep_ba[..m], &dup);
        let b = line_events(&kb, &keep_bb[..m], &[]);
        let out = merge(a, b, &schedule);
        let ids = trade_ids(&out);
        prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "order or duplicates: {:?}", ids);
        if ids.len() < n {
            let reported = out.iter().any(|e| matches!(e, FeedEvent::TradeGap { .. }));
            prop_assert!(
                reported || ids.first() != Some(&0),
                "trades missing without a reported hole: {:?}",
                ids
            );
        }
        check_books(&out, None)?;
    }
}
