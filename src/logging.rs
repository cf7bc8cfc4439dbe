//! Structured JSON logs: one object per line with `timestamp` (UTC, RFC 3339), `level`, `event` and
//! the event's fields at top level. Event names are a stable interface (see the README).

use tracing_subscriber::fmt::time::UtcTime;
use tracing_subscriber::EnvFilter;

/// Installs the JSON logger on stderr (filter from `RUST_LOG`, default `info`). Safe to call twice.
pub fn init_json() {
    init_json_to(std::io::stderr);
}

/// Installs the JSON logger writing to `writer` (e.g. a file).
pub fn init_json_to<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_timer(UtcTime::rfc_3339());
    // Events a supervisor re-logs for its worker carry their fields at top level too.
    let _ = tracing_subscriber::fmt()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(crate::log_merge::LiftForwarded(format))
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
}
