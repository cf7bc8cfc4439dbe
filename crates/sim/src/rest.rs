//! REST market endpoints in Bybit's envelope (`retCode` 10001 with HTTP 200 for bad parameters):
//! `kline`, `recent-trade`, `orderbook`, `instruments-info`, `time`, behind the IP limit and the
//! `rest_error` fault.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::core::Core;
use super::instruments;
use super::listener::PeerAddr;
use super::server::{wall_ms, Shared};
use super::stats::Stats;
use super::tape;
use crate::protocol::topic::valid_interval;
use crate::protocol::Category;

type Params = Query<HashMap<String, String>>;

/// A bad parameter: answered `retCode` 10001 with this message.
struct Bad(String);

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(Bad(msg)) => return err(10001, &msg),
        }
    };
}

/// The REST routes, with the IP limit and `rest_error` in front of them.
pub fn routes(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/v5/market/kline", get(kline))
        .route("/v5/market/recent-trade", get(recent_trade))
        .route("/v5/market/orderbook", get(orderbook))
        .route("/v5/market/instruments-info", get(instruments_info))
        .route("/v5/market/time", get(server_time))
        .layer(middleware::from_fn_with_state(shared, guard))
}

async fn guard(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    req: Request,
    next: Next,
) -> Response {
    Stats::add(&shared.stats.rest_requests, 1);
    let allowed = shared
        .limiter
        .lock()
        .map(|mut l| l.allow(peer.0.ip(), Instant::now()))
        .unwrap_or(true);
    if !allowed {
        Stats::add(&shared.stats.rest_rate_limited, 1);
        return (StatusCode::FORBIDDEN, "access too frequent").into_response();
    }
    if shared.blackhole_left().is_some() {
        // The exchange stopped answering: held until the fault ends.
        let _held = shared.stats.held(req.uri().path());
        shared.hold_while_blackholed().await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    if let Some((status, hang)) = shared.with_global(|g| g.take_rest_error()) {
        Stats::add(&shared.stats.rest_faulted, 1);
        if status == 0 {
            let _held = shared.stats.held(req.uri().path());
            tokio::select! {
                _ = shared.cancel.cancelled() => {}
                _ = tokio::time::sleep(hang) => {}
            }
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match status {
            403 => "access too frequent",
            _ => code.canonical_reason().unwrap_or("error"),
        };
        return (code, body).into_response();
    }
    next.run(req).await
}

/// Bybit's response envelope, fields in Bybit's order.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    #[serde(rename = "retCode")]
    ret_code: i64,
    #[serde(rename = "retMsg")]
    ret_msg: &'a str,
    result: Value,
    #[serde(rename = "retExtInfo")]
    ret_ext_info: Value,
    time: u64,
}

/// A successful answer.
pub fn ok(result: Value) -> Response {
    Json(Envelope {
        ret_code: 0,
        ret_msg: "OK",
        result,
        ret_ext_info: json!({}),
        time: wall_ms(),
    })
    .into_response()
}

/// A refusal: HTTP 200 with `retCode != 0`, as Bybit answers bad parameters.
pub fn err(code: i64, msg: &str) -> Response {
    Json(Envelope {
        ret_code: code,
        ret_msg: msg,
        result: json!({}),
        ret_ext_info: json!({}),
        time: wall_ms(),
    })
    .into_response()
}

fn category(
    shared: &Shared,
    p: &HashMap<String, String>,
    default: Option<Category>,
) -> Result<Category, Bad> {
    let c = match p.get("category") {
        Some(c) => c.parse::<Category>().ok(),
        None => default,
    };
    match c {
        Some(c) if shared.cfg.categories.contains(&c) => Ok(c),
        _ => Err(Bad("Illegal category".into())),
    }
}

fn instrument(core: &Core, category: Category, p: &HashMap<String, String>) -> Result<u16, Bad> {
    let Some(symbol) = p.get("symbol") else {
        return Err(Bad("params error: symbol is required".into()));
    };
    core.find(category, symbol)
        .ok_or_else(|| Bad("The requested symbol is invalid.".into()))
}

fn number(p: &HashMap<String, String>, name: &str) -> Result<Option<u64>, Bad> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Bad(format!("params error: {name} invalid"))),
    }
}

fn limit(p: &HashMap<String, String>, default: u64, max: u64) -> Result<usize, Bad> {
    match number(p, "limit")? {
        None => Ok(default as usize),
        Some(0) => Err(Bad("params error: limit must be at least 1".into())),
        Some(n) => Ok(n.min(max) as usize),
    }
}

