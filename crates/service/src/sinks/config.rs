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
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSection {
    /// Server URL (`nats://127.0.0.1:4222`); empty (and `urls` empty): the sink is off.
    pub url: String,
    /// Several servers of one cluster (`["nats://a:4222", "nats://b:4222", "nats://c:4222"]`):
    /// the sink connects to any and reconnects to the others. Either `url` or `urls`, not both.
    pub urls: Vec<String>,
    /// JetStream stream name; created if missing with subjects `{subject_prefix}.>`.
    pub stream: String,
    /// Replicas of the stream when the sink creates it (1; 3 on a three-node cluster). An existing
    /// stream keeps its own (a difference is logged as `nats_stream_replicas_differ`).
    pub replicas: usize,
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
    /// A NATS credentials file (`.creds`: user JWT and NKey seed); empty: none.
    pub creds_file: String,
    /// A PEM file of CA certificates trusted for the servers' TLS (use `tls://` URLs to require
    /// TLS); empty: the system's roots.
    pub tls_ca: String,
    /// User name (with `password`).
    pub user: String,
    /// Password of `user`. Never logged.
    pub password: String,
    /// Authentication token (instead of `user`/`password`). Never logged.
    pub token: String,
}

/// Shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for NatsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &str| if s.is_empty() { "" } else { REDACTED };
        f.debug_struct("NatsSection")
            .field("url", &redact_url(&self.url))
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("stream", &self.stream)
            .field("replicas", &self.replicas)
            .field("subject_prefix", &self.subject_prefix)
            .field("dedup_window_s", &self.dedup_window_s)
            .field("max_in_flight", &self.max_in_flight)
            .field("books", &self.books)
            .field("buffer", &self.buffer)
            .field("ack_timeout_s", &self.ack_timeout_s)
            .field("creds_file", &self.creds_file)
            .field("tls_ca", &self.tls_ca)
            .field("user", &self.user)
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .finish()
    }
}

/// `url` with any password (or token) in its user part replaced: `nats://u:<redacted>@h:4222`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..host_end].rfind('@') else {
        return url.to_string();
    };
    let user = match rest[..at].split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_string(),
    };
    format!("{}{user}{}", &url[..scheme_end], &rest[at..])
}

impl Default for NatsSection {
    fn default() -> Self {
        NatsSection {
            url: String::new(),
            urls: Vec::new(),
            stream: "MARKET_DATA".into(),
            replicas: 1,
            subject_prefix: "md".into(),
            dedup_window_s: 120.0,
            max_in_flight: 1024,
            books: BooksMode::Deltas,
            buffer: 65_536,
            ack_timeout_s: 5.0,
            creds_file: String::new(),
            tls_ca: String::new(),
            user: String::new(),
            password: String::new(),
            token: String::new(),
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
#[derive(Clone, Default, PartialEq)]
pub struct NatsOverrides {
    /// `url`.
    pub url: Option<String>,
    /// `urls`.
    pub urls: Option<Vec<String>>,
    /// `stream`.
    pub stream: Option<String>,
    /// `replicas`.
    pub replicas: Option<usize>,
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
    /// `creds_file`.
    pub creds_file: Option<String>,
    /// `tls_ca`.
    pub tls_ca: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `password` (never logged).
    pub password: Option<String>,
    /// `token` (never logged).
    pub token: Option<String>,
}

impl std::fmt::Debug for NatsOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| REDACTED);
        f.debug_struct("NatsOverrides")
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "urls",
                &self
                    .urls
                    .as_ref()
                    .map(|u| u.iter().map(|u| redact_url(u)).collect::<Vec<_>>()),
            )
            .field("stream", &self.stream)
            .field("replicas", &self.replicas)
            .field("subject_prefix", &self.subject_prefix)
            .field("dedup_window_s", &self.dedup_window_s)
            .field("max_in_flight", &self.max_in_flight)
            .field("books", &self.books)
            .field("buffer", &self.buffer)
            .field("creds_file", &self.creds_file)
            .field("tls_ca", &self.tls_ca)
            .field("user", &self.user)
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .finish()
    }
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
        !self.url.trim().is_empty() || !self.urls.is_empty()
    }

    /// The servers to connect to: `urls`, or `url` alone.
    pub fn servers(&self) -> Vec<String> {
        if self.urls.is_empty() {
            vec![self.url.trim().to_string()]
        } else {
            self.urls.iter().map(|u| u.trim().to_string()).collect()
        }
    }

    /// How the sink authenticates, for logs: `creds_file`, `user_password`, `token` or `none`.
    pub fn auth_kind(&self) -> &'static str {
        if !self.creds_file.trim().is_empty() {
            "creds_file"
        } else if !self.user.is_empty() {
            "user_password"
        } else if !self.token.is_empty() {
            "token"
        } else {
            "none"
        }
    }

    /// The servers for logs and `/api/status`: comma separated, passwords in URLs redacted.
    pub fn servers_display(&self) -> String {
        self.servers()
            .iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Applies the overrides.
    pub fn apply_overrides(&mut self, a: &NatsOverrides) {
        if let Some(v) = &a.url {
            self.url = v.clone();
        }
        if let Some(v) = &a.urls {
            self.urls = v.clone();
        }
        if let Some(v) = &a.stream {
            self.stream = v.clone();
        }
        if let Some(v) = a.replicas {
            self.replicas = v;
        }
        for (dst, src) in [
            (&mut self.creds_file, &a.creds_file),
            (&mut self.tls_ca, &a.tls_ca),
            (&mut self.user, &a.user),
            (&mut self.password, &a.password),
            (&mut self.token, &a.token),
        ] {
            if let Some(v) = src {
                *dst = v.clone();
            }
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
        if !self.url.trim().is_empty() && !self.urls.is_empty() {
            return Err(bad(
                "sinks.nats.urls",
                "set either sinks.nats.url (one server) or sinks.nats.urls (a cluster), not both",
            ));
        }
        let field = if self.urls.is_empty() {
            "sinks.nats.url"
        } else {
            "sinks.nats.urls"
        };
        for url in self.servers() {
            let addr = async_nats::ServerAddr::from_str(&url)
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
                    field,
                    format!(
                        "{:?} is not a NATS URL like nats://127.0.0.1:4222: {e}",
                        redact_url(&url)
                    ),
                ));
            }
            if redact_url(&url) != url {
                // The NATS client logs server addresses whole at debug level.
                return Err(bad(
                    field,
                    format!(
                        "{:?} carries credentials: set sinks.nats.user/password or sinks.nats.token instead (a URL is logged)",
                        redact_url(&url)
                    ),
                ));
            }
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(bad(
                "sinks.nats.replicas",
                "must be between 1 and 5 (JetStream's limit)",
            ));
        }
        self.validate_auth()?;
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

