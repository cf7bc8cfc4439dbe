//! `hft-connector status`: asks a running service (`GET /api/status`) how its feeds are and shows a
//! table (or the JSON with `--json`), refreshed in place with `--watch`. The exit code is for
//! scripts and health checks: 0 every feed connected, 1 a feed is not, 3 no service answers,
//! 4 something answered that is not a status.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use console::Style;
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

/// `0.4s`, `12s`, `3m05s`, `2h03m`, `-` when unknown.
pub fn age(seconds: Option<f64>) -> String {
    let Some(s) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "-".into();
    };
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 60.0 {
        format!("{}s", s as u64)
    } else if s < 3600.0 {
        format!("{}m{:02}s", s as u64 / 60, s as u64 % 60)
    } else {
        format!("{}h{:02}m", s as u64 / 3600, s as u64 % 3600 / 60)
    }
}

/// The time of day of an ISO time when it is on `today` (`2026-11-29`), else the whole time.
fn short_time(iso: &str, today: Option<&str>) -> String {
    match (iso.split_once('T'), today) {
        (Some((date, time)), Some(t)) if t.starts_with(date) => time.to_string(),
        _ => iso.to_string(),
    }
}

fn backfill_text(b: Option<&BackfillRow>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b.total == 0 => b.state.clone(),
        Some(b) => format!("{} {}/{}", b.state, b.done, b.total),
    }
}

const HEADERS: [&str; 10] = [
    "SYMBOL",
    "CATEGORY",
    "STATUS",
    "LAST UPDATE",
    "AGE",
    "RECONNECTS",
    "ERRORS",
    "QUEUE",
    "PID",
    "BACKFILL",
];

fn status_style(status: &str, color: bool) -> Style {
    let s = match status {
        "connected" => Style::new().green(),
        "down" => Style::new().red().bold(),
        _ => Style::new().yellow(),
    };
    s.force_styling(color)
}

/// The table, then a summary line (`2 feeds: 1 connected, 1 disconnected`), each line ending in
/// a newline.
pub fn render(reply: &StatusReply, base: &str, color: bool) -> String {
    let today = reply.time.as_deref();
    let rows: Vec<[String; 10]> = reply
        .feeds
        .iter()
        .map(|f| {
            [
                f.symbol.clone(),
                f.category.clone(),
                f.status.clone(),
                f.last_update
                    .as_deref()
                    .map(|t| short_time(t, today))
                    .unwrap_or_else(|| "-".into()),
                age(f.seconds_since_last_event),
                f.reconnects.to_string(),
                f.error_count.to_string(),
                f.queue_size.to_string(),
                f.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                backfill_text(f.backfill.as_ref()),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // The last column is not padded (no trailing blanks).
    widths[HEADERS.len() - 1] = 0;
    let bold = Style::new().bold().force_styling(color);
    let mut out = String::new();
    let line = |cells: Vec<String>| cells.join("  ").trim_end().to_string() + "\n";
    out += &line(
        HEADERS
            .iter()
            .zip(widths)
            .map(|(h, w)| bold.apply_to(format!("{h:<w$}")).to_string())
            .collect(),
    );
    for r in &rows {
        out += &line(
            r.iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    let padded = format!("{cell:<w$}");
                    if i == 2 {
                        status_style(cell, color).apply_to(padded).to_string()
                    } else {
                        padded
                    }
                })
                .collect(),
        );
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for s in crate::http::status::STATUSES {
        let n = reply.feeds.iter().filter(|f| f.status == s).count();
        if n > 0 {
            counts.push((s.to_string(), n));
        }
    }
    let summary = counts
        .iter()
        .map(|(s, n)| {
            status_style(s, color)
                .apply_to(format!("{n} {s}"))
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ");
    let feeds = reply.feeds.len();
    out += &format!(
        "{feeds} feed{}{}{summary} (service {} at {base}{})\n",
        if feeds == 1 { "" } else { "s" },
        if counts.is_empty() { "" } else { ": " },
        reply.version.as_deref().unwrap_or("?"),
        reply
            .time
            .as_deref()
            .map(|t| format!(", {t}"))
            .unwrap_or_default(),
    );
    out
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
            (Ok((reply, _)), false) => render(reply, &base, color),
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
                {"symbol": "BTCUSDT", "category": "linear", "status": "connected",
                 "last_update": "2026-11-29T08:43:12.345Z", "seconds_since_last_event": 0.42,
                 "reconnects": 2, "error_count": 1, "queue_size": 0, "pid": 4242,
                 "backfill": {"done": 88, "total": 88, "state": "done"}, "messages": 10},
                {"symbol": "ETHUSDT", "category": "spot", "status": "down",
                 "last_update": null, "seconds_since_last_event": null,
                 "reconnects": 0, "error_count": 7, "queue_size": 3, "pid": null,
                 "backfill": {"done": 0, "total": 0, "state": "disabled"}}
            ],
            "time": "2026-11-29T08:43:12.800Z", "version": "0.1.0", "healthy": false
        }))
        .expect("a status")
    }

    #[test]
    fn the_table_has_a_row_per_feed_and_a_summary() {
        let text = render(&reply(), "http://127.0.0.1:8080", false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let cells = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(cells(lines[0])[..3], ["SYMBOL", "CATEGORY", "STATUS"]);
        assert_eq!(
            cells(lines[1]),
            [
                "BTCUSDT",
                "linear",
                "connected",
                "08:43:12.345Z",
                "0.4s",
                "2",
                "1",
                "0",
                "4242",
                "done",
                "88/88"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            ["ETHUSDT", "spot", "down", "-", "-", "0", "7", "3", "-", "disabled"]
        );
        assert_eq!(
            lines[3],
            "2 feeds: 1 connected, 1 down (service 0.1.0 at http://127.0.0.1:8080, 2026-11-29T08:43:12.800Z)"
        );
        // Columns line up: every row's STATUS starts where the header's does.
        let col = lines[0].find("STATUS").unwrap();
        assert_eq!(lines[1].find("connected"), Some(col));
        assert_eq!(lines[2].find("down"), Some(col));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_marks_the_status_only_when_asked() {
        let text = render(&reply(), "u", true);
        assert!(text.contains("\x1b[31"), "down is red: {text:?}");
        assert_eq!(
            console::strip_ansi_codes(&text),
            render(&reply(), "u", false)
        );
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
    fn ages_and_urls_read_well() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(0.42)), "0.4s");
        assert_eq!(age(Some(42.9)), "42s");
        assert_eq!(age(Some(185.0)), "3m05s");
        assert_eq!(age(Some(7380.0)), "2h03m");
        assert_eq!(base_url("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(base_url("http://h:1/"), "http://h:1");
        assert_eq!(
            short_time("2026-11-28T23:59:59Z", Some("2026-11-29T00:00:01Z")),
            "2026-11-28T23:59:59Z"
        );
    }
}
