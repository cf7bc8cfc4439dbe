//! Turns decoded frames into normalized events, keeping one exact book per book topic.
//! Pure and synchronous: used by `decode`, and by anything that replays captures.

use std::collections::HashMap;

use crate::book::OrderBook;
use crate::normalized::{AckEvent, Event, KlineEvent, TradeEvent};
use crate::protocol::ws::{BookUpdate, Frame, Received};
use crate::sequencer::sequence;

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
        // The live feed goes through the same step: both report a book the same way.
        let step = sequence(book, b);
        out.extend(step.events(b, book, self.category.clone(), recv_ns, self.top));
    }
}
