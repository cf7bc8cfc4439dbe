//! The fault matrix of RELIABILITY.md: every simulator fault kind (plus worker `kill -9` and
//! SIGSTOP in process mode) x both isolation modes, each measured on a fresh simulator and feed:
//! time from injection to detection, time to live market data again, then (market paused) trades
//! lost and duplicated against the simulator's journal and whether the book equals the true book.
//! `cargo run --example fault_matrix -- [in-process|process|both] [ROUNDS]` prints a Markdown table
//! (each cell run ROUNDS times, default 3, seeds 1..=ROUNDS: median times, summed counts); a third
//! argument keeps only the fault kinds whose name contains it (e.g. `slow`).
//! The worker executable is `hft-connector` next to `examples/` (build it first: `cargo build`).
//!
//! The last column (issue 28) is a stop during the fault: on another fresh simulator and feed,
//! the fault is injected, and once the feed noticed it (at most 300 ms later for `slow`, which
//! breaks nothing) `FeedSource::shutdown` is called while the fault is still in force; the
//! column is the longest of the rounds' shutdowns (a worker's included: SIGTERM, SIGKILL after
//! its 2 s grace period). A shutdown longer than [`STOP_BOUND`] counts as a failure.

use std::collections::HashSet;
use std::time::Duration;

use hft_connector::feed::{FeedConfig, FeedEvent, ResyncReason};
use hft_connector::normalized::{Event, TradeEvent};
use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};
use hft_connector::source::{FeedSource, Isolation};
use hft_connector::worker::WorkerOptions;
use tokio::time::Instant;

const SYMBOL: &str = "BTCUSDT";
/// Stale threshold (s); pings every 0.5 s, pong timeout 0.5 s.
const STALE_S: f64 = 1.0;
const WAIT: Duration = Duration::from_secs(30);
/// The longest a feed's shutdown during a fault may take (the service's default
/// `shutdown_timeout_s` is 10 s, and a feed is one of the things it stops).
const STOP_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Sim(FaultKind),
    /// A stall shorter than ping + pong timeout: frames are dropped, the socket lives on.
    ShortStall,
    WorkerKill,
    WorkerStop,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Sim(k) => k.as_str(),
            Case::ShortStall => "stall (short: 0.75 s)",
            Case::WorkerKill => "worker kill -9",
            Case::WorkerStop => "worker SIGSTOP",
        }
    }

    fn requests(self) -> Vec<FaultRequest> {
        let r = FaultRequest::new;
        match self {
            Case::Sim(k @ (FaultKind::Stall | FaultKind::Silence)) => {
                vec![r(k).seconds(STALE_S * 4.0)]
            }
            Case::Sim(k @ FaultKind::Malformed) => vec![r(k).count(1)],
            Case::Sim(k @ (FaultKind::RejectSubscribe | FaultKind::Refuse)) => {
                vec![r(k).seconds(STALE_S), r(FaultKind::Close)]
            }
            Case::Sim(k @ FaultKind::RestError) => {
                vec![r(k).count(2).status(500), r(FaultKind::Close)]
            }
            Case::Sim(k @ FaultKind::Slow) => vec![r(k).millis(200).seconds(STALE_S)],
            Case::Sim(k) => vec![r(k)],
            Case::ShortStall => vec![r(FaultKind::Stall).seconds(0.75)],
            Case::WorkerKill | Case::WorkerStop => Vec::new(),
        }
    }

    /// The event that shows the feed noticed (none for `slow`: nothing breaks, data is late).
    fn detected(self, ev: &FeedEvent) -> bool {
        match self {
            Case::Sim(FaultKind::Gap) => matches!(
                ev,
                FeedEvent::Resync {
                    reason: ResyncReason::Gap,
                    ..
                }
            ),
            Case::Sim(FaultKind::Restart) => matches!(
                ev,
                FeedEvent::Resync {
                    reason: ResyncReason::Restart,
                    ..
                }
            ),
            Case::Sim(FaultKind::Malformed) => matches!(ev, FeedEvent::Malformed { .. }),
            Case::Sim(FaultKind::RejectSubscribe) => {
                matches!(ev, FeedEvent::SubscriptionRefused { .. })
            }
            Case::Sim(FaultKind::Slow) => false,
            // Either the heartbeat fires, or the lost frames show as a book gap.
            Case::ShortStall => matches!(
                ev,
                FeedEvent::Disconnected { .. }
                    | FeedEvent::Resync {
                        reason: ResyncReason::Gap,
                        ..
                    }
            ),
            _ => matches!(ev, FeedEvent::Disconnected { .. }),
        }
    }
}

fn cases(isolation: Isolation) -> Vec<Case> {
    let mut v: Vec<Case> = FaultKind::ALL.into_iter().map(Case::Sim).collect();
    v.push(Case::ShortStall);
    if isolation == Isolation::Process {
        v.extend([Case::WorkerKill, Case::WorkerStop]);
    }
    v
}

