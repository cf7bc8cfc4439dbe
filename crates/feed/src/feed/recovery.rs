//! Trade continuity across reconnects: which trades were seen (bounded), and how REST
//! `recent-trade` results and live trades buffered during resubscription merge into one ordered,
//! de-duplicated tape with any unrecoverable hole reported. Pure.

use std::collections::{HashSet, VecDeque};

use rustc_hash::FxHashSet;

use super::trade_key::TradeKey;
use crate::normalized::TradeEvent;
use crate::protocol::rest::RestTrade;

/// How many trade ids are remembered for de-duplication (more than REST can ever return).
pub const SEEN_CAPACITY: usize = 20_000;

/// One symbol's trade history as far as de-duplication and gap detection need it.
#[derive(Debug, Clone, Default)]
pub struct TradeTracker {
    seen: FxHashSet<TradeKey>,
    order: VecDeque<TradeKey>,
    last_ts_ms: Option<u64>,
}

/// `symbol`'s tracker in `trackers`, created on first use (no `String` is built once it exists:
/// this runs for every live trade).
pub fn tracker_for<'a>(
    trackers: &'a mut std::collections::HashMap<String, TradeTracker>,
    symbol: &str,
) -> &'a mut TradeTracker {
    if !trackers.contains_key(symbol) {
        trackers.insert(symbol.to_string(), TradeTracker::default());
    }
    trackers
        .get_mut(symbol)
        .expect("the tracker was inserted just above")
}

/// The result of merging an outage's REST trades with the live trades buffered meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Trades to emit, in (time, seq) order; REST-only ones are marked `recovered`.
    pub trades: Vec<TradeEvent>,
    /// How many of them came from REST only.
    pub recovered: usize,
    /// A hole REST could not fill: (after this ms, before this ms).
    pub gap: Option<(u64, u64)>,
}

impl TradeTracker {
    /// Records a trade id; `false` if it was already seen (a duplicate to drop).
    pub fn observe(&mut self, id: &str, ts_ms: u64) -> bool {
        let key = TradeKey::of(id);
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        self.last_ts_ms = Some(self.last_ts_ms.map_or(ts_ms, |t| t.max(ts_ms)));
        true
    }

    /// Whether `id` was seen.
    pub fn seen(&self, id: &str) -> bool {
        self.seen.contains(&TradeKey::of(id))
    }

    /// Fill time of the newest trade seen.
    pub fn last_ts_ms(&self) -> Option<u64> {
        self.last_ts_ms
    }

