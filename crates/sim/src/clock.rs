//! The market clock: runs market steps at the configured rate (frames per second across all topics),
//! repeats unchanged level-1 snapshots, and pushes kline candles once a second.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{wall_ms, Shared};
use super::stats::Stats;

/// Most steps run under one lock acquisition, so subscribers and REST never wait long.
const BATCH: usize = 128;

/// Runs `n` steps now; returns the frames produced.
pub fn steps(shared: &Shared, n: usize) -> u64 {
    let mut frames = 0;
    let mut trades = 0;
    {
        let mut core = shared.lock_core();
        let now = wall_ms();
        for _ in 0..n {
            let (f, t) = core.step(now);
            frames += f;
            trades += t;
        }
    }
    Stats::add(&shared.stats.frames_published, frames);
    Stats::add(&shared.stats.trades, trades);
    frames
}

/// The clock task; ends when the simulator is cancelled.
pub async fn run(shared: Arc<Shared>) {
    let rate = shared.cfg.rate;
    let repeat_ms = shared.cfg.level1_repeat.as_millis() as u64;
    let mut base = Instant::now();
    let mut produced = 0.0f64;
    let mut last_l1 = Instant::now();
    let mut last_kline = Instant::now();
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        if last_l1.elapsed() >= Duration::from_millis(50) {
            last_l1 = Instant::now();
            let f = shared.lock_core().repeat_level1(wall_ms(), repeat_ms);
            Stats::add(&shared.stats.frames_published, f);
        }
        if last_kline.elapsed() >= Duration::from_secs(1) {
            last_kline = Instant::now();
            let f = shared.lock_core().push_klines(wall_ms());
            Stats::add(&shared.stats.frames_published, f);
        }
        if shared.paused.load(Ordering::Acquire) {
            base = Instant::now();
            produced = 0.0;
            tokio::select! {
                _ = shared.cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            continue;
        }
        let target = base.elapsed().as_secs_f64() * rate;
        if target - produced >= 1.0 {
            let mut frames = 0u64;
            let mut trades = 0u64;
            {
                let mut core = shared.lock_core();
                let now = wall_ms();
                let mut n = 0;
                while produced < target && n < BATCH {
                    let (f, t) = core.step(now);
                    // A step that changed nothing visible still counts a little, so the loop ends.
                    produced += (f as f64).max(0.25);
                    frames += f;
                    trades += t;
                    n += 1;
                }
            }
            Stats::add(&shared.stats.frames_published, frames);
            Stats::add(&shared.stats.trades, trades);
            // Never carry more than a second of debt (e.g. after the machine was busy).
            if target - produced > rate {
                produced = target - rate;
            }
            tokio::task::yield_now().await;
        } else {
            let wait = ((produced + 1.0 - target) / rate).clamp(0.0005, 0.05);
            tokio::select! {
                _ = shared.cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
            }
        }
        // Restart the accounting now and then so float error never builds up.
        if base.elapsed() > Duration::from_secs(3600) {
            base = Instant::now();
            produced = 0.0;
        }
    }
}
