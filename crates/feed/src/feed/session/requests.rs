//! Operator requests the session carries out on a live connection: resynchronise every book
//! (announce a `Resync` with reason `requested`, forget the book, unsubscribe and resubscribe its
//! topic for a fresh snapshot), the same steps a gap takes, without closing the connection.

use super::{Action, Books, Session};
use crate::book::OrderBook;
use crate::feed::event::{FeedEvent, ResyncReason};
use crate::protocol::request::Op;
use crate::protocol::topic::Topic;

impl Session {
    /// Resubscribes every book topic for a fresh snapshot; `false` (nothing done) when the
    /// connection is not live or the feed has no books.
    pub fn resync_books(&mut self, books: &Books) -> bool {
        if self.conn.closed || self.conn.live_ms.is_none() || self.cfg.depth == 0 {
            return false;
        }
        let depth = self.cfg.depth;
        for symbol in self.cfg.symbols.clone() {
            tracing::warn!(event = "bybit_connector_book_resync", symbol = %symbol, depth, reason = ?ResyncReason::Requested);
            books
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(symbol.clone())
                .or_insert_with(|| OrderBook::new(&symbol, depth))
                .invalidate();
            self.actions.push_back(Action::Emit(FeedEvent::Resync {
                symbol: symbol.clone(),
                depth,
                reason: ResyncReason::Requested,
            }));
            let topic = Topic::OrderBook { depth, symbol }.to_string();
            if self.conn.resyncing.insert(topic.clone()) {
                self.send(Op::Unsubscribe, vec![topic.clone()]);
                self.send(Op::Subscribe, vec![topic]);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, book, config, drain, emitted, live, sent};
    use super::*;

    #[test]
    fn a_requested_resync_resubscribes_every_book_once_and_only_while_live() {
        let books = Books::default();
        let mut s = Session::new(config(&["BTCUSDT", "ETHUSDT"], true));
        assert!(!s.resync_books(&books), "no connection yet");
        live(&mut s, &books, 1, 0);
        s.on_text(&book("BTCUSDT", "snapshot", 10, "100"), at(10), &books);
        drain(&mut s);
        assert!(s.resync_books(&books));
        let actions = drain(&mut s);
        let resyncs: Vec<_> = emitted(&actions)
            .into_iter()
            .filter_map(|e| match e {
                FeedEvent::Resync {
                    symbol,
                    depth,
                    reason,
                } => Some((symbol, depth, reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            resyncs,
            vec![
                ("BTCUSDT".to_string(), 50, ResyncReason::Requested),
                ("ETHUSDT".to_string(), 50, ResyncReason::Requested),
            ]
        );
        let ops: Vec<(String, String)> = sent(&actions)
            .iter()
            .map(|v| {
                (
                    v["op"].as_str().unwrap_or("").to_string(),
                    v["args"][0].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                ("unsubscribe".into(), "orderbook.50.BTCUSDT".into()),
                ("subscribe".into(), "orderbook.50.BTCUSDT".into()),
                ("unsubscribe".into(), "orderbook.50.ETHUSDT".into()),
                ("subscribe".into(), "orderbook.50.ETHUSDT".into()),
            ]
        );
        // The old book is forgotten until its fresh snapshot: deltas are not applied to it.
        assert!(!books.read().unwrap()["BTCUSDT"].is_synced());
        // A second request while the first is outstanding does not resubscribe again.
        assert!(s.resync_books(&books));
        assert!(sent(&drain(&mut s)).is_empty());
    }
}
