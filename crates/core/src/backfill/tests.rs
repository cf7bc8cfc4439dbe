//! Tests of backfill planning, progress and retry decisions.

use std::collections::HashSet;

use super::*;
use crate::protocol::{Category, RestError};

const MIN: u64 = 60_000;
const DAY: u64 = 86_400_000;

fn assert_exact_cover(chunks: &[Chunk], first: u64, end: u64, len: u64, limit: u64) {
    assert_eq!(chunks.first().map(|c| c.start_ms), Some(first));
    assert_eq!(chunks.last().map(|c| c.end_ms), Some(end));
    for w in chunks.windows(2) {
        assert_eq!(w[0].end_ms, w[1].start_ms, "gap or overlap");
    }
    for c in chunks {
        assert!(c.candles >= 1 && c.candles <= limit);
        assert_eq!(c.candles * len, c.end_ms - c.start_ms);
        assert_eq!(c.start_ms % len, 0);
    }
    let total: u64 = chunks.iter().map(|c| c.candles).sum();
    assert_eq!(total, (end - first) / len);
    let ids: HashSet<_> = chunks.iter().map(|c| &c.id).collect();
    assert_eq!(ids.len(), chunks.len(), "ids unique");
}

#[test]
fn ninety_days_of_minutes_is_about_130_chunks_covering_exactly() {
    let to = 1_760_000_000_000u64; // not aligned to anything in particular
    let from = to - 90 * DAY;
    let chunks = plan_chunks("BTCUSDT", Category::Linear, "1", from, to, 1000).unwrap();
    let first = from - from % MIN;
    let end = to - to % MIN + MIN; // includes the open candle
    assert_exact_cover(&chunks, first, end, MIN, 1000);
    assert_eq!(chunks.iter().map(|c| c.candles).sum::<u64>(), 129_601);
    assert!((130..=131).contains(&chunks.len()), "{}", chunks.len());
    let c = &chunks[1];
    assert_eq!(c.candles, 1000);
    assert_eq!(c.start_ms % (1000 * MIN), 0, "whole cells are on the grid");
    assert_eq!(
        c.id,
        format!("linear:BTCUSDT:1:{}-{}", c.start_ms, c.end_ms)
    );
}

#[test]
fn replanning_later_keeps_the_ids_of_whole_chunks() {
    let to = 1_760_000_000_000u64;
    let a = plan_chunks("BTCUSDT", Category::Linear, "1", to - 90 * DAY, to, 1000).unwrap();
    let later = to + 7 * MIN;
    let b = plan_chunks(
        "BTCUSDT",
        Category::Linear,
        "1",
        later - 90 * DAY,
        later,
        1000,
    )
    .unwrap();
    let done: HashSet<String> = a.iter().map(|c| c.id.clone()).collect();
    let left = remaining(&b, &done);
    // Only the clipped head and the tail (which held the open candle) are fetched again.
    assert!(
        left.len() <= 2,
        "{:?}",
        left.iter().map(|c| &c.id).collect::<Vec<_>>()
    );
    assert!(left.iter().any(|c| c.end_ms == b[b.len() - 1].end_ms));
}

#[test]
fn other_intervals_limits_and_aligned_ranges() {
    let chunks = plan_chunks("ETHUSDT", Category::Spot, "60", 0, 10 * DAY, 100).unwrap();
    assert_exact_cover(&chunks, 0, 10 * DAY, 3_600_000, 100);
    assert_eq!(chunks.len(), 3); // 240 hours: 100 + 100 + 40
    let one = plan_chunks("ETHUSDT", Category::Spot, "D", 5 * DAY, 5 * DAY + 1, 1000).unwrap();
    assert_eq!(
        (one.len(), one[0].candles, one[0].start_ms),
        (1, 1, 5 * DAY)
    );
    let week = 7 * DAY;
    let w = plan_chunks("BTCUSD", Category::Inverse, "W", 20 * week, 40 * week, 7).unwrap();
    for c in &w {
        assert_eq!(
            (c.start_ms - 4 * DAY) % week,
            0,
            "weekly starts are Mondays"
        );
    }
    assert_eq!(w.iter().map(|c| c.candles).sum::<u64>(), 21);
}

#[test]
fn query_uses_inclusive_end_and_chunk_limit() {
    let c = &plan_chunks("BTCUSDT", Category::Linear, "5", 0, 300_000 * 3, 1000).unwrap()[0];
    let q = c.query();
    assert_eq!(q[0], ("category", "linear".to_string()));
    assert_eq!(q[3], ("start", "0".to_string()));
    assert_eq!(q[4], ("end", "899999".to_string()));
    assert_eq!(q[5], ("limit", "3".to_string()));
    assert!(!c.is_closed_at(899_999));
    assert!(c.is_closed_at(900_000));
}

#[test]
fn refuses_bad_plans() {
    let p = |s: &str, i: &str, f: u64, t: u64, l: u64| plan_chunks(s, Category::Linear, i, f, t, l);
    assert_eq!(
        p("btcusdt", "1", 0, 1, 10),
        Err(PlanError::Symbol("btcusdt".into()))
    );
    assert!(matches!(
        p("BTCUSDT", "M", 0, 1, 10),
        Err(PlanError::Interval(_))
    ));
    assert_eq!(p("BTCUSDT", "1", 0, 1, 0), Err(PlanError::Limit(0)));
    assert_eq!(p("BTCUSDT", "1", 0, 1, 1001), Err(PlanError::Limit(1001)));
    assert_eq!(
        p("BTCUSDT", "1", 5, 5, 10),
        Err(PlanError::Range {
            from_ms: 5,
            to_ms: 5
        })
    );
}

