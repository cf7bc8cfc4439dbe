//! The trade tape of one instrument: the last N trades (REST `recent-trade`) and the 1-minute
//! candles every interval is aggregated from (REST `kline`, WS `kline.*`), seeded with a
//! deterministic synthetic history before the start.

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use super::instrument::Instrument;
use crate::protocol::{topic, Category, Side};

const MINUTE: u64 = 60_000;
const DAY: u64 = 86_400_000;

/// One trade as the simulator published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTrade {
    /// Trade id (`i` / `execId`).
    pub id: String,
    /// Fill time (ms).
    pub ts_ms: u64,
    /// Taker side.
    pub side: Side,
    /// Price in ticks.
    pub price: i64,
    /// Size in lots.
    pub lots: i64,
    /// Tick direction (`L`, futures only).
    pub tick_direction: &'static str,
    /// Cross sequence, shared by a sweep.
    pub seq: u64,
}

/// One candle of any interval, prices in ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// Start (ms).
    pub start: u64,
    /// End (ms, inclusive).
    pub end: u64,
    /// Open.
    pub open: i64,
    /// High.
    pub high: i64,
    /// Low.
    pub low: i64,
    /// Close.
    pub close: i64,
    /// Volume.
    pub volume: Decimal,
    /// Turnover.
    pub turnover: Decimal,
}

/// Recent trades (bounded) and contiguous 1-minute candles (bounded) of one instrument.
#[derive(Debug)]
pub struct Tape {
    trades: VecDeque<SimTrade>,
    trade_capacity: usize,
    minutes: VecDeque<Bar>,
    minute_capacity: usize,
    inverse: bool,
}

impl Tape {
    /// A tape whose candles start `history_days` before `start_ms`, with a synthetic history ending
    /// at the instrument's starting price; deterministic from `seed`.
    pub fn new(
        inst: &Instrument,
        seed: u64,
        start_ms: u64,
        history_days: u32,
        trade_capacity: usize,
    ) -> Self {
        let n = history_days as u64 * DAY / MINUTE;
        let first = start_ms / MINUTE * MINUTE - n * MINUTE;
        let mut rng = SmallRng::seed_from_u64(seed ^ (u64::from(inst.id) << 32) ^ 0x6b6c_696e_6573);
        let vol = (inst.start_ticks / 20_000).max(2);
        let floor = (inst.start_ticks / 4).max(1);
        let mut close = inst.start_ticks;
        let mut rev = Vec::with_capacity(n as usize);
        let inverse = inst.category == Category::Inverse;
        for i in (0..n).rev() {
            let open = (close + rng.random_range(-vol..=vol)).max(floor);
            let high = open.max(close) + rng.random_range(0..=vol / 2);
            let low = (open.min(close) - rng.random_range(0..=vol / 2)).max(1);
            let lots = rng.random_range(1..=inst.typical_lots * 40);
            let volume = inst.qty(lots);
            let mid = inst.price((open + close) / 2);
            rev.push(Bar {
                start: first + i * MINUTE,
                end: first + i * MINUTE + MINUTE - 1,
                open,
                high,
                low,
                close,
                volume,
                turnover: turnover(inverse, volume, mid),
            });
            close = open;
        }
        rev.reverse();
        let minute_capacity = (history_days as usize + 1) * 1440 + 16;
        let mut tape = Tape {
            trades: VecDeque::with_capacity(trade_capacity.min(65_536)),
            trade_capacity,
            minutes: rev.into(),
            minute_capacity,
            inverse,
        };
        tape.advance_to(start_ms, inst.start_ticks);
        tape
    }

    /// Makes sure the candle of the minute holding `now_ms` exists (flat candles fill quiet minutes).
    pub fn advance_to(&mut self, now_ms: u64, last_price: i64) {
        let minute = now_ms / MINUTE * MINUTE;
        loop {
            let (next, close) = match self.minutes.back() {
                Some(b) if b.start >= minute => break,
                Some(b) => (b.start + MINUTE, b.close),
                None => (minute, last_price),
            };
            self.minutes.push_back(Bar {
                start: next,
                end: next + MINUTE - 1,
                open: close,
                high: close,
                low: close,
                close,
                volume: Decimal::ZERO,
                turnover: Decimal::ZERO,
            });
            while self.minutes.len() > self.minute_capacity {
                self.minutes.pop_front();
            }
        }
    }

