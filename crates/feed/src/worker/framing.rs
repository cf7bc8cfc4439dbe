//! The worker-to-supervisor wire format: length-prefixed frames on the worker's stdout.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload, one [`WorkerMsg`]:
//! trades and book updates (nearly all traffic) in the fixed binary layout of [`super::wire`],
//! everything else as MessagePack with named fields (`rmp_serde::to_vec_named`).
//!
//! Why MessagePack for the rest rather than bincode/postcard or a hand-written wire enum:
//! [`FeedEvent`] is internally tagged (`#[serde(tag = "type")]`) and its payloads skip absent
//! optional fields (`skip_serializing_if`), both of which need a self-describing format; reusing
//! the serde derive means a new lifecycle event or field crosses the pipe without a second schema.
//! The two hot events have their own schema because that generality cost more than the rest of the
//! worker's path; their round trip is property-tested, so the two schemas cannot drift silently.
//!
//! [`decode`] is pure and total: a short buffer asks for more bytes, a length above
//! [`MAX_FRAME`] or an undecodable payload is an error (the stream cannot be trusted after that;
//! the supervisor replaces the worker). [`FrameCodec`] plugs the same code into
//! `tokio_util::codec::FramedRead`, whose `next()` is cancel-safe.

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};

use super::wire;
use crate::feed::{FeedEvent, HealthSnapshot};

/// Largest accepted payload (bytes). A depth-1000 snapshot is well under 200 KB.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER: usize = 4;

