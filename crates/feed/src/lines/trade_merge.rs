//! One symbol's trades from several lines merged into one tape: each trade exactly once, in the
//! order of the lines' own (complete, ordered) tapes, with bounded memory. Pure.
//!
//! Every line delivers a contiguous, ordered tape, except where it announced a hole
//! ([`FeedEvent::TradeGap`](crate::feed::FeedEvent)) or just (re)started. So:
//! - a line is *in sync* when its tape is known to continue the merged tape; the trades of an
//!   in-sync line are emitted on first arrival (the faster line wins), repeats are dropped;
//! - a line that is not in sync *holds* its new trades back (bounded) until it proves contiguity:
//!   it delivers a trade the merged tape already has, or an in-sync line emits one it holds (its
//!   held trades after that one are then emitted at once);
//! - when no in-sync line is connected any more (both lines were down at once), the holding line
//!   whose held trades start earliest is *promoted* (at once when every other connected line
//!   holds trades too, else after a grace period in which the other line may still deliver): its
//!   held trades are emitted and the possible hole before them is reported.

use std::collections::{HashSet, VecDeque};

use crate::normalized::TradeEvent;

/// Trade ids remembered for de-duplication (a line lagging further is caught by the time rule).
pub const SEEN_CAPACITY: usize = 65_536;
/// Trades a line may hold back while it is not in sync.
pub const HELD_CAPACITY: usize = 65_536;

/// A hole in the merged tape: no line delivered the trades between these fill times (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedGap {
    /// After this time: the last trade emitted before the hole.
    pub from_ms: u64,
    /// Before this one: the first trade emitted after it.
    pub to_ms: u64,
}

/// One item of the merged tape.
#[derive(Debug, Clone, PartialEq)]
pub enum Merged {
    /// A hole no line could fill, reported before the trades after it.
    Gap(MergedGap),
    /// A trade, emitted for the first time, with the line that delivered it.
    Trade(usize, TradeEvent),
}

/// What a step emitted, in order.
#[derive(Debug, Default, PartialEq)]
pub struct TradeOutput {
    /// Holes and trades.
    pub items: Vec<Merged>,
}

impl TradeOutput {
    /// The trades emitted.
    pub fn trades(&self) -> impl Iterator<Item = &TradeEvent> {
        self.items.iter().filter_map(|i| match i {
            Merged::Trade(_, t) => Some(t),
            Merged::Gap(_) => None,
        })
    }
}

/// Counters of one symbol's merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TradeStats {
    /// Trades emitted.
    pub emitted: u64,
    /// Repeats dropped (the other line had them first).
    pub duplicates: u64,
    /// Held trades dropped because the merged tape had moved past them.
    pub discarded: u64,
    /// Held trades dropped because a holding line exceeded [`HELD_CAPACITY`].
    pub overflow: u64,
}

#[derive(Debug, Default)]
struct LineTrades {
    in_sync: bool,
    /// Held trades with the segment of the line's tape they belong to: a hole the line announced
    /// while holding starts a new segment (the trades of one segment are contiguous).
    held: VecDeque<(u64, TradeEvent)>,
    segment: u64,
    held_ids: HashSet<String>,
    /// When the oldest held trade arrived (caller's ms clock).
    held_since_ms: Option<u64>,
    /// Out of sync only because its book saw a gap (frames lost), as of this segment.
    book_gap_segment: Option<u64>,
}

impl LineTrades {
    fn clear_held(&mut self) -> u64 {
        let n = self.held.len() as u64;
        self.held.clear();
        self.held_ids.clear();
        self.held_since_ms = None;
        n
    }
}

/// One symbol's merged tape.
#[derive(Debug)]
pub struct TradeMerge {
    lines: Vec<LineTrades>,
    seen: HashSet<String>,
    order: VecDeque<String>,
    last_ts_ms: Option<u64>,
    /// (fill time, sequence) of the newest trade emitted.
    last_key: Option<(u64, Option<u64>)>,
    /// ... and of the first: where the tape starts.
    first_key: Option<(u64, Option<u64>)>,
    /// Counters.
    pub stats: TradeStats,
}

