//! One connection's life as a thin async shell around the sans-IO
//! [`Session`](super::session::Session): it moves frames between the socket and the session, stamps
//! receive times, sleeps until the session's next deadline, performs the REST gap-fill the session
//! asks for and routes its events. Every protocol decision (acks, heartbeat, stale data, book
//! resync, trade recovery) is the session's. Ends with the reason the connection ended.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::event::DisconnectReason;
use super::health::ConnState;
use super::session::{Action, Now};
use super::Runner;
use crate::protocol::rest::{self, RecentTradeResult};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
}

impl<'r> Connection<'r> {
    /// Runs a connection to its end.
    pub(crate) async fn run(r: &'r mut Runner, ws: Ws) -> Ended {
        let (sink, mut stream) = ws.split();
        let mut c = Connection {
            r,
            sink,
            live_since: None,
        };
        let reason = c.drive(&mut stream).await;
        let live_for = c.live_since.map(|t| t.elapsed()).unwrap_or_default();
        if reason == DisconnectReason::Shutdown {
            let _ = c.sink.send(Message::Close(None)).await;
        }
        let _ = c.sink.close().await;
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
        // Requests made before this socket opened are answered by it.
        self.r.control.borrow_and_update();
        self.r.resync.borrow_and_update();

        loop {
            if let Some(reason) = self.perform().await {
                return reason;
            }
            let deadline = self.r.session.next_deadline().map(|d| self.instant_at(d));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return DisconnectReason::Shutdown,
                why = super::control::requested(&mut self.r.control) => return DisconnectReason::Requested(why),
                _ = super::control::requested(&mut self.r.resync) => {
                    let r = &mut *self.r;
                    r.session.resync_books(&r.shared.books);
                }
                _ = sleep_until_opt(deadline) => {
                    let now = self.now();
                    let r = &mut *self.r;
                    let health = &r.shared.health;
                    r.session.on_timer(now, |symbols| health.stalest(symbols));
                }
                msg = stream.next() => {
                    let recv_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
                    let now = Now { mono_ms: self.r.shared.health.mono_ms(), unix_ns: recv_ns };
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
                    if let Err(e) = self.sink.send(Message::text(text)).await {
                        return Some(DisconnectReason::Error(e.to_string()));
                    }
                }
                Action::Emit(ev) => {
                    self.r.emit(ev).await;
                }
                Action::FetchRecentTrades { symbol, limit } => {
                    let result = self.fetch_recent(&symbol, limit).await;
                    let now = self.now();
                    self.r.session.on_recent_trades(&symbol, result, now);
                }
                Action::SetState(state) => health.set_state(state),
                Action::Live => {
                    self.live_since = Some(Instant::now());
                    health.live(&self.r.cfg.feed.symbols);
                }
                Action::MarketEvent(symbol) => health.market_event(&symbol),
                Action::CountError => health.error(),
                Action::CountStale(symbol) => health.stale_symbol(&symbol),
                Action::Close(reason) => return Some(reason),
            }
        }
        None
    }

    async fn fetch_recent(
        &self,
        symbol: &str,
        limit: usize,
    ) -> Result<Vec<rest::RestTrade>, String> {
        let url = format!(
            "{}/v5/market/recent-trade",
            self.r.cfg.feed.rest_url.trim_end_matches('/')
        );
        let mut last_error = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let resp = self
                .r
                .http
                .get(&url)
                .query(&[
                    ("category", self.r.cfg.feed.category.as_str()),
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
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
