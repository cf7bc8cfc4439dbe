//! `hft-connector worker` (hidden): runs a worker by hand with its [`WorkerConfig`] as JSON from
//! `--config-json` (a supervisor starts workers through [`crate::worker::main`] and the
//! `HFT_FEED_WORKER` environment variable instead). The worker reads commands on stdin and writes
//! frames on stdout ([`crate::worker::pipe`]), JSON log lines on stderr. See [`crate::worker`].

use std::process::ExitCode;

use clap::Args;

use crate::worker::WorkerConfig;

/// Flags of `worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The worker configuration as JSON (a serialized `WorkerConfig`).
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub config_json: String,
}

/// Runs a worker until SIGTERM or its supervisor going away.
pub fn main(args: WorkerArgs) -> ExitCode {
    match serde_json::from_str::<WorkerConfig>(&args.config_json) {
        Ok(cfg) => crate::worker::run(cfg),
        Err(e) => {
            eprintln!("invalid --config-json: {e}");
            ExitCode::from(2)
        }
    }
}
