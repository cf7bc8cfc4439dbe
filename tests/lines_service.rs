//! The service over A/B lines (`--lines 2`, in-process here): `/api/status` carries each feed's
//! `lines` array, `/metrics` the per-line families (label `line`), and a line broken by the
//! simulator shows as down while the feed stays connected (degraded, not down).

use std::time::Duration;

use hft_connector::cli::run::{Isolation, RunArgs};
use hft_connector::config::ServiceConfig;
use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, Simulator};
use serde_json::Value;

async fn get(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("service answers")
        .text()
        .await
        .expect("a body")
}

/// Polls `/api/status` until `cond` holds for the first feed's status.
async fn until(base: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value =
            serde_json::from_str(&get(&format!("{base}/api/status")).await).expect("JSON");
        let feed = body["feeds"][0].clone();
        if cond(&feed) {
            return feed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {feed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_show_each_line_and_a_line_down_is_degraded_not_down() {
    let sim = Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 300.0,
        ..SimConfig::for_tests(41)
    })
    .await
    .expect("simulator starts");
    let dir = std::env::temp_dir().join(format!("hftc-lines-svc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = RunArgs {
        symbols: Some(vec!["BTCUSDT".into()]),
        category: Some(vec!["linear".into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(Isolation::InProcess),
        lines: Some(2),
        backfill_days: Some(0.0),
        ..RunArgs::default()
    };
    let mut cfg = ServiceConfig::load(&args.overrides(), Vec::new()).expect("valid");
    cfg.health.check_interval_s = 0.1;
    cfg.reconnect.initial_delay_s = 2.0;
    cfg.reconnect.max_delay_s = 2.0;
    let running = hft_connector::app::start_service(cfg)
        .await
        .expect("starts");
    let base = format!("http://{}", running.addr);

    let feed = until(&base, "both lines up", |f| {
        f["lines"]
            .as_array()
            .is_some_and(|l| l.len() == 2 && l.iter().all(|x| x["connected"] == true))
    })
    .await;
    assert_eq!(feed["status"], "connected");
    assert_eq!(feed["lines"][0]["line"], "a");
    assert_eq!(feed["lines"][1]["line"], "b");
    let html = get(&format!("{base}/")).await;
    assert!(html.contains("/assets/lines.js") && html.contains("id=\"lines\""));
    let js = get(&format!("{base}/assets/lines.js")).await;
    assert!(
        js.contains("line \" + l.line") || js.contains("Lines: "),
        "the pill's script"
    );

    // Break the oldest line: it reconnects only after 2 s, meanwhile the feed is degraded.
    let r = sim.inject(FaultRequest::new(FaultKind::Close).max_connections(1));
    assert_eq!(r.connections, 1);
    let feed = until(&base, "one line down", |f| {
        f["lines"]
            .as_array()
            .is_some_and(|l| l.iter().filter(|x| x["connected"] == false).count() == 1)
    })
    .await;
    assert_eq!(
        feed["status"], "connected",
        "one line down is not the feed down"
    );
    let metrics = get(&format!("{base}/metrics")).await;
    let down = metrics
        .lines()
        .filter(|l| l.starts_with("hft_connector_feed_line_up{") && l.ends_with(" 0"))
        .count();
    assert_eq!(down, 1, "{metrics}");
    assert!(metrics.contains("line=\"a\"") && metrics.contains("line=\"b\""));
    until(&base, "both lines up again", |f| {
        f["lines"]
            .as_array()
            .is_some_and(|l| l.iter().all(|x| x["connected"] == true))
    })
    .await;
    running.stop();
    let _ = running.wait().await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
