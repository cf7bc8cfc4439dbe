//! The A/B arbiter: the events of several lines (redundant connections to the same topics) in,
//! one feed's events out. Pure and synchronous: the caller passes the time.
//!
//! - Trades: [`TradeMerge`] per symbol (exactly once, in order, bounded memory).
//! - Books: [`BookMerge`] per symbol (each `u` once, first line wins, never rewinds).
//! - Lifecycle: the feed is connected while at least one line is; `Connected` is emitted when the
//!   first line comes up, `Disconnected` only when the last one goes down; in between a line
//!   going down or up is a [`LineNote`] (degraded / restored), not a feed event.
//! - Lag: [`Arbiter::laggards`] names connected lines that stalled or fell behind while another
//!   line delivers, for the caller to restart.

use std::collections::HashMap;

use super::book_merge::{BookMerge, BookStep};
use super::trade_merge::{Merged, MergedGap, TradeMerge, TradeOutput};
use crate::feed::{DisconnectReason, FeedEvent};

/// The name of line `i` in logs, status and metrics: `a`, `b`, ...
pub fn line_name(i: usize) -> &'static str {
    const NAMES: [&str; 4] = ["a", "b", "c", "d"];
    NAMES.get(i).copied().unwrap_or("?")
}

/// When a connected line counts as lagging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagPolicy {
    /// No market event for this long (ms) while another line delivers: stalled.
    pub stall_ms: u64,
    /// This many book updates behind the merged book: behind.
    pub max_behind_updates: u64,
    /// A line that must prove its tape holds its new trades this long (ms) at most while another,
    /// connected line may still deliver them; then (no in-sync line connected) it carries the tape.
    pub promote_after_ms: u64,
}

/// Why a line should be restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lag {
    /// No market event for `ms` while another line delivered.
    Stalled {
        /// Since the last market event (ms).
        ms: u64,
    },
    /// `updates` book updates behind the merged book of `symbol`.
    Behind {
        /// Symbol.
        symbol: String,
        /// How many.
        updates: u64,
    },
}

/// Something about one line worth logging (the merged events say what the feed does).
#[derive(Debug, Clone, PartialEq)]
pub enum LineNote {
    /// A line's subscriptions were confirmed.
    Up {
        /// Line index.
        line: usize,
        /// Lines connected now.
        live_lines: usize,
    },
    /// A line's connection ended (or the line stopped).
    Down {
        /// Line index.
        line: usize,
        /// Why.
        reason: String,
        /// Lines connected now.
        live_lines: usize,
    },
    /// A line reported a hole in its own tape.
    LineTradeGap {
        /// Line index.
        line: usize,
        /// Symbol.
        symbol: String,
        /// Whether another line carried the tape meanwhile.
        covered: bool,
    },
    /// The merged tape has a hole: every line missed these trades.
    MergedTradeGap {
        /// Line whose tape continues after the hole.
        line: usize,
        /// Symbol.
        symbol: String,
        /// The hole.
        gap: MergedGap,
    },
}

/// One line as the arbiter sees it.
#[derive(Debug, Clone, Default)]
pub struct LineState {
    /// Subscriptions confirmed and not disconnected since.
    pub connected: bool,
    /// The line's source ended (gave up or stopped).
    pub ended: bool,
    /// Connections that went live.
    pub connects: u64,
    /// Times the line was restarted by the arbiter's caller.
    pub restarts: u64,
    /// Last market event (caller's ms clock), or when it connected.
    pub last_market_ms: Option<u64>,
    /// Market events received.
    pub messages: u64,
    /// Fill time (exchange ms) of the newest trade the line delivered: it stops moving while the
    /// line holds its live trades back (e.g. refilling a hole from REST after a reconnect).
    pub last_trade_ms: Option<u64>,
    /// Recovered trades emitted since the line's last `TradesRecovered`: (count, from, to).
    recovered: HashMap<String, (usize, u64, u64)>,
}

