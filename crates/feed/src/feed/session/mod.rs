//! The connection as a sans-IO state machine: the feed's protocol logic with no socket, no clock and
//! no async runtime. Inputs go in (connected, a frame's text, a timer expiry with `now`, the result
//! of a REST gap-fill); [`Action`]s come out (send this text, emit this event, fetch recent trades,
//! move the health state, end the connection with a reason). The next deadline to wake up at is
//! [`Session::next_deadline`].
//!
//! Across one connection: subscribe and verify every acknowledgement, go live, keep the JSON
//! heartbeat, judge staleness per symbol, resync books on gaps, restarts and crossings (through
//! [`hft_core::sequencer`], like `decode`), buffer live trades while the outage is gap-filled from
//! REST, then merge them in order without duplicates. Across connections: request ids and the
//! trade tape (what was seen, up to when it is complete).
//!
//! The async shell ([`super::connection`]) only moves bytes, stamps receive times, sleeps until the
//! deadline, performs the REST fetch and routes events; every transition is unit-tested here.
//!
//! # Layout
//! - this file: inputs, acknowledgements, timers, going live.
//! - `books`: book frames through the shared sequencer, and the resubscription they call for.
//! - `trades`: live trades, buffering while recovering, and the REST gap-fill merge.

mod books;
mod requests;
mod trades;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trade_tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::RwLock;
use std::time::Duration;

use super::config::{ConfigError, FeedConfig};
use super::event::{DisconnectReason, FeedEvent};
use super::health::{ConnState, StaleRule, StaleVerdict};
use super::recovery::TradeTracker;
use crate::book::OrderBook;
use crate::normalized::TradeEvent;
use crate::protocol::request::{self, Op};
use crate::protocol::topic::{Category, Topic};
use crate::protocol::ws::{decode, Ack, AckOp, Frame};

/// The books a feed keeps, by symbol (shared with readers of the feed handle).
pub type Books = RwLock<HashMap<String, OrderBook>>;

/// The time an input happens, on the two clocks the session needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (the feed's health clock): timers, staleness.
    pub mono_ms: u64,
    /// Wall-clock Unix nanoseconds: receive stamps, the trade tape's coverage.
    pub unix_ns: u64,
}

impl Now {
    fn unix_ms(self) -> u64 {
        self.unix_ns / 1_000_000
    }
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "events are the common action; boxing them would allocate once more per event"
)]
pub enum Action {
    /// Write this text frame to the socket (subscribe, unsubscribe or ping).
    Send(String),
    /// Deliver this event to the consumer.
    Emit(FeedEvent),
    /// Fetch `/v5/market/recent-trade` for `symbol` and hand the result to
    /// [`Session::on_recent_trades`]; trades stay buffered until then.
    FetchRecentTrades {
        /// Symbol.
        symbol: String,
        /// How many trades to ask for.
        limit: usize,
    },
    /// Move the health state machine.
    SetState(ConnState),
    /// The connection went live: every symbol's freshness clock restarts now.
    Live,
    /// Market data of `symbol` arrived (freshness and message counters).
    MarketEvent(String),
    /// Count an error (malformed frame, refusal, failed recovery).
    CountError,
    /// Count a stale detection of `symbol`.
    CountStale(String),
    /// End the connection; the feed reconnects (or stops, for a refusal it reports as `down`).
    Close(DisconnectReason),
}

/// The timing and scope of a session, from the feed's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Category.
    pub category: Category,
    /// Symbols.
    pub symbols: Vec<String>,
    /// Book depth (0: no book).
    pub depth: u16,
    /// Whether trades are streamed.
    pub trades: bool,
    /// Ping every this many ms.
    pub ping_every_ms: u64,
    /// A ping unanswered this long ends the connection.
    pub pong_timeout_ms: u64,
    /// Every subscription must be acknowledged within this long of connecting.
    pub subscribe_timeout_ms: u64,
    /// Staleness is judged every this many ms.
    pub check_every_ms: u64,
    /// The stale rule.
    pub stale: StaleRule,
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl SessionConfig {
    /// From a (validated) feed configuration.
    pub fn from_feed(cfg: &FeedConfig) -> Result<Self, ConfigError> {
        let (check_every, stale_after, grace, _) = cfg.health_durations()?;
        Ok(SessionConfig {
            category: cfg.feed.category,
            symbols: cfg.feed.symbols.clone(),
            depth: cfg.feed.depth,
            trades: cfg.feed.trades,
            ping_every_ms: ms(Duration::from_secs_f64(cfg.heartbeat.ping_interval_s)),
            pong_timeout_ms: ms(Duration::from_secs_f64(cfg.heartbeat.pong_timeout_s)),
            subscribe_timeout_ms: ms(Duration::from_secs_f64(cfg.reconnect.connect_timeout_s)),
            check_every_ms: ms(check_every),
            stale: StaleRule { stale_after, grace },
        })
    }
}

