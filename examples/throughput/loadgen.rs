//! The Bybit-shaped load generator: a loopback server speaking enough of the V5 public protocol for
//! hft-feed (subscribe acks in the exact linear shape, pongs for `{"op":"ping"}`, an empty
//! `/v5/market/recent-trade` so a gap-fill succeeds) that streams the pre-serialized frames of
//! [`crate::frames`] with blocking writes of many frames at once, either as fast as the socket
//! takes them or paced. The rate is chosen by the client in the URL path:
//! `ws://ADDR/pace/{msgs_per_s}/v5/public/linear` (0 = as fast as possible).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hft_connector::protocol::Category;
use hft_connector::sim::encode;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, WebSocket};

use crate::frames::{self, Sequencer, BOOK_TOPIC};

/// How frames are generated and written.
#[derive(Debug, Clone, Copy)]
pub struct GenOptions {
    /// Frames in the pre-serialized ring.
    pub ring: usize,
    /// One trade frame every this many frames (0: no trades).
    pub trade_every: usize,
    /// Most frames per write (one flush per batch).
    pub batch: usize,
    /// Seed of the ring's contents.
    pub seed: u64,
}

/// Unix time in ns (the clock every process of the benchmark shares).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Accepts connections forever, one thread per connection (and one reading its requests).
pub fn serve(listener: TcpListener, opts: GenOptions) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            if let Err(e) = handle(stream, opts) {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) {
                    eprintln!("loadgen: connection ended: {e}");
                }
            }
        });
    }
}

/// Reads one HTTP request head (the clients send nothing else before the answer).
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
    Ok(Some(head))
}

fn handle(mut stream: TcpStream, opts: GenOptions) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // REST clients keep the connection alive: answer requests until it closes or upgrades.
    while let Some(head) = read_head(&mut stream)? {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(&head).is_err() {
            return respond(&mut stream, "400 Bad Request", "bad request");
        }
        let path = req.path.unwrap_or("/").to_string();
        let key = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|h| h.value.to_vec());
        if path.starts_with("/v5/market/recent-trade") {
            let body = format!(
                r#"{{"retCode":0,"retMsg":"OK","result":{{"category":"linear","list":[]}},"retExtInfo":{{}},"time":{}}}"#,
                now_ns() / 1_000_000
            );
            respond(&mut stream, "200 OK", &body)?;
            continue;
        }
        let (Some(key), Some(rate)) = (key, pace_of(&path)) else {
            return respond(&mut stream, "404 Not Found", "not found");
        };
        let accept = derive_accept_key(&key);
        write!(
            stream,
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )?;
        return session(stream, rate, opts);
    }
    Ok(())
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The paced rate in `/pace/{rate}/v5/public/linear` (0: as fast as possible).
pub fn pace_of(path: &str) -> Option<f64> {
    let rest = path.strip_prefix("/pace/")?;
    let (rate, tail) = rest.split_once('/')?;
    let rate: f64 = rate.parse().ok()?;
    (tail == "v5/public/linear" && rate.is_finite() && rate >= 0.0).then_some(rate)
}

/// What the request reader asks the writer to send.
enum Control {
    /// A JSON answer (ack or pong).
    Reply(String),
    /// A fresh book snapshot (after a book subscription), then the stream.
    Snapshot,
}

/// Reads the client's requests and answers them through the writer.
fn read_requests(stream: TcpStream, tx: mpsc::Sender<Control>) {
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, None);
    let mut n = 0u64;
    while let Ok(msg) = ws.read() {
        let Message::Text(text) = msg else { continue };
        let Ok(req) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            continue;
        };
        let req_id = req["req_id"].as_str();
        let op = req["op"].as_str().unwrap_or_default();
        n += 1;
        let conn_id = format!("bench-{n}");
        let reply = match op {
            "ping" => encode::pong(Category::Linear, &conn_id, req_id),
            _ => encode::ack(Category::Linear, &conn_id, req_id, op, true, ""),
        };
        let book = op == "subscribe"
            && req["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(BOOK_TOPIC)));
        if tx.send(Control::Reply(reply)).is_err() || (book && tx.send(Control::Snapshot).is_err())
        {
            return;
        }
    }
}

fn text_frame(text: String) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 4);
    // Formatting into a Vec cannot fail.
    let _ = Frame::message(text.into_bytes(), OpCode::Data(Data::Text), true).format(&mut out);
    out
}

