//! The exact text of every frame the simulator sends, per category: trades, book snapshots and
//! deltas, klines, acks, refusals and pongs. Written straight into a `String` (no `Value`), once per
//! frame, whatever the number of subscribers.

use std::fmt::Write;

use super::instrument::Instrument;
use super::tape::{Bar, SimTrade};
use crate::protocol::{Category, Side};

/// `publicTrade.{symbol}`: spot puts `ts` before `type`, has numeric ids and no `L`.
pub fn trades(inst: &Instrument, ts_ms: u64, trades: &[SimTrade]) -> String {
    let mut s = String::with_capacity(96 + trades.len() * 170);
    let spot = inst.category == Category::Spot;
    let _ = write!(s, r#"{{"topic":"publicTrade.{}","#, inst.symbol);
    if spot {
        let _ = write!(s, r#""ts":{ts_ms},"type":"snapshot","data":["#);
    } else {
        let _ = write!(s, r#""type":"snapshot","ts":{ts_ms},"data":["#);
    }
    for (n, t) in trades.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        let side = side_text(t.side);
        if spot {
            let _ = write!(s, r#"{{"i":"{}","T":{},"p":""#, t.id, t.ts_ms);
            inst.write_price(&mut s, t.price);
            s.push_str(r#"","v":""#);
            inst.write_qty(&mut s, t.lots);
            let _ = write!(
                s,
                r#"","S":"{side}","seq":{},"s":"{}","BT":false,"RPI":false}}"#,
                t.seq, inst.symbol
            );
        } else {
            let _ = write!(
                s,
                r#"{{"T":{},"s":"{}","S":"{side}","v":""#,
                t.ts_ms, inst.symbol
            );
            inst.write_qty(&mut s, t.lots);
            s.push_str(r#"","p":""#);
            inst.write_price(&mut s, t.price);
            let _ = write!(
                s,
                r#"","L":"{}","i":"{}","BT":false,"RPI":false,"seq":{}}}"#,
                t.tick_direction, t.id, t.seq
            );
        }
    }
    s.push_str("]}");
    s
}

/// Bybit's spelling of a taker side.
pub fn side_text(side: Side) -> &'static str {
    side.as_bybit()
}

/// What a book frame carries.
#[derive(Debug, Clone, Copy)]
pub struct BookHeader {
    /// Depth of the topic.
    pub depth: u16,
    /// `true`: snapshot, `false`: delta.
    pub snapshot: bool,
    /// System time (ms).
    pub ts_ms: u64,
    /// Matching-engine time (ms).
    pub cts_ms: u64,
    /// Update id.
    pub u: u64,
    /// Cross sequence.
    pub seq: u64,
}

/// `orderbook.{depth}.{symbol}`: spot (all depths) and futures level 1 put `ts` before `type`.
pub fn book(inst: &Instrument, h: &BookHeader, bids: &[(i64, i64)], asks: &[(i64, i64)]) -> String {
    let mut s = String::with_capacity(160 + (bids.len() + asks.len()) * 26);
    let kind = if h.snapshot { "snapshot" } else { "delta" };
    let _ = write!(s, r#"{{"topic":"orderbook.{}.{}","#, h.depth, inst.symbol);
    if inst.category == Category::Spot || h.depth == 1 {
        let _ = write!(s, r#""ts":{},"type":"{kind}","#, h.ts_ms);
    } else {
        let _ = write!(s, r#""type":"{kind}","ts":{},"#, h.ts_ms);
    }
    let _ = write!(s, r#""data":{{"s":"{}","b":"#, inst.symbol);
    levels(&mut s, inst, bids);
    s.push_str(r#","a":"#);
    levels(&mut s, inst, asks);
    let _ = write!(s, r#","u":{},"seq":{}}},"cts":{}}}"#, h.u, h.seq, h.cts_ms);
    s
}

/// Appends `[["price","size"],...]`.
pub fn levels(s: &mut String, inst: &Instrument, levels: &[(i64, i64)]) {
    s.push('[');
    for (n, &(p, q)) in levels.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        s.push_str("[\"");
        inst.write_price(s, p);
        s.push_str("\",\"");
        inst.write_qty(s, q);
        s.push_str("\"]");
    }
    s.push(']');
}

/// `kline.{interval}.{symbol}` with the given candles (the last may be open).
pub fn kline(inst: &Instrument, interval: &str, ts_ms: u64, bars: &[(Bar, bool)]) -> String {
    let mut s = String::with_capacity(128 + bars.len() * 220);
    let _ = write!(
        s,
        r#"{{"topic":"kline.{interval}.{}","data":["#,
        inst.symbol
    );
    for (n, (b, confirm)) in bars.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"start":{},"end":{},"interval":"{interval}","open":""#,
            b.start, b.end
        );
        inst.write_price(&mut s, b.open);
        s.push_str(r#"","close":""#);
        inst.write_price(&mut s, b.close);
        s.push_str(r#"","high":""#);
        inst.write_price(&mut s, b.high);
        s.push_str(r#"","low":""#);
        inst.write_price(&mut s, b.low);
        let _ = write!(
            s,
            r#"","volume":"{}","turnover":"{}","confirm":{confirm},"timestamp":{ts_ms}}}"#,
            b.volume, b.turnover
        );
    }
    let _ = write!(s, r#"],"ts":{ts_ms},"type":"snapshot"}}"#);
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A subscribe/unsubscribe/other-op answer in the category's shape: spot carries `req_id` only when
/// one was sent; linear and inverse always carry it (`""` when none was sent).
pub fn ack(
    category: Category,
    conn_id: &str,
    req_id: Option<&str>,
    op: &str,
    success: bool,
    ret_msg: &str,
) -> String {
    let mut s = format!(
        r#"{{"success":{success},"ret_msg":{},"conn_id":"{conn_id}","#,
        json_str(ret_msg)
    );
    match (category, req_id) {
        (Category::Spot, None) => {}
        (_, r) => {
            let _ = write!(s, r#""req_id":{},"#, json_str(r.unwrap_or("")));
        }
    }
    let _ = write!(s, r#""op":{}}}"#, json_str(op));
    s
}

/// A pong to a JSON ping (`op` stays `ping`, `ret_msg` is `pong`).
pub fn pong(category: Category, conn_id: &str, req_id: Option<&str>) -> String {
    ack(category, conn_id, req_id, "ping", true, "pong")
}

/// A deliberately corrupt frame (cut mid-way, so it is not JSON).
pub fn malformed(inst: &Instrument, n: usize) -> String {
    format!(
        r#"{{"topic":"publicTrade.{}","type":"snapshot","ts":{n},"data":[{{"T":1,"s":"{}","S":"Bu"#,
        inst.symbol, inst.symbol
    )
}