    /// Records a published trade.
    pub fn record(&mut self, inst: &Instrument, t: SimTrade) {
        let last = self.minutes.back().map_or(t.price, |b| b.close);
        self.advance_to(t.ts_ms, last);
        let volume = inst.qty(t.lots);
        let price = inst.price(t.price);
        let inverse = self.inverse;
        if let Some(b) = self.minutes.back_mut() {
            if b.volume.is_zero() {
                b.open = t.price;
                b.high = t.price;
                b.low = t.price;
            }
            b.high = b.high.max(t.price);
            b.low = b.low.min(t.price);
            b.close = t.price;
            b.volume += volume;
            b.turnover += turnover(inverse, volume, price);
        }
        if self.trades.len() >= self.trade_capacity {
            self.trades.pop_front();
        }
        self.trades.push_back(t);
    }

    /// Fills the recent-trade window the way Bybit's is from the first second: `n` trades over the
    /// last (up to ten) history minutes before the start, the newest with seq below `seq_below`
    /// and (spot) ids up to `spot_id_last`. Those minutes' candles are rebuilt from these trades, so
    /// REST candles and recent trades agree. Deterministic from `seed`; no history, no trades.
    pub fn seed_recent(
        &mut self,
        inst: &Instrument,
        seed: u64,
        seq_below: u64,
        spot_id_last: u64,
        n: usize,
    ) {
        let history = self.minutes.len().saturating_sub(1);
        let m = history.min(10);
        if m == 0 || n == 0 {
            return;
        }
        let per = n.div_ceil(m).max(2);
        let mut rng = SmallRng::seed_from_u64(seed ^ (u64::from(inst.id) << 40) ^ 0x7265_6365_6e74);
        let first = self.minutes.len() - 1 - m;
        let mut seeded: Vec<(u64, i64, i64, Side)> = Vec::with_capacity(m * per);
        for bar in self.minutes.range_mut(first..first + m) {
            let (mut high, mut low) = (bar.open, bar.open);
            let (mut volume, mut turn) = (Decimal::ZERO, Decimal::ZERO);
            for k in 0..per {
                let price = match k {
                    0 => bar.open,
                    _ if k == per - 1 => bar.close,
                    _ => rng.random_range(bar.low..=bar.high),
                };
                let lots = rng.random_range(1..=inst.typical_lots.max(1) * 2);
                let side = if rng.random::<bool>() {
                    Side::Buy
                } else {
                    Side::Sell
                };
                (high, low) = (high.max(price), low.min(price));
                volume += inst.qty(lots);
                turn += turnover(self.inverse, inst.qty(lots), inst.price(price));
                seeded.push((
                    bar.start + k as u64 * MINUTE / per as u64,
                    price,
                    lots,
                    side,
                ));
            }
            (bar.high, bar.low, bar.volume, bar.turnover) = (high, low, volume, turn);
        }
        let keep = seeded.len().min(n).min(self.trade_capacity);
        let skip = seeded.len() - keep;
        let spot = inst.category == Category::Spot;
        let mut last: Option<i64> = None;
        for (i, (ts_ms, price, lots, side)) in seeded.into_iter().enumerate() {
            let tick_direction = match last {
                Some(l) if price > l => "PlusTick",
                Some(l) if price < l => "MinusTick",
                _ => "ZeroPlusTick",
            };
            last = Some(price);
            if i < skip {
                continue;
            }
            let back = (keep - (i - skip)) as u64;
            let id = if spot {
                (spot_id_last + 1 - back).to_string()
            } else {
                format!(
                    "{:08x}-{:04x}-5{:03x}-{:04x}-{:012x}",
                    rng.random::<u32>(),
                    rng.random::<u16>(),
                    rng.random::<u16>() & 0xfff,
                    (rng.random::<u16>() & 0x3fff) | 0x8000,
                    rng.random::<u64>() & 0xffff_ffff_ffff
                )
            };
            self.trades.push_back(SimTrade {
                id,
                ts_ms,
                side,
                price,
                lots,
                tick_direction,
                seq: seq_below.saturating_sub(back),
            });
        }
    }

