//! The deterministic order process of one instrument: limit orders arriving near the touch, cancels,
//! and taker sweeps that trade through one or more levels (one `seq` per sweep). Pure: a seeded RNG
//! and the book in, level changes and trades out.

use rand::rngs::SmallRng;
use rand::Rng;

use super::instrument::Instrument;
use super::ladder::{BookSide, Change, Ladder};
use crate::protocol::Side;

/// Levels kept per side; every published window (at most 1000) fits well inside.
pub const LEVELS_TARGET: usize = 1_100;
const LEVELS_MAX: usize = 1_250;

/// What one market step did to the book.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepResult {
    /// Level changes, one per (side, price).
    pub changes: Vec<Change>,
    /// Fills of a taker sweep: (price ticks, lots), best price first.
    pub fills: Vec<(i64, i64)>,
    /// The taker side when there were fills.
    pub taker: Option<Side>,
}

/// Fills a fresh book around the instrument's starting price.
pub fn seed_book(inst: &Instrument, rng: &mut SmallRng) -> Ladder {
    let mut l = Ladder::default();
    let mut bid = inst.start_ticks - 1;
    let mut ask = inst.start_ticks;
    for _ in 0..LEVELS_TARGET {
        l.set(BookSide::Bid, bid.max(1), random_lots(inst, rng));
        l.set(BookSide::Ask, ask, random_lots(inst, rng));
        bid -= rng.random_range(1..=3);
        ask += rng.random_range(1..=3);
    }
    l
}

fn random_lots(inst: &Instrument, rng: &mut SmallRng) -> i64 {
    rng.random_range(1..=inst.typical_lots * 3)
}

/// A distance from the touch, mostly small, sometimes deep.
fn distance(rng: &mut SmallRng) -> i64 {
    if rng.random_bool(0.08) {
        rng.random_range(1..=900)
    } else {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        1 + (-u.ln() * 3.0) as i64
    }
}

fn record(ladder: &mut Ladder, changes: &mut Vec<Change>, side: BookSide, price: i64, lots: i64) {
    let old = ladder.set(side, price, lots);
    match changes
        .iter_mut()
        .find(|c| c.side == side && c.price == price)
    {
        Some(c) => c.new = lots.max(0),
        None => changes.push(Change {
            side,
            price,
            old,
            new: lots.max(0),
        }),
    }
}

/// Runs one step of the order process on `ladder`.
pub fn step(inst: &Instrument, ladder: &mut Ladder, rng: &mut SmallRng) -> StepResult {
    let mut r = StepResult::default();
    let roll: f64 = rng.random();
    let side = if rng.random_bool(0.5) {
        BookSide::Bid
    } else {
        BookSide::Ask
    };
    let best_bid = ladder.best(BookSide::Bid).map(|l| l.0);
    let best_ask = ladder.best(BookSide::Ask).map(|l| l.0);
    if roll < 0.45 {
        // A limit order joins or creates a level on its side, never crossing the other side.
        let price = match (side, best_bid, best_ask) {
            (BookSide::Bid, _, Some(a)) => a - distance(rng),
            (BookSide::Bid, Some(b), None) => b + 1 - distance(rng),
            (BookSide::Ask, Some(b), _) => b + distance(rng),
            (BookSide::Ask, None, Some(a)) => a - 1 + distance(rng),
            _ => inst.start_ticks,
        }
        .max(1);
        let lots = ladder.lots_at(side, price) + random_lots(inst, rng);
        record(ladder, &mut r.changes, side, price, lots);
    } else if roll < 0.85 {
        // A cancel, mostly near the touch.
        let len = ladder.len(side);
        if len > 0 {
            let idx = if rng.random_bool(0.1) {
                rng.random_range(0..len.min(1000))
            } else {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                ((-u.ln() * 6.0) as usize).min(len - 1)
            };
            let (price, lots) = ladder.side(side)[idx];
            let left = if lots <= 1 || rng.random_bool(0.5) {
                0
            } else {
                lots - rng.random_range(1..lots)
            };
            record(ladder, &mut r.changes, side, price, left);
        }
    } else {
        // A taker sweep: consumes levels of the opposite side from the best one on.
        let (taker, book_side) = match side {
            BookSide::Bid => (Side::Buy, BookSide::Ask),
            BookSide::Ask => (Side::Sell, BookSide::Bid),
        };
        let mut want = rng.random_range(1..=inst.typical_lots * 4);
        let mut taken = Vec::new();
        for &(price, lots) in ladder.side(book_side).iter().take(12) {
            if want == 0 || ladder.len(book_side) <= taken.len() + 1 {
                break;
            }
            let fill = want.min(lots);
            want -= fill;
            taken.push((price, lots - fill));
            r.fills.push((price, fill));
        }
        for (price, left) in taken {
            record(ladder, &mut r.changes, book_side, price, left);
        }
        if !r.fills.is_empty() {
            r.taker = Some(taker);
        }
    }
    // Keep both sides deep: refill the far end, drop what drifted beyond the kept depth.
    for s in [BookSide::Bid, BookSide::Ask] {
        if ladder.len(s) < LEVELS_TARGET {
            if let Some(&(last, _)) = ladder.side(s).last() {
                let gap = rng.random_range(1..=3);
                let price = match s {
                    BookSide::Bid => last - gap,
                    BookSide::Ask => last + gap,
                };
                if price > 0 {
                    let lots = random_lots(inst, rng);
                    record(ladder, &mut r.changes, s, price, lots);
                }
            }
        }
    }
    if ladder.len(BookSide::Bid) > LEVELS_MAX || ladder.len(BookSide::Ask) > LEVELS_MAX {
        ladder.truncate(LEVELS_TARGET);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Category;
    use rand::SeedableRng;

    #[test]
    fn the_book_never_crosses_and_stays_deep() {
        let inst = Instrument::new(0, Category::Linear, "BTCUSDT");
        let mut rng = SmallRng::seed_from_u64(1);
        let mut l = seed_book(&inst, &mut rng);
        let mut sweeps = 0;
        for _ in 0..20_000 {
            let r = step(&inst, &mut l, &mut rng);
            sweeps += usize::from(r.taker.is_some());
            let (b, a) = (
                l.best(BookSide::Bid).unwrap(),
                l.best(BookSide::Ask).unwrap(),
            );
            assert!(b.0 < a.0, "crossed: {b:?} {a:?}");
        }
        assert!(sweeps > 1000);
        assert!(l.len(BookSide::Bid) >= 1000 && l.len(BookSide::Ask) >= 1000);
    }
}
