//! Feed health: shared counters any thread can read, the snapshot operators see, and the pure
//! stale-detection rule.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Connection state machine states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnState {
    /// Opening the socket.
    Connecting = 0,
    /// Socket open, waiting for every subscribe acknowledgement.
    Subscribing = 1,
    /// All topics confirmed; data flows.
    Live = 2,
    /// No market data within the threshold; about to reconnect.
    Stale = 3,
    /// The connection ended.
    Disconnected = 4,
    /// Waiting before the next attempt.
    Backoff = 5,
    /// A topic was refused: the feed cannot deliver it (loud error state; retried with backoff).
    Refused = 6,
    /// Gave up after `reconnect.max_attempts`, or shut down.
    Stopped = 7,
    /// The last connection attempt failed (network outage, refused connection): retrying.
    Unreachable = 8,
}

impl ConnState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => ConnState::Connecting,
            1 => ConnState::Subscribing,
            2 => ConnState::Live,
            3 => ConnState::Stale,
            4 => ConnState::Disconnected,
            5 => ConnState::Backoff,
            6 => ConnState::Refused,
            8 => ConnState::Unreachable,
            _ => ConnState::Stopped,
        }
    }

    /// The operator-facing status: `connected`, `connecting`, `disconnected` or `down`.
    pub fn status(self) -> &'static str {
        match self {
            ConnState::Live => "connected",
            ConnState::Connecting | ConnState::Subscribing => "connecting",
            ConnState::Stale | ConnState::Disconnected | ConnState::Backoff => "disconnected",
            ConnState::Refused | ConnState::Stopped | ConnState::Unreachable => "down",
        }
    }
}

/// Counters shared between the feed task and its readers.
#[derive(Debug)]
pub struct SharedHealth {
    state: AtomicU8,
    alive: AtomicBool,
    last_event_unix_ms: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
    stale_detections: AtomicU64,
    queue_size: AtomicU64,
    messages: AtomicU64,
    /// Per symbol: (monotonic ms of its last market event or of going live, Unix ms of its last
    /// market event or 0).
    symbols: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Per symbol: (market events, stale detections).
    symbol_counts: Mutex<BTreeMap<String, (u64, u64)>>,
    epoch: tokio::time::Instant,
}

