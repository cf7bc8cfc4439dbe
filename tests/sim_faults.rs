//! Every fault kind of the simulator, demonstrated with a plain client: what the client sees while
//! the fault lasts and after it ends. Each wait is for the frame itself (a pong, a book frame, an
//! accepted connection) with a generous guard; what must NOT arrive is checked with the market
//! paused or well inside a fault window long enough that a loaded machine cannot outlast it.

mod sim_common;

use std::time::{Duration, Instant};

use hft_connector::book::{OrderBook, Outcome};
use hft_connector::protocol::ws::{decode, Frame};
use hft_connector::protocol::Category;
use hft_connector::sim::{FaultKind, FaultReport, FaultRequest, SimHandle};
use sim_common::{paused, Client, Read};

async fn subscribed(sim: &SimHandle, cat: Category, topics: &[&str]) -> Client {
    let mut c = Client::connect(&sim.ws_url(cat)).await;
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

/// A hang guard only: every wait ends as soon as what it waits for happened.
const GUARD: Duration = Duration::from_secs(60);

/// Pings until a pong comes back (a fault is over), within the guard; returns the last round trip.
async fn pong_again(c: &mut Client) -> Duration {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(rtt) = pong_within(c, Duration::from_millis(500)).await {
            return rtt;
        }
        assert!(Instant::now() < deadline, "no pong any more");
    }
}

fn market_frames(frames: &[String]) -> usize {
    frames.iter().filter(|f| f.contains("\"topic\"")).count()
}

#[tokio::test]
async fn close_sends_a_close_frame_and_reset_sends_none() {
    let sim = paused(21).await;
    let mut a = subscribed(&sim, Category::Linear, &["publicTrade.BTCUSDT"]).await;
    let mut other = subscribed(&sim, Category::Spot, &["publicTrade.BTCUSDT"]).await;
    let r = sim.inject(FaultRequest::new(FaultKind::Close).category(Category::Linear));
    assert!(r.applied && r.connections == 1, "{r:?}");
    assert!(matches!(a.read(GUARD).await, Read::Closed(Some(1000))));
    assert!(
        pong_within(&mut other, GUARD).await.is_some(),
        "others untouched"
    );

    let mut b = subscribed(&sim, Category::Linear, &["publicTrade.ETHUSDT"]).await;
    let r = sim.inject(FaultRequest::new(FaultKind::Reset).symbol("ETHUSDT"));
    assert_eq!(
        r.connections, 1,
        "only the connection subscribed to ETHUSDT"
    );
    match b.read(GUARD).await {
        Read::Dropped(e) => assert!(e.to_lowercase().contains("reset"), "{e}"),
        other => panic!("expected a TCP reset, got {other:?}"),
    }
    assert_eq!(sim.stats().faults_by_kind.get("reset"), Some(&1));
    sim.shutdown().await;
}

