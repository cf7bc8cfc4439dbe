//! `hft-connector simulate`: runs the Bybit V5 simulator until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::protocol::topic::valid_symbol;
use crate::protocol::Category;
use crate::sim::{SimConfig, Simulator};

/// Flags of `hft-connector simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Address to listen on (WebSocket, REST and /sim/* share it); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// Symbols served in every category, comma separated, upper case.
    #[arg(long, value_delimiter = ',', default_value = "BTCUSDT,ETHUSDT", value_parser = parse_symbol)]
    pub symbols: Vec<String>,
    /// Categories served, comma separated: linear, spot, inverse.
    #[arg(long, value_delimiter = ',', default_value = "linear,spot,inverse", value_parser = parse_category)]
    pub categories: Vec<Category>,
    /// Market messages per second across all topics.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Seed of the deterministic market.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days of synthetic candle history before the start.
    #[arg(long, default_value_t = 2)]
    pub history_days: u32,
    /// Also write every journaled trade and book update to this file (JSON lines).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Close connections with no ping and no data for this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub idle_timeout_secs: f64,
    /// Latency (ms) added to every WebSocket frame, like the network to a remote exchange.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Log format on stderr: auto (human on a terminal, JSON otherwise), json or pretty.
    #[arg(
        long,
        value_name = "auto|json|pretty",
        env = "HFT_CONNECTOR_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: crate::terminal::LogFormat,
    /// How long a stop (SIGTERM, Ctrl-C) may take before the process exits non-zero anyway.
    #[arg(
        long,
        value_name = "S",
        env = "HFT_CONNECTOR_SERVICE_SHUTDOWN_TIMEOUT_S",
        default_value_t = crate::shutdown::DEFAULT_TIMEOUT_S
    )]
    pub shutdown_timeout_s: f64,
}

fn parse_symbol(s: &str) -> Result<String, String> {
    if valid_symbol(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid symbol {s:?}: Bybit symbols are upper-case letters and digits, e.g. BTCUSDT"
        ))
    }
}

fn parse_category(s: &str) -> Result<Category, String> {
    s.parse()
}

impl SimulateArgs {
    /// The simulator config these flags describe.
    pub fn config(&self) -> Result<SimConfig, String> {
        if !(self.shutdown_timeout_s.is_finite() && self.shutdown_timeout_s > 0.0) {
            return Err("--shutdown-timeout-s must be a positive number".into());
        }
        if !(self.idle_timeout_secs.is_finite() && self.idle_timeout_secs > 0.0) {
            return Err("--idle-timeout-secs must be a positive number".into());
        }
        let cfg = SimConfig {
            listen: self.listen,
            symbols: self.symbols.clone(),
            categories: self.categories.clone(),
            rate: self.rate,
            seed: self.seed,
            history_days: self.history_days,
            journal: self.journal.clone(),
            idle_timeout: Duration::from_secs_f64(self.idle_timeout_secs),
            latency: Duration::from_millis(self.latency_ms),
            ..SimConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs the simulator in the foreground.
pub fn main(args: SimulateArgs) -> ExitCode {
    crate::logging::init(args.log_format);
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hft-connector simulate: {e}");
            return ExitCode::from(2);
        }
    };
    // Before anything else: a signal while starting is a clean stop, a second one exits at once.
    let signals = crate::shutdown::Signals::install();
    let timeout = crate::shutdown::timeout_of(args.shutdown_timeout_s);
    signals.set_bound(timeout);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hft-connector simulate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async move {
        let handle = match Simulator::start(cfg.clone()).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("hft-connector simulate: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let cats: Vec<&str> = cfg.categories.iter().map(|c| c.as_str()).collect();
        println!(
            "simulator listening on {} (symbols {}, categories {}, rate {}/s, seed {})",
            handle.addr(),
            cfg.symbols.join(","),
            cats.join(","),
            cfg.rate,
            cfg.seed
        );
        for c in &cfg.categories {
            println!("  websocket {}", handle.ws_url(*c));
        }
        println!("  rest      {}", handle.rest_url());
        println!(
            "  control   {}/sim/{{stats,journal,book,fault}}",
            handle.rest_url()
        );
        tracing::info!(event = "simulator_listening", addr = %handle.addr(), symbols = %cfg.symbols.join(","), categories = %cats.join(","), rate = cfg.rate, seed = cfg.seed);
        signals.first().await;
        tracing::info!(event = "simulator_stopping", reason = "signal", signal = signals.received(), shutdown_timeout_s = timeout.as_secs_f64());
        let tasks = crate::shutdown::Tasks::new();
        signals.watch(&tasks);
        let stop = tasks.track("simulator", handle.shutdown());
        match crate::shutdown::bounded(timeout, &tasks, stop).await {
            Ok(()) => {
                tracing::info!(event = "simulator_stopped");
                ExitCode::SUCCESS
            }
            Err(_) => ExitCode::FAILURE,
        }
    });
    rt.shutdown_timeout(crate::cli::EXIT_GRACE);
    code
}
