//! `hft-connector status`: asks a running service (`GET /api/status`) how its feeds are and shows a
//! table (or the JSON with `--json`), refreshed in place with `--watch`. The exit code is for
//! scripts and health checks: 0 every feed connected, 1 a feed is not, 3 no service answers,
//! 4 something answered that is not a status.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

/// Every feed is connected.
pub const EXIT_CONNECTED: u8 = 0;
/// The service answered and at least one feed is not connected.
pub const EXIT_NOT_CONNECTED: u8 = 1;
/// No service answers at the URL (refused, unreachable, timed out).
pub const EXIT_NO_SERVICE: u8 = 3;
/// Something answered, but not with a service status (wrong URL or port?).
pub const EXIT_BAD_ANSWER: u8 = 4;

/// Flags of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Base URL of the running service (its `[http] listen` address).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Refresh in place until Ctrl-C (the exit code is the last refresh's).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    pub interval: f64,
    /// Print the service's /api/status JSON (one line per refresh) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub timeout: f64,
}

/// One feed as `/api/status` reports it (only what the table shows; unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct FeedRow {
    /// Symbol.
    pub symbol: String,
    /// Category.
    pub category: String,
    /// `connected`, `connecting`, `disconnected` or `down`.
    pub status: String,
    /// Time of the last market event (ISO-8601 UTC).
    #[serde(default)]
    pub last_update: Option<String>,
    /// Seconds since the last market event.
    #[serde(default)]
    pub seconds_since_last_event: Option<f64>,
    /// Reconnects so far.
    #[serde(default)]
    pub reconnects: u64,
    /// Errors so far.
    #[serde(default)]
    pub error_count: u64,
    /// Events buffered for the consumer.
    #[serde(default)]
    pub queue_size: u64,
    /// Worker process id (process isolation).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Backfill progress.
    #[serde(default)]
    pub backfill: Option<BackfillRow>,
    /// A/B lines (`[feed] lines = 2`; empty with one line).
    #[serde(default)]
    pub lines: Vec<LineRow>,
}

/// One A/B line of a feed as `/api/status` reports it.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct LineRow {
    /// `a` or `b`.
    #[serde(default)]
    pub line: String,
    /// Its subscriptions are confirmed and it has not disconnected since.
    #[serde(default)]
    pub connected: bool,
}

/// A feed's backfill as `/api/status` reports it.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct BackfillRow {
    /// Chunks stored.
    #[serde(default)]
    pub done: u64,
    /// Chunks planned.
    #[serde(default)]
    pub total: u64,
    /// `pending`, `running`, `done`, `failed` or `disabled`.
    #[serde(default)]
    pub state: String,
}

/// The `/api/status` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusReply {
    /// Every feed.
    pub feeds: Vec<FeedRow>,
    /// Server time (ISO-8601 UTC).
    #[serde(default)]
    pub time: Option<String>,
    /// Service version.
    #[serde(default)]
    pub version: Option<String>,
}

impl StatusReply {
    /// Every feed is connected.
    pub fn all_connected(&self) -> bool {
        self.feeds.iter().all(|f| f.status == "connected")
    }

    /// [`EXIT_CONNECTED`] or [`EXIT_NOT_CONNECTED`].
    pub fn exit_code(&self) -> u8 {
        if self.all_connected() {
            EXIT_CONNECTED
        } else {
            EXIT_NOT_CONNECTED
        }
    }
}

/// Why no status could be shown.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchError {
    /// Nothing answers at the URL.
    NoService(String),
    /// An answer that is not a service status.
    BadAnswer(String),
}

impl FetchError {
    /// The exit code for it.
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::NoService(_) => EXIT_NO_SERVICE,
            FetchError::BadAnswer(_) => EXIT_BAD_ANSWER,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NoService(m) | FetchError::BadAnswer(m) => f.write_str(m),
        }
    }
}

/// `http://` is added when the URL has no scheme; a trailing `/` is dropped.
pub fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// Fetches `/api/status` from `base`: the parsed reply and the raw JSON.
pub async fn fetch(
    client: &reqwest::Client,
    base: &str,
) -> Result<(StatusReply, serde_json::Value), FetchError> {
    let url = format!("{base}/api/status");
    let resp = client.get(&url).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            "no answer in time".to_string()
        } else if e.is_connect() {
            "connection refused or unreachable".to_string()
        } else {
            e.to_string()
        };
        FetchError::NoService(format!(
            "no service answers at {base} ({why}); is `hft-connector run` running, and is this its [http] listen address?"
        ))
    })?;
    let code = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| FetchError::NoService(format!("{url}: the answer was cut off: {e}")))?;
    if !code.is_success() {
        return Err(FetchError::BadAnswer(format!(
            "{url} answered HTTP {code}: is {base} an hft-connector service?"
        )));
    }
    let not_status =
        |e: serde_json::Error| FetchError::BadAnswer(format!("{url} is not a service status: {e}"));
    let raw: serde_json::Value = serde_json::from_str(&body).map_err(not_status)?;
    let reply: StatusReply = serde_json::from_value(raw.clone()).map_err(not_status)?;
    Ok((reply, raw))
}

