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
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
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
        if !forwards {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&lift(&line).unwrap_or(line))
    }
}
