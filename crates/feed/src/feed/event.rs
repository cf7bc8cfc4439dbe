//! What a live feed delivers: normalized market events plus lifecycle events, one stream.

use serde::{Deserialize, Serialize};

use crate::normalized::{BookEvent, TradeEvent};

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The server closed the socket (close frame or end of stream).
    ClosedByServer,
    /// A read or write failed (e.g. a TCP reset).
    Error(String),
    /// No pong within the timeout.
    PongTimeout,
    /// No market event within the stale threshold.
    Stale,
    /// A subscription was refused.
    SubscribeRefused(String),
    /// A subscribe acknowledgement did not arrive in time.
    SubscribeTimeout,
    /// A book could not be resynchronised on this connection.
    ResyncFailed(String),
    /// The feed is shutting down.
    Shutdown,
    /// An operator asked for a reconnect ([`super::control`]); the reason says who and why.
    Requested(String),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::ClosedByServer => f.write_str("closed by server"),
            DisconnectReason::Error(e) => write!(f, "error: {e}"),
            DisconnectReason::PongTimeout => f.write_str("pong timeout"),
            DisconnectReason::Stale => f.write_str("stale: no market data"),
            DisconnectReason::SubscribeRefused(m) => write!(f, "subscribe refused: {m}"),
            DisconnectReason::SubscribeTimeout => {
                f.write_str("subscribe acknowledgement timed out")
            }
            DisconnectReason::ResyncFailed(m) => write!(f, "book resync failed: {m}"),
            DisconnectReason::Shutdown => f.write_str("shutdown"),
            DisconnectReason::Requested(why) => write!(f, "reconnect requested: {why}"),
        }
    }
}

/// Why a book was resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResyncReason {
    /// A delta skipped update ids.
    Gap,
    /// Bybit sent a `u == 1` snapshot (its service restarted); the snapshot replaced the book.
    Restart,
    /// Best bid reached best ask.
    Crossed,
    /// An operator asked for fresh snapshots ([`super::control`]).
    Requested,
}

/// Every event a feed emits. Serialized with a `type` tag, like the normalized schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent {
    /// A trade (live, or recovered from REST after an outage: `recovered: true`). Boxed, like
    /// [`FeedEvent::Book`], so that an event is a pointer wide where it is moved (the session's
    /// queue, the channel, the consumer): copying whole events was an eighth of a saturated
    /// feed's time (BENCHMARKS.md, issue 12).
    Trade(Box<TradeEvent>),
    /// An applied book update; the full book is readable through the feed handle.
    Book(Box<BookEvent>),
    /// All subscriptions of a connection were confirmed; data flows.
    Connected {
        /// Category.
        category: String,
        /// Symbols.
        symbols: Vec<String>,
        /// Connection number since start (1 = first).
        connection: u64,
    },
    /// A connection ended; the feed reconnects.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// No market event within the threshold although the socket looked alive.
    Stale {
        /// Seconds since the last market event of the stalest symbol.
        seconds_since_last_event: f64,
        /// The threshold (s).
        stale_threshold: f64,
        /// The stalest symbol.
        symbol: String,
    },
    /// A book topic was resynchronised; consumers drop what they derived from the old book.
    Resync {
        /// Symbol.
        symbol: String,
        /// Depth.
        depth: u16,
        /// Why.
        reason: ResyncReason,
    },
    /// Trades missed during an outage were fetched from REST and emitted (as `recovered`).
    TradesRecovered {
        /// Symbol.
        symbol: String,
        /// How many.
        count: usize,
        /// Fill time of the first (ms).
        from_ms: u64,
        /// Fill time of the last (ms).
        to_ms: u64,
    },
    /// Trades were missed that REST can no longer return: a known hole in the tape.
    TradeGap {
        /// Symbol.
        symbol: String,
        /// The hole starts after this time (ms): the last trade seen, or when the outage began.
        from_ms: u64,
        /// ... and ends before this one (ms): the oldest trade REST still returned.
        to_ms: u64,
    },
    /// A topic was refused by the exchange: a loud error, never a silent stall.
    SubscriptionRefused {
        /// The topic.
        topic: String,
        /// Bybit's message.
        ret_msg: String,
    },
    /// A frame could not be decoded; it was skipped.
    Malformed {
        /// The error, with the (truncated) payload.
        error: String,
    },
    /// The feed gave up (only with `reconnect.max_attempts > 0`).
    GaveUp {
        /// Attempts made.
        attempts: u32,
    },
}

impl FeedEvent {
    /// About how many bytes this event holds, its heap parts included: what a queue of events
    /// is bounded by ([`crate::queue`]).
    pub fn approx_bytes(&self) -> usize {
        use crate::normalized::Pair;
        let pair = std::mem::size_of::<Pair>();
        std::mem::size_of::<FeedEvent>()
            + match self {
                FeedEvent::Trade(t) => {
                    std::mem::size_of::<TradeEvent>()
                        + t.symbol.capacity()
                        + t.id.capacity()
                        + t.category.as_ref().map_or(0, String::capacity)
                }
                FeedEvent::Book(b) => {
                    std::mem::size_of::<BookEvent>()
                        + b.symbol.capacity()
                        + (b.bids.capacity() + b.asks.capacity()) * pair
                        + b.top
                            .as_ref()
                            .map_or(0, |t| (t.bids.capacity() + t.asks.capacity()) * pair)
                        + b.category.as_ref().map_or(0, String::capacity)
                }
                FeedEvent::Connected { symbols, .. } => {
                    symbols.iter().map(|s| s.capacity() + 24).sum::<usize>()
                }
                _ => 128,
            }
    }

    /// Whether this is market data (trade or book) rather than lifecycle.
    pub fn is_market(&self) -> bool {
        matches!(self, FeedEvent::Trade(_) | FeedEvent::Book(_))
    }
}
