//! What publishing to NATS JetStream costs, on loopback against a real `nats-server -js` that this
//! example starts itself (Debian's `nats-server` on PATH or in /usr/sbin; scripts/nats-deps.sh).
//!
//! 1. Throughput: N trades through [`NatsSink`] (offer, encode, publish with `Nats-Msg-Id`, acks
//!    awaited in a window of 1024) vs. a baseline: the same pre-encoded payloads published with the
//!    same ids and window straight through async-nats.
//! 2. Added latency: trades paced at R/s; a core-NATS subscriber measures offer-to-receipt through
//!    the sink vs. publish-to-receipt of the same payloads straight through async-nats.
//! 3. The live path's cost: what `offer()` costs the feed per event (clone + bounded try-send, and
//!    when the buffer is full: count the drop) vs. decoding the same trade from its Bybit frame.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/nats_sink_cost [messages] [rate] [seconds]   # defaults: 100000 2000 5
//! ```

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, context::Publish, stream};
use futures_util::StreamExt;
use hft_connector::feed::FeedEvent;
use hft_connector::normalized::{Event, TradeEvent};
use hft_connector::protocol::ws::{decode, Frame, Side};
use hft_connector::protocol::Category;
use hft_connector::sinks::{NatsSection, NatsSink};

const FRAME: &str = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}"#;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn trade(i: u64, recv_ns: Option<u64>) -> TradeEvent {
    TradeEvent {
        symbol: "BTCUSDT".into(),
        id: format!("20f43950-d8dd-5b31-9112-{i:012}"),
        price: "16578.50".parse().unwrap_or_default(),
        qty: "0.001".parse().unwrap_or_default(),
        side: Side::Buy,
        ts_ms: 1_672_304_486_865,
        seq: Some(1_783_284_617 + i),
        block: false,
        category: Some("linear".into()),
        recv_ns,
        recovered: false,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `nats-server -js` on a free port with a temp store; returns it and its URL.
fn nats_server() -> (std::process::Child, String, PathBuf) {
    let bin = [
        "nats-server",
        "/usr/sbin/nats-server",
        "/usr/local/sbin/nats-server",
    ]
    .into_iter()
    .find(|b| Command::new(b).arg("--version").output().is_ok())
    .expect("nats-server is not installed (scripts/nats-deps.sh installs it)");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("hftc-nats-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.expect("log").contains("Server is ready") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, format!("nats://127.0.0.1:{port}"), dir)
}

fn section(url: &str, stream: &str, prefix: &str, buffer: usize) -> NatsSection {
    NatsSection {
        url: url.to_string(),
        stream: stream.to_string(),
        subject_prefix: prefix.to_string(),
        buffer,
        ..NatsSection::default()
    }
}

async fn sink_ready(sink: &NatsSink) {
    while !sink.stats().stream_ready.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sink_stored(sink: &NatsSink, n: u64) {
    let s = sink.stats();
    while s.published.load(Ordering::Relaxed) + s.duplicates.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Publishes `payloads` straight through async-nats with ids and a window of `window` acks.
async fn raw_publish(
    js: &jetstream::Context,
    subject: &str,
    payloads: Vec<(String, Vec<u8>)>,
    window: usize,
) {
    let mut acks = VecDeque::new();
    for (id, p) in payloads {
        if acks.len() >= window {
            let ack: jetstream::context::PublishAckFuture = acks.pop_front().expect("ack");
            ack.into_future().await.expect("ack");
        }
        let f = js
            .send_publish(
                subject.to_string(),
                Publish::build().payload(p.into()).message_id(id),
            )
            .await
            .expect("publish");
        acks.push_back(f);
    }
    for a in acks {
        a.into_future().await.expect("ack");
    }
}

fn percentiles(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let p = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
            / 1000
    };
    format!(
        "p50 {} µs, p90 {} µs, p99 {} µs, max {} µs ({} samples)",
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0),
        v.len()
    )
}

/// Offers/publishes `n` trades paced at `rate`/s while a core subscriber records receipt - send time.
async fn latency(
    client: &async_nats::Client,
    subject_filter: &str,
    n: u64,
    rate: u64,
    mut send: impl FnMut(u64),
) -> Vec<u64> {
    let mut sub = client
        .subscribe(subject_filter.to_string())
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let reader = tokio::spawn(async move {
        let mut out = Vec::with_capacity(n as usize);
        while (out.len() as u64) < n {
            let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(30), sub.next()).await
            else {
                break;
            };
            let now = now_ns();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) {
                if let Some(sent) = v["recv_ns"].as_u64() {
                    out.push(now.saturating_sub(sent));
                }
            }
        }
        out
    });
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..n {
        tick.tick().await;
        send(i);
    }
    reader.await.expect("reader")
}

