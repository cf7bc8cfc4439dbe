//! The simulator's `latency` setting delays every WebSocket frame like the network to a remote
//! exchange would (and zero latency answers at once).

mod sim_common;

use std::time::Duration;

use hft_connector::sim::SimConfig;
use sim_common::{start, Client, Read};

async fn pong_after(latency: Duration) -> Duration {
    let sim = start(SimConfig {
        latency,
        start_paused: true,
        ..SimConfig::for_tests(5)
    })
    .await;
    let mut c = Client::connect(&sim.ws_url(hft_connector::protocol::Category::Linear)).await;
    let t0 = tokio::time::Instant::now();
    c.send(r#"{"req_id":"p","op":"ping"}"#).await;
    let elapsed = loop {
        match c.read(Duration::from_secs(5)).await {
            Read::Text(t) if t.contains("pong") => break t0.elapsed(),
            Read::Text(_) => continue,
            other => panic!("{other:?}"),
        }
    };
    sim.shutdown().await;
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_delayed_by_the_configured_latency() {
    let slow = pong_after(Duration::from_millis(120)).await;
    assert!(slow >= Duration::from_millis(120), "{slow:?}");
    let fast = pong_after(Duration::ZERO).await;
    assert!(fast < Duration::from_millis(100), "{fast:?}");
}
