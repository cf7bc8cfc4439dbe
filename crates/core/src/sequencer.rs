//! Book sequencing: the one place that turns an update applied to an exact book into the events
//! that follow from it and the action to take. Both the normalizer (`decode`) and the live feed go
//! through [`sequence`], so they cannot disagree on Bybit's book rules.
//!
//! | outcome | events, in order | action |
//! |---|---|---|
//! | snapshot, contiguous delta, level-1 repeat | `book` | none |
//! | `u == 1` snapshot over an advanced book | `book_reset`, then `book` | [`Resync::Restart`] (the snapshot already is the fresh book) |
//! | delta skipping ids | `book_gap` | [`Resync::Gap`]: fetch a fresh snapshot |
//! | update leaving best bid >= best ask | `book_crossed` (never a `book`) | [`Resync::Crossed`]: fetch a fresh snapshot |
//! | delta with `u <= last_u` | `book_stale` | none (dropped) |
//! | delta while no trustworthy book exists | `book_awaiting_snapshot` | none (a snapshot is on its way) |
//!
//! A crossed book is not data: a matching engine never rests a bid at or above an ask, so a crossed
//! book means ours no longer matches Bybit's. Like a delta across a gap, it is reported and not
//! published; the book awaits a fresh snapshot.
//!
//! # Example
//! ```
//! use hft_core::book::OrderBook;
//! use hft_core::normalized::Event;
//! use hft_core::protocol::ws::{decode, Frame};
//! use hft_core::sequencer::{sequence, Resync};
//!
//! let frame = |kind: &str, u: u64, bid: &str| format!(
//!     r#"{{"topic":"orderbook.50.BTCUSDT","type":"{kind}","ts":{u},"data":{{"s":"BTCUSDT","b":[["{bid}","1"]],"a":[["101","1"]],"u":{u},"seq":{u}}}}}"#);
//! let mut book = OrderBook::new("BTCUSDT", 50);
//! let (first, second) = (frame("snapshot", 7, "100"), frame("delta", 8, "102"));
//! let Ok(Frame::Book(snapshot)) = decode(&first) else { panic!() };
//! let step = sequence(&mut book, &snapshot);
//! assert!(step.resync().is_none());
//! let Ok(Frame::Book(crossing)) = decode(&second) else { panic!() };
//! let step = sequence(&mut book, &crossing);
//! assert_eq!(step.resync(), Some(Resync::Crossed));
//! let events: Vec<Event> = step.events(&crossing, &book, None, None, None).collect();
//! assert!(matches!(events.as_slice(), [Event::BookCrossed(_)]));
//! ```

use crate::book::{OrderBook, Outcome};
use crate::normalized::{
    BookCrossedEvent, BookDroppedEvent, BookEvent, BookGapEvent, BookResetEvent, Event,
};
use crate::protocol::ws::BookUpdate;

/// Why a book must be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// A delta skipped update ids: the book awaits a fresh snapshot.
    Gap,
    /// Bybit sent a `u == 1` snapshot (its service restarted); the snapshot replaced the book.
    Restart,
    /// Best bid reached best ask: the book awaits a fresh snapshot.
    Crossed,
}

impl Resync {
    /// Whether a fresh snapshot must be requested (resubscribe); a restart snapshot already is one.
    pub fn needs_snapshot(self) -> bool {
        !matches!(self, Resync::Restart)
    }
}

/// What applying one update did, with what the book's `u` was before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The book's verdict.
    pub outcome: Outcome,
    /// The book's `u` before the update.
    pub prior_u: Option<u64>,
}

/// Applies `update` to `book` by Bybit's rules.
pub fn sequence(book: &mut OrderBook, update: &BookUpdate<'_>) -> Step {
    let prior_u = book.last_u();
    let outcome = book.apply(update);
    Step { outcome, prior_u }
}

impl Step {
    /// Whether the update is publishable data (a `book` event): applied and not crossed.
    pub fn publishes(&self) -> bool {
        self.outcome.applied() && !matches!(self.outcome, Outcome::Crossed { .. })
    }

    /// The resynchronisation this update calls for, if any.
    pub fn resync(&self) -> Option<Resync> {
        match self.outcome {
            Outcome::Gap { .. } => Some(Resync::Gap),
            Outcome::Crossed { .. } => Some(Resync::Crossed),
            Outcome::Reset { .. } => Some(Resync::Restart),
            _ => None,
        }
    }

