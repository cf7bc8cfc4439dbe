//! Helpers shared by the HTTP route tests: a sample service state with feeds, a book and trades,
//! and one-shot requests against the router.

#![allow(dead_code)]

use std::str::FromStr;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rust_decimal::Decimal;
use serde_json::Value;
use tower::ServiceExt;

use hft_connector::book::OrderBook;
use hft_connector::normalized::TradeEvent;
use hft_connector::protocol::ws::BookKind;
use hft_connector::protocol::{Category, Level, Side};
use hft_connector::service::{FeedKey, ServiceState};

pub fn key(category: Category, symbol: &str) -> FeedKey {
    FeedKey {
        category,
        symbol: symbol.to_string(),
    }
}

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

pub async fn get(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    send(app, Request::get(uri).body(Body::empty()).expect("request")).await
}

pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

pub async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, headers, body) = get(app, uri).await;
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/json",
        "{uri} answers JSON"
    );
    (status, serde_json::from_str(&body).expect("json body"))
}

pub fn trade(symbol: &str, id: u64, ts_ms: u64) -> TradeEvent {
    TradeEvent {
        symbol: symbol.to_string(),
        id: format!("t{id}"),
        price: d("115440.70"),
        qty: d("0.020"),
        side: if id % 2 == 0 { Side::Buy } else { Side::Sell },
        ts_ms,
        seq: Some(id * 10),
        block: false,
        category: Some("linear".into()),
        recv_ns: None,
        recovered: false,
    }
}

/// BTCUSDT (linear, connected, with a book and trades), ETHUSDT (linear, connecting), BTCUSDT
/// spot (no book).
pub fn sample_state(token: Option<&str>, store: Option<std::path::PathBuf>) -> ServiceState {
    let btc = key(Category::Linear, "BTCUSDT");
    let keys = [
        btc.clone(),
        key(Category::Linear, "ETHUSDT"),
        key(Category::Spot, "BTCUSDT"),
    ];
    let state = ServiceState::with_store(&keys, token.map(str::to_string), store);
    for k in &keys {
        state.update_status(k, |s| {
            s.status = "connected".into();
            s.process_alive = true;
            s.seconds_since_last_event = Some(0.2);
            true
        });
    }
    let mut book = OrderBook::new("BTCUSDT", 50);
    let bids = [
        Level::new(d("115440.7"), d("0.020")),
        Level::new(d("115440.5"), d("1.500")),
        Level::new(d("115439.0"), d("3")),
    ];
    let asks = [
        Level::new(d("115440.8"), d("0.100")),
        Level::new(d("115441.0"), d("2.25")),
    ];
    book.apply_levels(
        BookKind::Snapshot,
        77,
        Some(990),
        1_700_000_000_000,
        &bids,
        &asks,
    );
    state.set_book(&btc, &book);
    for i in 0..10 {
        state.push_trade(&btc, &trade("BTCUSDT", i, 1_000 + i * 100));
    }
    state
}
