//! Session tests of the trade tape: buffering while a symbol is gap-filled, one fetch at a time,
//! holes reported, and trades lost on a live socket refilled when the book shows the gap.

use super::tests::*;
use super::*;

#[test]
fn trades_are_buffered_while_recovering_then_merged_in_order_without_duplicates() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC], true));
    live(&mut s, &books, 1, 0);
    s.on_text(&trade(BTC, "a", 100), at(10), &books);
    s.on_text(&trade(BTC, "b", 110), at(11), &books);
    assert_eq!(trades_of(&drain(&mut s)).len(), 2);
    // Reconnect: trades arrive before the acks and while REST is asked; none is emitted yet.
    s.connected(at(1_000), 2, &books);
    let id = sent(&drain(&mut s))[0]["req_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    s.on_text(&trade(BTC, "e", 140), at(1_001), &books);
    s.on_text(&ack(&id, true, ""), at(1_002), &books);
    let actions = drain(&mut s);
    assert!(trades_of(&actions).is_empty());
    assert!(actions.contains(&Action::FetchRecentTrades {
        symbol: BTC.into(),
        limit: 1000
    }));
    s.on_text(&trade(BTC, "f", 150), at(1_003), &books);
    assert!(
        trades_of(&drain(&mut s)).is_empty(),
        "held back while recovering"
    );
    let page = vec![
        rest("e", 140),
        rest("d", 130),
        rest("c", 120),
        rest("b", 110),
        rest("a", 100),
    ];
    s.on_recent_trades(BTC, Ok(page), at(1_004));
    let actions = drain(&mut s);
    let expect = |id: &str, rec: bool| (id.to_string(), rec);
    assert_eq!(
        trades_of(&actions),
        vec![
            expect("c", true),
            expect("d", true),
            expect("e", false),
            expect("f", false)
        ]
    );
    assert!(emitted(&actions).contains(&FeedEvent::TradesRecovered {
        symbol: BTC.into(),
        count: 2,
        from_ms: 120,
        to_ms: 130
    }));
    // Live again: a duplicate is dropped, a new trade flows.
    s.on_text(&trade(BTC, "f", 150), at(1_005), &books);
    s.on_text(&trade(BTC, "g", 160), at(1_006), &books);
    assert_eq!(trades_of(&drain(&mut s)), vec![expect("g", false)]);
}

#[test]
fn symbols_are_gap_filled_concurrently_and_a_failed_fetch_is_a_hole() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC, ETH], true));
    s.resume(HashMap::from([
        (BTC.to_string(), 500),
        (ETH.to_string(), 600),
    ]));
    let actions = live(&mut s, &books, 1, 0);
    let fetches: Vec<&Action> = actions
        .iter()
        .filter(|a| matches!(a, Action::FetchRecentTrades { .. }))
        .collect();
    assert_eq!(
        fetches,
        [
            &Action::FetchRecentTrades {
                symbol: BTC.into(),
                limit: 1000
            },
            &Action::FetchRecentTrades {
                symbol: ETH.into(),
                limit: 1000
            }
        ],
        "a resumed tape is gap-filled even on the first connection, every symbol at once"
    );
    s.on_recent_trades("SOLUSDT", Ok(vec![]), at(6));
    assert!(
        drain(&mut s).is_empty(),
        "a result nobody asked for is ignored"
    );
    // ETH's answer comes first: it is merged at once, whatever BTC is doing.
    s.on_text(&trade(ETH, "x", 700), at(7), &books);
    s.on_text(&trade(BTC, "b", 710), at(7), &books);
    assert!(
        trades_of(&drain(&mut s)).is_empty(),
        "live trades wait for their own symbol's gap-fill"
    );
    s.on_recent_trades(ETH, Ok(vec![]), at(8));
    assert_eq!(trades_of(&drain(&mut s)), vec![("x".to_string(), false)]);
    s.on_text(&trade(ETH, "y", 720), at(9), &books);
    assert_eq!(trades_of(&drain(&mut s)), vec![("y".to_string(), false)]);
    s.on_text(&trade(BTC, "c", 730), at(9), &books);
    assert!(
        trades_of(&drain(&mut s)).is_empty(),
        "still recovering BTCUSDT"
    );
    s.on_recent_trades(BTC, Err("HTTP 503".into()), at(10));
    let actions = drain(&mut s);
    assert_eq!(actions[0], Action::CountError);
    let hole = FeedEvent::TradeGap {
        symbol: BTC.into(),
        from_ms: 500,
        to_ms: at(10).unix_ns / 1_000_000,
    };
    assert_eq!(emitted(&actions)[0], hole);
    assert_eq!(
        trades_of(&actions),
        vec![("b".to_string(), false), ("c".to_string(), false)],
        "the buffered live trades follow the reported hole"
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::FetchRecentTrades { .. })),
        "nothing is left to fetch"
    );
}

