//! The compact binary form of the two hot events on the worker pipe, trades and book updates.
//!
//! Every other message crosses as self-describing MessagePack ([`super::framing`]); these two are
//! 99.9 % of the traffic, and MessagePack with named fields, `Decimal`s as text and serde's buffered
//! decoding of internally tagged enums cost more than the rest of the worker's path (issue 12). The
//! layout is fixed, little-endian, and exact: a decimal is its 128-bit mantissa and its scale,
//! rebuilt with `Decimal::try_from_i128_with_scale`, so nothing is parsed or rounded.
//!
//! A compact payload starts with [`TRADE`] or [`BOOK`]; a MessagePack `WorkerMsg` always starts
//! with a map marker (`0x80..=0x8f`, `0xde`, `0xdf`), so the first byte tells them apart.
//! Decoding is total: any short, overlong or inconsistent payload is an error, never a panic.
//! The round trip is checked field by field against the serde form by property tests.

use rust_decimal::Decimal;

use crate::normalized::{BookEvent, Pair, Top, TradeEvent};
use crate::protocol::ws::{BookKind, Side};

/// First byte of a compact trade.
pub const TRADE: u8 = 0x01;
/// First byte of a compact book update.
pub const BOOK: u8 = 0x02;

/// Appends the compact form of `t`.
pub fn put_trade(t: &TradeEvent, out: &mut Vec<u8>) {
    out.push(TRADE);
    put_str(out, &t.symbol);
    put_str(out, &t.id);
    put_dec(out, t.price);
    put_dec(out, t.qty);
    out.push(match t.side {
        Side::Buy => 0,
        Side::Sell => 1,
    });
    put_u64(out, t.ts_ms);
    put_opt_u64(out, t.seq);
    out.push(u8::from(t.block) | (u8::from(t.recovered) << 1));
    put_opt_str(out, t.category.as_deref());
    put_opt_u64(out, t.recv_ns);
}

/// Appends the compact form of `b`.
pub fn put_book(b: &BookEvent, out: &mut Vec<u8>) {
    out.push(BOOK);
    put_str(out, &b.symbol);
    out.extend_from_slice(&b.depth.to_le_bytes());
    out.push(match b.kind {
        BookKind::Snapshot => 0,
        BookKind::Delta => 1,
    });
    put_u64(out, b.u);
    put_opt_u64(out, b.seq);
    put_u64(out, b.ts_ms);
    put_opt_u64(out, b.cts_ms);
    put_pairs(out, &b.bids);
    put_pairs(out, &b.asks);
    put_opt_pair(out, b.best_bid);
    put_opt_pair(out, b.best_ask);
    put_u64(out, b.levels.0 as u64);
    put_u64(out, b.levels.1 as u64);
    put_opt_str(out, b.category.as_deref());
    put_opt_u64(out, b.recv_ns);
    match &b.top {
        None => out.push(0),
        Some(top) => {
            out.push(1);
            put_pairs(out, &top.bids);
            put_pairs(out, &top.asks);
        }
    }
}

/// Decodes a compact trade (`p` starts with [`TRADE`]).
pub fn trade(p: &[u8]) -> Result<TradeEvent, String> {
    let mut r = Reader { p, at: 0 };
    r.tag(TRADE)?;
    let symbol = r.string()?;
    let id = r.string()?;
    let price = r.dec()?;
    let qty = r.dec()?;
    let side = match r.u8()? {
        0 => Side::Buy,
        1 => Side::Sell,
        s => return Err(format!("bad side {s}")),
    };
    let ts_ms = r.u64()?;
    let seq = r.opt_u64()?;
    let flags = r.u8()?;
    let category = r.opt_string()?;
    let recv_ns = r.opt_u64()?;
    r.end()?;
    Ok(TradeEvent {
        symbol,
        id,
        price,
        qty,
        side,
        ts_ms,
        seq,
        block: flags & 1 != 0,
        category,
        recv_ns,
        recovered: flags & 2 != 0,
    })
}

