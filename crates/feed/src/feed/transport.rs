//! What carries a connection's bytes: a WebSocket this process opens itself ([`Transport::Direct`],
//! in-process isolation), or one a worker process holds and pumps through its pipes
//! ([`Transport::Worker`], process isolation, see [`crate::worker`]). The connection shell
//! ([`super::connection`]) and the session above it are the same code either way: one decode,
//! one book, one trade tape, one health computation whichever the isolation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::worker::supervisor::{Proc, Pump};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens connections.
pub(crate) enum Transport {
    /// A WebSocket of this process.
    Direct,
    /// A worker process's WebSocket (the worker is started, watched and replaced here).
    Worker(Box<Pump>),
}

/// One open connection.
pub(crate) enum Link {
    /// This process's WebSocket.
    Ws {
        sink: SplitSink<Ws, Message>,
        stream: SplitStream<Ws>,
    },
    /// A worker's WebSocket, through its pipes.
    Worker(Box<Proc>),
}

/// What a connection reads next.
pub(crate) enum Incoming {
    /// A text frame and its receive time (Unix ns).
    Text(Utf8Bytes, u64),
    /// A binary frame of this many bytes.
    Binary(usize, u64),
    /// A ping or pong frame.
    Other(u64),
    /// The server closed the connection (its close frame, if any, described).
    Closed(Option<String>),
    /// The connection (or the worker carrying it) failed.
    Error(String),
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Transport {
    /// Opens a connection to `url` within `timeout`.
    pub(crate) async fn connect(&mut self, url: &str, timeout: Duration) -> Result<Link, String> {
        match self {
            Transport::Direct => {
                match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
                    Ok(Ok((ws, _))) => {
                        let (sink, stream) = ws.split();
                        Ok(Link::Ws { sink, stream })
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "connect timed out after {:.1} s",
                        timeout.as_secs_f64()
                    )),
                }
            }
            Transport::Worker(pump) => pump.connect(url, timeout).await.map(Link::Worker),
        }
    }

    /// Takes a connection back once it ended (a worker that failed is stopped and reaped).
    pub(crate) async fn release(&mut self, link: Link) {
        if let (Transport::Worker(pump), Link::Worker(proc)) = (self, link) {
            pump.release(proc).await;
        }
    }

    /// The span the connection's events are logged in: the worker's pid in process isolation.
    pub(crate) fn span(&self) -> tracing::Span {
        match self {
            Transport::Direct => tracing::Span::none(),
            Transport::Worker(pump) => pump.span(),
        }
    }

    /// Stops whatever runs beside the feed (the worker: SIGTERM, SIGKILL after the grace period).
    pub(crate) async fn shutdown(&mut self) {
        if let Transport::Worker(pump) = self {
            pump.shutdown().await;
        }
    }
}

impl Link {
    /// The next frame or the end (cancel-safe).
    pub(crate) async fn next(&mut self) -> Incoming {
        match self {
            Link::Ws { stream, .. } => {
                let msg = stream.next().await;
                let recv_ns = unix_ns();
                match msg {
                    None => Incoming::Closed(None),
                    Some(Err(e)) => Incoming::Error(e.to_string()),
                    Some(Ok(Message::Text(t))) => Incoming::Text(t, recv_ns),
                    Some(Ok(Message::Binary(b))) => Incoming::Binary(b.len(), recv_ns),
                    Some(Ok(Message::Close(frame))) => Incoming::Closed(Some(
                        frame
                            .map(|f| format!("{} {}", f.code, f.reason))
                            .unwrap_or_default(),
                    )),
                    Some(Ok(_)) => Incoming::Other(recv_ns),
                }
            }
            Link::Worker(proc) => proc.next().await,
        }
    }

    /// Sends a text frame.
    pub(crate) async fn send(&mut self, text: String) -> Result<(), String> {
        match self {
            Link::Ws { sink, .. } => sink
                .send(Message::text(text))
                .await
                .map_err(|e| e.to_string()),
            Link::Worker(proc) => proc.send_text(text).await,
        }
    }

    /// Closes the connection, with a close frame if `graceful`.
    pub(crate) async fn close(&mut self, graceful: bool) {
        match self {
            Link::Ws { sink, .. } => {
                if graceful {
                    let _ = sink.send(Message::Close(None)).await;
                }
                let _ = sink.close().await;
            }
            Link::Worker(proc) => proc.close(graceful).await,
        }
    }

    /// When the link itself is in doubt (a worker silent for longer than its heartbeat allows),
    /// how long to hold the session's timers back before asking again: what the session would
    /// judge (pong timeout, stale data) is the worker's silence, not the exchange's, and the
    /// worker's hang detection decides. `None` for a direct socket.
    pub(crate) fn suspect(&self) -> Option<Duration> {
        match self {
            Link::Ws { .. } => None,
            Link::Worker(proc) => proc.suspect(),
        }
    }

    /// The connection went live (connection `number` of the feed).
    pub(crate) fn on_live(&self, number: u64) {
        if let Link::Worker(proc) = self {
            proc.on_live(number);
        }
    }
}