/// What one step produced.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Events for the merged feed, in order.
    pub events: Vec<FeedEvent>,
    /// Line notes to log.
    pub notes: Vec<LineNote>,
}

/// The merge of `n` lines of one feed (one category, its symbols).
#[derive(Debug)]
pub struct Arbiter {
    category: String,
    symbols: Vec<String>,
    lines: Vec<LineState>,
    trades: HashMap<String, TradeMerge>,
    books: HashMap<String, BookMerge>,
    connections: u64,
}

impl Arbiter {
    /// An arbiter for `lines` lines of a feed of `category` and `symbols`.
    pub fn new(lines: usize, category: &str, symbols: &[String]) -> Self {
        Arbiter {
            category: category.to_string(),
            symbols: symbols.to_vec(),
            lines: vec![LineState::default(); lines],
            trades: HashMap::new(),
            books: HashMap::new(),
            connections: 0,
        }
    }

    /// The feed's symbols.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The lines.
    pub fn lines(&self) -> &[LineState] {
        &self.lines
    }

    /// Lines connected now.
    pub fn live_lines(&self) -> usize {
        self.lines.iter().filter(|l| l.connected).count()
    }

    /// Each line's connectivity.
    fn connected(&self) -> Vec<bool> {
        self.lines.iter().map(|l| l.connected).collect()
    }

    /// The merged tape of `symbol`.
    pub fn trade_merge(&self, symbol: &str) -> Option<&TradeMerge> {
        self.trades.get(symbol)
    }

    /// The merged book topic of `symbol`.
    pub fn book_merge(&self, symbol: &str) -> Option<&BookMerge> {
        self.books.get(symbol)
    }

    /// The line whose book of `symbol` is the most advanced.
    pub fn book_leader(&self, symbol: &str) -> Option<usize> {
        self.books.get(symbol).and_then(BookMerge::leader)
    }

