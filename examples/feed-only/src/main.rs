//! Prints BTCUSDT trades and the top of the book from a live feed.
//!
//! A program that depends on `hft-feed` alone (no HTTP server, no SQLite, no CLI, no simulator):
//! `cargo run -p feed-only -- [--isolation process|in-process] [WS_URL REST_URL]` (defaults:
//! in-process, Bybit mainnet). Offline: start `hft-connector simulate` and pass
//! `ws://127.0.0.1:9100/v5/public http://127.0.0.1:9100`. With `--isolation process` the
//! WebSocket runs in a worker process that is this very binary (see `hft_feed::worker::main`).

use hft_feed::feed::config::{MAINNET_REST, MAINNET_WS};
use hft_feed::feed::{Feed, FeedConfig, FeedEvent};
use hft_feed::protocol::Category;
use hft_feed::source::Isolation;
use hft_feed::worker::WorkerOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a worker process started by the feed below, this runs the worker and exits.
    hft_feed::worker::main();
    let mut isolation = Isolation::InProcess;
    let mut urls = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--isolation" {
            let v = args
                .next()
                .ok_or("--isolation needs process or in-process")?;
            isolation = v.parse()?;
        } else {
            urls.push(a);
        }
    }
    let ws = urls
        .first()
        .cloned()
        .unwrap_or_else(|| MAINNET_WS.to_string());
    let rest = urls
        .get(1)
        .cloned()
        .unwrap_or_else(|| MAINNET_REST.to_string());
    let cfg = FeedConfig::new(&ws, &rest, Category::Linear, &["BTCUSDT"]);
    tokio::runtime::Runtime::new()?.block_on(run(cfg, isolation))
}

async fn run(cfg: FeedConfig, isolation: Isolation) -> Result<(), Box<dyn std::error::Error>> {
    let mut feed = match isolation {
        Isolation::InProcess => Feed::spawn(cfg)?,
        Isolation::Process => Feed::spawn_in_worker(cfg, WorkerOptions::default())?,
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            ev = feed.next() => match ev {
                Some(FeedEvent::Trade(t)) => {
                    let tag = if t.recovered { " (recovered)" } else { "" };
                    println!("trade {:<4} {:>10} @ {}{tag}", format!("{:?}", t.side), t.qty, t.price);
                }
                Some(FeedEvent::Book(_)) => {
                    if let Some((bid, ask)) = feed.with_book("BTCUSDT", |b| (b.best_bid(), b.best_ask())) {
                        if let (Some(b), Some(a)) = (bid, ask) {
                            println!("book  {} x {}  |  {} x {}", b.qty, b.price, a.price, a.qty);
                        }
                    }
                }
                Some(other) => eprintln!("{other:?}"),
                None => break,
            },
        }
    }
    feed.shutdown().await;
    Ok(())
}
