//! One candle being built from trades: open/high/low/close by trade order (time, sequence,
//! arrival), volume and turnover exactly, and the trades kept while a REST join may split it.

use rust_decimal::Decimal;

use super::{BuiltCandle, Interval};

/// Order of trades within a candle: time, then sequence, then arrival.
pub(super) type Key = (u64, u64, u64);

#[derive(Debug, Clone)]
pub(super) struct Rec {
    pub(super) key: Key,
    pub(super) price: Decimal,
    pub(super) qty: Decimal,
}

#[derive(Debug, Clone)]
pub(super) struct Building {
    pub(super) candle: BuiltCandle,
    pub(super) first_key: Option<Key>,
    pub(super) last_key: Option<Key>,
    /// Individual trades, while the bucket may still need splitting at a REST join point.
    pub(super) retained: Option<Vec<Rec>>,
}

impl Building {
    pub(super) fn empty(symbol: &str, interval: &Interval, start_ms: u64, retain: bool) -> Self {
        Building {
            candle: BuiltCandle {
                symbol: symbol.to_string(),
                interval: interval.name.clone(),
                start_ms,
                end_ms: start_ms + interval.ms - 1,
                open: Decimal::ZERO,
                high: Decimal::ZERO,
                low: Decimal::ZERO,
                close: Decimal::ZERO,
                volume: Decimal::ZERO,
                turnover: Decimal::ZERO,
                trade_count: 0,
                last_trade_ms: None,
                confirmed: false,
                rest_as_of_ms: None,
            },
            first_key: None,
            last_key: None,
            retained: retain.then(Vec::new),
        }
    }

    pub(super) fn has_data(&self) -> bool {
        self.first_key.is_some() || self.candle.rest_as_of_ms.is_some()
    }

    /// Adds one trade; `false` (and no change) on overflow.
    pub(super) fn apply(&mut self, key: Key, price: Decimal, qty: Decimal) -> bool {
        let fresh = !self.has_data();
        let c = &mut self.candle;
        let Some(turnover) = price
            .checked_mul(qty)
            .and_then(|t| t.checked_add(c.turnover))
        else {
            return false;
        };
        let Some(volume) = c.volume.checked_add(qty) else {
            return false;
        };
        c.turnover = turnover;
        c.volume = volume;
        if fresh {
            c.open = price;
            c.high = price;
            c.low = price;
            c.close = price;
        } else {
            c.high = c.high.max(price);
            c.low = c.low.min(price);
        }
        // With a REST base, REST's open stands: every live trade kept is after it.
        if c.rest_as_of_ms.is_none() && self.first_key.is_none_or(|f| key < f) {
            c.open = price;
        }
        if self.first_key.is_none_or(|f| key < f) {
            self.first_key = Some(key);
        }
        if self.last_key.is_none_or(|l| key > l) {
            self.last_key = Some(key);
            c.close = price;
        }
        c.trade_count += 1;
        c.last_trade_ms = Some(c.last_trade_ms.map_or(key.0, |t| t.max(key.0)));
        if let Some(r) = &mut self.retained {
            r.push(Rec { key, price, qty });
        }
        true
    }
}