/// Streams to one subscribed client until it goes away.
fn session(stream: TcpStream, rate: f64, opts: GenOptions) -> io::Result<()> {
    let (tx, rx) = mpsc::channel();
    let reader = stream.try_clone()?;
    std::thread::spawn(move || read_requests(reader, tx));
    let mut out = stream;
    let mut ring = frames::ring(opts.ring.max(1), opts.trade_every, opts.seed);
    let mut snapshot = frames::snapshot();
    let mut seq = Sequencer::default();
    let mut buf: Vec<u8> = Vec::with_capacity(opts.batch * 512);
    let mut next = 0usize;
    let mut streaming = false;
    let mut start = Instant::now();
    let mut sent = 0u64;
    loop {
        // Answers first; before the book is subscribed, wait for requests.
        let ctrl = if streaming {
            rx.try_recv().ok()
        } else {
            Some(rx.recv().map_err(|_| io::ErrorKind::ConnectionAborted)?)
        };
        if let Some(c) = ctrl {
            match c {
                Control::Reply(text) => out.write_all(&text_frame(text))?,
                Control::Snapshot => {
                    out.write_all(snapshot.patch_snapshot(now_ns(), &seq))?;
                    if !streaming {
                        streaming = true;
                        start = Instant::now();
                        sent = 0;
                    }
                }
            }
            continue;
        }
        let n = if rate > 0.0 {
            let due = ((start.elapsed().as_secs_f64() * rate) as u64).saturating_sub(sent);
            if due == 0 {
                let next_at = start + Duration::from_secs_f64((sent + 1) as f64 / rate);
                std::thread::sleep(next_at.saturating_duration_since(Instant::now()));
                continue;
            }
            due.min(opts.batch as u64) as usize
        } else {
            opts.batch
        };
        buf.clear();
        let now = now_ns();
        for _ in 0..n {
            buf.extend_from_slice(ring[next].patch(now, &mut seq));
            next = (next + 1) % ring.len();
        }
        out.write_all(&buf)?;
        sent += n as u64;
    }
}

/// Starts the generator on an ephemeral loopback port in this process (tests).
#[cfg(test)]
pub fn spawn_local(opts: GenOptions) -> io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || serve(listener, opts));
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use hft_connector::protocol::rest::{self, RecentTradeResult};
    use hft_connector::protocol::ws::{decode, Frame as WsFrame};

    const OPTS: GenOptions = GenOptions {
        ring: 64,
        trade_every: 4,
        batch: 16,
        seed: 3,
    };

    type Client = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn next_text(ws: &mut Client) -> String {
        loop {
            if let Message::Text(t) = ws.next().await.expect("open").expect("frame") {
                return t.to_string();
            }
        }
    }

    #[test]
    fn the_pace_is_read_from_the_path() {
        assert_eq!(pace_of("/pace/10000/v5/public/linear"), Some(10_000.0));
        assert_eq!(pace_of("/pace/0/v5/public/linear"), Some(0.0));
        assert_eq!(pace_of("/pace/x/v5/public/linear"), None);
        assert_eq!(pace_of("/v5/public/linear"), None);
        assert_eq!(pace_of("/pace/10/v5/public/spot"), None);
    }

    #[tokio::test]
    async fn acks_pongs_snapshot_then_contiguous_deltas_and_an_empty_recent_trade_list() {
        let addr = spawn_local(OPTS).expect("bind");
        let url = format!("ws://{addr}/pace/0/v5/public/linear");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let sub = r#"{"req_id":"sub-1","op":"subscribe","args":["publicTrade.BTCUSDT","orderbook.50.BTCUSDT"]}"#;
        ws.send(Message::text(sub)).await.expect("send");
        let ack = next_text(&mut ws).await;
        let WsFrame::Ack(a) = decode(&ack).expect("ack decodes") else {
            panic!("not an ack: {ack}");
        };
        assert!(a.success);
        assert_eq!(a.req_id.as_deref(), Some("sub-1"));
        let snap = next_text(&mut ws).await;
        let WsFrame::Book(b) = decode(&snap).expect("snapshot decodes") else {
            panic!("not a book: {snap}");
        };
        assert_eq!((b.bids.len(), b.asks.len(), b.u), (50, 50, frames::FIRST_U));
        let mut last_u = b.u;
        let mut last_stamp = 0;
        let mut trades = 0;
        for _ in 0..1000 {
            let text = next_text(&mut ws).await;
            match decode(&text).expect("decodes") {
                WsFrame::Book(b) => {
                    assert_eq!(b.u, last_u + 1);
                    last_u = b.u;
                    let stamp = b.seq.expect("stamp");
                    assert!(stamp >= last_stamp);
                    last_stamp = stamp;
                }
                WsFrame::Trades(_) => trades += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(trades, 250);
        ws.send(Message::text(r#"{"req_id":"p1","op":"ping"}"#))
            .await
            .expect("ping");
        // The pong arrives among the market frames.
        let mut pong = false;
        for _ in 0..1_000_000 {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                break;
            };
            if let Ok(WsFrame::Pong(_)) = decode(t.as_str()) {
                pong = true;
                break;
            }
        }
        assert!(pong, "no pong");
        let body = reqwest::get(format!(
            "http://{addr}/v5/market/recent-trade?category=linear&symbol=BTCUSDT&limit=1000"
        ))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
        let r = rest::decode::<RecentTradeResult>(&body).expect("recent-trade decodes");
        assert!(r.result.list.is_empty());
    }
}
