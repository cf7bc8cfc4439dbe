//! Route tests of the HTTP API (`hft_connector::http::router`) with `tower::ServiceExt::oneshot`:
//! health, status contract, book, trades, candles (store), recent events and JSON errors.
//! (Token guard, metrics, dashboard and escaping: `http_surface.rs`.)

mod http_common;

use http_common::*;

use axum::http::StatusCode;

use hft_connector::http;
use hft_connector::protocol::Category;
use hft_connector::service::state::LogEvent;
use hft_connector::store::{CandleSource, Store, StoredCandle, StoredTrade};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hft-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn health_is_200_only_when_every_feed_is_connected() {
    let state = sample_state(None, None);
    let app = http::router(state.clone());
    let (status, body) = get_json(&app, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["not_connected"], serde_json::json!([]));

    state.update_status(&key(Category::Linear, "ETHUSDT"), |s| {
        s.status = "disconnected".into();
        s.seconds_since_last_event = Some(42.5);
        true
    });
    let (status, body) = get_json(&app, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["connected"], 2);
    let bad = &body["not_connected"][0];
    assert_eq!(bad["symbol"], "ETHUSDT");
    assert_eq!(bad["category"], "linear");
    assert_eq!(bad["status"], "disconnected");
    assert_eq!(bad["seconds_since_last_event"], 42.5);
    assert!(bad["reason"]
        .as_str()
        .expect("reason")
        .contains("42.5 s ago"));
}

#[tokio::test]
async fn status_keeps_the_field_contract() {
    let state = sample_state(None, None);
    state.update_status(&key(Category::Linear, "ETHUSDT"), |s| {
        s.status = "down".into();
        s.pid = Some(4242);
        s.backfill.done = 3;
        s.backfill.total = 132;
        s.backfill.state = "running".into();
        true
    });
    let (status, body) = get_json(&http::router(state), "/api/status").await;
    assert_eq!(status, StatusCode::OK);
    let feeds = body["feeds"].as_array().expect("feeds");
    assert_eq!(feeds.len(), 3);
    for f in feeds {
        for field in [
            "symbol",
            "category",
            "status",
            "last_update",
            "seconds_since_last_event",
            "process_alive",
            "pid",
            "queue_size",
            "error_count",
            "reconnects",
            "backfill",
        ] {
            assert!(f.get(field).is_some(), "feed lacks {field}: {f}");
        }
        for field in ["done", "total", "state"] {
            assert!(f["backfill"].get(field).is_some(), "backfill lacks {field}");
        }
    }
    let eth = feeds
        .iter()
        .find(|f| f["symbol"] == "ETHUSDT")
        .expect("ETHUSDT");
    assert_eq!(eth["status"], "down");
    assert_eq!(eth["pid"], 4242);
    assert_eq!(
        eth["backfill"],
        serde_json::json!({"done": 3, "total": 132, "state": "running"})
    );
    assert_eq!(body["summary"]["down"], 1);
    assert_eq!(body["summary"]["connected"], 2);
    assert_eq!(body["summary"]["connecting"], 0);
    assert_eq!(body["healthy"], false);
}

