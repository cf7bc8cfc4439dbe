//! Service configuration: one TOML file (`[feed]`, `[health]`, `[heartbeat]`, `[reconnect]`,
//! `[backfill]`, `[store]`, `[http]`, `[service]`, `[log]`, `[sinks.nats]`), overridden by
//! `HFT_CONNECTOR_<SECTION>_<KEY>` environment variables (`HFT_CONNECTOR_SINKS_NATS_<KEY>`),
//! overridden by [`Overrides`] (the command line's flags); validated once, with errors naming the
//! field and why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::feed::config::{
    ConfigError, FeedConfig, FeedSection, HealthSection, HeartbeatSection, ReconnectSection,
};
use crate::protocol::topic::{valid_interval, Category};
use crate::source::Isolation;
use crate::terminal::{LogFormat, LogSection};

/// Values that override the file and the environment (the command line's flags, or a program's
/// own settings). `None` leaves the configured value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// TOML configuration file to read first.
    pub config: Option<PathBuf>,
    /// `feed.symbols`.
    pub symbols: Option<Vec<String>>,
    /// `service.categories` (the first one also becomes `feed.category`).
    pub category: Option<Vec<String>>,
    /// `feed.depth`.
    pub depth: Option<u16>,
    /// `feed.ws_url`.
    pub ws_url: Option<String>,
    /// `feed.rest_url`.
    pub rest_url: Option<String>,
    /// `store.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `http.listen`.
    pub listen: Option<String>,
    /// `service.isolation`.
    pub isolation: Option<Isolation>,
    /// `backfill.days` (0 disables backfill).
    pub backfill_days: Option<f64>,
    /// `http.token`.
    pub token: Option<String>,
    /// `log.format`.
    pub log_format: Option<LogFormat>,
    /// `[sinks.nats]` keys.
    pub nats: crate::sinks::NatsOverrides,
    /// `[sinks.record] dir` (turns recording on).
    pub record_dir: Option<PathBuf>,
    /// `feed.lines` (1, or 2 for A/B lines).
    pub lines: Option<u8>,
    /// `feed.busy_poll_us`.
    pub busy_poll_us: Option<u64>,
    /// `service.shutdown_timeout_s`.
    pub shutdown_timeout_s: Option<f64>,
}

/// `[backfill]`: history of klines fetched before (and while) going live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackfillSection {
    /// Fetch history at all.
    pub enabled: bool,
    /// Kline interval (Bybit's names: `1`, `5`, `60`, `D`...).
    pub interval: String,
    /// Days of history (fractions allowed).
    pub days: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// REST budget: requests per window (Bybit: 600 per 5 s per IP).
    pub requests_per_window: usize,
    /// REST budget window (s).
    pub window_s: f64,
    /// How long to stop every request after HTTP 403 "access too frequent" (s; Bybit asks 10 min).
    pub ban_s: f64,
    /// Candles per request (at most 1000).
    pub chunk_limit: u64,
}

impl Default for BackfillSection {
    fn default() -> Self {
        BackfillSection {
            enabled: true,
            interval: "1".into(),
            days: 90.0,
            concurrency: 8,
            requests_per_window: 600,
            window_s: 5.0,
            ban_s: 600.0,
            chunk_limit: 1000,
        }
    }
}

/// `[store]`: the embedded SQLite store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Recent trades kept (hours).
    pub trade_retention_hours: f64,
    /// Intervals of the candles built live from trades (Bybit names: `1`, `5`, `60`, `D`...).
    pub candle_intervals: Vec<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            data_dir: PathBuf::from("./data"),
            trade_retention_hours: 24.0,
            candle_intervals: vec!["1".into()],
        }
    }
}

/// `[http]`: status API, metrics and dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address (loopback by default).
    pub listen: String,
    /// Token required by state-changing routes (none: they are refused).
    pub token: Option<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: "127.0.0.1:8080".into(),
            token: None,
        }
    }
}

/// `[service]`: how feeds run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSection {
    /// `process` (a supervised worker per connection) or `in-process`.
    pub isolation: Isolation,
    /// Categories to stream (each with `[feed] symbols`); empty means `[feed] category`.
    pub categories: Vec<Category>,
    /// How long a stop (SIGTERM, Ctrl-C) may take (s): what has not finished by then is
    /// abandoned, logged (`service_shutdown_incomplete`) and the process exits non-zero.
    pub shutdown_timeout_s: f64,
}

impl Default for ServiceSection {
    fn default() -> Self {
        ServiceSection {
            isolation: Isolation::Process,
            categories: Vec::new(),
            shutdown_timeout_s: crate::shutdown::DEFAULT_TIMEOUT_S,
        }
    }
}

impl ServiceSection {
    /// [`ServiceSection::shutdown_timeout_s`] as a duration.
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        crate::shutdown::timeout_of(self.shutdown_timeout_s)
    }
}