/// One message from a worker to its supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// The worker started its feed (sent once, first).
    Hello {
        /// The worker's process id.
        pid: u32,
        /// Crate version of the worker binary.
        version: String,
    },
    /// A feed event, exactly as the in-process feed delivers it. A `Connected` event is the
    /// worker's report that its connection is live.
    Event(FeedEvent),
    /// The worker feed's health, sent periodically; doubles as the worker's heartbeat.
    Health(HealthSnapshot),
    /// A raw WebSocket frame and its local receive time (Unix ns), sent only when recording
    /// (`[sinks.record]`); the supervisor hands it to its recorder.
    Raw {
        /// Local receive time (Unix ns).
        recv_ns: u64,
        /// The frame's text, exactly as received.
        text: String,
    },
}

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME`] bytes.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    Oversize(usize),
    /// The payload is not a MessagePack `WorkerMsg`.
    #[error("undecodable frame payload ({len} bytes): {error}")]
    Payload {
        /// Payload length.
        len: usize,
        /// The decoder's message.
        error: String,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
    /// The message could not be encoded.
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    /// Reading the pipe failed.
    #[error("pipe read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Appends `msg` as one frame to `out`.
pub fn encode(msg: &WorkerMsg, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    match msg {
        WorkerMsg::Event(FeedEvent::Trade(t)) => wire::put_trade(t, out),
        WorkerMsg::Event(FeedEvent::Book(b)) => wire::put_book(b, out),
        _ => {
            if let Err(e) = rmp_serde::encode::write_named(out, msg) {
                out.truncate(start);
                return Err(FrameError::Encode(e.to_string()));
            }
        }
    }
    let len = out.len() - start - HEADER;
    if len > MAX_FRAME {
        out.truncate(start);
        return Err(FrameError::Oversize(len));
    }
    out[start..start + HEADER].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Decodes the first frame of `buf`: `Ok(Some((msg, consumed)))`, `Ok(None)` if `buf` holds only
/// part of a frame, or an error if it can never become a valid frame.
pub fn decode(buf: &[u8]) -> Result<Option<(WorkerMsg, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Oversize(len));
    }
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Ok(None);
    };
    let bad = |error: String| FrameError::Payload { len, error };
    let msg = match payload.first() {
        Some(&wire::TRADE) => WorkerMsg::Event(FeedEvent::Trade(Box::new(
            wire::trade(payload).map_err(bad)?,
        ))),
        Some(&wire::BOOK) => {
            WorkerMsg::Event(FeedEvent::Book(Box::new(wire::book(payload).map_err(bad)?)))
        }
        _ => rmp_serde::from_slice(payload).map_err(|e| bad(e.to_string()))?,
    };
    Ok(Some((msg, HEADER + len)))
}

/// A `tokio_util` decoder over [`decode`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

impl tokio_util::codec::Decoder for FrameCodec {
    type Item = WorkerMsg;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<WorkerMsg>, FrameError> {
        match decode(src)? {
            Some((msg, used)) => {
                src.advance(used);
                Ok(Some(msg))
            }
            None => {
                if src.len() >= HEADER {
                    let want = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
                    src.reserve((HEADER + want).saturating_sub(src.len()));
                }
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<WorkerMsg>, FrameError> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated(src.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{ConnState, DisconnectReason};
    use crate::normalized::{BookEvent, TradeEvent};
    use crate::protocol::ws::{BookKind, Side};
    use rust_decimal::Decimal;
    use std::str::FromStr;
    use tokio_util::codec::Decoder;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn samples() -> Vec<WorkerMsg> {
        let trade = TradeEvent {
            symbol: "BTCUSDT".into(),
            id: "a1b2-c3".into(),
            price: d("115440.70"),
            qty: d("0.020"),
            side: Side::Sell,
            ts_ms: 1_700_000_000_123,
            seq: Some(42),
            block: false,
            category: Some("linear".into()),
            recv_ns: Some(1_700_000_000_123_456_789),
            recovered: true,
        };
        let book = BookEvent {
            symbol: "BTCUSDT".into(),
            depth: 50,
            kind: BookKind::Delta,
            u: 7,
            seq: None,
            ts_ms: 5,
            cts_ms: None,
            bids: vec![(d("100.10"), d("0")), (d("100.0"), d("1.500"))],
            asks: vec![],
            best_bid: Some((d("100.0"), d("1.500"))),
            best_ask: None,
            levels: (1, 0),
            category: None,
            recv_ns: Some(9),
            top: None,
        };
        let health = HealthSnapshot {
            process_alive: true,
            queue_size: 3,
            error_count: 1,
            seconds_since_last_event: Some(0.25),
            last_update: Some("2024-01-01T00:00:00Z".into()),
            last_update_ms: Some(1),
            reconnects: 2,
            stale_detections: 0,
            messages: 99,
            state: ConnState::Live,
            status: "connected".into(),
            per_symbol: Default::default(),
        };
        vec![
            WorkerMsg::Hello {
                pid: 77,
                version: "0.1.0".into(),
            },
            WorkerMsg::Event(FeedEvent::Trade(Box::new(trade))),
            WorkerMsg::Event(FeedEvent::Book(Box::new(book))),
            WorkerMsg::Event(FeedEvent::Connected {
                category: "linear".into(),
                symbols: vec!["BTCUSDT".into()],
                connection: 3,
            }),
            WorkerMsg::Event(FeedEvent::Disconnected {
                reason: DisconnectReason::Error("reset".into()),
            }),
            WorkerMsg::Event(FeedEvent::GaveUp { attempts: 4 }),
            WorkerMsg::Health(health),
        ]
    }

    #[test]
    fn round_trip_keeps_every_field_exact() {
        let mut buf = Vec::new();
        for m in samples() {
            encode(&m, &mut buf).unwrap();
        }
        let mut at = 0;
        for want in samples() {
            let (got, used) = decode(&buf[at..]).unwrap().expect("a whole frame");
            assert_eq!(got, want);
            at += used;
        }
        assert_eq!(at, buf.len());
        // The decimal text survives (scale preserved), as in the normalized schema.
        if let WorkerMsg::Event(FeedEvent::Trade(t)) = &samples()[1] {
            assert_eq!(t.qty.to_string(), "0.020");
        }
        assert!(
            !buf.windows(8).any(|w| w == b"{\"type\":"),
            "binary, not JSON"
        );
    }

    #[test]
    fn truncated_frames_wait_for_more_bytes_and_fail_at_eof() {
        let mut buf = Vec::new();
        encode(&samples()[1], &mut buf).unwrap();
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let mut codec = FrameCodec;
        let mut part = BytesMut::from(&buf[..buf.len() - 1]);
        assert!(codec.decode(&mut part).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut part),
            Err(FrameError::Truncated(_))
        ));
        let mut whole = BytesMut::from(&buf[..]);
        assert!(codec.decode_eof(&mut whole).unwrap().is_some());
        assert!(whole.is_empty());
        assert!(codec.decode_eof(&mut whole).unwrap().is_none());
    }

    #[test]
    fn oversize_frames_are_refused_before_buffering() {
        let mut buf = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(b"xx");
        assert!(matches!(decode(&buf), Err(FrameError::Oversize(n)) if n == MAX_FRAME + 1));
        let mut codec = FrameCodec;
        let mut b = BytesMut::from(&buf[..]);
        assert!(codec.decode(&mut b).is_err());
        assert!(b.capacity() < 1024, "no 16 MB allocation for a lie");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for payload in [
            &b"\xc1"[..],
            b"not msgpack at all",
            b"\x81\xa4Nope\xc0",
            b"",
        ] {
            let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
            buf.extend_from_slice(payload);
            assert!(
                matches!(decode(&buf), Err(FrameError::Payload { .. })),
                "{payload:?}"
            );
        }
        // Random bytes never panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            let n = buf.len().min(2);
            buf[..n].fill(0);
            let _ = decode(&buf);
        }
    }
}
