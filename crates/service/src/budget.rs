//! The async REST request budget shared by concurrent fetchers: the pure
//! [`hft_core::ratelimit::SlidingWindow`] on `tokio::time`, so tests drive it with
//! `tokio::time::pause()`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hft_core::ratelimit::{SlidingWindow, BYBIT_REQUESTS, BYBIT_WINDOW_MS};
use tokio::time::Instant;

/// A request budget shared by concurrent fetchers (clone it; clones share the budget).
#[derive(Debug, Clone)]
pub struct RateBudget {
    inner: Arc<Mutex<SlidingWindow>>,
    origin: Instant,
}

impl Default for RateBudget {
    /// Bybit's 600 requests per 5 s.
    fn default() -> Self {
        RateBudget::new(BYBIT_REQUESTS, Duration::from_millis(BYBIT_WINDOW_MS))
    }
}

impl RateBudget {
    /// `capacity` requests per `window`.
    pub fn new(capacity: usize, window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        RateBudget {
            inner: Arc::new(Mutex::new(SlidingWindow::new(capacity, window_ms))),
            origin: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlidingWindow> {
        // The window holds plain counters, valid even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds on this budget's clock (since it was created).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits until a request may be sent, and takes it from the budget.
    pub async fn acquire(&self) {
        loop {
            let wait = self.lock().try_acquire(self.now_ms());
            match wait {
                Ok(()) => return,
                Err(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
        }
    }

    /// Takes a request only if one is available now; otherwise the wait (ms).
    pub fn try_acquire(&self) -> Result<(), u64> {
        self.lock().try_acquire(self.now_ms())
    }

    /// Makes every caller wait until `until_ms` on this budget's clock ([`Self::now_ms`]).
    pub fn ban_until(&self, until_ms: u64) {
        self.lock().ban_until(until_ms);
    }

    /// Makes every caller wait for `d` from now (HTTP 403: 10 minutes).
    pub fn ban_for(&self, d: Duration) {
        let d_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.ban_until(self.now_ms().saturating_add(d_ms));
    }

    /// Time left of a ban in force.
    pub fn banned_for(&self) -> Option<Duration> {
        let now = self.now_ms();
        self.lock()
            .banned_until(now)
            .map(|u| Duration::from_millis(u - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_never_more_than(grants: &[u64], cap: usize, window: u64) {
        for (i, &g) in grants.iter().enumerate() {
            let n = grants[i..].iter().take_while(|&&h| h < g + window).count();
            assert!(n <= cap, "{n} grants in [{g}, {}): {grants:?}", g + window);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_fetchers_share_one_budget() {
        let budget = RateBudget::new(5, Duration::from_millis(1_000));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let b = budget.clone();
            tasks.push(tokio::spawn(async move {
                let mut at = Vec::new();
                for _ in 0..5 {
                    b.acquire().await;
                    at.push(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
                }
                at
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all.sort_unstable();
        assert_eq!(all.len(), 20);
        assert_never_more_than(&all, 5, 1_000);
        // 20 requests at 5 per second: the last batch goes at 3 s, not before.
        assert_eq!(all.iter().filter(|&&t| t == 0).count(), 5);
        assert_eq!(all.last().copied(), Some(3_000));
        assert_eq!(budget.try_acquire(), Err(1_000));
    }

    #[tokio::test(start_paused = true)]
    async fn ban_makes_every_caller_wait_including_ones_already_waiting() {
        let budget = RateBudget::new(1, Duration::from_millis(1_000));
        let start = Instant::now();
        budget.acquire().await;
        let b = budget.clone();
        let waiter = tokio::spawn(async move {
            b.acquire().await;
            start.elapsed()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        budget.ban_for(Duration::from_secs(600));
        assert_eq!(budget.banned_for(), Some(Duration::from_secs(600)));
        let other = budget.clone();
        let late = tokio::spawn(async move {
            other.acquire().await;
            start.elapsed()
        });
        let a = waiter.await.expect("waiter");
        let b = late.await.expect("late");
        let ban_end = Duration::from_millis(600_500);
        assert!(a >= ban_end && b >= ban_end, "{a:?} {b:?}");
        // One of them had to wait one more window after the ban.
        assert_eq!(a.max(b), ban_end + Duration::from_millis(1_000));
        assert_eq!(budget.banned_for(), None);
    }

    #[test]
    fn default_is_bybits_600_per_5_seconds() {
        let w = RateBudget::default();
        let inner = w.lock();
        assert_eq!((inner.capacity(), inner.window_ms()), (600, 5_000));
    }
}
