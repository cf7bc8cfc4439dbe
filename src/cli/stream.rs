//! `hft-connector stream`: the live feed without HTTP or store: normalized events as JSON lines on
//! stdout (for pipes and for a parent process in any language), optionally also published to NATS
//! JetStream (`--nats-url`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tokio::sync::mpsc;

use super::run::{Isolation, RunArgs};
use crate::feed::FeedEvent;
use crate::normalized::Event;
use crate::protocol::Category;
use crate::shutdown::{Signals, Tasks};
use crate::source::FeedSource;

/// Flags of `stream` (the feed flags of `run`; each overrides the config file and the environment).
#[derive(Debug, Clone, Args, Default)]
pub struct StreamArgs {
    /// TOML configuration file (the same as `run`'s; `[http]`, `[store]` and `[backfill]` are ignored).
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
    /// Where each connection runs.
    #[arg(long, value_name = "process|in-process")]
    pub isolation: Option<Isolation>,
    /// Print only trades and books (no lifecycle events).
    #[arg(long)]
    pub market_only: bool,
    /// Also publish to NATS JetStream (`[sinks.nats]`).
    #[command(flatten)]
    pub nats: crate::cli::nats_args::NatsArgs,
    /// How long a stop may take before what is left is abandoned and the process exits non-zero
    /// (`[service] shutdown_timeout_s`, default 10).
    #[arg(long, value_name = "S")]
    pub shutdown_timeout_s: Option<f64>,
}

impl StreamArgs {
    fn run_args(&self) -> RunArgs {
        RunArgs {
            config: self.config.clone(),
            symbols: self.symbols.clone(),
            category: self.category.clone(),
            depth: self.depth,
            ws_url: self.ws_url.clone(),
            rest_url: self.rest_url.clone(),
            isolation: self.isolation,
            nats: self.nats.clone(),
            shutdown_timeout_s: self.shutdown_timeout_s,
            ..RunArgs::default()
        }
    }
}

/// One output line: trades and books in the normalized schema (with `category`), lifecycle events
/// as the feed's JSON (`{"type":"connected",...}`) with `category`.
pub fn line(category: Category, ev: FeedEvent) -> String {
    let cat = category.as_str().to_string();
    match ev {
        FeedEvent::Trade(mut t) => {
            t.category = Some(cat);
            Event::Trade(*t).to_json()
        }
        FeedEvent::Book(mut b) => {
            b.category = Some(cat);
            Event::Book(*b).to_json()
        }
        other => match serde_json::to_value(&other) {
            Ok(serde_json::Value::Object(mut o)) => {
                o.insert("category".into(), cat.into());
                serde_json::Value::Object(o).to_string()
            }
            _ => String::new(),
        },
    }
}

/// Runs until Ctrl-C / SIGTERM, or stdout closes; then stops within `[service]
/// shutdown_timeout_s` (exit 1 and `service_shutdown_incomplete` when that runs out, e.g. with a
/// reader that stopped reading; a second signal exits at once).
pub fn main(args: StreamArgs) -> ExitCode {
    crate::logging::init_json();
    let cfg =
        match crate::config::ServiceConfig::load(&args.run_args().overrides(), std::env::vars()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hft-connector stream: {e}");
                return ExitCode::from(2);
            }
        };
    let signals = Signals::install();
    signals.set_bound(cfg.service.shutdown_timeout());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector stream: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(stream(cfg, args.market_only, &signals));
    // A printer blocked on a reader that stopped reading must not hold the exit up.
    runtime.shutdown_timeout(crate::cli::EXIT_GRACE);
    // No worker outlives the process (one a line restart was still stopping, say).
    crate::shutdown::kill_children();
    code
}

async fn stream(
    cfg: crate::config::ServiceConfig,
    market_only: bool,
    signals: &Signals,
) -> ExitCode {
    let tasks = Tasks::new();
    signals.watch(&tasks);
    let sink = cfg
        .sinks
        .nats
        .enabled()
        .then(|| crate::sinks::NatsSink::start(cfg.sinks.nats.clone()));
    let (tx, mut rx) = mpsc::channel::<(Category, FeedEvent)>(1024);
    let cancel = signals.token().child_token();
    let opts = crate::app::worker_options(&cfg);
    let mut feeds = Vec::new();
    for feed_cfg in cfg.feeds() {
        let category = feed_cfg.feed.category;
        let mut source = match FeedSource::spawn_with(feed_cfg, cfg.service.isolation, opts.clone())
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hft-connector stream: cannot start the {category} feed: {e}");
                return ExitCode::from(2);
            }
        };
        let tx = tx.clone();
        let cancel = cancel.clone();
        let sink = sink.clone();
        let symbols = cfg.feed.symbols.clone();
        feeds.push(tasks.spawn(format!("feed {category}"), async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    ev = source.next() => {
                        let Some(ev) = ev else { break };
                        if let Some(s) = &sink {
                            s.offer(category, &symbols, &ev);
                        }
                        if market_only && !ev.is_market() {
                            continue;
                        }
                        // The printer waits for stdout: a slow reader slows the feed (logged as
                        // bybit_connector_queue_full), it never loses events.
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            r = tx.send((category, ev)) => if r.is_err() { break },
                        }
                    }
                }
            }
            source.shutdown().await;
        }));
    }
    drop(tx);
    tracing::info!(event = "stream_started", symbols = %cfg.feed.symbols.join(","), categories = %cfg.categories().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","), shutdown_timeout_s = cfg.service.shutdown_timeout_s);
    let printer_cancel = cancel.clone();
    let printer = tasks.spawn_blocking("stdout", move || {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        while let Some((category, ev)) = rx.blocking_recv() {
            let mut ok = writeln!(out, "{}", line(category, ev)).is_ok();
            while ok {
                match rx.try_recv() {
                    Ok((category, ev)) => ok = writeln!(out, "{}", line(category, ev)).is_ok(),
                    Err(_) => break,
                }
            }
            if !ok || out.flush().is_err() {
                // The reader went away (e.g. `| head`): stop quietly.
                printer_cancel.cancel();
                return;
            }
        }
        // Every feed ended.
        printer_cancel.cancel();
    });
    tokio::select! {
        _ = signals.first() => {
            tracing::info!(event = "stream_stopping", reason = "signal", signal = signals.received(), shutdown_timeout_s = cfg.service.shutdown_timeout_s);
        }
        _ = cancel.cancelled() => {
            tracing::info!(event = "stream_stopping", reason = "stdout closed or feeds ended", shutdown_timeout_s = cfg.service.shutdown_timeout_s);
        }
    }
    signals.stopping();
    cancel.cancel();
    let timeout = cfg.service.shutdown_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    // The feeds stop (workers included), the printer writes what they handed it, the NATS sink
    // flushes within what the bound leaves.
    let stop = async {
        for f in feeds {
            let _ = f.await;
        }
        if let Some(s) = sink {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tasks.track("nats_sink", s.close(left / 2)).await;
        }
        let _ = printer.await;
    };
    match crate::shutdown::bounded(timeout, &tasks, stop).await {
        Ok(()) => {
            tracing::info!(event = "stream_stopped");
            ExitCode::SUCCESS
        }
        Err(_) => {
            crate::shutdown::kill_children();
            ExitCode::FAILURE
        }
    }
}
