//! The JSON log line formatter that lifts forwarded fields to top level: an event carrying
//! [`FORWARDED_FIELDS`] (a JSON object's members as text, e.g. `"symbol":"BTCUSDT","connection":1`)
//! is written with those members as ordinary top-level fields, so an event re-logged by the
//! supervisor from a worker's log line reads exactly like the same event logged in-process.
//!
//! `tracing` needs field names at compile time; the worker's events carry theirs at run time.
//! Rather than a hand-kept table of every event's fields (which drifts the day a field is added),
//! the supervisor passes the worker's members through verbatim and this formatter splices them in.

use std::fmt;

use hft_feed::forwarded::{lift, FORWARDED_FIELDS};
use hft_feed::lines::LINE_SPAN;
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
        let line_field = line_member(ctx);
        if !forwards && line_field.is_none() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let mut out = if forwards {
            lift(&line).unwrap_or(line)
        } else {
            line
        };
        if let Some(member) = line_field {
            if !out.contains("\"line\":") {
                if let Some(open) = out.find('{') {
                    out.insert_str(open + 1, &format!("{member},"));
                }
            }
        }
        writer.write_str(&out)
    }
}

/// The `"line":"a"` member of the A/B line span ([`hft_feed::lines::LINE_SPAN`]) the event was
/// logged in, if any: a line's events name it at top level like every other field.
fn line_member<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let span = ctx.lookup_current()?;
    let found = span.scope().find(|s| s.name() == LINE_SPAN)?;
    let ext = found.extensions();
    let fields = ext.get::<FormattedFields<N>>()?;
    let inner = fields.fields.trim().strip_prefix('{')?.strip_suffix('}')?;
    inner.contains("\"line\":").then(|| inner.to_string())
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
}