#[tokio::test]
async fn book_returns_exact_top_levels_and_clear_errors() {
    let app = http::router(sample_state(None, None));
    let (status, b) = get_json(&app, "/api/book/BTCUSDT?category=linear&top=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b["u"], 77);
    assert_eq!(b["seq"], 990);
    assert_eq!(b["top"], 2);
    assert_eq!(b["depth"], 50, "the book's depth, one meaning");
    assert_eq!(
        b["bids"],
        serde_json::json!([["115440.7", "0.020"], ["115440.5", "1.500"]])
    );
    assert_eq!(
        b["asks"],
        serde_json::json!([["115440.8", "0.100"], ["115441.0", "2.25"]])
    );
    assert_eq!(b["best_bid"], serde_json::json!(["115440.7", "0.020"]));
    assert_eq!(b["best_ask"], serde_json::json!(["115440.8", "0.100"]));
    assert_eq!(b["spread"], "0.1");
    assert_eq!(b["levels"], serde_json::json!([3, 2]));

    // Lower-case symbol and category are accepted.
    let (status, _) = get_json(&app, "/api/book/btcusdt?category=LINEAR").await;
    assert_eq!(status, StatusCode::OK);

    let cases = [
        (
            "/api/book/XRPUSDT?category=linear",
            404,
            "unknown_feed",
            "XRPUSDT",
        ),
        (
            "/api/book/ETHUSDT?category=spot",
            404,
            "unknown_feed",
            "category spot",
        ),
        (
            "/api/book/BTCUSDT?category=futures",
            400,
            "bad_request",
            "futures",
        ),
        ("/api/book/BTCUSDT", 400, "bad_request", "add ?category="),
        (
            "/api/book/BTCUSDT?category=linear&top=0",
            400,
            "bad_request",
            "top",
        ),
        (
            "/api/book/BTCUSDT?category=linear&top=x",
            400,
            "bad_request",
            "top",
        ),
        (
            "/api/book/BTCUSDT?category=linear&depth=2",
            400,
            "bad_request",
            "top=N",
        ),
        ("/api/book", 404, "not_found", "GET /api/book/{symbol}"),
        (
            "/api/book/BTCUSDT?category=linear&top=5000",
            400,
            "bad_request",
            "1 to 1000",
        ),
        (
            "/api/book/BTCUSDT?category=spot",
            503,
            "no_book",
            "snapshot",
        ),
    ];
    for (uri, code, kind, needle) in cases {
        let (status, body) = get_json(&app, uri).await;
        assert_eq!(status.as_u16(), code, "{uri}: {body}");
        assert_eq!(body["code"], kind, "{uri}");
        let msg = body["error"].as_str().expect("error message");
        assert!(
            msg.contains(needle),
            "{uri}: {msg:?} should mention {needle:?}"
        );
    }
}

#[tokio::test]
async fn trades_use_the_normalized_schema_with_a_bounded_limit() {
    let app = http::router(sample_state(None, None));
    let (status, b) = get_json(&app, "/api/trades/BTCUSDT?category=linear&limit=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b["count"], 3);
    let ids: Vec<&str> = b["trades"]
        .as_array()
        .expect("trades")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["t7", "t8", "t9"], "the newest, oldest first");
    let t = &b["trades"][0];
    assert_eq!(t["price"], "115440.70");
    assert_eq!(t["qty"], "0.020");
    assert_eq!(t["side"], "sell");
    assert_eq!(t["ts_ms"], 1_700);
    assert_eq!(t["seq"], 70);
    assert_eq!(t["symbol"], "BTCUSDT");

    let (_, b) = get_json(
        &app,
        "/api/trades/BTCUSDT?category=linear&since_ms=1500&limit=2",
    )
    .await;
    let ids: Vec<&str> = b["trades"]
        .as_array()
        .expect("trades")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["t5", "t6"], "since_ms pages forward from that time");

    for uri in [
        "/api/trades/BTCUSDT?category=linear&limit=0",
        "/api/trades/BTCUSDT?category=linear&limit=100000",
        "/api/trades/BTCUSDT?category=linear&since_ms=-5",
    ] {
        let (status, body) = get_json(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    let (status, _) = get_json(&app, "/api/trades/NOPE?category=linear").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn trades_older_than_memory_come_from_the_store() {
    let dir = temp_dir("trades");
    let mut store = Store::open(&dir).expect("store");
    let old: Vec<StoredTrade> = (0..5)
        .map(|i| StoredTrade::from_event(&trade("BTCUSDT", 100 + i, 10 + i), Category::Linear))
        .collect();
    store.insert_trades(&old).expect("insert");
    let app = http::router(sample_state(None, Some(store.path().to_path_buf())));
    let (status, b) = get_json(
        &app,
        "/api/trades/BTCUSDT?category=linear&since_ms=12&limit=5",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["source"], "store");
    let ids: Vec<&str> = b["trades"]
        .as_array()
        .expect("trades")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["t102", "t103", "t104", "t0", "t1"],
        "store, then memory"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn minute(i: u64, close: &str, source: CandleSource) -> StoredCandle {
    StoredCandle {
        symbol: "BTCUSDT".into(),
        category: Category::Linear,
        interval: "1".into(),
        start_ms: 1_700_000_400_000 + i * 60_000, // a 5-minute boundary
        open: d("100.0"),
        high: d(&format!("{}.5", 100 + i)),
        low: d("99.25"),
        close: d(close),
        volume: d("1.001"),
        turnover: d("100.1"),
        source,
        confirmed: true,
    }
}

#[tokio::test]
async fn candles_come_from_the_store_ascending_with_aliases_and_aggregation() {
    let dir = temp_dir("candles");
    let mut store = Store::open(&dir).expect("store");
    let candles: Vec<StoredCandle> = (0..7)
        .map(|i| {
            let src = if i == 6 {
                CandleSource::Live
            } else {
                CandleSource::Backfill
            };
            minute(i, &format!("10{i}.0"), src)
        })
        .collect();
    store.upsert_candles(&candles).expect("upsert");
    let base = candles[0].start_ms;
    let app = http::router(sample_state(None, Some(store.path().to_path_buf())));
    let range = format!("from={base}&to={}", base + 3_600_000);

    let (status, a) = get_json(
        &app,
        &format!("/api/candles/BTCUSDT?category=linear&interval=1m&{range}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["count"], 7);
    assert_eq!(a["interval"], "1");
    let starts: Vec<u64> = a["candles"]
        .as_array()
        .expect("candles")
        .iter()
        .map(|c| c["start_ms"].as_u64().expect("start"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "ascending");
    assert_eq!(a["candles"][0]["high"], "100.5", "exact strings");
    let (_, bybit) = get_json(
        &app,
        &format!("/api/candles/BTCUSDT?category=linear&interval=1&{range}"),
    )
    .await;
    assert_eq!(
        a["candles"], bybit["candles"],
        "1m and 1 are the same interval"
    );

    let (status, five) = get_json(
        &app,
        &format!("/api/candles/BTCUSDT?category=linear&interval=5m&{range}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(five["derived_from"], "1");
    assert_eq!(five["interval_ms"], 300_000);
    let c0 = &five["candles"][0];
    assert_eq!(c0["start_ms"], base);
    assert_eq!(c0["open"], "100.0");
    assert_eq!(c0["high"], "104.5");
    assert_eq!(c0["low"], "99.25");
    assert_eq!(c0["close"], "104.0");
    assert_eq!(c0["volume"], "5.005", "exact sums");
    assert_eq!(c0["confirmed"], true);
    assert_eq!(c0["source"], "backfill");
    let c1 = &five["candles"][1];
    assert_eq!(c1["confirmed"], false, "2 of 5 minutes only");
    assert_eq!(c1["source"], "live");

    for iv in ["1h", "60", "4h", "1d", "D", "15m"] {
        let (status, b) = get_json(
            &app,
            &format!("/api/candles/BTCUSDT?category=linear&interval={iv}&{range}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{iv}: {b}");
    }
    let (_, limited) = get_json(
        &app,
        &format!("/api/candles/BTCUSDT?category=linear&interval=1m&limit=2&{range}"),
    )
    .await;
    assert_eq!(limited["truncated"], true);

    let bad = [
        format!("/api/candles/BTCUSDT?category=linear&interval=7m&{range}"),
        format!("/api/candles/BTCUSDT?category=linear&interval=M&{range}"),
        format!("/api/candles/BTCUSDT?category=linear&from={base}&to={base}"),
        "/api/candles/BTCUSDT?category=linear&from=yesterday".to_string(),
        "/api/candles/BTCUSDT?category=linear&limit=999999".to_string(),
    ];
    for uri in bad {
        let (status, body) = get_json(&app, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["code"], "bad_request");
    }
    let (status, body) = get_json(&app, "/api/candles/BTCUSDT?category=linear&interval=7m").await;
    assert!(
        body["error"].as_str().expect("error").contains("1m 3m 5m"),
        "{status} lists the accepted intervals"
    );

    let (status, body) = get_json(
        &http::router(sample_state(None, None)),
        "/api/candles/BTCUSDT?category=linear",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "no_store");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn recent_events_are_newest_first_and_unknown_routes_are_json_404() {
    let state = sample_state(None, None);
    for (i, name) in ["first", "second"].iter().enumerate() {
        state.push_event(LogEvent {
            timestamp: format!("2025-01-01T00:00:0{i}Z"),
            level: "INFO".into(),
            event: format!("bybit_connector_{name}"),
            category: Some(Category::Linear),
            symbol: Some("BTCUSDT".into()),
            detail: String::new(),
        });
    }
    let app = http::router(state);
    let (status, b) = get_json(&app, "/api/events/recent").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b["events"][0]["event"], "bybit_connector_second");
    assert_eq!(b["events"][1]["event"], "bybit_connector_first");
    let (status, b) = get_json(&app, "/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(b["code"], "not_found");
}