impl NatsSection {
    /// The credentials: at most one way (`creds_file`, `user`/`password`, or `token`), files that
    /// exist. Errors never quote a secret.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let user = !self.user.is_empty();
        let password = !self.password.is_empty();
        let token = !self.token.is_empty();
        let creds = !self.creds_file.trim().is_empty();
        if user != password {
            return Err(bad(
                if user {
                    "sinks.nats.password"
                } else {
                    "sinks.nats.user"
                },
                "sinks.nats.user and sinks.nats.password go together",
            ));
        }
        let ways = [creds, user, token].iter().filter(|w| **w).count();
        if ways > 1 {
            return Err(bad(
                "sinks.nats.token",
                "choose one of sinks.nats.creds_file, sinks.nats.user/password and sinks.nats.token",
            ));
        }
        for (field, path) in [
            ("sinks.nats.creds_file", &self.creds_file),
            ("sinks.nats.tls_ca", &self.tls_ca),
        ] {
            let path = path.trim();
            if !path.is_empty() && !std::path::Path::new(path).is_file() {
                return Err(bad(field, format!("{path:?} is not a readable file")));
            }
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

    #[test]
    fn a_cluster_by_urls_from_file_env_or_flags_and_never_both_keys() {
        let e = env(&[(
            "HFT_CONNECTOR_SINKS_NATS_URLS",
            "nats://a:4222, nats://b:4222,nats://c:4222",
        )]);
        let c = ServiceConfig::load(&Overrides::default(), e).unwrap();
        let n = &c.sinks.nats;
        assert!(n.enabled());
        assert_eq!(
            n.servers(),
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
        assert_eq!(n.replicas, 1, "the default");
        // A single url keeps working.
        let c = ServiceConfig::load(
            &Overrides::default(),
            env(&[("HFT_CONNECTOR_SINKS_NATS_URL", "nats://a:4222")]),
        )
        .unwrap();
        assert_eq!(c.sinks.nats.servers(), ["nats://a:4222"]);

        let dir = std::env::temp_dir().join(format!("hftc-sinks-urls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[sinks.nats]\nurls = [\"nats://a:4222\", \"nats://b:4222\", \"nats://c:4222\"]\nreplicas = 3\n",
        )
        .unwrap();
        let mut a = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        let c = ServiceConfig::load(&a, Vec::new()).unwrap();
        assert_eq!(c.sinks.nats.replicas, 3);
        assert_eq!(c.sinks.nats.servers().len(), 3);
        let c =
            ServiceConfig::load(&a, env(&[("HFT_CONNECTOR_SINKS_NATS_REPLICAS", "5")])).unwrap();
        assert_eq!(c.sinks.nats.replicas, 5, "env beats file");
        a.nats.replicas = Some(1);
        a.nats.urls = Some(vec!["nats://x:1".into(), "nats://y:2".into()]);
        let c = ServiceConfig::load(&a, Vec::new()).unwrap();
        assert_eq!(c.sinks.nats.replicas, 1, "flags beat the file");
        assert_eq!(c.sinks.nats.servers(), ["nats://x:1", "nats://y:2"]);
        // Both keys: an error naming both.
        a.nats.url = Some("nats://z:3".into());
        let e = ServiceConfig::load(&a, Vec::new()).unwrap_err();
        assert_eq!(e.field, "sinks.nats.urls");
        assert!(
            e.reason.contains("sinks.nats.url ") && e.reason.contains("sinks.nats.urls"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn credentials_one_way_at_a_time_and_errors_never_quote_a_secret() {
        let url = ("HFT_CONNECTOR_SINKS_NATS_URL", "nats://127.0.0.1:4222");
        let ok = |pairs: &[(&str, &str)]| {
            ServiceConfig::load(&Overrides::default(), env(pairs)).map(|c| c.sinks.nats)
        };
        let n = ok(&[
            url,
            ("HFT_CONNECTOR_SINKS_NATS_USER", "md"),
            ("HFT_CONNECTOR_SINKS_NATS_PASSWORD", "1234"),
        ])
        .unwrap();
        assert_eq!(
            (n.user.as_str(), n.password.as_str()),
            ("md", "1234"),
            "a numeric password stays text"
        );
        assert_eq!(n.auth_kind(), "user_password");
        let n = ok(&[url, ("HFT_CONNECTOR_SINKS_NATS_TOKEN", "s3cr3t-token")]).unwrap();
        assert_eq!(n.auth_kind(), "token");
        let dbg = format!("{n:?}");
        assert!(
            !dbg.contains("s3cr3t-token") && dbg.contains(REDACTED),
            "{dbg}"
        );

        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_USER", "md")],
                "sinks.nats.password",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_PASSWORD", "pw-secret-1")],
                "sinks.nats.user",
            ),
            (
                vec![
                    url,
                    ("HFT_CONNECTOR_SINKS_NATS_USER", "md"),
                    ("HFT_CONNECTOR_SINKS_NATS_PASSWORD", "pw-secret-1"),
                    ("HFT_CONNECTOR_SINKS_NATS_TOKEN", "tok-secret-2"),
                ],
                "sinks.nats.token",
            ),
            (
                vec![
                    url,
                    (
                        "HFT_CONNECTOR_SINKS_NATS_CREDS_FILE",
                        "/nonexistent/x.creds",
                    ),
                ],
                "sinks.nats.creds_file",
            ),
            (
                vec![
                    url,
                    ("HFT_CONNECTOR_SINKS_NATS_TLS_CA", "/nonexistent/ca.pem"),
                ],
                "sinks.nats.tls_ca",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_REPLICAS", "0")],
                "sinks.nats.replicas",
            ),
            (
                vec![url, ("HFT_CONNECTOR_SINKS_NATS_REPLICAS", "7")],
                "sinks.nats.replicas",
            ),
            (
                vec![("HFT_CONNECTOR_SINKS_NATS_URLS", "nats://a:1,http://b:2")],
                "sinks.nats.urls",
            ),
            (
                vec![(
                    "HFT_CONNECTOR_SINKS_NATS_URL",
                    "nats://u:pw-secret-3@:4222/x y",
                )],
                "sinks.nats.url",
            ),
            (
                vec![(
                    "HFT_CONNECTOR_SINKS_NATS_URL",
                    "nats://u:pw-secret-3@127.0.0.1:4222",
                )],
                "sinks.nats.url",
            ),
            (
                vec![(
                    "HFT_CONNECTOR_SINKS_NATS_URLS",
                    "nats://a:4222,nats://tok-secret-2@b:4222",
                )],
                "sinks.nats.urls",
            ),
        ];
        for (pairs, field) in cases {
            let e = ok(&pairs).expect_err(field);
            assert_eq!(e.field, field, "{pairs:?}: {e}");
            let text = e.to_string();
            for secret in ["pw-secret-1", "tok-secret-2", "pw-secret-3"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(redact_url("nats://a:4222"), "nats://a:4222");
        assert_eq!(
            redact_url("nats://md:hunter2@a:4222"),
            "nats://md:<redacted>@a:4222"
        );
        assert_eq!(redact_url("tls://tok3n@a:4222"), "tls://<redacted>@a:4222");
        assert_eq!(redact_url("a:4222"), "a:4222");
        let n = NatsSection {
            urls: vec!["nats://md:hunter2@a:4222".into(), "nats://b:4222".into()],
            ..NatsSection::default()
        };
        assert_eq!(
            n.servers_display(),
            "nats://md:<redacted>@a:4222,nats://b:4222"
        );
        assert!(!format!("{n:?}").contains("hunter2"));
    }
}