    /// The last `n` trades, newest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &SimTrade> {
        self.trades.iter().rev().take(n)
    }

    /// Close of the newest candle.
    pub fn last_close(&self) -> Option<i64> {
        self.minutes.back().map(|b| b.close)
    }

    /// Number of trades kept.
    pub fn trade_count(&self) -> usize {
        self.trades.len()
    }

    /// Start of the oldest candle kept (ms).
    pub fn first_ms(&self) -> Option<u64> {
        self.minutes.front().map(|b| b.start)
    }

    /// Candles of `interval` whose start lies in `[lo, hi]`, oldest first. The last one may be open.
    pub fn bars(&self, interval: &str, lo: u64, hi: u64) -> Vec<Bar> {
        let Some(first) = self.first_ms() else {
            return Vec::new();
        };
        let from = bucket_start(interval, lo).max(first);
        let skip = ((from - first) / MINUTE) as usize;
        let mut out: Vec<Bar> = Vec::new();
        for m in self.minutes.iter().skip(skip) {
            let start = bucket_start(interval, m.start);
            if start > hi {
                break;
            }
            if start < lo {
                continue;
            }
            match out.last_mut() {
                Some(b) if b.start == start => {
                    b.high = b.high.max(m.high);
                    b.low = b.low.min(m.low);
                    b.close = m.close;
                    b.volume += m.volume;
                    b.turnover += m.turnover;
                }
                _ => out.push(Bar {
                    start,
                    end: bucket_end(interval, start),
                    ..m.clone()
                }),
            }
        }
        out
    }
}

fn turnover(inverse: bool, volume: Decimal, price: Decimal) -> Decimal {
    if inverse {
        // Inverse: volume is in USD contracts, turnover in the base coin.
        if price.is_zero() {
            Decimal::ZERO
        } else {
            (volume / price).round_dp(8)
        }
    } else {
        volume * price
    }
}

/// Start of the `interval` candle holding `ms` (weeks start on Monday, months on the 1st, UTC).
pub fn bucket_start(interval: &str, ms: u64) -> u64 {
    const WEEK_OFFSET: u64 = 4 * DAY; // 1970-01-05 was a Monday.
    match interval {
        "W" => {
            if ms < WEEK_OFFSET {
                0
            } else {
                (ms - WEEK_OFFSET) / (7 * DAY) * (7 * DAY) + WEEK_OFFSET
            }
        }
        "M" => month_start(ms, 0),
        i => {
            let len = topic::interval_ms(i).unwrap_or(MINUTE);
            ms / len * len
        }
    }
}

/// Last millisecond of the candle starting at `start`.
pub fn bucket_end(interval: &str, start: u64) -> u64 {
    match interval {
        "M" => month_start(start, 1).saturating_sub(1),
        i => start + topic::interval_ms(i).unwrap_or(MINUTE) - 1,
    }
}

/// The start of the `start`-th candle before the one holding `ms`.
pub fn buckets_back(interval: &str, ms: u64, n: u64) -> u64 {
    let s = bucket_start(interval, ms);
    match interval {
        "M" => {
            let mut m = s;
            for _ in 0..n {
                m = month_start(m.saturating_sub(1), 0);
            }
            m
        }
        i => s.saturating_sub(n * topic::interval_ms(i).unwrap_or(MINUTE)),
    }
}

/// First millisecond of the month holding `ms`, moved `ahead` months forward.
fn month_start(ms: u64, ahead: i32) -> u64 {
    let secs = (ms / 1000) as i64;
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return 0;
    };
    let mut year = t.year();
    let mut month = u8::from(t.month()) as i32 - 1 + ahead;
    year += month.div_euclid(12);
    month = month.rem_euclid(12);
    let Ok(m) = time::Month::try_from((month + 1) as u8) else {
        return 0;
    };
    match time::Date::from_calendar_date(year, m, 1) {
        Ok(d) => (d.midnight().assume_utc().unix_timestamp().max(0) as u64) * 1000,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_to_bybit_boundaries() {
        // 2023-09-14 00:00 UTC is a Thursday; its week began Monday 2023-09-11.
        let thu = 1_694_649_600_000;
        assert_eq!(bucket_start("D", thu + 5), thu);
        assert_eq!(bucket_start("W", thu), thu - 3 * DAY);
        assert_eq!(bucket_start("M", thu), 1_693_526_400_000); // 2023-09-01
        assert_eq!(bucket_end("M", 1_693_526_400_000), 1_696_118_400_000 - 1);
        assert_eq!(bucket_start("5", 1_000_000), 900_000);
        assert_eq!(buckets_back("M", thu, 1), 1_690_848_000_000); // 2023-08-01
    }

    #[test]
    fn history_is_deterministic_and_contiguous() {
        let inst = Instrument::new(0, Category::Linear, "BTCUSDT");
        let a = Tape::new(&inst, 7, 1_700_000_000_000, 1, 10);
        let b = Tape::new(&inst, 7, 1_700_000_000_000, 1, 10);
        let bars = a.bars("1", 0, u64::MAX);
        assert_eq!(bars, b.bars("1", 0, u64::MAX));
        assert_eq!(bars.len(), 1441);
        assert!(bars.windows(2).all(|w| w[1].start == w[0].start + MINUTE));
        assert_eq!(a.bars("D", 0, u64::MAX).len(), 2);
    }
}
