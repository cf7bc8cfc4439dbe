//! Structured JSON logs: one object per line with `timestamp` (UTC, RFC 3339), `level`, `event` and
//! the event's fields at top level. Event names are a stable interface (see the README).

use std::io::{self, Write};

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

/// Installs the logger on stderr in `format` (`auto`: the human format on a terminal, JSON
/// otherwise, exactly as [`init_json`]). On a terminal every line is printed above the progress
/// bars. Safe to call twice.
pub fn init(format: crate::terminal::LogFormat) {
    use crate::terminal::LogFormat;
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    match format.resolve(tty) {
        LogFormat::Json if !tty => init_json(),
        LogFormat::Json => init_json_to(StderrAboveBars),
        _ => init_pretty_to(StderrAboveBars, crate::terminal::format::stderr_color()),
    }
}

/// Installs the logger writing to `writer`, which is not a terminal (e.g. a file): `auto` is JSON,
/// `pretty` has no colour.
pub fn init_to<W>(format: crate::terminal::LogFormat, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    match format.resolve(false) {
        crate::terminal::LogFormat::Json => init_json_to(writer),
        _ => init_pretty_to(writer, false),
    }
}

/// Installs the human logger ([`crate::pretty`]) writing to `writer`.
pub fn init_pretty_to<W>(writer: W, color: bool)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .event_format(crate::pretty::Pretty::new(color))
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
}

/// A [`tracing_subscriber::fmt::MakeWriter`] for stderr that prints each log line above the bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrAboveBars;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrAboveBars {
    type Writer = StderrAboveBars;

    fn make_writer(&'a self) -> Self::Writer {
        StderrAboveBars
    }
}

impl Write for StderrAboveBars {
    /// The logger hands over one whole formatted line per call: it is written in one piece.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::terminal::bars::suspend(|| {
            let mut err = io::stderr().lock();
            err.write_all(buf)?;
            err.flush()
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
