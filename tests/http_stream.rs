//! Tests of the live event stream `GET /api/events` (Server-Sent Events): initial statuses, live
//! delivery, filters, a lagging client told how much it missed and kept going, shutdown, and
//! JSON framing that exchange text cannot break.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use hft_connector::http;
use hft_connector::protocol::Category;
use hft_connector::service::state::LogEvent;
use hft_connector::service::{FeedKey, ServiceState};

fn btc() -> FeedKey {
    FeedKey {
        category: Category::Linear,
        symbol: "BTCUSDT".into(),
    }
}

fn log_event(event: &str, detail: &str) -> LogEvent {
    LogEvent {
        timestamp: "2025-01-01T00:00:00Z".into(),
        level: "INFO".into(),
        event: event.into(),
        category: Some(Category::Linear),
        symbol: Some("BTCUSDT".into()),
        detail: detail.into(),
    }
}

/// An open SSE response body, read event by event.
struct Sse {
    body: Body,
    buf: String,
}

impl Sse {
    async fn open(app: &Router, uri: &str) -> Sse {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        Sse {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next event as (name, JSON data); `None` when the stream ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push(d);
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                assert_eq!(data.len(), 1, "one data line per event: {block:?}");
                return Some((name, serde_json::from_str(data[0]).expect("json data")));
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("an event within 5 s")?
                .expect("body frame");
            if let Ok(data) = frame.into_data() {
                self.buf
                    .push_str(std::str::from_utf8(&data).expect("utf-8"));
            }
        }
    }
}

#[tokio::test]
async fn a_client_gets_statuses_then_live_events() {
    let state = ServiceState::new(&[btc()], None);
    let app = http::router(state.clone());
    let mut sse = Sse::open(&app, "/api/events").await;
    let (name, data) = sse.next().await.expect("initial status");
    assert_eq!(name, "status");
    assert_eq!(data["type"], "status");
    assert_eq!(data["symbol"], "BTCUSDT");
    assert_eq!(data["status"], "connecting");

    state.update_status(&btc(), |s| {
        s.status = "connected".into();
        true
    });
    state.push_event(log_event("bybit_connector_connected", "live"));
    let (name, data) = sse.next().await.expect("status change");
    assert_eq!(
        (name.as_str(), data["status"].as_str()),
        ("status", Some("connected"))
    );
    let (name, data) = sse.next().await.expect("log");
    assert_eq!(name, "log");
    assert_eq!(data["event"], "bybit_connector_connected");
}

#[tokio::test]
async fn filters_select_types_and_feeds() {
    let eth = FeedKey {
        category: Category::Linear,
        symbol: "ETHUSDT".into(),
    };
    let state = ServiceState::new(&[btc(), eth.clone()], None);
    let app = http::router(state.clone());
    let mut sse = Sse::open(&app, "/api/events?types=log&symbol=ethusdt").await;
    state.update_status(&eth, |_| true);
    state.push_event(log_event("for_btc", ""));
    let mut e = log_event("for_eth", "");
    e.symbol = Some("ETHUSDT".into());
    state.push_event(e);
    let (name, data) = sse.next().await.expect("the ETH log only");
    assert_eq!(
        (name.as_str(), data["event"].as_str()),
        ("log", Some("for_eth"))
    );

    let resp = app
        .clone()
        .oneshot(
            Request::get("/api/events?types=status,bogus")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_lagging_client_is_told_and_keeps_going() {
    let state = ServiceState::new(&[btc()], None);
    let app = http::router(state.clone());
    let mut sse = Sse::open(&app, "/api/events?types=status,log").await;
    // Far more than the broadcast buffer (4096) before the client reads anything.
    for i in 0..5_000 {
        state.push_event(log_event(&format!("e{i}"), ""));
    }
    let (name, _) = sse.next().await.expect("initial status");
    assert_eq!(name, "status");
    let (name, data) = sse.next().await.expect("lag notice");
    assert_eq!(name, "lagged");
    assert_eq!(data["type"], "lagged");
    let missed = data["missed"].as_u64().expect("missed");
    assert!(missed >= 5_000 - 4_096, "missed {missed}");
    let (name, data) = sse.next().await.expect("stream goes on");
    assert_eq!(name, "log");
    assert_eq!(
        data["event"],
        format!("e{missed}"),
        "the oldest event still buffered"
    );
    state.push_event(log_event("after", ""));
    let mut last = None;
    for _ in 0..5_000 {
        let (_, data) = sse.next().await.expect("event");
        if data["event"] == "after" {
            last = Some(data);
            break;
        }
    }
    assert!(last.is_some(), "new events still arrive after the lag");
}

#[tokio::test]
async fn streams_end_on_shutdown() {
    let state = ServiceState::new(&[btc()], None);
    let shutdown = CancellationToken::new();
    let app = http::router_with(state, shutdown.clone(), Router::new());
    let mut sse = Sse::open(&app, "/api/events").await;
    assert!(sse.next().await.is_some());
    shutdown.cancel();
    assert!(sse.next().await.is_none(), "the stream ends");
}

#[tokio::test]
async fn exchange_text_cannot_break_the_event_framing() {
    let state = ServiceState::new(&[btc()], None);
    let app = http::router(state.clone());
    let mut sse = Sse::open(&app, "/api/events?types=log").await;
    let nasty = "line1\n\nevent: status\ndata: {\"forged\":true}\r\n<script>alert(1)</script>";
    state.push_event(log_event("bybit_connector_malformed_frame", nasty));
    let (name, data) = sse.next().await.expect("log");
    assert_eq!(name, "log");
    assert_eq!(data["detail"], nasty, "delivered intact as one JSON string");
}

#[tokio::test]
async fn event_stream_clients_are_capped_and_a_closed_one_frees_its_slot() {
    let state = ServiceState::new(&[btc()], None);
    let app = http::router(state);
    let mut open = Vec::new();
    for _ in 0..http::MAX_SSE_CLIENTS {
        open.push(Sse::open(&app, "/api/events").await);
    }
    let refused = app
        .clone()
        .oneshot(
            Request::get("/api/events")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = refused
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json: Value = serde_json::from_slice(&body).expect("json error");
    assert_eq!(json["code"], "too_many_clients", "{json}");
    // A client that goes away gives its slot back.
    drop(open.pop());
    let mut again = Sse::open(&app, "/api/events").await;
    assert_eq!(
        again.next().await.map(|(name, _)| name).as_deref(),
        Some("status")
    );
}
