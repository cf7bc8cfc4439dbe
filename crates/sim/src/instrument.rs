//! Instrument specs (tick size, quantity step, starting price per category and symbol) and the
//! fixed-point text of prices and sizes with the instrument's own number of decimals.

use std::fmt::Write;

use rust_decimal::Decimal;

use crate::protocol::Category;

/// One tradable instrument: a symbol in a category. Prices are integer ticks, sizes integer lots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// Index in the simulator's instrument table.
    pub id: u16,
    /// Category.
    pub category: Category,
    /// Symbol.
    pub symbol: String,
    /// Base coin (`BTC`).
    pub base_coin: String,
    /// Quote coin (`USDT`, `USD` for inverse).
    pub quote_coin: String,
    /// Tick size as mantissa at `price_scale` decimals (0.10 → 10 at scale 2).
    pub tick_mantissa: i64,
    /// Decimals of every price text.
    pub price_scale: u32,
    /// Quantity step as mantissa at `qty_scale` decimals.
    pub lot_mantissa: i64,
    /// Decimals of every size text.
    pub qty_scale: u32,
    /// Starting price in ticks.
    pub start_ticks: i64,
    /// Typical order size in lots.
    pub typical_lots: i64,
}

impl Instrument {
    /// The spec for `symbol` in `category`: well-known coins get Bybit-like ticks and prices, any
    /// other symbol a generic 100.00 instrument.
    pub fn new(id: u16, category: Category, symbol: &str) -> Self {
        let (base, quote) = split_symbol(symbol);
        // (tick mantissa, price scale, lot mantissa, qty scale, start price, typical lots)
        let spec: (i64, u32, i64, u32, f64, i64) = match (base.as_str(), category) {
            ("BTC", Category::Linear) => (10, 2, 1, 3, 109_378.9, 20),
            ("BTC", Category::Spot) => (1, 2, 1, 6, 109_380.0, 20_000),
            ("BTC", Category::Inverse) => (50, 2, 1, 0, 109_375.0, 500),
            ("ETH", Category::Linear) => (1, 2, 1, 2, 3_912.5, 50),
            ("ETH", Category::Spot) => (1, 2, 1, 5, 3_912.4, 50_000),
            ("ETH", Category::Inverse) => (5, 2, 1, 0, 3_912.5, 200),
            ("SOL", Category::Spot) => (1, 2, 1, 3, 187.3, 5_000),
            ("SOL", _) => (10, 3, 1, 1, 187.3, 50),
            ("XRP", _) => (1, 4, 1, 0, 2.431, 500),
            (_, Category::Inverse) => (1, 2, 1, 0, 100.0, 100),
            (_, _) => (1, 2, 1, 2, 100.0, 100),
        };
        let (tick_mantissa, price_scale, lot_mantissa, qty_scale, start, typical_lots) = spec;
        let tick = tick_mantissa as f64 / 10f64.powi(price_scale as i32);
        Instrument {
            id,
            category,
            symbol: symbol.to_string(),
            base_coin: base,
            quote_coin: quote,
            tick_mantissa,
            price_scale,
            lot_mantissa,
            qty_scale,
            start_ticks: (start / tick).round() as i64,
            typical_lots,
        }
    }

    /// Exact price of `ticks`.
    pub fn price(&self, ticks: i64) -> Decimal {
        Decimal::new(ticks * self.tick_mantissa, self.price_scale)
    }

    /// Exact size of `lots`.
    pub fn qty(&self, lots: i64) -> Decimal {
        Decimal::new(lots * self.lot_mantissa, self.qty_scale)
    }

    /// Tick size.
    pub fn tick_size(&self) -> Decimal {
        Decimal::new(self.tick_mantissa, self.price_scale)
    }

    /// Quantity step.
    pub fn qty_step(&self) -> Decimal {
        Decimal::new(self.lot_mantissa, self.qty_scale)
    }

    /// Appends the price text of `ticks` (`109378.90`).
    pub fn write_price(&self, out: &mut String, ticks: i64) {
        write_fixed(out, ticks * self.tick_mantissa, self.price_scale);
    }

    /// Appends the size text of `lots` (`0.020`; `0` for an empty level, as Bybit sends it).
    pub fn write_qty(&self, out: &mut String, lots: i64) {
        if lots == 0 {
            out.push('0');
        } else {
            write_fixed(out, lots * self.lot_mantissa, self.qty_scale);
        }
    }

    /// Price text of `ticks`.
    pub fn price_text(&self, ticks: i64) -> String {
        let mut s = String::new();
        self.write_price(&mut s, ticks);
        s
    }

    /// Size text of `lots`.
    pub fn qty_text(&self, lots: i64) -> String {
        let mut s = String::new();
        self.write_qty(&mut s, lots);
        s
    }
}

/// Splits `BTCUSDT` into (`BTC`, `USDT`); `BTCUSD` into (`BTC`, `USD`).
pub fn split_symbol(symbol: &str) -> (String, String) {
    for quote in ["USDT", "USDC", "USD", "BTC", "EUR"] {
        if let Some(base) = symbol.strip_suffix(quote) {
            if !base.is_empty() {
                return (base.to_string(), quote.to_string());
            }
        }
    }
    (symbol.to_string(), "USDT".to_string())
}

/// Appends `mantissa / 10^scale` with exactly `scale` decimals.
pub fn write_fixed(out: &mut String, mantissa: i64, scale: u32) {
    let negative = mantissa < 0;
    let m = mantissa.unsigned_abs();
    if negative {
        out.push('-');
    }
    if scale == 0 {
        let _ = write!(out, "{m}");
        return;
    }
    let pow = 10u64.pow(scale);
    let _ = write!(
        out,
        "{}.{:0width$}",
        m / pow,
        m % pow,
        width = scale as usize
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_sizes_keep_the_instrument_decimals() {
        let btc = Instrument::new(0, Category::Linear, "BTCUSDT");
        assert_eq!(btc.price_text(1_093_789), "109378.90");
        assert_eq!(btc.qty_text(20), "0.020");
        assert_eq!(btc.qty_text(0), "0");
        assert_eq!(btc.price(1_093_789).to_string(), "109378.90");
        assert_eq!(btc.tick_size().to_string(), "0.10");
        let inv = Instrument::new(1, Category::Inverse, "BTCUSD");
        assert_eq!(inv.qty_text(258), "258");
        assert_eq!(split_symbol("ETHUSDT"), ("ETH".into(), "USDT".into()));
        let mut s = String::new();
        write_fixed(&mut s, 5, 3);
        assert_eq!(s, "0.005");
    }
}
