//! Pre-serialized Bybit V5 linear frames for the load generator: a ring of complete WebSocket text
//! frames (`orderbook.50` deltas of 5 + 5 levels and one-trade `publicTrade` frames, in Bybit's
//! exact key order) whose variable fields sit in fixed-width slots, patched in place per send:
//! `u` (contiguous), `seq` (the send time in Unix ns: the latency stamp), `ts`/`cts`/`T` (ms) and
//! the trade id `i` (a contiguous counter). Patching writes digits only; nothing is serialized on
//! the hot path.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

/// The symbol every frame carries.
pub const SYMBOL: &str = "BTCUSDT";
/// The book topic (depth 50).
pub const BOOK_TOPIC: &str = "orderbook.50.BTCUSDT";
/// The trade topic.
pub const TRADE_TOPIC: &str = "publicTrade.BTCUSDT";
/// The first `u` (a snapshot); 10 digits, so `u` keeps its width for 9 billion updates.
pub const FIRST_U: u64 = 1_000_000_000;

/// Slot widths: Unix ns has 19 digits until 2286, Unix ms 13, `u` 10, the trade id 20.
const NS_W: usize = 19;
const MS_W: usize = 13;
const U_W: usize = 10;
const ID_W: usize = 20;
const NS_PLACEHOLDER: &str = "1000000000000000000";
const MS_PLACEHOLDER: &str = "1000000000000";
const U_PLACEHOLDER: &str = "1000000000";
const ID_PLACEHOLDER: &str = "00000000000000000000";

/// Bids live in [99900.0, 99999.9] and asks in [100000.0, 100099.9]: no delta can cross the book.
const BID_TOP_TICKS: u32 = 999_999;
const ASK_BOTTOM_TICKS: u32 = 1_000_000;
const PRICE_RANGE_TICKS: u32 = 1_000;

/// One pre-serialized WebSocket frame and the byte offsets of its slots.
#[derive(Debug, Clone)]
pub struct Template {
    /// The whole WebSocket frame (header + JSON text).
    pub bytes: Vec<u8>,
    ns: Vec<usize>,
    ms: Vec<usize>,
    u: Option<usize>,
    id: Option<usize>,
}

/// Counters that advance per frame sent.
#[derive(Debug, Clone, Copy)]
pub struct Sequencer {
    /// The `u` of the last book frame sent.
    pub last_u: u64,
    /// The id of the last trade sent.
    pub last_trade: u64,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer {
            last_u: FIRST_U,
            last_trade: 0,
        }
    }
}

/// Builds a JSON text with placeholders and records where each placeholder starts.
struct Builder {
    text: String,
    ns: Vec<usize>,
    ms: Vec<usize>,
    u: Option<usize>,
    id: Option<usize>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            text: String::with_capacity(512),
            ns: Vec::new(),
            ms: Vec::new(),
            u: None,
            id: None,
        }
    }
    fn s(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn ns(&mut self) -> &mut Self {
        self.ns.push(self.text.len());
        self.s(NS_PLACEHOLDER)
    }
    fn ms(&mut self) -> &mut Self {
        self.ms.push(self.text.len());
        self.s(MS_PLACEHOLDER)
    }
    fn u(&mut self) -> &mut Self {
        self.u = Some(self.text.len());
        self.s(U_PLACEHOLDER)
    }
    fn id(&mut self) -> &mut Self {
        self.id = Some(self.text.len());
        self.s(ID_PLACEHOLDER)
    }
    /// Wraps the text in a WebSocket text frame; slot offsets move past the frame header.
    fn finish(self) -> Template {
        let payload_len = self.text.len();
        let mut bytes = Vec::with_capacity(payload_len + 10);
        Frame::message(self.text.into_bytes(), OpCode::Data(Data::Text), true)
            .format(&mut bytes)
            .expect("formatting into a Vec cannot fail");
        let header = bytes.len() - payload_len;
        Template {
            bytes,
            ns: self.ns.iter().map(|o| o + header).collect(),
            ms: self.ms.iter().map(|o| o + header).collect(),
            u: self.u.map(|o| o + header),
            id: self.id.map(|o| o + header),
        }
    }
}

