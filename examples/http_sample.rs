//! Serves the HTTP API and dashboard over a sample [`ServiceState`] with fake, moving feeds (no
//! exchange, no `run`): for `scripts/check-alerts.sh` (live `/metrics` for promtool), dashboard
//! screenshots and manual checks.
//!
//! Usage: `cargo run --example http_sample -- [--listen 127.0.0.1:0] [--seconds N] [--token T]`.
//! Prints `listening on http://ADDR` on stdout once it accepts connections.
//!
//! Feeds: `linear/BTCUSDT` connected with a moving book, trades and 6 h of stored 1-minute candles;
//! `linear/ETHUSDT` cycling connecting → connected → disconnected → down every ~10 s; `spot/SOLUSDT`
//! mid-backfill. Some event details hold HTML to show the dashboard renders it as text.

use std::io::Write as _;
use std::time::Duration;

use hft_connector::book::OrderBook;
use hft_connector::feed::health::{iso_time, unix_ms};
use hft_connector::http;
use hft_connector::normalized::{KlineEvent, TradeEvent};
use hft_connector::protocol::ws::BookKind;
use hft_connector::protocol::{Category, Level, Side};
use hft_connector::service::state::LogEvent;
use hft_connector::service::{FeedKey, ServiceState};
use hft_connector::store::{CandleSource, Store, StoredCandle};
use rust_decimal::Decimal;

fn key(category: Category, symbol: &str) -> FeedKey {
    FeedKey {
        category,
        symbol: symbol.to_string(),
    }
}

fn log(state: &ServiceState, level: &str, event: &str, k: &FeedKey, detail: &str) {
    state.push_event(LogEvent {
        timestamp: iso_time(unix_ms()).unwrap_or_default(),
        level: level.to_string(),
        event: event.to_string(),
        category: Some(k.category),
        symbol: Some(k.symbol.clone()),
        detail: detail.to_string(),
    });
}

/// A deterministic wobble in tenths of a dollar.
fn wobble(i: u64) -> i64 {
    let x = (i as f64 / 17.0).sin() * 300.0 + (i as f64 / 5.0).cos() * 80.0;
    x as i64
}

fn price(tenths: i64) -> Decimal {
    Decimal::new(tenths, 1)
}

fn seed_store(dir: &std::path::Path, k: &FeedKey) -> anyhow::Result<std::path::PathBuf> {
    let mut store = Store::open(dir)?;
    let now = unix_ms();
    let first = now - now % 60_000 - 360 * 60_000;
    let candles: Vec<StoredCandle> = (0..360u64)
        .map(|i| {
            let o = 1_100_000 + wobble(i);
            let c = 1_100_000 + wobble(i + 1);
            let hi = o.max(c) + 15 + (i as i64 % 7) * 4;
            let lo = o.min(c) - 12 - (i as i64 % 5) * 5;
            StoredCandle {
                symbol: k.symbol.clone(),
                category: k.category,
                interval: "1".into(),
                start_ms: first + i * 60_000,
                open: price(o),
                high: price(hi),
                low: price(lo),
                close: price(c),
                volume: Decimal::new(12_345 + (i as i64 % 13) * 1000, 3),
                turnover: Decimal::new(1_358_000 + i as i64, 0),
                source: CandleSource::Backfill,
                confirmed: true,
            }
        })
        .collect();
    store.upsert_candles(&candles)?;
    Ok(store.path().to_path_buf())
}

