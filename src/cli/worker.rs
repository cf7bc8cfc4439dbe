//! `hft-connector worker` (hidden): the child process of `run --isolation process`. Reads its
//! [`WorkerConfig`] as JSON from `--config-json`, streams frames on stdout, logs JSON to stderr.
//! Not meant to be run by hand; see [`crate::worker`].

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::worker::WorkerConfig;

/// Flags of `worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The worker configuration as JSON (a serialized `WorkerConfig`).
    #[arg(long, value_name = "JSON")]
    pub config_json: String,
}

/// Runs a worker until SIGTERM, its supervisor going away, or its feed ending.
pub fn main(args: WorkerArgs) -> ExitCode {
    crate::logging::init_json();
    // A panic is logged as one structured line first (then Rust's own message follows).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(non-string panic payload)");
        tracing::error!(
            event = "bybit_connector_worker_panic",
            pid = std::process::id(),
            message,
            location = %info.location().map(|l| l.to_string()).unwrap_or_default(),
        );
        default_hook(info);
    }));
    let cfg: WorkerConfig = match serde_json::from_str(&args.config_json) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(event = "bybit_connector_worker_config_invalid", error = %e);
            return ExitCode::from(2);
        }
    };
    // One thread: the feed hands each event to the pipe writer without a cross-thread wake-up
    // (BENCHMARKS.md, issue 12: busy polling, p99 at 10k msg/s 128-176 -> 77-101 us).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(event = "bybit_connector_worker_runtime_failed", error = %e);
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(crate::worker::child::run(cfg));
    // Blocking reads of stdin must not hold the exit up.
    rt.shutdown_timeout(Duration::from_millis(500));
    code
}