impl Default for SharedHealth {
    fn default() -> Self {
        SharedHealth {
            state: AtomicU8::new(ConnState::Connecting as u8),
            alive: AtomicBool::new(true),
            last_event_unix_ms: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            stale_detections: AtomicU64::new(0),
            queue_size: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            symbols: Mutex::new(BTreeMap::new()),
            symbol_counts: Mutex::new(BTreeMap::new()),
            epoch: tokio::time::Instant::now(),
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as an ISO-8601 UTC time.
pub fn iso_time(unix_ms: u64) -> Option<String> {
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

impl SharedHealth {
    /// Milliseconds on the feed's monotonic clock (tokio's, so tests can pause it).
    pub fn mono_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    /// Current state.
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }
    /// Moves the state machine.
    pub fn set_state(&self, s: ConnState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
    /// Marks the feed task as running or ended.
    pub fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::Relaxed);
    }
    /// Records a market event of `symbol` now.
    pub fn market_event(&self, symbol: &str) {
        self.market_event_at(symbol, self.mono_ms(), unix_ms());
    }
    /// [`SharedHealth::market_event`] at a time the caller already read (the frame's receive
    /// time: no clock read per event on the hot path).
    pub fn market_event_at(&self, symbol: &str, mono: u64, now: u64) {
        self.last_event_unix_ms.store(now, Ordering::Relaxed);
        self.messages.fetch_add(1, Ordering::Relaxed);
        let mut symbols = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        match symbols.get_mut(symbol) {
            Some(e) => *e = (mono, now),
            None => {
                symbols.insert(symbol.to_string(), (mono, now));
            }
        }
        drop(symbols);
        count_symbol(&self.symbol_counts, symbol, |c| c.0 += 1);
    }
    /// Counts a stale detection of `symbol` (the symbol that went silent).
    pub fn stale_symbol(&self, symbol: &str) {
        self.stale();
        count_symbol(&self.symbol_counts, symbol, |c| c.1 += 1);
    }
    /// A connection went live for `symbols`: their idle time counts from now. Returns now
    /// (monotonic ms).
    pub fn live(&self, symbols: &[String]) -> u64 {
        let mono = self.mono_ms();
        let mut map = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        for s in symbols {
            map.entry(s.clone()).or_insert((mono, 0)).0 = mono;
        }
        mono
    }
    /// Of `symbols`, the one whose last market event (or going live) is oldest, with that time
    /// (monotonic ms; `None` for a symbol never seen).
    pub fn stalest(&self, symbols: &[String]) -> (String, Option<u64>) {
        let map = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        symbols
            .iter()
            .map(|s| (s, map.get(s).map(|e| e.0)))
            // `None` sorts before any time: a symbol never seen is the stalest.
            .min_by_key(|(_, t)| *t)
            .map(|(s, t)| (s.clone(), t))
            .unwrap_or_default()
    }
    /// Counts an error.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a reconnect.
    pub fn reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a stale detection.
    pub fn stale(&self) {
        self.stale_detections.fetch_add(1, Ordering::Relaxed);
    }
    /// Sets the number of events waiting for the consumer.
    pub fn set_queue_size(&self, n: usize) {
        self.queue_size.store(n as u64, Ordering::Relaxed);
    }

    /// A consistent-enough snapshot for status APIs and logs.
    pub fn snapshot(&self) -> HealthSnapshot {
        let last = self.last_event_unix_ms.load(Ordering::Relaxed);
        let now = self.mono_ms();
        let symbols = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        let stalest = symbols.values().map(|(mono, _)| *mono).min();
        let per_symbol = symbols
            .iter()
            .map(|(s, &(mono, unix))| {
                (
                    s.clone(),
                    SymbolHealth {
                        seconds_since_last_event: now.saturating_sub(mono) as f64 / 1000.0,
                        last_update_ms: (unix > 0).then_some(unix),
                        ..SymbolHealth::default()
                    },
                )
            })
            .collect();
        drop(symbols);
        let mut per_symbol: BTreeMap<String, SymbolHealth> = per_symbol;
        let counts = self.symbol_counts.lock().unwrap_or_else(|p| p.into_inner());
        for (s, &(messages, stale)) in counts.iter() {
            let h = per_symbol.entry(s.clone()).or_default();
            h.messages = messages;
            h.stale_detections = stale;
        }
        drop(counts);
        let state = self.state();
        HealthSnapshot {
            process_alive: self.alive.load(Ordering::Relaxed),
            queue_size: self.queue_size.load(Ordering::Relaxed),
            error_count: self.errors.load(Ordering::Relaxed),
            seconds_since_last_event: stalest.map(|m| now.saturating_sub(m) as f64 / 1000.0),
            last_update: (last > 0).then(|| iso_time(last)).flatten(),
            last_update_ms: (last > 0).then_some(last),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            stale_detections: self.stale_detections.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            state,
            status: state.status().to_string(),
            per_symbol,
        }
    }
}

/// Adds to `symbol`'s counters.
fn count_symbol(
    map: &Mutex<BTreeMap<String, (u64, u64)>>,
    symbol: &str,
    f: impl FnOnce(&mut (u64, u64)),
) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    match map.get_mut(symbol) {
        Some(c) => f(c),
        None => f(map.entry(symbol.to_string()).or_default()),
    }
}

/// One symbol's freshness and counters (a connection carries several symbols; these are this
/// symbol's own).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SymbolHealth {
    /// Seconds since its last market event (or since the connection went live, if none since).
    pub seconds_since_last_event: f64,
    /// Unix ms of its last market event.
    pub last_update_ms: Option<u64>,
    /// Its market events so far.
    #[serde(default)]
    pub messages: u64,
    /// Stale detections that named it (it was the symbol gone silent).
    #[serde(default)]
    pub stale_detections: u64,
}

/// What operators see of a feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// The task (or worker process) running the feed is alive.
    pub process_alive: bool,
    /// Events buffered for the consumer.
    pub queue_size: u64,
    /// Errors so far (malformed frames, failed connections, refused topics...).
    pub error_count: u64,
    /// Seconds since the last market event of the stalest symbol (`None` before the first).
    pub seconds_since_last_event: Option<f64>,
    /// Time of the last market event, ISO-8601 UTC.
    pub last_update: Option<String>,
    /// The same, Unix ms.
    pub last_update_ms: Option<u64>,
    /// Reconnects so far.
    pub reconnects: u64,
    /// Stale detections so far.
    pub stale_detections: u64,
    /// Market events so far.
    pub messages: u64,
    /// State machine state.
    pub state: ConnState,
    /// `connected`, `connecting`, `disconnected` or `down`.
    pub status: String,
    /// Freshness per symbol.
    #[serde(default)]
    pub per_symbol: BTreeMap<String, SymbolHealth>,
}

