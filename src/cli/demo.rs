//! `hft-connector demo`: the simulator and the service wired together on this machine, a different
//! fault injected every ~30 s, the dashboard URL and what to watch printed; Ctrl-C stops all.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::Overrides;
use crate::config::ServiceConfig;
use crate::protocol::Category;
use crate::sim::{FaultKind, FaultRequest, SimConfig, Simulator};
use crate::source::Isolation;

/// Flags of `demo` (the same `--listen` and `--data-dir` as `run`).
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// HTTP listen address of the dashboard.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Data directory (SQLite store and the demo's log file).
    #[arg(long, value_name = "DIR", default_value = "./data/demo")]
    pub data_dir: PathBuf,
    /// Seconds between faults.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub fault_every: f64,
    /// Where each connection runs.
    #[arg(long, value_name = "process|in-process", default_value = "process")]
    pub isolation: Isolation,
    /// Redundant connections per feed: 1, or 2 for A/B lines merged (default: `[feed] lines`).
    #[arg(long, value_name = "1|2")]
    pub lines: Option<u8>,
    /// Format of the demo's log file: auto (JSON: a file is not a terminal), json or pretty.
    #[arg(
        long,
        value_name = "auto|json|pretty",
        env = "HFT_CONNECTOR_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: crate::terminal::LogFormat,
    /// How long the stop (Ctrl-C, SIGTERM) may take before the process exits non-zero anyway
    /// (`[service] shutdown_timeout_s`, default 10).
    #[arg(long, value_name = "S")]
    pub shutdown_timeout_s: Option<f64>,
}

/// Prints a line of the demo's narration on stdout, above the backfill bars.
macro_rules! say {
    ($($arg:tt)*) => {
        crate::terminal::bars::suspend(|| println!($($arg)*))
    };
}

/// One step of the fault tour: what is injected and what to watch.
pub struct Step {
    /// Faults injected together.
    pub faults: Vec<FaultRequest>,
    /// What the operator should see.
    pub watch: &'static str,
}

/// The tour, in order (it repeats).
pub fn tour() -> Vec<Step> {
    let lin = |k: FaultKind| {
        FaultRequest::new(k)
            .category(Category::Linear)
            .symbol("BTCUSDT")
    };
    vec![
        Step { faults: vec![lin(FaultKind::Silence).seconds(12.0)], watch: "linear BTCUSDT goes quiet while pongs still come: 'seconds since last event' climbs, the stale detector fires at 5 s (Disconnected), the feed reconnects and trades missed meanwhile are refilled from REST" },
        Step { faults: vec![FaultRequest::new(FaultKind::Close).category(Category::Spot)], watch: "spot connections get a close frame: Disconnected, then Connected within a second, reconnects +1, missed trades recovered" },
        Step { faults: vec![lin(FaultKind::Gap)], watch: "a book update id is skipped: the book is resynchronised (book_resync in the events) without reconnecting" },
        Step { faults: vec![FaultRequest::new(FaultKind::Stall).category(Category::Linear).seconds(10.0)], watch: "linear sockets stop answering anything, pings included: the pong timeout fires, the feed reconnects" },
        Step { faults: vec![FaultRequest::new(FaultKind::Reset).category(Category::Spot)], watch: "spot sockets are reset (no close frame): noticed at once, reconnected" },
        Step { faults: vec![lin(FaultKind::Restart)], watch: "Bybit-style service restart: a u=1 snapshot replaces the book" },
        Step { faults: vec![FaultRequest::new(FaultKind::Malformed).category(Category::Linear).count(3)], watch: "3 corrupt frames: errors +3, each logged with its payload, data keeps flowing" },
        Step { faults: vec![FaultRequest::new(FaultKind::RejectSubscribe).category(Category::Spot).seconds(6.0), FaultRequest::new(FaultKind::Close).category(Category::Spot)], watch: "spot reconnects but its subscriptions are refused: status Down (loud, never a silent stall) until the exchange accepts them again" },
        Step { faults: vec![FaultRequest::new(FaultKind::Refuse).seconds(5.0), FaultRequest::new(FaultKind::Close)], watch: "every connection closed and new ones refused for 5 s: Disconnected, then Down while reconnect attempts fail (retried with backoff), then everything Connected again" },
    ]
}

