//! How the supervisor starts and watches workers: the executable, extra environment, the health
//! report interval (the worker's heartbeat), the hang threshold and the SIGTERM grace period.

use std::path::PathBuf;
use std::time::Duration;

use crate::feed::FeedConfig;

/// How workers are started and watched.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// The `hft-connector` executable (default: the current executable).
    pub program: Option<PathBuf>,
    /// Extra environment for every worker (e.g. the panic test hook).
    pub env: Vec<(String, String)>,
    /// Seconds between the worker's health reports (default: `health.check_interval_s`, between
    /// 0.05 and 1).
    pub health_report_s: Option<f64>,
    /// A worker silent this long is hung (default: the larger of `health.stale_after_s` and five
    /// report intervals).
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

    pub(crate) fn report_every(&self, cfg: &FeedConfig) -> f64 {
        self.health_report_s
            .unwrap_or(cfg.health.check_interval_s.clamp(0.05, 1.0))
    }

    /// Silence after which the worker no longer counts as alive in health (`process_alive`):
    /// three missed reports (at least 0.5 s), never later than the hang threshold.
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

/// Allocator settings a worker starts with unless this process's environment (or
/// [`WorkerOptions::env`]) sets them: mimalloc commits arena memory on demand rather than eagerly,
/// which took a saturated worker's resident memory from about 31 to 19 MB for a few percent of
/// throughput (BENCHMARKS.md, issue 12).
pub const WORKER_ALLOCATOR_ENV: [(&str, &str); 1] = [("MIMALLOC_ARENA_EAGER_COMMIT", "0")];

impl WorkerOptions {
    /// The environment a worker gets on top of this process's: the allocator defaults not
    /// already set, then [`WorkerOptions::env`].
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = WORKER_ALLOCATOR_ENV
            .iter()
            .filter(|(k, _)| std::env::var_os(k).is_none())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(self.env.iter().cloned());
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_the_allocator_defaults_then_the_extra_environment() {
        let opts = WorkerOptions {
            env: vec![("HFT_X".into(), "1".into())],
            ..WorkerOptions::default()
        };
        let env = opts.worker_env();
        assert_eq!(env.last(), Some(&("HFT_X".to_string(), "1".to_string())));
        for (k, v) in WORKER_ALLOCATOR_ENV {
            // An operator's own setting wins: then the default is not passed at all.
            let expected = std::env::var_os(k).is_none();
            assert_eq!(env.contains(&(k.to_string(), v.to_string())), expected);
        }
    }
}