impl TradeMerge {
    /// A merge of `lines` lines, none in sync yet.
    pub fn new(lines: usize) -> Self {
        TradeMerge {
            lines: (0..lines).map(|_| LineTrades::default()).collect(),
            seen: HashSet::new(),
            order: VecDeque::new(),
            last_ts_ms: None,
            last_key: None,
            first_key: None,
            stats: TradeStats::default(),
        }
    }

    /// Whether `line` is known to continue the merged tape.
    pub fn in_sync(&self, line: usize) -> bool {
        self.lines.get(line).is_some_and(|l| l.in_sync)
    }

    /// Trades `line` holds back.
    pub fn held(&self, line: usize) -> usize {
        self.lines.get(line).map_or(0, |l| l.held.len())
    }

    /// Fill time of the newest trade emitted.
    pub fn last_ts_ms(&self) -> Option<u64> {
        self.last_ts_ms
    }

    /// `line` announced a hole in its own tape (or restarted): it must prove contiguity again.
    pub fn line_hole(&mut self, line: usize) {
        if let Some(l) = self.lines.get_mut(line) {
            l.in_sync = false;
            l.segment += 1;
        }
    }

    /// `line`'s book saw a gap: frames were lost on it, trades perhaps with them, and its live
    /// trades may run ahead of that hole until its REST refill catches up. If another line carries
    /// the tape, `line` must prove its tape again. If another line is out of sync for the same
    /// reason, the exchange skipped ids on every line (no line lost trades of its own): that line
    /// is in sync again and its held trades go out.
    pub fn line_book_gap(&mut self, line: usize, connected: &[bool]) -> TradeOutput {
        let mut out = TradeOutput::default();
        if line >= self.lines.len() {
            return out;
        }
        let same: Vec<usize> = (0..self.lines.len())
            .filter(|&i| {
                let o = &self.lines[i];
                i != line && !o.in_sync && o.book_gap_segment == Some(o.segment)
            })
            .collect();
        if !same.is_empty() {
            for m in same {
                let o = &mut self.lines[m];
                o.in_sync = true;
                o.book_gap_segment = None;
                o.held_ids.clear();
                o.held_since_ms = None;
                let held: Vec<TradeEvent> = o.held.drain(..).map(|h| h.1).collect();
                for t in held {
                    if !self.seen.contains(&t.id) && !self.behind_head(&t) {
                        self.emit(m, t, &mut out);
                    }
                }
            }
            return out;
        }
        if self.lines[line].in_sync && self.any_usable(line, connected) {
            self.line_hole(line);
            let l = &mut self.lines[line];
            l.book_gap_segment = Some(l.segment);
        }
        out
    }

    /// `line` is replaced by a new connection: what it held is forgotten, it must prove itself.
    pub fn line_reset(&mut self, line: usize) {
        if let Some(l) = self.lines.get_mut(line) {
            l.in_sync = false;
            l.clear_held();
        }
    }

