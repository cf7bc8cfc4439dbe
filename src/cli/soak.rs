//! `hft-connector soak`: the simulator (a child process) and the service together, a random fault
//! every few seconds, and at the end one JSON line accounting for every trade and book against the
//! simulator's ground truth, plus the memory, descriptors and zombies of the service.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::soak_account::{footprint, parse_gap, Footprint, Ledger};
use super::soak_sim::{SimChild, SYMBOLS};
use crate::config::{Overrides, ServiceConfig};
use crate::service::runner::Running;
use crate::service::state::StreamEvent;
use crate::sim::{FaultKind, FaultRequest};
use crate::source::Isolation;

/// Flags of `soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// How long to run (s).
    #[arg(long, value_name = "N", default_value_t = 60.0)]
    pub seconds: f64,
    /// Seconds between faults (at least 2).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub fault_every: f64,
    /// Where each connection runs.
    #[arg(long, value_name = "process|in-process", default_value = "process")]
    pub isolation: Isolation,
    /// Redundant connections per feed: 1, or 2 for A/B lines merged (default: `[feed] lines`).
    #[arg(long, value_name = "1|2")]
    pub lines: Option<u8>,
    /// `feed.busy_poll_us` (µs; default 0, sleeping): soaks the low-latency mode.
    #[arg(long, value_name = "US")]
    pub busy_poll_us: Option<u64>,
    /// Seed of the market and of the fault order.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub seed: u64,
    /// Market messages per second of the simulator.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Where the store and the logs go (default: a new directory under the system's temp dir,
    /// removed after a clean run).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// How long a stop (SIGTERM, Ctrl-C) may take (`[service] shutdown_timeout_s`, default 10).
    #[arg(long, value_name = "S")]
    pub shutdown_timeout_s: Option<f64>,
}

/// A fault the soak can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Sim(FaultKind),
    /// `kill -9` of a worker process.
    WorkerKill,
    /// SIGSTOP of a worker process (it is noticed as hung and replaced).
    WorkerStop,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Sim(k) => k.as_str(),
            Fault::WorkerKill => "worker_kill9",
            Fault::WorkerStop => "worker_sigstop",
        }
    }
}

fn kinds(isolation: Isolation) -> Vec<Fault> {
    let mut v: Vec<Fault> = FaultKind::ALL.into_iter().map(Fault::Sim).collect();
    if isolation == Isolation::Process {
        v.extend([Fault::WorkerKill, Fault::WorkerStop]);
    }
    v
}

/// Timers scaled down so that every fault is noticed and healed within a few seconds.
const STALE_S: f64 = 3.0;
const PING_S: f64 = 1.0;
const PONG_S: f64 = 1.0;

fn service_config(
    args: &SoakArgs,
    sim: &SimChild,
    dir: &std::path::Path,
) -> anyhow::Result<ServiceConfig> {
    let overrides = Overrides {
        symbols: Some(SYMBOLS.iter().map(|s| s.to_string()).collect()),
        category: Some(vec!["linear".into()]),
        depth: Some(50),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr)),
        rest_url: Some(format!("http://{}", sim.addr)),
        data_dir: Some(dir.join("data")),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(args.isolation),
        lines: args.lines,
        busy_poll_us: args.busy_poll_us,
        backfill_days: Some(0.0),
        shutdown_timeout_s: args.shutdown_timeout_s,
        ..Overrides::default()
    };
    let mut cfg = ServiceConfig::load(&overrides, std::iter::empty())?;
    cfg.health.check_interval_s = 0.25;
    cfg.health.stale_after_s = STALE_S;
    cfg.health.grace_s = 1.5;
    cfg.health.log_interval_s = 30.0;
    cfg.heartbeat.ping_interval_s = PING_S;
    cfg.heartbeat.pong_timeout_s = PONG_S;
    cfg.reconnect.initial_delay_s = 0.1;
    cfg.reconnect.max_delay_s = 1.0;
    cfg.reconnect.stable_after_s = 5.0;
    cfg.reconnect.connect_timeout_s = 2.0;
    cfg.validate()?;
    Ok(cfg)
}

