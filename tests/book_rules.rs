//! The order book against Bybit's rules, case by case, and against a naive model under random input.

use std::collections::BTreeMap;

use hft_connector::book::{OrderBook, Outcome};
use hft_connector::protocol::ws::{decode, BookKind, Frame, Level};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn lv(p: i64, q: i64) -> Level {
    Level::new(Decimal::new(p, 1), Decimal::new(q, 3))
}

fn snap(b: &mut OrderBook, u: u64, bids: &[Level], asks: &[Level]) -> Outcome {
    b.apply_levels(BookKind::Snapshot, u, Some(u * 10), u, bids, asks)
}

fn delta(b: &mut OrderBook, u: u64, bids: &[Level], asks: &[Level]) -> Outcome {
    b.apply_levels(BookKind::Delta, u, Some(u * 10), u, bids, asks)
}

#[test]
fn real_spot_snapshot_then_delta_gives_the_exact_50_by_50_book() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/bybit/spot-ob50-sequence.jsonl"
    ))
    .unwrap();
    let mut lines = text.lines();
    let mut book = OrderBook::new("BTCUSDT", 50);
    let Frame::Book(s) = decode(lines.next().unwrap()).unwrap() else {
        panic!()
    };
    assert_eq!(book.apply(&s), Outcome::Snapshot);
    let Frame::Book(d) = decode(lines.next().unwrap()).unwrap() else {
        panic!()
    };
    assert_eq!(book.apply(&d), Outcome::Delta);
    assert_eq!(book.level_counts(), (50, 50));
    assert_eq!(book.last_u(), Some(2876701));
    assert_eq!(book.seq(), Some(47474967823));
    let p = |s: &str| s.parse::<Decimal>().unwrap();
    // Inserted bid at its sorted place, deleted bid gone; ask updates, delete and insert.
    let bids: Vec<_> = book.bids().iter().map(|l| l.price).collect();
    assert_eq!(bids[2], p("75848.62"));
    assert!(!bids.contains(&p("75837.13")));
    assert_eq!(*bids.last().unwrap(), p("75837.24"));
    let asks = book.asks();
    assert_eq!(asks[1], Level::new(p("75848.89"), p("0.088149")));
    assert!(asks.iter().all(|l| l.price != p("75852.65")));
    assert!(asks
        .iter()
        .any(|l| l.price == p("75857.74") && l.qty == p("0.049778")));
    assert!(bids.windows(2).all(|w| w[0] > w[1]));
    assert!(asks.windows(2).all(|w| w[0].price < w[1].price));
    assert_eq!(book.mid(), Some(p("75848.745")));
    assert_eq!(book.spread(), Some(p("0.01")));
}

#[test]
fn snapshot_delta_stale_gap_and_recovery() {
    let mut b = OrderBook::new("X", 50);
    assert_eq!(
        delta(&mut b, 5, &[lv(10, 1)], &[]),
        Outcome::AwaitingSnapshot { got_u: 5 }
    );
    assert_eq!(
        snap(&mut b, 10, &[lv(100, 1), lv(99, 1)], &[lv(101, 1)]),
        Outcome::Snapshot
    );
    assert_eq!(
        delta(&mut b, 11, &[lv(100, 0)], &[lv(102, 5)]),
        Outcome::Delta
    );
    assert_eq!(b.best_bid(), Some(lv(99, 1)));
    assert_eq!(b.level_counts(), (1, 2));
    assert_eq!(
        delta(&mut b, 11, &[lv(98, 1)], &[]),
        Outcome::Stale {
            last_u: 11,
            got_u: 11
        }
    );
    assert_eq!(
        delta(&mut b, 3, &[lv(98, 1)], &[]),
        Outcome::Stale {
            last_u: 11,
            got_u: 3
        }
    );
    assert_eq!(b.level_counts(), (1, 2), "stale deltas change nothing");
    assert_eq!(
        delta(&mut b, 13, &[lv(98, 1)], &[]),
        Outcome::Gap {
            expected_u: 12,
            got_u: 13
        }
    );
    assert_eq!(b.level_counts(), (1, 2), "the gap delta is refused");
    assert!(!b.is_synced());
    assert_eq!(
        delta(&mut b, 12, &[lv(98, 1)], &[]),
        Outcome::AwaitingSnapshot { got_u: 12 },
        "nothing is built across a gap, even the missing id"
    );
    assert_eq!(
        snap(&mut b, 20, &[lv(97, 2)], &[lv(103, 2)]),
        Outcome::Snapshot
    );
    assert!(b.is_synced());
    assert_eq!(b.bids(), &[lv(97, 2)], "a snapshot replaces everything");
    assert_eq!(
        delta(&mut b, 21, &[], &[]),
        Outcome::Delta,
        "empty sides are fine"
    );
}