#[test]
fn progress_counts_and_serializes() {
    let mut p = BackfillProgress::new("BTCUSDT", Category::Linear, "1", 3, 1);
    assert_eq!(p.state, BackfillState::Pending);
    p.chunk_done(); // not running yet: ignored
    assert_eq!(p.done, 1);
    p.start();
    p.chunk_done();
    assert_eq!((p.done, p.state), (2, BackfillState::Running));
    p.chunk_done();
    assert_eq!((p.done, p.state), (3, BackfillState::Done));
    let j = serde_json::to_value(&p).unwrap();
    assert_eq!(
        j,
        serde_json::json!({"symbol":"BTCUSDT","category":"linear","interval":"1","done":3,"total":3,"state":"done"})
    );
    let mut empty = BackfillProgress::new("BTCUSDT", Category::Linear, "1", 2, 5);
    empty.start();
    assert_eq!(
        (empty.done, empty.state, empty.fraction()),
        (2, BackfillState::Done, 1.0)
    );
    let mut f = BackfillProgress::new("X1", Category::Spot, "1", 4, 0);
    f.start();
    f.fail("boom");
    let j = serde_json::to_value(&f).unwrap();
    assert_eq!(
        (j["state"].as_str(), j["error"].as_str()),
        (Some("failed"), Some("boom"))
    );
}

fn chunk() -> Chunk {
    plan_chunks("NOPEUSDT", Category::Linear, "1", 0, MIN, 1000)
        .unwrap()
        .remove(0)
}

#[test]
fn decisions_follow_the_failure_kind() {
    let p = RetryPolicy::default();
    let c = chunk();
    assert_eq!(p.decide(&c, &FetchOutcome::Ok, 1), Decision::Accept);
    for o in [
        FetchOutcome::Http(429),
        FetchOutcome::Http(500),
        FetchOutcome::Http(503),
        FetchOutcome::Timeout,
        FetchOutcome::Network("reset".into()),
    ] {
        assert_eq!(
            p.decide(&c, &o, 1),
            Decision::Retry { delay_ms: 500 },
            "{o:?}"
        );
        // Unbounded by default.
        assert!(matches!(
            p.decide(&c, &o, 1_000),
            Decision::Retry { delay_ms: 30_000 }
        ));
    }
    assert_eq!(
        p.decide(&c, &FetchOutcome::Http(403), 1),
        Decision::PauseAll { wait_ms: 600_000 }
    );
    let custom = RetryPolicy {
        ban_wait_ms: 5,
        ..RetryPolicy::default()
    };
    assert_eq!(
        custom.decide(&c, &FetchOutcome::Http(403), 9),
        Decision::PauseAll { wait_ms: 5 }
    );
    let bad = FetchOutcome::Api {
        code: 10001,
        message: "The requested symbol is invalid.".into(),
    };
    match p.decide(&c, &bad, 1) {
        Decision::Fatal(e) => {
            assert!(matches!(e, FatalError::UnknownSymbol { .. }));
            let text = e.to_string();
            assert!(
                text.contains("NOPEUSDT") && text.contains("10001") && text.contains("linear"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_errors_retry_a_bounded_number_of_times() {
    let p = RetryPolicy {
        max_other_attempts: 3,
        ..RetryPolicy::default()
    };
    let c = chunk();
    let busy = FetchOutcome::Api {
        code: 10006,
        message: "Too many visits!".into(),
    };
    assert_eq!(p.decide(&c, &busy, 1), Decision::Retry { delay_ms: 500 });
    assert_eq!(p.decide(&c, &busy, 2), Decision::Retry { delay_ms: 1_000 });
    match p.decide(&c, &busy, 3) {
        Decision::Fatal(FatalError::RetriesExhausted {
            attempts,
            last,
            chunk,
            ..
        }) => {
            assert_eq!(attempts, 3);
            assert!(last.contains("10006"));
            assert_eq!(chunk, c.id);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.decide(&c, &FetchOutcome::Http(404), 3),
        Decision::Fatal(_)
    ));
    assert!(matches!(
        p.decide(&c, &FetchOutcome::Malformed("x".into()), 2),
        Decision::Retry { .. }
    ));
    let bounded = RetryPolicy {
        max_transient_attempts: Some(2),
        ..RetryPolicy::default()
    };
    assert!(matches!(
        bounded.decide(&c, &FetchOutcome::Timeout, 2),
        Decision::Fatal(_)
    ));
    let from_rest: FetchOutcome = (&RestError::Api {
        code: 10001,
        message: "m".into(),
    })
        .into();
    assert!(matches!(
        p.decide(&c, &from_rest, 1),
        Decision::Fatal(FatalError::UnknownSymbol { .. })
    ));
}

#[test]
fn backoff_doubles_and_caps() {
    let p = RetryPolicy::default();
    let seq: Vec<u64> = (1..=8).map(|a| p.backoff_ms(a)).collect();
    assert_eq!(
        seq,
        vec![500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
    );
    assert_eq!(p.backoff_ms(0), 500);
    assert_eq!(p.backoff_ms(200), 30_000);
}
