//! Bybit V5 public topic names (`publicTrade.X`, `orderbook.N.X`, `kline.I.X`) and market categories.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Bybit V5 public market category: each has its own WebSocket path and REST `category` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Spot pairs (`/v5/public/spot`).
    Spot,
    /// USDT/USDC perpetuals and futures (`/v5/public/linear`).
    Linear,
    /// Inverse contracts (`/v5/public/inverse`).
    Inverse,
}

impl Category {
    /// All categories this connector supports.
    pub const ALL: [Category; 3] = [Category::Spot, Category::Linear, Category::Inverse];

    /// The value Bybit uses in REST queries and WebSocket paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Spot => "spot",
            Category::Linear => "linear",
            Category::Inverse => "inverse",
        }
    }

    /// Order-book depths Bybit publishes for this category (docs §4.1; 500 was removed in 2025).
    pub fn book_depths(self) -> &'static [u16] {
        &[1, 50, 200, 1000]
    }

    /// Most topics one subscribe request may carry (spot refuses more than 10 with `args size >10`).
    pub fn max_args_per_request(self) -> usize {
        match self {
            Category::Spot => 10,
            // No documented limit for futures; keep requests small enough to read in a log line.
            Category::Linear | Category::Inverse => 100,
        }
    }

    /// Most trades `/v5/market/recent-trade` returns for this category.
    pub fn max_recent_trades(self) -> usize {
        match self {
            Category::Spot => 60,
            Category::Linear | Category::Inverse => 1000,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spot" => Ok(Category::Spot),
            "linear" => Ok(Category::Linear),
            "inverse" => Ok(Category::Inverse),
            other => Err(format!(
                "unknown category {other:?}: expected one of spot, linear, inverse"
            )),
        }
    }
}

/// A parsed public topic, borrowing the symbol from the text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRef<'a> {
    /// `publicTrade.{symbol}`
    Trade { symbol: &'a str },
    /// `orderbook.{depth}.{symbol}`
    OrderBook { depth: u16, symbol: &'a str },
    /// `kline.{interval}.{symbol}`
    Kline { interval: &'a str, symbol: &'a str },
}

impl<'a> TopicRef<'a> {
    /// Parses a topic name; `None` for anything this connector does not understand.
    pub fn parse(topic: &'a str) -> Option<Self> {
        if let Some(symbol) = topic.strip_prefix("publicTrade.") {
            return valid_symbol(symbol).then_some(TopicRef::Trade { symbol });
        }
        if let Some(rest) = topic.strip_prefix("orderbook.") {
            let (depth, symbol) = rest.split_at(rest.bytes().position(|b| b == b'.')?);
            let symbol = &symbol[1..];
            if depth.is_empty() || depth.len() > 4 || !depth.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let depth = depth.parse::<u16>().ok()?;
            return valid_symbol(symbol).then_some(TopicRef::OrderBook { depth, symbol });
        }
        let rest = topic.strip_prefix("kline.")?;
        let (interval, symbol) = rest.split_once('.')?;
        (valid_interval(interval) && valid_symbol(symbol))
            .then_some(TopicRef::Kline { interval, symbol })
    }

    /// The symbol this topic is about.
    pub fn symbol(&self) -> &'a str {
        match *self {
            TopicRef::Trade { symbol }
            | TopicRef::OrderBook { symbol, .. }
            | TopicRef::Kline { symbol, .. } => symbol,
        }
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Topic {
        match *self {
            TopicRef::Trade { symbol } => Topic::Trade {
                symbol: symbol.to_string(),
            },
            TopicRef::OrderBook { depth, symbol } => Topic::OrderBook {
                depth,
                symbol: symbol.to_string(),
            },
            TopicRef::Kline { interval, symbol } => Topic::Kline {
                interval: interval.to_string(),
                symbol: symbol.to_string(),
            },
        }
    }
}

/// An owned public topic, as used in subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `publicTrade.{symbol}`
    Trade { symbol: String },
    /// `orderbook.{depth}.{symbol}`
    OrderBook { depth: u16, symbol: String },
    /// `kline.{interval}.{symbol}`
    Kline { interval: String, symbol: String },
}

