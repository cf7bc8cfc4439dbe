//! `[sinks.nats]`: where and how the NATS JetStream sink publishes (TOML keys, the `--nats-*` flags
//! shared by `run` and `stream`, defaults and validation naming the bad field).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::feed::config::ConfigError;

/// What is published for order books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BooksMode {
    /// Every applied update (snapshot or delta) with its levels: consumers rebuild the full book.
    #[default]
    Deltas,
    /// A `book_top` event per update: best bid/ask and level counts, no levels.
    Top,
    /// No book messages.
    None,
}

impl BooksMode {
    /// The name used in TOML and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            BooksMode::Deltas => "deltas",
            BooksMode::Top => "top",
            BooksMode::None => "none",
        }
    }
}

impl std::fmt::Display for BooksMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BooksMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deltas" => Ok(BooksMode::Deltas),
            "top" => Ok(BooksMode::Top),
            "none" => Ok(BooksMode::None),
            other => Err(format!(
                "unknown books mode {other:?}: expected deltas, top or none"
            )),
        }
    }
}

/// `[sinks.nats]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSection {
    /// Server URL (`nats://127.0.0.1:4222`); empty: the sink is off.
    pub url: String,
    /// JetStream stream name; created if missing with subjects `{subject_prefix}.>`.
    pub stream: String,
    /// First subject token: `{prefix}.bybit.{category}.{symbol}.trade|book|status`.
    pub subject_prefix: String,
    /// The stream's duplicate window (s): a `Nats-Msg-Id` seen within it is stored once.
    pub dedup_window_s: f64,
    /// Publishes awaiting their JetStream ack at once.
    pub max_in_flight: usize,
    /// `deltas`, `top` or `none`.
    pub books: BooksMode,
    /// Messages buffered between the feed and the sink; when full new ones are dropped and counted.
    pub buffer: usize,
    /// How long a publish ack may take before the message is re-sent (s).
    pub ack_timeout_s: f64,
}

impl Default for NatsSection {
    fn default() -> Self {
        NatsSection {
            url: String::new(),
            stream: "MARKET_DATA".into(),
            subject_prefix: "md".into(),
            dedup_window_s: 120.0,
            max_in_flight: 1024,
            books: BooksMode::Deltas,
            buffer: 65_536,
            ack_timeout_s: 5.0,
        }
    }
}

/// `[sinks]`: where normalized events go besides the service itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinksSection {
    /// `[sinks.nats]`
    pub nats: NatsSection,
    /// `[sinks.record]`: raw frame recording (off when absent).
    pub record: Option<crate::record::RecordSection>,
}

/// Values that override `[sinks.nats]` and `HFT_CONNECTOR_SINKS_NATS_*` (the `--nats-*` flags of
/// `run` and `stream`). `None` leaves the configured value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NatsOverrides {
    /// `url`.
    pub url: Option<String>,
    /// `stream`.
    pub stream: Option<String>,
    /// `subject_prefix`.
    pub subject_prefix: Option<String>,
    /// `dedup_window_s`.
    pub dedup_window_s: Option<f64>,
    /// `max_in_flight`.
    pub max_in_flight: Option<usize>,
    /// `books`.
    pub books: Option<BooksMode>,
    /// `buffer`.
    pub buffer: Option<usize>,
}

fn bad(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Whether `token` can be one subject token (no separators, wildcards or spaces).
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control())
}

impl NatsSection {
    /// Whether the sink is configured.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Applies the overrides.
    pub fn apply_overrides(&mut self, a: &NatsOverrides) {
        if let Some(v) = &a.url {
            self.url = v.clone();
        }
        if let Some(v) = &a.stream {
            self.stream = v.clone();
        }
        if let Some(v) = &a.subject_prefix {
            self.subject_prefix = v.clone();
        }
        if let Some(v) = a.dedup_window_s {
            self.dedup_window_s = v;
        }
        if let Some(v) = a.max_in_flight {
            self.max_in_flight = v;
        }
        if let Some(v) = a.books {
            self.books = v;
        }
        if let Some(v) = a.buffer {
            self.buffer = v;
        }
    }

