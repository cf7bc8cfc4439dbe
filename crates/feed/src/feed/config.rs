//! Live-feed configuration: the `[feed]`, `[health]`, `[heartbeat]` and `[reconnect]` TOML sections,
//! their defaults (the same in code and in files), and validation that names the bad field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backoff::BackoffConfig;
use crate::protocol::topic::{valid_symbol, Category};

/// Bybit mainnet public WebSocket base (the category path is appended).
pub const MAINNET_WS: &str = "wss://stream.bybit.com/v5/public";
/// Bybit mainnet REST base.
pub const MAINNET_REST: &str = "https://api.bybit.com";

/// What to stream and from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSection {
    /// WebSocket base URL; `/{category}` is appended unless the URL already ends with it.
    pub ws_url: String,
    /// REST base URL.
    pub rest_url: String,
    /// Market category.
    pub category: Category,
    /// Symbols (upper case).
    pub symbols: Vec<String>,
    /// Order-book depth (1, 50, 200 or 1000); 0 streams no book.
    pub depth: u16,
    /// Stream trades.
    pub trades: bool,
    /// Events buffered for the consumer before the feed waits for it.
    pub queue_capacity: usize,
    /// Bytes buffered for the consumer before the feed waits for it (whichever bound comes
    /// first): bounds memory whatever the events' sizes.
    pub queue_max_bytes: usize,
    /// Redundant connections ("lines") per feed, merged: 1 or 2.
    pub lines: u8,
    /// With 2 lines: a line without market data this long (s) while the other delivers is
    /// restarted.
    pub line_stall_s: f64,
    /// With 2 lines: a line this many book updates behind the other is restarted.
    pub line_behind_updates: u64,
    /// Busy polling: after each frame, keep polling the input for this long (µs) instead of
    /// sleeping, so the next frame is read without an OS wake-up; 0 (default) sleeps at once.
    /// Costs a CPU core while data flows (see [`crate::busy_poll`]).
    pub busy_poll_us: u64,
}

/// The default of `feed.queue_max_bytes`: 4 MiB, a few thousand book updates of 50-level books.
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 4 * 1024 * 1024;

impl Default for FeedSection {
    fn default() -> Self {
        FeedSection {
            ws_url: MAINNET_WS.to_string(),
            rest_url: MAINNET_REST.to_string(),
            category: Category::Linear,
            symbols: vec!["BTCUSDT".to_string()],
            depth: 50,
            trades: true,
            queue_capacity: 65_536,
            queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            lines: 1,
            line_stall_s: 2.0,
            line_behind_updates: 20_000,
            busy_poll_us: 0,
        }
    }
}

/// Stale detection and health logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSection {
    /// How often staleness is checked (s).
    pub check_interval_s: f64,
    /// No market event for this long (s) means the connection is stale.
    pub stale_after_s: f64,
    /// Grace period after connecting before staleness is judged (s).
    pub grace_s: f64,
    /// How often `bybit_connector_health_check` is logged (s).
    pub log_interval_s: f64,
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            check_interval_s: 5.0,
            stale_after_s: 60.0,
            grace_s: 30.0,
            log_interval_s: 60.0,
        }
    }
}

/// JSON heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatSection {
    /// Interval between `{"op":"ping"}` requests (s).
    pub ping_interval_s: f64,
    /// No pong within this long (s) means the connection is dead.
    pub pong_timeout_s: f64,
}

impl Default for HeartbeatSection {
    fn default() -> Self {
        HeartbeatSection {
            ping_interval_s: 20.0,
            pong_timeout_s: 10.0,
        }
    }
}

/// Reconnection backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectSection {
    /// First retry delay (s).
    pub initial_delay_s: f64,
    /// Largest retry delay (s).
    pub max_delay_s: f64,
    /// A connection live this long (s) resets the backoff.
    pub stable_after_s: f64,
    /// Timeout for connecting and for each subscribe acknowledgement (s).
    pub connect_timeout_s: f64,
    /// Give up after this many consecutive failed attempts (0 = never give up).
    pub max_attempts: u32,
}

impl Default for ReconnectSection {
    fn default() -> Self {
        ReconnectSection {
            initial_delay_s: 0.5,
            max_delay_s: 30.0,
            stable_after_s: 60.0,
            connect_timeout_s: 10.0,
            max_attempts: 0,
        }
    }
}

