//! Criterion benches of the hot path: frame decoding and book application, against the
//! `serde_json::Value` parse most peers do, measured in the same run as the baseline.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hft_core::book::OrderBook;
use hft_core::protocol::ws::{decode, Frame};

const TRADE: &str = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1758841135824,"data":[{"T":1758841135823,"s":"BTCUSDT","S":"Buy","v":"0.020","p":"109378.90","L":"ZeroPlusTick","i":"2a74ac78-691c-5b54-9dbe-5aafe8364627","BT":false,"RPI":false,"seq":457514743450}]}"#;

fn book_frame(kind: &str, u: u64, bids: &[(u64, u64)], asks: &[(u64, u64)]) -> String {
    let side = |v: &[(u64, u64)]| {
        v.iter()
            .map(|(p, q)| {
                format!(
                    r#"["{}.{:02}","{}.{:03}"]"#,
                    p / 100,
                    p % 100,
                    q / 1000,
                    q % 1000
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"topic":"orderbook.{d}.BTCUSDT","type":"{kind}","ts":1758845431663,"data":{{"s":"BTCUSDT","b":[{b}],"a":[{a}],"u":{u},"seq":457538796406}},"cts":1758845431662}}"#,
        d = if bids.len() > 50 { 200 } else { 50 },
        b = side(bids),
        a = side(asks)
    )
}

fn snapshot(levels: u64, u: u64) -> String {
    let bids: Vec<_> = (0..levels)
        .map(|i| (10_937_880 - i * 10, 1_000 + i))
        .collect();
    let asks: Vec<_> = (0..levels)
        .map(|i| (10_937_890 + i * 10, 2_000 + i))
        .collect();
    book_frame("snapshot", u, &bids, &asks)
}

/// Deltas of 5 bid + 5 ask size changes on existing levels, with consecutive `u`.
fn deltas(count: u64, first_u: u64) -> Vec<String> {
    (0..count)
        .map(|k| {
            let bids: Vec<_> = (0..5)
                .map(|i| (10_937_880 - (k % 9 + i * 7) * 10, 500 + k % 997))
                .collect();
            let asks: Vec<_> = (0..5)
                .map(|i| (10_937_890 + (k % 9 + i * 7) * 10, 700 + k % 991))
                .collect();
            book_frame("delta", first_u + k, &bids, &asks)
        })
        .collect()
}

/// Replaces `book` with the snapshot `frame`.
fn reset_to(book: &mut OrderBook, frame: &str) {
    if let Ok(Frame::Book(s)) = decode(frame) {
        book.apply(&s);
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("trade");
    g.bench_function("decode_typed", |b| {
        b.iter(|| decode(black_box(TRADE)).map(|f| matches!(f, Frame::Trades(_))))
    });
    g.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(TRADE)).is_ok())
    });
    g.finish();

    let snap50 = snapshot(50, 1000);
    let ds = deltas(4096, 1001);
    let mut g = c.benchmark_group("orderbook50_delta_5x5");
    g.bench_function("decode_and_apply", |b| {
        let mut book = OrderBook::new("BTCUSDT", 50);
        let reset = |book: &mut OrderBook| reset_to(book, &snap50);
        reset(&mut book);
        let mut i = 0;
        b.iter(|| {
            if i == ds.len() {
                i = 0;
                reset(&mut book);
            }
            let out = match decode(black_box(&ds[i])) {
                Ok(Frame::Book(d)) => book.apply(&d),
                _ => unreachable!("bench frames are valid"),
            };
            i += 1;
            out
        })
    });
    g.bench_function("decode_only", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ds.len();
            decode(black_box(&ds[i])).is_ok()
        })
    });
    g.bench_function("apply_only", |b| {
        let decoded: Vec<_> = ds
            .iter()
            .filter_map(|t| match decode(t) {
                Ok(Frame::Book(d)) => Some(d),
                _ => None,
            })
            .collect();
        let mut book = OrderBook::new("BTCUSDT", 50);
        let reset = |book: &mut OrderBook| reset_to(book, &snap50);
        reset(&mut book);
        let mut i = 0;
        b.iter(|| {
            if i == decoded.len() {
                i = 0;
                reset(&mut book);
            }
            let o = book.apply(black_box(&decoded[i]));
            i += 1;
            o
        })
    });
    g.bench_function("baseline_serde_json_value", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ds.len();
            serde_json::from_str::<serde_json::Value>(black_box(&ds[i])).is_ok()
        })
    });
    g.finish();

    let snap200 = snapshot(200, 5);
    let mut g = c.benchmark_group("orderbook200_snapshot");
    g.bench_function("decode_and_apply", |b| {
        let mut book = OrderBook::new("BTCUSDT", 200);
        b.iter(|| match decode(black_box(&snap200)) {
            Ok(Frame::Book(s)) => book.apply(&s),
            _ => unreachable!("bench frames are valid"),
        })
    });
    g.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&snap200)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
