//! `GET /metrics` for A/B lines (`[feed] lines = 2`): one sample per feed and line (label
//! `line`: `a` or `b`). Nothing is written for feeds with one line.

use std::fmt::Write as _;

use super::prometheus::escape_label;
use crate::lines::LineStatus;
use crate::service::FeedStatus;

type Value = fn(&LineStatus) -> Option<f64>;

/// The line families: name, type, help, value.
const FAMILIES: [(&str, &str, &str, Value); 6] = [
    (
        "feed_line_up",
        "gauge",
        "1 while the line's subscriptions are confirmed (the feed is degraded when a line is 0).",
        |l| Some(f64::from(u8::from(l.connected))),
    ),
    (
        "feed_line_in_sync",
        "gauge",
        "1 when the line's trade tape is known to continue the merged one.",
        |l| Some(f64::from(u8::from(l.in_sync))),
    ),
    (
        "feed_line_behind_updates",
        "gauge",
        "Book updates the line is behind the merged book (absent when not comparable).",
        |l| l.behind_updates.map(|u| u as f64),
    ),
    (
        "feed_line_restarts_total",
        "counter",
        "Times the line was replaced because it stalled or fell behind.",
        |l| Some(l.restarts as f64),
    ),
    (
        "feed_line_connects_total",
        "counter",
        "Times the line went live.",
        |l| Some(l.connects as f64),
    ),
    (
        "feed_line_events_total",
        "counter",
        "Market events the line delivered to the arbiter (whichever line was first or not).",
        |l| Some(l.messages as f64),
    ),
];

/// Appends the line families for `feeds` to `out`.
pub fn render(out: &mut String, feeds: &[FeedStatus]) {
    if feeds.iter().all(|f| f.lines.is_empty()) {
        return;
    }
    for (name, kind, help, value) in FAMILIES {
        let _ = writeln!(out, "# HELP hft_connector_{name} {help}");
        let _ = writeln!(out, "# TYPE hft_connector_{name} {kind}");
        for f in feeds {
            for l in &f.lines {
                if let Some(v) = value(l) {
                    let _ = writeln!(
                        out,
                        "hft_connector_{name}{{category=\"{}\",symbol=\"{}\",line=\"{}\"}} {v}",
                        escape_label(f.category.as_str()),
                        escape_label(&f.symbol),
                        escape_label(&l.line),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Category;
    use crate::service::state::FeedKey;

    fn line(name: &str, connected: bool) -> LineStatus {
        LineStatus {
            line: name.into(),
            connected,
            in_sync: connected,
            behind_updates: connected.then_some(3),
            restarts: 2,
            ..LineStatus::default()
        }
    }

    #[test]
    fn one_sample_per_feed_and_line_and_nothing_with_one_line() {
        let key = FeedKey {
            category: Category::Linear,
            symbol: "BTCUSDT".into(),
        };
        let mut f = FeedStatus::new(&key);
        let mut out = String::new();
        render(&mut out, std::slice::from_ref(&f));
        assert!(out.is_empty(), "one line: nothing");
        f.lines = vec![line("a", true), line("b", false)];
        render(&mut out, &[f]);
        assert!(out.contains(
            "hft_connector_feed_line_up{category=\"linear\",symbol=\"BTCUSDT\",line=\"a\"} 1\n"
        ));
        assert!(out.contains(
            "hft_connector_feed_line_up{category=\"linear\",symbol=\"BTCUSDT\",line=\"b\"} 0\n"
        ));
        assert!(out.contains("# TYPE hft_connector_feed_line_restarts_total counter\n"));
        assert!(out.contains(
            "hft_connector_feed_line_behind_updates{category=\"linear\",symbol=\"BTCUSDT\",line=\"a\"} 3\n"
        ));
        assert!(
            !out.contains("behind_updates{category=\"linear\",symbol=\"BTCUSDT\",line=\"b\"}"),
            "not comparable: absent"
        );
    }
}