    /// One event of `line` at `now_ms`.
    pub fn on_event(&mut self, line: usize, ev: FeedEvent, now_ms: u64) -> Step {
        let mut step = Step::default();
        if line >= self.lines.len() {
            return step;
        }
        let n = self.lines.len();
        match ev {
            FeedEvent::Trade(t) => {
                self.market(line, now_ms);
                let l = &mut self.lines[line];
                l.last_trade_ms = Some(l.last_trade_ms.map_or(t.ts_ms, |m| m.max(t.ts_ms)));
                let connected = self.connected();
                let symbol = t.symbol.clone();
                let out = self
                    .trades
                    .entry(symbol.clone())
                    .or_insert_with(|| TradeMerge::new(n))
                    .on_trade(line, *t, &connected, now_ms);
                self.push_trades(&symbol, out, &mut step);
            }
            FeedEvent::Book(b) => {
                self.market(line, now_ms);
                let merge = self
                    .books
                    .entry(b.symbol.clone())
                    .or_insert_with(|| BookMerge::new(n));
                if let BookStep::Emit { restart } = merge.on_book(line, &b) {
                    if restart {
                        step.events.push(FeedEvent::Resync {
                            symbol: b.symbol.clone(),
                            depth: b.depth,
                            reason: crate::feed::ResyncReason::Restart,
                        });
                    }
                    step.events.push(FeedEvent::Book(b));
                }
            }
            FeedEvent::Connected { .. } => {
                let was_live = self.live_lines() > 0;
                let l = &mut self.lines[line];
                l.connected = true;
                l.ended = false;
                l.connects += 1;
                l.last_market_ms = Some(now_ms);
                if !was_live {
                    self.connections += 1;
                    step.events.push(FeedEvent::Connected {
                        category: self.category.clone(),
                        symbols: self.symbols.clone(),
                        connection: self.connections,
                    });
                }
                step.notes.push(LineNote::Up {
                    line,
                    live_lines: self.live_lines(),
                });
            }
            FeedEvent::Disconnected { reason } => self.line_down(line, reason, &mut step),
            FeedEvent::GaveUp { attempts } => {
                self.lines[line].ended = true;
                let reason = DisconnectReason::Error(format!("gave up after {attempts} attempts"));
                self.line_down(line, reason, &mut step);
                if self.lines.iter().all(|l| l.ended) {
                    step.events.push(FeedEvent::GaveUp { attempts });
                }
            }
            ev @ (FeedEvent::Stale { .. } | FeedEvent::SubscriptionRefused { .. }) => {
                // The feed's meaning: no data from this feed. Only when no other line delivers.
                if !self.others_connected(line) {
                    step.events.push(ev);
                }
            }
            FeedEvent::Resync {
                symbol,
                depth,
                reason,
            } => {
                if reason == crate::feed::ResyncReason::Gap {
                    // Frames were lost on this line, trades perhaps with them.
                    let connected = self.connected();
                    let out = self
                        .trades
                        .entry(symbol.clone())
                        .or_insert_with(|| TradeMerge::new(n))
                        .line_book_gap(line, &connected);
                    self.push_trades(&symbol, out, &mut step);
                }
                let merge = self
                    .books
                    .entry(symbol.clone())
                    .or_insert_with(|| BookMerge::new(n));
                if let BookStep::Resync(reason) = merge.on_resync(line, reason) {
                    step.events.push(FeedEvent::Resync {
                        symbol,
                        depth,
                        reason,
                    });
                }
            }
            FeedEvent::TradesRecovered { symbol, .. } => {
                if let Some((count, from_ms, to_ms)) = self.lines[line].recovered.remove(&symbol) {
                    step.events.push(FeedEvent::TradesRecovered {
                        symbol,
                        count,
                        from_ms,
                        to_ms,
                    });
                }
            }
            FeedEvent::TradeGap { symbol, .. } => {
                let covered = self.others_connected(line);
                let connected = self.connected();
                let merge = self
                    .trades
                    .entry(symbol.clone())
                    .or_insert_with(|| TradeMerge::new(n));
                merge.line_hole(line);
                let mut out = TradeOutput::default();
                merge.maybe_promote(&connected, now_ms, None, &mut out);
                step.notes.push(LineNote::LineTradeGap {
                    line,
                    symbol: symbol.clone(),
                    covered,
                });
                self.push_trades(&symbol, out, &mut step);
            }
            ev @ FeedEvent::Malformed { .. } => step.events.push(ev),
        }
        step
    }

    /// `line`'s source ended (its event stream returned nothing more).
    pub fn line_ended(&mut self, line: usize) -> Step {
        let mut step = Step::default();
        if let Some(l) = self.lines.get_mut(line) {
            l.ended = true;
            if l.connected {
                self.line_down(line, DisconnectReason::Shutdown, &mut step);
            }
        }
        step
    }

    /// `line` is being replaced by a new connection: it must prove its tape and book again.
    pub fn line_restarted(&mut self, line: usize, why: &Lag) -> Step {
        let mut step = Step::default();
        if line >= self.lines.len() {
            return step;
        }
        self.lines[line].restarts += 1;
        if self.lines[line].connected {
            let reason = DisconnectReason::Error(match why {
                Lag::Stalled { ms } => format!("line stalled for {ms} ms"),
                Lag::Behind { symbol, updates } => {
                    format!("line {updates} updates behind on {symbol}")
                }
            });
            self.line_down(line, reason, &mut step);
        }
        for t in self.trades.values_mut() {
            t.line_reset(line);
        }
        for b in self.books.values_mut() {
            b.line_reset(line);
        }
        self.lines[line].recovered.clear();
        step
    }

