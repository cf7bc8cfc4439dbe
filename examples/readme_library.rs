//! The README's "Using the feed as a library" example, line for line inside `main`, so it is
//! compiled with every build of the examples (`cargo build --examples`, clippy `--all-targets`,
//! `cargo test`); `tests/readme_example.rs` fails if the README and this file drift apart.
//!
//! `cargo run --example readme_library` streams BTCUSDT from Bybit mainnet until Ctrl-C.

use hft_connector::feed::{Feed, FeedConfig, FeedEvent};
use hft_connector::protocol::Category;

// Kept exactly as the README shows it.
#[rustfmt::skip]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = FeedConfig::new("wss://stream.bybit.com/v5/public", "https://api.bybit.com",
                              Category::Linear, &["BTCUSDT"]);
    let mut feed = Feed::spawn(cfg)?;
    while let Some(ev) = feed.next().await {
        match ev {
            FeedEvent::Trade(t) => println!("{:?} {} @ {}", t.side, t.qty, t.price),
            FeedEvent::Book(b) => println!("top {:?} / {:?}", b.best_bid, b.best_ask),
            other => eprintln!("{other:?}"), // connected, disconnected, stale, resync, trades recovered...
        }
    }
    Ok(())
}