    /// The normalized events of this step, in order (see the module table). `book` is the book the
    /// update was applied to; `category`, `recv_ns` and `top` shape the `book` event.
    pub fn events(
        &self,
        update: &BookUpdate<'_>,
        book: &OrderBook,
        category: Option<String>,
        recv_ns: Option<u64>,
        top: Option<usize>,
    ) -> StepEvents {
        let symbol = || update.symbol.to_string();
        let depth = update.depth;
        let before = match self.outcome {
            Outcome::Reset { previous_u } => Some(Event::BookReset(BookResetEvent {
                symbol: symbol(),
                depth,
                previous_u,
                u: update.u,
            })),
            _ => None,
        };
        let data = self
            .publishes()
            .then(|| Event::Book(BookEvent::applied(update, book, category, recv_ns, top)));
        let after = match self.outcome {
            Outcome::Gap { expected_u, got_u } => Some(Event::BookGap(BookGapEvent {
                symbol: symbol(),
                depth,
                expected_u,
                got_u,
            })),
            Outcome::Crossed { best_bid, best_ask } => Some(Event::BookCrossed(BookCrossedEvent {
                symbol: symbol(),
                depth,
                u: update.u,
                best_bid,
                best_ask,
            })),
            Outcome::Stale { last_u, got_u } => Some(Event::BookStale(BookDroppedEvent {
                symbol: symbol(),
                depth,
                last_u: Some(last_u),
                got_u,
            })),
            Outcome::AwaitingSnapshot { got_u } => {
                Some(Event::BookAwaitingSnapshot(BookDroppedEvent {
                    symbol: symbol(),
                    depth,
                    last_u: self.prior_u,
                    got_u,
                }))
            }
            Outcome::Snapshot | Outcome::Reset { .. } | Outcome::Repeat | Outcome::Delta => None,
        };
        [before, data, after].into_iter().flatten()
    }
}

/// The events of one [`Step`], in order (owned: they borrow neither the update nor the book).
pub type StepEvents = std::iter::Flatten<std::array::IntoIter<Option<Event>, 3>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ws::{decode, Frame};

    fn frame(kind: &str, u: u64, bids: &str, asks: &str) -> String {
        format!(
            r#"{{"topic":"orderbook.50.ETHUSDT","type":"{kind}","ts":{u},"data":{{"s":"ETHUSDT","b":{bids},"a":{asks},"u":{u},"seq":{u}}}}}"#
        )
    }

    /// Sequences `text` into `book`, returning the event type tags and the resync.
    fn run(book: &mut OrderBook, text: &str) -> (Vec<String>, Option<Resync>) {
        let Ok(Frame::Book(update)) = decode(text) else {
            panic!("not a book frame: {text}")
        };
        let step = sequence(book, &update);
        let tags = step
            .events(&update, book, None, None, None)
            .map(|e| {
                let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
                json["type"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        (tags, step.resync())
    }

    #[test]
    fn every_outcome_maps_to_its_events_and_action() {
        let mut book = OrderBook::new("ETHUSDT", 50);
        let one = r#"[["100","1"]]"#;
        let ask = r#"[["101","1"]]"#;
        let cases: Vec<(String, &[&str], Option<Resync>)> = vec![
            (
                frame("delta", 3, "[]", "[]"),
                &["book_awaiting_snapshot"],
                None,
            ),
            (frame("snapshot", 10, one, ask), &["book"], None),
            (frame("delta", 11, "[]", "[]"), &["book"], None),
            (frame("delta", 11, "[]", "[]"), &["book_stale"], None),
            (
                frame("delta", 13, "[]", "[]"),
                &["book_gap"],
                Some(Resync::Gap),
            ),
            (
                frame("delta", 14, "[]", "[]"),
                &["book_awaiting_snapshot"],
                None,
            ),
            (frame("snapshot", 20, one, ask), &["book"], None),
            (
                frame("snapshot", 1, one, ask),
                &["book_reset", "book"],
                Some(Resync::Restart),
            ),
            (
                frame("delta", 2, r#"[["101","1"]]"#, "[]"),
                &["book_crossed"],
                Some(Resync::Crossed),
            ),
            (
                frame("delta", 3, "[]", "[]"),
                &["book_awaiting_snapshot"],
                None,
            ),
        ];
        for (i, (text, tags, resync)) in cases.into_iter().enumerate() {
            let (got, got_resync) = run(&mut book, &text);
            assert_eq!(got, tags.to_vec(), "case {i}: {text}");
            assert_eq!(got_resync, resync, "case {i}");
        }
    }

    #[test]
    fn a_level_one_repeat_is_data_not_a_resync() {
        let mut book = OrderBook::new("ETHUSDT", 1);
        let text = |u| {
            format!(
                r#"{{"topic":"orderbook.1.ETHUSDT","type":"snapshot","ts":1,"data":{{"s":"ETHUSDT","b":[["100","1"]],"a":[["101","1"]],"u":{u},"seq":1}}}}"#
            )
        };
        assert_eq!(run(&mut book, &text(5)), (vec!["book".to_string()], None));
        let repeat = text(5);
        let Ok(Frame::Book(update)) = decode(&repeat) else {
            panic!("book frame")
        };
        let step = sequence(&mut book, &update);
        assert_eq!(step.outcome, Outcome::Repeat);
        assert!(step.publishes());
        assert_eq!(step.resync(), None);
    }

    #[test]
    fn only_gap_and_crossed_need_a_fresh_snapshot() {
        assert!(Resync::Gap.needs_snapshot());
        assert!(Resync::Crossed.needs_snapshot());
        assert!(!Resync::Restart.needs_snapshot());
    }
}
