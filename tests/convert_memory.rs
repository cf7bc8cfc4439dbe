//! `convert --to hftbacktest` keeps to its memory budget: an input whose rows need several times
//! `--max-memory-mb` converts with a peak RSS near the budget (measured by the kernel for the
//! child process: `getrusage(RUSAGE_CHILDREN)`), and gives the same `.npz` as a conversion that
//! holds every row in memory (whose peak shows the input really is larger than the budget). The
//! same input in a zip (as Bybit ships archives) is streamed too, not read whole.
//!
//! One test in this binary: `RUSAGE_CHILDREN` is the largest peak of any child waited for, so no
//! other test may run children alongside it, and the small-budget conversion runs first.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use nix::sys::resource::{getrusage, UsageWho};

/// Book levels per delta frame (half bids, half asks) and frames: 1.2 M rows, 77 MB of them.
const LEVELS: usize = 200;
const FRAMES: usize = 6_000;
const BUDGET_MB: u64 = 8;
/// Allowance over the budget for the binary itself, I/O buffers and the zip writer.
const OVERHEAD_MB: u64 = 32;

fn write_input(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("input"));
    for f in 0..FRAMES {
        let ts = 1_758_000_000_000i64 + f as i64;
        let level = |i: usize| {
            format!(
                "[\"{}.{}\",\"{}.{:03}\"]",
                100_000 + (f * 7 + i) % 5000,
                i % 10,
                i % 9,
                f % 1000
            )
        };
        let bids: Vec<String> = (0..LEVELS / 2).map(level).collect();
        let asks: Vec<String> = (LEVELS / 2..LEVELS).map(level).collect();
        // Receive times jitter around the exchange time: both orders differ from the input's.
        let local = ts * 1_000_000 + ((f * 7919) % 5000) as i64 * 1000;
        writeln!(
            out,
            "{local} {{\"topic\":\"orderbook.200.BTCUSDT\",\"type\":\"delta\",\"ts\":{ts},\"data\":{{\"s\":\"BTCUSDT\",\"b\":[{}],\"a\":[{}],\"u\":{f},\"seq\":{f}}},\"cts\":{ts}}}",
            bids.join(","),
            asks.join(",")
        )
        .expect("write");
    }
    out.flush().expect("flush");
}

/// Runs a conversion; returns the largest peak RSS (MB) of any child so far and stderr.
fn convert(input: &Path, output: &Path, budget_mb: u64) -> (u64, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(["convert", "--to", "hftbacktest"])
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(["--max-memory-mb", &budget_mb.to_string()])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let peak_kb = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    (peak_kb as u64 / 1024, err)
}

#[test]
fn a_conversion_much_larger_than_its_budget_stays_near_the_budget() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("big.txt");
    write_input(&input);
    let (small, big) = (dir.path().join("small.npz"), dir.path().join("big.npz"));

    let (peak, err) = convert(&input, &small, BUDGET_MB);
    eprintln!("peak {peak} MB within --max-memory-mb {BUDGET_MB}: {err}");
    assert!(err.contains("sorted runs on disk"), "{err}");
    let bound = BUDGET_MB + OVERHEAD_MB;
    assert!(
        peak <= bound,
        "peak RSS {peak} MB with --max-memory-mb {BUDGET_MB} (bound {bound} MB): {err}"
    );

    // The same text as a zip entry (stored: the test spends no time compressing): the entry is
    // read as a stream, so the bound holds for it too.
    let zipped = dir.path().join("big.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zipped).expect("zip"));
        z.start_file(
            "BTCUSDT_ob200.data",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .large_file(false),
        )
        .expect("entry");
        std::io::copy(&mut std::fs::File::open(&input).expect("input"), &mut z).expect("copy");
        z.finish().expect("finish");
    }
    let from_zip = dir.path().join("zip.npz");
    let (peak, err) = convert(&zipped, &from_zip, BUDGET_MB);
    eprintln!("peak {peak} MB from a zip within --max-memory-mb {BUDGET_MB}: {err}");
    assert!(
        peak <= bound,
        "peak RSS {peak} MB converting the zip (bound {bound} MB): {err}"
    );
    assert!(
        std::fs::read(&small).expect("small") == std::fs::read(&from_zip).expect("zip"),
        "the zip's conversion differs from the text's"
    );

    // All in memory (1 GB budget): the same bytes, and a peak far above the bound, which shows
    // the bound above could fail.
    let (peak_all, err) = convert(&input, &big, 1024);
    eprintln!("peak {peak_all} MB in memory: {err}");
    assert!(!err.contains("sorted runs"), "{err}");
    assert!(
        peak_all > bound + 16,
        "in memory the rows need {peak_all} MB: the input is too small to test the bound"
    );
    assert!(
        std::fs::read(&small).expect("small") == std::fs::read(&big).expect("big"),
        "the spilled conversion differs from the in-memory one"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".hft-convert-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