/// One connection's state (reset by [`Session::connected`]).
#[derive(Debug, Default)]
struct Conn {
    /// Connection number since start (1 = first).
    number: u64,
    opened_ms: u64,
    /// Outstanding requests: req_id -> (op, topics).
    pending: HashMap<String, (Op, Vec<String>)>,
    /// Book topics being resubscribed after a gap or crossing.
    resyncing: HashSet<String>,
    /// Live trades of symbols still to gap-fill, held back until their REST gap-fill is done.
    buffered: HashMap<String, Vec<TradeEvent>>,
    /// Symbols still to gap-fill (all of them after connecting; one whose book showed a gap while
    /// live); their fetches run concurrently. Their live trades are buffered.
    to_recover: VecDeque<String>,
    /// Per symbol, where the tape may have a hole found while live (a book gap): the book's
    /// exchange time before the lost frames. The gap-fill starts there.
    hole_from_ms: HashMap<String, u64>,
    /// The outstanding fetches: symbol -> the tape was complete up to this Unix ms when asked.
    fetching: HashMap<String, u64>,
    /// Symbols whose book showed a gap while their fetch was in flight: fetched again after.
    refill_again: HashSet<String>,
    /// When it went live (monotonic ms).
    live_ms: Option<u64>,
    /// When the oldest unanswered ping was sent.
    ping_sent_ms: Option<u64>,
    next_ping_ms: u64,
    next_check_ms: u64,
    closed: bool,
}

/// The feed's protocol state machine (see the module docs).
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    req_seq: u64,
    trackers: HashMap<String, TradeTracker>,
    /// Unix ms up to which each symbol's tape is known complete when no trade was seen yet.
    covered_ms: HashMap<String, u64>,
    conn: Conn,
    actions: VecDeque<Action>,
    /// Test hook: a frame containing this panics ([`FeedConfig::test_panic_on`]).
    panic_on: Option<String>,
}

impl Session {
    /// A session that has not connected yet.
    pub fn new(cfg: SessionConfig) -> Self {
        Session {
            cfg,
            req_seq: 0,
            trackers: HashMap::new(),
            covered_ms: HashMap::new(),
            conn: Conn {
                closed: true,
                ..Conn::default()
            },
            actions: VecDeque::new(),
            panic_on: None,
        }
    }

    /// Test hook: a text frame containing `marker` panics in [`Session::on_text`].
    #[doc(hidden)]
    pub fn panic_on(&mut self, marker: Option<String>) {
        self.panic_on = marker;
    }

    /// Continues a tape another feed delivered: for each symbol, the Unix ms up to which the
    /// consumer has every trade. The first connection then gap-fills like a reconnect.
    pub fn resume(&mut self, covered_ms: HashMap<String, u64>) {
        self.covered_ms = covered_ms;
    }

    /// The next action for the shell, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the shell must call [`Session::on_timer`] next (monotonic ms); `None` when the
    /// connection has ended.
    pub fn next_deadline(&self) -> Option<u64> {
        let c = &self.conn;
        if c.closed {
            return None;
        }
        let pong = c.ping_sent_ms.map(|t| t + self.cfg.pong_timeout_ms);
        let subscribe = c
            .live_ms
            .is_none()
            .then_some(c.opened_ms + self.cfg.subscribe_timeout_ms);
        [pong, subscribe, Some(c.next_ping_ms), Some(c.next_check_ms)]
            .into_iter()
            .flatten()
            .min()
    }

    /// How long the connection has been live (zero if it never went live).
    pub fn live_for(&self, now: Now) -> Duration {
        self.conn
            .live_ms
            .map(|t| Duration::from_millis(now.mono_ms.saturating_sub(t)))
            .unwrap_or_default()
    }

    /// Whether the current connection is live (every subscription confirmed).
    pub fn is_live(&self) -> bool {
        !self.conn.closed && self.conn.live_ms.is_some()
    }

    fn next_req_id(&mut self, prefix: &str) -> String {
        self.req_seq += 1;
        format!("{prefix}-{}", self.req_seq)
    }