    /// A trade from `line` at `now_ms`. `connected[i]`: whether line `i` is connected now.
    pub fn on_trade(
        &mut self,
        line: usize,
        t: TradeEvent,
        connected: &[bool],
        now_ms: u64,
    ) -> TradeOutput {
        let mut out = TradeOutput::default();
        if line >= self.lines.len() {
            return out;
        }
        if self.seen.contains(&t.id) {
            self.stats.duplicates += 1;
            let l = &mut self.lines[line];
            if !l.in_sync {
                // Its tape reached a trade the merged tape has: everything after continues it.
                l.in_sync = true;
                let dropped: Vec<TradeEvent> = l.held.drain(..).map(|h| h.1).collect();
                l.clear_held();
                self.discard(line, dropped, &mut out);
            }
            return out;
        }
        if self.lines[line].in_sync {
            self.emit(line, t, &mut out);
            return out;
        }
        let l = &mut self.lines[line];
        if l.held_ids.contains(&t.id) {
            self.stats.duplicates += 1;
            return out;
        }
        if l.held.len() >= HELD_CAPACITY {
            if let Some((_, old)) = l.held.pop_front() {
                l.held_ids.remove(&old.id);
                self.stats.overflow += 1;
            }
        }
        l.held_ids.insert(t.id.clone());
        l.held.push_back((l.segment, t));
        l.held_since_ms.get_or_insert(now_ms);
        if self.last_ts_ms.is_none() {
            // Nothing emitted yet: the first line to deliver starts the tape.
            self.promote(line, &mut out);
            return out;
        }
        self.maybe_promote(connected, now_ms, None, &mut out);
        out
    }

    /// Promotes the holding line whose held trades start earliest when no in-sync line is
    /// connected and either no other line is connected or it has held for `grace_ms` (`None`:
    /// never by time; `Some(0)`: now).
    pub fn maybe_promote(
        &mut self,
        connected: &[bool],
        now_ms: u64,
        grace_ms: Option<u64>,
        out: &mut TradeOutput,
    ) {
        // Each promotion emits one held segment: repeat while a line can carry the tape.
        while let Some(line) = self.promotable(connected, now_ms, grace_ms) {
            self.promote(line, out);
        }
    }

