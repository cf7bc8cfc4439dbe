//! Tests of the HTTP surface with `tower::ServiceExt::oneshot`: the bearer-token guard of
//! state-changing routes, Prometheus `/metrics`, the embedded dashboard, and escaping of
//! exchange-sourced text (JSON only, never markup; the dashboard uses textContent).

mod http_common;

use http_common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use hft_connector::http::{self, dashboard};
use hft_connector::protocol::Category;
use hft_connector::service::state::LogEvent;
use hft_connector::service::ServiceState;

async fn action(app: &Router, auth: Option<&str>) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::post("/api/feeds/BTCUSDT/reconnect");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    send(app, req.body(Body::empty()).expect("request")).await
}

fn with_action(state: ServiceState) -> Router {
    let actions = Router::new().route("/api/feeds/{symbol}/reconnect", post(|| async { "done" }));
    http::router_with(state, CancellationToken::new(), actions)
}

#[tokio::test]
async fn state_changing_routes_require_the_configured_token() {
    // No token configured: refused outright.
    let app = with_action(sample_state(None, None));
    let (status, _, body) = action(&app, Some("Bearer anything")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("no token is configured"), "{body}");

    let app = with_action(sample_state(Some("s3cret"), None));
    let (status, headers, _) = action(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("ascii")
        .starts_with("Bearer"));
    for wrong in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "s3cret",
        "Bearer",
    ] {
        let (status, _, _) = action(&app, Some(wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
    for right in ["Bearer s3cret", "bearer s3cret"] {
        let (status, _, body) = action(&app, Some(right)).await;
        assert_eq!(status, StatusCode::OK, "{right:?}");
        assert_eq!(body, "done");
    }
    // Read-only routes need no token.
    let (status, _, _) = get(&app, "/api/status").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_family() {
    let state = sample_state(None, None);
    let odd = key(Category::Linear, "A\"B\\C\nD");
    let state2 = ServiceState::new(std::slice::from_ref(&odd), None);
    state2.metrics().record_message("linear", "trade");
    state2.update_status(&odd, |s| {
        s.reconnects = 3;
        true
    });
    state.metrics().record_message("linear", "trade");
    state.metrics().record_message("linear", "trade");
    state.metrics().record_message("linear", "book");
    state.metrics().observe_latency_ns(30_000);
    state.metrics().observe_latency_ns(2_000_000);
    let (status, headers, text) = get(&http::router(state), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    for family in [
        "feed_status",
        "feed_up",
        "feed_reconnects_total",
        "feed_stale_detections_total",
        "feed_worker_restarts_total",
        "feed_errors_total",
        "messages_total",
        "feed_queue_size",
        "feed_seconds_since_last_event",
        "backfill_chunks_done",
        "backfill_chunks_planned",
        "delivery_latency_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP hft_connector_{family} ")),
            "HELP {family}"
        );
        assert!(
            text.contains(&format!("# TYPE hft_connector_{family} ")),
            "TYPE {family}"
        );
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("hft_connector_"), "{line}");
        let value = line.rsplit(' ').next().expect("value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(text.contains(
        r#"hft_connector_feed_status{category="linear",symbol="BTCUSDT",status="connected"} 1"#
    ));
    assert!(text.contains(
        r#"hft_connector_feed_status{category="linear",symbol="BTCUSDT",status="down"} 0"#
    ));
    assert!(text.contains(r#"hft_connector_messages_total{category="linear",type="trade"} 2"#));
    assert!(text.contains(r#"hft_connector_delivery_latency_seconds_bucket{le="0.00005"} 1"#));
    assert!(text.contains(r#"hft_connector_delivery_latency_seconds_bucket{le="0.0025"} 2"#));
    assert!(text.contains(r#"hft_connector_delivery_latency_seconds_bucket{le="+Inf"} 2"#));
    assert!(text.contains("hft_connector_delivery_latency_seconds_count 2"));

    let (_, _, odd_text) = get(&http::router(state2), "/metrics").await;
    assert!(
        odd_text.contains(
            r#"hft_connector_feed_reconnects_total{category="linear",symbol="A\"B\\C\nD"} 3"#
        ),
        "label values escaped:\n{odd_text}"
    );
}

#[tokio::test]
async fn dashboard_is_embedded_and_renders_data_as_text_only() {
    let app = http::router(sample_state(None, None));
    let (status, headers, html) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let csp = headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(html.contains("/assets/dashboard.js") && html.contains("/assets/dashboard.css"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    let (status, headers, js) = get(&app, "/assets/dashboard.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("text/javascript"));
    assert_eq!(js, dashboard::DASHBOARD_JS);
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ] {
        assert!(!js.contains(sink), "the dashboard must not use {sink}");
    }
    assert!(js.contains("textContent"));
    // The script's modules are served too, each under 500 lines, with the same rules.
    for (path, body) in [
        ("/assets/dashboard-chart.js", dashboard::CHART_JS),
        ("/assets/dashboard-events.js", dashboard::EVENTS_JS),
        ("/assets/dashboard-book.js", dashboard::BOOK_JS),
        ("/assets/record.js", dashboard::RECORD_JS),
    ] {
        assert!(html.contains(path), "{path} loaded by the page");
        let (status, _, served) = get(&app, path).await;
        assert_eq!((status, served.as_str()), (StatusCode::OK, body), "{path}");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "new Function",
        ] {
            assert!(!body.contains(sink), "{path} must not use {sink}");
        }
    }
    for module in [
        dashboard::DASHBOARD_JS,
        dashboard::CHART_JS,
        dashboard::EVENTS_JS,
        dashboard::BOOK_JS,
        dashboard::RECORD_JS,
    ] {
        assert!(module.lines().count() <= 500);
    }
    assert!(
        dashboard::EVENTS_JS.contains("all symbols"),
        "every event row names its feed"
    );
    assert!(
        js.contains("as of"),
        "a feed not Connected shows its book as history"
    );
    for needle in [
        "Connected",
        "Disconnected",
        "Down",
        "Connecting",
        "/api/events",
        "/api/status",
        "/api/candles/",
        "/api/book/",
    ] {
        assert!(js.contains(needle), "dashboard.js handles {needle}");
    }
    let (status, _, _) = get(&app, "/assets/dashboard.css").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn exchange_text_is_json_escaped_never_markup() {
    let evil = "<SCRIPT>ALERT(1)</SCRIPT>";
    let k = key(Category::Linear, evil);
    let state = ServiceState::new(std::slice::from_ref(&k), None);
    state.push_event(LogEvent {
        timestamp: "2025-01-01T00:00:00Z".into(),
        level: "WARN".into(),
        event: "bybit_connector_malformed_frame".into(),
        category: Some(Category::Linear),
        symbol: Some(evil.into()),
        detail: "<img src=x onerror=alert(1)>\"quoted\"".into(),
    });
    let app = http::router(state);
    let (_, headers, raw) = get(&app, "/api/status").await;
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let v: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(
        v["feeds"][0]["symbol"], evil,
        "round-trips as a JSON string"
    );
    let (_, v) = get_json(&app, "/api/events/recent").await;
    assert_eq!(
        v["events"][0]["detail"],
        "<img src=x onerror=alert(1)>\"quoted\""
    );
    // The path is percent-decoded, resolved, and echoed only inside JSON strings.
    let (status, v) = get_json(
        &app,
        "/api/book/%3Cscript%3Ealert(1)%3C%2Fscript%3E?category=linear",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the feed exists but has no book: {v}"
    );
    let (status, v) = get_json(&app, "/api/book/%3Cb%3E?category=linear").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().expect("error").contains("<B>"));
}

#[tokio::test]
async fn dropped_store_writes_are_a_counter_in_metrics() {
    let state = ServiceState::new(&[key(Category::Linear, "BTCUSDT")], None);
    let app = http::router(state.clone());
    let (_, _, body) = get(&app, "/metrics").await;
    assert!(
        !body.contains("store_dropped_batches_total"),
        "no store, no family"
    );
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    state.set_store_dropped(dropped.clone());
    dropped.store(3, std::sync::atomic::Ordering::Relaxed);
    let (status, _, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("# TYPE hft_connector_store_dropped_batches_total counter"),
        "{body}"
    );
    assert!(
        body.contains("\nhft_connector_store_dropped_batches_total 3\n"),
        "{body}"
    );
}
