//! Measures, for each simulator fault, the time from injection to detection by the live feed and to
//! market data flowing again. `cargo run --release --example fault_timings -- [STALE_S] [ROUNDS]`
//! (default 1 s stale threshold, pings every STALE_S/2, 3 rounds; the median is printed).

use std::time::Duration;

use hft_connector::feed::{Feed, FeedConfig, FeedEvent, ResyncReason};
use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, Simulator};
use tokio::time::Instant;

fn detected(kind: FaultKind, ev: &FeedEvent) -> bool {
    match kind {
        FaultKind::Gap => matches!(
            ev,
            FeedEvent::Resync {
                reason: ResyncReason::Gap,
                ..
            }
        ),
        FaultKind::Restart => matches!(
            ev,
            FeedEvent::Resync {
                reason: ResyncReason::Restart,
                ..
            }
        ),
        FaultKind::Malformed => matches!(ev, FeedEvent::Malformed { .. }),
        FaultKind::RejectSubscribe => matches!(ev, FeedEvent::SubscriptionRefused { .. }),
        _ => matches!(ev, FeedEvent::Disconnected { .. }),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let stale: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let cases: Vec<(&str, Vec<FaultRequest>, FaultKind)> = vec![
        (
            "close",
            vec![FaultRequest::new(FaultKind::Close)],
            FaultKind::Close,
        ),
        (
            "reset",
            vec![FaultRequest::new(FaultKind::Reset)],
            FaultKind::Reset,
        ),
        (
            "stall",
            vec![FaultRequest::new(FaultKind::Stall).seconds(stale * 4.0)],
            FaultKind::Stall,
        ),
        (
            "silence",
            vec![FaultRequest::new(FaultKind::Silence).seconds(stale * 4.0)],
            FaultKind::Silence,
        ),
        (
            "gap",
            vec![FaultRequest::new(FaultKind::Gap)],
            FaultKind::Gap,
        ),
        (
            "restart",
            vec![FaultRequest::new(FaultKind::Restart)],
            FaultKind::Restart,
        ),
        (
            "malformed",
            vec![FaultRequest::new(FaultKind::Malformed).count(1)],
            FaultKind::Malformed,
        ),
        (
            "reject_subscribe",
            vec![
                FaultRequest::new(FaultKind::RejectSubscribe).seconds(stale),
                FaultRequest::new(FaultKind::Close),
            ],
            FaultKind::RejectSubscribe,
        ),
        (
            "refuse",
            vec![
                FaultRequest::new(FaultKind::Refuse).seconds(stale),
                FaultRequest::new(FaultKind::Close),
            ],
            FaultKind::Refuse,
        ),
    ];
    println!("| fault | detected after (median) | data flowing again after (median) |");
    println!("|---|---|---|");
    for (name, faults, kind) in cases {
        let mut det = Vec::new();
        let mut rec = Vec::new();
        for round in 0..rounds {
            let sim = Simulator::start(SimConfig {
                symbols: vec!["BTCUSDT".into()],
                categories: vec![Category::Linear],
                rate: 500.0,
                seed: round as u64 + 1,
                ..SimConfig::for_tests(1)
            })
            .await?;
            let mut cfg = FeedConfig::new(
                &format!("ws://{}/v5/public", sim.addr()),
                &sim.rest_url(),
                Category::Linear,
                &["BTCUSDT"],
            )
            .with_fast_timers(stale);
            cfg.feed.depth = 50;
            let mut feed = Feed::spawn(cfg)?;
            // Wait for data, then inject.
            while let Some(ev) = feed.next().await {
                if matches!(ev, FeedEvent::Book(_)) && feed.is_connected() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(1), feed.next()).await
            {}
            let t0 = Instant::now();
            for f in &faults {
                sim.inject(f.clone());
            }
            let mut t_det = None;
            let deadline = t0 + Duration::from_secs_f64(stale * 20.0 + 10.0);
            while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, feed.next()).await {
                let now = Instant::now();
                if t_det.is_none() && detected(kind, &ev) {
                    t_det = Some(now - t0);
                    continue;
                }
                // Flowing again: live market data after detection (for malformed/gap, the next one).
                if t_det.is_some() && matches!(&ev, FeedEvent::Trade(t) if !t.recovered)
                    || t_det.is_some() && matches!(ev, FeedEvent::Book(_))
                {
                    rec.push(now - t0);
                    break;
                }
            }
            if let Some(d) = t_det {
                det.push(d);
            }
            feed.shutdown().await;
            sim.shutdown().await;
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v.get(v.len() / 2).map_or("n/a".to_string(), |d| {
                format!("{:.0} ms", d.as_secs_f64() * 1000.0)
            })
        };
        println!("| {name} | {} | {} |", median(&mut det), median(&mut rec));
    }
    Ok(())
}
