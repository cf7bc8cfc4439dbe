//! Turns decoded frames into normalized events, keeping one exact book per book topic.
//! Pure and synchronous: used by `decode`, and by anything that replays captures.

use std::collections::HashMap;

use crate::book::{OrderBook, Outcome};
use crate::normalized::{
    AckEvent, BookCrossedEvent, BookDroppedEvent, BookEvent, BookGapEvent, BookResetEvent, Event,
    KlineEvent, TradeEvent,
};
use crate::protocol::ws::{BookUpdate, Frame, Received};

/// Books by (symbol, depth), and the options that shape the output.
#[derive(Debug, Default)]
pub struct Normalizer {
    books: HashMap<(String, u16), OrderBook>,
    top: Option<usize>,
    category: Option<String>,
}

impl Normalizer {
    /// A normalizer; `top` adds the best N levels to every book event.
    pub fn new(top: Option<usize>) -> Self {
        Normalizer {
            top,
            ..Default::default()
        }
    }

    /// Tags every trade and book event with this category.
    pub fn with_category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    /// The book for `symbol` at `depth`, if one has been seen.
    pub fn book(&self, symbol: &str, depth: u16) -> Option<&OrderBook> {
        self.books.get(&(symbol.to_string(), depth))
    }

    /// Appends the events one frame produces to `out`.
    pub fn push(&mut self, received: &Received<'_>, out: &mut Vec<Event>) {
        let recv_ns = received.recv_ns;
        match &received.frame {
            Frame::Trades(t) => out.extend(t.trades.iter().map(|tr| {
                let mut e = TradeEvent::from_ws(tr, recv_ns);
                e.category.clone_from(&self.category);
                Event::Trade(e)
            })),
            Frame::Book(b) => self.push_book(b, recv_ns, out),
            Frame::Kline(k) => out.extend(
                k.bars
                    .iter()
                    .map(|bar| Event::Kline(KlineEvent::from_ws(k.symbol, bar))),
            ),
            Frame::Ack(a) => out.push(Event::Ack(AckEvent::from(a))),
            Frame::Pong(p) => out.push(Event::Pong {
                req_id: p.req_id.clone(),
            }),
            Frame::Unknown(raw) => out.push(Event::Unknown {
                raw: raw.to_string(),
            }),
        }
    }

    fn push_book(&mut self, b: &BookUpdate<'_>, recv_ns: Option<u64>, out: &mut Vec<Event>) {
        let book = self
            .books
            .entry((b.symbol.to_string(), b.depth))
            .or_insert_with(|| OrderBook::new(b.symbol, b.depth));
        let prior_u = book.last_u();
        let outcome = book.apply(b);
        let symbol = || b.symbol.to_string();
        if let Outcome::Reset { previous_u } = outcome {
            out.push(Event::BookReset(BookResetEvent {
                symbol: symbol(),
                depth: b.depth,
                previous_u,
                u: b.u,
            }));
        }
        if outcome.applied() {
            out.push(Event::Book(BookEvent::applied(
                b,
                book,
                self.category.clone(),
                recv_ns,
                self.top,
            )));
        }
        match outcome {
            Outcome::Gap { expected_u, got_u } => out.push(Event::BookGap(BookGapEvent {
                symbol: symbol(),
                depth: b.depth,
                expected_u,
                got_u,
            })),
            Outcome::Crossed { best_bid, best_ask } => {
                out.push(Event::BookCrossed(BookCrossedEvent {
                    symbol: symbol(),
                    depth: b.depth,
                    u: b.u,
                    best_bid,
                    best_ask,
                }))
            }
            Outcome::Stale { last_u, got_u } => out.push(Event::BookStale(BookDroppedEvent {
                symbol: symbol(),
                depth: b.depth,
                last_u: Some(last_u),
                got_u,
            })),
            Outcome::AwaitingSnapshot { got_u } => {
                out.push(Event::BookAwaitingSnapshot(BookDroppedEvent {
                    symbol: symbol(),
                    depth: b.depth,
                    last_u: prior_u,
                    got_u,
                }))
            }
            Outcome::Snapshot | Outcome::Reset { .. } | Outcome::Repeat | Outcome::Delta => {}
        }
    }
}
