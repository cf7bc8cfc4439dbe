//! Running a conversion: read every input line by line (never a whole file in memory), build
//! rows, check them against the tick and lot sizes, order them as hftbacktest requires and write
//! the `.npz`; or write normalized JSON lines. Progress goes to a bar on a terminal.
//!
//! Memory: text is streamed; rows (64 bytes each, plus their sort indices) are held up to the
//! memory budget (`max_memory`). When the budget is reached, hftbacktest's ordering (a global
//! sort by both timestamps) goes through sorted runs on disk ([`super::spill`]); the output is the
//! same bytes either way.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use super::hftbacktest::{Event, EventBuilder, DEPTH_CLEAR_EVENT};
use super::input::{self, split};
use super::npy::write_npz;
use super::order::{correct_local_timestamp, merge, Views};
use super::spill::{self, Spill};

/// The default memory budget of a conversion (`--max-memory-mb`).
pub const DEFAULT_MAX_MEMORY: usize = 256 << 20;

/// Options of `convert --to hftbacktest`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Book depth to convert (default: the first book topic's).
    pub depth: Option<u16>,
    /// Symbol to convert (default: the only one in the input).
    pub symbol: Option<String>,
    /// Every price must be a multiple of this (checked).
    pub tick_size: Option<f64>,
    /// Every size must be a multiple of this (checked).
    pub lot_size: Option<f64>,
    /// hftbacktest's `base_latency` (ns), added when local times need correcting.
    pub base_latency_ns: i64,
    /// Local time = exchange time + this, for lines without a local time (ns).
    pub feed_latency_ns: i64,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
    /// Bytes of rows held in memory before sorted runs go to disk (buffers of a few MB come on
    /// top).
    pub max_memory: usize,
    /// Where sorted runs go (default: the output's directory).
    pub temp_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            depth: None,
            symbol: None,
            tick_size: None,
            lot_size: None,
            base_latency_ns: 0,
            feed_latency_ns: 0,
            progress: false,
            max_memory: DEFAULT_MAX_MEMORY,
            temp_dir: None,
        }
    }
}

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Lines that could not be converted (each reported).
    pub bad_lines: u64,
    /// Files that ended early (a truncated gzip member), read up to there.
    pub truncated_files: u64,
    /// Rows built from the frames.
    pub rows: u64,
    /// Events written (rows seen differently by exchange and local time appear twice).
    pub events: u64,
    /// Symbol converted.
    pub symbol: Option<String>,
    /// Depth converted.
    pub depth: Option<u16>,
    /// Sorted runs written to disk (0: ordered in memory).
    pub spilled_runs: u64,
}

/// A conversion that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An input or the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The input does not fit the options.
    #[error("{0}")]
    Input(String),
}