impl Topic {
    /// The symbol this topic is about.
    pub fn symbol(&self) -> &str {
        match self {
            Topic::Trade { symbol }
            | Topic::OrderBook { symbol, .. }
            | Topic::Kline { symbol, .. } => symbol,
        }
    }

    /// Borrowed view.
    pub fn as_ref(&self) -> TopicRef<'_> {
        match self {
            Topic::Trade { symbol } => TopicRef::Trade { symbol },
            Topic::OrderBook { depth, symbol } => TopicRef::OrderBook {
                depth: *depth,
                symbol,
            },
            Topic::Kline { interval, symbol } => TopicRef::Kline { interval, symbol },
        }
    }
}

impl fmt::Display for TopicRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicRef::Trade { symbol } => write!(f, "publicTrade.{symbol}"),
            TopicRef::OrderBook { depth, symbol } => write!(f, "orderbook.{depth}.{symbol}"),
            TopicRef::Kline { interval, symbol } => write!(f, "kline.{interval}.{symbol}"),
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl FromStr for Topic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicRef::parse(s)
            .map(|t| t.to_owned())
            .ok_or_else(|| format!("not a supported public topic: {s:?}"))
    }
}

/// Bybit symbols are upper-case ASCII letters and digits (lower case is refused by the exchange).
pub fn valid_symbol(symbol: &str) -> bool {
    !symbol.is_empty()
        && symbol.len() <= 32
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Kline intervals Bybit accepts: minutes `1 3 5 15 30 60 120 240 360 720`, and `D`, `W`, `M`.
pub const KLINE_INTERVALS: [&str; 13] = [
    "1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M",
];

/// Whether `interval` is one of [`KLINE_INTERVALS`].
pub fn valid_interval(interval: &str) -> bool {
    KLINE_INTERVALS.contains(&interval)
}

/// The length of a minute-based interval in milliseconds (`None` for D/W/M, which are calendar based
/// except `D`, which is one day).
pub fn interval_ms(interval: &str) -> Option<u64> {
    match interval {
        "D" => Some(86_400_000),
        "W" => Some(7 * 86_400_000),
        "M" => None,
        m => m
            .parse::<u64>()
            .ok()
            .filter(|_| valid_interval(m))
            .map(|m| m * 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_topic_kind() {
        for text in [
            "publicTrade.BTCUSDT",
            "orderbook.50.ETHUSDT",
            "kline.5.BTCUSD",
        ] {
            let t = TopicRef::parse(text).expect(text);
            assert_eq!(t.to_string(), text);
            assert_eq!(text.parse::<Topic>().unwrap().to_string(), text);
        }
        assert_eq!(
            TopicRef::parse("orderbook.200.SOLUSDT"),
            Some(TopicRef::OrderBook {
                depth: 200,
                symbol: "SOLUSDT"
            })
        );
    }

    #[test]
    fn rejects_what_bybit_would_not_send() {
        for text in [
            "tickers.BTCUSDT",
            "publicTrade.btcusdt",
            "orderbook.x.BTCUSDT",
            "orderbook.50",
            "kline.7.BTCUSDT",
            "publicTrade.",
            "",
        ] {
            assert_eq!(TopicRef::parse(text), None, "{text}");
        }
    }

    #[test]
    fn categories_round_trip_and_limits() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>().unwrap(), c);
        }
        assert!("futures".parse::<Category>().is_err());
        assert_eq!(Category::Spot.max_args_per_request(), 10);
        assert_eq!(Category::Spot.max_recent_trades(), 60);
        assert_eq!(interval_ms("1"), Some(60_000));
        assert_eq!(interval_ms("D"), Some(86_400_000));
        assert_eq!(interval_ms("7"), None);
    }
}