#[test]
fn restart_snapshot_with_u_1_is_a_reset() {
    let mut b = OrderBook::new("X", 50);
    snap(&mut b, 500, &[lv(100, 1)], &[lv(101, 1)]);
    assert_eq!(
        snap(&mut b, 1, &[lv(90, 1)], &[lv(91, 1)]),
        Outcome::Reset { previous_u: 500 }
    );
    assert_eq!(b.last_u(), Some(1));
    assert_eq!(delta(&mut b, 2, &[lv(89, 1)], &[]), Outcome::Delta);
}

#[test]
fn level_one_repeat_is_not_a_gap() {
    let mut b = OrderBook::new("X", 1);
    assert_eq!(
        snap(&mut b, 7, &[lv(100, 1)], &[lv(101, 1)]),
        Outcome::Snapshot
    );
    assert_eq!(
        snap(&mut b, 7, &[lv(100, 1)], &[lv(101, 1)]),
        Outcome::Repeat
    );
    assert_eq!(
        snap(&mut b, 9, &[lv(100, 2)], &[lv(101, 1)]),
        Outcome::Snapshot,
        "level 1 ids may jump"
    );
    assert_eq!(b.best_bid(), Some(lv(100, 2)));
}

#[test]
fn crossed_book_is_reported_and_needs_resync() {
    let mut b = OrderBook::new("X", 50);
    snap(&mut b, 1, &[lv(100, 1)], &[lv(101, 1)]);
    let o = delta(&mut b, 2, &[lv(102, 1)], &[]);
    assert_eq!(
        o,
        Outcome::Crossed {
            best_bid: Decimal::new(102, 1),
            best_ask: Decimal::new(101, 1)
        }
    );
    assert!(o.needs_resync() && !b.is_synced());
    assert_eq!(
        delta(&mut b, 3, &[], &[]),
        Outcome::AwaitingSnapshot { got_u: 3 }
    );
    let o = snap(&mut b, 9, &[lv(100, 1)], &[lv(100, 1)]);
    assert!(
        matches!(o, Outcome::Crossed { .. }),
        "a locked snapshot is crossed too"
    );
}

#[test]
fn depth_is_bounded_and_zero_for_absent_level_is_harmless() {
    let mut b = OrderBook::new("X", 3);
    let bids: Vec<_> = (0..10).map(|i| lv(100 - i, 1)).collect();
    let asks: Vec<_> = (0..10).map(|i| lv(200 + i, 1)).collect();
    snap(&mut b, 1, &bids, &asks);
    assert_eq!(b.level_counts(), (3, 3));
    assert_eq!(
        delta(&mut b, 2, &[lv(50, 0)], &[lv(500, 0)]),
        Outcome::Delta
    );
    assert_eq!(
        delta(&mut b, 3, &[lv(60, 1)], &[lv(1000, 1)]),
        Outcome::Delta
    );
    assert_eq!(
        b.level_counts(),
        (3, 3),
        "levels beyond the window are not kept"
    );
    assert_eq!(delta(&mut b, 4, &[lv(101, 1)], &[]), Outcome::Delta);
    assert_eq!(
        b.bids().iter().map(|l| l.price).collect::<Vec<_>>(),
        vec![
            Decimal::new(101, 1),
            Decimal::new(100, 1),
            Decimal::new(99, 1)
        ]
    );
    let (tb, ta) = b.top(2);
    assert_eq!((tb.len(), ta.len()), (2, 2));
}

#[test]
fn same_price_with_different_scale_is_one_level() {
    let mut b = OrderBook::new("X", 50);
    let p = |s: &str| s.parse::<Decimal>().unwrap();
    snap(
        &mut b,
        1,
        &[Level::new(p("75845.4"), p("1"))],
        &[Level::new(p("75900"), p("1"))],
    );
    delta(
        &mut b,
        2,
        &[Level::new(p("75845.40"), p("2"))],
        &[Level::new(p("75900.00"), p("0"))],
    );
    assert_eq!(b.level_counts(), (1, 0));
    assert_eq!(b.bids()[0].qty, p("2"));
}

/// A naive reference: BTreeMaps by price value holding each level as the book must show it (the
/// price text of the update that created the level, the size text of the one that last set it),
/// trimmed to the depth after every update exactly as the book forgets levels outside its window.
#[derive(Default)]
struct Model {
    bids: BTreeMap<i64, Level>,
    asks: BTreeMap<i64, Level>,
}

/// One generated level: price in cents, size, and whether each is written with an extra digit
/// (`0.50` vs `0.500`, `3` vs `3.00`): the same values in mixed scales, as the book must handle.
type Gen = (i64, i64, bool, bool);

#[derive(Debug, Clone)]
enum Step {
    Snapshot(Vec<Gen>, Vec<Gen>),
    Delta(Vec<Gen>, Vec<Gen>),
}

fn side(lo: i64, hi: i64) -> impl Strategy<Value = Vec<Gen>> {
    prop::collection::vec((lo..hi, 0i64..5, any::<bool>(), any::<bool>()), 0..12)
}