/// Everything `run` needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// `[feed]`
    pub feed: FeedSection,
    /// `[health]`
    pub health: HealthSection,
    /// `[heartbeat]`
    pub heartbeat: HeartbeatSection,
    /// `[reconnect]`
    pub reconnect: ReconnectSection,
    /// `[backfill]`
    pub backfill: BackfillSection,
    /// `[store]`
    pub store: StoreSection,
    /// `[http]`
    pub http: HttpSection,
    /// `[service]`
    pub service: ServiceSection,
    /// `[log]`
    pub log: LogSection,
    /// `[sinks]` (`[sinks.nats]`, `[sinks.record]`)
    pub sinks: crate::sinks::SinksSection,
}

const SECTIONS: [&str; 10] = [
    "feed",
    "health",
    "heartbeat",
    "reconnect",
    "backfill",
    "store",
    "http",
    "service",
    "log",
    "sinks",
];
/// Sections whose keys live in named sub-tables: `HFT_CONNECTOR_SINKS_NATS_URL` is `[sinks.nats] url`.
const NESTED: [&str; 1] = ["sinks"];
const LIST_KEYS: [&str; 3] = ["symbols", "categories", "candle_intervals"];
/// Keys whose values are text even when they look like numbers (`interval = "1"`).
const TEXT_KEYS: [&str; 16] = [
    "interval",
    "ws_url",
    "rest_url",
    "category",
    "listen",
    "token",
    "data_dir",
    "isolation",
    "format",
    "url",
    "stream",
    "subject_prefix",
    "books",
    "dir",
    "rotate",
    "compress",
];
/// The environment prefix: `HFT_CONNECTOR_FEED_SYMBOLS=BTCUSDT,ETHUSDT`.
pub const ENV_PREFIX: &str = "HFT_CONNECTOR_";

