//! `hft-connector run`: the service (feeds, backfill, store, HTTP) from flags, a TOML file and
//! environment variables.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Overrides;
pub use crate::source::Isolation;
pub use hft_service::app::{routes, serve, start_service};

/// Flags of `run` (each overrides the config file and the environment).
#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Symbols, comma separated (e.g. BTCUSDT,ETHUSDT).
    #[arg(long, value_delimiter = ',')]
    pub symbols: Option<Vec<String>>,
    /// Category or categories, comma separated (linear, spot, inverse).
    #[arg(long, value_delimiter = ',')]
    pub category: Option<Vec<String>>,
    /// Order-book depth (1, 50, 200, 1000; 0 for none).
    #[arg(long)]
    pub depth: Option<u16>,
    /// WebSocket base URL (e.g. wss://stream.bybit.com/v5/public).
    #[arg(long, value_name = "URL")]
    pub ws_url: Option<String>,
    /// REST base URL (e.g. `https://api.bybit.com`).
    #[arg(long, value_name = "URL")]
    pub rest_url: Option<String>,
    /// Data directory (SQLite store).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (status API, metrics, dashboard).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where each connection runs.
    #[arg(long, value_name = "process|in-process")]
    pub isolation: Option<Isolation>,
    /// Redundant connections per feed: 1, or 2 for A/B lines merged (`[feed] lines`).
    #[arg(long, value_name = "1|2")]
    pub lines: Option<u8>,
    /// Busy polling: keep reading the exchange's socket this long (µs) after each frame instead
    /// of sleeping; costs a core while data flows, saves the wake-up (`[feed] busy_poll_us`).
    #[arg(long, value_name = "US")]
    pub busy_poll_us: Option<u64>,
    /// Days of 1-minute klines to backfill (0 disables backfill).
    #[arg(long, value_name = "DAYS")]
    pub backfill_days: Option<f64>,
    /// Token required by state-changing HTTP routes.
    #[arg(long, env = "HFT_CONNECTOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Log format on stderr: auto (human on a terminal, JSON otherwise), json or pretty.
    #[arg(long, value_name = "auto|json|pretty")]
    pub log_format: Option<crate::terminal::LogFormat>,
    /// Publishing to NATS JetStream (`[sinks.nats]`).
    #[command(flatten)]
    pub nats: crate::cli::nats_args::NatsArgs,
    /// Record every raw frame under DIR (turns on `[sinks.record]`, setting its `dir`).
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<PathBuf>,
    /// How long a stop (SIGTERM, Ctrl-C) may take before what is left is abandoned and the
    /// process exits non-zero (`[service] shutdown_timeout_s`, default 10).
    #[arg(long, value_name = "S")]
    pub shutdown_timeout_s: Option<f64>,
}

/// Runs the service until Ctrl-C / SIGTERM, then stops it within `[service] shutdown_timeout_s`.
/// Exit status: 0 after a clean stop, 1 after a failure or a stop that did not complete in time
/// (`service_shutdown_incomplete`), 2 for a bad configuration, 128 + the signal's number when a
/// second signal cut the stop short.
pub fn main(args: RunArgs) -> ExitCode {
    let cfg = match crate::config::ServiceConfig::load(&args.overrides(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hft-connector run: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(cfg.log.format());
    // Before anything else: a signal while starting is a clean stop, not a kill.
    let signals = crate::shutdown::Signals::install();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector run: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let result = hft_service::app::serve_with(cfg, &signals).await;
        crate::terminal::bars::clear();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if !matches!(
                    e,
                    hft_service::service::runner::ServiceError::ShutdownIncomplete(_)
                ) {
                    tracing::error!(event = "service_failed", error = %e);
                }
                eprintln!("hft-connector run: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // Whatever was abandoned (a blocking write, a hung request) must not hold the exit up.
    runtime.shutdown_timeout(crate::cli::EXIT_GRACE);
    // No worker outlives the process (one a line restart was still stopping, say).
    crate::shutdown::kill_children();
    code
}

impl RunArgs {
    /// The flags as configuration overrides (they win over the file and the environment).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            symbols: self.symbols.clone(),
            category: self.category.clone(),
            depth: self.depth,
            ws_url: self.ws_url.clone(),
            rest_url: self.rest_url.clone(),
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            isolation: self.isolation,
            lines: self.lines,
            busy_poll_us: self.busy_poll_us,
            backfill_days: self.backfill_days,
            token: self.token.clone(),
            log_format: self.log_format,
            nats: self.nats.overrides(),
            record_dir: self.record_dir.clone(),
            shutdown_timeout_s: self.shutdown_timeout_s,
        }
    }
}
