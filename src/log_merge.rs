//! The JSON log line formatter that lifts forwarded fields to top level: an event carrying
//! [`FORWARDED_FIELDS`] (a JSON object's members as text, e.g. `"symbol":"BTCUSDT","connection":1`)
//! is written with those members as ordinary top-level fields, so an event re-logged by the
//! supervisor from a worker's log line reads exactly like the same event logged in-process.
//!
//! `tracing` needs field names at compile time; the worker's events carry theirs at run time.
//! Rather than a hand-kept table of every event's fields (which drifts the day a field is added),
//! the supervisor passes the worker's members through verbatim and this formatter splices them in.
//!
//! It also lifts the fields of two spans to top level: an A/B line's `line`
//! ([`hft_feed::lines::LINE_SPAN`]) and, in process isolation, the `pid` of the worker carrying
//! the connection ([`hft_feed::worker::WORKER_SPAN`]), so every event of a connection names them.

use std::fmt;

use hft_feed::forwarded::{lift, FORWARDED_FIELDS};
use hft_feed::lines::LINE_SPAN;
use hft_feed::worker::WORKER_SPAN;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps a JSON event formatter; lines carrying [`FORWARDED_FIELDS`] get its members at top level.
#[derive(Debug, Clone)]
pub struct LiftForwarded<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for LiftForwarded<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let forwards = event
            .metadata()
            .fields()
            .iter()
            .any(|f| f.name() == FORWARDED_FIELDS);
        let members = span_members(ctx);
        if !forwards && members.is_empty() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let mut out = if forwards {
            lift(&line).unwrap_or(line)
        } else {
            line
        };
        for (key, member) in members.iter().rev() {
            if !out.contains(&format!("\"{key}\":")) {
                if let Some(open) = out.find('{') {
                    out.insert_str(open + 1, &format!("{member},"));
                }
            }
        }
        writer.write_str(&out)
    }
}

/// The members of the spans the event was logged in whose fields go to top level: `"line":"a"`
/// of an A/B line's span, `"pid":4242` of a worker's connection span (with their keys).
fn span_members<S, N>(ctx: &FmtContext<'_, S, N>) -> Vec<(&'static str, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let Some(span) = ctx.lookup_current() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, key) in [(LINE_SPAN, "line"), (WORKER_SPAN, "pid")] {
        let Some(found) = span.scope().find(|s| s.name() == name) else {
            continue;
        };
        let ext = found.extensions();
        let Some(fields) = ext.get::<FormattedFields<N>>() else {
            continue;
        };
        let Some(inner) = fields
            .fields
            .trim()
            .strip_prefix('{')
            .and_then(|f| f.strip_suffix('}'))
        else {
            continue;
        };
        if inner.contains(&format!("\"{key}\":")) {
            out.push((key, inner.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let out = buf.clone();
        let format = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false);
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(LiftForwarded(format))
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().expect("buffer").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn events_in_a_line_span_name_the_line_at_top_level() {
        let got = lines_of(|| {
            tracing::info!(event = "outside", connection = 1);
            let _g = hft_feed::lines::line_span(1).entered();
            tracing::info!(event = "bybit_connector_connected", connection = 2);
            tracing::warn!(
                event = "connector_disconnected",
                pid = 7,
                forwarded_fields = r#""reason":"stale","category":"linear""#
            );
        });
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["event"], "outside");
        assert!(
            got[0].get("line").is_none(),
            "no line outside a line's span"
        );
        assert_eq!(got[1]["event"], "bybit_connector_connected");
        assert_eq!(got[1]["line"], "b");
        assert_eq!(got[1]["connection"], 2);
        // A worker's event re-logged by its line's supervisor: lifted fields, pid and line.
        assert_eq!(got[2]["line"], "b");
        assert_eq!(got[2]["reason"], "stale");
        assert_eq!(got[2]["pid"], 7);
    }

    #[test]
    fn events_of_a_workers_connection_name_its_pid_at_top_level() {
        let got = lines_of(|| {
            let _l = hft_feed::lines::line_span(0).entered();
            let _w = tracing::info_span!(hft_feed::worker::WORKER_SPAN, pid = 4242u32).entered();
            tracing::info!(event = "bybit_connector_connected", connection = 1);
            tracing::info!(
                event = "bybit_connector_subprocess_connected",
                pid = 4242u32
            );
        });
        assert_eq!(got[0]["pid"], 4242);
        assert_eq!(got[0]["line"], "a");
        assert_eq!(got[0]["connection"], 1);
        assert_eq!(got[1]["pid"], 4242);
        let text = serde_json::to_string(&got[1]).unwrap();
        assert_eq!(text.matches("\"pid\"").count(), 1, "{text}");
    }
}