#[tokio::main]
async fn main() {
    let n: u64 = arg(1, 100_000);
    let rate: u64 = arg(2, 2_000);
    let seconds: u64 = arg(3, 5);
    let (mut server, url, dir) = nats_server();
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(10));
    println!("nats_sink_cost: {n} trades, latency at {rate}/s for {seconds} s, {url}");

    // 1. Throughput.
    let sink = NatsSink::start(section(&url, "BENCH_SINK", "sink", n as usize + 16));
    sink_ready(&sink).await;
    let events: Vec<FeedEvent> = (0..n)
        .map(|i| FeedEvent::Trade(Box::new(trade(i, None))))
        .collect();
    let symbols = vec!["BTCUSDT".to_string()];
    let t0 = Instant::now();
    for ev in &events {
        sink.offer(Category::Linear, &symbols, ev);
    }
    let offer_ns = t0.elapsed().as_nanos() as f64 / n as f64;
    sink_stored(&sink, n).await;
    let sink_s = t0.elapsed().as_secs_f64();
    let st = sink.status();
    assert_eq!(st.dropped, 0, "{st:?}");
    sink.close(Duration::from_secs(10)).await;

    js.get_or_create_stream(stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["raw.>".into()],
        ..Default::default()
    })
    .await
    .expect("raw stream");
    let payloads: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let t = trade(i, None);
            (
                format!("linear.BTCUSDT.trade.{}", t.id),
                Event::Trade(t).to_json().into_bytes(),
            )
        })
        .collect();
    let t0 = Instant::now();
    raw_publish(&js, "raw.bybit.linear.BTCUSDT.trade", payloads, 1024).await;
    let raw_s = t0.elapsed().as_secs_f64();
    println!(
        "throughput: sink {:.0} msg/s, raw async-nats {:.0} msg/s, ratio {:.2}",
        n as f64 / sink_s,
        n as f64 / raw_s,
        raw_s / sink_s
    );

    // 2. Added latency (offer -> a core subscriber) vs. raw publish -> the same subscriber.
    let m = rate * seconds;
    let sink = NatsSink::start(section(&url, "BENCH_LAT", "lat", 65_536));
    sink_ready(&sink).await;
    let s2 = sink.clone();
    let via_sink = latency(&client, "lat.>", m, rate, move |i| {
        let ev = FeedEvent::Trade(Box::new(trade(i, Some(now_ns()))));
        s2.offer(Category::Linear, &["BTCUSDT".to_string()], &ev);
    })
    .await;
    sink.close(Duration::from_secs(10)).await;
    let js2 = js.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let publisher = tokio::spawn(async move {
        let mut acks = VecDeque::new();
        while let Some((id, p)) = rx.recv().await {
            let f = js2
                .send_publish(
                    "raw.bybit.linear.BTCUSDT.trade",
                    Publish::build().payload(p.into()).message_id(id),
                )
                .await
                .expect("publish");
            acks.push_back(f.into_future());
            while acks.len() > 1024 {
                let _ = acks.pop_front().expect("ack").await;
            }
        }
        for a in acks {
            let _ = a.await;
        }
    });
    let direct = latency(&client, "raw.>", m, rate, move |i| {
        let t = trade(n + i, Some(now_ns()));
        let _ = tx.send((
            format!("linear.BTCUSDT.trade.{}", t.id),
            Event::Trade(t).to_json().into_bytes(),
        ));
    })
    .await;
    let _ = publisher.await;
    println!("latency via sink:  {}", percentiles(via_sink));
    println!("latency direct:    {}", percentiles(direct));

    // 3. The live path: offer() per event vs. decoding the trade from its frame.
    let k = 1_000_000u64;
    let ev0 = FeedEvent::Trade(Box::new(trade(0, None)));
    let t0 = Instant::now();
    let mut ids = 0usize;
    for _ in 0..k {
        if let Ok(Frame::Trades(t)) = decode(std::hint::black_box(FRAME)) {
            ids += t
                .trades
                .iter()
                .map(|x| TradeEvent::from_ws(x, Some(1)).id.len())
                .sum::<usize>();
        }
    }
    let decode_ns = t0.elapsed().as_nanos() as f64 / k as f64;
    // A sink whose task is idle (NATS unreachable) with room for everything: clone + send only.
    let idle_n = 200_000u64;
    let idle = NatsSink::start(section(
        "nats://127.0.0.1:1",
        "IDLE",
        "idle",
        idle_n as usize + 16,
    ));
    let t0 = Instant::now();
    for _ in 0..idle_n {
        idle.offer(Category::Linear, &symbols, std::hint::black_box(&ev0));
    }
    let idle_ns = t0.elapsed().as_nanos() as f64 / idle_n as f64;
    idle.close(Duration::from_secs(1)).await;
    // A full buffer: every offer is a counted drop.
    let full = NatsSink::start(section("nats://127.0.0.1:1", "FULL", "full", 1));
    let ev = FeedEvent::Trade(Box::new(trade(0, None)));
    let t0 = Instant::now();
    for _ in 0..k {
        full.offer(Category::Linear, &symbols, std::hint::black_box(&ev));
    }
    let drop_ns = t0.elapsed().as_nanos() as f64 / k as f64;
    full.close(Duration::from_secs(1)).await;
    println!(
        "live path: offer() {offer_ns:.0} ns/event while the sink publishes, {idle_ns:.0} ns/event with the sink idle, {drop_ns:.0} ns/event dropped (buffer full); decode + normalize of the same trade {decode_ns:.0} ns; ratios to decode {:.2} / {:.2} / {:.2} ({ids} id bytes)",
        offer_ns / decode_ns,
        idle_ns / decode_ns,
        drop_ns / decode_ns
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(dir);
}