#[test]
fn trades_lost_on_a_live_socket_are_refilled_when_the_book_shows_the_gap() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC, ETH], true));
    live(&mut s, &books, 1, 0);
    s.on_text(&book(BTC, "snapshot", 100, "99"), at(10), &books);
    s.on_text(&trade(BTC, "a", 100), at(11), &books);
    s.on_text(&book(BTC, "delta", 101, "99"), at(12), &books);
    let expect = |id: &str, rec: bool| (id.to_string(), rec);
    assert_eq!(trades_of(&drain(&mut s)), vec![expect("a", false)]);
    // The frames of u 102..104 and trades b, c are lost on a socket that stays up; trade d
    // arrives before the next book update shows the gap.
    s.on_text(&trade(BTC, "d", 105), at(20), &books);
    assert_eq!(trades_of(&drain(&mut s)), vec![expect("d", false)]);
    s.on_text(&book(BTC, "delta", 105, "99"), at(21), &books);
    let actions = drain(&mut s);
    assert!(
        actions.contains(&Action::FetchRecentTrades {
            symbol: BTC.into(),
            limit: 1000
        }),
        "{actions:?}"
    );
    // BTCUSDT's trades wait for the refill; ETHUSDT's flow.
    s.on_text(&trade(BTC, "e", 106), at(22), &books);
    s.on_text(&trade(ETH, "x", 106), at(22), &books);
    assert_eq!(trades_of(&drain(&mut s)), vec![expect("x", false)]);
    let page = vec![
        rest("e", 106),
        rest("d", 105),
        rest("c", 103),
        rest("b", 102),
        rest("a", 100),
    ];
    s.on_recent_trades(BTC, Ok(page), at(23));
    assert_eq!(
        trades_of(&drain(&mut s)),
        vec![expect("b", true), expect("c", true), expect("e", false)],
        "the hole from the book's last time before it, nothing twice"
    );
    s.on_text(&trade(BTC, "f", 107), at(24), &books);
    assert_eq!(trades_of(&drain(&mut s)), vec![expect("f", false)]);
    // A second gap while the first refill is pending asks once.
    s.on_text(&book(BTC, "delta", 110, "99"), at(30), &books);
    s.on_text(&book(BTC, "snapshot", 111, "99"), at(31), &books);
    s.on_text(&book(BTC, "delta", 113, "99"), at(32), &books);
    let fetches = drain(&mut s)
        .into_iter()
        .filter(|a| matches!(a, Action::FetchRecentTrades { .. }))
        .count();
    assert_eq!(fetches, 1);
}

#[test]
fn a_gap_while_the_refill_is_in_flight_is_refilled_again_after_it() {
    let books = Books::default();
    let mut s = Session::new(config(&[BTC], true));
    live(&mut s, &books, 1, 0);
    s.on_text(&book(BTC, "snapshot", 100, "99"), at(10), &books);
    s.on_text(&book(BTC, "delta", 101, "99"), at(11), &books);
    s.on_text(&book(BTC, "delta", 105, "99"), at(12), &books);
    let fetches = |actions: Vec<Action>| {
        actions
            .into_iter()
            .filter(|a| matches!(a, Action::FetchRecentTrades { .. }))
            .count()
    };
    assert_eq!(fetches(drain(&mut s)), 1, "the first gap asks");
    // The socket is read while the fetch is in flight: the resync snapshot, then frames lost
    // again. The answer in flight may predate that loss.
    s.on_text(&book(BTC, "snapshot", 106, "99"), at(13), &books);
    s.on_text(&book(BTC, "delta", 107, "99"), at(14), &books);
    s.on_text(&book(BTC, "delta", 109, "99"), at(15), &books);
    assert_eq!(fetches(drain(&mut s)), 0, "one fetch per symbol at a time");
    s.on_recent_trades(BTC, Ok(vec![]), at(16));
    assert_eq!(
        fetches(drain(&mut s)),
        1,
        "asked again once the first is merged"
    );
    s.on_recent_trades(BTC, Ok(vec![]), at(17));
    assert_eq!(fetches(drain(&mut s)), 0, "then it is done");
}