/// Stale detection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleRule {
    /// No event for this long is stale.
    pub stale_after: Duration,
    /// Not judged until this long after connecting.
    pub grace: Duration,
}

/// The verdict of one health check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StaleVerdict {
    /// Within the grace period.
    Grace,
    /// Data flowing.
    Fresh,
    /// Stale: reconnect.
    Stale {
        /// Seconds since the stalest symbol's last event (or since connecting, if none came).
        seconds_since_last_event: f64,
    },
}

impl StaleRule {
    /// Judges a connection: `connected_ms` when it went live, `oldest_last_event_ms` the last event
    /// time of its stalest symbol (`None` if some symbol has had none), all on one monotonic clock.
    pub fn check(
        &self,
        now_ms: u64,
        connected_ms: u64,
        oldest_last_event_ms: Option<u64>,
    ) -> StaleVerdict {
        let since_connect = now_ms.saturating_sub(connected_ms);
        if since_connect < self.grace.as_millis() as u64 {
            return StaleVerdict::Grace;
        }
        let reference = oldest_last_event_ms
            .unwrap_or(connected_ms)
            .max(connected_ms);
        let idle = now_ms.saturating_sub(reference);
        if idle >= self.stale_after.as_millis() as u64 {
            StaleVerdict::Stale {
                seconds_since_last_event: idle as f64 / 1000.0,
            }
        } else {
            StaleVerdict::Fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: StaleRule = StaleRule {
        stale_after: Duration::from_secs(60),
        grace: Duration::from_secs(30),
    };

    #[test]
    fn grace_then_fresh_then_stale() {
        assert_eq!(RULE.check(10_000, 0, None), StaleVerdict::Grace);
        assert_eq!(RULE.check(29_999, 0, None), StaleVerdict::Grace);
        assert_eq!(RULE.check(40_000, 0, Some(35_000)), StaleVerdict::Fresh);
        assert_eq!(
            RULE.check(95_000, 0, Some(35_000)),
            StaleVerdict::Stale {
                seconds_since_last_event: 60.0
            }
        );
        assert_eq!(
            RULE.check(59_999, 0, None),
            StaleVerdict::Fresh,
            "judged from connect time"
        );
        assert_eq!(
            RULE.check(60_000, 0, None),
            StaleVerdict::Stale {
                seconds_since_last_event: 60.0
            }
        );
    }

    #[test]
    fn events_from_a_previous_connection_do_not_count() {
        // Connected at 100 s; the last event was at 10 s on the old connection.
        assert_eq!(
            RULE.check(140_000, 100_000, Some(10_000)),
            StaleVerdict::Fresh
        );
        assert!(matches!(
            RULE.check(160_000, 100_000, Some(10_000)),
            StaleVerdict::Stale { .. }
        ));
    }

    #[test]
    fn stalest_symbol_is_the_one_idle_longest_or_never_seen() {
        let h = SharedHealth::default();
        let syms = vec!["A1".to_string(), "B2".to_string()];
        assert_eq!(h.stalest(&syms), ("A1".to_string(), None));
        h.market_event("A1");
        assert_eq!(h.stalest(&syms).0, "B2", "never seen is stalest");
        let live = h.live(&syms);
        let (_, t) = h.stalest(&syms);
        assert_eq!(t, Some(live), "going live restarts every symbol's clock");
    }

    #[test]
    fn statuses_for_operators() {
        assert_eq!(ConnState::Live.status(), "connected");
        assert_eq!(ConnState::Subscribing.status(), "connecting");
        assert_eq!(ConnState::Backoff.status(), "disconnected");
        assert_eq!(ConnState::Refused.status(), "down");
        assert_eq!(ConnState::Unreachable.status(), "down");
        for s in 0..9 {
            assert_eq!(ConnState::from_u8(s) as u8, s);
        }
    }
}
