//! What crosses the pipes between a worker and its supervisor, both ways: length-prefixed frames,
//! a 4-byte big-endian length (of the kind byte and the body) then a kind byte and the body.
//!
//! Up (worker stdout -> supervisor), [`Up`]: the WebSocket frames the worker received, each with
//! its receive time (Unix ns, stamped when the socket read returned), text or binary, byte for
//! byte as received; and the connection's lifecycle: connected, connect failed, ended (why), and a
//! heartbeat while a connection is open or being opened.
//!
//! Down (supervisor -> worker stdin), [`Down`]: connect to a URL (with a timeout), send a text
//! frame, send a WebSocket ping, close the connection.
//!
//! The worker never decodes what it carries and the supervisor never re-encodes it: a market frame
//! costs a 13-byte header on the pipe. [`take_up`] and [`take_down`] are pure and total: a short
//! buffer asks for more bytes, a length above [`MAX_FRAME`] or an unknown kind is an error (the
//! stream cannot be trusted after that; the supervisor replaces the worker).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest accepted frame (bytes after the length prefix). Bybit's largest frames (depth-1000
/// snapshots) are well under 1 MB.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER: usize = 4;

const TEXT: u8 = b'T';
const BINARY: u8 = b'B';
const OTHER: u8 = b'O';
const CONNECTED: u8 = b'K';
const CONNECT_FAILED: u8 = b'F';
const ENDED: u8 = b'Z';
const HEARTBEAT: u8 = b'H';
const HELLO: u8 = b'Y';

const CONNECT: u8 = b'c';
const SEND: u8 = b's';
const PING: u8 = b'p';
const CLOSE: u8 = b'x';

/// Why a worker's connection ended (the body of [`Up::Ended`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndKind {
    /// The supervisor asked ([`Down::Close`]): the reply that closes the connection's frames.
    Requested,
    /// The server sent a close frame (its description).
    CloseFrame(String),
    /// The stream ended without a close frame.
    StreamEnded,
    /// Reading or writing the socket failed (the error).
    Error(String),
}

/// One message from a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    /// A text frame and its receive time (Unix ns).
    Text {
        /// Receive time (Unix ns).
        recv_ns: u64,
        /// The frame's payload, as received (UTF-8 checked by the worker's WebSocket).
        text: Bytes,
    },
    /// A binary frame and its receive time.
    Binary {
        /// Receive time (Unix ns).
        recv_ns: u64,
        /// The payload.
        data: Bytes,
    },
    /// A WebSocket ping or pong frame arrived.
    Other {
        /// Receive time (Unix ns).
        recv_ns: u64,
    },
    /// The connection asked for with [`Down::Connect`] is open.
    Connected,
    /// The connection asked for could not be opened.
    ConnectFailed(String),
    /// The open connection ended; exactly one per [`Up::Connected`].
    Ended(EndKind),
    /// The worker is alive (sent while a connection is open or being opened).
    Heartbeat,
    /// The worker started (sent once, first).
    Hello {
        /// Its pid.
        pid: u32,
        /// Its crate version.
        version: String,
    },
}

/// One command to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// Open a WebSocket to `url`, giving up after `timeout_ms`; answered by [`Up::Connected`] or
    /// [`Up::ConnectFailed`].
    Connect {
        /// Connect timeout (ms).
        timeout_ms: u64,
        /// WebSocket URL.
        url: String,
    },
    /// Send a text frame.
    Send(String),
    /// Send a WebSocket ping frame with this payload.
    Ping(Vec<u8>),
    /// Close the connection (with a close frame if `graceful`); answered by
    /// `Up::Ended(EndKind::Requested)` if a connection was open.
    Close {
        /// Send a close frame first.
        graceful: bool,
    },
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipeError {
    /// The length prefix announces more than [`MAX_FRAME`] bytes (or none).
    #[error("frame of {0} bytes is outside 1..={MAX_FRAME}")]
    Length(usize),
    /// An unknown kind byte.
    #[error("unknown frame kind {0:#04x}")]
    Kind(u8),
    /// A body too short for its kind, or text that is not UTF-8.
    #[error("malformed {kind:?} frame of {len} bytes")]
    Body {
        /// The kind byte, as a character.
        kind: char,
        /// Body length.
        len: usize,
    },
}

fn begin(out: &mut BytesMut, kind: u8, body: usize) {
    out.reserve(HEADER + 1 + body);
    out.put_u32((1 + body) as u32);
    out.put_u8(kind);
}

/// Appends a received text frame (the hot path: no allocation beyond `out`'s growth).
pub fn put_text(out: &mut BytesMut, recv_ns: u64, text: &[u8]) {
    begin(out, TEXT, 8 + text.len());
    out.put_u64(recv_ns);
    out.put_slice(text);
}