    /// Merges after a reconnect.
    ///
    /// - `covered_until_ms`: the tape is known complete up to here (the newest trade seen, or when
    ///   data was last known to flow if no trade was seen).
    /// - `rest`: what `/v5/market/recent-trade` returned (any order), `limit` what was asked for.
    /// - `buffered`: live trades received since resubscribing, held back until now.
    ///
    /// REST trades at or after `covered_until_ms` that were not seen are missed trades. If REST
    /// returned a full page whose oldest trade is newer than `covered_until_ms`, older missed trades
    /// may exist that REST no longer returns: that range is reported as a gap.
    pub fn recover(
        &mut self,
        symbol: &str,
        covered_until_ms: u64,
        rest: &[RestTrade],
        limit: usize,
        buffered: Vec<TradeEvent>,
    ) -> Recovery {
        let oldest_rest = rest.iter().map(|t| t.ts_ms).min();
        let gap = match oldest_rest {
            Some(oldest) if rest.len() >= limit && oldest > covered_until_ms => {
                Some((covered_until_ms, oldest))
            }
            _ => None,
        };
        let live_ids: HashSet<&str> = buffered.iter().map(|t| t.id.as_str()).collect();
        let mut merged: Vec<TradeEvent> = rest
            .iter()
            .filter(|t| {
                t.ts_ms >= covered_until_ms
                    && !self.seen(&t.id)
                    && !live_ids.contains(t.id.as_str())
            })
            .map(|t| TradeEvent {
                symbol: symbol.to_string(),
                id: t.id.clone(),
                price: t.price,
                qty: t.qty,
                side: t.side,
                ts_ms: t.ts_ms,
                seq: t.seq,
                block: t.block,
                category: None,
                recv_ns: None,
                recovered: true,
            })
            .collect();
        // REST may list a trade twice across pages; keep the first.
        let mut unique = HashSet::new();
        merged.retain(|t| unique.insert(t.id.clone()));
        merged.extend(buffered.into_iter().filter(|t| !self.seen(&t.id)));
        // Stable: trades of one sweep keep their relative order.
        merged.sort_by_key(|t| (t.ts_ms, t.seq.unwrap_or(0)));
        merged.retain(|t| self.observe(&t.id, t.ts_ms));
        Recovery {
            recovered: merged.iter().filter(|t| t.recovered).count(),
            trades: merged,
            gap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ws::Side;
    use rust_decimal::Decimal;

    fn rest(id: &str, ts: u64, seq: u64) -> RestTrade {
        RestTrade {
            id: id.into(),
            symbol: "BTCUSDT".into(),
            price: Decimal::ONE,
            qty: Decimal::ONE,
            side: Side::Buy,
            ts_ms: ts,
            block: false,
            rpi: false,
            seq: Some(seq),
        }
    }

    fn live(id: &str, ts: u64, seq: u64) -> TradeEvent {
        TradeEvent {
            symbol: "BTCUSDT".into(),
            id: id.into(),
            price: Decimal::ONE,
            qty: Decimal::ONE,
            side: Side::Buy,
            ts_ms: ts,
            seq: Some(seq),
            block: false,
            category: None,
            recv_ns: None,
            recovered: false,
        }
    }

    #[test]
    fn fills_the_outage_in_order_without_duplicates() {
        let mut t = TradeTracker::default();
        for (id, ts) in [("a", 100), ("b", 110)] {
            assert!(t.observe(id, ts));
        }
        // REST, newest first: b (seen), c, d (missed), e (also received live after resubscribing).
        let r = t.recover(
            "BTCUSDT",
            110,
            &[
                rest("e", 140, 5),
                rest("d", 130, 4),
                rest("c", 120, 3),
                rest("b", 110, 2),
                rest("a", 100, 1),
            ],
            1000,
            vec![live("e", 140, 5), live("f", 150, 6)],
        );
        let ids: Vec<(&str, bool)> = r
            .trades
            .iter()
            .map(|x| (x.id.as_str(), x.recovered))
            .collect();
        assert_eq!(
            ids,
            vec![("c", true), ("d", true), ("e", false), ("f", false)]
        );
        assert_eq!((r.recovered, r.gap), (2, None));
        assert!(!t.observe("d", 130), "recovered trades are remembered");
        assert!(!t.observe("f", 150));
        assert!(t.observe("g", 160));
    }

    #[test]
    fn a_full_page_that_does_not_reach_back_is_a_gap() {
        let mut t = TradeTracker::default();
        t.observe("a", 100);
        let page: Vec<_> = (0..3)
            .map(|i| rest(&format!("n{i}"), 500 + i, 10 + i))
            .collect();
        let r = t.recover("BTCUSDT", 100, &page, 3, vec![]);
        assert_eq!(r.gap, Some((100, 500)));
        assert_eq!(r.trades.len(), 3, "what REST has is still emitted");
        // A short page covers everything since the outage: no gap.
        let mut t = TradeTracker::default();
        t.observe("a", 100);
        let r = t.recover("BTCUSDT", 100, &page, 1000, vec![]);
        assert_eq!(r.gap, None);
    }

    #[test]
    fn trades_older_than_the_covered_point_are_not_recovered() {
        let mut t = TradeTracker::default();
        let r = t.recover(
            "BTCUSDT",
            1_000,
            &[rest("old", 900, 1), rest("new", 1_000, 2)],
            1000,
            vec![],
        );
        let ids: Vec<&str> = r.trades.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, vec!["new"]);
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = TradeTracker::default();
        for i in 0..(SEEN_CAPACITY + 10) {
            t.observe(&i.to_string(), i as u64);
        }
        assert_eq!(t.seen.len(), SEEN_CAPACITY);
        assert!(!t.seen("0"));
        assert!(t.seen(&(SEEN_CAPACITY + 9).to_string()));
    }
}
