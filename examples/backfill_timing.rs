//! Times a full 90-day backfill of 1-minute klines (about 130 chunks of 1000) from the simulator
//! through the real service, against the rate-limit floor (chunks / (600 requests per 5 s)).
//! `cargo run --release --example backfill_timing -- [DAYS] [CONCURRENCY]`

use std::time::{Duration, Instant};

use hft_connector::cli::run::{routes, Isolation, RunArgs};
use hft_connector::config::ServiceConfig;
use hft_connector::feed::Feed;
use hft_connector::protocol::Category;
use hft_connector::service::runner::start;
use hft_connector::service::FeedKey;
use hft_connector::sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let days: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(90.0);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 20.0,
        history_days: days.ceil() as u32 + 1,
        ..SimConfig::for_tests(3)
    })
    .await?;
    let data = std::env::temp_dir().join(format!("hftc-backfill-timing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let run_args = RunArgs {
        symbols: Some(vec!["BTCUSDT".into()]),
        category: Some(vec!["linear".into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(data.clone()),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(Isolation::InProcess),
        backfill_days: Some(days),
        ..RunArgs::default()
    };
    let mut cfg = ServiceConfig::load(&run_args.overrides(), Vec::new())?;
    cfg.backfill.concurrency = concurrency;
    let t0 = Instant::now();
    let running = start(
        cfg.clone(),
        |f| Feed::spawn(f).map_err(|e| e.to_string()),
        routes,
    )
    .await?;
    let key = FeedKey {
        category: Category::Linear,
        symbol: "BTCUSDT".into(),
    };
    let (done, total) = loop {
        let b = running
            .state
            .status(&key)
            .map(|s| s.backfill)
            .unwrap_or_default();
        if b.state == "done" || b.state == "failed" {
            break (b.done, b.total);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = t0.elapsed().as_secs_f64();
    running.stop();
    running.wait().await?;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
    let per_s = cfg.backfill.requests_per_window as f64 / cfg.backfill.window_s;
    let floor = total as f64 / per_s;
    println!("days={days} concurrency={concurrency} chunks={done}/{total} elapsed={elapsed:.2}s floor={floor:.2}s ratio={:.2}", elapsed / floor);
    Ok(())
}
