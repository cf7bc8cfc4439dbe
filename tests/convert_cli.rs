//! `hft-connector convert` as a user runs it: the checked-in collector sample into an `.npz`
//! (62 rows: the count hftbacktest's own `convert_depth` gives for it, see
//! scripts/hftbacktest.sh), a recording cut short by a kill, zip (deflate, stored, damaged) and
//! zstd inputs, a memory budget small enough to go through sorted runs on disk, normalized JSON
//! lines, and the errors a wrong invocation gets.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::write::GzEncoder;
use flate2::Compression;

const SAMPLE: &str = "testdata/hftbacktest/bybit-linear-sample.gz";

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hft-connector"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-convert-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    d.join(name)
}

/// The rows of an `.npz` we wrote: (ev, exch_ts, local_ts, px, qty).
fn rows(npz: &Path) -> Vec<(u64, i64, i64, f64, f64)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(npz).expect("npz")).expect("zip");
    let mut f = zip.by_name("data.npy").expect("data.npy");
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).expect("read");
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).expect("ascii");
    let body = &bytes[10 + hlen..];
    assert_eq!(body.len() % 64, 0);
    assert!(
        header.contains(&format!("'shape': ({},)", body.len() / 64)),
        "{header}"
    );
    let u = |c: &[u8], i: usize| u64::from_le_bytes(c[i..i + 8].try_into().expect("8"));
    body.chunks(64)
        .map(|c| {
            (
                u(c, 0),
                u(c, 8) as i64,
                u(c, 16) as i64,
                f64::from_bits(u(c, 24)),
                f64::from_bits(u(c, 32)),
            )
        })
        .collect()
}

#[test]
fn the_sample_converts_to_hftbacktests_event_array() {
    let out = tmp("sample.npz");
    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        SAMPLE,
        "-o",
        out.to_str().expect("utf8"),
        "--tick-size",
        "0.1",
        "--lot-size",
        "0.001",
        "--depth",
        "50",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = rows(&out);
    assert_eq!(r.len(), 62);
    const EXCH: u64 = 1 << 31;
    const LOCAL: u64 = 1 << 30;
    const BUY: u64 = 1 << 29;
    // First on the exchange side: the depth-50 snapshot's bid clear.
    assert_eq!(r[0].0 & !LOCAL, 3 | BUY | EXCH);
    // Exchange events never go back in exchange time, local events never in local time.
    let mono = |flag: u64, f: fn(&(u64, i64, i64, f64, f64)) -> i64| {
        let ts: Vec<i64> = r.iter().filter(|x| x.0 & flag == flag).map(f).collect();
        ts.windows(2).all(|w| w[0] <= w[1])
    };
    assert!(mono(EXCH, |x| x.1) && mono(LOCAL, |x| x.2));
    // The trade executed before a delta it arrived after is split into two events.
    let sell_trades = r
        .iter()
        .filter(|x| x.0 & 0xff == 2 && x.3 == 109160.1)
        .count();
    assert_eq!(sell_trades, 2);
    // Without --depth, the first book topic's depth is converted (here the orderbook.1 line).
    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        SAMPLE,
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("depth 1 "));
}

#[test]
fn a_recording_cut_by_a_kill_converts_up_to_its_last_complete_member() {
    let text = {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(
            std::fs::File::open(Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE))
                .expect("sample"),
        )
        .read_to_string(&mut s)
        .expect("sample");
        s
    };
    let lines: Vec<&str> = text.lines().collect();
    // Two members (two flushes), the second cut in half, as a kill -9 mid-write would leave it.
    let member = |ls: &[&str]| {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        for l in ls {
            writeln!(gz, "{l}").expect("write");
        }
        gz.finish().expect("gzip")
    };
    let mut bytes = member(&lines[..8]);
    let second = member(&lines[8..]);
    bytes.extend_from_slice(&second[..second.len() / 2]);
    let input = tmp("cut.gz");
    std::fs::write(&input, &bytes).expect("write");
    let out = tmp("cut.npz");
    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("ends inside a compressed block after line 8"),
        "{err}"
    );
    assert!(!rows(&out).is_empty());
}

#[test]
fn jsonl_gives_the_normalized_events() {
    let out = tmp("sample.jsonl");
    let o = bin(&[
        "convert",
        "--to",
        "jsonl",
        SAMPLE,
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).expect("out");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(events
        .iter()
        .any(|e| e["type"] == "trade" && e["price"] == "109160.10"));
    assert!(events
        .iter()
        .any(|e| e["type"] == "book" && e["kind"] == "snapshot"));
}

#[test]
fn wrong_inputs_get_clear_errors() {
    let out = tmp("bad.npz");
    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        SAMPLE,
        "-o",
        out.to_str().expect("utf8"),
        "--tick-size",
        "0.5",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not a multiple of --tick-size 0.5"),
        "{err}"
    );

    let mixed = tmp("mixed.txt");
    std::fs::write(
        &mixed,
        "1 {\"topic\":\"publicTrade.BTCUSDT\",\"ts\":1,\"data\":[{\"T\":1,\"p\":\"1\",\"v\":\"1\",\"S\":\"Buy\"}]}\n\
         2 {\"topic\":\"publicTrade.ETHUSDT\",\"ts\":2,\"data\":[{\"T\":2,\"p\":\"1\",\"v\":\"1\",\"S\":\"Buy\"}]}\n",
    )
    .expect("write");
    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        mixed.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mixed.txt:2") && err.contains("--symbol"),
        "{err}"
    );
    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        mixed.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--symbol",
        "ETHUSDT",
    ]);
    assert!(o.status.success());
    assert_eq!(rows(&out).len(), 1);

    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        "no/such/file.gz",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/file.gz"));
}

