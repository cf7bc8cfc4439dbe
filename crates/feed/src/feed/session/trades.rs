//! Trades in a session: live trades de-duplicated by id; while a connection recovers they are
//! buffered, the outage is gap-filled from REST one symbol at a time, and both merge into one
//! ordered tape without duplicates, with any hole REST cannot fill reported.

use super::{Action, Now, Session};
use crate::feed::event::FeedEvent;
use crate::feed::recovery::tracker_for;
use crate::normalized::TradeEvent;
use crate::protocol::rest::RestTrade;
use crate::protocol::ws::Trades;

impl Session {
    pub(super) fn on_trades(&mut self, t: Trades<'_>, now: Now) {
        self.actions
            .push_back(Action::MarketEvent(t.symbol.to_string()));
        let category = self.cfg.category.to_string();
        for tr in &t.trades {
            let mut ev = TradeEvent::from_ws(tr, Some(now.unix_ns));
            ev.category = Some(category.clone());
            // Held back until the connection is live and this symbol's gap-fill is done.
            if self.conn.live_ms.is_none() || self.conn.to_recover.contains(&ev.symbol) {
                self.conn
                    .buffered
                    .entry(ev.symbol.clone())
                    .or_default()
                    .push(ev);
                continue;
            }
            let tracker = tracker_for(&mut self.trackers, &ev.symbol);
            if tracker.observe(&ev.id, ev.ts_ms) {
                self.emit(FeedEvent::Trade(Box::new(ev)));
            } else {
                tracing::debug!(event = "bybit_connector_duplicate_trade", id = %ev.id);
            }
        }
    }

    /// Starts the gap-fill of every symbol still to recover that is not already being fetched:
    /// all of them at once (the shell runs the fetches concurrently while the socket is read);
    /// a symbol whose tape starts here is released at once. Live trades of a symbol flow again
    /// when its own fetch is merged.
    pub(super) fn recover_next(&mut self, now: Now) {
        let waiting: Vec<String> = self
            .conn
            .to_recover
            .iter()
            .filter(|s| !self.conn.fetching.contains_key(*s))
            .cloned()
            .collect();
        for symbol in waiting {
            let first_connection = self.conn.number <= 1 && !self.covered_ms.contains_key(&symbol);
            if !first_connection {
                let covered = self
                    .trackers
                    .get(&symbol)
                    .and_then(|t| t.last_ts_ms())
                    .or_else(|| self.covered_ms.get(&symbol).copied())
                    .unwrap_or_else(|| now.unix_ms());
                // A hole found while live may start before the newest trade seen (trades after
                // it can arrive before the book shows the gap): start the gap-fill there.
                let covered = match self.conn.hole_from_ms.remove(&symbol) {
                    Some(from) => covered.min(from),
                    None => covered,
                };
                let limit = self.cfg.category.max_recent_trades();
                self.conn.fetching.insert(symbol.clone(), covered);
                self.actions
                    .push_back(Action::FetchRecentTrades { symbol, limit });
                continue;
            }
            // Nothing was missed before the first connection: the tape starts here.
            self.conn.to_recover.retain(|s| *s != symbol);
            self.covered_ms.insert(symbol.clone(), now.unix_ms());
            let buffered = self.conn.buffered.remove(&symbol).unwrap_or_default();
            for t in buffered {
                let tracker = tracker_for(&mut self.trackers, &symbol);
                if tracker.observe(&t.id, t.ts_ms) {
                    self.emit(FeedEvent::Trade(Box::new(t)));
                }
            }
        }
    }

    /// Frames of `symbol` were lost on a socket that stayed up (its book showed a gap): trades
    /// have no sequence numbers, so the same hole in the tape is refilled from REST, starting at
    /// `book_ts_ms`, the book's exchange time before the lost frames. Live trades of `symbol` are
    /// held back meanwhile and merged after the refill, as after a reconnect.
    pub(super) fn refill_after_gap(&mut self, symbol: &str, book_ts_ms: u64, now: Now) {
        if !self.cfg.trades {
            return;
        }
        if self.conn.to_recover.iter().any(|s| s == symbol) {
            if self.conn.fetching.contains_key(symbol) {
                // The fetch in flight may have been answered before these frames were lost:
                // refill again from here once it is merged.
                let from = self
                    .conn
                    .hole_from_ms
                    .entry(symbol.to_string())
                    .or_insert(book_ts_ms);
                *from = (*from).min(book_ts_ms);
                self.conn.refill_again.insert(symbol.to_string());
            }
            return;
        }
        tracing::warn!(
            event = "bybit_connector_trade_refill_after_gap",
            symbol,
            from_ms = book_ts_ms
        );
        self.conn
            .hole_from_ms
            .insert(symbol.to_string(), book_ts_ms);
        self.conn.to_recover.push_back(symbol.to_string());
        self.recover_next(now);
    }

    /// The result of the [`Action::FetchRecentTrades`] for `symbol`: merges it with the live trades
    /// buffered meanwhile (`Err` with the reason when the fetch failed: the outage is reported as
    /// a hole), then continues with the next symbol. A result nobody asked for is ignored.
    pub fn on_recent_trades(
        &mut self,
        symbol: &str,
        result: Result<Vec<RestTrade>, String>,
        now: Now,
    ) {
        if self.conn.closed {
            return;
        }
        let Some(covered) = self.conn.fetching.remove(symbol) else {
            tracing::debug!(event = "bybit_connector_unexpected_recovery", symbol);
            return;
        };
        self.conn.to_recover.retain(|s| s != symbol);
        let buffered = self.conn.buffered.remove(symbol).unwrap_or_default();
        let limit = self.cfg.category.max_recent_trades();
        let category = self.cfg.category.to_string();
        let tracker = tracker_for(&mut self.trackers, symbol);
        let (rest_trades, failed) = match result {
            Ok(t) => (t, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut recovery = tracker.recover(symbol, covered, &rest_trades, limit, buffered);
        if let Some(e) = &failed {
            tracing::error!(event = "bybit_connector_trade_recovery_failed", symbol, error = %e);
            self.actions.push_back(Action::CountError);
            recovery.gap = Some((covered, now.unix_ms()));
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
            self.emit(FeedEvent::TradeGap {
                symbol: symbol.to_string(),
                from_ms,
                to_ms,
            });
        }
        for mut t in recovery.trades {
            t.category = Some(category.clone());
            self.emit(FeedEvent::Trade(Box::new(t)));
        }
        if recovery.recovered > 0 {
            tracing::info!(
                event = "bybit_connector_trades_recovered",
                symbol,
                count = recovery.recovered,
                from_ms = first,
                to_ms = last
            );
            self.emit(FeedEvent::TradesRecovered {
                symbol: symbol.to_string(),
                count: recovery.recovered,
                from_ms: first,
                to_ms: last,
            });
        }
        if self.conn.refill_again.remove(symbol) {
            self.conn.to_recover.push_back(symbol.to_string());
        }
        self.recover_next(now);
    }
}