    /// Connected lines that stalled or fell behind while another connected line delivers.
    pub fn laggards(&self, now_ms: u64, policy: LagPolicy) -> Vec<(usize, Lag)> {
        let fresh = |l: &LineState| {
            l.connected
                && l.last_market_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) < policy.stall_ms)
        };
        let mut out = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            if !l.connected {
                continue;
            }
            let others_fresh = self
                .lines
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && fresh(o));
            if !others_fresh {
                continue;
            }
            let idle = now_ms.saturating_sub(l.last_market_ms.unwrap_or(now_ms));
            if idle >= policy.stall_ms {
                out.push((i, Lag::Stalled { ms: idle }));
                continue;
            }
            let worst = self
                .books
                .iter()
                .filter_map(|(s, b)| b.behind(i).map(|u| (u, s)))
                .max();
            if let Some((updates, symbol)) = worst {
                if updates >= policy.max_behind_updates {
                    out.push((
                        i,
                        Lag::Behind {
                            symbol: symbol.clone(),
                            updates,
                        },
                    ));
                }
            }
        }
        out
    }

    fn others_connected(&self, line: usize) -> bool {
        self.lines
            .iter()
            .enumerate()
            .any(|(i, l)| i != line && l.connected)
    }

    fn market(&mut self, line: usize, now_ms: u64) {
        let l = &mut self.lines[line];
        l.last_market_ms = Some(now_ms);
        l.messages += 1;
    }

    fn line_down(&mut self, line: usize, reason: DisconnectReason, step: &mut Step) {
        let was = std::mem::replace(&mut self.lines[line].connected, false);
        step.notes.push(LineNote::Down {
            line,
            reason: reason.to_string(),
            live_lines: self.live_lines(),
        });
        if was && self.live_lines() == 0 {
            step.events.push(FeedEvent::Disconnected { reason });
        }
        // With the last in-sync line gone, a holding line carries the tape.
        self.promote_all(0, None, step);
    }

    /// Lets holding lines carry the tape where no in-sync line is connected (`grace_ms`: see
    /// [`TradeMerge::maybe_promote`]).
    fn promote_all(&mut self, now_ms: u64, grace_ms: Option<u64>, step: &mut Step) {
        let connected = self.connected();
        let symbols: Vec<String> = self.trades.keys().cloned().collect();
        for symbol in symbols {
            let mut out = TradeOutput::default();
            if let Some(t) = self.trades.get_mut(&symbol) {
                t.maybe_promote(&connected, now_ms, grace_ms, &mut out);
            }
            self.push_trades(&symbol, out, step);
        }
    }

    /// Time passed: a line that held its trades for `policy.promote_after_ms` with no in-sync line
    /// connected carries the tape.
    pub fn on_tick(&mut self, now_ms: u64, policy: LagPolicy) -> Step {
        let mut step = Step::default();
        self.promote_all(now_ms, Some(policy.promote_after_ms), &mut step);
        step
    }

    fn push_trades(&mut self, symbol: &str, out: TradeOutput, step: &mut Step) {
        let mut items = out.items.into_iter().peekable();
        while let Some(item) = items.next() {
            match item {
                Merged::Gap(gap) => {
                    let line = match items.peek() {
                        Some(Merged::Trade(l, _)) => *l,
                        _ => 0,
                    };
                    step.notes.push(LineNote::MergedTradeGap {
                        line,
                        symbol: symbol.to_string(),
                        gap,
                    });
                    step.events.push(FeedEvent::TradeGap {
                        symbol: symbol.to_string(),
                        from_ms: gap.from_ms,
                        to_ms: gap.to_ms,
                    });
                }
                Merged::Trade(line, t) => {
                    if t.recovered {
                        let e = self.lines[line]
                            .recovered
                            .entry(symbol.to_string())
                            .or_insert((0, u64::MAX, 0));
                        *e = (e.0 + 1, e.1.min(t.ts_ms), e.2.max(t.ts_ms));
                    }
                    step.events.push(FeedEvent::Trade(Box::new(t)));
                }
            }
        }
    }
}
