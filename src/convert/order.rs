//! hftbacktest's ordering rules (`hftbacktest.data.validation`, 2.4.x), reproduced exactly:
//!
//! - [`correct_local_timestamp`]: if any row's local time is before its exchange time, every local
//!   time moves later by the largest such gap plus `base_latency` (nothing moves otherwise);
//! - [`correct_event_order`]: rows are taken once in exchange-time order and once in local-time
//!   order (both stable, as numpy's mergesort) and merged: a row at the same place in both orders
//!   is emitted once with `EXCH_EVENT | LOCAL_EVENT`, otherwise it appears twice, once flagged
//!   `EXCH_EVENT` where the exchange sees it and once `LOCAL_EVENT` where the local side does.
//!   Exchange events then never go back in exchange time, local events never in local time.

use super::hftbacktest::{Event, EXCH_EVENT, LOCAL_EVENT};

/// Shifts local times so that no feed latency is negative (in place).
pub fn correct_local_timestamp(rows: &mut [Event], base_latency: i64) {
    let latency = rows
        .iter()
        .map(|r| r.local_ts.wrapping_sub(r.exch_ts))
        .min()
        .unwrap_or(i64::MAX);
    if latency < 0 {
        let offset = base_latency - latency;
        for r in rows.iter_mut() {
            r.local_ts += offset;
        }
    }
}

/// Merges the exchange-ordered and local-ordered views of `rows` into `emit`; returns how many
/// rows it emitted.
pub fn correct_event_order(rows: &[Event], emit: impl FnMut(Event)) -> usize {
    merge(rows, &Views::of(rows), emit)
}

/// The two stable orders of a set of rows (indices), computed once for several merges.
#[derive(Debug, Clone)]
pub struct Views {
    by_exch: Vec<u32>,
    by_local: Vec<u32>,
}

impl Views {
    /// Sorts `rows` (at most `u32::MAX` of them) by exchange and by local time.
    pub fn of(rows: &[Event]) -> Views {
        let n = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        let mut by_exch: Vec<u32> = (0..n).collect();
        by_exch.sort_by_key(|&i| rows[i as usize].exch_ts);
        let mut by_local: Vec<u32> = (0..n).collect();
        by_local.sort_by_key(|&i| rows[i as usize].local_ts);
        Views { by_exch, by_local }
    }
}

/// [`correct_event_order`] over precomputed [`Views`].
pub fn merge(rows: &[Event], views: &Views, emit: impl FnMut(Event)) -> usize {
    merge_sorted(
        views.by_exch.iter().map(|&i| rows[i as usize]),
        views.by_local.iter().map(|&i| rows[i as usize]),
        emit,
    )
}

/// [`correct_event_order`] over the two orders given as streams: `by_exch` is the rows stably
/// sorted by exchange time, `by_local` the same rows stably sorted by local time (from memory,
/// or merged from sorted runs on disk). Returns how many rows it emitted.
pub fn merge_sorted(
    by_exch: impl Iterator<Item = Event>,
    by_local: impl Iterator<Item = Event>,
    mut emit: impl FnMut(Event),
) -> usize {
    let (mut by_exch, mut by_local) = (by_exch.peekable(), by_local.peekable());
    let mut count = 0usize;
    let flagged = |r: &Event, flags: u64| Event {
        ev: r.ev | flags,
        ..*r
    };
    loop {
        match (by_exch.peek(), by_local.peek()) {
            (Some(e), Some(l)) if e.exch_ts == l.exch_ts && e.local_ts == l.local_ts => {
                emit(flagged(e, EXCH_EVENT | LOCAL_EVENT));
                by_exch.next();
                by_local.next();
            }
            (Some(e), Some(l))
                if (e.exch_ts == l.exch_ts && e.local_ts < l.local_ts) || e.exch_ts < l.exch_ts =>
            {
                emit(flagged(e, EXCH_EVENT));
                by_exch.next();
            }
            (Some(e), None) => {
                emit(flagged(e, EXCH_EVENT));
                by_exch.next();
            }
            (_, Some(l)) => {
                emit(flagged(l, LOCAL_EVENT));
                by_local.next();
            }
            (None, None) => break,
        }
        count += 1;
    }
    count
}

/// Checks hftbacktest's `validate_event_order`: exchange events in exchange-time order, local
/// events in local-time order.
pub fn validate_event_order(rows: &[Event]) -> Result<(), &'static str> {
    let ordered = |flag: u64, ts: fn(&Event) -> i64| {
        let mut it = rows.iter().filter(|r| r.ev & flag == flag).map(ts);
        let mut prev = it.next();
        for t in it {
            if prev.is_some_and(|p| t < p) {
                return false;
            }
            prev = Some(t);
        }
        true
    };
    if !ordered(EXCH_EVENT, |r| r.exch_ts) {
        return Err("exchange events are out of order");
    }
    if !ordered(LOCAL_EVENT, |r| r.local_ts) {
        return Err("local events are out of order");
    }
    Ok(())
}