    fn send(&mut self, op: Op, topics: Vec<String>) {
        let req_id = self.next_req_id(match op {
            Op::Subscribe => "sub",
            Op::Unsubscribe => "unsub",
            Op::Ping => "ping",
        });
        let text = request::encode(op, &req_id, &topics);
        self.conn.pending.insert(req_id, (op, topics));
        self.actions.push_back(Action::Send(text));
    }

    fn close(&mut self, reason: DisconnectReason) {
        self.conn.closed = true;
        self.actions.push_back(Action::Close(reason));
    }

    fn emit(&mut self, ev: FeedEvent) {
        self.actions.push_back(Action::Emit(ev));
    }

    fn topics(&self) -> Vec<Topic> {
        let mut t = Vec::new();
        for s in &self.cfg.symbols {
            if self.cfg.trades {
                t.push(Topic::Trade { symbol: s.clone() });
            }
            if self.cfg.depth > 0 {
                t.push(Topic::OrderBook {
                    depth: self.cfg.depth,
                    symbol: s.clone(),
                });
            }
        }
        t
    }

    /// A socket opened (connection `number` since start): every book restarts from a fresh
    /// snapshot, and every topic is subscribed.
    pub fn connected(&mut self, now: Now, number: u64, books: &Books) {
        self.actions.clear();
        self.conn = Conn {
            number,
            opened_ms: now.mono_ms,
            hole_from_ms: HashMap::new(),
            next_ping_ms: now.mono_ms + self.cfg.ping_every_ms,
            next_check_ms: now.mono_ms + self.cfg.check_every_ms,
            ..Conn::default()
        };
        self.actions
            .push_back(Action::SetState(ConnState::Subscribing));
        books
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
            .for_each(OrderBook::invalidate);
        let plan = match request::plan(self.cfg.category, &self.topics()) {
            Ok(p) => p,
            Err(e) => return self.close(DisconnectReason::SubscribeRefused(e)),
        };
        for batch in plan.into_iter().flatten() {
            self.send(Op::Subscribe, batch);
        }
    }

    /// A text frame arrived at `now` (its receive time).
    pub fn on_text(&mut self, text: &str, now: Now, books: &Books) {
        if self.conn.closed {
            return;
        }
        if let Some(marker) = &self.panic_on {
            if text.contains(marker.as_str()) {
                panic!("test hook: a frame containing {marker:?}");
            }
        }
        match decode(text) {
            Ok(Frame::Trades(t)) => self.on_trades(t, now),
            Ok(Frame::Book(b)) => self.on_book(&b, now, books),
            Ok(Frame::Ack(a)) => self.on_ack(a),
            Ok(Frame::Pong(_)) => self.conn.ping_sent_ms = None,
            Ok(Frame::Kline(_)) => {}
            Ok(Frame::Unknown(raw)) => {
                tracing::debug!(event = "bybit_connector_unknown_frame", raw = %raw);
            }
            Err(e) => self.malformed(&e.to_string()),
        }
        self.after_frame(now);
    }

    /// A frame that is not text (the feed speaks JSON text only): counted and skipped.
    pub fn on_binary(&mut self, len: usize, now: Now) {
        if self.conn.closed {
            return;
        }
        self.malformed(&format!("unexpected binary frame of {len} bytes"));
        self.after_frame(now);
    }

    /// Any other frame (ping, pong, raw) arrived: only the go-live check runs.
    pub fn on_other(&mut self, now: Now) {
        if !self.conn.closed {
            self.after_frame(now);
        }
    }

    fn after_frame(&mut self, now: Now) {
        if !self.conn.closed && self.conn.live_ms.is_none() && self.conn.pending.is_empty() {
            self.go_live(now);
        }
    }

    fn malformed(&mut self, error: &str) {
        self.actions.push_back(Action::CountError);
        tracing::warn!(event = "bybit_connector_malformed_frame", error = %error);
        self.emit(FeedEvent::Malformed {
            error: error.to_string(),
        });
    }