struct Row {
    detected: Option<Duration>,
    data_again: Option<Duration>,
    journal: usize,
    lost: usize,
    duplicated: usize,
    book_equal: bool,
}

fn journal_trades(sim: &SimHandle) -> Vec<TradeEvent> {
    sim.journal(Some(SYMBOL), Some("trade"), None)
        .into_iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// The next event before `deadline` (trades are also recorded).
async fn next_event(
    feed: &mut FeedSource,
    trades: &mut Vec<TradeEvent>,
    deadline: Instant,
) -> Option<FeedEvent> {
    let ev = tokio::time::timeout_at(deadline, feed.next())
        .await
        .ok()
        .flatten();
    if let Some(FeedEvent::Trade(t)) = &ev {
        trades.push((**t).clone());
    }
    ev
}

async fn run_case(
    case: Case,
    isolation: Isolation,
    worker: &std::path::Path,
    seed: u64,
) -> anyhow::Result<Row> {
    let sim = Simulator::start(SimConfig {
        symbols: vec![SYMBOL.into()],
        categories: vec![Category::Linear],
        rate: 300.0,
        ..SimConfig::for_tests(seed)
    })
    .await?;
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        Category::Linear,
        &[SYMBOL],
    )
    .with_fast_timers(STALE_S);
    cfg.feed.depth = 50;
    let mut feed = FeedSource::spawn_with(cfg, isolation, WorkerOptions::with_program(worker))?;
    let mut trades: Vec<TradeEvent> = Vec::new();
    // Flowing: connected, a book and a live trade.
    let deadline = Instant::now() + WAIT;
    let (mut book, mut trade) = (false, false);
    while !(book && trade && feed.is_connected()) {
        match next_event(&mut feed, &mut trades, deadline).await {
            Some(FeedEvent::Book(_)) => book = true,
            Some(FeedEvent::Trade(t)) if !t.recovered => trade = true,
            Some(_) => {}
            None => anyhow::bail!("{}: no data before the fault", case.name()),
        }
    }
    let t0 = Instant::now();
    match case {
        Case::WorkerKill | Case::WorkerStop => {
            let pid = feed.pid().ok_or_else(|| anyhow::anyhow!("no worker pid"))?;
            let sig = if case == Case::WorkerKill {
                nix::sys::signal::Signal::SIGKILL
            } else {
                nix::sys::signal::Signal::SIGSTOP
            };
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid)?), sig)?;
        }
        Case::Sim(_) | Case::ShortStall => {
            for f in case.requests() {
                sim.inject(f);
            }
        }
    }
    let (mut detected, mut data_again) = (None, None);
    let deadline = t0 + WAIT;
    while let Some(ev) = next_event(&mut feed, &mut trades, deadline).await {
        if detected.is_none() && case.detected(&ev) {
            detected = Some(t0.elapsed());
            continue;
        }
        let live =
            matches!(&ev, FeedEvent::Book(_)) || matches!(&ev, FeedEvent::Trade(t) if !t.recovered);
        let noticed = detected.is_some() || case == Case::Sim(FaultKind::Slow);
        if noticed && live {
            data_again = Some(t0.elapsed());
            break;
        }
    }
    // Timed faults end, then the market stops: the feed must reach the journal and the true book.
    tokio::time::sleep(Duration::from_secs_f64(STALE_S)).await;
    sim.pause_market();
    let last = journal_trades(&sim).last().map(|t| t.id.clone());
    let deadline = Instant::now() + WAIT;
    let truth_u = || sim.book(Category::Linear, SYMBOL, 50).map(|b| b.u);
    loop {
        let caught_up = last
            .as_ref()
            .is_none_or(|id| trades.iter().any(|t| &t.id == id));
        if caught_up && feed.book(SYMBOL).and_then(|b| b.last_u()) == truth_u() {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        let _ = next_event(
            &mut feed,
            &mut trades,
            Instant::now() + Duration::from_millis(50),
        )
        .await;
    }
    let truth = sim
        .book(Category::Linear, SYMBOL, 50)
        .ok_or_else(|| anyhow::anyhow!("no true book"))?;
    let book_equal = feed.book(SYMBOL).is_some_and(|b| {
        let pairs = |v: &[hft_connector::protocol::ws::Level]| {
            v.iter().map(|l| (l.price, l.qty)).collect::<Vec<_>>()
        };
        b.last_u() == Some(truth.u)
            && pairs(b.bids()) == truth.bids
            && pairs(b.asks()) == truth.asks
    });
    let first_ts = trades.first().map_or(0, |t| t.ts_ms);
    let journal: Vec<TradeEvent> = journal_trades(&sim)
        .into_iter()
        .filter(|t| t.ts_ms > first_ts)
        .collect();
    let mut seen = HashSet::new();
    let duplicated = trades.iter().filter(|t| !seen.insert(t.id.clone())).count();
    let missing: Vec<&TradeEvent> = journal.iter().filter(|t| !seen.contains(&t.id)).collect();
    for t in &missing {
        eprintln!(
            "{} {}: lost trade {} at {} (first received at {first_ts}, {} received, last journal {:?})",
            case.name(),
            isolation.as_str(),
            t.id,
            t.ts_ms,
            trades.len(),
            last
        );
    }
    let lost = missing.len();
    feed.shutdown().await;
    sim.shutdown().await;
    Ok(Row {
        detected,
        data_again,
        journal: journal.len(),
        lost,
        duplicated,
        book_equal,
    })
}

