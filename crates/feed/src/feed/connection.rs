//! One connection's life as a thin async shell around the sans-IO
//! [`Session`](super::session::Session): it moves frames between the socket and the session, stamps
//! receive times, sleeps until the session's next deadline, runs the REST gap-fills the session
//! asks for beside the socket (concurrently; reads and pings go on) and routes its events. Every
//! protocol decision (acks, heartbeat, stale data, book resync, trade recovery) is the session's.
//! Ends with the reason the connection ended.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::event::DisconnectReason;
use super::health::ConnState;
use super::session::{Action, Now};
use super::Runner;
use crate::protocol::rest::{self, RecentTradeResult};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for our close frame to leave when a connection ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a connection ended.
pub(crate) struct Ended {
    pub reason: DisconnectReason,
    /// How long it was live (zero if it never was).
    pub live_for: Duration,
}

/// One connection (borrowing the runner for state that outlives it, the session among it).
pub(crate) struct Connection<'r> {
    r: &'r mut Runner,
    sink: SplitSink<Ws, Message>,
    live_since: Option<Instant>,
    /// When the frame being handled arrived (market events are stamped with it).
    frame_now: Now,
    /// REST gap-fills in flight: they run beside the socket, which is read all along.
    fetches: JoinSet<(String, Result<Vec<rest::RestTrade>, String>)>,
}

