//! Connections and subscriptions: who listens to which topic, and the fan-out of one encoded frame
//! (a cheaply cloned `Utf8Bytes`) to every subscriber's bounded queue.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

use crate::protocol::Category;

/// Marks a frame that is not market data (ack, pong, refusal, corrupt frame).
pub const NOT_MARKET: u16 = u16::MAX;

/// What a topic is about, for one instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicKind {
    /// `publicTrade`
    Trade,
    /// `orderbook.{depth}`
    Book(u16),
    /// `kline.{interval}` (index into `KLINE_INTERVALS`)
    Kline(u8),
}

/// A topic of one instrument (index into the instrument table).
pub type TopicKey = (u16, TopicKind);

/// One outgoing frame.
#[derive(Debug, Clone)]
pub struct Out {
    /// The frame text, shared by every subscriber.
    pub text: Utf8Bytes,
    /// When it was queued (the `slow` fault delays frames relative to this).
    pub at: Instant,
    /// Instrument of a market frame, or [`NOT_MARKET`].
    pub inst: u16,
}

/// Out-of-band orders to a connection task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    /// Send a close frame and end.
    Close,
    /// End abruptly with a TCP reset.
    Reset,
    /// The queue overflowed: the client is too slow; disconnect it.
    Overflow,
}

/// Per-connection fault windows (milliseconds since the simulator started).
#[derive(Debug, Clone, Default)]
pub struct ConnFaults {
    /// Nothing at all is sent until then.
    pub stall_until: u64,
    /// Market frames (of `silence_inst`, or all) are dropped until then.
    pub silence_until: u64,
    /// Instruments silenced (empty: all).
    pub silence_insts: Vec<u16>,
    /// Frames are delayed by `slow_ms` until then.
    pub slow_until: u64,
    /// Added latency.
    pub slow_ms: u64,
}

/// One WebSocket connection as the rest of the simulator sees it.
#[derive(Debug)]
pub struct Conn {
    /// Internal id.
    pub id: u64,
    /// The `conn_id` sent in acks and pongs.
    pub conn_id: String,
    /// Category of the path it connected to.
    pub category: Category,
    /// Remote address.
    pub peer: SocketAddr,
    tx: mpsc::Sender<Out>,
    /// Control channel.
    pub ctl: mpsc::UnboundedSender<Ctl>,
    /// Set when the connection must be reset rather than closed (read by the socket on drop).
    pub reset_flag: Arc<AtomicBool>,
    /// Whether `faults` holds anything (checked without locking on every frame).
    pub has_faults: AtomicBool,
    /// Fault windows.
    pub faults: Mutex<ConnFaults>,
    /// Frames queued (for stats and tests).
    pub queued: AtomicU64,
}

impl Conn {
    /// A connection record and the receiving ends of its queues.
    pub fn new(
        id: u64,
        conn_id: String,
        category: Category,
        peer: SocketAddr,
        queue: usize,
        reset_flag: Arc<AtomicBool>,
    ) -> (Arc<Conn>, mpsc::Receiver<Out>, mpsc::UnboundedReceiver<Ctl>) {
        let (tx, rx) = mpsc::channel(queue.max(16));
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            id,
            conn_id,
            category,
            peer,
            tx,
            ctl,
            reset_flag,
            has_faults: AtomicBool::new(false),
            faults: Mutex::new(ConnFaults::default()),
            queued: AtomicU64::new(0),
        });
        (conn, rx, ctl_rx)
    }

    /// Queues a frame; a full queue marks the client too slow (it will be disconnected).
    pub fn push(&self, out: Out) {
        match self.tx.try_send(out) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = self.ctl.send(Ctl::Overflow);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues a reply (not market data).
    pub fn reply(&self, text: String) {
        self.push(Out {
            text: Utf8Bytes::from(text),
            at: Instant::now(),
            inst: NOT_MARKET,
        });
    }

    /// Changes the fault windows.
    pub fn with_faults(&self, f: impl FnOnce(&mut ConnFaults)) {
        if let Ok(mut g) = self.faults.lock() {
            f(&mut g);
            self.has_faults.store(true, Ordering::Release);
        }
    }
}

/// Subscribers per topic.
#[derive(Debug, Default)]
pub struct Hub {
    subs: HashMap<TopicKey, Vec<Arc<Conn>>>,
}

impl Hub {
    /// Whether anyone listens to `key`.
    pub fn has_subscribers(&self, key: &TopicKey) -> bool {
        self.subs.get(key).is_some_and(|v| !v.is_empty())
    }

    /// Whether `conn` listens to `key`.
    pub fn is_subscribed(&self, key: &TopicKey, conn: u64) -> bool {
        self.subs
            .get(key)
            .is_some_and(|v| v.iter().any(|c| c.id == conn))
    }

    /// Adds a subscriber.
    pub fn subscribe(&mut self, key: TopicKey, conn: &Arc<Conn>) {
        self.subs.entry(key).or_default().push(Arc::clone(conn));
    }

    /// Removes a subscriber; whether it was there.
    pub fn unsubscribe(&mut self, key: &TopicKey, conn: u64) -> bool {
        let Some(v) = self.subs.get_mut(key) else {
            return false;
        };
        let before = v.len();
        v.retain(|c| c.id != conn);
        let removed = v.len() != before;
        if v.is_empty() {
            self.subs.remove(key);
        }
        removed
    }

    /// Removes a connection from every topic.
    pub fn remove_conn(&mut self, conn: u64) {
        self.subs.retain(|_, v| {
            v.retain(|c| c.id != conn);
            !v.is_empty()
        });
    }

    /// Connections subscribed to any topic of the instruments `ids`.
    pub fn subscribers_of(&self, ids: &[u16]) -> std::collections::HashSet<u64> {
        self.subs
            .iter()
            .filter(|(k, _)| ids.contains(&k.0))
            .flat_map(|(_, v)| v.iter().map(|c| c.id))
            .collect()
    }

    /// Topics that have subscribers.
    pub fn topics(&self) -> impl Iterator<Item = &TopicKey> {
        self.subs.keys()
    }

    /// Sends one frame to every subscriber of `key`; returns how many got it.
    pub fn publish(&self, key: &TopicKey, text: String) -> usize {
        let Some(v) = self.subs.get(key) else {
            return 0;
        };
        let out = Out {
            text: Utf8Bytes::from(text),
            at: Instant::now(),
            inst: key.0,
        };
        for c in v {
            c.push(out.clone());
        }
        v.len()
    }
}
