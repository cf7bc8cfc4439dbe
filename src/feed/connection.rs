//! One connection's life: subscribe and verify every acknowledgement, then read frames, keep the
//! JSON heartbeat, watch for stale data per symbol, resync books on gaps, restarts and crossings,
//! and after a reconnect fill the trade tape from REST. Ends with the reason it ended.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::event::{DisconnectReason, FeedEvent, ResyncReason};
use super::health::{unix_ms, ConnState, StaleRule, StaleVerdict};
use super::Runner;
use crate::book::{OrderBook, Outcome};
use crate::normalized::{BookEvent, TradeEvent};
use crate::protocol::request::{self, Op};
use crate::protocol::rest::{self, RecentTradeResult};
use crate::protocol::topic::Topic;
use crate::protocol::ws::{decode, Ack, AckOp, BookUpdate, Frame, Trades};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended.
pub(crate) struct Ended {
    pub reason: DisconnectReason,
    /// How long it was live (zero if it never was).
    pub live_for: Duration,
}

/// One connection (borrowing the runner for state that outlives it).
pub(crate) struct Connection<'r> {
    r: &'r mut Runner,
    sink: SplitSink<Ws, Message>,
    /// Outstanding requests: req_id -> (op, topics).
    pending: HashMap<String, (Op, Vec<String>)>,
    /// Book topics being resubscribed after a gap or crossing.
    resyncing: HashSet<String>,
    /// Live trades held back until the REST gap-fill of this reconnect is done.
    buffered: HashMap<String, Vec<TradeEvent>>,
    recovering: bool,
    live_since: Option<Instant>,
    /// When it went live, on the health clock (monotonic ms).
    live_ms: Option<u64>,
    ping_sent: Option<Instant>,
}