fn book_of(k: &FeedKey, mid_tenths: i64, u: u64) -> OrderBook {
    let mut book = OrderBook::new(k.symbol.clone(), 50);
    let bids: Vec<Level> = (0..50)
        .map(|i| {
            Level::new(
                price(mid_tenths - 1 - i),
                Decimal::new(100 + (i * 37 + u as i64) % 900, 3),
            )
        })
        .collect();
    let asks: Vec<Level> = (0..50)
        .map(|i| {
            Level::new(
                price(mid_tenths + i),
                Decimal::new(120 + (i * 53 + u as i64) % 800, 3),
            )
        })
        .collect();
    book.apply_levels(BookKind::Snapshot, u, Some(u * 10), unix_ms(), &bids, &asks);
    book
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut seconds: Option<u64> = None;
    let mut token: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()),
            "--token" => token = args.next(),
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }

    let btc = key(Category::Linear, "BTCUSDT");
    let eth = key(Category::Linear, "ETHUSDT");
    let sol = key(Category::Spot, "SOLUSDT");
    let dir = std::env::temp_dir().join(format!("hft-http-sample-{}", std::process::id()));
    let store_path = seed_store(&dir, &btc)?;
    let state = ServiceState::with_store(
        &[btc.clone(), eth.clone(), sol.clone()],
        token,
        Some(store_path),
    );
    // A NATS sink that never connects (nothing listens on port 1): its status line and
    // hft_connector_nats_* metrics are exported like a real one's.
    state.set_nats(hft_connector::sinks::NatsSink::start(
        hft_connector::sinks::NatsSection {
            url: "nats://127.0.0.1:1".into(),
            ..Default::default()
        },
    ));
    state.update_status(&btc, |s| {
        s.backfill.done = 132;
        s.backfill.total = 132;
        s.backfill.state = "done".into();
        // BTCUSDT runs over A/B lines, line b down: the per-line metrics are exported.
        s.lines = ["a", "b"]
            .into_iter()
            .map(|line| hft_connector::lines::LineStatus {
                line: line.into(),
                status: if line == "a" {
                    "connected"
                } else {
                    "disconnected"
                }
                .into(),
                connected: line == "a",
                in_sync: line == "a",
                connects: 1,
                behind_updates: (line == "a").then_some(0),
                ..Default::default()
            })
            .collect();
        true
    });
    state.update_status(&sol, |s| {
        s.status = "connected".into();
        s.process_alive = true;
        s.pid = Some(std::process::id() + 2);
        s.backfill.total = 132;
        s.backfill.state = "running".into();
        true
    });
    log(
        &state,
        "INFO",
        "bybit_connector_backfill_done",
        &btc,
        "132/132 chunks stored",
    );
    log(
        &state,
        "WARN",
        "bybit_connector_malformed_frame",
        &sol,
        "frame text <img src=x onerror=alert(1)> <script>alert('xss')</script> shown as text",
    );

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let app = http::router(state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    let mut u = 1u64;
    let mut trade_id = 0u64;
    let mut eth_phase = String::new();
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs();
        if seconds.is_some_and(|s| elapsed >= s) {
            break;
        }
        u += 1;
        let now = unix_ms();
        let mid = 1_100_000 + wobble(now / 60_000 % 100_000) + (u as i64 % 40) - 20;
        state.set_book(&btc, &book_of(&btc, mid, u));
        state.metrics().record_message("linear", "book");
        state
            .metrics()
            .observe_latency_ns(20_000 + (u % 50) * 9_000);
        trade_id += 1;
        let trade = TradeEvent {
            symbol: btc.symbol.clone(),
            id: format!("t-{trade_id}"),
            price: price(mid),
            qty: Decimal::new(1 + (trade_id as i64 % 20), 3),
            side: if trade_id % 3 == 0 {
                Side::Sell
            } else {
                Side::Buy
            },
            ts_ms: now,
            seq: Some(u * 10),
            block: false,
            category: Some("linear".into()),
            recv_ns: None,
            recovered: false,
        };
        state.push_trade(&btc, &trade);
        state.metrics().record_message("linear", "trade");
        let start = now - now % 60_000;
        state.push_candle(
            Category::Linear,
            KlineEvent {
                symbol: btc.symbol.clone(),
                interval: "1".into(),
                start,
                end: start + 59_999,
                open: price(mid - 5),
                high: price(mid + 10),
                low: price(mid - 12),
                close: price(mid),
                volume: Decimal::new(5, 1),
                turnover: Decimal::new(55_000, 0),
                confirm: false,
                ts_ms: now,
            },
        );
        state.update_status(&btc, |s| {
            s.status = "connected".into();
            s.last_update = iso_time(now);
            s.seconds_since_last_event = Some(0.1);
            s.process_alive = true;
            s.pid = Some(std::process::id() + 1);
            s.messages += 2;
            s.queue_size = u % 4;
            false
        });

        let phase = match elapsed % 40 {
            0..=4 => "connecting",
            5..=24 => "connected",
            25..=34 => "disconnected",
            _ => "down",
        };
        if phase != eth_phase {
            eth_phase = phase.to_string();
            state.update_status(&eth, |s| {
                s.status = phase.into();
                s.process_alive = phase != "down";
                s.pid = (phase != "down").then_some(std::process::id() + 3);
                match phase {
                    "connected" => {
                        s.last_update = iso_time(now);
                        s.seconds_since_last_event = Some(0.0);
                    }
                    "disconnected" => {
                        s.reconnects += 1;
                        s.stale_detections += 1;
                    }
                    "down" => {
                        s.error_count += 4;
                        s.worker_restarts += 1;
                    }
                    _ => {}
                }
                true
            });
            let (level, event) = match phase {
                "connected" => ("INFO", "bybit_connector_connected"),
                "connecting" => ("INFO", "bybit_connector_connecting"),
                "disconnected" => ("WARN", "bybit_connector_stale_connection_detected"),
                _ => ("ERROR", "bybit_connector_worker_crashed"),
            };
            log(
                &state,
                level,
                event,
                &eth,
                &format!("ETHUSDT is now {phase}"),
            );
        }
        if u % 10 == 0 {
            state.update_status(&sol, |s| {
                s.backfill.done = (s.backfill.done + 1).min(s.backfill.total);
                s.last_update = iso_time(now);
                s.seconds_since_last_event = Some(0.4);
                true
            });
            state.metrics().record_message("spot", "trade");
        }
    }
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