async fn kline(State(shared): State<Arc<Shared>>, Query(p): Params) -> Response {
    let cat = tri!(category(&shared, &p, Some(Category::Linear)));
    let interval = match p.get("interval") {
        Some(i) if valid_interval(i) => i.clone(),
        _ => return err(10001, "params error: interval invalid"),
    };
    let limit = tri!(limit(&p, 200, 1000));
    let start = tri!(number(&p, "start"));
    let end = tri!(number(&p, "end"));
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return err(10001, "params error: start must not be after end");
        }
    }
    let mut core = shared.lock_core();
    let id = tri!(instrument(&core, cat, &p));
    let now = wall_ms();
    let st = &mut core.insts[usize::from(id)];
    let last = st.tape.last_close().unwrap_or(st.inst.start_ticks);
    st.tape.advance_to(now, last);
    let mut bars = match (start, end) {
        (Some(s), None) => {
            let mut b = st
                .tape
                .bars(&interval, s, tape::bucket_start(&interval, now));
            b.truncate(limit);
            b
        }
        _ => {
            let e = end.unwrap_or(now);
            let lo = tape::buckets_back(&interval, e, limit as u64 - 1).max(start.unwrap_or(0));
            st.tape
                .bars(&interval, lo, tape::bucket_start(&interval, e))
        }
    };
    bars.reverse();
    let inst = &st.inst;
    let list: Vec<Value> = bars
        .iter()
        .map(|b| {
            json!([
                b.start.to_string(),
                inst.price_text(b.open),
                inst.price_text(b.high),
                inst.price_text(b.low),
                inst.price_text(b.close),
                b.volume.to_string(),
                b.turnover.to_string()
            ])
        })
        .collect();
    ok(json!({"symbol": inst.symbol, "category": cat.as_str(), "list": list}))
}

async fn recent_trade(State(shared): State<Arc<Shared>>, Query(p): Params) -> Response {
    let cat = tri!(category(&shared, &p, None));
    let max = cat.max_recent_trades() as u64;
    let default = if cat == Category::Spot { 60 } else { 500 };
    let limit = tri!(limit(&p, default, max));
    let core = shared.lock_core();
    let id = tri!(instrument(&core, cat, &p));
    let st = &core.insts[usize::from(id)];
    let list: Vec<Value> = st
        .tape
        .recent(limit)
        .map(|t| {
            json!({
                "execId": t.id,
                "symbol": st.inst.symbol,
                "price": st.inst.price_text(t.price),
                "size": st.inst.qty_text(t.lots),
                "side": t.side.as_bybit(),
                "time": t.ts_ms.to_string(),
                "isBlockTrade": false,
                "isRPITrade": false,
                "seq": t.seq.to_string(),
            })
        })
        .collect();
    ok(json!({"category": cat.as_str(), "list": list}))
}

async fn orderbook(State(shared): State<Arc<Shared>>, Query(p): Params) -> Response {
    let cat = tri!(category(&shared, &p, None));
    let default = if cat == Category::Spot { 1 } else { 25 };
    let limit = tri!(limit(&p, default, 1000));
    let core = shared.lock_core();
    let id = tri!(instrument(&core, cat, &p));
    let book = core.true_book(id, 1000);
    let side = |levels: &[(rust_decimal::Decimal, rust_decimal::Decimal)]| -> Vec<Value> {
        levels
            .iter()
            .take(limit)
            .map(|(p, q)| json!([p.to_string(), q.to_string()]))
            .collect()
    };
    ok(json!({
        "s": book.symbol,
        "b": side(&book.bids),
        "a": side(&book.asks),
        "ts": wall_ms(),
        "u": book.u,
        "seq": book.seq,
        "cts": book.ts_ms,
    }))
}

async fn instruments_info(State(shared): State<Arc<Shared>>, Query(p): Params) -> Response {
    let cat = tri!(category(&shared, &p, None));
    let limit = tri!(limit(&p, 500, 1000));
    let core = shared.lock_core();
    let all: Vec<_> = core
        .insts
        .iter()
        .filter(|s| s.inst.category == cat)
        .filter(|s| p.get("symbol").is_none_or(|want| *want == s.inst.symbol))
        .map(|s| &s.inst)
        .collect();
    if cat == Category::Spot {
        // Spot has no pagination: `limit` and `cursor` are ignored.
        let list: Vec<Value> = all.iter().map(|i| instruments::spot_json(i)).collect();
        return ok(json!({"category": "spot", "list": list}));
    }
    let from = match p.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => match instruments::cursor_last(c)
            .and_then(|last| all.iter().position(|i| i.symbol == last))
        {
            Some(i) => i + 1,
            None => return err(10001, "params error: cursor invalid"),
        },
    };
    let page: Vec<_> = all.iter().skip(from).take(limit).collect();
    let next = if from + page.len() < all.len() {
        match (page.first(), page.last()) {
            (Some(f), Some(l)) => format!("first%3D{}%26last%3D{}", f.symbol, l.symbol),
            _ => String::new(),
        }
    } else {
        String::new()
    };
    let list: Vec<Value> = page.iter().map(|i| instruments::futures_json(i)).collect();
    ok(json!({"category": cat.as_str(), "list": list, "nextPageCursor": next}))
}

async fn server_time() -> Response {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    ok(json!({
        "timeSecond": (nanos / 1_000_000_000).to_string(),
        "timeNano": nanos.to_string(),
    }))
}