fn step() -> impl Strategy<Value = Step> {
    // Bids live in [1, 50), asks in [50, 100): valid input can never cross.
    prop_oneof![
        1 => (side(1, 50), side(50, 100)).prop_map(|(b, a)| Step::Snapshot(b, a)),
        6 => (side(1, 50), side(50, 100)).prop_map(|(b, a)| Step::Delta(b, a)),
    ]
}

fn level(&(p, q, wide_price, wide_qty): &Gen) -> Level {
    let price = if wide_price {
        Decimal::new(p * 10, 3)
    } else {
        Decimal::new(p, 2)
    };
    let qty = if wide_qty {
        Decimal::new(q * 100, 2)
    } else {
        Decimal::new(q, 0)
    };
    Level::new(price, qty)
}

fn levels(v: &[Gen]) -> Vec<Level> {
    v.iter().map(level).collect()
}

/// Levels as text, so a different scale is a difference.
fn texts(v: &[Level]) -> Vec<(String, String)> {
    v.iter()
        .map(|l| (l.price.to_string(), l.qty.to_string()))
        .collect()
}

impl Model {
    /// A snapshot: the first occurrence of a price wins; size 0 lists nothing.
    fn snapshot(&mut self, b: &[Gen], a: &[Gen]) {
        for (side, gens) in [(&mut self.bids, b), (&mut self.asks, a)] {
            side.clear();
            for g in gens.iter().filter(|g| g.1 > 0) {
                side.entry(g.0).or_insert_with(|| level(g));
            }
        }
    }

    /// A delta, in order: size 0 removes; an existing level keeps its price text.
    fn delta(&mut self, b: &[Gen], a: &[Gen]) {
        for (side, gens) in [(&mut self.bids, b), (&mut self.asks, a)] {
            for g in gens {
                let new = level(g);
                if g.1 == 0 {
                    side.remove(&g.0);
                } else if let Some(l) = side.get_mut(&g.0) {
                    l.qty = new.qty;
                } else {
                    side.insert(g.0, new);
                }
            }
        }
    }

    /// Forgets what lies outside the best `depth` levels; returns each side best first.
    fn trim(&mut self, depth: usize) -> (Vec<Level>, Vec<Level>) {
        let bids: Vec<(i64, Level)> = self
            .bids
            .iter()
            .rev()
            .take(depth)
            .map(|(&p, &l)| (p, l))
            .collect();
        let asks: Vec<(i64, Level)> = self
            .asks
            .iter()
            .take(depth)
            .map(|(&p, &l)| (p, l))
            .collect();
        self.bids = bids.iter().copied().collect();
        self.asks = asks.iter().copied().collect();
        (
            bids.into_iter().map(|(_, l)| l).collect(),
            asks.into_iter().map(|(_, l)| l).collect(),
        )
    }
}

proptest! {
    #[test]
    fn random_sequences_match_the_naive_model(steps in prop::collection::vec(step(), 1..60), depth in 1u16..20) {
        let mut book = OrderBook::new("P", depth);
        let mut model = Model::default();
        let mut u = 0u64;
        let mut seen_snapshot = false;
        for s in &steps {
            u += 1;
            match s {
                Step::Snapshot(b, a) => {
                    model.snapshot(b, a);
                    let o = book.apply_levels(BookKind::Snapshot, u, None, 0, &levels(b), &levels(a));
                    prop_assert!(o.applied());
                    seen_snapshot = true;
                }
                Step::Delta(b, a) => {
                    let o = book.apply_levels(BookKind::Delta, u, None, 0, &levels(b), &levels(a));
                    if !seen_snapshot {
                        prop_assert_eq!(o, Outcome::AwaitingSnapshot { got_u: u });
                        continue;
                    }
                    prop_assert_eq!(o, Outcome::Delta);
                    model.delta(b, a);
                }
            }
            let (keep_b, keep_a) = model.trim(depth as usize);
            prop_assert_eq!(texts(book.bids()), texts(&keep_b));
            prop_assert_eq!(texts(book.asks()), texts(&keep_a));
            if let (Some(bb), Some(ba)) = (book.best_bid(), book.best_ask()) {
                prop_assert!(bb.price < ba.price, "valid input never crosses");
            }
            prop_assert!(book.bids().len() <= depth as usize && book.asks().len() <= depth as usize);
        }
    }

    #[test]
    fn gaps_are_always_refused(start in 1u64..1000, skip in 2u64..100) {
        let mut book = OrderBook::new("P", 50);
        book.apply_levels(BookKind::Snapshot, start, None, 0, &levels(&[(1, 1, false, false)]), &levels(&[(60, 1, false, false)]));
        let before = book.clone();
        let o = book.apply_levels(BookKind::Delta, start + skip, None, 0, &levels(&[(2, 1, false, false)]), &[]);
        prop_assert_eq!(o, Outcome::Gap { expected_u: start + 1, got_u: start + skip });
        prop_assert_eq!(book.bids(), before.bids());
    }
}
