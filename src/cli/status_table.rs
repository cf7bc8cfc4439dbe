//! The table `hft-connector status` prints: one row per feed (symbol, category, status, last update
//! and age, reconnects, errors, queue, worker pid, A/B lines, backfill), aligned, the status coloured when
//! wanted, then a summary line.

use console::Style;

use super::status::{BackfillRow, LineRow, StatusReply};

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

/// `a:up b:down` for a feed over A/B lines, `-` with one line.
fn lines_text(lines: &[LineRow]) -> String {
    if lines.is_empty() {
        return "-".into();
    }
    lines
        .iter()
        .map(|l| format!("{}:{}", l.line, if l.connected { "up" } else { "down" }))
        .collect::<Vec<_>>()
        .join(",")
}

const HEADERS: [&str; 11] = [
    "SYMBOL",
    "CATEGORY",
    "STATUS",
    "LAST UPDATE",
    "AGE",
    "RECONNECTS",
    "ERRORS",
    "QUEUE",
    "PID",
    "LINES",
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
    let rows: Vec<[String; 11]> = reply
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
                lines_text(&f.lines),
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
                 "backfill": {"done": 0, "total": 0, "state": "disabled"},
                 "lines": [{"line": "a", "connected": true, "status": "connected"},
                           {"line": "b", "connected": false, "status": "disconnected"}]}
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
                "-",
                "done",
                "88/88"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "ETHUSDT",
                "spot",
                "down",
                "-",
                "-",
                "0",
                "7",
                "3",
                "-",
                "a:up,b:down",
                "disabled"
            ]
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
    fn ages_and_times_read_well() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(0.42)), "0.4s");
        assert_eq!(age(Some(42.9)), "42s");
        assert_eq!(age(Some(185.0)), "3m05s");
        assert_eq!(age(Some(7380.0)), "2h03m");
        assert_eq!(
            short_time("2026-11-28T23:59:59Z", Some("2026-11-29T00:00:01Z")),
            "2026-11-28T23:59:59Z"
        );
        assert_eq!(
            short_time("2026-11-29T08:00:00Z", Some("2026-11-29T09:00:00Z")),
            "08:00:00Z"
        );
    }
}
