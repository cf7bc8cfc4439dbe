//! `hft-connector decode [FILE|-] [--top N]`: replays a capture (one frame per line, plain JSON or
//! `<receive-ns> <json>`) and writes one normalized JSON event per line.

use std::io::{BufRead, Write};

use crate::normalizer::Normalizer;
use crate::protocol::ws::decode_line;

/// What a decode run saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeSummary {
    /// Non-empty lines read.
    pub lines: usize,
    /// Lines that failed to decode (each reported on `err`).
    pub bad_lines: usize,
    /// Events written.
    pub events: usize,
}

/// Decodes every line of `input`, writing events to `out` and one message per bad line to `err`.
/// Bad lines are skipped; processing goes on.
pub fn run(
    input: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
    top: Option<usize>,
) -> std::io::Result<DecodeSummary> {
    let mut normalizer = Normalizer::new(top);
    let mut summary = DecodeSummary::default();
    let mut events = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                summary.bad_lines += 1;
                writeln!(err, "line {line_no}: unreadable: {e}")?;
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        match decode_line(&line) {
            Ok(received) => {
                events.clear();
                normalizer.push(&received, &mut events);
                for e in &events {
                    serde_json::to_writer(&mut *out, e)?;
                    out.write_all(b"\n")?;
                }
                summary.events += events.len();
            }
            Err(e) => {
                summary.bad_lines += 1;
                writeln!(err, "line {line_no}: {e}")?;
            }
        }
    }
    out.flush()?;
    Ok(summary)
}