/// Everything one live feed needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedConfig {
    /// `[feed]`
    pub feed: FeedSection,
    /// `[health]`
    pub health: HealthSection,
    /// `[heartbeat]`
    pub heartbeat: HeartbeatSection,
    /// `[reconnect]`
    pub reconnect: ReconnectSection,
    /// Where raw frames go when recording (`[sinks.record]`); never serialized.
    #[serde(skip)]
    pub raw_tap: Option<crate::raw_tap::RawTap>,
    /// Test hook: a text frame containing this text panics in the session, as a decoder bug
    /// would (the tests' way to check a panic while handling one frame is contained); never
    /// serialized.
    #[doc(hidden)]
    #[serde(skip)]
    pub test_panic_on: Option<String>,
}

/// A configuration value that cannot work, naming the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// Dotted field name, e.g. `health.stale_after_s`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn secs(field: &str, v: f64, min: f64) -> Result<Duration, ConfigError> {
    if !v.is_finite() || v < min || v > 86_400.0 {
        return Err(bad(
            field,
            format!("{v} is not a duration in seconds between {min} and 86400"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

impl FeedConfig {
    /// Parses TOML; unknown keys and bad values are errors naming the field.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: FeedConfig = toml::from_str(text).map_err(|e| bad("toml", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// A config for `symbols` of `category` against the given endpoints, defaults elsewhere.
    pub fn new(ws_url: &str, rest_url: &str, category: Category, symbols: &[&str]) -> Self {
        let mut cfg = FeedConfig::default();
        cfg.feed.ws_url = ws_url.to_string();
        cfg.feed.rest_url = rest_url.to_string();
        cfg.feed.category = category;
        cfg.feed.symbols = symbols.iter().map(|s| s.to_string()).collect();
        cfg
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.feed;
        if f.symbols.is_empty() {
            return Err(bad("feed.symbols", "at least one symbol is required"));
        }
        for s in &f.symbols {
            if !valid_symbol(s) {
                return Err(bad(
                    "feed.symbols",
                    format!(
                        "{s:?} is not a Bybit symbol (upper-case letters and digits, e.g. BTCUSDT)"
                    ),
                ));
            }
        }
        let mut seen = f.symbols.clone();
        seen.sort();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad("feed.symbols", format!("{:?} is listed twice", w[0])));
        }
        if f.depth != 0 && !f.category.book_depths().contains(&f.depth) {
            return Err(bad(
                "feed.depth",
                format!(
                    "{} is not offered by Bybit for {} (use 1, 50, 200 or 1000, or 0 for no book)",
                    f.depth, f.category
                ),
            ));
        }
        if !(1..=2).contains(&f.lines) {
            return Err(bad(
                "feed.lines",
                format!("{} lines: use 1 (one connection) or 2 (A/B lines)", f.lines),
            ));
        }
        if !(f.line_stall_s.is_finite() && f.line_stall_s > 0.0) {
            return Err(bad(
                "feed.line_stall_s",
                format!("{} must be a positive number of seconds", f.line_stall_s),
            ));
        }
        if f.line_behind_updates == 0 {
            return Err(bad("feed.line_behind_updates", "must be at least 1"));
        }
        if f.depth == 0 && !f.trades {
            return Err(bad(
                "feed.trades",
                "with depth 0 and trades off there is nothing to stream",
            ));
        }
        for (field, url, schemes) in [
            ("feed.ws_url", &f.ws_url, ["ws://", "wss://"]),
            ("feed.rest_url", &f.rest_url, ["http://", "https://"]),
        ] {
            if !schemes.iter().any(|s| url.starts_with(s)) || url.len() <= schemes[1].len() {
                return Err(bad(
                    field,
                    format!("{url:?} must start with {} or {}", schemes[0], schemes[1]),
                ));
            }
        }
        if f.queue_max_bytes < 64 * 1024 {
            return Err(bad(
                "feed.queue_max_bytes",
                "must be at least 65536 (64 KiB)",
            ));
        }
        if f.queue_capacity == 0 {
            return Err(bad("feed.queue_capacity", "must be at least 1"));
        }
        if f.busy_poll_us > 10_000_000 {
            return Err(bad(
                "feed.busy_poll_us",
                "must be at most 10000000 (10 s); 0 turns busy polling off",
            ));
        }
        self.health_durations()?;
        secs(
            "heartbeat.ping_interval_s",
            self.heartbeat.ping_interval_s,
            0.001,
        )?;
        secs(
            "heartbeat.pong_timeout_s",
            self.heartbeat.pong_timeout_s,
            0.001,
        )?;
        self.backoff()?;
        secs(
            "reconnect.connect_timeout_s",
            self.reconnect.connect_timeout_s,
            0.001,
        )?;
        Ok(())
    }

    /// The WebSocket URL for this feed's category.
    pub fn ws_endpoint(&self) -> String {
        let base = self.feed.ws_url.trim_end_matches('/');
        let suffix = format!("/{}", self.feed.category);
        if base.ends_with(&suffix) {
            base.to_string()
        } else {
            format!("{base}{suffix}")
        }
    }

    /// (check interval, stale after, grace, log interval).
    pub fn health_durations(
        &self,
    ) -> Result<(Duration, Duration, Duration, Duration), ConfigError> {
        let h = &self.health;
        Ok((
            secs("health.check_interval_s", h.check_interval_s, 0.001)?,
            secs("health.stale_after_s", h.stale_after_s, 0.001)?,
            secs("health.grace_s", h.grace_s, 0.0)?,
            secs("health.log_interval_s", h.log_interval_s, 0.001)?,
        ))
    }

    /// The backoff policy.
    pub fn backoff(&self) -> Result<BackoffConfig, ConfigError> {
        let r = &self.reconnect;
        let initial = secs("reconnect.initial_delay_s", r.initial_delay_s, 0.0)?;
        let max = secs("reconnect.max_delay_s", r.max_delay_s, 0.0)?;
        if max < initial {
            return Err(bad(
                "reconnect.max_delay_s",
                "must not be smaller than initial_delay_s",
            ));
        }
        Ok(BackoffConfig {
            initial,
            max,
            stable_after: secs("reconnect.stable_after_s", r.stable_after_s, 0.0)?,
            ..BackoffConfig::default()
        })
    }

    /// Sets every timer to a small scale (tests and demos): stale after `stale`, grace and checks
    /// proportionally, pings every `stale / 2`.
    pub fn with_fast_timers(mut self, stale_s: f64) -> Self {
        self.health = HealthSection {
            check_interval_s: stale_s / 10.0,
            stale_after_s: stale_s,
            grace_s: stale_s / 2.0,
            log_interval_s: stale_s * 5.0,
        };
        self.heartbeat = HeartbeatSection {
            ping_interval_s: stale_s / 2.0,
            pong_timeout_s: stale_s / 2.0,
        };
        self.reconnect.initial_delay_s = 0.05;
        self.reconnect.max_delay_s = 0.5;
        self.reconnect.connect_timeout_s = stale_s.max(1.0);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let c = FeedConfig::default();
        assert_eq!(c.health.check_interval_s, 5.0);
        assert_eq!(c.health.stale_after_s, 60.0);
        assert_eq!(c.health.grace_s, 30.0);
        assert_eq!(c.health.log_interval_s, 60.0);
        assert_eq!(c.heartbeat.ping_interval_s, 20.0);
        assert_eq!(c.heartbeat.pong_timeout_s, 10.0);
        assert_eq!(c.reconnect.initial_delay_s, 0.5);
        assert_eq!(c.reconnect.max_delay_s, 30.0);
        assert!(c.validate().is_ok());
        assert_eq!(c.ws_endpoint(), "wss://stream.bybit.com/v5/public/linear");
    }

    #[test]
    fn toml_with_fractional_seconds() {
        let c = FeedConfig::from_toml(
            r#"
            [feed]
            ws_url = "ws://127.0.0.1:9100/v5/public"
            rest_url = "http://127.0.0.1:9100"
            category = "spot"
            symbols = ["BTCUSDT", "ETHUSDT"]
            depth = 200
            [health]
            stale_after_s = 0.75
            [heartbeat]
            ping_interval_s = 0.2
            "#,
        )
        .unwrap();
        assert_eq!(c.feed.category, Category::Spot);
        assert_eq!(c.health.stale_after_s, 0.75);
        assert_eq!(c.health.grace_s, 30.0, "unset keys keep defaults");
        assert_eq!(c.ws_endpoint(), "ws://127.0.0.1:9100/v5/public/spot");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[feed]\nsymbols = [\"btcusdt\"]", "feed.symbols"),
            ("[feed]\nsymbols = []", "feed.symbols"),
            ("[feed]\nsymbols = [\"A1\", \"A1\"]", "feed.symbols"),
            ("[feed]\ndepth = 500", "feed.depth"),
            ("[feed]\nws_url = \"http://x\"", "feed.ws_url"),
            ("[health]\nstale_after_s = -1", "health.stale_after_s"),
            (
                "[heartbeat]\npong_timeout_s = 0",
                "heartbeat.pong_timeout_s",
            ),
            ("[reconnect]\nmax_delay_s = 0.1", "reconnect.max_delay_s"),
            ("[feed]\ncategory = \"option\"", "toml"),
            ("[health]\nstale_after = 3", "toml"),
        ];
        for (text, field) in cases {
            let e = FeedConfig::from_toml(text).expect_err(text);
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(e.to_string().contains(field));
        }
    }
}
