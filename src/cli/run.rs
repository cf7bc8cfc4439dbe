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
}

/// Runs the service until Ctrl-C / SIGTERM.
pub fn main(_args: RunArgs) -> ExitCode {
    eprintln!("hft-connector run: not available in this build yet");
    ExitCode::FAILURE
}
