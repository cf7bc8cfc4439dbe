//! Book frames in a session: each update goes through [`hft_core::sequencer`] (the same step
//! `decode` uses), its normalized events become feed events, and a gap or crossing resubscribes the
//! topic for a fresh snapshot.

use hft_core::normalized::Event;
use hft_core::sequencer::{sequence, Resync};

use super::{Action, Books, Now, Session};
use crate::book::OrderBook;
use crate::feed::event::{FeedEvent, ResyncReason};
use crate::protocol::request::Op;
use crate::protocol::topic::Topic;
use crate::protocol::ws::BookUpdate;

impl From<Resync> for ResyncReason {
    fn from(r: Resync) -> Self {
        match r {
            Resync::Gap => ResyncReason::Gap,
            Resync::Restart => ResyncReason::Restart,
            Resync::Crossed => ResyncReason::Crossed,
        }
    }
}

impl Session {
    pub(super) fn on_book(&mut self, b: &BookUpdate<'_>, now: Now, books: &Books) {
        self.actions
            .push_back(Action::MarketEvent(b.symbol.to_string()));
        let (events, mut resync, ts_before) = {
            let mut books = books.write().unwrap_or_else(|p| p.into_inner());
            let book = books
                .entry(b.symbol.to_string())
                .or_insert_with(|| OrderBook::new(b.symbol, b.depth));
            let ts_before = book.ts_ms();
            let step = sequence(book, b);
            let category = Some(self.cfg.category.to_string());
            let events = step.events(b, book, category, Some(now.unix_ns), None);
            (events, step.resync(), ts_before)
        };
        for event in events {
            match event {
                Event::Book(ev) => self.emit(FeedEvent::Book(Box::new(ev))),
                Event::BookGap(g) => {
                    tracing::warn!(
                        event = "bybit_connector_book_gap",
                        symbol = b.symbol,
                        depth = b.depth,
                        expected_u = g.expected_u,
                        got_u = g.got_u
                    );
                    self.resync(b, resync.take());
                    // The lost frames carried trades too.
                    if ts_before > 0 {
                        self.refill_after_gap(b.symbol, ts_before, now);
                    }
                }
                Event::BookCrossed(c) => {
                    tracing::warn!(event = "bybit_connector_book_crossed", symbol = b.symbol, depth = b.depth, u = c.u, best_bid = %c.best_bid, best_ask = %c.best_ask);
                    self.resync(b, resync.take());
                }
                Event::BookReset(r) => {
                    tracing::warn!(
                        event = "bybit_connector_book_restart",
                        symbol = b.symbol,
                        depth = b.depth,
                        previous_u = r.previous_u
                    );
                    // Announced before the snapshot's data, like the normalizer's `book_reset`.
                    self.resync(b, resync.take());
                }
                Event::BookStale(s) => {
                    tracing::debug!(
                        event = "bybit_connector_book_stale_update",
                        symbol = b.symbol,
                        last_u = s.last_u.unwrap_or_default(),
                        got_u = s.got_u
                    );
                }
                _ => {}
            }
        }
    }

    /// Announces a resync and, unless the update already was a fresh snapshot, resubscribes.
    fn resync(&mut self, b: &BookUpdate<'_>, r: Option<Resync>) {
        let Some(r) = r else { return };
        let reason = ResyncReason::from(r);
        tracing::warn!(event = "bybit_connector_book_resync", symbol = b.symbol, depth = b.depth, reason = ?reason);
        self.emit(FeedEvent::Resync {
            symbol: b.symbol.to_string(),
            depth: b.depth,
            reason,
        });
        if r.needs_snapshot() {
            let topic = Topic::OrderBook {
                depth: b.depth,
                symbol: b.symbol.to_string(),
            }
            .to_string();
            if self.conn.resyncing.insert(topic.clone()) {
                self.send(Op::Unsubscribe, vec![topic.clone()]);
                self.send(Op::Subscribe, vec![topic]);
            }
        }
    }
}
