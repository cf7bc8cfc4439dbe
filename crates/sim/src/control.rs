//! The simulator's own HTTP routes: `POST /sim/fault`, `GET /sim/journal`, `GET /sim/book`,
//! `GET /sim/stats`, and market control (`POST /sim/pause`, `/sim/resume`, `/sim/step?n=`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::core::DEPTHS;
use super::fault::{self, FaultRequest};
use super::journal::JournalQuery;
use super::server::Shared;
use crate::protocol::Category;

/// The `/sim/*` routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sim/fault", post(inject))
        .route("/sim/journal", get(journal))
        .route("/sim/book", get(book))
        .route("/sim/stats", get(stats))
        .route("/sim/pause", post(pause))
        .route("/sim/resume", post(resume))
        .route("/sim/step", post(step))
}

fn bad(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": msg})),
    )
        .into_response()
}

async fn inject(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let req: FaultRequest = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid fault request: {e}")),
    };
    let report = fault::apply(&shared, &req);
    let status = if report.applied {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, Json(report)).into_response()
}

async fn journal(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let since_ms = match p.get("since_ms").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return bad("since_ms must be an integer (ms)".into()),
    };
    let depth = match p.get("depth").map(|s| s.parse::<u16>()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return bad("depth must be an integer".into()),
    };
    let kind = p.get("type").or_else(|| p.get("kind")).map(String::as_str);
    if let Some(k) = kind {
        if k != "trade" && k != "book" {
            return bad(format!("type must be trade or book, got {k:?}"));
        }
    }
    let q = JournalQuery {
        symbol: p.get("symbol").map(String::as_str),
        kind,
        since_ms,
        category: p.get("category").map(String::as_str),
        depth,
    };
    let events = shared.lock_core().journal.query(&q);
    Json(events).into_response()
}

async fn book(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let category = match p.get("category").map(|c| c.parse::<Category>()) {
        None => Category::Linear,
        Some(Ok(c)) => c,
        Some(Err(e)) => return bad(e),
    };
    let depth = match p.get("depth").map(|d| d.parse::<u16>()) {
        None => 50,
        Some(Ok(d)) if DEPTHS.contains(&d) => d,
        _ => return bad(format!("depth must be one of {DEPTHS:?}")),
    };
    let Some(symbol) = p.get("symbol") else {
        return bad("symbol is required".into());
    };
    let core = shared.lock_core();
    match core.find(category, symbol) {
        Some(id) => Json(core.true_book(id, depth)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no {symbol} in {category}")})),
        )
            .into_response(),
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.stats.snapshot()).into_response()
}

async fn pause(State(shared): State<Arc<Shared>>) -> Response {
    shared.paused.store(true, Ordering::Release);
    StatusCode::NO_CONTENT.into_response()
}

async fn resume(State(shared): State<Arc<Shared>>) -> Response {
    shared.paused.store(false, Ordering::Release);
    StatusCode::NO_CONTENT.into_response()
}

async fn step(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let n = match p.get("n").map(|n| n.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n <= 1_000_000 => n,
        _ => return bad("n must be an integer up to 1000000".into()),
    };
    let frames = super::clock::steps(&shared, n);
    Json(serde_json::json!({"steps": n, "frames": frames})).into_response()
}