    fn promotable(&self, connected: &[bool], now_ms: u64, grace_ms: Option<u64>) -> Option<usize> {
        let line = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.in_sync && !l.held.is_empty())
            .min_by_key(|(i, l)| (l.held.front().map(|h| (h.1.ts_ms, h.1.seq)), *i))
            .map(|(i, _)| i)?;
        if self.any_usable(line, connected) {
            return None;
        }
        // A connected line that holds nothing yet may still deliver what this one missed; one
        // that holds trades too cannot prove anything either: no reason to wait for it.
        let may_deliver = self.lines.iter().enumerate().any(|(i, l)| {
            i != line && connected.get(i).copied().unwrap_or(false) && l.held.is_empty()
        });
        let waited = match (grace_ms, self.lines[line].held_since_ms) {
            (Some(g), Some(since)) => now_ms.saturating_sub(since) >= g,
            _ => false,
        };
        (!may_deliver || waited).then_some(line)
    }

    /// Whether a line other than `line` is in sync and connected.
    fn any_usable(&self, line: usize, connected: &[bool]) -> bool {
        self.lines
            .iter()
            .enumerate()
            .any(|(i, l)| i != line && l.in_sync && connected.get(i).copied().unwrap_or(false))
    }

    /// `line` becomes the tape: its first held segment is emitted after the hole it may leave;
    /// later segments (after holes it announced meanwhile) stay held for the next decision.
    fn promote(&mut self, line: usize, out: &mut TradeOutput) {
        let l = &mut self.lines[line];
        let Some(first_seg) = l.held.front().map(|h| h.0) else {
            return;
        };
        let mut segment = Vec::new();
        while l.held.front().is_some_and(|h| h.0 == first_seg) {
            if let Some((_, t)) = l.held.pop_front() {
                l.held_ids.remove(&t.id);
                segment.push(t);
            }
        }
        let current = l.held.is_empty() && first_seg == l.segment;
        if l.held.is_empty() {
            l.held_since_ms = None;
        }
        let fresh: Vec<TradeEvent> = segment
            .into_iter()
            .filter(|t| !self.seen.contains(&t.id))
            .collect();
        let (old, fresh): (Vec<_>, Vec<_>) = fresh.into_iter().partition(|t| self.behind_head(t));
        // Older than the tape's head (the tape started later): not the tape's any more.
        self.stats.discarded += old.len() as u64;
        tracing::debug!(
            event = "lines_promote",
            line,
            old = old.len(),
            fresh = fresh.len(),
            current
        );
        if let (Some(from_ms), Some(first)) = (self.last_ts_ms, fresh.first()) {
            out.items.push(Merged::Gap(MergedGap {
                from_ms,
                to_ms: first.ts_ms,
            }));
        }
        // In sync when something of its current segment (no hole announced after it) was taken.
        self.lines[line].in_sync = current && !fresh.is_empty();
        for t in fresh {
            self.emit(line, t, out);
        }
    }

    /// Held trades of `line` the merged tape moved past without them: lost, so reported as a
    /// hole unless they predate the tape's first trade (a line that started earlier).
    fn discard(&mut self, line: usize, dropped: Vec<TradeEvent>, out: &mut TradeOutput) {
        self.stats.discarded += dropped.len() as u64;
        let start = self.first_key;
        let lost: Vec<&TradeEvent> = dropped
            .iter()
            .filter(|t| start.is_none_or(|k| (t.ts_ms, t.seq) >= k))
            .collect();
        if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
            tracing::debug!(event = "lines_held_discarded", line, n = lost.len());
            out.items.push(Merged::Gap(MergedGap {
                from_ms: first.ts_ms,
                to_ms: last.ts_ms,
            }));
        }
    }

    /// Whether `t` lies before the newest trade emitted (fill time, then sequence when both have
    /// one).
    fn behind_head(&self, t: &TradeEvent) -> bool {
        match self.last_key {
            None => false,
            Some((ts, seq)) => {
                t.ts_ms < ts
                    || (t.ts_ms == ts && matches!((t.seq, seq), (Some(a), Some(b)) if a < b))
            }
        }
    }

    /// Emits `t` (unseen) and lets holding lines that hold it join the tape.
    fn emit(&mut self, line: usize, t: TradeEvent, out: &mut TradeOutput) {
        if self.behind_head(&t) {
            // Older than the tape's head and forgotten by the bounded id set: a late repeat.
            tracing::debug!(event = "lines_trade_late", line, id = %t.id, ts_ms = t.ts_ms, head = ?self.last_key);
            self.stats.duplicates += 1;
            return;
        }
        self.remember(&t);
        let id = t.id.clone();
        out.items.push(Merged::Trade(line, t));
        self.stats.emitted += 1;
        for other in 0..self.lines.len() {
            let o = &mut self.lines[other];
            if other == line || o.in_sync || !o.held_ids.contains(&id) {
                continue;
            }
            // `other` holds the trade just emitted: the rest of that segment continues the tape.
            let mut seg = None;
            let mut dropped = Vec::new();
            while let Some((s, h)) = o.held.pop_front() {
                o.held_ids.remove(&h.id);
                if h.id == id {
                    seg = Some(s);
                    break;
                }
                dropped.push(h);
            }
            let mut after = Vec::new();
            while o.held.front().is_some_and(|h| Some(h.0) == seg) {
                if let Some((_, h)) = o.held.pop_front() {
                    o.held_ids.remove(&h.id);
                    after.push(h);
                }
            }
            // Later segments follow a hole of this line: it still has to prove them.
            o.in_sync = o.held.is_empty() && seg == Some(o.segment);
            if o.held.is_empty() {
                o.held_since_ms = None;
            }
            self.discard(other, dropped, out);
            for h in after {
                if !self.seen.contains(&h.id) {
                    self.emit(other, h, out);
                }
            }
        }
    }

    fn remember(&mut self, t: &TradeEvent) {
        if self.order.len() >= SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(t.id.clone());
        self.order.push_back(t.id.clone());
        self.last_ts_ms = Some(self.last_ts_ms.map_or(t.ts_ms, |l| l.max(t.ts_ms)));
        let key = (t.ts_ms, t.seq);
        self.first_key.get_or_insert(key);
        self.last_key = Some(self.last_key.map_or(key, |k| k.max(key)));
    }
}
