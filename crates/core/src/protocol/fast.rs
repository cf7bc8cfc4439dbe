//! The fast path of frame decoding: a strict, allocation-light scanner for the frames that make up
//! nearly all traffic (`publicTrade` and `orderbook` data, without escapes).
//!
//! It either returns exactly the [`Frame`] the general serde path would return, or `None` and lets
//! the general path decide (unusual shape, escapes, unknown keys, duplicates, anything invalid).
//! A differential property test and the fuzz target hold it to that.

use std::borrow::Cow;

use rust_decimal::Decimal;

use super::topic::TopicRef;
use super::ws::{BookKind, BookUpdate, Frame, Level, Side, Trade, Trades};

/// Tries the fast path; `None` means "use the general decoder".
pub(crate) fn try_decode(text: &str) -> Option<Frame<'_>> {
    let mut c = Cursor {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let frame = c.frame()?;
    c.ws();
    (c.i == c.b.len()).then_some(frame)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is `"`, `\\` or below 0x20 (SWAR: a byte is flagged when subtracting
/// from it borrows; false positives only after a true one, so "none" is exact).
#[inline(always)]
fn special_byte(w: u64) -> bool {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space) != 0
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> Option<()> {
        // Bybit sends no whitespace: look for `c` first, skip whitespace only if it is not there.
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            return Some(());
        }
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// `,` → `Some(true)` (more), `end` → `Some(false)`, anything else → `None`.
    #[inline]
    fn next_or_end(&mut self, end: u8) -> Option<bool> {
        if !matches!(self.b.get(self.i), Some(b',')) && self.b.get(self.i) != Some(&end) {
            self.ws();
        }
        match self.b.get(self.i) {
            Some(b',') => {
                self.i += 1;
                Some(true)
            }
            Some(&c) if c == end => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string without escapes or control characters, borrowed.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        // Eight bytes at a time while none of them is a quote, a backslash or a control character.
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if special_byte(u64::from_le_bytes(word)) {
                break;
            }
            self.i += 8;
        }
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        let s = self.s.get(start..self.i)?;
        self.i += 1;
        Some(s)
    }

    #[inline]
    fn key(&mut self) -> Option<&'a str> {
        let k = self.string()?;
        self.eat(b':')?;
        Some(k)
    }

    /// A non-negative JSON integer that fits u64 (no sign, fraction, exponent or leading zero).
    #[inline]
    fn u64(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.i) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 || (len > 1 && self.b[start] == b'0') {
            return None;
        }
        match self.b.get(self.i) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }

    #[inline]
    fn bool(&mut self) -> Option<bool> {
        self.ws();
        let rest = self.b.get(self.i..)?;
        if rest.starts_with(b"true") {
            self.i += 4;
            Some(true)
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Some(false)
        } else {
            None
        }
    }

    /// A non-negative decimal string, parsed in the same pass that finds its end. Anything
    /// unusual (sign, more than 19 digits, an escape) is left to the general path.
    #[inline(always)]
    fn decimal(&mut self) -> Option<Decimal> {
        self.eat(b'"')?;
        let rest = self.b.get(self.i..)?;
        let mut mantissa: u64 = 0;
        let mut dot = usize::MAX;
        let mut k = 0;
        loop {
            let c = *rest.get(k)?;
            let digit = c.wrapping_sub(b'0');
            if digit < 10 {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            } else if c == b'"' {
                break;
            } else if c == b'.' && dot == usize::MAX && k > 0 {
                dot = k;
            } else {
                return None;
            }
            k += 1;
        }
        self.i += k + 1;
        // Digits seen: k, less one for a dot. More than 19 may have wrapped: general path.
        let (digits, scale) = if dot == usize::MAX {
            (k, 0)
        } else {
            (k - 1, k - dot - 1)
        };
        if digits == 0 || digits > 19 || (dot != usize::MAX && scale == 0) {
            return None;
        }
        Some(Decimal::from_parts(
            mantissa as u32,
            (mantissa >> 32) as u32,
            0,
            false,
            scale as u32,
        ))
    }

    fn frame(&mut self) -> Option<Frame<'a>> {
        self.eat(b'{')?;
        let mut topic: Option<TopicRef<'a>> = None;
        let mut kind: Option<&'a str> = None;
        let mut ts: Option<u64> = None;
        let mut cts: Option<u64> = None;
        let mut data: Option<Frame<'a>> = None;
        loop {
            match self.key()? {
                "topic" if topic.is_none() => topic = Some(TopicRef::parse(self.string()?)?),
                "type" if kind.is_none() => kind = Some(self.string()?),
                "ts" if ts.is_none() => ts = Some(self.u64()?),
                "cts" if cts.is_none() => cts = Some(self.u64()?),
                // Only when the topic came first: otherwise the general path handles it.
                "data" if data.is_none() => {
                    data = Some(match topic? {
                        TopicRef::Trade { symbol } => Frame::Trades(Trades {
                            symbol,
                            ts_ms: 0,
                            trades: self.trades()?,
                        }),
                        TopicRef::OrderBook { depth, symbol } => self.book(symbol, depth)?,
                        TopicRef::Kline { .. } => return None,
                    })
                }
                _ => return None,
            }
            if !self.next_or_end(b'}')? {
                break;
            }
        }
        let ts_ms = ts?;
        match data? {
            Frame::Trades(mut t) => {
                t.ts_ms = ts_ms;
                Some(Frame::Trades(t))
            }
            Frame::Book(mut b) => {
                b.kind = match kind? {
                    "snapshot" => BookKind::Snapshot,
                    "delta" => BookKind::Delta,
                    _ => return None,
                };
                b.ts_ms = ts_ms;
                b.cts_ms = cts;
                Some(Frame::Book(b))
            }
            _ => None,
        }
    }

    fn book(&mut self, topic_symbol: &'a str, depth: u16) -> Option<Frame<'a>> {
        self.eat(b'{')?;
        let (mut s, mut u, mut seq) = (None, None, None);
        let (mut bids, mut asks) = (None, None);
        loop {
            match self.key()? {
                "s" if s.is_none() => s = Some(self.string()?),
                "b" if bids.is_none() => bids = Some(self.levels()?),
                "a" if asks.is_none() => asks = Some(self.levels()?),
                "u" if u.is_none() => u = Some(self.u64()?),
                "seq" if seq.is_none() => seq = Some(self.u64()?),
                _ => return None,
            }
            if !self.next_or_end(b'}')? {
                break;
            }
        }
        if s? != topic_symbol {
            return None;
        }
        Some(Frame::Book(BookUpdate {
            symbol: topic_symbol,
            depth,
            kind: BookKind::Delta,
            ts_ms: 0,
            cts_ms: None,
            u: u?,
            seq,
            bids: bids?,
            asks: asks?,
        }))
    }

    fn levels(&mut self) -> Option<Vec<Level>> {
        self.eat(b'[')?;
        let mut out = Vec::with_capacity(8);
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(out);
        }
        loop {
            self.eat(b'[')?;
            let price = self.decimal()?;
            self.eat(b',')?;
            let qty = self.decimal()?;
            self.eat(b']')?;
            out.push(Level { price, qty });
            if !self.next_or_end(b']')? {
                return Some(out);
            }
        }
    }

    fn trades(&mut self) -> Option<Vec<Trade<'a>>> {
        self.eat(b'[')?;
        let mut out = Vec::with_capacity(1);
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(out);
        }
        loop {
            out.push(self.trade()?);
            if !self.next_or_end(b']')? {
                return Some(out);
            }
        }
    }

    fn trade(&mut self) -> Option<Trade<'a>> {
        self.eat(b'{')?;
        let (mut id, mut t, mut sym, mut side, mut v, mut p) = (None, None, None, None, None, None);
        let (mut l, mut bt, mut rpi, mut seq) = (None, None, None, None);
        loop {
            match self.key()? {
                "i" if id.is_none() => id = Some(self.string()?),
                "T" if t.is_none() => t = Some(self.u64()?),
                "s" if sym.is_none() => sym = Some(self.string()?),
                "S" if side.is_none() => {
                    side = Some(match self.string()? {
                        "Buy" | "buy" => Side::Buy,
                        "Sell" | "sell" => Side::Sell,
                        _ => return None,
                    })
                }
                "v" if v.is_none() => v = Some(self.decimal()?),
                "p" if p.is_none() => p = Some(self.decimal()?),
                "L" if l.is_none() => l = Some(self.string()?),
                "BT" if bt.is_none() => bt = Some(self.bool()?),
                "RPI" if rpi.is_none() => rpi = Some(self.bool()?),
                "seq" if seq.is_none() => seq = Some(self.u64()?),
                _ => return None,
            }
            if !self.next_or_end(b'}')? {
                break;
            }
        }
        Some(Trade {
            id: Cow::Borrowed(id?),
            ts_ms: t?,
            symbol: Cow::Borrowed(sym?),
            side: side?,
            qty: v?,
            price: p?,
            tick_direction: l.map(Cow::Borrowed),
            block: bt.unwrap_or(false),
            rpi: rpi.unwrap_or(false),
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ws::decode_general;
    use proptest::prelude::*;

    const FRAMES: [&str; 5] = [
        r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1758841135824,"data":[{"T":1758841135823,"s":"BTCUSDT","S":"Buy","v":"0.020","p":"109378.90","L":"ZeroPlusTick","i":"2a74ac78-691c-5b54-9dbe-5aafe8364627","BT":false,"RPI":false,"seq":457514743450}]}"#,
        r#"{"topic":"publicTrade.BTCUSDT","ts":1761583474344,"type":"snapshot","data":[{"i":"2290000000923750370","T":1761583474343,"p":"115440.7","v":"0.00903","S":"Buy","seq":89200463112,"s":"BTCUSDT","BT":false,"RPI":false}]}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1758845431663,"data":{"s":"BTCUSDT","b":[["109147.80","1.687"],["109144.10","0.027"]],"a":[["109148.00","0"],["109154.30","0.076"],["109156.40","0"],["109165.30","0.003"],["109165.40","0.007"]],"u":21111423,"seq":457538796406},"cts":1758845431662}"#,
        r#"{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1758841134603,"data":{"s":"BTCUSDT","b":[["109378.80","1.273"]],"a":[["109378.90","6.278"]],"u":14869255,"seq":457514742271},"cts":1758841134598}"#,
        r#"{"topic":"orderbook.50.BTCUSDT","ts":1731035685345,"type":"delta","data":{"s":"BTCUSDT","b":[],"a":[["75848.89","0.088149"]],"u":2876701,"seq":47474967823},"cts":1731035685342}"#,
    ];

    #[test]
    fn takes_the_common_frames_and_agrees_with_the_general_path() {
        for f in FRAMES {
            let fast = try_decode(f).expect("fast path takes real frames");
            assert_eq!(Ok(fast), decode_general(f), "{f}");
        }
    }

    #[test]
    fn leaves_unusual_input_to_the_general_path() {
        for f in [
            r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"i":"a\"b","T":1,"s":"BTCUSDT","S":"Buy","v":"1","p":"1"}]}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1","-1"]],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["12345678901234567890.5","1"]],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"ts":2,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1}}"#,
            r#"{"data":{"s":"BTCUSDT","b":[],"a":[],"u":1},"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1.5,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":01,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1.","1"]],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1}} x"#,
        ] {
            assert_eq!(try_decode(f), None, "{f}");
        }
    }

    fn mutate(base: &str, edits: &[(usize, u8, u8)]) -> String {
        let mut bytes = base.as_bytes().to_vec();
        for &(pos, op, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let pos = pos % bytes.len();
            let byte = b" \"[]{},.:-0123456789eabst\\\n"[usize::from(byte) % 27];
            match op % 3 {
                0 => bytes[pos] = byte,
                1 => bytes.insert(pos, byte),
                _ => {
                    bytes.remove(pos);
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// Differential: whatever the fast path accepts, the general path decodes identically.
        #[test]
        fn fast_path_never_disagrees(which in 0usize..5, edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4)) {
            let text = mutate(FRAMES[which], &edits);
            if let Some(fast) = try_decode(&text) {
                prop_assert_eq!(Ok(fast), decode_general(&text), "{}", text);
            }
        }
    }
}