    fn on_ack(&mut self, ack: Ack) {
        let entry = ack
            .req_id
            .as_deref()
            .and_then(|id| self.conn.pending.remove(id));
        let Some((op, topics)) = entry else {
            if !ack.success {
                // A refusal we cannot tie to a request (e.g. an answer to undecodable text).
                tracing::error!(event = "bybit_connector_request_refused", ret_msg = %ack.ret_msg);
                self.actions.push_back(Action::CountError);
            }
            return;
        };
        if ack.success {
            if op == Op::Subscribe {
                for t in &topics {
                    if self.conn.resyncing.remove(t) {
                        tracing::info!(event = "bybit_connector_resubscribed", topic = %t);
                    } else {
                        tracing::info!(event = "bybit_connector_subscription_confirmed", topic = %t);
                    }
                }
            }
            return;
        }
        if op == Op::Unsubscribe {
            // Unsubscribing a topic the server no longer has is harmless; the subscribe decides.
            tracing::warn!(event = "bybit_connector_unsubscribe_refused", ret_msg = %ack.ret_msg);
            return;
        }
        let failed: Vec<String> = match ack.refused_topic() {
            Some(t) => vec![t.to_string()],
            None => topics,
        };
        self.actions.push_back(Action::CountError);
        self.actions.push_back(Action::SetState(ConnState::Refused));
        for t in &failed {
            tracing::error!(
                event = "bybit_connector_subscription_refused",
                topic = %t,
                ret_msg = %ack.ret_msg,
                op = ?ack.op == AckOp::Subscribe,
            );
            self.emit(FeedEvent::SubscriptionRefused {
                topic: t.clone(),
                ret_msg: ack.ret_msg.clone(),
            });
        }
        self.close(DisconnectReason::SubscribeRefused(format!(
            "{}: {}",
            failed.join(","),
            ack.ret_msg
        )));
    }

    /// Timers due at `now` fire: pong timeout, subscribe timeout, ping, stale check. `stalest`
    /// answers, for the configured symbols, the stalest one and its last market event (monotonic
    /// ms, `None` if never seen); it is asked only when a stale check is due.
    pub fn on_timer(&mut self, now: Now, stalest: impl FnOnce(&[String]) -> (String, Option<u64>)) {
        if self.conn.closed {
            return;
        }
        let t = now.mono_ms;
        if self
            .conn
            .ping_sent_ms
            .is_some_and(|sent| t >= sent + self.cfg.pong_timeout_ms)
        {
            let pong_timeout_s = Duration::from_millis(self.cfg.pong_timeout_ms).as_secs_f64();
            tracing::warn!(event = "bybit_connector_pong_timeout", pong_timeout_s);
            return self.close(DisconnectReason::PongTimeout);
        }
        if self.conn.live_ms.is_none() && t >= self.conn.opened_ms + self.cfg.subscribe_timeout_ms {
            tracing::error!(
                event = "bybit_connector_subscribe_timeout",
                pending = self.conn.pending.len()
            );
            return self.close(DisconnectReason::SubscribeTimeout);
        }
        if t >= self.conn.next_ping_ms {
            let id = self.next_req_id("ping");
            self.actions.push_back(Action::Send(request::ping(&id)));
            self.conn.ping_sent_ms.get_or_insert(t);
            while self.conn.next_ping_ms <= t {
                self.conn.next_ping_ms += self.cfg.ping_every_ms;
            }
        }
        if t >= self.conn.next_check_ms {
            while self.conn.next_check_ms <= t {
                self.conn.next_check_ms += self.cfg.check_every_ms;
            }
            let Some(live_ms) = self.conn.live_ms else {
                return;
            };
            // The per-symbol freshness operators see is the one judged here.
            let (symbol, last) = stalest(&self.cfg.symbols);
            if let StaleVerdict::Stale {
                seconds_since_last_event,
            } = self.cfg.stale.check(t, live_ms, last)
            {
                let stale_threshold = self.cfg.stale.stale_after.as_secs_f64();
                self.actions.push_back(Action::CountStale(symbol.clone()));
                self.actions.push_back(Action::SetState(ConnState::Stale));
                tracing::warn!(
                    event = "bybit_connector_stale_connection_detected",
                    seconds_since_last_event,
                    stale_threshold,
                    symbol = %symbol,
                );
                self.emit(FeedEvent::Stale {
                    seconds_since_last_event,
                    stale_threshold,
                    symbol,
                });
                self.close(DisconnectReason::Stale);
            }
        }
    }

    fn go_live(&mut self, now: Now) {
        self.conn.live_ms = Some(now.mono_ms);
        self.actions.push_back(Action::Live);
        self.actions.push_back(Action::SetState(ConnState::Live));
        let subscribe_ms = now.mono_ms.saturating_sub(self.conn.opened_ms);
        for s in &self.cfg.symbols {
            tracing::info!(
                event = "bybit_connector_connected",
                symbol = %s,
                category = %self.cfg.category,
                connection = self.conn.number,
                subscribe_ms,
            );
        }
        self.emit(FeedEvent::Connected {
            category: self.cfg.category.to_string(),
            symbols: self.cfg.symbols.clone(),
            connection: self.conn.number,
        });
        if self.cfg.trades {
            self.conn.to_recover = self.cfg.symbols.iter().cloned().collect();
        }
        self.recover_next(now);
    }
}
