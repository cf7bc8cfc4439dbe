//! Per-symbol truth with two symbols on one connection, in both isolation modes: a silence of
//! BTCUSDT alone counts a stale detection on BTCUSDT and none on ETHUSDT, and each symbol's
//! message count is its own (they add up to the connection's), in the feed's health and in the
//! `/api/status` / `/metrics` status built from it.

mod feed_common;

use std::time::Duration;

use feed_common::{worker_options, Rig};
use hft_connector::cli::run::Isolation;
use hft_connector::feed::{FeedConfig, FeedEvent};
use hft_connector::protocol::Category;
use hft_connector::service::{FeedKey, FeedStatus};
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, Simulator};

const BTC: &str = "BTCUSDT";
const ETH: &str = "ETHUSDT";

async fn silence_of_one_symbol(isolation: Isolation) {
    let sim = Simulator::start(SimConfig {
        symbols: vec![BTC.into(), ETH.into()],
        categories: vec![Category::Linear],
        rate: 200.0,
        ..SimConfig::for_tests(23)
    })
    .await
    .expect("simulator starts");
    let mut cfg = FeedConfig::new(
        &format!("ws://{}/v5/public", sim.addr()),
        &sim.rest_url(),
        Category::Linear,
        &[BTC, ETH],
    )
    .with_fast_timers(1.0);
    cfg.feed.depth = 50;
    let rig = Rig::with_isolation(sim, cfg, Category::Linear, isolation, worker_options()).await;
    rig.until_flowing().await;
    for s in [BTC, ETH] {
        rig.wait_for(0, Duration::from_secs(20), s, |e| match e {
            FeedEvent::Book(b) => b.symbol == s,
            _ => false,
        })
        .await;
    }
    let mark = rig.len();
    let mut silence = FaultRequest::new(FaultKind::Silence).seconds(60.0);
    silence.symbol = Some(BTC.into());
    rig.sim.inject(silence);
    let (i, _) = rig
        .wait_for(
            mark,
            Duration::from_secs(20),
            "BTCUSDT stale",
            |e| matches!(e, FeedEvent::Stale { symbol, .. } if symbol == BTC),
        )
        .await;
    rig.wait_for(i, Duration::from_secs(20), "reconnected", |e| {
        matches!(e, FeedEvent::Connected { .. })
    })
    .await;
    rig.quiesce().await;

    let h = rig.monitor().health();
    let (btc, eth) = (&h.per_symbol[BTC], &h.per_symbol[ETH]);
    assert_eq!(btc.stale_detections, 1, "{isolation:?}: {h:?}");
    assert_eq!(
        eth.stale_detections, 0,
        "{isolation:?}: ETHUSDT was never silent: {h:?}"
    );
    assert!(btc.messages > 0 && eth.messages > 0, "{h:?}");
    assert_eq!(
        btc.messages + eth.messages,
        h.messages,
        "{isolation:?}: {h:?}"
    );
    let delivered = |s: &str| {
        rig.count(|e| match e {
            FeedEvent::Trade(t) => t.symbol == s && !t.recovered,
            FeedEvent::Book(b) => b.symbol == s,
            _ => false,
        }) as u64
    };
    assert!(delivered(BTC) > 0 && delivered(ETH) > 0);

    // The status (what /api/status, /metrics and the dashboard show) is per symbol too.
    for (symbol, own) in [(BTC, btc), (ETH, eth)] {
        let mut st = FeedStatus::new(&FeedKey {
            category: Category::Linear,
            symbol: symbol.into(),
        });
        st.apply_health(&h, None);
        assert_eq!(st.stale_detections, own.stale_detections, "{symbol}");
        assert_eq!(st.messages, own.messages, "{symbol}");
        assert_ne!(
            st.messages, h.messages,
            "{symbol}: not the connection's count"
        );
        assert_eq!(
            st.seconds_since_last_event,
            Some(own.seconds_since_last_event)
        );
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_symbol_is_stale_alone_in_process() {
    silence_of_one_symbol(Isolation::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_symbol_is_stale_alone_in_a_worker_process() {
    silence_of_one_symbol(Isolation::Process).await;
}
