//! `hft-connector stream`: the live feed without HTTP or store: normalized events as JSON lines on
//! stdout (for pipes and for a parent process in any language), optionally also published to NATS
//! JetStream (`--nats-url`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;

use super::run::{Isolation, RunArgs};
use crate::feed::FeedEvent;
use crate::normalized::Event;
use crate::protocol::Category;
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

/// Runs until Ctrl-C / SIGTERM, or stdout closes.
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector stream: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(stream(cfg, args.market_only))
}

/// Most events in one hand-off from a feed to the printer thread.
const PRINT_CHUNK: usize = 256;
/// Hand-offs queued for the printer.
const PRINT_QUEUE: usize = 4;

async fn stream(cfg: crate::config::ServiceConfig, market_only: bool) -> ExitCode {
    let sink = cfg
        .sinks
        .nats
        .enabled()
        .then(|| crate::sinks::NatsSink::start(cfg.sinks.nats.clone()));
    // Events go to the printer thread in chunks: one hand-off (and at most one wake-up of the
    // printer) per chunk, not per event; at most PRINT_QUEUE chunks of PRINT_CHUNK queued (1024
    // events, as before).
    let (tx, mut rx) = mpsc::channel::<(Category, Vec<FeedEvent>)>(PRINT_QUEUE);
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for feed_cfg in cfg.feeds() {
        let category = feed_cfg.feed.category;
        let mut source = match FeedSource::spawn(feed_cfg, cfg.service.isolation) {
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
        tasks.push(tokio::spawn(async move {
            let mut batch = Vec::new();
            'feed: loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    n = source.next_batch(&mut batch) => {
                        if n == 0 {
                            break;
                        }
                        if let Some(s) = &sink {
                            for ev in &batch {
                                s.offer(category, &symbols, ev);
                            }
                        }
                        if market_only {
                            batch.retain(FeedEvent::is_market);
                        }
                        // The printer waits for stdout: a slow reader slows the feed (logged as
                        // bybit_connector_queue_full), it never loses events.
                        let mut events = batch.drain(..);
                        loop {
                            let chunk: Vec<FeedEvent> = events.by_ref().take(PRINT_CHUNK).collect();
                            if chunk.is_empty() {
                                break;
                            }
                            tokio::select! {
                                _ = cancel.cancelled() => break 'feed,
                                r = tx.send((category, chunk)) => if r.is_err() { break 'feed },
                            }
                        }
                    }
                }
            }
            source.shutdown().await;
        }));
    }
    drop(tx);
    tracing::info!(event = "stream_started", symbols = %cfg.feed.symbols.join(","), categories = %cfg.categories().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","));
    let printer_cancel = cancel.clone();
    let printer = tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let print = |out: &mut std::io::BufWriter<_>, category, events: Vec<FeedEvent>| {
            events
                .into_iter()
                .all(|ev| writeln!(out, "{}", line(category, ev)).is_ok())
        };
        while let Some((category, events)) = rx.blocking_recv() {
            let mut ok = print(&mut out, category, events);
            while ok {
                match rx.try_recv() {
                    Ok((category, events)) => ok = print(&mut out, category, events),
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
        _ = crate::service::runner::shutdown_signal() => {
            tracing::info!(event = "stream_stopping", reason = "signal");
        }
        _ = cancel.cancelled() => {
            tracing::info!(event = "stream_stopping", reason = "stdout closed or feeds ended");
        }
    }
    cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = printer.await;
    if let Some(s) = sink {
        s.close(Duration::from_secs(10)).await;
    }
    ExitCode::SUCCESS
}
