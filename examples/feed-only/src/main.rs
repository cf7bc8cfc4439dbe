//! Prints BTCUSDT trades and the top of the book from a live feed.
//!
//! A program that depends on `hft-feed` alone (no HTTP server, no SQLite, no CLI, no simulator):
//! `cargo run -p feed-only -- [WS_URL REST_URL]` (defaults: Bybit mainnet). Offline: start
//! `hft-connector simulate` and pass `ws://127.0.0.1:9100/v5/public http://127.0.0.1:9100`.

use hft_feed::feed::config::{MAINNET_REST, MAINNET_WS};
use hft_feed::feed::{Feed, FeedConfig, FeedEvent};
use hft_feed::protocol::Category;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let ws = args.next().unwrap_or_else(|| MAINNET_WS.to_string());
    let rest = args.next().unwrap_or_else(|| MAINNET_REST.to_string());
    let mut feed = Feed::spawn(FeedConfig::new(&ws, &rest, Category::Linear, &["BTCUSDT"]))?;
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
