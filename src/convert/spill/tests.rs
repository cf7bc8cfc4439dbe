//! The external sort against the in-memory ordering: same events, byte for byte, however small
//! the budget; the temporary directory never outlives a conversion.

use super::*;
use crate::convert::order::{correct_local_timestamp, merge, validate_event_order, Views};
use crate::convert::pipeline::{to_hftbacktest, ConvertError, Options};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Rows with many equal timestamps (ties test stability), local times before and after the
/// exchange's (negative latencies are corrected) and a distinct `px` per row to tell them apart.
fn rows(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let exch = rng.random_range(0..n as i64 / 4 + 1) * 1000;
            Event {
                ev: rng.random_range(1..5u64) | (1 << 29),
                exch_ts: exch,
                local_ts: exch + rng.random_range(-3..40i64) * 100,
                px: i as f64,
                qty: 1.0,
                ..Event::default()
            }
        })
        .collect()
}

fn in_memory(mut rows: Vec<Event>, base_latency: i64) -> Vec<Event> {
    correct_local_timestamp(&mut rows, base_latency);
    let mut out = Vec::new();
    merge(&rows, &Views::of(&rows), |e| out.push(e));
    out
}

fn spilled(rows: &[Event], chunk: usize, budget: usize, base_latency: i64) -> (Vec<Event>, usize) {
    let dir = std::env::temp_dir();
    let mut s = Spill::new(&dir, budget).expect("spill dir");
    for c in rows.chunks(chunk) {
        s.push_chunk(c).expect("run");
    }
    let runs = s.runs();
    let (path, n) = s.order(base_latency).expect("order");
    let mut out = Vec::new();
    assert_eq!(replay(&path, &mut |e| out.push(e)).expect("replay"), n);
    (out, runs)
}

#[test]
fn runs_merged_in_one_or_many_passes_give_the_in_memory_order() {
    for (n, chunk, budget, seed) in [
        (1, 1, 1 << 20, 1),
        (100, 7, 1 << 20, 2),     // 15 runs, one pass
        (1000, 3, 0, 3),          // 334 runs merged two at a time: many passes
        (5000, 512, 300_000, 4),  // fan-in 2 again, bigger runs
        (5000, 5000, 1 << 20, 5), // one run
    ] {
        let r = rows(n, seed);
        let want = in_memory(r.clone(), 250);
        let (got, runs) = spilled(&r, chunk, budget, 250);
        assert_eq!(runs, n.div_ceil(chunk));
        assert_eq!(got.len(), want.len(), "n={n} chunk={chunk}");
        assert!(
            got.iter().zip(&want).all(|(a, b)| encode(a) == encode(b)),
            "n={n} chunk={chunk}: orders differ"
        );
        validate_event_order(&got).expect("hftbacktest's order");
    }
}

#[test]
fn the_temporary_directory_goes_away_on_success_and_on_failure() {
    let r = rows(50, 9);
    let mut s = Spill::new(&std::env::temp_dir(), 0).expect("spill");
    s.push_chunk(&r[..25]).expect("run");
    s.push_chunk(&r[25..]).expect("run");
    let dir = s.path().to_path_buf();
    assert!(dir.is_dir());
    drop(s); // a conversion that failed before ordering
    assert!(!dir.exists());
    let mut s = Spill::new(&std::env::temp_dir(), 0).expect("spill");
    s.push_chunk(&r).expect("run");
    let dir = s.path().to_path_buf();
    s.order(0).expect("order");
    drop(s);
    assert!(!dir.exists());
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hftbacktest/bybit-linear-sample.gz")
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(".hft-convert-"))
        })
        .collect()
}

#[test]
fn a_conversion_over_budget_writes_the_same_npz_as_in_memory() {
    let dir = tempfile::tempdir().expect("dir");
    let (mem, disk) = (dir.path().join("mem.npz"), dir.path().join("disk.npz"));
    let opts = Options {
        depth: Some(50),
        ..Options::default()
    };
    let a = to_hftbacktest(&[sample()], &mem, &opts).expect("in memory");
    assert_eq!(a.spilled_runs, 0);
    // No budget at all: every frame with rows is a run of its own (the sample's snapshots,
    // deltas and trades), merged two at a time over several passes.
    let tiny = Options {
        max_memory: 0,
        ..opts.clone()
    };
    let b = to_hftbacktest(&[sample()], &disk, &tiny).expect("spilled");
    assert!(b.spilled_runs >= 6, "{b:?}");
    assert_eq!((a.rows, a.events), (b.rows, b.events));
    assert_eq!(
        std::fs::read(&mem).expect("mem"),
        std::fs::read(&disk).expect("disk"),
        "the .npz files differ"
    );
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_failed_conversion_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.txt");
    let mut text = String::new();
    for i in 0..200 {
        text += &format!(
            "{} {{\"topic\":\"publicTrade.BTCUSDT\",\"ts\":{i},\"data\":[{{\"T\":{i},\"p\":\"100\",\"v\":\"{}\",\"S\":\"Buy\"}}]}}\n",
            i * 1_000_000 + 5,
            if i == 150 { "0.0005" } else { "0.001" }
        );
    }
    std::fs::write(&input, text).expect("write");
    let opts = Options {
        lot_size: Some(0.001),
        max_memory: 10 * ROW_COST * 2,
        temp_dir: Some(dir.path().to_path_buf()),
        ..Options::default()
    };
    let e = to_hftbacktest(&[input], &dir.path().join("out.npz"), &opts).expect_err("off the lot");
    assert!(
        matches!(e, ConvertError::Input(ref m) if m.contains("in.txt:151")),
        "{e}"
    );
    assert!(leftovers(dir.path()).is_empty());
}