/// Runs the demo until Ctrl-C.
pub fn main(args: DemoArgs) -> ExitCode {
    if let Err(e) = crate::store::data_dir::prepare(&args.data_dir) {
        eprintln!(
            "hft-connector demo: data dir {} is not usable: {e}",
            args.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let log_path = args.data_dir.join("demo.log");
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "hft-connector demo: cannot write {}: {e}",
                log_path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init_to(args.log_format, std::sync::Mutex::new(log));
    // Before anything else: Ctrl-C while starting stops the demo cleanly, a second one at once.
    let signals = crate::shutdown::Signals::install();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match demo(args, log_path, &signals).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hft-connector demo: {e}");
                ExitCode::FAILURE
            }
        }
    });
    runtime.shutdown_timeout(crate::cli::EXIT_GRACE);
    // No worker outlives the process (one a line restart was still stopping, say).
    crate::shutdown::kill_children();
    code
}

async fn demo(
    args: DemoArgs,
    log_path: PathBuf,
    signals: &crate::shutdown::Signals,
) -> anyhow::Result<()> {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse()?,
        symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        categories: vec![Category::Linear, Category::Spot],
        rate: 200.0,
        history_days: 2,
        ..SimConfig::default()
    })
    .await?;
    let overrides = Overrides {
        symbols: Some(vec!["BTCUSDT".into(), "ETHUSDT".into()]),
        category: Some(vec!["linear".into(), "spot".into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(args.data_dir.clone()),
        listen: Some(args.listen.clone()),
        isolation: Some(args.isolation),
        lines: args.lines,
        backfill_days: Some(2.0),
        shutdown_timeout_s: args.shutdown_timeout_s,
        ..Overrides::default()
    };
    let mut cfg = ServiceConfig::load(&overrides, std::env::vars())?;
    // Demo timings: faults are noticed in seconds, and the backfill is slow enough to watch.
    cfg.health.check_interval_s = 0.5;
    cfg.health.stale_after_s = 5.0;
    cfg.health.grace_s = 3.0;
    cfg.health.log_interval_s = 15.0;
    cfg.heartbeat.ping_interval_s = 2.0;
    cfg.heartbeat.pong_timeout_s = 2.0;
    cfg.reconnect.max_delay_s = 5.0;
    cfg.backfill.chunk_limit = 120;
    cfg.backfill.requests_per_window = 6;
    cfg.backfill.window_s = 1.0;
    let timeout = cfg.service.shutdown_timeout();
    signals.set_bound(timeout);
    let running = match crate::app::start_service_until(cfg, signals.token()).await {
        Ok(r) => r,
        Err(crate::service::runner::ServiceError::Stopped) => {
            sim.shutdown().await;
            println!("stopped cleanly");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    signals.watch(running.tasks());
    let url = format!("http://{}/", running.addr);
    say!("hft-connector demo");
    say!("  dashboard:  {url}");
    say!(
        "  simulator:  ws://{}/v5/public/{{linear,spot}}  (faults: POST http://{}/sim/fault)",
        sim.addr(),
        sim.addr()
    );
    say!(
        "  logs:       {} ({})",
        log_path.display(),
        match args.log_format.resolve(false) {
            crate::terminal::LogFormat::Pretty => "human lines",
            _ => "JSON lines",
        }
    );
    say!("  status API: {url}api/status   metrics: {url}metrics   or: hft-connector status --url {url} --watch");
    say!("Watch the backfill bars fill (X/Y chunks), then a fault every {:.0} s. Ctrl-C stops everything.", args.fault_every);
    let steps = tour();
    let every = Duration::from_secs_f64(args.fault_every.max(1.0));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut i = 0usize;
    loop {
        tokio::select! {
            _ = signals.first() => break,
            _ = running.ended() => break,
            _ = tick.tick() => {
                let step = &steps[i % steps.len()];
                i += 1;
                for f in &step.faults {
                    let r = sim.inject(f.clone());
                    say!("[fault {i}] {} ({})", r.kind, r.detail);
                }
                say!("           watch: {}", step.watch);
            }
        }
    }
    say!("stopping...");
    signals.stopping();
    // The service and the simulator stop side by side, within the bound.
    let tasks = crate::shutdown::Tasks::new();
    signals.watch(&tasks);
    let (service, simulator) = tokio::join!(
        running.shutdown(),
        crate::shutdown::bounded(timeout, &tasks, tasks.track("simulator", sim.shutdown())),
    );
    crate::terminal::bars::clear();
    if let Err(e) = service {
        crate::shutdown::kill_children();
        return Err(e.into());
    }
    simulator?;
    println!("stopped cleanly");
    Ok(())
}