/// Appends `msg`.
pub fn put_up(out: &mut BytesMut, msg: &Up) {
    match msg {
        Up::Text { recv_ns, text } => put_text(out, *recv_ns, text),
        Up::Binary { recv_ns, data } => {
            begin(out, BINARY, 8 + data.len());
            out.put_u64(*recv_ns);
            out.put_slice(data);
        }
        Up::Other { recv_ns } => {
            begin(out, OTHER, 8);
            out.put_u64(*recv_ns);
        }
        Up::Connected => begin(out, CONNECTED, 0),
        Up::ConnectFailed(e) => {
            begin(out, CONNECT_FAILED, e.len());
            out.put_slice(e.as_bytes());
        }
        Up::Ended(kind) => {
            let (code, text) = match kind {
                EndKind::Requested => (0, ""),
                EndKind::CloseFrame(t) => (1, t.as_str()),
                EndKind::StreamEnded => (2, ""),
                EndKind::Error(t) => (3, t.as_str()),
            };
            begin(out, ENDED, 1 + text.len());
            out.put_u8(code);
            out.put_slice(text.as_bytes());
        }
        Up::Heartbeat => begin(out, HEARTBEAT, 0),
        Up::Hello { pid, version } => {
            begin(out, HELLO, 4 + version.len());
            out.put_u32(*pid);
            out.put_slice(version.as_bytes());
        }
    }
}

/// Appends `cmd`.
pub fn put_down(out: &mut BytesMut, cmd: &Down) {
    match cmd {
        Down::Connect { timeout_ms, url } => {
            begin(out, CONNECT, 8 + url.len());
            out.put_u64(*timeout_ms);
            out.put_slice(url.as_bytes());
        }
        Down::Send(text) => {
            begin(out, SEND, text.len());
            out.put_slice(text.as_bytes());
        }
        Down::Ping(data) => {
            begin(out, PING, data.len());
            out.put_slice(data);
        }
        Down::Close { graceful } => {
            begin(out, CLOSE, 1);
            out.put_u8(u8::from(*graceful));
        }
    }
}

/// Splits the first whole frame off `buf`: `Ok(Some((kind, body)))`, `Ok(None)` if `buf` holds only
/// part of one (room for the rest is reserved).
fn take(buf: &mut BytesMut) -> Result<Option<(u8, Bytes)>, PipeError> {
    let Some(header) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(PipeError::Length(len));
    }
    if buf.len() < HEADER + len {
        buf.reserve(HEADER + len - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER);
    let kind = buf.get_u8();
    Ok(Some((kind, buf.split_to(len - 1).freeze())))
}

fn text(kind: u8, body: &[u8]) -> Result<String, PipeError> {
    String::from_utf8(body.to_vec()).map_err(|_| bad(kind, body.len()))
}

fn bad(kind: u8, len: usize) -> PipeError {
    PipeError::Body {
        kind: kind as char,
        len,
    }
}

/// Splits the first whole [`Up`] frame off `buf` (`Ok(None)`: more bytes needed).
pub fn take_up(buf: &mut BytesMut) -> Result<Option<Up>, PipeError> {
    let Some((kind, mut body)) = take(buf)? else {
        return Ok(None);
    };
    let len = body.len();
    let stamped = |body: &mut Bytes| {
        if body.len() < 8 {
            return Err(bad(kind, len));
        }
        Ok(body.get_u64())
    };
    Ok(Some(match kind {
        TEXT => {
            let recv_ns = stamped(&mut body)?;
            Up::Text {
                recv_ns,
                text: body,
            }
        }
        BINARY => {
            let recv_ns = stamped(&mut body)?;
            Up::Binary {
                recv_ns,
                data: body,
            }
        }
        OTHER => Up::Other {
            recv_ns: stamped(&mut body)?,
        },
        CONNECTED => Up::Connected,
        CONNECT_FAILED => Up::ConnectFailed(text(kind, &body)?),
        ENDED => {
            if body.is_empty() {
                return Err(bad(kind, len));
            }
            let code = body.get_u8();
            let t = text(kind, &body)?;
            Up::Ended(match code {
                0 => EndKind::Requested,
                1 => EndKind::CloseFrame(t),
                2 => EndKind::StreamEnded,
                3 => EndKind::Error(t),
                _ => return Err(bad(kind, len)),
            })
        }
        HEARTBEAT => Up::Heartbeat,
        HELLO => {
            if body.len() < 4 {
                return Err(bad(kind, len));
            }
            let pid = body.get_u32();
            Up::Hello {
                pid,
                version: text(kind, &body)?,
            }
        }
        other => return Err(PipeError::Kind(other)),
    }))
}

