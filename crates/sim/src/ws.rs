//! The WebSocket endpoint `/v5/public/{category}`: one task per connection that reads requests,
//! writes queued frames in batches (applying the stall/silence/slow faults), and closes idle, slow,
//! faulted or cancelled connections.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};

use super::hub::{Conn, Ctl, Out, NOT_MARKET};
use super::listener::PeerAddr;
use super::ops;
use super::server::Shared;
use super::stats::Stats;
use crate::protocol::Category;

/// Most frames written before one flush.
const WRITE_BATCH: usize = 512;

/// The WebSocket routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/v5/public/{category}", get(upgrade))
}

async fn upgrade(
    Path(category): Path<String>,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let category = match category.parse::<Category>() {
        Ok(c) if shared.cfg.categories.contains(&c) => c,
        _ => return (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    };
    ws.on_upgrade(move |socket| run(shared, socket, category, peer))
}

/// A `conn_id` in the category's style (spot: UUID; futures: `d6ki1eae0cl5msgggj7g-1uoz2`).
fn conn_id(category: Category, seed: u64, id: u64) -> String {
    let mut r = rand::rngs::SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    match category {
        Category::Spot => format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            r.random::<u32>(),
            r.random::<u16>(),
            r.random::<u16>() & 0xfff,
            (r.random::<u16>() & 0x3fff) | 0x8000,
            r.random::<u64>() & 0xffff_ffff_ffff
        ),
        _ => {
            const A: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
            let mut s: String = (0..20)
                .map(|_| A[r.random_range(0..A.len())] as char)
                .collect();
            s.push('-');
            s.extend((0..5).map(|_| A[r.random_range(0..A.len())] as char));
            s
        }
    }
}

enum End {
    /// Send a close frame.
    Close,
    /// TCP reset.
    Reset,
    /// Just drop the socket (FIN, no close frame).
    Drop,
}

async fn run(shared: Arc<Shared>, socket: WebSocket, category: Category, peer: PeerAddr) {
    let id = shared.next_conn_id();
    let (conn, mut rx, mut ctl_rx) = Conn::new(
        id,
        conn_id(category, shared.cfg.seed, id),
        category,
        peer.0,
        shared.cfg.connection_queue,
        shared.reset_flag(&peer.0),
    );
    shared.add_conn(&conn);
    Stats::add(&shared.stats.connections_accepted, 1);
    Stats::add(&shared.stats.connections_open, 1);
    let (mut sink, mut stream) = socket.split();
    let idle = shared.cfg.idle_timeout;
    let mut last_activity = Instant::now();
    let mut tick =
        tokio::time::interval((idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    let mut batch: Vec<Out> = Vec::with_capacity(WRITE_BATCH);
    let end = loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break End::Close,
            ctl = ctl_rx.recv() => match ctl {
                Some(Ctl::Close) => break End::Close,
                Some(Ctl::Reset) => break End::Reset,
                Some(Ctl::Overflow) => {
                    Stats::add(&shared.stats.connections_overflowed, 1);
                    break End::Drop;
                }
                None => break End::Drop,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if ops::handle(&shared, &conn, t.as_str()) {
                        last_activity = Instant::now();
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    let text = String::from_utf8_lossy(&b).into_owned();
                    if ops::handle(&shared, &conn, &text) {
                        last_activity = Instant::now();
                    }
                }
                Some(Ok(Message::Ping(_))) => last_activity = Instant::now(),
                Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break End::Drop,
            },
            out = rx.recv() => {
                let Some(out) = out else { break End::Drop };
                batch.push(out);
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                match send_batch(&shared, &conn, &mut sink, &mut batch).await {
                    Ok(0) => {}
                    Ok(_) => last_activity = Instant::now(),
                    Err(()) => break End::Drop,
                }
            }
            _ = tick.tick() => {
                if last_activity.elapsed() >= idle {
                    break End::Drop;
                }
            }
        }
    };
    shared.remove_conn(id);
    shared.lock_core().hub.remove_conn(id);
    shared
        .stats
        .connections_open
        .fetch_sub(1, Ordering::Relaxed);
    match end {
        End::Close => {
            let frame = CloseFrame {
                code: 1000,
                reason: "".into(),
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                sink.send(Message::Close(Some(frame))),
            )
            .await;
        }
        End::Reset => conn.reset_flag.store(true, Ordering::Release),
        End::Drop => {}
    }
    drop(sink);
    drop(stream);
}

/// Writes a batch, honouring the connection's fault windows; returns the frames sent.
async fn send_batch(
    shared: &Shared,
    conn: &Conn,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    batch: &mut Vec<Out>,
) -> Result<usize, ()> {
    let mut sent = 0usize;
    let mut bytes = 0usize;
    let faulted = conn.has_faults.load(Ordering::Acquire);
    let faults = if faulted {
        conn.faults.lock().map(|f| f.clone()).ok()
    } else {
        None
    };
    let latency = shared.cfg.latency;
    for out in batch.drain(..) {
        if !latency.is_zero() {
            sink.flush().await.map_err(|_| ())?;
            tokio::time::sleep_until((out.at + latency).into()).await;
        }
        if let Some(f) = &faults {
            let now = shared.mono_ms();
            if now < f.stall_until {
                continue;
            }
            if out.inst != NOT_MARKET
                && now < f.silence_until
                && (f.silence_insts.is_empty() || f.silence_insts.contains(&out.inst))
            {
                continue;
            }
            if now < f.slow_until && f.slow_ms > 0 {
                sink.flush().await.map_err(|_| ())?;
                tokio::time::sleep_until((out.at + Duration::from_millis(f.slow_ms)).into()).await;
            }
        }
        bytes += out.text.len();
        sent += 1;
        sink.feed(Message::Text(out.text)).await.map_err(|_| ())?;
    }
    if sent > 0 {
        sink.flush().await.map_err(|_| ())?;
        Stats::add(&shared.stats.messages_sent, sent as u64);
        Stats::add(&shared.stats.bytes_sent, bytes as u64);
    }
    Ok(sent)
}