#[test]
fn a_bybit_archive_zip_without_local_times_converts() {
    // Bybit's order book archives: a zip holding JSON lines of orderbook.200 frames, no local time.
    let snap = r#"{"topic":"orderbook.200.BTCUSDT","type":"snapshot","ts":1000,"data":{"s":"BTCUSDT","b":[["100.0","1"],["99.9","2"]],"a":[["100.1","3"]],"u":1,"seq":1},"cts":999}"#;
    let delta = r#"{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1001,"data":{"s":"BTCUSDT","b":[["100.0","0"]],"a":[],"u":2,"seq":2},"cts":1000}"#;
    let input = tmp("archive.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&input).expect("zip"));
        z.start_file(
            "2025-09-25_BTCUSDT_ob200.data",
            zip::write::SimpleFileOptions::default(),
        )
        .expect("entry");
        writeln!(z, "{snap}\n{delta}").expect("write");
        z.finish().expect("finish");
    }
    let out = tmp("archive.npz");
    let o = bin(&[
        "convert",
        "--to",
        "hftbacktest",
        input.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--feed-latency-ns",
        "500",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("depth 200"), "{err}");
    let r = rows(&out);
    // clear + 2 bids, clear + 1 ask, 1 delta; local = exchange + 500 ns, so each row once.
    assert_eq!(r.len(), 6);
    assert!(r.iter().all(|x| x.2 == x.1 + 500));
    assert_eq!(r[5].4, 0.0);
}

#[test]
fn a_stored_zip_converts_and_a_damaged_one_is_refused() {
    let snap = r#"{"topic":"orderbook.200.BTCUSDT","type":"snapshot","ts":1000,"data":{"s":"BTCUSDT","b":[["100.0","1"]],"a":[["100.1","3"]],"u":1,"seq":1},"cts":999}"#;
    let input = tmp("stored.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&input).expect("zip"));
        z.start_file(
            "2025-09-25_BTCUSDT_ob200.data",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .expect("entry");
        writeln!(z, "{snap}").expect("write");
        z.finish().expect("finish");
    }
    let out = tmp("stored.npz");
    let run = |input: &Path| {
        bin(&[
            "convert",
            "--to",
            "hftbacktest",
            input.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
        ])
    };
    let o = run(&input);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rows(&out).len(), 4);
    // One byte of the stored text changed: the CRC-32 no longer matches, and the error says so.
    let mut bytes = std::fs::read(&input).expect("zip");
    let at = bytes
        .windows(6)
        .position(|w| w == b"100.1\"")
        .expect("the ask in the entry");
    bytes[at] = b'2';
    let damaged = tmp("damaged.zip");
    std::fs::write(&damaged, &bytes).expect("write");
    let o = run(&damaged);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("damaged.zip") && err.contains("CRC-32"),
        "{err}"
    );
}

#[test]
fn a_tiny_memory_budget_spills_to_disk_and_writes_the_same_bytes() {
    let dir = tempfile::tempdir().expect("dir");
    let convert = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "convert",
            "--to",
            "hftbacktest",
            SAMPLE,
            "-o",
            out.to_str().expect("utf8"),
            "--depth",
            "50",
        ];
        args.extend_from_slice(extra);
        bin(&args)
    };
    let (mem, disk) = (dir.path().join("mem.npz"), dir.path().join("disk.npz"));
    let o = convert(&mem, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("sorted runs"));
    // 1 KB: a few rows per run.
    let o = convert(&disk, &["--max-memory-mb", "0.001"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("sorted runs on disk"), "{err}");
    assert_eq!(
        std::fs::read(&mem).expect("mem"),
        std::fs::read(&disk).expect("disk")
    );
    let left = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".hft-convert-"))
        .count();
    assert_eq!(left, 0, "temporary files left behind");

    for (flags, message) in [
        (
            &["--max-memory-mb", "0"][..],
            "--max-memory-mb must be a positive number",
        ),
        (
            &["--max-memory-mb=-3"][..],
            "--max-memory-mb must be a positive number",
        ),
        (
            &["--max-memory-mb", "NaN"][..],
            "--max-memory-mb must be a positive number",
        ),
        (
            &["--temp-dir", "no/such/dir"][..],
            "--temp-dir no/such/dir: not a directory",
        ),
    ] {
        let o = convert(&disk, flags);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(message), "{flags:?}: {err}");
    }
}

#[test]
fn a_zstd_recording_converts_like_its_gzip_twin() {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(
        std::fs::File::open(Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE)).expect("sample"),
    )
    .read_to_string(&mut text)
    .expect("sample");
    // One zstd frame per 3 lines, as the recorder writes one per flush.
    let lines: Vec<&str> = text.lines().collect();
    let mut zst = Vec::new();
    for chunk in lines.chunks(3) {
        let part: String = chunk.iter().map(|l| format!("{l}\n")).collect();
        zst.extend(zstd::bulk::compress(part.as_bytes(), 1).expect("zstd"));
    }
    let input = tmp("sample.zst");
    std::fs::write(&input, &zst).expect("write");
    let convert = |input: &str, out: &Path| {
        let o = bin(&[
            "convert",
            "--to",
            "hftbacktest",
            input,
            "-o",
            out.to_str().expect("utf8"),
            "--depth",
            "50",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let (from_gz, from_zst) = (tmp("twin-gz.npz"), tmp("twin-zst.npz"));
    convert(SAMPLE, &from_gz);
    let err = convert(input.to_str().expect("utf8"), &from_zst);
    assert!(err.contains(&format!("{} lines", lines.len())), "{err}");
    assert_eq!(
        std::fs::read(&from_gz).expect("gz"),
        std::fs::read(&from_zst).expect("zst")
    );
}