fn progress_bar(enabled: bool, inputs: &[PathBuf]) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Reads every line of `inputs` in order, calling `each(path, line_no, line)`; a truncated
/// compressed file is read up to its last complete member and counted.
fn each_line(
    inputs: &[PathBuf],
    bar: &ProgressBar,
    summary: &mut Summary,
    mut each: impl FnMut(&mut Summary, &Path, u64, &str) -> Result<(), ConvertError>,
) -> Result<(), ConvertError> {
    let read = Arc::new(AtomicU64::new(0));
    let mut done_before = 0u64;
    for path in inputs {
        bar.set_message(
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        read.store(0, Relaxed);
        let mut reader = input::open(path, read.clone()).map_err(|source| ConvertError::Io {
            path: path.clone(),
            source,
        })?;
        let mut line = String::new();
        let mut line_no = 0u64;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if input::is_truncation(&e) => {
                    summary.truncated_files += 1;
                    eprintln!(
                        "convert: {}: ends inside a compressed block after line {line_no} (a recorder killed mid-write?); read up to there",
                        path.display()
                    );
                    break;
                }
                Err(source) => {
                    return Err(ConvertError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            }
            line_no += 1;
            summary.lines += 1;
            each(summary, path, line_no, &line)?;
            if line_no % 4096 == 0 {
                bar.set_position(done_before + read.load(Relaxed));
            }
        }
        done_before += read.load(Relaxed);
        bar.set_position(done_before);
    }
    Ok(())
}

fn report_bad(summary: &mut Summary, path: &Path, line_no: u64, error: &dyn std::fmt::Display) {
    summary.bad_lines += 1;
    if summary.bad_lines <= 20 {
        eprintln!("convert: {}:{line_no}: skipped: {error}", path.display());
    }
}

/// Rows a frame may add before the chunk is checked against its limit.
const HEADROOM: usize = 4096;

/// Grows `rows` for the next frame without ever reserving past `limit` (plus headroom): a
/// doubling `Vec` would otherwise take up to twice the budget.
fn grow(rows: &mut Vec<Event>, limit: usize) {
    if rows.capacity() - rows.len() < HEADROOM {
        let want = (rows.capacity() * 2)
            .max(HEADROOM * 2)
            .min(limit + HEADROOM);
        rows.reserve_exact(want.saturating_sub(rows.len()));
    }
}

fn off_grid(x: f64, step: f64) -> bool {
    let q = x / step;
    (q - q.round()).abs() > 1e-6 * q.abs().max(1.0)
}

/// `convert --to hftbacktest`: `inputs` (in time order) into the `.npz` at `output`.
pub fn to_hftbacktest(
    inputs: &[PathBuf],
    output: &Path,
    opts: &Options,
) -> Result<Summary, ConvertError> {
    let bar = progress_bar(opts.progress, inputs);
    let mut summary = Summary::default();
    let mut builder = EventBuilder::new(opts.depth, opts.symbol.clone(), opts.feed_latency_ns);
    let mut rows: Vec<Event> = Vec::new();
    let limit = spill::chunk_rows(opts.max_memory);
    let temp_parent = match (&opts.temp_dir, output.parent()) {
        (Some(d), _) => d.clone(),
        (None, Some(p)) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let spill_error = |source: io::Error| ConvertError::Io {
        path: temp_parent.clone(),
        source,
    };
    let mut spill: Option<Spill> = None;
    each_line(
        inputs,
        &bar,
        &mut summary,
        |summary, path, line_no, line| {
            let Some(l) = split(line) else { return Ok(()) };
            grow(&mut rows, limit);
            let before = rows.len();
            match builder.push(l.local_ns, l.json, &mut rows) {
                Ok(()) => {}
                Err(e @ super::hftbacktest::FrameError::OtherSymbol { .. }) => {
                    return Err(ConvertError::Input(format!(
                        "{}:{line_no}: {e}",
                        path.display()
                    )))
                }
                Err(e) => {
                    rows.truncate(before);
                    report_bad(summary, path, line_no, &e);
                    return Ok(());
                }
            }
            for r in &rows[before..] {
                let clear = r.ev & 0xff == DEPTH_CLEAR_EVENT;
                if let Some(t) = opts.tick_size.filter(|_| !clear) {
                    if off_grid(r.px, t) {
                        return Err(ConvertError::Input(format!(
                            "{}:{line_no}: price {} is not a multiple of --tick-size {t}",
                            path.display(),
                            r.px
                        )));
                    }
                }
                if let Some(l) = opts.lot_size {
                    if r.qty != 0.0 && off_grid(r.qty, l) {
                        return Err(ConvertError::Input(format!(
                            "{}:{line_no}: size {} is not a multiple of --lot-size {l}",
                            path.display(),
                            r.qty
                        )));
                    }
                }
            }
            if rows.len() >= limit {
                let s = match &mut spill {
                    Some(s) => s,
                    None => spill
                        .insert(Spill::new(&temp_parent, opts.max_memory).map_err(spill_error)?),
                };
                s.push_chunk(&rows).map_err(spill_error)?;
                rows.clear();
            }
            Ok(())
        },
    )?;
    if let Some(mut s) = spill {
        // Over the budget: order through sorted runs on disk.
        s.push_chunk(&rows).map_err(spill_error)?;
        drop(rows);
        bar.set_message(format!("ordering {} sorted runs", s.runs()));
        summary.spilled_runs = s.runs() as u64;
        let (events_path, events) = s.order(opts.base_latency_ns).map_err(spill_error)?;
        bar.set_message("writing");
        let mut replay_error = None;
        let written = write_npz(output, events as usize, |emit| {
            if let Err(e) = spill::replay(&events_path, emit) {
                replay_error = Some(e);
            }
        });
        if let Some(e) = replay_error {
            return Err(spill_error(e));
        }
        written.map_err(|source| ConvertError::Io {
            path: output.to_path_buf(),
            source,
        })?;
        bar.finish_and_clear();
        summary.rows = s.rows();
        summary.events = events;
        summary.symbol = builder.converted_symbol().map(str::to_string);
        summary.depth = builder.depth;
        return Ok(summary);
    }
    if rows.len() > u32::MAX as usize {
        return Err(ConvertError::Input(format!(
            "{} rows exceed one file's limit of {}: convert fewer inputs at once",
            rows.len(),
            u32::MAX
        )));
    }
    bar.set_message("ordering");
    correct_local_timestamp(&mut rows, opts.base_latency_ns);
    let views = Views::of(&rows);
    let events = merge(&rows, &views, |_| {});
    bar.set_message("writing");
    write_npz(output, events, |emit| {
        merge(&rows, &views, emit);
    })
    .map_err(|source| ConvertError::Io {
        path: output.to_path_buf(),
        source,
    })?;
    bar.finish_and_clear();
    summary.rows = rows.len() as u64;
    summary.events = events as u64;
    summary.symbol = builder.converted_symbol().map(str::to_string);
    summary.depth = builder.depth;
    Ok(summary)
}

/// `convert --to jsonl`: normalized events, one JSON object per line (the `decode` schema).
pub fn to_jsonl(
    inputs: &[PathBuf],
    out: &mut dyn Write,
    progress: bool,
) -> Result<Summary, ConvertError> {
    let bar = progress_bar(progress, inputs);
    let mut summary = Summary::default();
    let mut normalizer = crate::normalizer::Normalizer::new(None);
    let mut events = Vec::new();
    let mut write_error: Option<io::Error> = None;
    each_line(
        inputs,
        &bar,
        &mut summary,
        |summary, path, line_no, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            match crate::protocol::ws::decode_line(line) {
                Ok(received) => {
                    events.clear();
                    normalizer.push(&received, &mut events);
                    for e in &events {
                        let r = serde_json::to_writer(&mut *out, e)
                            .map_err(io::Error::from)
                            .and_then(|()| out.write_all(b"\n"));
                        if let Err(e) = r {
                            write_error = Some(e);
                            return Err(ConvertError::Input("output failed".into()));
                        }
                    }
                    summary.events += events.len() as u64;
                }
                Err(e) => report_bad(summary, path, line_no, &e),
            }
            Ok(())
        },
    )
    .map_err(|e| match write_error.take() {
        Some(source) => ConvertError::Io {
            path: PathBuf::from("output"),
            source,
        },
        None => e,
    })?;
    out.flush().map_err(|source| ConvertError::Io {
        path: PathBuf::from("output"),
        source,
    })?;
    bar.finish_and_clear();
    Ok(summary)
}