/// Runs `status`; the exit code is described in the module docs.
pub fn main(args: StatusArgs) -> ExitCode {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        eprintln!("hft-connector status: --timeout must be a positive number of seconds");
        return ExitCode::from(2);
    }
    if !(args.interval.is_finite() && args.interval > 0.0) {
        eprintln!("hft-connector status: --interval must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(args.timeout))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hft-connector status: cannot create an HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector status: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(runtime.block_on(run(args, client)))
}

async fn run(args: StatusArgs, client: reqwest::Client) -> u8 {
    let base = base_url(&args.url);
    let tty = std::io::stdout().is_terminal();
    let color = crate::terminal::format::use_color(tty, std::env::var("NO_COLOR").ok().as_deref());
    let every = Duration::from_secs_f64(args.interval);
    // Listening from the start, so Ctrl-C (or SIGTERM) at any moment of a --watch ends it cleanly.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut interrupt, mut terminate) = if args.watch {
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (Some(i), Some(t)),
            _ => (None, None),
        }
    } else {
        (None, None)
    };
    let mut first = true;
    loop {
        let result = fetch(&client, &base).await;
        let code = match &result {
            Ok((reply, _)) => reply.exit_code(),
            Err(e) => e.exit_code(),
        };
        let text = match (&result, args.json) {
            (Ok((_, raw)), true) => format!("{raw}\n"),
            (Ok((reply, _)), false) => super::status_table::render(reply, &base, color),
            (Err(_), _) => String::new(),
        };
        let mut out = std::io::stdout().lock();
        if args.watch && tty && !args.json {
            // Home, each line erased to its end, then everything below: refreshes without flicker.
            // The first refresh starts on a cleared screen.
            let mut screen = String::from(if first { "\x1b[2J\x1b[H" } else { "\x1b[H" });
            first = false;
            for l in text
                .lines()
                .chain(result.as_ref().err().map(|e| e.to_string()).as_deref())
            {
                screen += l;
                screen += "\x1b[K\n";
            }
            screen += &format!("every {:.1} s, Ctrl-C to stop\x1b[K\n\x1b[J", args.interval);
            let _ = out.write_all(screen.as_bytes());
        } else {
            let _ = out.write_all(text.as_bytes());
            if let Err(e) = &result {
                eprintln!("hft-connector status: {e}");
            }
            if args.watch && !args.json {
                let _ = out.write_all(b"\n");
            }
        }
        let _ = out.flush();
        drop(out);
        if !args.watch {
            return code;
        }
        tokio::select! {
            Some(_) = async { interrupt.as_mut()?.recv().await } => return code,
            Some(_) = async { terminate.as_mut()?.recv().await } => return code,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> StatusReply {
        serde_json::from_value(serde_json::json!({
            "feeds": [
                {"symbol": "BTCUSDT", "category": "linear", "status": "connected"},
                {"symbol": "ETHUSDT", "category": "spot", "status": "down", "extra": 1}
            ]
        }))
        .expect("a status: fields it does not show may be missing or added")
    }

    #[test]
    fn exit_code_says_whether_every_feed_is_connected() {
        let mut r = reply();
        assert_eq!(r.exit_code(), EXIT_NOT_CONNECTED);
        r.feeds.truncate(1);
        assert_eq!(r.exit_code(), EXIT_CONNECTED);
        r.feeds[0].status = "connecting".into();
        assert_eq!(r.exit_code(), EXIT_NOT_CONNECTED);
        assert_ne!(
            FetchError::NoService(String::new()).exit_code(),
            EXIT_NOT_CONNECTED
        );
        assert_ne!(
            FetchError::NoService(String::new()).exit_code(),
            FetchError::BadAnswer(String::new()).exit_code()
        );
    }

    #[test]
    fn urls_without_a_scheme_are_http() {
        assert_eq!(base_url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(base_url("http://h:1/"), "http://h:1");
        assert_eq!(base_url(" https://h "), "https://h");
    }
}
