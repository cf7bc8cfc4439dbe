//! Simulator settings: what it serves, how fast the market moves, and every timing a test may shrink.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::Category;

/// Everything the simulator needs to start. `Default` is a realistic, quiet exchange on port 9100.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Symbols served in every category (upper case, e.g. `BTCUSDT`).
    pub symbols: Vec<String>,
    /// Categories served (`/v5/public/{category}` and REST `category=`).
    pub categories: Vec<Category>,
    /// Market messages per second across all topics (book updates and trade frames produced by the
    /// market, whether or not anyone subscribes). Each connection then receives the topics it chose.
    pub rate: f64,
    /// Seed of the market: the same seed gives the same sequence of orders, cancels and trades.
    pub seed: u64,
    /// Days of synthetic 1-minute candle history before the start (REST `/v5/market/kline`).
    pub history_days: u32,
    /// Also append every journaled event to this file as JSON lines.
    pub journal: Option<PathBuf>,
    /// Events kept in memory per symbol for `GET /sim/journal` (oldest dropped first).
    pub journal_capacity: usize,
    /// A connection with no ping received and no data sent for this long is closed (Bybit: 10 min).
    pub idle_timeout: Duration,
    /// Network latency added to every WebSocket frame (answers and data), as a remote exchange
    /// has; zero answers at loopback speed.
    pub latency: Duration,
    /// REST IP limit: at most `rate_limit` requests per `rate_window` ...
    pub rate_limit: usize,
    /// ... window of the REST IP limit ...
    pub rate_window: Duration,
    /// ... and how long an IP that broke it is answered HTTP 403 "access too frequent".
    pub rate_ban: Duration,
    /// Level-1 books repeat an unchanged snapshot (same `u`) after this long.
    pub level1_repeat: Duration,
    /// Trades kept per instrument for REST `/v5/market/recent-trade` (bounded: flat memory).
    pub recent_trades: usize,
    /// Outgoing frames queued per connection before it counts as too slow and is disconnected.
    pub connection_queue: usize,
    /// Start with the market paused (tests then drive it with `SimHandle::step`).
    pub start_paused: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            categories: vec![Category::Linear, Category::Spot, Category::Inverse],
            rate: 50.0,
            seed: 42,
            history_days: 2,
            journal: None,
            journal_capacity: 20_000,
            idle_timeout: Duration::from_secs(600),
            latency: Duration::ZERO,
            rate_limit: 600,
            rate_window: Duration::from_secs(5),
            rate_ban: Duration::from_secs(600),
            level1_repeat: Duration::from_secs(3),
            recent_trades: 5_000,
            connection_queue: 16_384,
            start_paused: false,
        }
    }
}

impl SimConfig {
    /// A config for tests: a free port, the given seed, everything else default.
    pub fn for_tests(seed: u64) -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed,
            ..SimConfig::default()
        }
    }

    /// Checks the settings a user can get wrong, with a message naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        if self.symbols.is_empty() {
            return Err("at least one symbol is needed".into());
        }
        for s in &self.symbols {
            if !crate::protocol::topic::valid_symbol(s) {
                return Err(format!(
                    "invalid symbol {s:?}: Bybit symbols are upper-case letters and digits, e.g. BTCUSDT"
                ));
            }
        }
        if self.categories.is_empty() {
            return Err("at least one category is needed".into());
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!("rate must be a positive number, got {}", self.rate));
        }
        if self.history_days > 366 {
            return Err("history_days is at most 366".into());
        }
        if self.rate_limit == 0 || self.recent_trades == 0 || self.journal_capacity == 0 {
            return Err("rate_limit, recent_trades and journal_capacity must be positive".into());
        }
        Ok(())
    }
}
