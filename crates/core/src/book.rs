//! The L2 order book, kept exactly by Bybit's rules: snapshots reset, size 0 deletes, deltas must be
//! contiguous (`u == last_u + 1`), stale ids are dropped, gaps and crossed books are reported and
//! leave the book awaiting a fresh snapshot. Pure: no I/O, no clock.
//!
//! Each side is a sorted `Vec` (bids descending, asks ascending) bounded by the subscribed depth:
//! for 1 to 1000 levels a binary search plus a short memmove beats a tree on every operation.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::protocol::ws::{BookKind, BookUpdate, Level};

/// What applying one update did. Normal outcomes on the hot path, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A snapshot replaced the book.
    Snapshot,
    /// A `u == 1` snapshot replaced a book that had advanced: the exchange's service restarted.
    Reset {
        /// The `u` the book had reached before.
        previous_u: u64,
    },
    /// A level-1 snapshot repeating the last `u` (Bybit's 3-second heartbeat): not a gap.
    Repeat,
    /// A contiguous delta was applied.
    Delta,
    /// A delta with `u <= last_u`: an old or duplicate update, dropped.
    Stale {
        /// The book's current `u`.
        last_u: u64,
        /// The dropped update's `u`.
        got_u: u64,
    },
    /// A delta skipped ids. It was not applied; the book awaits a fresh snapshot.
    Gap {
        /// `last_u + 1`.
        expected_u: u64,
        /// What arrived.
        got_u: u64,
    },
    /// A delta arrived while no trustworthy book exists (before the first snapshot, or after a gap
    /// or a crossed book). Dropped.
    AwaitingSnapshot {
        /// The dropped update's `u`.
        got_u: u64,
    },
    /// The update was applied but left best bid >= best ask. The book awaits a fresh snapshot.
    Crossed {
        /// Best bid price after applying.
        best_bid: Decimal,
        /// Best ask price after applying.
        best_ask: Decimal,
    },
}

impl Outcome {
    /// Whether the update changed the book.
    pub fn applied(&self) -> bool {
        matches!(
            self,
            Outcome::Snapshot
                | Outcome::Reset { .. }
                | Outcome::Repeat
                | Outcome::Delta
                | Outcome::Crossed { .. }
        )
    }

    /// Whether the book must be resynchronised (fresh snapshot) before it can be trusted again.
    pub fn needs_resync(&self) -> bool {
        matches!(
            self,
            Outcome::Gap { .. } | Outcome::Crossed { .. } | Outcome::AwaitingSnapshot { .. }
        )
    }
}

/// One symbol's book at one depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBook {
    symbol: String,
    depth: usize,
    bids: Vec<Level>,
    asks: Vec<Level>,
    last_u: Option<u64>,
    seq: Option<u64>,
    ts_ms: u64,
    synced: bool,
}

impl OrderBook {
    /// An empty, unsynchronised book for `orderbook.{depth}.{symbol}`.
    pub fn new(symbol: impl Into<String>, depth: u16) -> Self {
        let depth = usize::from(depth.max(1));
        OrderBook {
            symbol: symbol.into(),
            depth,
            bids: Vec::with_capacity(depth.min(1024)),
            asks: Vec::with_capacity(depth.min(1024)),
            last_u: None,
            seq: None,
            ts_ms: 0,
            synced: false,
        }
    }

    /// Applies one decoded update by Bybit's rules.
    pub fn apply(&mut self, update: &BookUpdate<'_>) -> Outcome {
        self.apply_levels(
            update.kind,
            update.u,
            update.seq,
            update.ts_ms,
            &update.bids,
            &update.asks,
        )
    }

    /// Applies an update given as parts (for callers that do not hold a decoded frame).
    pub fn apply_levels(
        &mut self,
        kind: BookKind,
        u: u64,
        seq: Option<u64>,
        ts_ms: u64,
        bids: &[Level],
        asks: &[Level],
    ) -> Outcome {
        let outcome = match kind {
            BookKind::Snapshot => {
                let outcome = match self.last_u {
                    Some(last) if self.depth == 1 && last == u && self.synced => Outcome::Repeat,
                    Some(last) if u == 1 && last != 1 => Outcome::Reset { previous_u: last },
                    _ => Outcome::Snapshot,
                };
                self.replace(bids, asks);
                outcome
            }
            BookKind::Delta => {
                let Some(last) = self.last_u.filter(|_| self.synced) else {
                    return Outcome::AwaitingSnapshot { got_u: u };
                };
                if u <= last {
                    return Outcome::Stale {
                        last_u: last,
                        got_u: u,
                    };
                }
                if u != last + 1 {
                    self.synced = false;
                    return Outcome::Gap {
                        expected_u: last + 1,
                        got_u: u,
                    };
                }
                // Apply the whole delta, then trim to the window: a level may enter the window in
                // the same update that deletes one above it.
                for l in bids {
                    upsert(&mut self.bids, *l, |a, b| price_cmp(b, a));
                }
                for l in asks {
                    upsert(&mut self.asks, *l, price_cmp);
                }
                self.bids.truncate(self.depth);
                self.asks.truncate(self.depth);
                Outcome::Delta
            }
        };
        self.last_u = Some(u);
        self.seq = seq.or(self.seq);
        self.ts_ms = ts_ms;
        self.synced = true;
        if let (Some(b), Some(a)) = (self.bids.first(), self.asks.first()) {
            if b.price >= a.price {
                self.synced = false;
                return Outcome::Crossed {
                    best_bid: b.price,
                    best_ask: a.price,
                };
            }
        }
        outcome
    }