/// Splits the first whole [`Down`] frame off `buf` (`Ok(None)`: more bytes needed).
pub fn take_down(buf: &mut BytesMut) -> Result<Option<Down>, PipeError> {
    let Some((kind, mut body)) = take(buf)? else {
        return Ok(None);
    };
    let len = body.len();
    Ok(Some(match kind {
        CONNECT => {
            if body.len() < 8 {
                return Err(bad(kind, len));
            }
            let timeout_ms = body.get_u64();
            Down::Connect {
                timeout_ms,
                url: text(kind, &body)?,
            }
        }
        SEND => Down::Send(text(kind, &body)?),
        PING => Down::Ping(body.to_vec()),
        CLOSE => Down::Close {
            graceful: body.first().is_some_and(|&b| b != 0),
        },
        other => return Err(PipeError::Kind(other)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups() -> Vec<Up> {
        vec![
            Up::Hello {
                pid: 77,
                version: "0.1.0".into(),
            },
            Up::Connected,
            Up::Text {
                recv_ns: 1_700_000_000_123_456_789,
                text: Bytes::from_static(br#"{"topic":"publicTrade.BTCUSDT","data":[]}"#),
            },
            Up::Binary {
                recv_ns: 5,
                data: Bytes::from_static(b"\x00\x01\xff"),
            },
            Up::Other { recv_ns: 9 },
            Up::Heartbeat,
            Up::Ended(EndKind::CloseFrame("1000 bye".into())),
            Up::Ended(EndKind::Requested),
            Up::Ended(EndKind::StreamEnded),
            Up::Ended(EndKind::Error("reset by peer".into())),
            Up::ConnectFailed("connection refused".into()),
        ]
    }

    fn downs() -> Vec<Down> {
        vec![
            Down::Connect {
                timeout_ms: 10_000,
                url: "wss://stream.bybit.com/v5/public/linear".into(),
            },
            Down::Send(r#"{"op":"ping","req_id":"ping-1"}"#.into()),
            Down::Ping(vec![1, 2, 3]),
            Down::Close { graceful: true },
            Down::Close { graceful: false },
        ]
    }

    #[test]
    fn both_directions_round_trip_exactly_and_byte_by_byte() {
        let mut buf = BytesMut::new();
        for m in ups() {
            put_up(&mut buf, &m);
        }
        let all = buf.clone();
        let mut got = Vec::new();
        while let Some(m) = take_up(&mut buf).unwrap() {
            got.push(m);
        }
        assert_eq!(got, ups());
        assert!(buf.is_empty());
        // Fed one byte at a time, the same frames come out.
        let mut part = BytesMut::new();
        let mut got = Vec::new();
        for b in all.iter() {
            part.put_u8(*b);
            while let Some(m) = take_up(&mut part).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, ups());
        let mut buf = BytesMut::new();
        for c in downs() {
            put_down(&mut buf, &c);
        }
        let mut got = Vec::new();
        while let Some(c) = take_down(&mut buf).unwrap() {
            got.push(c);
        }
        assert_eq!(got, downs());
    }

    #[test]
    fn a_text_frame_costs_thirteen_bytes_of_header() {
        let mut buf = BytesMut::new();
        put_text(&mut buf, 1, b"abc");
        assert_eq!(buf.len(), 13 + 3);
    }

    #[test]
    fn bad_lengths_kinds_and_bodies_are_errors_not_panics() {
        let mut b = BytesMut::from(&((MAX_FRAME + 1) as u32).to_be_bytes()[..]);
        assert_eq!(take_up(&mut b), Err(PipeError::Length(MAX_FRAME + 1)));
        assert!(b.capacity() < 1024, "no 16 MB allocation for a lie");
        let mut b = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(take_up(&mut b), Err(PipeError::Length(0)));
        let mut b = BytesMut::from(&[0u8, 0, 0, 1, b'?'][..]);
        assert_eq!(take_up(&mut b), Err(PipeError::Kind(b'?')));
        let mut b = BytesMut::from(&[0u8, 0, 0, 3, TEXT, 1, 2][..]);
        assert!(matches!(take_up(&mut b), Err(PipeError::Body { .. })));
        let mut b = BytesMut::from(&[0u8, 0, 0, 2, SEND, 0xff][..]);
        assert!(matches!(take_down(&mut b), Err(PipeError::Body { .. })));
        // Random bytes never panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            let mut buf = BytesMut::new();
            for _ in 0..(x % 48) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.put_u8(x as u8);
            }
            if buf.len() >= 2 {
                buf[0] = 0;
                buf[1] = 0;
            }
            let mut other = buf.clone();
            while let Ok(Some(_)) = take_up(&mut buf) {}
            while let Ok(Some(_)) = take_down(&mut other) {}
        }
    }
}
