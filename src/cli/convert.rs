//! `hft-connector convert --to hftbacktest|jsonl IN... -o OUT`: recordings (ours, hftbacktest's
//! collector's, Bybit's archives) into hftbacktest's `.npz` or normalized JSON lines.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::convert::pipeline::{self, Options, Summary};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// hftbacktest's event array (`.npz` holding `data.npy`).
    Hftbacktest,
    /// Normalized events, one JSON object per line (the `decode` schema).
    Jsonl,
}

/// Flags of `convert`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// Output format.
    #[arg(long = "to", value_enum)]
    pub to: Target,
    /// Input files in time order (`<ns> <json>` or bare JSON lines; plain, gzip or zip). A
    /// directory stands for its files, sorted by name.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Output file (`-` for stdout with `--to jsonl`).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Check that every price is a multiple of this tick size.
    #[arg(long, value_name = "T")]
    pub tick_size: Option<f64>,
    /// Check that every size is a multiple of this lot size.
    #[arg(long, value_name = "L")]
    pub lot_size: Option<f64>,
    /// Book depth to convert (hftbacktest's `single_depth_level`; default: the first book's).
    #[arg(long)]
    pub depth: Option<u16>,
    /// Symbol to convert (default: the only one in the input).
    #[arg(long)]
    pub symbol: Option<String>,
    /// hftbacktest's `base_latency` in ns (added when local times need correcting).
    #[arg(long, default_value_t = 0, value_name = "NS")]
    pub base_latency_ns: i64,
    /// For lines without a local time (Bybit archives): local = exchange time + NS.
    #[arg(long, default_value_t = 0, value_name = "NS")]
    pub feed_latency_ns: i64,
    /// Memory for rows (MB, fractions allowed); beyond it, sorted runs go to temporary files and
    /// are merged.
    #[arg(long, default_value_t = 256.0, value_name = "MB")]
    pub max_memory_mb: f64,
    /// Directory for the temporary sorted runs (default: the output's directory).
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
}

/// Expands directories into their files (sorted by name; recursively).
fn expand(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            out.extend(expand(&entries)?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn check(v: Option<f64>, name: &str) -> Result<(), String> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(format!("{name} must be a positive number")),
        _ => Ok(()),
    }
}

fn report(s: &Summary, out: &std::path::Path) {
    eprintln!(
        "convert: {} lines, {} events{}{} -> {}{}{}{}",
        s.lines,
        s.events,
        s.symbol
            .as_ref()
            .map(|x| format!(", symbol {x}"))
            .unwrap_or_default(),
        s.depth.map(|d| format!(", depth {d}")).unwrap_or_default(),
        out.display(),
        if s.bad_lines > 0 {
            format!(", {} bad lines skipped", s.bad_lines)
        } else {
            String::new()
        },
        if s.truncated_files > 0 {
            format!(
                ", {} truncated files read up to their end",
                s.truncated_files
            )
        } else {
            String::new()
        },
        if s.spilled_runs > 0 {
            format!(", ordered through {} sorted runs on disk", s.spilled_runs)
        } else {
            String::new()
        },
    );
}

/// Runs `convert`.
pub fn main(args: ConvertArgs) -> ExitCode {
    if let Err(e) = check(args.tick_size, "--tick-size")
        .and(check(args.lot_size, "--lot-size"))
        .and(check(Some(args.max_memory_mb), "--max-memory-mb"))
    {
        eprintln!("hft-connector convert: {e}");
        return ExitCode::from(2);
    }
    let inputs = match expand(&args.inputs) {
        Ok(i) if !i.is_empty() => i,
        Ok(_) => {
            eprintln!("hft-connector convert: no input files");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("hft-connector convert: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(missing) = inputs.iter().find(|p| !p.is_file()) {
        eprintln!("hft-connector convert: {}: no such file", missing.display());
        return ExitCode::from(2);
    }
    if let Some(dir) = args.temp_dir.as_ref().filter(|d| !d.is_dir()) {
        eprintln!(
            "hft-connector convert: --temp-dir {}: not a directory",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let progress = std::io::stderr().is_terminal();
    let result = match args.to {
        Target::Hftbacktest => {
            let opts = Options {
                depth: args.depth,
                symbol: args.symbol.clone(),
                tick_size: args.tick_size,
                lot_size: args.lot_size,
                base_latency_ns: args.base_latency_ns,
                feed_latency_ns: args.feed_latency_ns,
                progress,
                // Saturates: a budget beyond the address space is "everything in memory".
                max_memory: (args.max_memory_mb * 1_048_576.0) as usize,
                temp_dir: args.temp_dir.clone(),
            };
            pipeline::to_hftbacktest(&inputs, &args.output, &opts)
        }
        Target::Jsonl => {
            if args.output.as_os_str() == "-" {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                pipeline::to_jsonl(&inputs, &mut out, progress)
            } else {
                match std::fs::File::create(&args.output) {
                    Ok(f) => {
                        let mut out = std::io::BufWriter::new(f);
                        pipeline::to_jsonl(&inputs, &mut out, progress)
                    }
                    Err(e) => {
                        eprintln!("hft-connector convert: {}: {e}", args.output.display());
                        return ExitCode::from(2);
                    }
                }
            }
        }
    };
    match result {
        Ok(s) => {
            // Undecodable lines (e.g. corrupt frames the exchange sent, recorded as received)
            // are reported one by one and counted; they do not fail the conversion.
            report(&s, &args.output);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hft-connector convert: {e}");
            ExitCode::FAILURE
        }
    }
}
