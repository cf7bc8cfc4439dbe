//! How the supervisor starts and watches workers: the executable, extra environment, the worker's
//! heartbeat interval, the hang threshold and the SIGTERM grace period.

use std::path::PathBuf;
use std::time::Duration;

use crate::feed::FeedConfig;

/// How workers are started and watched.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// The executable started as the worker (default: the current executable, whose `main` calls
    /// [`crate::worker::main`] first).
    pub program: Option<PathBuf>,
    /// Extra environment for every worker (e.g. the panic test hook).
    pub env: Vec<(String, String)>,
    /// Seconds between the worker's heartbeats while a connection is open or being opened
    /// (default: `health.check_interval_s` between 0.05 and 1, and at most a third of
    /// `heartbeat.pong_timeout_s`).
    pub health_report_s: Option<f64>,
    /// A worker silent this long is hung (default: the larger of `health.stale_after_s` and five
    /// heartbeat intervals).
    pub hung_after_s: Option<f64>,
    /// Seconds between the worker's statistics log lines.
    pub stats_interval_s: f64,
    /// Seconds between SIGTERM and SIGKILL when stopping a worker.
    pub term_grace_s: f64,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            program: None,
            env: Vec::new(),
            health_report_s: None,
            hung_after_s: None,
            stats_interval_s: 60.0,
            term_grace_s: 2.0,
        }
    }
}

impl WorkerOptions {
    /// Options running `program` as the worker executable.
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        WorkerOptions {
            program: Some(program.into()),
            ..WorkerOptions::default()
        }
    }

    fn report_every(&self, cfg: &FeedConfig) -> f64 {
        self.health_report_s.unwrap_or(
            cfg.health
                .check_interval_s
                .clamp(0.05, 1.0)
                .min(cfg.heartbeat.pong_timeout_s / 3.0),
        )
    }

    pub(crate) fn heartbeat_every(&self, cfg: &FeedConfig) -> Duration {
        Duration::from_secs_f64(self.report_every(cfg).clamp(0.005, 60.0))
    }

    /// Silence after which the worker no longer counts as alive in health (`process_alive`):
    /// three missed heartbeats (at least 0.5 s), never later than the hang threshold.
    pub(crate) fn silent_limit(&self, cfg: &FeedConfig) -> Duration {
        let s = (3.0 * self.report_every(cfg)).max(0.5);
        Duration::from_secs_f64(s.clamp(0.01, 86_400.0)).min(self.hung_after(cfg))
    }

    pub(crate) fn hung_after(&self, cfg: &FeedConfig) -> Duration {
        let s = self
            .hung_after_s
            .unwrap_or((cfg.health.stale_after_s).max(5.0 * self.report_every(cfg)));
        Duration::from_secs_f64(s.clamp(0.01, 86_400.0))
    }
}
