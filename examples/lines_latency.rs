//! A/B lines, measured: the latency of market events (exchange time `ts` to the moment the consumer
//! gets the event) with one line against two lines while the simulator's `slow` fault delays one
//! connection (the faster line should win), and the CPU cost of the second line (no fault).
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/lines_latency [rate] [seconds] [slow_ms]     # defaults: 5000 10 50
//! ```
//! Everything runs in this process (simulator and in-process feed), so CPU time is the process's:
//! the simulator's share is the same in both runs but for sending each frame twice.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hft_connector::cli::run::Isolation;
use hft_connector::feed::{FeedConfig, FeedEvent};
use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, Simulator};
use hft_connector::source::FeedSource;

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// CPU seconds (user + system) of this process from /proc.
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
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
    p50_ms: f64,
    p99_ms: f64,
    events: usize,
    cpu_s: f64,
    seconds: f64,
}

/// One measurement: `lines` lines, `slow_ms` added to the oldest connection (0: none).
async fn measure(lines: u8, rate: f64, seconds: f64, slow_ms: u64) -> anyhow::Result<Run> {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate,
        ..SimConfig::for_tests(5)
    })
    .await?;
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        Category::Linear,
        &["BTCUSDT"],
    );
    cfg.feed.lines = lines;
    // Slowness alone must not restart the slow line: this measures who wins, not the restart.
    cfg.feed.line_stall_s = 3600.0;
    cfg.feed.line_behind_updates = u64::MAX;
    let mut feed = FeedSource::spawn(cfg, Isolation::InProcess)?;
    // Every line live before the fault and the clock start.
    let mut live = 0;
    while let Some(ev) = feed.next().await {
        if matches!(ev, FeedEvent::Connected { .. }) {
            live += 1;
        }
        if live >= 1 && feed.monitor().lines().iter().all(|l| l.connected) {
            break;
        }
    }
    if slow_ms > 0 {
        let r = sim.inject(
            FaultRequest::new(FaultKind::Slow)
                .millis(slow_ms)
                .seconds(seconds + 30.0)
                .max_connections(1),
        );
        anyhow::ensure!(r.applied && r.connections == 1, "slow fault: {r:?}");
    }
    // Let the slowed queue fill before measuring.
    let warm = Instant::now() + Duration::from_millis(slow_ms * 2 + 500);
    while Instant::now() < warm {
        feed.next().await;
    }
    let mut lat = Vec::new();
    let cpu0 = cpu_s();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let Some(ev) = feed.next().await else { break };
        let ts_ms = match &ev {
            FeedEvent::Trade(t) => t.ts_ms,
            FeedEvent::Book(b) => b.ts_ms,
            _ => continue,
        };
        lat.push(now_us().saturating_sub(ts_ms * 1000));
    }
    let cpu = cpu_s() - cpu0;
    let elapsed = t0.elapsed().as_secs_f64();
    drop(feed);
    sim.shutdown().await;
    lat.sort_unstable();
    Ok(Run {
        p50_ms: pct(&lat, 0.50),
        p99_ms: pct(&lat, 0.99),
        events: lat.len(),
        cpu_s: cpu,
        seconds: elapsed,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rate: f64 = arg(1, 5000.0);
    let seconds: f64 = arg(2, 10.0);
    let slow_ms: u64 = arg(3, 50);
    println!("rate {rate} msg/s, {seconds} s per run, slow {slow_ms} ms on one connection");
    let one = measure(1, rate, seconds, slow_ms).await?;
    let two = measure(2, rate, seconds, slow_ms).await?;
    println!("| setup | events | p50 latency | p99 latency |");
    println!("|---|---|---|---|");
    for (name, r) in [("1 line (slowed)", &one), ("2 lines (one slowed)", &two)] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms |",
            r.events, r.p50_ms, r.p99_ms
        );
    }
    println!(
        "p50 ratio 1 line / 2 lines: {:.1}x, p99 ratio: {:.1}x",
        one.p50_ms / two.p50_ms,
        one.p99_ms / two.p99_ms
    );
    let c1 = measure(1, rate, seconds, 0).await?;
    let c2 = measure(2, rate, seconds, 0).await?;
    println!("| setup | events | CPU s per s | CPU µs per event |");
    println!("|---|---|---|---|");
    for (name, r) in [("1 line", &c1), ("2 lines", &c2)] {
        println!(
            "| {name} | {} | {:.3} | {:.1} |",
            r.events,
            r.cpu_s / r.seconds,
            r.cpu_s * 1e6 / r.events.max(1) as f64
        );
    }
    println!(
        "CPU of the second line: {:.2}x the one-line process",
        (c2.cpu_s / c2.seconds) / (c1.cpu_s / c1.seconds)
    );
    Ok(())
}
