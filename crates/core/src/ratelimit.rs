//! The shared REST request budget: at most N requests in any sliding window (Bybit: 600 per 5 s per
//! IP), plus a ban that makes every caller wait (after an HTTP 403).
//!
//! [`SlidingWindow`] is pure: time is a millisecond value passed in. The async budget shared by
//! concurrent fetchers (`hft_service::budget::RateBudget`) wraps it around `tokio::time`.
//!
//! The rule: a request at `now` is granted when fewer than N were granted in `(now - window, now]`.
//! Then any half-open window `[t, t + window)` holds at most N grants: its last grant saw all the
//! earlier ones in its own look-back and there were fewer than N of them. The budget keeps its own
//! count; Bybit counts arrivals on its side, so a caller that wants slack configures a smaller N.

use std::collections::VecDeque;

/// Bybit's default REST budget: requests per window.
pub const BYBIT_REQUESTS: usize = 600;
/// Bybit's default REST window (ms).
pub const BYBIT_WINDOW_MS: u64 = 5_000;

/// Sliding-window request counter. Times are milliseconds on any monotonic clock; a time earlier
/// than one already seen is treated as that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    capacity: usize,
    window_ms: u64,
    grants: VecDeque<u64>,
    latest_ms: u64,
    banned_until_ms: u64,
}

impl SlidingWindow {
    /// `capacity` requests (at least 1) per `window_ms` (at least 1).
    pub fn new(capacity: usize, window_ms: u64) -> Self {
        let capacity = capacity.max(1);
        SlidingWindow {
            capacity,
            window_ms: window_ms.max(1),
            grants: VecDeque::with_capacity(capacity),
            latest_ms: 0,
            banned_until_ms: 0,
        }
    }

    /// Requests per window.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Window length (ms).
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    fn advance(&mut self, now_ms: u64) -> u64 {
        self.latest_ms = self.latest_ms.max(now_ms);
        let now = self.latest_ms;
        while self
            .grants
            .front()
            .is_some_and(|&g| g + self.window_ms <= now)
        {
            self.grants.pop_front();
        }
        now
    }

    /// Takes one request from the budget at `now_ms`, or says how long to wait (ms, at least 1)
    /// before trying again.
    pub fn try_acquire(&mut self, now_ms: u64) -> Result<(), u64> {
        let now = self.advance(now_ms);
        if self.banned_until_ms > now {
            return Err(self.banned_until_ms - now);
        }
        match self.grants.front() {
            Some(&oldest) if self.grants.len() >= self.capacity => {
                Err(oldest + self.window_ms - now)
            }
            _ => {
                self.grants.push_back(now);
                Ok(())
            }
        }
    }

    /// Refuses every request until `until_ms` (a later ban extends, an earlier one is ignored).
    pub fn ban_until(&mut self, until_ms: u64) {
        self.banned_until_ms = self.banned_until_ms.max(until_ms);
    }

    /// End of the ban, if one is in force at `now_ms`.
    pub fn banned_until(&self, now_ms: u64) -> Option<u64> {
        (self.banned_until_ms > now_ms.max(self.latest_ms)).then_some(self.banned_until_ms)
    }

    /// Requests granted in the window ending at `now_ms`.
    pub fn in_window(&mut self, now_ms: u64) -> usize {
        self.advance(now_ms);
        self.grants.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_never_more_than(grants: &[u64], cap: usize, window: u64) {
        for (i, &g) in grants.iter().enumerate() {
            let n = grants[i..].iter().take_while(|&&h| h < g + window).count();
            assert!(n <= cap, "{n} grants in [{g}, {}): {grants:?}", g + window);
        }
    }

    #[test]
    fn grants_up_to_capacity_then_says_how_long_to_wait() {
        let mut w = SlidingWindow::new(3, 1_000);
        assert_eq!(w.try_acquire(0), Ok(()));
        assert_eq!(w.try_acquire(100), Ok(()));
        assert_eq!(w.try_acquire(200), Ok(()));
        assert_eq!(w.try_acquire(300), Err(700));
        assert_eq!(w.try_acquire(999), Err(1));
        assert_eq!(w.try_acquire(1_000), Ok(()));
        assert_eq!(w.try_acquire(1_000), Err(100));
        assert_eq!(w.in_window(1_000), 3);
        assert_eq!(w.in_window(5_000), 0);
        // A clock going backwards is treated as the latest time seen.
        assert_eq!(w.try_acquire(10), Ok(()));
        assert_eq!(w.in_window(0), 1);
    }

    #[test]
    fn a_ban_blocks_everyone_until_it_ends_and_only_extends() {
        let mut w = SlidingWindow::new(600, 5_000);
        w.ban_until(600_000);
        assert_eq!(w.try_acquire(0), Err(600_000));
        assert_eq!(w.banned_until(1), Some(600_000));
        w.ban_until(10); // shorter: ignored
        assert_eq!(w.try_acquire(599_999), Err(1));
        assert_eq!(w.try_acquire(600_000), Ok(()));
        assert_eq!(w.banned_until(600_000), None);
    }

    proptest! {
        #[test]
        fn never_more_than_capacity_in_any_window_and_waits_are_tight(
            cap in 1usize..8,
            window in 1u64..300,
            steps in proptest::collection::vec(0u64..60, 1..400),
        ) {
            let mut w = SlidingWindow::new(cap, window);
            let mut now = 0u64;
            let mut grants = Vec::new();
            for dt in steps {
                now += dt;
                let before = w.clone();
                match w.try_acquire(now) {
                    Ok(()) => grants.push(now),
                    Err(wait) => {
                        prop_assert!(wait >= 1);
                        let mut at = before.clone();
                        prop_assert_eq!(at.try_acquire(now + wait), Ok(()));
                        if wait > 1 {
                            let mut early = before;
                            prop_assert!(early.try_acquire(now + wait - 1).is_err());
                        }
                    }
                }
            }
            assert_never_more_than(&grants, cap, window);
        }
    }
}