fn bad(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn env_value(key: &str, raw: &str) -> toml::Value {
    if LIST_KEYS.contains(&key) {
        return toml::Value::Array(
            raw.split(',')
                .map(|s| toml::Value::String(s.trim().to_string()))
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                .collect(),
        );
    }
    if TEXT_KEYS.contains(&key) {
        return toml::Value::String(raw.to_string());
    }
    // Numbers and booleans as TOML; anything else as a string.
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

impl ServiceConfig {
    /// Builds the configuration: defaults, then `file`, then environment `env`, then `args`.
    pub fn load(
        args: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match &args.config {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
                continue;
            };
            let mut key = &rest[section.len() + 1..];
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = entry else {
                return Err(bad(section, "must be a table"));
            };
            let t = if NESTED.contains(section) {
                let Some((sub, k)) = key.split_once('_') else {
                    continue;
                };
                key = k;
                let entry = t
                    .entry(sub.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let toml::Value::Table(inner) = entry else {
                    return Err(bad(&format!("{section}.{sub}"), "must be a table"));
                };
                inner
            } else {
                t
            };
            t.insert(key.to_string(), env_value(key, &raw));
        }
        let mut cfg: ServiceConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| bad("config", e.to_string()))?;
        cfg.apply_args(args)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_args(&mut self, a: &Overrides) -> Result<(), ConfigError> {
        if let Some(s) = &a.symbols {
            self.feed.symbols = s.iter().map(|s| s.trim().to_string()).collect();
        }
        if let Some(cats) = &a.category {
            let parsed: Result<Vec<Category>, String> =
                cats.iter().map(|c| c.trim().parse()).collect();
            self.service.categories = parsed.map_err(|e| bad("--category", e))?;
            if let Some(first) = self.service.categories.first() {
                self.feed.category = *first;
            }
        }
        if let Some(d) = a.depth {
            self.feed.depth = d;
        }
        if let Some(u) = &a.ws_url {
            self.feed.ws_url = u.clone();
        }
        if let Some(u) = &a.rest_url {
            self.feed.rest_url = u.clone();
        }
        if let Some(d) = &a.data_dir {
            self.store.data_dir = d.clone();
        }
        if let Some(l) = &a.listen {
            self.http.listen = l.clone();
        }
        if let Some(i) = a.isolation {
            self.service.isolation = i;
        }
        if let Some(n) = a.lines {
            self.feed.lines = n;
        }
        if let Some(us) = a.busy_poll_us {
            self.feed.busy_poll_us = us;
        }
        if let Some(t) = a.shutdown_timeout_s {
            self.service.shutdown_timeout_s = t;
        }
        if let Some(days) = a.backfill_days {
            self.backfill.days = days;
            self.backfill.enabled = days > 0.0;
        }
        if let Some(t) = &a.token {
            self.http.token = Some(t.clone());
        }
        if let Some(f) = a.log_format {
            self.log.format = f.as_str().into();
        }
        self.sinks.nats.apply_overrides(&a.nats);
        if let Some(d) = &a.record_dir {
            let mut r = self.sinks.record.take().unwrap_or_default();
            r.dir = d.clone();
            self.sinks.record = Some(r);
        }
        Ok(())
    }

    /// The categories streamed.
    pub fn categories(&self) -> Vec<Category> {
        if self.service.categories.is_empty() {
            vec![self.feed.category]
        } else {
            let mut c = self.service.categories.clone();
            c.dedup();
            c
        }
    }

    /// One feed configuration per category.
    pub fn feeds(&self) -> Vec<FeedConfig> {
        self.categories()
            .into_iter()
            .map(|category| FeedConfig {
                feed: FeedSection {
                    category,
                    ..self.feed.clone()
                },
                health: self.health.clone(),
                heartbeat: self.heartbeat.clone(),
                reconnect: self.reconnect.clone(),
                raw_tap: None,
            })
            .collect()
    }

    /// The HTTP listen address (`localhost:PORT` is `127.0.0.1:PORT`).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        if let Some((host, port)) = self.http.listen.rsplit_once(':') {
            if host.eq_ignore_ascii_case("localhost") {
                if let Ok(port) = port.parse::<u16>() {
                    return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
                }
            }
        }
        self.http.listen.parse().map_err(|e| {
            bad(
                "http.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080: {e}",
                    self.http.listen
                ),
            )
        })
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for f in self.feeds() {
            f.validate()?;
        }
        let b = &self.backfill;
        if !valid_interval(&b.interval) || b.interval == "M" {
            return Err(bad("backfill.interval", format!("{:?} is not a Bybit kline interval (1, 3, 5, 15, 30, 60, 120, 240, 360, 720, D, W)", b.interval)));
        }
        if !(b.days.is_finite() && (0.0..=3650.0).contains(&b.days)) {
            return Err(bad(
                "backfill.days",
                format!("{} is not between 0 and 3650", b.days),
            ));
        }
        if b.concurrency == 0 || b.concurrency > 64 {
            return Err(bad("backfill.concurrency", "must be between 1 and 64"));
        }
        if b.requests_per_window == 0 {
            return Err(bad("backfill.requests_per_window", "must be at least 1"));
        }
        if !(b.window_s.is_finite() && b.window_s > 0.0) {
            return Err(bad(
                "backfill.window_s",
                "must be a positive number of seconds",
            ));
        }
        if !(b.ban_s.is_finite() && b.ban_s >= 0.0) {
            return Err(bad(
                "backfill.ban_s",
                "must be a non-negative number of seconds",
            ));
        }
        if b.chunk_limit == 0 || b.chunk_limit > 1000 {
            return Err(bad(
                "backfill.chunk_limit",
                "must be between 1 and 1000 (Bybit's limit)",
            ));
        }
        if !(self.store.trade_retention_hours.is_finite() && self.store.trade_retention_hours > 0.0)
        {
            return Err(bad(
                "store.trade_retention_hours",
                "must be a positive number of hours",
            ));
        }
        if self.store.candle_intervals.is_empty() {
            return Err(bad(
                "store.candle_intervals",
                "at least one interval is required",
            ));
        }
        if let Some(i) = self
            .store
            .candle_intervals
            .iter()
            .find(|i| !valid_interval(i) || i.as_str() == "M")
        {
            return Err(bad(
                "store.candle_intervals",
                format!("{i:?} is not a Bybit kline interval (1, 3, 5, 15, 30, 60, 120, 240, 360, 720, D, W)"),
            ));
        }
        if self.store.data_dir.as_os_str().is_empty() {
            return Err(bad("store.data_dir", "must not be empty"));
        }
        let t = self.service.shutdown_timeout_s;
        if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
            return Err(bad(
                "service.shutdown_timeout_s",
                format!("{t} is not a number of seconds above 0 and at most 3600"),
            ));
        }
        let listen = self.listen_addr()?;
        if self.http.token.as_deref().is_some_and(|t| t.len() < 8) {
            return Err(bad("http.token", "must be at least 8 characters"));
        }
        if self.http.token.is_none() && !listen.ip().to_canonical().is_loopback() {
            return Err(bad(
                "http.listen",
                format!(
                    "{} is reachable from other machines, which requires a token: set http.token \
                     in the config, HFT_CONNECTOR_HTTP_TOKEN or HFT_CONNECTOR_TOKEN, or --token \
                     (at least 8 characters), or listen on a loopback address (127.0.0.1, ::1, \
                     localhost)",
                    self.http.listen
                ),
            ));
        }
        self.log.validate().map_err(|e| bad("log.format", e))?;
        self.sinks.validate()?;
        Ok(())
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| bad("--config", format!("{}: {e}", path.display())))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