impl<'r> Connection<'r> {
    /// Runs a connection to its end.
    pub(crate) async fn run(r: &'r mut Runner, ws: Ws) -> Ended {
        let (sink, mut stream) = ws.split();
        let mut c = Connection {
            r,
            sink,
            pending: HashMap::new(),
            resyncing: HashSet::new(),
            buffered: HashMap::new(),
            recovering: true,
            live_since: None,
            live_ms: None,
            ping_sent: None,
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

    fn topics(&self) -> Vec<Topic> {
        let f = &self.r.cfg.feed;
        let mut t = Vec::new();
        for s in &f.symbols {
            if f.trades {
                t.push(Topic::Trade { symbol: s.clone() });
            }
            if f.depth > 0 {
                t.push(Topic::OrderBook {
                    depth: f.depth,
                    symbol: s.clone(),
                });
            }
        }
        t
    }

    async fn send(&mut self, op: Op, topics: Vec<String>) -> Result<(), DisconnectReason> {
        let req_id = self.r.next_req_id(match op {
            Op::Subscribe => "sub",
            Op::Unsubscribe => "unsub",
            Op::Ping => "ping",
        });
        let text = request::encode(op, &req_id, &topics);
        self.pending.insert(req_id, (op, topics));
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| DisconnectReason::Error(e.to_string()))
    }

    async fn drive(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<Ws>,
    ) -> DisconnectReason {
        let cfg = self.r.cfg.clone();
        let shared = self.r.shared.clone();
        let health = shared.health_handle();
        health.set_state(ConnState::Subscribing);
        // Every book restarts from a fresh snapshot on a new connection.
        {
            let mut books = self
                .r
                .shared
                .books
                .write()
                .unwrap_or_else(|p| p.into_inner());
            books.values_mut().for_each(OrderBook::invalidate);
        }
        let topics = self.topics();
        let plan = match request::plan(cfg.feed.category, &topics) {
            Ok(p) => p,
            Err(e) => return DisconnectReason::SubscribeRefused(e),
        };
        for batch in plan.into_iter().flatten() {
            if let Err(e) = self.send(Op::Subscribe, batch).await {
                return e;
            }
        }
        let (check_every, stale_after, grace, _) = match cfg.health_durations() {
            Ok(d) => d,
            Err(e) => return DisconnectReason::Error(e.to_string()),
        };
        let rule = StaleRule { stale_after, grace };
        let ping_every = Duration::from_secs_f64(cfg.heartbeat.ping_interval_s);
        let pong_timeout = Duration::from_secs_f64(cfg.heartbeat.pong_timeout_s);
        let subscribe_deadline =
            Instant::now() + Duration::from_secs_f64(cfg.reconnect.connect_timeout_s);
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut check = tokio::time::interval_at(Instant::now() + check_every, check_every);
        let opened = Instant::now();
        let cancel = self.r.cancel.clone();

        loop {
            let pong_deadline = self.ping_sent.map(|t| t + pong_timeout);
            let subscribing = self.live_since.is_none();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return DisconnectReason::Shutdown,
                _ = sleep_until_opt(pong_deadline) => {
                    tracing::warn!(event = "bybit_connector_pong_timeout", pong_timeout_s = pong_timeout.as_secs_f64());
                    return DisconnectReason::PongTimeout;
                }
                _ = tokio::time::sleep_until(subscribe_deadline), if subscribing => {
                    tracing::error!(event = "bybit_connector_subscribe_timeout", pending = self.pending.len());
                    return DisconnectReason::SubscribeTimeout;
                }
                msg = stream.next() => {
                    let recv_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
                    match msg {
                        None => return DisconnectReason::ClosedByServer,
                        Some(Err(e)) => return DisconnectReason::Error(e.to_string()),
                        Some(Ok(Message::Text(text))) => {
                            if let Some(tap) = &cfg.raw_tap {
                                tap.offer(recv_ns, text.as_str());
                            }
                            if let Err(reason) = self.on_text(text.as_str(), recv_ns).await {
                                return reason;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            tracing::info!(event = "bybit_connector_close_frame", frame = ?frame);
                            return DisconnectReason::ClosedByServer;
                        }
                        Some(Ok(Message::Binary(b))) => {
                            self.malformed(&format!("unexpected binary frame of {} bytes", b.len())).await;
                        }
                        Some(Ok(_)) => {}
                    }
                    if self.live_since.is_none() && self.pending.is_empty() {
                        if let Err(reason) = self.go_live(opened).await {
                            return reason;
                        }
                    }
                }
                _ = ping.tick() => {
                    let id = self.r.next_req_id("ping");
                    if let Err(e) = self.sink.send(Message::text(request::ping(&id))).await {
                        return DisconnectReason::Error(e.to_string());
                    }
                    self.ping_sent.get_or_insert_with(Instant::now);
                }
                _ = check.tick() => {
                    let Some(live_ms) = self.live_ms else { continue };
                    // The per-symbol freshness operators see is the one judged here.
                    let (stalest_symbol, stalest) = health.stalest(&cfg.feed.symbols);
                    if let StaleVerdict::Stale { seconds_since_last_event } =
                        rule.check(health.mono_ms(), live_ms, stalest)
                    {
                        health.stale();
                        health.set_state(ConnState::Stale);
                        tracing::warn!(
                            event = "bybit_connector_stale_connection_detected",
                            seconds_since_last_event,
                            stale_threshold = stale_after.as_secs_f64(),
                            symbol = %stalest_symbol,
                        );
                        self.r.emit(FeedEvent::Stale {
                            seconds_since_last_event,
                            stale_threshold: stale_after.as_secs_f64(),
                            symbol: stalest_symbol,
                        }).await;
                        return DisconnectReason::Stale;
                    }
                }
            }
        }
    }

    async fn go_live(&mut self, opened: Instant) -> Result<(), DisconnectReason> {
        let now = Instant::now();
        self.live_since = Some(now);
        let shared = self.r.shared.clone();
        let health = shared.health_handle();
        let symbols = self.r.cfg.feed.symbols.clone();
        self.live_ms = Some(health.live(&symbols));
        health.set_state(ConnState::Live);
        for s in &symbols {
            tracing::info!(
                event = "bybit_connector_connected",
                symbol = %s,
                category = %self.r.cfg.feed.category,
                connection = self.r.connections,
                subscribe_ms = now.duration_since(opened).as_millis() as u64,
            );
        }
        self.r
            .emit(FeedEvent::Connected {
                category: self.r.cfg.feed.category.to_string(),
                symbols: symbols.clone(),
                connection: self.r.connections,
            })
            .await;
        if self.r.cfg.feed.trades {
            for s in &symbols {
                self.recover_trades(s).await;
            }
        }
        self.recovering = false;
        Ok(())
    }

    /// After a reconnect: merges REST recent trades with the live trades buffered so far.
    async fn recover_trades(&mut self, symbol: &str) {
        let buffered = self.buffered.remove(symbol).unwrap_or_default();
        let first_connection = self.r.connections <= 1 && !self.r.covered_ms.contains_key(symbol);
        if first_connection {
            // Nothing was missed before the first connection: the tape starts here.
            self.r.covered_ms.insert(symbol.to_string(), unix_ms());
            for t in buffered {
                let tracker = self.r.trackers.entry(symbol.to_string()).or_default();
                if tracker.observe(&t.id, t.ts_ms) {
                    self.r.emit(FeedEvent::Trade(t)).await;
                }
            }
            return;
        }
        let covered = self
            .r
            .trackers
            .get(symbol)
            .and_then(|t| t.last_ts_ms())
            .or_else(|| self.r.covered_ms.get(symbol).copied())
            .unwrap_or_else(unix_ms);
        let limit = self.r.cfg.feed.category.max_recent_trades();
        let fetched = self.fetch_recent(symbol, limit).await;
        let category = self.r.cfg.feed.category.to_string();
        let tracker = self.r.trackers.entry(symbol.to_string()).or_default();
        let (rest_trades, failed) = match fetched {
            Ok(t) => (t, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut recovery = tracker.recover(symbol, covered, &rest_trades, limit, buffered);
        if let Some(e) = &failed {
            tracing::error!(event = "bybit_connector_trade_recovery_failed", symbol, error = %e);
            self.r.shared.health.error();
            recovery.gap = Some((covered, unix_ms()));
        }
        let (first, last) = recovery
            .trades
            .iter()
            .filter(|t| t.recovered)
            .fold((u64::MAX, 0), |(a, b), t| (a.min(t.ts_ms), b.max(t.ts_ms)));
        if let Some((from_ms, to_ms)) = recovery.gap {
            tracing::error!(
                event = "bybit_connector_trade_gap_unrecoverable",
                symbol,
                from_ms,
                to_ms
            );
            self.r
                .emit(FeedEvent::TradeGap {
                    symbol: symbol.to_string(),
                    from_ms,
                    to_ms,
                })
                .await;
        }
        for mut t in recovery.trades {
            t.category = Some(category.clone());
            self.r.emit(FeedEvent::Trade(t)).await;
        }
        if recovery.recovered > 0 {
            tracing::info!(
                event = "bybit_connector_trades_recovered",
                symbol,
                count = recovery.recovered,
                from_ms = first,
                to_ms = last
            );
            self.r
                .emit(FeedEvent::TradesRecovered {
                    symbol: symbol.to_string(),
                    count: recovery.recovered,
                    from_ms: first,
                    to_ms: last,
                })
                .await;
        }
    }

    async fn fetch_recent(
        &self,
        symbol: &str,
        limit: usize,
    ) -> Result<Vec<crate::protocol::rest::RestTrade>, String> {
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

    async fn malformed(&mut self, error: &str) {
        self.r.shared.health.error();
        tracing::warn!(event = "bybit_connector_malformed_frame", error = %error);
        self.r
            .emit(FeedEvent::Malformed {
                error: error.to_string(),
            })
            .await;
    }

    async fn on_text(&mut self, text: &str, recv_ns: u64) -> Result<(), DisconnectReason> {
        let frame = match decode(text) {
            Ok(f) => f,
            Err(e) => {
                self.malformed(&e.to_string()).await;
                return Ok(());
            }
        };
        match frame {
            Frame::Trades(t) => self.on_trades(t, recv_ns).await,
            Frame::Book(b) => self.on_book(b, recv_ns).await?,
            Frame::Ack(a) => self.on_ack(a).await?,
            Frame::Pong(_) => self.ping_sent = None,
            Frame::Kline(_) => {}
            Frame::Unknown(raw) => {
                tracing::debug!(event = "bybit_connector_unknown_frame", raw = %raw);
            }
        }
        Ok(())
    }

    async fn on_ack(&mut self, ack: Ack) -> Result<(), DisconnectReason> {
        let entry = ack.req_id.as_deref().and_then(|id| self.pending.remove(id));
        let Some((op, topics)) = entry else {
            if !ack.success {
                // A refusal we cannot tie to a request (e.g. an answer to undecodable text).
                tracing::error!(event = "bybit_connector_request_refused", ret_msg = %ack.ret_msg);
                self.r.shared.health.error();
            }
            return Ok(());
        };
        if ack.success {
            if op == Op::Subscribe {
                for t in &topics {
                    if self.resyncing.remove(t) {
                        tracing::info!(event = "bybit_connector_resubscribed", topic = %t);
                    } else {
                        tracing::info!(event = "bybit_connector_subscription_confirmed", topic = %t);
                    }
                }
            }
            return Ok(());
        }
        let failed: Vec<String> = match ack.refused_topic() {
            Some(t) => vec![t.to_string()],
            None => topics.clone(),
        };
        if op == Op::Unsubscribe {
            // Unsubscribing a topic the server no longer has is harmless; the subscribe decides.
            tracing::warn!(event = "bybit_connector_unsubscribe_refused", ret_msg = %ack.ret_msg);
            return Ok(());
        }
        self.r.shared.health.error();
        self.r.shared.health.set_state(ConnState::Refused);
        for t in &failed {
            tracing::error!(
                event = "bybit_connector_subscription_refused",
                topic = %t,
                ret_msg = %ack.ret_msg,
                op = ?ack.op == AckOp::Subscribe,
            );
            self.r
                .emit(FeedEvent::SubscriptionRefused {
                    topic: t.clone(),
                    ret_msg: ack.ret_msg.clone(),
                })
                .await;
        }
        Err(DisconnectReason::SubscribeRefused(format!(
            "{}: {}",
            failed.join(","),
            ack.ret_msg
        )))
    }

    async fn on_trades(&mut self, t: Trades<'_>, recv_ns: u64) {
        self.r.shared.health.market_event(t.symbol);
        let category = self.r.cfg.feed.category.to_string();
        for tr in &t.trades {
            let mut ev = TradeEvent::from_ws(tr, Some(recv_ns));
            ev.category = Some(category.clone());
            if self.recovering {
                self.buffered.entry(ev.symbol.clone()).or_default().push(ev);
                continue;
            }
            let tracker = self.r.trackers.entry(ev.symbol.clone()).or_default();
            if tracker.observe(&ev.id, ev.ts_ms) {
                self.r.emit(FeedEvent::Trade(ev)).await;
            } else {
                tracing::debug!(event = "bybit_connector_duplicate_trade", id = %ev.id);
            }
        }
    }

    async fn on_book(&mut self, b: BookUpdate<'_>, recv_ns: u64) -> Result<(), DisconnectReason> {
        self.r.shared.health.market_event(b.symbol);
        let (outcome, event) = {
            let mut books = self
                .r
                .shared
                .books
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let book = books
                .entry(b.symbol.to_string())
                .or_insert_with(|| OrderBook::new(b.symbol, b.depth));
            let outcome = book.apply(&b);
            let event = outcome.applied().then(|| {
                BookEvent::applied(
                    &b,
                    book,
                    Some(self.r.cfg.feed.category.to_string()),
                    Some(recv_ns),
                    None,
                )
            });
            (outcome, event)
        };
        let resync = match outcome {
            Outcome::Gap { expected_u, got_u } => {
                tracing::warn!(
                    event = "bybit_connector_book_gap",
                    symbol = b.symbol,
                    depth = b.depth,
                    expected_u,
                    got_u
                );
                Some(ResyncReason::Gap)
            }
            Outcome::Crossed { best_bid, best_ask } => {
                tracing::warn!(event = "bybit_connector_book_crossed", symbol = b.symbol, depth = b.depth, u = b.u, best_bid = %best_bid, best_ask = %best_ask);
                Some(ResyncReason::Crossed)
            }
            Outcome::Reset { previous_u } => {
                tracing::warn!(
                    event = "bybit_connector_book_restart",
                    symbol = b.symbol,
                    depth = b.depth,
                    previous_u
                );
                Some(ResyncReason::Restart)
            }
            Outcome::Stale { last_u, got_u } => {
                tracing::debug!(
                    event = "bybit_connector_book_stale_update",
                    symbol = b.symbol,
                    last_u,
                    got_u
                );
                None
            }
            _ => None,
        };
        if let Some(reason) = resync {
            tracing::warn!(event = "bybit_connector_book_resync", symbol = b.symbol, depth = b.depth, reason = ?reason);
            self.r
                .emit(FeedEvent::Resync {
                    symbol: b.symbol.to_string(),
                    depth: b.depth,
                    reason,
                })
                .await;
            // A restart snapshot already is the fresh book; a gap or crossing needs a new snapshot.
            if reason != ResyncReason::Restart {
                let topic = Topic::OrderBook {
                    depth: b.depth,
                    symbol: b.symbol.to_string(),
                }
                .to_string();
                if self.resyncing.insert(topic.clone()) {
                    self.send(Op::Unsubscribe, vec![topic.clone()]).await?;
                    self.send(Op::Subscribe, vec![topic]).await?;
                }
            }
        }
        if let Some(ev) = event {
            // A crossed book is reported by the resync event; consumers never get it as data.
            if !matches!(outcome, Outcome::Crossed { .. }) {
                self.r.emit(FeedEvent::Book(ev)).await;
            }
        }
        Ok(())
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
