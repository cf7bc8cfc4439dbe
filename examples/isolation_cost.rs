//! The cost of worker-process isolation: runs the same live feed against one in-process simulator,
//! first in-process, then in a worker process, and reports for each the receive-to-delivery latency
//! of market events (`recv_ns` stamped when the WebSocket frame arrived, to the moment the consumer
//! gets the event), the delivered throughput, and CPU time per event (this process plus the worker).
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/isolation_cost [rate] [seconds] [depth]     # defaults: 20000 10 50
//! ```
//! The worker executable is `target/release/hft-connector` next to `examples/` (override with
//! `HFT_CONNECTOR_BIN`).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hft_connector::cli::run::Isolation;
use hft_connector::feed::{FeedConfig, FeedEvent};
use hft_connector::protocol::Category;
use hft_connector::sim::{SimConfig, Simulator};
use hft_connector::source::FeedSource;
use hft_connector::worker::WorkerOptions;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// CPU seconds (user + system) of `pid` from /proc.
fn cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0 // USER_HZ
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Run {
    mode: &'static str,
    events: u64,
    secs: f64,
    lat_us: Vec<u64>,
    cpu_s: f64,
    published: f64,
}

async fn measure(
    cfg: FeedConfig,
    isolation: Isolation,
    worker: &std::path::Path,
    seconds: u64,
    sim: &hft_connector::sim::SimHandle,
) -> anyhow::Result<Run> {
    let mut feed = FeedSource::spawn_with(cfg, isolation, WorkerOptions::with_program(worker))?;
    // Connected, then one second of warm-up.
    let warm_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < warm_until {
        let _ = tokio::time::timeout(Duration::from_millis(100), feed.next()).await;
    }
    let me = std::process::id();
    let cpu0 = cpu_s(me) + feed.pid().map_or(0.0, cpu_s);
    let pub0 = sim.stats().frames_published;
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(seconds);
    let mut lat = Vec::with_capacity(1 << 20);
    let mut events = 0u64;
    while Instant::now() < end {
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(100), feed.next()).await
        else {
            continue;
        };
        let recv = match &ev {
            FeedEvent::Trade(t) => t.recv_ns,
            FeedEvent::Book(b) => b.recv_ns,
            _ => None,
        };
        if let Some(r) = recv {
            events += 1;
            lat.push(now_ns().saturating_sub(r));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_s(me) + feed.pid().map_or(0.0, cpu_s);
    let published = (sim.stats().frames_published - pub0) as f64 / secs;
    feed.shutdown().await;
    lat.sort_unstable();
    Ok(Run {
        mode: match isolation {
            Isolation::InProcess => "in-process",
            Isolation::Process => "process",
        },
        events,
        secs,
        lat_us: lat,
        cpu_s: cpu1 - cpu0,
        published,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate: f64 = arg(1, 20_000.0);
    let seconds: u64 = arg(2, 10);
    let depth: u16 = arg(3, 50);
    let worker = match std::env::var_os("HFT_CONNECTOR_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("hft-connector"))
            .ok_or_else(|| anyhow::anyhow!("cannot locate hft-connector"))?,
    };
    anyhow::ensure!(
        worker.exists(),
        "{} not found: build it (cargo build --release --bins --examples) or set HFT_CONNECTOR_BIN",
        worker.display()
    );
    let sim = Simulator::start(SimConfig {
        rate,
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        connection_queue: 1 << 18,
        ..SimConfig::for_tests(1)
    })
    .await?;
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        Category::Linear,
        &["BTCUSDT"],
    );
    cfg.feed.depth = depth;
    println!(
        "simulator rate {rate:.0}/s, BTCUSDT linear, depth {depth}, {seconds} s per mode, worker {}",
        worker.display()
    );
    println!(
        "{:<11} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "mode",
        "events/s",
        "sim fr/s",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "cpu us/ev"
    );
    for iso in [Isolation::InProcess, Isolation::Process] {
        let r = measure(cfg.clone(), iso, &worker, seconds, &sim).await?;
        let l = &r.lat_us;
        println!(
            "{:<11} {:>10.0} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11.2}",
            r.mode,
            r.events as f64 / r.secs,
            r.published,
            pct(l, 0.5),
            pct(l, 0.9),
            pct(l, 0.99),
            pct(l, 0.999),
            l.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
            r.cpu_s * 1e6 / r.events.max(1) as f64,
        );
    }
    sim.shutdown().await;
    Ok(())
}
