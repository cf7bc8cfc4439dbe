//! `hft-connector run`: the service (feeds, backfill, store, HTTP) from flags, a TOML file and
//! environment variables.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

/// How each exchange connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In a supervised child process `hft-connector worker` (default).
    Process,
    /// In the service's own process.
    InProcess,
}

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
    /// REST base URL (e.g. https://api.bybit.com).
    #[arg(long, value_name = "URL")]
    pub rest_url: Option<String>,
    /// Data directory (SQLite store).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (status API, metrics, dashboard).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where each connection runs.
    #[arg(long, value_enum)]
    pub isolation: Option<Isolation>,
    /// Days of 1-minute klines to backfill (0 disables backfill).
    #[arg(long, value_name = "DAYS")]
    pub backfill_days: Option<f64>,
    /// Token required by state-changing HTTP routes.
    #[arg(long, env = "HFT_CONNECTOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Record every raw frame under DIR (turns on `[sinks.record]`, setting its `dir`).
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<PathBuf>,
}

/// The HTTP routes the service serves: status API, metrics, event stream and dashboard.
pub fn routes(
    state: crate::service::ServiceState,
    shutdown: tokio_util::sync::CancellationToken,
) -> axum::Router {
    crate::http::router_with(state, shutdown, axum::Router::new())
}

/// Runs the service until Ctrl-C / SIGTERM.
pub fn main(args: RunArgs) -> ExitCode {
    crate::logging::init_json();
    let cfg = match crate::config::ServiceConfig::load(&args, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hft-connector run: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector run: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match serve(cfg).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(event = "service_failed", error = %e);
                eprintln!("hft-connector run: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Starts the service with the configured isolation.
pub async fn start_service(
    cfg: crate::config::ServiceConfig,
) -> Result<crate::service::runner::Running, crate::service::runner::ServiceError> {
    let isolation = cfg.service.isolation;
    crate::service::runner::start(
        cfg,
        move |f| crate::source::FeedSource::spawn(f, isolation).map_err(|e| e.to_string()),
        routes,
    )
    .await
}

/// Starts the service with the configured isolation and runs it until a signal.
pub async fn serve(
    cfg: crate::config::ServiceConfig,
) -> Result<(), crate::service::runner::ServiceError> {
    use crate::service::runner::shutdown_signal;
    tracing::info!(
        event = "service_starting",
        symbols = %cfg.feed.symbols.join(","),
        categories = %cfg.categories().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","),
        isolation = ?cfg.service.isolation,
        data_dir = %cfg.store.data_dir.display(),
        backfill_days = if cfg.backfill.enabled { cfg.backfill.days } else { 0.0 },
    );
    let running = start_service(cfg).await?;
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!(event = "service_stopping", reason = "signal");
            running.stop();
        }
        _ = running.ended() => {}
    }
    running.wait().await
}
