//! The simulated exchange's state under one lock: instruments with their true books, per-topic
//! update ids, tapes, subscriptions and the journal. A market step changes one book, then publishes
//! (encode once, fan out) and journals every resulting trade and book frame, so subscriptions taken
//! under the same lock see a snapshot and exactly the deltas after it.

use std::collections::HashMap;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::config::SimConfig;
use super::encode::{self, BookHeader};
use super::hub::{Conn, Hub, TopicKey, TopicKind};
use super::instrument::Instrument;
use super::journal::Journal;
use super::ladder::{BookSide, Ladder, TrueBook};
use super::market;
use super::tape::{SimTrade, Tape};
use crate::normalized::{BookEvent, Event, TradeEvent};
use crate::protocol::topic::{TopicRef, KLINE_INTERVALS};
use crate::protocol::ws::BookKind;
use crate::protocol::{Category, Side};

/// Depths of the `orderbook.{depth}` topics, in the order of [`InstState::topics`].
pub const DEPTHS: [u16; 4] = [1, 50, 200, 1000];

/// Update-id state of one book topic.
#[derive(Debug, Clone)]
pub struct BookTopic {
    /// Depth.
    pub depth: u16,
    /// Last published `u`.
    pub u: u64,
    /// The `gap` fault: skip one id on the next update.
    pub skip_next: bool,
}

pub(super) type Top = (Option<(i64, i64)>, Option<(i64, i64)>);

/// Bid and ask levels `(ticks, lots)` of one frame.
type Sides<'a> = (&'a [(i64, i64)], &'a [(i64, i64)]);

/// One instrument's market.
#[derive(Debug)]
pub struct InstState {
    /// Spec.
    pub inst: Instrument,
    /// True book.
    pub ladder: Ladder,
    /// Book topics, by [`DEPTHS`].
    pub topics: [BookTopic; 4],
    /// Cross sequence.
    pub seq: u64,
    /// Matching-engine time of the last change.
    pub cts_ms: u64,
    pub(super) last_trade: Option<i64>,
    last_dir: &'static str,
    next_spot_id: u64,
    /// Trades and candles.
    pub tape: Tape,
    pub(super) l1_top: Top,
    pub(super) l1_sent_ms: u64,
}

/// Why a topic cannot be subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Unknown symbol, topic or depth: `error:handler not found`.
    NotFound,
    /// Already subscribed on this connection.
    Already,
}

/// The exchange state.
#[derive(Debug)]
pub struct Core {
    /// Instruments, indexed by id.
    pub insts: Vec<InstState>,
    index: HashMap<(Category, String), u16>,
    /// Subscriptions.
    pub hub: Hub,
    /// Ground truth.
    pub journal: Journal,
    rng: SmallRng,
    pub(super) kline_sent: HashMap<TopicKey, u64>,
}

/// Best bid and best ask of a book.
pub(super) fn top_of(l: &Ladder) -> Top {
    (l.best(BookSide::Bid), l.best(BookSide::Ask))
}