/// Starts a fresh simulator and feed, injects the fault and shuts the feed down while the fault
/// is in force; returns how long the shutdown took.
async fn stop_case(
    case: Case,
    isolation: Isolation,
    worker: &std::path::Path,
    seed: u64,
) -> anyhow::Result<Duration> {
    let sim = Simulator::start(SimConfig {
        symbols: vec![SYMBOL.into()],
        categories: vec![Category::Linear],
        rate: 300.0,
        ..SimConfig::for_tests(seed)
    })
    .await?;
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        Category::Linear,
        &[SYMBOL],
    )
    .with_fast_timers(STALE_S);
    cfg.feed.depth = 50;
    let mut feed = FeedSource::spawn_with(cfg, isolation, WorkerOptions::with_program(worker))?;
    let mut trades = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !feed.is_connected() {
        if next_event(&mut feed, &mut trades, deadline).await.is_none() {
            anyhow::bail!("{}: never connected", case.name());
        }
    }
    match case {
        Case::WorkerKill | Case::WorkerStop => {
            let pid = feed.pid().ok_or_else(|| anyhow::anyhow!("no worker pid"))?;
            let sig = if case == Case::WorkerKill {
                nix::sys::signal::Signal::SIGKILL
            } else {
                nix::sys::signal::Signal::SIGSTOP
            };
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid)?), sig)?;
        }
        Case::Sim(_) | Case::ShortStall => {
            for f in case.requests() {
                sim.inject(f);
            }
        }
    }
    // Noticed (the fault is then still in force: timed ones last longer than detection takes).
    let noticed_by = Instant::now()
        + match case {
            Case::Sim(FaultKind::Slow) => Duration::from_millis(300),
            _ => WAIT,
        };
    while let Some(ev) = next_event(&mut feed, &mut trades, noticed_by).await {
        if case.detected(&ev) {
            break;
        }
    }
    let t0 = Instant::now();
    feed.shutdown().await;
    let took = t0.elapsed();
    sim.shutdown().await;
    Ok(took)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("n/a".into(), |d| {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let modes = match args.next().as_deref() {
        Some("in-process") => vec![Isolation::InProcess],
        Some("process") => vec![Isolation::Process],
        None | Some("both") => vec![Isolation::InProcess, Isolation::Process],
        Some(other) => anyhow::bail!("unknown mode {other:?}: in-process, process or both"),
    };
    let rounds: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let only = args.next();
    let worker = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("hft-connector"))
        .ok_or_else(|| anyhow::anyhow!("cannot locate hft-connector"))?;
    println!("| fault | isolation | detected after (median) | data again after (median) | journal trades | lost | duplicated | book = truth | stop during this fault (max) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut failures = 0;
    for isolation in modes {
        for case in cases(isolation) {
            if only.as_deref().is_some_and(|o| !case.name().contains(o)) {
                continue;
            }
            let mut rows = Vec::new();
            let mut stop = Duration::ZERO;
            for seed in 1..=rounds {
                rows.push(run_case(case, isolation, &worker, seed).await?);
                stop = stop.max(stop_case(case, isolation, &worker, seed).await?);
            }
            let median = |f: &dyn Fn(&Row) -> Option<Duration>| {
                let mut v: Vec<Duration> = rows.iter().filter_map(f).collect();
                v.sort();
                v.get(v.len() / 2).copied()
            };
            let sum = |f: &dyn Fn(&Row) -> usize| rows.iter().map(f).sum::<usize>();
            let (lost, duplicated) = (sum(&|r| r.lost), sum(&|r| r.duplicated));
            let equal = rows.iter().filter(|r| r.book_equal).count();
            failures +=
                usize::from(lost > 0 || duplicated > 0 || equal < rows.len() || stop > STOP_BOUND);
            let again = if case == Case::Sim(FaultKind::Slow) {
                "n/a (no outage)".to_string()
            } else {
                ms(median(&|r| r.data_again))
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                case.name(),
                isolation.as_str(),
                ms(median(&|r| r.detected)),
                again,
                sum(&|r| r.journal),
                lost,
                duplicated,
                format_args!("{equal}/{}", rows.len()),
                ms(Some(stop)),
            );
        }
    }
    anyhow::ensure!(
        failures == 0,
        "{failures} cases lost or duplicated a trade, ended with a wrong book or took longer than {STOP_BOUND:?} to stop"
    );
    Ok(())
}