/// `ticks` of 0.1 as a price text, e.g. 999_995 -> "99999.5".
fn price(ticks: u32) -> String {
    format!("{}.{}", ticks / 10, ticks % 10)
}

fn levels(b: &mut Builder, levels: &[(u32, u32)]) {
    b.s("[");
    for (n, &(p, q)) in levels.iter().enumerate() {
        if n > 0 {
            b.s(",");
        }
        // Sizes in thousandths: "0.000" deletes the level.
        let q = format!("{}.{:03}", q / 1000, q % 1000);
        b.s("[\"").s(&price(p)).s("\",\"").s(&q).s("\"]");
    }
    b.s("]");
}

fn book(snapshot: bool, bids: &[(u32, u32)], asks: &[(u32, u32)]) -> Template {
    let mut b = Builder::new();
    let kind = if snapshot { "snapshot" } else { "delta" };
    b.s(&format!(
        r#"{{"topic":"{BOOK_TOPIC}","type":"{kind}","ts":"#
    ))
    .ms()
    .s(&format!(r#","data":{{"s":"{SYMBOL}","b":"#));
    levels(&mut b, bids);
    b.s(r#","a":"#);
    levels(&mut b, asks);
    b.s(r#","u":"#)
        .u()
        .s(r#","seq":"#)
        .ns()
        .s(r#"},"cts":"#)
        .ms()
        .s("}");
    b.finish()
}

fn trade(buy: bool, ticks: u32, qty: u32) -> Template {
    let mut b = Builder::new();
    let side = if buy { "Buy" } else { "Sell" };
    let tick = if buy { "PlusTick" } else { "MinusTick" };
    b.s(&format!(
        r#"{{"topic":"{TRADE_TOPIC}","type":"snapshot","ts":"#
    ))
    .ms()
    .s(r#","data":[{"T":"#)
    .ms()
    .s(&format!(
        r#","s":"{SYMBOL}","S":"{side}","v":"{}.{:03}","p":"{}","L":"{tick}","i":""#,
        qty / 1000,
        qty % 1000,
        price(ticks)
    ))
    .id()
    .s(r#"","BT":false,"RPI":false,"seq":"#)
    .ns()
    .s("}]}");
    b.finish()
}

/// The 50 + 50 level snapshot sent after each book subscription.
pub fn snapshot() -> Template {
    let bids: Vec<(u32, u32)> = (0..50).map(|i| (BID_TOP_TICKS - i, 1000 + i)).collect();
    let asks: Vec<(u32, u32)> = (0..50).map(|i| (ASK_BOTTOM_TICKS + i, 1000 + i)).collect();
    book(true, &bids, &asks)
}

/// A ring of `len` frames, one trade frame every `trade_every` frames (0: no trades), the rest
/// `orderbook.50` deltas of 5 + 5 levels (about one level in five deleted). Same seed, same ring.
pub fn ring(len: usize, trade_every: usize, seed: u64) -> Vec<Template> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let side = |rng: &mut SmallRng, base: u32, down: bool| -> Vec<(u32, u32)> {
        let mut picked: Vec<u32> = Vec::with_capacity(5);
        while picked.len() < 5 {
            let off = rng.random_range(0..PRICE_RANGE_TICKS);
            let p = if down { base - off } else { base + off };
            if !picked.contains(&p) {
                picked.push(p);
            }
        }
        picked.sort_unstable_by(|a, b| if down { b.cmp(a) } else { a.cmp(b) });
        picked
            .into_iter()
            .map(|p| {
                let q = if rng.random_ratio(1, 5) {
                    0
                } else {
                    rng.random_range(1..50_000)
                };
                (p, q)
            })
            .collect()
    };
    (0..len)
        .map(|n| {
            if trade_every > 0 && n % trade_every == trade_every - 1 {
                let buy = rng.random_bool(0.5);
                let ticks = if buy { ASK_BOTTOM_TICKS } else { BID_TOP_TICKS };
                trade(buy, ticks, rng.random_range(1..5_000))
            } else {
                let bids = side(&mut rng, BID_TOP_TICKS, true);
                let asks = side(&mut rng, ASK_BOTTOM_TICKS, false);
                book(false, &bids, &asks)
            }
        })
        .collect()
}

/// Writes `v` as exactly `slot.len()` decimal digits (zero padded on the left).
fn put(slot: &mut [u8], mut v: u64) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl Template {
    /// Patches the slots for a frame sent at `now_ns`, advancing `seq`, and returns the bytes.
    pub fn patch(&mut self, now_ns: u64, seq: &mut Sequencer) -> &[u8] {
        let ms = now_ns / 1_000_000;
        for &o in &self.ns {
            put(&mut self.bytes[o..o + NS_W], now_ns);
        }
        for &o in &self.ms {
            put(&mut self.bytes[o..o + MS_W], ms);
        }
        if let Some(o) = self.u {
            seq.last_u += 1;
            put(&mut self.bytes[o..o + U_W], seq.last_u);
        }
        if let Some(o) = self.id {
            seq.last_trade += 1;
            put(&mut self.bytes[o..o + ID_W], seq.last_trade);
        }
        &self.bytes
    }

    /// Patches a snapshot: it carries the current `u` (the next delta follows it).
    pub fn patch_snapshot(&mut self, now_ns: u64, seq: &Sequencer) -> &[u8] {
        let ms = now_ns / 1_000_000;
        for &o in &self.ns {
            put(&mut self.bytes[o..o + NS_W], now_ns);
        }
        for &o in &self.ms {
            put(&mut self.bytes[o..o + MS_W], ms);
        }
        if let Some(o) = self.u {
            put(&mut self.bytes[o..o + U_W], seq.last_u);
        }
        &self.bytes
    }

    /// The JSON text inside the WebSocket frame.
    #[cfg(test)]
    pub fn text(&self) -> &str {
        let header = match self.bytes.get(1) {
            Some(&b) if b & 0x7f == 126 => 4,
            Some(&b) if b & 0x7f == 127 => 10,
            _ => 2,
        };
        std::str::from_utf8(&self.bytes[header..]).expect("templates are ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hft_connector::book::{OrderBook, Outcome};
    use hft_connector::protocol::ws::{decode, Frame as WsFrame};

    #[test]
    fn patched_frames_decode_on_the_fast_path_with_stamps_ids_and_contiguous_u() {
        let mut ring = ring(64, 4, 7);
        let mut snap = snapshot();
        let mut seq = Sequencer::default();
        let mut book = OrderBook::new(SYMBOL, 50);
        let t0 = 1_780_000_000_123_456_789u64;
        snap.patch_snapshot(t0, &seq);
        let WsFrame::Book(b) = decode(snap.text()).expect("snapshot decodes") else {
            panic!("not a book frame: {}", snap.text());
        };
        assert_eq!(book.apply(&b), Outcome::Snapshot);
        let (mut books, mut trades) = (0u64, 0u64);
        // Three laps of the ring: `u` and trade ids keep counting across the wrap.
        for n in 0..ring.len() * 3 {
            let stamp = t0 + 1000 * n as u64;
            let t = &mut ring[n % 64];
            t.patch(stamp, &mut seq);
            match decode(t.text()).expect("frame decodes") {
                WsFrame::Book(b) => {
                    books += 1;
                    assert_eq!(b.seq, Some(stamp));
                    assert_eq!(b.u, FIRST_U + books);
                    assert_eq!(b.ts_ms, stamp / 1_000_000);
                    assert_eq!((b.bids.len(), b.asks.len()), (5, 5));
                    assert_eq!(book.apply(&b), Outcome::Delta, "{}", t.text());
                }
                WsFrame::Trades(tr) => {
                    trades += 1;
                    assert_eq!(tr.trades.len(), 1);
                    assert_eq!(tr.trades[0].seq, Some(stamp));
                    assert_eq!(tr.trades[0].id, format!("{trades:020}"));
                }
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert_eq!(trades, 48, "one trade frame in four");
        assert_eq!(books, 144);
        assert!(book.is_synced());
    }
}
