//! End-to-end publish-rate harness for the simulator: starts it in-process at a given market rate,
//! connects N plain WebSocket clients per category subscribed to every trade and book topic, and
//! reports the messages per second the clients actually received (and what the simulator sent).
//!
//! `cargo run --release --example sim_throughput -- [rate] [conns_per_category] [seconds]`
//! (defaults: 100000 4 10).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, Simulator};
use tokio_tungstenite::tungstenite::Message;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate: f64 = arg(1, 100_000.0);
    let per_category: usize = arg(2, 4);
    let seconds: u64 = arg(3, 10);
    let sim = Simulator::start(SimConfig {
        rate,
        connection_queue: 1 << 18,
        ..SimConfig::for_tests(1)
    })
    .await?;
    let received = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for cat in Category::ALL {
        for _ in 0..per_category {
            let (mut ws, _) = tokio_tungstenite::connect_async(sim.ws_url(cat)).await?;
            let mut args = Vec::new();
            for s in ["BTCUSDT", "ETHUSDT"] {
                args.push(format!("publicTrade.{s}"));
                for d in [1, 50, 200, 1000] {
                    args.push(format!("orderbook.{d}.{s}"));
                }
            }
            let req = serde_json::json!({"op": "subscribe", "args": args});
            ws.send(Message::Text(req.to_string().into())).await?;
            let (received, bytes) = (Arc::clone(&received), Arc::clone(&bytes));
            tasks.push(tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = m {
                        received.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (r0, b0, s0) = (
        received.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        sim.stats(),
    );
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let dt = t0.elapsed().as_secs_f64();
    let s1 = sim.stats();
    let r = (received.load(Ordering::Relaxed) - r0) as f64 / dt;
    let b = (bytes.load(Ordering::Relaxed) - b0) as f64 / dt;
    let published = (s1.frames_published - s0.frames_published) as f64 / dt;
    let sent = (s1.messages_sent - s0.messages_sent) as f64 / dt;
    println!(
        "rate target {rate:.0}/s, {} connections: market frames {published:.0}/s, sent {sent:.0} msg/s, \
         received {r:.0} msg/s ({:.1} MB/s), overflowed connections {}",
        per_category * 3,
        b / 1e6,
        s1.connections_overflowed
    );
    sim.shutdown().await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}