/// Runs the soak; exits non-zero when a trade was lost or duplicated or a book differed.
pub fn main(args: SoakArgs) -> ExitCode {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        eprintln!("hft-connector soak: --seconds must be a positive number");
        return ExitCode::from(2);
    }
    if !(args.fault_every.is_finite() && args.fault_every >= 2.0) {
        eprintln!("hft-connector soak: --fault-every must be at least 2 seconds (faults need time to heal)");
        return ExitCode::from(2);
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        eprintln!("hft-connector soak: --rate must be a positive number");
        return ExitCode::from(2);
    }
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("hft-soak-{}", std::process::id())));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("hft-connector soak: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let log_path = dir.join("soak.log");
    match std::fs::File::create(&log_path) {
        Ok(f) => crate::logging::init_json_to(Mutex::new(f)),
        Err(e) => {
            eprintln!(
                "hft-connector soak: cannot write {}: {e}",
                log_path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    eprintln!("hft-connector soak: logs in {}", log_path.display());
    // SIGTERM / Ctrl-C at any moment stops the service and the simulator within the bound (exit
    // 1: no verdict); a second one exits at once.
    let signals = crate::shutdown::Signals::install();
    if let Some(t) = args.shutdown_timeout_s {
        signals.set_bound(crate::shutdown::timeout_of(t));
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match soak(args, dir, &signals).await {
            Ok(Verdict::Ok) => ExitCode::SUCCESS,
            Ok(Verdict::Failed) => ExitCode::FAILURE,
            Ok(Verdict::Interrupted) => {
                eprintln!(
                    "hft-connector soak: interrupted by {}: no verdict",
                    signals.received().unwrap_or("a signal")
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("hft-connector soak: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    runtime.shutdown_timeout(crate::cli::EXIT_GRACE);
    // No worker outlives the process (one a line restart was still stopping, say).
    crate::shutdown::kill_children();
    code
}

/// How a soak ended.
enum Verdict {
    /// Nothing lost, duplicated or mismatched.
    Ok,
    /// Something was.
    Failed,
    /// Stopped by a signal before the end: no verdict.
    Interrupted,
}

/// `fut`, unless `stop` is cancelled first (`None`).
async fn unless_stopped<F: std::future::Future>(
    stop: &tokio_util::sync::CancellationToken,
    fut: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => None,
        out = fut => Some(out),
    }
}

/// Counts what the service delivers, from its live event stream.
fn observe(running: &Running, ledger: Arc<Mutex<Ledger>>) -> tokio::task::JoinHandle<()> {
    let mut rx = running.state.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = rx.recv().await;
            let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            match ev {
                Ok(StreamEvent::Trade(t)) => l.symbol(&t.symbol).deliver(&t.id),
                Ok(StreamEvent::Log(e)) if e.event == "bybit_connector_trade_gap_unrecoverable" => {
                    if let (Some(s), Some(gap)) = (e.symbol.as_deref(), parse_gap(&e.detail)) {
                        l.symbol(s).unrecoverable_gaps.push(gap);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => l.observer_lagged += n,
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// The result of one settle: the market paused until the service caught up with the truth.
#[derive(Debug, Default)]
struct Settle {
    books_compared: u64,
    mismatches: u64,
    timed_out: bool,
}

/// Pauses the market, waits until every symbol's newest journal trade was delivered and every book
/// equals the true book (or `timeout`), then resumes the market.
async fn settle(
    sim: &SimChild,
    running: &Running,
    ledger: &Arc<Mutex<Ledger>>,
    timeout: Duration,
) -> anyhow::Result<Settle> {
    sim.post("/sim/pause").await?;
    let deadline = Instant::now() + timeout;
    let mut result = Settle::default();
    loop {
        let mut unequal = 0u64;
        let mut caught_up = true;
        let keys = running.state.keys();
        for key in &keys {
            let since = ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .symbol(&key.symbol)
                .journal_last_ms;
            let trades = sim.trades(&key.symbol, since).await?;
            let truth = sim.book(&key.symbol).await?;
            let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            let s = l.symbol(&key.symbol);
            s.add_journal(trades);
            caught_up &= s.caught_up();
            unequal += u64::from(
                !running
                    .state
                    .book(key)
                    .is_some_and(|b| same_book(&b, &truth)),
            );
        }
        let done = unequal == 0 && caught_up;
        if done || Instant::now() >= deadline {
            result.books_compared = keys.len() as u64;
            result.mismatches = unequal;
            result.timed_out = !done;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.post("/sim/resume").await?;
    Ok(result)
}

/// True when the service's book is the true book: same update id, same levels.
fn same_book(b: &crate::book::OrderBook, truth: &crate::sim::TrueBook) -> bool {
    let pairs =
        |v: &[crate::protocol::ws::Level]| v.iter().map(|l| (l.price, l.qty)).collect::<Vec<_>>();
    b.last_u() == Some(truth.u) && pairs(b.bids()) == truth.bids && pairs(b.asks()) == truth.asks
}

/// Injects one fault; returns false when it could not be applied (no worker to signal).
async fn inject(
    fault: Fault,
    sim: &SimChild,
    running: &Running,
    rng: &mut SmallRng,
    every: f64,
    one_line: bool,
) -> anyhow::Result<bool> {
    let d = (every * 0.3).clamp(0.5, 3.0);
    let symbol = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
    let req = |k: FaultKind| FaultRequest::new(k);
    let faults = match fault {
        Fault::WorkerKill | Fault::WorkerStop => {
            let Some(pid) = running.state.statuses().iter().find_map(|s| s.pid) else {
                return Ok(false);
            };
            let sig = if fault == Fault::WorkerKill {
                nix::sys::signal::Signal::SIGKILL
            } else {
                nix::sys::signal::Signal::SIGSTOP
            };
            let pid = i32::try_from(pid)?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)?;
            tracing::warn!(event = "soak_fault", kind = fault.name(), pid);
            return Ok(true);
        }
        Fault::Sim(k) => match k {
            // Half the time a dead socket that lasts until the heartbeat notices it, half the time
            // frames lost on a socket that lives on (shorter than ping + pong: only the book's
            // gap shows it, and the trades of the hole are refilled from REST).
            FaultKind::Stall if rng.random_bool(0.5) => {
                vec![req(k).seconds(PING_S + PONG_S + 1.0)]
            }
            FaultKind::Stall => vec![req(k).seconds((PING_S + PONG_S) * 0.4)],
            // Longer than the stale threshold, so that it is detected.
            FaultKind::Silence => vec![req(k).seconds(STALE_S + 1.0).symbol(symbol)],
            FaultKind::Gap | FaultKind::Restart => vec![req(k).symbol(symbol)],
            FaultKind::Malformed => vec![req(k).count(2)],
            FaultKind::RejectSubscribe | FaultKind::Refuse => {
                vec![req(k).seconds(d), req(FaultKind::Close)]
            }
            // REST answers errors while the feed gap-fills after the close.
            FaultKind::RestError => vec![req(k).count(2).status(500), req(FaultKind::Close)],
            FaultKind::Slow => vec![req(k).millis(200).seconds(d)],
            _ => vec![req(k)],
        },
    };
    for f in &faults {
        // With A/B lines a fault breaks one line (the oldest connection), as the issue promises.
        let f = match one_line {
            true => f.clone().max_connections(1),
            false => f.clone(),
        };
        sim.fault(&f).await?;
    }
    tracing::warn!(event = "soak_fault", kind = fault.name());
    Ok(true)
}

/// Stops the service (within its bound) and the simulator side by side, after a signal.
async fn interrupted(
    running: Running,
    sim: SimChild,
    signals: &crate::shutdown::Signals,
) -> anyhow::Result<Verdict> {
    tracing::info!(
        event = "soak_stopping",
        reason = "signal",
        signal = signals.received(),
        shutdown_timeout_s = running.shutdown_timeout().as_secs_f64(),
    );
    signals.watch(running.tasks());
    let (service, ()) = tokio::join!(running.shutdown(), sim.stop());
    if service.is_err() {
        crate::shutdown::kill_children();
    }
    service?;
    Ok(Verdict::Interrupted)
}

async fn soak(
    args: SoakArgs,
    dir: PathBuf,
    signals: &crate::shutdown::Signals,
) -> anyhow::Result<Verdict> {
    let stop = signals.token();
    let sim = SimChild::spawn(args.rate, args.seed, &dir).await?;
    let cfg = service_config(&args, &sim, &dir)?;
    signals.set_bound(cfg.service.shutdown_timeout());
    let cfg_lines = cfg.feed.lines;
    let cfg_busy_poll_us = cfg.feed.busy_poll_us;
    // Trades from before the service subscribed are not its to deliver.
    sim.post("/sim/pause").await?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for s in SYMBOLS {
        let before = sim.trades(s, None).await?;
        ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .symbol(s)
            .ignore(before);
    }
    let running = match crate::app::start_service_until(cfg, stop.clone()).await {
        Ok(r) => r,
        Err(crate::service::runner::ServiceError::Stopped) => {
            sim.stop().await;
            return Ok(Verdict::Interrupted);
        }
        Err(e) => return Err(e.into()),
    };
    let observer = observe(&running, ledger.clone());
    let start = Instant::now();
    while !running
        .state
        .statuses()
        .iter()
        .all(|s| s.status == "connected")
    {
        if stop.is_cancelled() {
            observer.abort();
            return interrupted(running, sim, signals).await;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the service did not connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.post("/sim/resume").await?;
    let settle_timeout = Duration::from_secs_f64((args.fault_every * 3.0).max(20.0));
    let Some(warm) = unless_stopped(&stop, settle(&sim, &running, &ledger, settle_timeout)).await
    else {
        observer.abort();
        return interrupted(running, sim, signals).await;
    };
    let warm = warm?;
    let fp_start = footprint(Some(sim.pid));
    // One sample per minute (service RSS kB, workers RSS kB, service descriptors): is it flat?
    let mut samples: Vec<[u64; 3]> = Vec::new();
    let sample = |fp: Footprint| [fp.service.rss_kb, fp.workers.rss_kb, fp.service.fds];
    samples.push(sample(fp_start));
    let mut next_sample = Instant::now() + Duration::from_secs(60);

    let mut rng = SmallRng::seed_from_u64(args.seed);
    let kinds = kinds(args.isolation);
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut checks, mut mismatches, mut timeouts) = (
        warm.books_compared,
        warm.mismatches,
        u64::from(warm.timed_out),
    );
    let every = Duration::from_secs_f64(args.fault_every);
    let end = Instant::now() + Duration::from_secs_f64(args.seconds);
    let mut next = Instant::now() + every;
    while next < end {
        let Some(s) = unless_stopped(&stop, async {
            tokio::time::sleep_until(next).await;
            settle(&sim, &running, &ledger, settle_timeout).await
        })
        .await
        else {
            observer.abort();
            return interrupted(running, sim, signals).await;
        };
        let s = s?;
        checks += s.books_compared;
        if Instant::now() >= next_sample {
            samples.push(sample(footprint(Some(sim.pid))));
            next_sample += Duration::from_secs(60);
        }
        mismatches += s.mismatches;
        timeouts += u64::from(s.timed_out);
        let fault = kinds[rng.random_range(0..kinds.len())];
        let one_line = cfg_lines > 1;
        let Some(injected) = unless_stopped(
            &stop,
            inject(fault, &sim, &running, &mut rng, args.fault_every, one_line),
        )
        .await
        else {
            observer.abort();
            return interrupted(running, sim, signals).await;
        };
        if injected? {
            *faults.entry(fault.name()).or_insert(0) += 1;
        }
        next = Instant::now().max(next) + every;
    }
    // The last fault heals, then the final account.
    let Some(last) = unless_stopped(&stop, async {
        tokio::time::sleep_until(end.max(Instant::now() + every)).await;
        settle(&sim, &running, &ledger, settle_timeout).await
    })
    .await
    else {
        observer.abort();
        return interrupted(running, sim, signals).await;
    };
    let last = last?;
    checks += last.books_compared;
    mismatches += last.mismatches;
    timeouts += u64::from(last.timed_out);
    let fp_end: Footprint = footprint(Some(sim.pid));
    // Every symbol of a connection reports the same counters: one connection's worth.
    let statuses = running.state.statuses();
    let restarts = statuses
        .iter()
        .map(|s| s.worker_restarts)
        .max()
        .unwrap_or(0);
    let reconnects = statuses.iter().map(|s| s.reconnects).max().unwrap_or(0);
    if let Err(e) = running.shutdown().await {
        crate::shutdown::kill_children();
        return Err(e.into());
    }
    observer.abort();
    sim.stop().await;

    let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
    let t = l.totals();
    if t.lost > 0 {
        let lost_path = dir.join("lost.txt");
        let mut text = String::new();
        for (symbol, s) in &l.symbols {
            for (id, ts) in s.lost() {
                text.push_str(&format!("{symbol} {id} {ts}\n"));
            }
        }
        match std::fs::write(&lost_path, text) {
            Ok(()) => eprintln!(
                "hft-connector soak: lost trades listed in {}",
                lost_path.display()
            ),
            Err(e) => eprintln!(
                "hft-connector soak: cannot write {}: {e}",
                lost_path.display()
            ),
        }
    }
    let ok = t.lost == 0 && t.duplicated == 0 && mismatches == 0 && l.observer_lagged == 0;
    // A directory of our own choosing is removed after a clean run; kept (logs) otherwise.
    let keep = args.data_dir.is_some() || !ok;
    let line = json!({
        "seconds": args.seconds,
        "fault_every": args.fault_every,
        "isolation": args.isolation.as_str(),
        "lines": cfg_lines,
        "busy_poll_us": cfg_busy_poll_us,
        "seed": args.seed,
        "rate": args.rate,
        "trades_in_journal": t.journal,
        "trades_delivered": t.delivered,
        "lost": t.lost,
        "unrecoverable": t.unrecoverable,
        "duplicated": t.duplicated,
        "unexpected": t.unexpected,
        "book_checks": checks,
        "book_mismatches": mismatches,
        "settle_timeouts": timeouts,
        "observer_lagged": l.observer_lagged,
        "faults": faults,
        "faults_total": faults.values().sum::<u64>(),
        "reconnects": reconnects,
        "worker_restarts": restarts,
        "rss_kb": {"start": fp_start.service.rss_kb, "end": fp_end.service.rss_kb},
        "per_minute": {"rss_kb": samples.iter().map(|s| s[0]).collect::<Vec<_>>(), "workers_rss_kb": samples.iter().map(|s| s[1]).collect::<Vec<_>>(), "open_fds": samples.iter().map(|s| s[2]).collect::<Vec<_>>()},
        "open_fds": {"start": fp_start.service.fds, "end": fp_end.service.fds},
        "workers": {"start": fp_start.worker_count, "end": fp_end.worker_count},
        "workers_rss_kb": {"start": fp_start.workers.rss_kb, "end": fp_end.workers.rss_kb},
        "workers_open_fds": {"start": fp_start.workers.fds, "end": fp_end.workers.fds},
        "zombies": fp_end.zombies,
        "ok": ok,
        "log": keep.then(|| dir.join("soak.log")),
    });
    println!("{line}");
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(if ok { Verdict::Ok } else { Verdict::Failed })
}
