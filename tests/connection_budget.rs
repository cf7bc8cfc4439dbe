//! The machine-wide connection budget: a feed (in-process, or a worker process) whose address's
//! window is spent by others waits until a slot frees, then takes it in the shared file.

mod feed_common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use feed_common::*;
use hft_connector::feed::FeedEvent;
use hft_connector::protocol::Category;
use hft_connector::sim::Simulator;
use hft_connector::source::Isolation;
use hft_feed::conn_budget::{ConnectionBudget, BUDGET_DIR_ENV};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 500 slots taken by "other processes" so that the oldest leaves the 5-minute window in
/// `free_in`: the feed must wait at least that long, then connect.
async fn spent_budget_delays_the_first_connection(isolation: Isolation) {
    let dir = std::env::temp_dir().join(format!(
        "hft-budget-it-{}-{}",
        std::process::id(),
        isolation
    ));
    std::fs::create_dir_all(&dir).expect("budget dir");
    // The worker inherits the environment; this test binary has only tests that agree on it.
    std::env::set_var(BUDGET_DIR_ENV, &dir);
    let sim = Simulator::start(sim_config(Category::Linear))
        .await
        .expect("simulator starts");
    let cfg = feed_config(&sim, Category::Linear);
    let budget = ConnectionBudget::in_dir(&dir, &cfg.ws_endpoint(), 500, 300_000);
    let free_in = Duration::from_millis(1_500);
    let oldest = now_ms() + free_in.as_millis() as u64 - 300_000;
    let lines: String = (0..500)
        .map(|i| format!("{}\n", oldest + i / 400))
        .collect();
    std::fs::write(budget.path(), lines).expect("prefill");
    let started = Instant::now();
    let rig = Rig::with_isolation(sim, cfg, Category::Linear, isolation, worker_options()).await;
    rig.wait_for(0, Duration::from_secs(120), "connected", |e| {
        matches!(e, FeedEvent::Connected { .. })
    })
    .await;
    // A lower bound only: a loaded machine can make it later, never earlier.
    assert!(
        started.elapsed() >= free_in - Duration::from_millis(300),
        "connected after {:?}, before the budget had a free slot",
        started.elapsed()
    );
    let text = std::fs::read_to_string(budget.path()).expect("budget file");
    let fresh = text
        .lines()
        .filter_map(|l| l.parse::<u64>().ok())
        .filter(|&t| t > oldest + 10)
        .count();
    assert!(
        fresh >= 1,
        "the feed's connection took a slot in the shared file: {text}"
    );
    assert!(
        text.lines().count() <= 500,
        "never more than 500 in the window"
    );
    rig.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_delays_connecting_in_both_isolation_modes() {
    // One test, both modes in turn: they share this binary's environment variable.
    spent_budget_delays_the_first_connection(Isolation::InProcess).await;
    spent_budget_delays_the_first_connection(Isolation::Process).await;
}