#[tokio::test]
async fn stall_sends_nothing_not_even_pongs_then_recovers() {
    let sim = paused(22).await;
    let mut c = subscribed(&sim, Category::Linear, &["orderbook.50.BTCUSDT"]).await;
    let _snapshot = c.text().await;
    // Long enough that the checks below run well inside it, however loaded the machine.
    sim.inject(FaultRequest::new(FaultKind::Stall).seconds(2.0));
    sim.step(200);
    assert!(
        pong_within(&mut c, Duration::from_millis(250))
            .await
            .is_none(),
        "pings unanswered"
    );
    assert!(
        c.drain(Duration::from_millis(50)).await.is_empty(),
        "nothing at all"
    );
    // Back after the stall: pongs again.
    pong_again(&mut c).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn silence_stops_market_data_but_pongs_go_on() {
    let sim = paused(23).await;
    let mut c = subscribed(
        &sim,
        Category::Linear,
        &["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"],
    )
    .await;
    let snap = c.text().await;
    let Ok(Frame::Book(s)) = decode(&snap) else {
        panic!("{snap}")
    };
    let mut book = OrderBook::new("BTCUSDT", 50);
    book.apply(&s);
    let r = sim.inject(
        FaultRequest::new(FaultKind::Silence)
            .seconds(2.0)
            .symbol("BTCUSDT"),
    );
    assert_eq!(r.connections, 1);
    sim.step(300);
    // The market is paused: what the step published comes before the pong or not at all, so
    // "no market data" does not depend on timing.
    c.send(r#"{"op":"ping","req_id":"hb"}"#).await;
    let mut before_pong = Vec::new();
    let deadline = Instant::now() + GUARD;
    loop {
        match c
            .read(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Read::Text(t) if t.contains(r#""ret_msg":"pong""#) => break,
            Read::Text(t) => before_pong.push(t),
            other => panic!("pongs still come: {other:?}"),
        }
    }
    assert_eq!(market_frames(&before_pong), 0, "no market data");
    // After the silence: step until market data arrives again.
    let deadline = Instant::now() + GUARD;
    let frames = loop {
        sim.step(50);
        let frames = c.drain(Duration::from_millis(100)).await;
        if market_frames(&frames) > 0 {
            break frames;
        }
        assert!(Instant::now() < deadline, "data never resumed");
    };
    // What was published during the silence is lost: the book sees a gap.
    let first_delta = frames.iter().find_map(|f| match decode(f) {
        Ok(Frame::Book(b)) => Some(book.apply(&b)),
        _ => None,
    });
    assert!(
        matches!(first_delta, Some(Outcome::Gap { .. })),
        "{first_delta:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn gap_skips_one_u_and_restart_sends_a_u1_snapshot() {
    let sim = paused(24).await;
    let mut c = subscribed(&sim, Category::Spot, &["orderbook.50.BTCUSDT"]).await;
    let text = c.text().await;
    let Ok(Frame::Book(s)) = decode(&text) else {
        panic!()
    };
    let mut book = OrderBook::new("BTCUSDT", 50);
    book.apply(&s);
    let r = sim.inject(
        FaultRequest::new(FaultKind::Gap)
            .category(Category::Spot)
            .symbol("BTCUSDT"),
    );
    assert_eq!(r.topics, 3, "the 50, 200 and 1000 topics");
    sim.step(100);
    let next = c
        .until(GUARD, |t| t.contains("orderbook"))
        .await
        .expect("a book frame after the gap");
    let Ok(Frame::Book(b)) = decode(&next) else {
        panic!("{next}")
    };
    let outcome = book.apply(&b);
    assert!(
        matches!(outcome, Outcome::Gap { expected_u, got_u } if got_u == expected_u + 1),
        "{outcome:?}"
    );

    let mut c = subscribed(&sim, Category::Linear, &["orderbook.200.ETHUSDT"]).await;
    let text = c.text().await;
    let Ok(Frame::Book(s)) = decode(&text) else {
        panic!()
    };
    let mut book = OrderBook::new("ETHUSDT", 200);
    book.apply(&s);
    let r = sim.inject(FaultRequest::new(FaultKind::Restart).symbol("ETHUSDT"));
    assert_eq!(r.topics, 12, "4 depths x 3 categories");
    let text = c.text().await;
    let Ok(Frame::Book(snap)) = decode(&text) else {
        panic!()
    };
    assert_eq!(snap.u, 1);
    assert!(matches!(book.apply(&snap), Outcome::Reset { previous_u } if previous_u > 1));
    sim.step(200);
    let next = c
        .until(GUARD, |t| t.contains("\"delta\""))
        .await
        .expect("a delta after the restart");
    let Ok(Frame::Book(d)) = decode(&next) else {
        panic!()
    };
    assert_eq!(d.u, 2);
    assert_eq!(book.apply(&d), Outcome::Delta);
    // The market is paused after the step: read until the book reaches the true book's u.
    let truth = sim.book(Category::Linear, "ETHUSDT", 200).unwrap();
    while book.last_u() != Some(truth.u) {
        let f = c.text().await;
        let Ok(Frame::Book(b)) = decode(&f) else {
            panic!("{f}")
        };
        assert_eq!(book.apply(&b), Outcome::Delta);
    }
    assert_eq!(truth.bids, hft_connector::normalized::pairs(book.bids()));
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_arrive_and_the_socket_stays_usable() {
    let sim = paused(25).await;
    let mut c = subscribed(&sim, Category::Linear, &["publicTrade.BTCUSDT"]).await;
    let r = sim.inject(FaultRequest::new(FaultKind::Malformed).count(3));
    assert_eq!((r.connections, r.count), (1, 3));
    for _ in 0..3 {
        let t = c.text().await;
        assert!(decode(&t).is_err(), "corrupt: {t}");
    }
    assert!(pong_within(&mut c, GUARD).await.is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn reject_subscribe_refuses_for_a_while() {
    let sim = paused(26).await;
    let mut c = Client::connect(&sim.ws_url(Category::Linear)).await;
    // Long enough that the first subscribe lands inside it, however loaded the machine.
    sim.inject(FaultRequest::new(FaultKind::RejectSubscribe).seconds(1.5));
    let ack = c.subscribe("r", &["publicTrade.BTCUSDT"]).await;
    assert_eq!(ack["success"], false);
    assert_eq!(
        ack["ret_msg"],
        "error:subscribe rejected,topic:publicTrade.BTCUSDT"
    );
    // Accepted again once the window is over.
    let deadline = Instant::now() + GUARD;
    let mut n = 0;
    loop {
        n += 1;
        if c.subscribe(&format!("r{n}"), &["publicTrade.BTCUSDT"])
            .await["success"]
            == true
        {
            break;
        }
        assert!(Instant::now() < deadline, "still refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn refuse_rejects_new_connections_for_a_while() {
    let sim = paused(27).await;
    let mut open = subscribed(&sim, Category::Linear, &["publicTrade.BTCUSDT"]).await;
    // Long enough that the checks below run inside it, however loaded the machine.
    sim.inject(FaultRequest::new(FaultKind::Refuse).seconds(2.0));
    let url = sim.ws_url(Category::Linear);
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "refused"
    );
    assert!(reqwest::get(format!("{}/v5/market/time", sim.rest_url()))
        .await
        .is_err());
    // The simulator's own controls stay reachable: only the exchange is refused.
    let stats = reqwest::get(format!("{}/sim/stats", sim.rest_url()))
        .await
        .expect("/sim/* reachable during refuse");
    assert!(stats.status().is_success());
    assert!(
        pong_within(&mut open, GUARD).await.is_some(),
        "open ones live"
    );
    // Accepted again once the window is over.
    let deadline = Instant::now() + GUARD;
    while tokio_tungstenite::connect_async(&url).await.is_err() {
        assert!(Instant::now() < deadline, "never accepted again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sim.stats().connections_refused >= 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn blackhole_accepts_new_connections_and_never_answers_them() {
    let sim = paused(31).await;
    let mut open = subscribed(&sim, Category::Linear, &["publicTrade.BTCUSDT"]).await;
    let r = sim.inject(FaultRequest::new(FaultKind::Blackhole).seconds(600.0));
    assert!(r.applied, "{r:?}");
    let url = sim.ws_url(Category::Linear);
    // The handshake is never answered (nor refused).
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            tokio_tungstenite::connect_async(&url)
        )
        .await
        .is_err(),
        "a new WebSocket hangs"
    );
    let rest = tokio::spawn(reqwest::get(format!("{}/v5/market/time", sim.rest_url())));
    // The controls answer at once (a hang guard far below the fault's 600 s), and show what is held.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = Instant::now() + GUARD;
    loop {
        let stats: serde_json::Value = client
            .get(format!("{}/sim/stats", sim.rest_url()))
            .send()
            .await
            .expect("/sim/* reachable during blackhole")
            .json()
            .await
            .unwrap();
        if stats["connections_held"].as_u64() >= Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing held: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!rest.is_finished(), "REST is not answered either");
    assert!(
        pong_within(&mut open, GUARD).await.is_some(),
        "open ones live"
    );
    // Ended early by a new one of 0 s: what was held is let go, new connections are served.
    sim.inject(FaultRequest::new(FaultKind::Blackhole).seconds(0.0));
    let _ = tokio::time::timeout(GUARD, rest).await.expect("let go");
    tokio_tungstenite::connect_async(&url)
        .await
        .expect("served again");
    sim.shutdown().await;
}

#[tokio::test]
async fn rest_error_hangs_are_counted_as_held_by_path() {
    let sim = paused(32).await;
    sim.inject(FaultRequest::new(FaultKind::RestError).seconds(600.0));
    let url = format!(
        "{}/v5/market/kline?category=linear&symbol=BTCUSDT&interval=1",
        sim.rest_url()
    );
    let hung = tokio::spawn(reqwest::get(url));
    let deadline = Instant::now() + GUARD;
    while sim.stats().rest_held.get("/v5/market/kline") != Some(&1) {
        assert!(Instant::now() < deadline, "{:?}", sim.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.stats().rest_faulted, 1);
    hung.abort();
    // The simulator's stop lets it go.
    sim.shutdown().await;
}

#[tokio::test]
async fn rest_error_answers_the_status_or_times_out() {
    let sim = paused(28).await;
    let url = format!("{}/v5/market/time", sim.rest_url());
    // Through the HTTP control route, as a user would.
    let report: FaultReport = reqwest::Client::new()
        .post(format!("{}/sim/fault", sim.rest_url()))
        .body(r#"{"kind":"rest_error","status":500,"count":2}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(report.applied && report.count == 2);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 500);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 500);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    sim.inject(FaultRequest::new(FaultKind::RestError).status(429));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 429);
    sim.inject(FaultRequest::new(FaultKind::RestError).status(403));
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "access too frequent");
    sim.inject(FaultRequest::new(FaultKind::RestError).seconds(0.5));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = client.get(&url).send().await.expect_err("times out");
    assert!(e.is_timeout(), "{e}");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    // Bad requests are answered 400 and not applied.
    let r = reqwest::Client::new()
        .post(format!("{}/sim/fault", sim.rest_url()))
        .body(r#"{"kind":"explode"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_delays_every_frame_for_a_while() {
    let sim = paused(29).await;
    let mut c = subscribed(&sim, Category::Inverse, &["publicTrade.BTCUSDT"]).await;
    assert!(pong_within(&mut c, GUARD).await.is_some());
    // JSON with fractional seconds, as POST /sim/fault takes it; long enough that the slow ping
    // below runs inside it, however loaded the machine.
    let req: FaultRequest =
        serde_json::from_str(r#"{"kind":"slow","millis":250,"seconds":1.5,"category":"inverse"}"#)
            .unwrap();
    let r = sim.inject(req);
    assert_eq!((r.connections, r.count), (1, 250));
    // Never faster than the configured delay while it lasts (a lower bound: load only adds).
    let slow = pong_within(&mut c, GUARD).await.unwrap();
    assert!(slow >= Duration::from_millis(240), "{slow:?}");
    // Afterwards pongs come back faster than the delay again.
    let deadline = Instant::now() + GUARD;
    while pong_again(&mut c).await >= Duration::from_millis(250) {
        assert!(Instant::now() < deadline, "still slow");
    }
    assert_eq!(sim.stats().faults_applied, 1);
    sim.shutdown().await;
}
