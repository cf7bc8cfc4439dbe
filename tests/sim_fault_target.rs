//! `"max_connections": N` in `POST /sim/fault`: a connection-level fault reaches only the N oldest
//! matching connections, so one line of an A/B pair can be broken while the other carries on.

mod sim_common;

use std::time::{Duration, Instant};

use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimHandle};
use sim_common::{paused, Client, Read};

async fn subscribed(sim: &SimHandle, topics: &[&str]) -> Client {
    let mut c = Client::connect(&sim.ws_url(Category::Linear)).await;
    assert_eq!(c.subscribe("f", topics).await["success"], true);
    c
}

async fn pong_within(c: &mut Client, wait: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    c.send(r#"{"op":"ping","req_id":"hb"}"#).await;
    c.until(wait, |t| t.contains(r#""ret_msg":"pong""#))
        .await
        .map(|_| t0.elapsed())
}

#[test]
fn the_wire_form_names_max_connections() {
    let req: FaultRequest =
        serde_json::from_str(r#"{"kind":"reset","max_connections":1}"#).expect("valid request");
    assert_eq!(req, FaultRequest::new(FaultKind::Reset).max_connections(1));
    let req: FaultRequest = serde_json::from_str(r#"{"kind":"reset"}"#).expect("valid request");
    assert_eq!(
        req.max_connections, None,
        "absent: every matching connection"
    );
}

#[tokio::test]
async fn a_fault_with_max_connections_1_hits_only_the_oldest_connection() {
    let sim = paused(31).await;
    let mut oldest = subscribed(&sim, &["publicTrade.BTCUSDT"]).await;
    let mut newer = subscribed(&sim, &["publicTrade.BTCUSDT"]).await;
    let r = sim.inject(FaultRequest::new(FaultKind::Close).max_connections(1));
    assert!(r.applied && r.connections == 1, "{r:?}");
    assert!(matches!(
        oldest.read(Duration::from_secs(2)).await,
        Read::Closed(Some(1000))
    ));
    assert!(
        pong_within(&mut newer, Duration::from_secs(1))
            .await
            .is_some(),
        "the newer connection is untouched"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn without_max_connections_every_matching_connection_is_hit() {
    let sim = paused(32).await;
    let mut a = subscribed(&sim, &["publicTrade.BTCUSDT"]).await;
    let mut b = subscribed(&sim, &["publicTrade.BTCUSDT"]).await;
    let r = sim.inject(FaultRequest::new(FaultKind::Stall).seconds(30.0));
    assert_eq!(r.connections, 2, "{r:?}");
    for c in [&mut a, &mut b] {
        assert!(pong_within(c, Duration::from_millis(300)).await.is_none());
    }
    sim.shutdown().await;
}
