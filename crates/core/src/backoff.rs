//! The reconnect delay policy: capped exponential backoff with jitter, reset after a stable period,
//! and never faster than Bybit's connection limit (500 connections per 5 minutes per domain).
//! Pure: the caller passes the time and the random draw, so every property is testable.

use std::time::Duration;

use crate::ratelimit::SlidingWindow;

/// Bybit refuses more than this many new connections per window.
pub const BYBIT_CONNECTIONS_PER_WINDOW: usize = 500;
/// The window of [`BYBIT_CONNECTIONS_PER_WINDOW`] (5 minutes).
pub const BYBIT_CONNECTION_WINDOW_MS: u64 = 300_000;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// First retry delay (before jitter).
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth factor per failed attempt.
    pub multiplier: f64,
    /// Fraction of the delay that is randomised: the delay is drawn from
    /// `[d * (1 - jitter), d]` ("equal jitter" when 0.5), so retries of many clients spread out.
    pub jitter: f64,
    /// A connection that stayed live this long resets the attempt counter.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            stable_after: Duration::from_secs(60),
        }
    }
}

/// Attempt counter plus the connection-rate guard.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
    connections: SlidingWindow,
}

impl Backoff {
    /// A policy with Bybit's connection limit.
    pub fn new(cfg: BackoffConfig) -> Self {
        Self::with_connection_limit(
            cfg,
            BYBIT_CONNECTIONS_PER_WINDOW,
            BYBIT_CONNECTION_WINDOW_MS,
        )
    }

    /// A policy with a custom connection limit (`limit` connections per `window_ms`).
    pub fn with_connection_limit(cfg: BackoffConfig, limit: usize, window_ms: u64) -> Self {
        Backoff {
            cfg,
            attempt: 0,
            connections: SlidingWindow::new(limit, window_ms),
        }
    }

    /// Failed attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before retry number `attempt` (1-based) without jitter: `initial * multiplier^(attempt-1)`,
    /// capped at `max`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.cfg.initial.as_secs_f64() * self.cfg.multiplier.max(1.0).powi(exp);
        Duration::from_secs_f64(secs.min(self.cfg.max.as_secs_f64()))
    }

    /// Records a failure and returns how long to wait before the next attempt. `unit` is a uniform
    /// random draw in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let base = self.base_delay(self.attempt).as_secs_f64();
        let jitter = self.cfg.jitter.clamp(0.0, 1.0);
        let unit = unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(base * (1.0 - jitter * unit))
    }

    /// Reports how long the last connection was live; a stable one resets the attempt counter.
    pub fn connection_lasted(&mut self, live_for: Duration) {
        if live_for >= self.cfg.stable_after {
            self.attempt = 0;
        }
    }

    /// Clears the attempt counter (e.g. after an explicit restart).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Asks to open a connection at `now_ms`: `Ok` takes a slot of the connection budget, `Err(ms)`
    /// says how long to wait first.
    pub fn admit_connection(&mut self, now_ms: u64) -> Result<(), u64> {
        self.connections.try_acquire(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_from_half_a_second_to_the_cap() {
        let b = Backoff::new(BackoffConfig::default());
        let secs: Vec<f64> = (1..=9).map(|a| b.base_delay(a).as_secs_f64()).collect();
        assert_eq!(secs, vec![0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
    }

    #[test]
    fn stable_connections_reset_and_short_ones_do_not() {
        let mut b = Backoff::new(BackoffConfig::default());
        for _ in 0..5 {
            b.next_delay(0.0);
        }
        b.connection_lasted(Duration::from_secs(10));
        assert_eq!(b.attempt(), 5);
        assert_eq!(b.next_delay(0.0), Duration::from_secs(16));
        b.connection_lasted(Duration::from_secs(60));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(0.0), Duration::from_millis(500));
    }

    #[test]
    fn connection_budget_holds_bybits_limit() {
        let mut b = Backoff::with_connection_limit(BackoffConfig::default(), 3, 1000);
        assert!(b.admit_connection(0).is_ok());
        assert!(b.admit_connection(1).is_ok());
        assert!(b.admit_connection(2).is_ok());
        assert_eq!(b.admit_connection(3), Err(997));
        assert!(b.admit_connection(1000).is_ok());
    }

    proptest! {
        #[test]
        fn delays_stay_within_jitter_bounds_and_never_exceed_the_cap(
            draws in prop::collection::vec(0.0f64..1.0, 1..40),
            initial_ms in 1u64..5_000,
            max_s in 1u64..120,
        ) {
            let cfg = BackoffConfig {
                initial: Duration::from_millis(initial_ms),
                max: Duration::from_secs(max_s),
                ..BackoffConfig::default()
            };
            let mut b = Backoff::new(cfg);
            let mut previous_base = Duration::ZERO;
            for (i, u) in draws.iter().enumerate() {
                let base = b.base_delay(i as u32 + 1);
                let d = b.next_delay(*u);
                prop_assert!(base >= previous_base, "the base never shrinks");
                prop_assert!(d <= base && d <= cfg.max.max(cfg.initial));
                prop_assert!(d.as_secs_f64() >= base.as_secs_f64() * 0.5 - 1e-9, "jitter takes at most half");
                previous_base = base;
            }
        }
    }
}