    fn replace(&mut self, bids: &[Level], asks: &[Level]) {
        self.bids.clear();
        self.asks.clear();
        // Snapshots arrive sorted; sort anyway (cheap when sorted) so a bad sender cannot corrupt us.
        self.bids
            .extend(bids.iter().filter(|l| !l.qty.is_zero()).copied());
        self.asks
            .extend(asks.iter().filter(|l| !l.qty.is_zero()).copied());
        self.bids.sort_by(|a, b| price_cmp(&b.price, &a.price));
        self.asks.sort_by(|a, b| price_cmp(&a.price, &b.price));
        self.bids
            .dedup_by(|later, earlier| later.price == earlier.price);
        self.asks
            .dedup_by(|later, earlier| later.price == earlier.price);
        self.bids.truncate(self.depth);
        self.asks.truncate(self.depth);
    }

    /// Forgets the book (e.g. before resubscribing); deltas are refused until the next snapshot.
    pub fn invalidate(&mut self) {
        self.synced = false;
    }

    /// Symbol.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }
    /// Subscribed depth.
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// Whether the book is built from a snapshot and contiguous deltas only.
    pub fn is_synced(&self) -> bool {
        self.synced
    }
    /// Best bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.first().copied()
    }
    /// Best ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.first().copied()
    }
    /// All bids, best first.
    pub fn bids(&self) -> &[Level] {
        &self.bids
    }
    /// All asks, best first.
    pub fn asks(&self) -> &[Level] {
        &self.asks
    }
    /// The best `n` levels of each side.
    pub fn top(&self, n: usize) -> (&[Level], &[Level]) {
        (
            &self.bids[..n.min(self.bids.len())],
            &self.asks[..n.min(self.asks.len())],
        )
    }
    /// (bid levels, ask levels).
    pub fn level_counts(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }
    /// Mid price, exact.
    pub fn mid(&self) -> Option<Decimal> {
        Some((self.best_bid()?.price + self.best_ask()?.price) / Decimal::TWO)
    }
    /// Best ask minus best bid.
    pub fn spread(&self) -> Option<Decimal> {
        Some(self.best_ask()?.price - self.best_bid()?.price)
    }
    /// Last applied update id.
    pub fn last_u(&self) -> Option<u64> {
        self.last_u
    }
    /// Last cross sequence seen.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }
    /// Exchange time of the last applied update (ms).
    pub fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
}

/// Exact price order, with a fast path for the common case of equal scales and non-negative
/// prices (one instrument's prices nearly always share the tick's scale): compare the 96-bit
/// magnitudes as integers.
#[inline]
pub fn price_cmp(a: &Decimal, b: &Decimal) -> Ordering {
    if a.scale() == b.scale() && !a.is_sign_negative() && !b.is_sign_negative() {
        magnitude(a).cmp(&magnitude(b))
    } else {
        a.cmp(b)
    }
}

/// The unsigned 96-bit mantissa of `d` (bytes 4..16 of its serialized form: lo, mid, hi).
#[inline]
fn magnitude(d: &Decimal) -> u128 {
    let b = d.serialize();
    let mut m = [0u8; 16];
    m[..12].copy_from_slice(&b[4..16]);
    u128::from_le_bytes(m)
}

/// Inserts, replaces or (size 0) deletes `level` in a side sorted by `order`.
fn upsert(side: &mut Vec<Level>, level: Level, order: impl Fn(&Decimal, &Decimal) -> Ordering) {
    match side.binary_search_by(|probe| order(&probe.price, &level.price)) {
        Ok(i) => {
            if level.qty.is_zero() {
                side.remove(i);
            } else {
                side[i].qty = level.qty;
            }
        }
        Err(i) => {
            if !level.qty.is_zero() {
                side.insert(i, level);
            }
        }
    }
}
