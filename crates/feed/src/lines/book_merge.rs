//! One book topic's updates from several lines merged: each `u` once, from whichever line delivers
//! it first; a snapshot on one line never rewinds the book another line moved past; an exchange
//! restart (`u` starting again from 1) starts a new *epoch* of ids. Pure.

use crate::feed::ResyncReason;
use crate::normalized::BookEvent;
use crate::protocol::ws::BookKind;

/// What the merge decided for one line event.
#[derive(Debug, Clone, PartialEq)]
pub enum BookStep {
    /// Emit the update (after announcing a restart when `restart`).
    Emit {
        /// A new epoch began with this snapshot: announce `Resync { reason: Restart }` first.
        restart: bool,
    },
    /// Already applied (or older than the merged book): drop.
    Drop,
    /// Announce this resync for the merged book: no line can continue it any more.
    Resync(ResyncReason),
}

#[derive(Debug, Default, Clone)]
struct LineBook {
    /// The epoch of this line's ids (`None`: not known yet).
    epoch: Option<u64>,
    last_u: Option<u64>,
    synced: bool,
    restart_pending: bool,
}

/// Counters of one topic's merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookStats {
    /// Updates emitted.
    pub emitted: u64,
    /// Updates dropped as already emitted or older.
    pub duplicates: u64,
}

/// One book topic's merged sequence.
#[derive(Debug)]
pub struct BookMerge {
    lines: Vec<LineBook>,
    epoch: u64,
    epoch_start_ts: u64,
    last_u: Option<u64>,
    last_ts: u64,
    leader: Option<usize>,
    /// A resync was announced and no update emitted since.
    announced: bool,
    /// Counters.
    pub stats: BookStats,
}

impl BookMerge {
    /// A merge of `lines` lines.
    pub fn new(lines: usize) -> Self {
        BookMerge {
            lines: vec![LineBook::default(); lines],
            epoch: 0,
            epoch_start_ts: 0,
            last_u: None,
            last_ts: 0,
            leader: None,
            announced: false,
            stats: BookStats::default(),
        }
    }

    /// The `u` of the newest update emitted (in the current epoch).
    pub fn last_u(&self) -> Option<u64> {
        self.last_u
    }

    /// How many updates `line` is behind the merged book (`None`: not comparable: not synced or
    /// in another epoch).
    pub fn behind(&self, line: usize) -> Option<u64> {
        let l = self.lines.get(line)?;
        if !l.synced || l.epoch != Some(self.epoch) {
            return None;
        }
        Some(self.last_u?.saturating_sub(l.last_u?))
    }

    /// The line whose book is the most advanced: synced, in the current epoch, highest `u`
    /// (ties: the line that delivered the merged book's last update).
    pub fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, bool, usize)> = None;
        for (i, l) in self.lines.iter().enumerate() {
            if !l.synced || l.epoch != Some(self.epoch) {
                continue;
            }
            let Some(u) = l.last_u else { continue };
            let key = (u, self.leader == Some(i), i);
            if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                best = Some(key);
            }
        }
        best.map(|b| b.2)
    }

    /// `line` was restarted or its connection replaced: nothing is known about its ids.
    pub fn line_reset(&mut self, line: usize) {
        if let Some(l) = self.lines.get_mut(line) {
            *l = LineBook::default();
        }
    }

    /// `line` resynchronised this topic.
    pub fn on_resync(&mut self, line: usize, reason: ResyncReason) -> BookStep {
        let Some(l) = self.lines.get_mut(line) else {
            return BookStep::Drop;
        };
        l.synced = false;
        if reason == ResyncReason::Restart {
            // Announced with the restart snapshot that follows.
            l.restart_pending = true;
            return BookStep::Drop;
        }
        // Another synced line in this epoch delivers every id in turn: it carries the book on
        // (unless the exchange itself skipped ids: it then reports the same gap).
        let others_carry = self
            .lines
            .iter()
            .enumerate()
            .any(|(i, o)| i != line && o.synced && o.epoch == Some(self.epoch));
        if others_carry || self.announced {
            return BookStep::Drop;
        }
        self.announced = true;
        BookStep::Resync(reason)
    }

    /// An applied update from `line`.
    pub fn on_book(&mut self, line: usize, ev: &BookEvent) -> BookStep {
        let Some(l) = self.lines.get_mut(line) else {
            return BookStep::Drop;
        };
        let mut restart = false;
        if ev.kind == BookKind::Snapshot {
            l.synced = true;
            let at_head = l.epoch.is_none_or(|e| e == self.epoch);
            let newer = ev.ts_ms > self.last_ts;
            let rewinds = self.last_u.is_some_and(|last| ev.u < last);
            if l.restart_pending && at_head && self.last_u.is_some() && (rewinds || newer) {
                restart = true;
            } else if l.epoch == Some(self.epoch) && rewinds && newer {
                // Ids went back although time moved on: a restart this line did not see as one.
                restart = true;
            } else if l.epoch != Some(self.epoch) {
                // A line joining (or rejoining after a restart others announced): a snapshot taken
                // since the current epoch began belongs to it.
                l.epoch = Some(if ev.ts_ms >= self.epoch_start_ts {
                    self.epoch
                } else {
                    self.epoch.saturating_sub(1)
                });
            }
            l.restart_pending = false;
            if restart {
                self.epoch += 1;
                self.epoch_start_ts = ev.ts_ms;
                self.last_u = None;
                l.epoch = Some(self.epoch);
            }
        } else if l.epoch.is_none() {
            // A delta before any snapshot on this line cannot be placed.
            self.stats.duplicates += 1;
            return BookStep::Drop;
        }
        l.last_u = Some(ev.u);
        if l.epoch != Some(self.epoch) || !l.synced {
            self.stats.duplicates += 1;
            return BookStep::Drop;
        }
        if self.last_u.is_some_and(|last| ev.u <= last) {
            self.stats.duplicates += 1;
            return BookStep::Drop;
        }
        self.last_u = Some(ev.u);
        self.last_ts = self.last_ts.max(ev.ts_ms);
        self.leader = Some(line);
        self.announced = false;
        self.stats.emitted += 1;
        BookStep::Emit { restart }
    }
}