impl Core {
    /// A market for every (category, symbol) of `cfg`, deterministic from its seed.
    pub fn new(cfg: &SimConfig, now_ms: u64, journal: Journal) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let mut insts = Vec::new();
        let mut index = HashMap::new();
        for &category in &cfg.categories {
            for symbol in &cfg.symbols {
                if index.contains_key(&(category, symbol.clone())) {
                    continue;
                }
                let id = insts.len() as u16;
                let inst = Instrument::new(id, category, symbol);
                let ladder = market::seed_book(&inst, &mut rng);
                let topics = DEPTHS.map(|depth| BookTopic {
                    depth,
                    u: rng.random_range(1_000_000..50_000_000),
                    skip_next: false,
                });
                let tape = Tape::new(&inst, cfg.seed, now_ms, cfg.history_days, cfg.recent_trades);
                index.insert((category, symbol.clone()), id);
                let l1_top = top_of(&ladder);
                insts.push(InstState {
                    seq: rng.random_range(400_000_000_000..500_000_000_000),
                    cts_ms: now_ms,
                    last_trade: None,
                    last_dir: "ZeroPlusTick",
                    next_spot_id: 2_290_000_000_000_000_000 + u64::from(id) * 1_000_000_000_000,
                    inst,
                    ladder,
                    topics,
                    tape,
                    l1_top,
                    l1_sent_ms: now_ms,
                });
                // Bybit's recent-trade window is full from the first second.
                if let Some(st) = insts.last_mut() {
                    let n = category.max_recent_trades().min(cfg.recent_trades);
                    st.tape
                        .seed_recent(&st.inst, cfg.seed, st.seq, st.next_spot_id, n);
                }
            }
        }
        // The level-1 repeat counts from when the market is ready (seeding the trade windows
        // takes a moment), not from before it.
        let ready_ms = now_ms.max(super::server::wall_ms());
        for st in &mut insts {
            st.l1_sent_ms = ready_ms;
        }
        Core {
            insts,
            index,
            hub: Hub::default(),
            journal,
            rng,
            kline_sent: HashMap::new(),
        }
    }

    /// The instrument id of `symbol` in `category`.
    pub fn find(&self, category: Category, symbol: &str) -> Option<u16> {
        self.index.get(&(category, symbol.to_string())).copied()
    }

    /// Instruments matching an optional category and symbol.
    pub fn matching(&self, category: Option<Category>, symbol: Option<&str>) -> Vec<u16> {
        self.insts
            .iter()
            .filter(|s| category.is_none_or_eq(s.inst.category))
            .filter(|s| symbol.is_none_or(|sym| sym == s.inst.symbol))
            .map(|s| s.inst.id)
            .collect()
    }

    /// Resolves a topic name on a category's stream.
    pub fn resolve(&self, category: Category, topic: &str) -> Option<TopicKey> {
        let t = TopicRef::parse(topic)?;
        let id = self.find(category, t.symbol())?;
        let kind = match t {
            TopicRef::Trade { .. } => TopicKind::Trade,
            TopicRef::OrderBook { depth, .. } => {
                DEPTHS.contains(&depth).then_some(TopicKind::Book(depth))?
            }
            TopicRef::Kline { interval, .. } => {
                TopicKind::Kline(KLINE_INTERVALS.iter().position(|i| *i == interval)? as u8)
            }
        };
        Some((id, kind))
    }

    /// Subscribes `conn` to `key`, queueing the book snapshot first for book topics.
    pub fn subscribe(
        &mut self,
        conn: &Arc<Conn>,
        key: TopicKey,
        now_ms: u64,
    ) -> Result<(), TopicError> {
        if self.hub.is_subscribed(&key, conn.id) {
            return Err(TopicError::Already);
        }
        if let TopicKind::Book(depth) = key.1 {
            let frame = self.snapshot_frame(key.0, depth, now_ms);
            conn.push(super::hub::Out {
                text: frame.into(),
                at: std::time::Instant::now(),
                inst: key.0,
            });
        }
        self.hub.subscribe(key, conn);
        Ok(())
    }

    fn depth_index(depth: u16) -> usize {
        DEPTHS
            .iter()
            .position(|d| *d == depth)
            .unwrap_or(DEPTHS.len() - 1)
    }

    /// The current snapshot frame of `orderbook.{depth}` of instrument `id`.
    pub fn snapshot_frame(&self, id: u16, depth: u16, now_ms: u64) -> String {
        let st = &self.insts[usize::from(id)];
        let n = usize::from(depth);
        let bids = &st.ladder.side(BookSide::Bid)[..n.min(st.ladder.len(BookSide::Bid))];
        let asks = &st.ladder.side(BookSide::Ask)[..n.min(st.ladder.len(BookSide::Ask))];
        let h = BookHeader {
            depth,
            snapshot: true,
            ts_ms: now_ms,
            cts_ms: st.cts_ms,
            u: st.topics[Self::depth_index(depth)].u,
            seq: st.seq,
        };
        encode::book(&st.inst, &h, bids, asks)
    }

    /// The true book of instrument `id` at `depth` with its topic's `u` (1000 for other depths).
    pub fn true_book(&self, id: u16, depth: u16) -> TrueBook {
        let st = &self.insts[usize::from(id)];
        let n = usize::from(depth.max(1));
        let conv = |side: BookSide| {
            st.ladder.side(side)[..n.min(st.ladder.len(side))]
                .iter()
                .map(|&(p, q)| (st.inst.price(p), st.inst.qty(q)))
                .collect()
        };
        TrueBook {
            category: st.inst.category,
            symbol: st.inst.symbol.clone(),
            depth,
            u: st.topics[Self::depth_index(depth)].u,
            seq: st.seq,
            ts_ms: st.cts_ms,
            bids: conv(BookSide::Bid),
            asks: conv(BookSide::Ask),
        }
    }

    /// One market step on a random instrument; returns the market frames it produced.
    pub fn step(&mut self, now_ms: u64) -> (u64, u64) {
        if self.insts.is_empty() {
            return (0, 0);
        }
        let i = self.rng.random_range(0..self.insts.len());
        let st = &mut self.insts[i];
        let before: Vec<(Option<i64>, Option<i64>)> = DEPTHS[1..]
            .iter()
            .map(|&d| {
                let d = usize::from(d);
                (
                    st.ladder.boundary(BookSide::Bid, d),
                    st.ladder.boundary(BookSide::Ask, d),
                )
            })
            .collect();
        let r = market::step(&st.inst, &mut st.ladder, &mut self.rng);
        st.seq += self.rng.random_range(1..=40);
        st.cts_ms = st.cts_ms.max(now_ms);
        let mut frames = 0;
        let mut trades = 0;
        if let Some(taker) = r.taker {
            let list = self.make_trades(i, taker, &r.fills);
            trades = list.len() as u64;
            self.publish_trades(i, &list);
            frames += 1;
        }
        for (k, &(bb, ba)) in before.iter().enumerate() {
            let st = &self.insts[i];
            let delta = st
                .ladder
                .window_delta(usize::from(DEPTHS[k + 1]), &r.changes, bb, ba);
            if !delta.is_empty() {
                self.publish_book(i, k + 1, false, true, (&delta.bids, &delta.asks), now_ms);
                frames += 1;
            }
        }
        let top = top_of(&self.insts[i].ladder);
        if top != self.insts[i].l1_top {
            frames += self.publish_level1(i, now_ms, true);
        }
        (frames, trades)
    }

    fn make_trades(&mut self, i: usize, taker: Side, fills: &[(i64, i64)]) -> Vec<SimTrade> {
        let spot = self.insts[i].inst.category == Category::Spot;
        let mut out = Vec::with_capacity(fills.len());
        for &(price, lots) in fills {
            let id = if spot {
                let st = &mut self.insts[i];
                st.next_spot_id += 1;
                st.next_spot_id.to_string()
            } else {
                let r = &mut self.rng;
                format!(
                    "{:08x}-{:04x}-5{:03x}-{:04x}-{:012x}",
                    r.random::<u32>(),
                    r.random::<u16>(),
                    r.random::<u16>() & 0xfff,
                    (r.random::<u16>() & 0x3fff) | 0x8000,
                    r.random::<u64>() & 0xffff_ffff_ffff
                )
            };
            let st = &mut self.insts[i];
            let dir = match st.last_trade {
                Some(l) if price > l => "PlusTick",
                Some(l) if price < l => "MinusTick",
                _ if matches!(st.last_dir, "PlusTick" | "ZeroPlusTick") => "ZeroPlusTick",
                _ => "ZeroMinusTick",
            };
            st.last_trade = Some(price);
            st.last_dir = dir;
            out.push(SimTrade {
                id,
                ts_ms: st.cts_ms,
                side: taker,
                price,
                lots,
                tick_direction: dir,
                seq: st.seq,
            });
        }
        out
    }

    fn publish_trades(&mut self, i: usize, list: &[SimTrade]) {
        let st = &mut self.insts[i];
        let key = (st.inst.id, TopicKind::Trade);
        if self.hub.has_subscribers(&key) {
            self.hub
                .publish(&key, encode::trades(&st.inst, st.cts_ms, list));
        }
        let category = Some(st.inst.category.as_str().to_string());
        for t in list {
            self.journal.record(Event::Trade(TradeEvent {
                symbol: st.inst.symbol.clone(),
                id: t.id.clone(),
                price: st.inst.price(t.price),
                qty: st.inst.qty(t.lots),
                side: t.side,
                ts_ms: t.ts_ms,
                seq: Some(t.seq),
                block: false,
                category: category.clone(),
                recv_ns: None,
                recovered: false,
            }));
            st.tape.record(&st.inst, t.clone());
        }
    }

    /// Publishes a book frame of topic `k` (index into [`DEPTHS`]) and journals it.
    pub(super) fn publish_book(
        &mut self,
        i: usize,
        k: usize,
        snapshot: bool,
        advance: bool,
        (bids, asks): Sides<'_>,
        now_ms: u64,
    ) {
        let st = &mut self.insts[i];
        let topic = &mut st.topics[k];
        if advance {
            topic.u += if std::mem::take(&mut topic.skip_next) {
                2
            } else {
                1
            };
        }
        let h = BookHeader {
            depth: topic.depth,
            snapshot,
            ts_ms: now_ms.max(st.cts_ms),
            cts_ms: st.cts_ms,
            u: topic.u,
            seq: st.seq,
        };
        self.emit_book(i, &h, bids, asks);
    }

    fn emit_book(&mut self, i: usize, h: &BookHeader, bids: &[(i64, i64)], asks: &[(i64, i64)]) {
        let st = &self.insts[i];
        let key = (st.inst.id, TopicKind::Book(h.depth));
        if self.hub.has_subscribers(&key) {
            self.hub
                .publish(&key, encode::book(&st.inst, h, bids, asks));
        }
        let n = usize::from(h.depth);
        let pair = |l: (i64, i64)| (st.inst.price(l.0), st.inst.qty(l.1));
        let event = Event::Book(BookEvent {
            symbol: st.inst.symbol.clone(),
            depth: h.depth,
            kind: if h.snapshot {
                BookKind::Snapshot
            } else {
                BookKind::Delta
            },
            u: h.u,
            seq: Some(h.seq),
            ts_ms: h.ts_ms,
            cts_ms: Some(h.cts_ms),
            bids: bids.iter().map(|&l| pair(l)).collect(),
            asks: asks.iter().map(|&l| pair(l)).collect(),
            best_bid: st.ladder.best(BookSide::Bid).map(pair),
            best_ask: st.ladder.best(BookSide::Ask).map(pair),
            levels: (
                st.ladder.len(BookSide::Bid).min(n),
                st.ladder.len(BookSide::Ask).min(n),
            ),
            category: Some(st.inst.category.as_str().to_string()),
            recv_ns: None,
            top: None,
        });
        self.journal.record(event);
    }

    /// Publishes the level-1 snapshot; `changed` advances `u`, otherwise it repeats the last one.
    pub(super) fn publish_level1(&mut self, i: usize, now_ms: u64, changed: bool) -> u64 {
        let st = &mut self.insts[i];
        let top = top_of(&st.ladder);
        st.l1_top = top;
        st.l1_sent_ms = now_ms;
        let bids: Vec<(i64, i64)> = top.0.into_iter().collect();
        let asks: Vec<(i64, i64)> = top.1.into_iter().collect();
        if changed {
            self.publish_book(i, 0, true, true, (&bids, &asks), now_ms);
        } else {
            let st = &self.insts[i];
            let h = BookHeader {
                depth: 1,
                snapshot: true,
                ts_ms: now_ms,
                cts_ms: st.cts_ms,
                u: st.topics[0].u,
                seq: st.seq,
            };
            self.emit_book(i, &h, &bids, &asks);
        }
        1
    }
}

trait OptEq<T> {
    fn is_none_or_eq(&self, v: T) -> bool;
}

impl<T: PartialEq> OptEq<T> for Option<T> {
    fn is_none_or_eq(&self, v: T) -> bool {
        self.as_ref().is_none_or(|x| *x == v)
    }
}
