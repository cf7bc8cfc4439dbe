//! The simulator's true order book (integer ticks and lots, full depth) and the per-depth window
//! deltas Bybit publishes: changed levels inside the N-level window, levels entering it, and levels
//! leaving it sent with size 0.

use serde::{Deserialize, Serialize};

use crate::normalized::Pair;
use crate::protocol::Category;

/// Bid or ask side of the true book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookSide {
    /// Bids, best (highest) first.
    Bid,
    /// Asks, best (lowest) first.
    Ask,
}

/// One price level change of a market step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Side.
    pub side: BookSide,
    /// Price in ticks.
    pub price: i64,
    /// Lots before the step (0: the level did not exist).
    pub old: i64,
    /// Lots after the step (0: the level is gone).
    pub new: i64,
}

/// A window delta: `(price ticks, lots)` per side, best first; lots 0 deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowDelta {
    /// Bid levels, descending.
    pub bids: Vec<(i64, i64)>,
    /// Ask levels, ascending.
    pub asks: Vec<(i64, i64)>,
}

impl WindowDelta {
    /// Whether nothing in the window changed.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }
}

/// The full book of one instrument: sorted vectors (bids descending, asks ascending).
#[derive(Debug, Clone, Default)]
pub struct Ladder {
    bids: Vec<(i64, i64)>,
    asks: Vec<(i64, i64)>,
}

impl Ladder {
    /// The levels of a side, best first.
    pub fn side(&self, side: BookSide) -> &[(i64, i64)] {
        match side {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }

    fn find(&self, side: BookSide, price: i64) -> Result<usize, usize> {
        match side {
            BookSide::Bid => self.bids.binary_search_by(|l| price.cmp(&l.0)),
            BookSide::Ask => self.asks.binary_search_by(|l| l.0.cmp(&price)),
        }
    }

    /// Lots at `price` (0 if absent).
    pub fn lots_at(&self, side: BookSide, price: i64) -> i64 {
        self.find(side, price)
            .map(|i| self.side(side)[i].1)
            .unwrap_or(0)
    }

    /// Sets the lots at `price` (0 deletes) and returns the previous lots.
    pub fn set(&mut self, side: BookSide, price: i64, lots: i64) -> i64 {
        let found = self.find(side, price);
        let v = match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        match found {
            Ok(i) => {
                let old = v[i].1;
                if lots <= 0 {
                    v.remove(i);
                } else {
                    v[i].1 = lots;
                }
                old
            }
            Err(i) => {
                if lots > 0 {
                    v.insert(i, (price, lots));
                }
                0
            }
        }
    }

    /// Best level of a side.
    pub fn best(&self, side: BookSide) -> Option<(i64, i64)> {
        self.side(side).first().copied()
    }

    /// Price of the `depth`-th level (the window's last one), if the side is that deep.
    pub fn boundary(&self, side: BookSide, depth: usize) -> Option<i64> {
        self.side(side).get(depth.checked_sub(1)?).map(|l| l.0)
    }

    /// Number of levels on each side.
    pub fn len(&self, side: BookSide) -> usize {
        self.side(side).len()
    }

    /// Whether both sides are empty.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    /// Drops levels beyond `max` on each side (far from the touch, outside every window).
    pub fn truncate(&mut self, max: usize) {
        self.bids.truncate(max);
        self.asks.truncate(max);
    }

    /// The delta of the `depth`-level window after `changes` were applied, given the window
    /// boundaries before them (`before_bid`, `before_ask` from [`Ladder::boundary`]).
    pub fn window_delta(
        &self,
        depth: usize,
        changes: &[Change],
        before_bid: Option<i64>,
        before_ask: Option<i64>,
    ) -> WindowDelta {
        WindowDelta {
            bids: self.side_delta(BookSide::Bid, depth, changes, before_bid),
            asks: self.side_delta(BookSide::Ask, depth, changes, before_ask),
        }
    }

    fn side_delta(
        &self,
        side: BookSide,
        depth: usize,
        changes: &[Change],
        before: Option<i64>,
    ) -> Vec<(i64, i64)> {
        let better_eq = |a: i64, b: i64| match side {
            BookSide::Bid => a >= b,
            BookSide::Ask => a <= b,
        };
        let after = self.boundary(side, depth);
        let within = |p: i64, bound: Option<i64>| match bound {
            None => true,
            Some(b) => better_eq(p, b),
        };
        let mut out = Vec::new();
        let mut k = 0usize;
        for c in changes.iter().filter(|c| c.side == side) {
            k += 1;
            let in_before = c.old > 0 && within(c.price, before);
            let in_after = c.new > 0 && within(c.price, after);
            if in_after {
                out.push((c.price, c.new));
            } else if in_before {
                out.push((c.price, 0));
            }
        }
        if k == 0 && before == after {
            return out;
        }
        // Unchanged levels change window membership only near the boundary (by at most k ranks).
        let levels = self.side(side);
        let lo = depth.saturating_sub(k + 1);
        let hi = (depth + k + 1).min(levels.len());
        for (idx, &(p, lots)) in levels.iter().enumerate().take(hi).skip(lo) {
            if changes.iter().any(|c| c.side == side && c.price == p) {
                continue;
            }
            let in_after = idx < depth;
            let in_before = within(p, before);
            if in_after && !in_before {
                out.push((p, lots));
            } else if !in_after && in_before {
                out.push((p, 0));
            }
        }
        match side {
            BookSide::Bid => out.sort_unstable_by_key(|l| std::cmp::Reverse(l.0)),
            BookSide::Ask => out.sort_unstable_by_key(|l| l.0),
        }
        out
    }
}

/// The true book of one topic as the simulator knows it (`GET /sim/book`, `SimHandle::book`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrueBook {
    /// Category.
    pub category: Category,
    /// Symbol.
    pub symbol: String,
    /// Window depth (1, 50, 200 or 1000).
    pub depth: u16,
    /// The topic's current update id.
    pub u: u64,
    /// Cross sequence of the last change.
    pub seq: u64,
    /// Matching-engine time of the last change (ms).
    pub ts_ms: u64,
    /// Bids, best first.
    pub bids: Vec<Pair>,
    /// Asks, best first.
    pub asks: Vec<Pair>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(l: &mut Ladder, side: BookSide, price: i64, lots: i64, out: &mut Vec<Change>) {
        let old = l.set(side, price, lots);
        out.push(Change {
            side,
            price,
            old,
            new: lots,
        });
    }

    #[test]
    fn levels_leaving_and_entering_the_window_are_published() {
        let mut l = Ladder::default();
        for p in [100, 99, 98] {
            l.set(BookSide::Bid, p, 1);
        }
        // Insert a better bid into a 2-level window: 99 leaves (size 0).
        let before = l.boundary(BookSide::Bid, 2);
        let mut ch = Vec::new();
        apply(&mut l, BookSide::Bid, 101, 5, &mut ch);
        let d = l.window_delta(2, &ch, before, None);
        assert_eq!(d.bids, vec![(101, 5), (99, 0)]);
        // Delete the best: 99 enters again.
        let before = l.boundary(BookSide::Bid, 2);
        let mut ch = Vec::new();
        apply(&mut l, BookSide::Bid, 101, 0, &mut ch);
        let d = l.window_delta(2, &ch, before, None);
        assert_eq!(d.bids, vec![(101, 0), (99, 1)]);
        // A change outside the window publishes nothing.
        let before = l.boundary(BookSide::Bid, 2);
        let mut ch = Vec::new();
        apply(&mut l, BookSide::Bid, 98, 7, &mut ch);
        assert!(l.window_delta(2, &ch, before, None).is_empty());
    }
}