impl<'r> Connection<'r> {
    /// Runs a connection to its end.
    pub(crate) async fn run(r: &'r mut Runner, ws: Ws) -> Ended {
        let (sink, mut stream) = ws.split();
        let mut c = Connection {
            r,
            sink,
            live_since: None,
            frame_now: Now {
                mono_ms: 0,
                unix_ns: 0,
            },
            fetches: JoinSet::new(),
        };
        let reason = c.drive(&mut stream).await;
        let live_for = c.live_since.map(|t| t.elapsed()).unwrap_or_default();
        // Bounded: a peer that stopped reading must not hold a shutdown (or a reconnect) up.
        let close = async {
            if reason == DisconnectReason::Shutdown {
                let _ = c.sink.send(Message::Close(None)).await;
            }
            let _ = c.sink.close().await;
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
        c.r.shared.health.set_state(match reason {
            DisconnectReason::SubscribeRefused(_) => ConnState::Refused,
            DisconnectReason::Stale => ConnState::Stale,
            _ => ConnState::Disconnected,
        });
        Ended { reason, live_for }
    }

    /// Now, on the session's two clocks.
    fn now(&self) -> Now {
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Now {
            mono_ms: self.r.shared.health.mono_ms(),
            unix_ns,
        }
    }

    /// The tokio instant of a session deadline (monotonic ms on the health clock).
    fn instant_at(&self, deadline_ms: u64) -> Instant {
        let now_ms = self.r.shared.health.mono_ms();
        Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    }

    async fn drive(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<Ws>,
    ) -> DisconnectReason {
        let now = self.now();
        let r = &mut *self.r;
        r.session.connected(now, r.connections, &r.shared.books);
        let cancel = self.r.cancel.clone();
        // One cancellation future and one timer for the connection's life, re-armed only when
        // the session's next deadline changes: not a new waker registration, timer entry and
        // clock read per frame (they were ~9 % of a saturated feed, BENCHMARKS.md issue 12).
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<u64> = None;
        // Requests made before this socket opened are answered by it.
        self.r.control.borrow_and_update();
        self.r.resync.borrow_and_update();
        // Pinned for the connection's life too (re-made only after one fires).
        let reconnect_req = next_request(self.r.control.clone());
        tokio::pin!(reconnect_req);
        let resync_req = next_request(self.r.resync.clone());
        tokio::pin!(resync_req);

        loop {
            if let Some(reason) = self.perform().await {
                return reason;
            }
            let next = self.r.session.next_deadline();
            if next != armed {
                armed = next;
                if let Some(d) = next {
                    timer.as_mut().reset(self.instant_at(d));
                }
            }
            tokio::select! {
                biased;
                _ = &mut cancelled => return DisconnectReason::Shutdown,
                (why, _) = &mut reconnect_req => {
                    self.r.control.borrow_and_update();
                    return DisconnectReason::Requested(why);
                }
                (_, rx) = &mut resync_req => {
                    resync_req.set(next_request(rx));
                    self.r.resync.borrow_and_update();
                    let r = &mut *self.r;
                    r.session.resync_books(&r.shared.books);
                }
                Some(done) = self.fetches.join_next(), if !self.fetches.is_empty() => {
                    let now = self.now();
                    match done {
                        Ok((symbol, result)) => self.r.session.on_recent_trades(&symbol, result, now),
                        // Only a panic in the fetch (aborts happen when the connection ends).
                        Err(e) => tracing::error!(event = "bybit_connector_trade_recovery_failed", error = %e),
                    }
                }
                _ = &mut timer, if armed.is_some() => {
                    // Fired: re-armed from the session's next deadline on the next turn.
                    armed = None;
                    let now = self.now();
                    let r = &mut *self.r;
                    let health = &r.shared.health;
                    r.session.on_timer(now, |symbols| health.stalest(symbols));
                }
                msg = stream.next() => {
                    self.r.shared.activity.touch();
                    let recv_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
                    let now = Now { mono_ms: self.r.shared.health.mono_ms(), unix_ns: recv_ns };
                    self.frame_now = now;
                    let r = &mut *self.r;
                    match msg {
                        None => return DisconnectReason::ClosedByServer,
                        Some(Err(e)) => return DisconnectReason::Error(e.to_string()),
                        Some(Ok(Message::Text(text))) => {
                            if let Some(tap) = &r.cfg.raw_tap {
                                tap.offer(recv_ns, text.as_str());
                            }
                            r.session.on_text(text.as_str(), now, &r.shared.books);
                        }
                        Some(Ok(Message::Close(frame))) => {
                            tracing::info!(event = "bybit_connector_close_frame", frame = ?frame);
                            return DisconnectReason::ClosedByServer;
                        }
                        Some(Ok(Message::Binary(b))) => r.session.on_binary(b.len(), now),
                        Some(Ok(_)) => r.session.on_other(now),
                    }
                }
            }
        }
    }

    /// Carries out the session's actions in order; the reason when one ends the connection.
    async fn perform(&mut self) -> Option<DisconnectReason> {
        while let Some(action) = self.r.session.poll_action() {
            let health = &self.r.shared.health;
            match action {
                Action::Send(text) => {
                    let sent = tokio::select! {
                        sent = self.sink.send(Message::text(text)) => sent,
                        // A peer that stopped reading does not hold a shutdown up.
                        _ = self.r.cancel.cancelled() => return Some(DisconnectReason::Shutdown),
                    };
                    if let Err(e) = sent {
                        return Some(DisconnectReason::Error(e.to_string()));
                    }
                }
                Action::Emit(ev) => {
                    self.r.emit(ev).await;
                }
                Action::FetchRecentTrades { symbol, limit } => {
                    let http = self.r.http.clone();
                    let url = format!(
                        "{}/v5/market/recent-trade",
                        self.r.cfg.feed.rest_url.trim_end_matches('/')
                    );
                    let category = self.r.cfg.feed.category.to_string();
                    self.fetches.spawn(async move {
                        let result = fetch_recent(&http, &url, &category, &symbol, limit).await;
                        (symbol, result)
                    });
                }
                Action::SetState(state) => health.set_state(state),
                Action::Live => {
                    self.live_since = Some(Instant::now());
                    health.live(&self.r.cfg.feed.symbols);
                }
                Action::MarketEvent(symbol) => health.market_event_at(
                    &symbol,
                    self.frame_now.mono_ms,
                    self.frame_now.unix_ns / 1_000_000,
                ),
                Action::CountError => health.error(),
                Action::CountStale(symbol) => health.stale_symbol(&symbol),
                Action::Close(reason) => return Some(reason),
            }
        }
        None
    }
}

/// `GET /v5/market/recent-trade` for `symbol`, three attempts with a short backoff.
async fn fetch_recent(
    http: &reqwest::Client,
    url: &str,
    category: &str,
    symbol: &str,
    limit: usize,
) -> Result<Vec<rest::RestTrade>, String> {
    let mut last_error = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let resp = http
            .get(url)
            .query(&[
                ("category", category),
                ("symbol", symbol),
                ("limit", &limit.to_string()),
            ])
            .send()
            .await;
        let body = match resp {
            Ok(r) if r.status().is_success() => r.text().await,
            Ok(r) => {
                last_error = format!("HTTP {}", r.status());
                continue;
            }
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        match body
            .map_err(|e| e.to_string())
            .and_then(|b| rest::decode::<RecentTradeResult>(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => return Ok(r.result.list),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// The next operator request `rx` has not seen, with the receiver back for the next one.
async fn next_request(
    mut rx: tokio::sync::watch::Receiver<super::control::ControlRequest>,
) -> (
    String,
    tokio::sync::watch::Receiver<super::control::ControlRequest>,
) {
    let why = super::control::requested(&mut rx).await;
    (why, rx)
}
