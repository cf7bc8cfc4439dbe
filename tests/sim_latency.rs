//! The simulator's `latency` setting delays every WebSocket frame like the network to a remote
//! exchange would (and zero latency adds nothing). Load only makes round trips longer, so the
//! delay is checked as a lower bound, and "zero adds nothing" as one round trip (of as many as it
//! takes, within a hang guard) shorter than the delay.

mod sim_common;

use std::time::Duration;

use sim_common::{start, Client, Read};

const LATENCY: Duration = Duration::from_millis(120);

/// A client of a simulator with `latency`.
async fn client(latency: Duration) -> (hft_connector::sim::SimHandle, Client) {
    let sim = start(hft_connector::sim::SimConfig {
        latency,
        start_paused: true,
        ..hft_connector::sim::SimConfig::for_tests(5)
    })
    .await;
    let c = Client::connect(&sim.ws_url(hft_connector::protocol::Category::Linear)).await;
    (sim, c)
}

/// One ping's round trip.
async fn round_trip(c: &mut Client, id: usize) -> Duration {
    let t0 = tokio::time::Instant::now();
    c.send(&format!(r#"{{"req_id":"p{id}","op":"ping"}}"#))
        .await;
    let want = format!(r#""req_id":"p{id}""#);
    loop {
        match c.read(Duration::from_secs(60)).await {
            Read::Text(t) if t.contains("pong") && t.contains(&want) => break t0.elapsed(),
            Read::Text(_) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_delayed_by_the_configured_latency() {
    let (sim, mut c) = client(LATENCY).await;
    for id in 0..3 {
        let rtt = round_trip(&mut c, id).await;
        assert!(
            rtt >= LATENCY,
            "a frame came back {rtt:?} after, under {LATENCY:?}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_latency_adds_nothing() {
    let (sim, mut c) = client(Duration::ZERO).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut id = 0;
    while round_trip(&mut c, id).await >= LATENCY {
        assert!(
            tokio::time::Instant::now() < deadline,
            "every round trip took longer than {LATENCY:?} without latency"
        );
        id += 1;
    }
    sim.shutdown().await;
}