    /// Checks every field (only when the sink is on); the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let addr = async_nats::ServerAddr::from_str(self.url.trim())
            .map_err(|e| e.to_string())
            .and_then(|a| {
                if a.host().is_empty() {
                    Err("no host".to_string())
                } else {
                    Ok(a)
                }
            });
        if let Err(e) = addr {
            return Err(bad(
                "sinks.nats.url",
                format!(
                    "{:?} is not a NATS URL like nats://127.0.0.1:4222: {e}",
                    self.url
                ),
            ));
        }
        if self.stream.is_empty() || !valid_token(&self.stream) || self.stream.contains(['/', '\\'])
        {
            return Err(bad(
                "sinks.nats.stream",
                format!(
                    "{:?} is not a stream name (no spaces, '.', '*', '>', '/' or '\\')",
                    self.stream
                ),
            ));
        }
        if self.subject_prefix.is_empty() || !self.subject_prefix.split('.').all(valid_token) {
            return Err(bad(
                "sinks.nats.subject_prefix",
                format!("{:?} is not a subject prefix (dot-separated tokens without spaces or wildcards)", self.subject_prefix),
            ));
        }
        if !(self.dedup_window_s.is_finite() && self.dedup_window_s > 0.0) {
            return Err(bad(
                "sinks.nats.dedup_window_s",
                "must be a positive number of seconds",
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 65_536 {
            return Err(bad(
                "sinks.nats.max_in_flight",
                "must be between 1 and 65536",
            ));
        }
        if self.buffer == 0 {
            return Err(bad("sinks.nats.buffer", "must be at least 1"));
        }
        if !(self.ack_timeout_s.is_finite() && self.ack_timeout_s > 0.0) {
            return Err(bad(
                "sinks.nats.ack_timeout_s",
                "must be a positive number of seconds",
            ));
        }
        Ok(())
    }
}

impl SinksSection {
    /// Checks every sink.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.nats.validate()?;
        if let Some(r) = &self.record {
            r.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use crate::config::ServiceConfig;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn off_by_default_then_file_env_and_flags() {
        let c = ServiceConfig::load(&Overrides::default(), Vec::new()).unwrap();
        assert!(!c.sinks.nats.enabled());
        assert_eq!(c.sinks.nats.subject_prefix, "md");
        assert_eq!(c.sinks.nats.books, BooksMode::Deltas);

        let dir = std::env::temp_dir().join(format!("hftc-sinks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[sinks.nats]\nurl = \"nats://127.0.0.1:4222\"\nstream = \"FILE\"\nbooks = \"top\"\nmax_in_flight = 64\n",
        )
        .unwrap();
        let mut a = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        let e = env(&[
            ("HFT_CONNECTOR_SINKS_NATS_STREAM", "ENV"),
            ("HFT_CONNECTOR_SINKS_NATS_SUBJECT_PREFIX", "prod.md"),
            ("HFT_CONNECTOR_SINKS_NATS_DEDUP_WINDOW_S", "30"),
        ]);
        let c = ServiceConfig::load(&a, e.clone()).unwrap();
        let n = &c.sinks.nats;
        assert!(n.enabled());
        assert_eq!(n.stream, "ENV", "env beats file");
        assert_eq!(n.subject_prefix, "prod.md");
        assert_eq!(n.dedup_window_s, 30.0);
        assert_eq!(n.books, BooksMode::Top, "file beats default");
        assert_eq!(n.max_in_flight, 64);
        a.nats.stream = Some("FLAG".into());
        a.nats.books = Some(BooksMode::None);
        a.nats.url = Some("nats://10.0.0.1:4223".into());
        let c = ServiceConfig::load(&a, e).unwrap();
        assert_eq!(c.sinks.nats.stream, "FLAG", "flags beat env");
        assert_eq!(c.sinks.nats.books, BooksMode::None);
        assert_eq!(c.sinks.nats.url, "nats://10.0.0.1:4223");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_values_name_the_field() {
        let url = ("HFT_CONNECTOR_SINKS_NATS_URL", "nats://127.0.0.1:4222");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![("HFT_CONNECTOR_SINKS_NATS_URL", "nats://")],
                "sinks.nats.url",
            ),
            (
                vec![("HFT_CONNECTOR_SINKS_NATS_URL", "http://127.0.0.1:4222")],
                "sinks.nats.url",
            ),
            (
                vec![("HFT_CONNECTOR_SINKS_NATS_URL", "nats://h:port")],
                "sinks.nats.url",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_STREAM", "a.b")],
                "sinks.nats.stream",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_SUBJECT_PREFIX", "md.>")],
                "sinks.nats.subject_prefix",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_SUBJECT_PREFIX", "md..x")],
                "sinks.nats.subject_prefix",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_DEDUP_WINDOW_S", "0")],
                "sinks.nats.dedup_window_s",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_MAX_IN_FLIGHT", "0")],
                "sinks.nats.max_in_flight",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_BUFFER", "0")],
                "sinks.nats.buffer",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_BOOKS", "all")],
                "config",
            ),
            (vec![("HFT_CONNECTOR_SINKS_NATS_NOPE", "1")], "config"),
        ];
        for (pairs, field) in cases {
            let e = ServiceConfig::load(&Overrides::default(), env(&pairs)).expect_err(field);
            assert_eq!(e.field, field, "{pairs:?}: {e}");
        }
        // Invalid values are fine while the sink is off.
        let c = ServiceConfig::load(
            &Overrides::default(),
            env(&[("HFT_CONNECTOR_SINKS_NATS_MAX_IN_FLIGHT", "0")]),
        )
        .unwrap();
        assert!(!c.sinks.nats.enabled());
    }
}