/// Decodes a compact book update (`p` starts with [`BOOK`]).
pub fn book(p: &[u8]) -> Result<BookEvent, String> {
    let mut r = Reader { p, at: 0 };
    r.tag(BOOK)?;
    let symbol = r.string()?;
    let depth = u16::from_le_bytes(r.array()?);
    let kind = match r.u8()? {
        0 => BookKind::Snapshot,
        1 => BookKind::Delta,
        k => return Err(format!("bad book kind {k}")),
    };
    let u = r.u64()?;
    let seq = r.opt_u64()?;
    let ts_ms = r.u64()?;
    let cts_ms = r.opt_u64()?;
    let bids = r.pairs()?;
    let asks = r.pairs()?;
    let best_bid = r.opt_pair()?;
    let best_ask = r.opt_pair()?;
    let levels = (r.usize()?, r.usize()?);
    let category = r.opt_string()?;
    let recv_ns = r.opt_u64()?;
    let top = match r.u8()? {
        0 => None,
        1 => Some(Top {
            bids: r.pairs()?,
            asks: r.pairs()?,
        }),
        t => return Err(format!("bad top flag {t}")),
    };
    r.end()?;
    Ok(BookEvent {
        symbol,
        depth,
        kind,
        u,
        seq,
        ts_ms,
        cts_ms,
        bids,
        asks,
        best_bid,
        best_ask,
        levels,
        category,
        recv_ns,
        top,
    })
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_u64(out, v);
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_dec(out: &mut Vec<u8>, d: Decimal) {
    out.extend_from_slice(&d.mantissa().to_le_bytes());
    out.push(d.scale() as u8);
}

fn put_pairs(out: &mut Vec<u8>, pairs: &[Pair]) {
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for &(p, q) in pairs {
        put_dec(out, p);
        put_dec(out, q);
    }
}

fn put_opt_pair(out: &mut Vec<u8>, p: Option<Pair>) {
    match p {
        None => out.push(0),
        Some((p, q)) => {
            out.push(1);
            put_dec(out, p);
            put_dec(out, q);
        }
    }
}

/// A bounds-checked cursor over a compact payload.
struct Reader<'a> {
    p: &'a [u8],
    at: usize,
}

/// Bytes of one encoded decimal (mantissa + scale).
const DEC: usize = 17;

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.p.len())
            .ok_or_else(|| format!("compact event cut short at byte {}", self.at))?;
        let s = &self.p[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn tag(&mut self, want: u8) -> Result<(), String> {
        match self.u8()? {
            t if t == want => Ok(()),
            t => Err(format!("compact tag {t}, expected {want}")),
        }
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn usize(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|e| e.to_string())
    }

    fn len(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, String> {
        Ok(match self.u8()? {
            0 => None,
            1 => Some(self.u64()?),
            f => return Err(format!("bad option flag {f}")),
        })
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| format!("compact string: {e}"))
    }

    fn opt_string(&mut self) -> Result<Option<String>, String> {
        Ok(match self.u8()? {
            0 => None,
            1 => Some(self.string()?),
            f => return Err(format!("bad option flag {f}")),
        })
    }

    fn dec(&mut self) -> Result<Decimal, String> {
        let m = i128::from_le_bytes(self.array()?);
        let scale = u32::from(self.u8()?);
        Decimal::try_from_i128_with_scale(m, scale).map_err(|e| format!("compact decimal: {e}"))
    }

    fn pair(&mut self) -> Result<Pair, String> {
        Ok((self.dec()?, self.dec()?))
    }

    fn opt_pair(&mut self) -> Result<Option<Pair>, String> {
        Ok(match self.u8()? {
            0 => None,
            1 => Some(self.pair()?),
            f => return Err(format!("bad option flag {f}")),
        })
    }

    fn pairs(&mut self) -> Result<Vec<Pair>, String> {
        let n = self.len()?;
        // Never trust a count for an allocation: it must fit the bytes that are left.
        if n.saturating_mul(2 * DEC) > self.p.len() - self.at {
            return Err(format!("compact level count {n} exceeds the payload"));
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.pair()?);
        }
        Ok(v)
    }

    fn end(&self) -> Result<(), String> {
        if self.at == self.p.len() {
            Ok(())
        } else {
            Err(format!(
                "{} trailing bytes after a compact event",
                self.p.len() - self.at
            ))
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
