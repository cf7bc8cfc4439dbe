//! Tests of the compact hot-event form: exact round trips and total decoding.

use super::*;
use proptest::prelude::*;

fn dec() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..=18).prop_map(|(m, s)| Decimal::new(m, s))
}

fn pairs() -> impl Strategy<Value = Vec<Pair>> {
    proptest::collection::vec((dec(), dec()), 0..6)
}

fn trade() -> impl Strategy<Value = TradeEvent> {
    (
        ("[A-Z0-9]{1,12}", "[a-z0-9-]{0,40}"),
        (dec(), dec(), any::<bool>(), any::<u64>()),
        (any::<Option<u64>>(), any::<bool>(), any::<bool>()),
        (proptest::option::of("[a-z]{1,8}"), any::<Option<u64>>()),
    )
        .prop_map(
            |(
                (symbol, id),
                (price, qty, buy, ts_ms),
                (seq, block, recovered),
                (category, recv_ns),
            )| {
                TradeEvent {
                    symbol,
                    id,
                    price,
                    qty,
                    side: if buy { Side::Buy } else { Side::Sell },
                    ts_ms,
                    seq,
                    block,
                    category,
                    recv_ns,
                    recovered,
                }
            },
        )
}

fn book() -> impl Strategy<Value = BookEvent> {
    (
        ("[A-Z0-9]{1,12}", any::<u16>(), any::<bool>(), any::<u64>()),
        (any::<Option<u64>>(), any::<u64>(), any::<Option<u64>>()),
        (
            pairs(),
            pairs(),
            proptest::option::of((dec(), dec())),
            proptest::option::of((dec(), dec())),
        ),
        (
            0usize..1000,
            0usize..1000,
            proptest::option::of("[a-z]{1,8}"),
            any::<Option<u64>>(),
        ),
        proptest::option::of((pairs(), pairs())),
    )
        .prop_map(
            |(
                (symbol, depth, snap, u),
                (seq, ts_ms, cts_ms),
                (bids, asks, best_bid, best_ask),
                (nb, na, category, recv_ns),
                top,
            )| {
                BookEvent {
                    symbol,
                    depth,
                    kind: if snap {
                        BookKind::Snapshot
                    } else {
                        BookKind::Delta
                    },
                    u,
                    seq,
                    ts_ms,
                    cts_ms,
                    bids,
                    asks,
                    best_bid,
                    best_ask,
                    levels: (nb, na),
                    category,
                    recv_ns,
                    top: top.map(|(bids, asks)| Top { bids, asks }),
                }
            },
        )
}

proptest! {
    #[test]
    fn trades_round_trip_exactly(t in trade()) {
        let mut out = Vec::new();
        put_trade(&t, &mut out);
        let back = super::trade(&out).expect("decodes");
        // Exact, scale included: 1.50 stays 1.50.
        prop_assert_eq!(back.price.scale(), t.price.scale());
        prop_assert_eq!(back, t);
    }

    #[test]
    fn books_round_trip_exactly(b in book()) {
        let mut out = Vec::new();
        put_book(&b, &mut out);
        prop_assert_eq!(super::book(&out).expect("decodes"), b);
    }

    /// Any cut or corrupted byte is an error or another valid event, never a panic.
    #[test]
    fn damaged_payloads_never_panic(b in book(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let mut out = Vec::new();
        put_book(&b, &mut out);
        let n = cut.index(out.len());
        prop_assert!(super::book(&out[..n]).is_err());
        let i = flip.0.index(out.len());
        out[i] ^= flip.1 | 1;
        let _ = super::book(&out);
        let _ = super::trade(&out);
    }
}

#[test]
fn a_huge_level_count_is_refused_without_allocating() {
    let mut out = vec![BOOK];
    put_str(&mut out, "BTCUSDT");
    out.extend_from_slice(&50u16.to_le_bytes());
    out.push(1);
    put_u64(&mut out, 1);
    put_opt_u64(&mut out, None);
    put_u64(&mut out, 1);
    put_opt_u64(&mut out, None);
    out.extend_from_slice(&u32::MAX.to_le_bytes());
    let err = super::book(&out).expect_err("refused");
    assert!(err.contains("exceeds the payload"), "{err}");
}

#[test]
fn a_decimal_beyond_28_digits_of_scale_is_an_error() {
    let mut out = Vec::new();
    put_trade(
        &TradeEvent {
            symbol: "X".into(),
            id: "1".into(),
            price: Decimal::ONE,
            qty: Decimal::ONE,
            side: Side::Buy,
            ts_ms: 0,
            seq: None,
            block: false,
            category: None,
            recv_ns: None,
            recovered: false,
        },
        &mut out,
    );
    // The price's scale byte follows tag, symbol (4 + 1) , id (4 + 1) and the 16-byte mantissa.
    let scale_at = 1 + 5 + 5 + 16;
    out[scale_at] = 29;
    assert!(super::trade(&out).expect_err("refused").contains("decimal"));
}
