//! Helpers shared by the simulator's integration tests: start a simulator on a free port, and a
//! plain tokio-tungstenite client that reads text frames with timeouts.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hft_connector::sim::{SimConfig, SimHandle, Simulator};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A simulator on 127.0.0.1:0 with the market paused (tests drive it with `step`).
pub async fn paused(seed: u64) -> SimHandle {
    let cfg = SimConfig {
        start_paused: true,
        ..SimConfig::for_tests(seed)
    };
    start(cfg).await
}

/// A simulator with `cfg`.
pub async fn start(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg).await.expect("simulator starts")
}

/// What a read produced.
#[derive(Debug)]
pub enum Read {
    /// A text frame.
    Text(String),
    /// A close frame (code).
    Closed(Option<u16>),
    /// The stream ended or failed without a close frame.
    Dropped(String),
    /// Nothing within the timeout.
    Timeout,
}

/// A plain WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client { ws }
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next frame (text, close or end) within `timeout`.
    pub async fn read(&mut self, timeout: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Read::Timeout,
                Ok(None) => return Read::Dropped("end of stream".into()),
                Ok(Some(Err(e))) => return Read::Dropped(e.to_string()),
                Ok(Some(Ok(Message::Text(t)))) => return Read::Text(t.to_string()),
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Read::Closed(f.map(|f| u16::from(f.code)))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next text frame; panics on anything else.
    pub async fn text(&mut self) -> String {
        match self.read(Duration::from_secs(60)).await {
            Read::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame as JSON.
    pub async fn json(&mut self) -> Value {
        let t = self.text().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }

    /// Text frames until `pred` holds for one (returned), within `timeout`.
    pub async fn until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Text(t) if pred(&t) => return Some(t),
                Read::Text(_) => continue,
                _ => return None,
            }
        }
    }

    /// All text frames that arrive within `window`.
    pub async fn drain(&mut self, window: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Text(t) => out.push(t),
                _ => return out,
            }
        }
    }

    /// Subscribes and returns the ack.
    pub async fn subscribe(&mut self, req_id: &str, args: &[&str]) -> Value {
        let req = serde_json::json!({"req_id": req_id, "op": "subscribe", "args": args});
        self.send(&req.to_string()).await;
        let ack = self
            .until(Duration::from_secs(60), |t| {
                t.contains("\"op\":\"subscribe\"")
            })
            .await
            .expect("an ack");
        serde_json::from_str(&ack).expect("ack is JSON")
    }
}

/// GET `url` as JSON.
pub async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON body")
}
