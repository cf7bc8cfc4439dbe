//! The human log line (`--log-format pretty`, and `auto` on a terminal): `time level event
//! key=value ...`, coloured when wanted. A worker's JSON stderr line is shown as its own event,
//! tagged `[worker PID]`; per-chunk `backfill_progress` lines are left to the JSON log (the terminal
//! has the progress bars).

use std::fmt::{self, Write as _};

use console::Style;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Events the human format does not print (the JSON log still has them).
pub const JSON_ONLY: [&str; 1] = ["backfill_progress"];

/// The event whose `line` field carries a worker's own (JSON) log line.
const WORKER_STDERR: &str = "bybit_connector_subprocess_stderr";

/// The human event formatter.
#[derive(Debug, Clone, Copy)]
pub struct Pretty {
    color: bool,
}

/// One event's fields as text, in the order they were recorded.
#[derive(Debug, Default)]
pub struct Fields {
    /// The `event` field.
    pub event: Option<String>,
    /// The free-text message, if any.
    pub message: Option<String>,
    /// Every other field.
    pub fields: Vec<(String, String)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: String) {
        match field.name() {
            "event" => self.event = Some(value),
            "message" => self.message = Some(value),
            name => self.fields.push((name.to_string(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, short_float(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

/// `62.4`, `0.125`, `3`: at most three decimals, no trailing zeros.
pub fn short_float(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A value as `key=value` shows it: quoted when empty or holding spaces, quotes or `=`.
fn show(value: &str) -> String {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=')
    {
        format!("{value:?}")
    } else {
        value.to_string()
    }
}

impl Pretty {
    /// A formatter with or without colour.
    pub fn new(color: bool) -> Self {
        Pretty { color }
    }

    fn style(&self, s: Style) -> Style {
        s.force_styling(self.color)
    }

    fn level_style(&self, level: &str) -> Style {
        self.style(match level {
            "ERROR" => Style::new().red().bold(),
            "WARN" => Style::new().yellow().bold(),
            "INFO" => Style::new().green(),
            "DEBUG" => Style::new().blue(),
            _ => Style::new().magenta(),
        })
    }

    /// The line for one event (with its newline), or `None` for an event left to the JSON log.
    pub fn render(&self, time: &str, level: &str, f: &Fields) -> Option<String> {
        let event = f.event.as_deref().unwrap_or("");
        if JSON_ONLY.contains(&event) {
            return None;
        }
        if event == WORKER_STDERR {
            if let Some(line) = self.render_worker_line(time, level, f) {
                return Some(line);
            }
        }
        Some(self.compose(time, level, None, event, &f.fields, f.message.as_deref()))
    }

    /// A worker's JSON line shown as its own event: `[worker 4242] bybit_connector_worker_stats ...`.
    fn render_worker_line(&self, time: &str, level: &str, f: &Fields) -> Option<String> {
        let pid = f
            .fields
            .iter()
            .find(|(k, _)| k == "pid")
            .map(|(_, v)| v.as_str());
        let line = f.fields.iter().find(|(k, _)| k == "line")?.1.as_str();
        let Ordered(obj) = serde_json::from_str(line).ok()?;
        let get = |key: &str| {
            obj.iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.as_str())
        };
        let event = get("event")?;
        let inner_level = get("level").unwrap_or(level);
        let mut message = None;
        let mut fields = Vec::new();
        for (k, v) in &obj {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(x) if n.is_f64() => short_float(x),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            };
            match k.as_str() {
                "timestamp" | "level" | "event" => {}
                "pid" if Some(text.as_str()) == pid => {}
                "message" => message = Some(text),
                _ => fields.push((k.clone(), text)),
            }
        }
        let tag = format!("[worker {}]", pid.unwrap_or("?"));
        Some(self.compose(
            time,
            inner_level,
            Some(&tag),
            event,
            &fields,
            message.as_deref(),
        ))
    }

    fn compose(
        &self,
        time: &str,
        level: &str,
        tag: Option<&str>,
        event: &str,
        fields: &[(String, String)],
        message: Option<&str>,
    ) -> String {
        let dim = self.style(Style::new().dim());
        let mut out = String::with_capacity(128);
        let _ = write!(
            out,
            "{} {}",
            dim.apply_to(time),
            self.level_style(level).apply_to(format!("{level:>5}"))
        );
        if let Some(tag) = tag {
            let _ = write!(out, " {}", self.style(Style::new().cyan()).apply_to(tag));
        }
        if !event.is_empty() {
            let _ = write!(out, " {}", self.style(Style::new().bold()).apply_to(event));
        }
        for (k, v) in fields {
            let _ = write!(out, " {}{}", dim.apply_to(format!("{k}=")), show(v));
        }
        if let Some(m) = message {
            let _ = write!(out, " {}", self.style(Style::new().italic()).apply_to(m));
        }
        out.push('\n');
        out
    }
}

/// A JSON object's members in the order they were written.
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        d.deserialize_map(Members)
    }
}

/// `08:43:12.345Z` (UTC).
fn now_utc() -> String {
    let format =
        time::macros::format_description!("[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

impl<S, N> FormatEvent<S, N> for Pretty
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        match self.render(&now_utc(), event.metadata().level().as_str(), &fields) {
            Some(line) => writer.write_str(&line),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(event: &str, kv: &[(&str, &str)]) -> Fields {
        Fields {
            event: Some(event.into()),
            message: None,
            fields: kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_line_is_time_level_event_and_fields() {
        let f = fields(
            "connector_disconnected",
            &[("reason", "connection reset"), ("category", "linear")],
        );
        let line = Pretty::new(false).render("08:43:12.345Z", "WARN", &f);
        assert_eq!(
            line.as_deref(),
            Some("08:43:12.345Z  WARN connector_disconnected reason=\"connection reset\" category=linear\n")
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let f = fields("backfill_done", &[("symbol", "BTCUSDT")]);
        let plain = Pretty::new(false).render("t", "INFO", &f).unwrap();
        assert!(!plain.contains('\x1b'), "{plain:?}");
        let coloured = Pretty::new(true).render("t", "ERROR", &f).unwrap();
        assert!(coloured.contains("\x1b[31"), "errors are red: {coloured:?}");
        assert_eq!(
            console::strip_ansi_codes(&coloured).replace("ERROR", " INFO"),
            plain
        );
    }

    #[test]
    fn per_chunk_progress_is_left_to_the_json_log() {
        let f = fields("backfill_progress", &[("done", "3"), ("total", "88")]);
        assert_eq!(Pretty::new(false).render("t", "INFO", &f), None);
    }

    #[test]
    fn a_worker_json_line_is_shown_as_its_own_event() {
        let line = r#"{"timestamp":"2026-11-29T08:00:00Z","level":"WARN","event":"bybit_connector_worker_stats","frames":12,"rate":1.5,"note":"a b"}"#;
        let f = fields(WORKER_STDERR, &[("pid", "4242"), ("line", line)]);
        let out = Pretty::new(false).render("t", "INFO", &f).unwrap();
        assert_eq!(
            out,
            "t  WARN [worker 4242] bybit_connector_worker_stats frames=12 rate=1.5 note=\"a b\"\n"
        );
        // A line that is not JSON (e.g. a panic message) stays as the wrapper event.
        let f = fields(WORKER_STDERR, &[("pid", "7"), ("line", "thread panicked")]);
        let out = Pretty::new(false).render("t", "INFO", &f).unwrap();
        assert!(out.contains("line=\"thread panicked\""), "{out}");
    }

    #[test]
    fn floats_are_short() {
        assert_eq!(short_float(62.400001), "62.4");
        assert_eq!(short_float(3.0), "3");
        assert_eq!(short_float(0.0004), "0");
        assert_eq!(short_float(-0.0001), "0");
    }
}
