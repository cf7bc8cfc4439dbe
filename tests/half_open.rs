//! A true half-open TCP connection, which no simulator switch reproduces: the simulator runs in a
//! network namespace behind a veth pair (scripts/half-open-net.sh), the feed runs outside, and
//! mid-stream every packet on the veth is silently dropped (iptables DROP, both directions): no FIN,
//! no RST, the socket just goes quiet. The feed must notice through its JSON heartbeat (a pong
//! timeout, not the stale detector), keep retrying while the path is dead, reconnect when it
//! returns, and refill the trades of the hole from REST: zero lost, zero duplicated against the
//! simulator's journal, and the book equal to the true book. Needs root; skipped otherwise.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hft_connector::cli::run::Isolation;
use hft_connector::feed::{DisconnectReason, FeedConfig, FeedEvent};
use hft_connector::normalized::TradeEvent;
use hft_connector::protocol::Category;
use hft_connector::sim::TrueBook;
use hft_connector::source::FeedSource;
use hft_connector::worker::WorkerOptions;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

const SYMBOL: &str = "BTCUSDT";
const PING_S: f64 = 1.0;
const PONG_S: f64 = 1.0;
/// Far above the heartbeat's budget: detection must come from the heartbeat.
const STALE_S: f64 = 30.0;
/// Generous limit of every wait (a loaded machine is slow; the events themselves are awaited).
const WAIT: Duration = Duration::from_secs(90);

fn script(args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/half-open-net.sh");
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "half-open-net.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The namespace and veth pair of one test; deleted on drop, whatever happened.
struct Net {
    id: String,
    ns: String,
    ns_ip: String,
}

impl Net {
    fn up(id: u32) -> Net {
        let id = id.to_string();
        let out = script(&["up", &id]);
        let get = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("half-open-net.sh up printed no {k}: {out}"))
                .to_string()
        };
        Net {
            ns: get("NS"),
            ns_ip: get("NS_IP"),
            id,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/half-open-net.sh"))
                .args(["down", &self.id])
                .status();
    }
}

/// The effective user id is 0 (`/proc/self/status`, `Uid: real effective ...`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

type Events = Arc<Mutex<Vec<(Instant, FeedEvent)>>>;

/// Waits until `pred` holds for an event at index `>= from`; returns its index and arrival time.
async fn wait_for(
    events: &Events,
    from: usize,
    what: &str,
    pred: impl Fn(&FeedEvent) -> bool,
) -> (usize, Instant) {
    let deadline = Instant::now() + WAIT;
    loop {
        {
            let evs = events.lock().unwrap();
            if let Some(i) = (from..evs.len()).find(|&i| pred(&evs[i].1)) {
                return (i, evs[i].0);
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> T {
    reqwest::get(url)
        .await
        .expect(url)
        .error_for_status()
        .expect(url)
        .json()
        .await
        .expect(url)
}

async fn half_open(isolation: Isolation, id: u32) {
    if !is_root() {
        eprintln!("SKIPPED half_open: needs root (a network namespace, a veth pair and iptables); run as root to prove half-open detection");
        return;
    }
    script(&["install"]);
    let net = Net::up(id);
    let bin = env!("CARGO_BIN_EXE_hft-connector");
    let listen = format!("{}:9100", net.ns_ip);
    let mut sim = tokio::process::Command::new("ip")
        .args([
            "netns", "exec", &net.ns, bin, "simulate", "--listen", &listen,
        ])
        .args([
            "--symbols",
            SYMBOL,
            "--categories",
            "linear",
            "--rate",
            "200",
            "--seed",
            "15",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ip netns exec ... simulate");
    let mut lines = BufReader::new(sim.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("simulator starts")
        .expect("stdout")
        .expect("a line");
    assert!(first.starts_with("simulator listening on"), "{first}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = format!("http://{listen}");

    let mut cfg = FeedConfig::new(
        &format!("ws://{listen}/v5/public"),
        &base,
        Category::Linear,
        &[SYMBOL],
    )
    .with_fast_timers(STALE_S);
    cfg.feed.depth = 50;
    cfg.heartbeat.ping_interval_s = PING_S;
    cfg.heartbeat.pong_timeout_s = PONG_S;
    cfg.reconnect.connect_timeout_s = 1.0;
    let opts = WorkerOptions::with_program(bin);
    let mut feed = FeedSource::spawn_with(cfg, isolation, opts).expect("valid config");
    let monitor = feed.monitor();
    let events: Events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                ev = feed.next() => match ev {
                    Some(ev) => sink.lock().unwrap().push((Instant::now(), ev)),
                    None => break,
                },
            }
        }
        feed.shutdown().await;
    });

    // Live: connected and trading.
    let (i, _) = wait_for(&events, 0, "connected", |e| {
        matches!(e, FeedEvent::Connected { .. })
    })
    .await;
    let (i, _) = wait_for(
        &events,
        i,
        "a live trade",
        |e| matches!(e, FeedEvent::Trade(t) if !t.recovered),
    )
    .await;

    // The path dies silently.
    script(&["drop", &net.id]);
    let dropped_at = Instant::now();
    let (d, detected_at) = wait_for(&events, i, "the disconnect", |e| {
        matches!(e, FeedEvent::Disconnected { .. })
    })
    .await;
    {
        let evs = events.lock().unwrap();
        assert!(
            matches!(
                &evs[d].1,
                FeedEvent::Disconnected {
                    reason: DisconnectReason::PongTimeout
                }
            ),
            "a half-open socket is detected by the heartbeat's pong timeout, got {:?}",
            evs[d].1
        );
        assert!(
            !evs[i..]
                .iter()
                .any(|(_, e)| matches!(e, FeedEvent::Stale { .. })),
            "not by the stale detector"
        );
    }
    let detection = detected_at - dropped_at;

    // While the path is dead the feed keeps trying (each attempt times out and counts an error).
    let errors = monitor.health().error_count;
    let deadline = Instant::now() + WAIT;
    while monitor.health().error_count <= errors {
        assert!(
            Instant::now() < deadline,
            "no reconnect attempt failed while the path was down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The path returns: reconnected, and the hole refilled from REST.
    script(&["restore", &net.id]);
    let restored_at = Instant::now();
    let (c, _) = wait_for(&events, d, "the reconnect", |e| {
        matches!(e, FeedEvent::Connected { .. })
    })
    .await;
    let (_, recovered_at) = wait_for(
        &events,
        c,
        "the trades of the hole recovered",
        |e| matches!(e, FeedEvent::TradesRecovered { count, .. } if *count > 0),
    )
    .await;
    let (_, live_at) = wait_for(
        &events,
        c,
        "live data again",
        |e| matches!(e, FeedEvent::Trade(t) if !t.recovered),
    )
    .await;

    // Settle: the market stops; the feed reaches the journal's last trade and the true book.
    reqwest::Client::new()
        .post(format!("{base}/sim/pause"))
        .send()
        .await
        .expect("pause")
        .error_for_status()
        .expect("pause");
    let journal: Vec<TradeEvent> = get(&format!(
        "{base}/sim/journal?symbol={SYMBOL}&type=trade&category=linear"
    ))
    .await;
    let last = journal.last().expect("the journal has trades").id.clone();
    wait_for(
        &events,
        0,
        "the journal's last trade",
        |e| matches!(e, FeedEvent::Trade(t) if t.id == last),
    )
    .await;
    let truth: TrueBook = get(&format!(
        "{base}/sim/book?symbol={SYMBOL}&category=linear&depth=50"
    ))
    .await;
    let deadline = Instant::now() + WAIT;
    while monitor.book(SYMBOL).and_then(|b| b.last_u()) != Some(truth.u) {
        assert!(
            Instant::now() < deadline,
            "the book never reached the true book's u {}",
            truth.u
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let book = monitor.book(SYMBOL).expect("a book");
    let pairs = |v: &[hft_connector::protocol::ws::Level]| {
        v.iter().map(|l| (l.price, l.qty)).collect::<Vec<_>>()
    };
    assert_eq!(pairs(book.bids()), truth.bids, "bids equal the true book");
    assert_eq!(pairs(book.asks()), truth.asks, "asks equal the true book");

    // Zero lost, zero duplicated: every journal trade after the first one received, exactly once.
    let got: Vec<TradeEvent> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, e)| match e {
            FeedEvent::Trade(t) => Some((**t).clone()),
            _ => None,
        })
        .collect();
    let mut ids = HashSet::new();
    for t in &got {
        assert!(ids.insert(t.id.clone()), "trade {} delivered twice", t.id);
    }
    let first_ts = got[0].ts_ms;
    let expected: Vec<&TradeEvent> = journal.iter().filter(|t| t.ts_ms > first_ts).collect();
    let lost: Vec<&str> = expected
        .iter()
        .filter(|t| !ids.contains(&t.id))
        .map(|t| t.id.as_str())
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} trades lost: {:?}",
        lost.len(),
        expected.len(),
        &lost[..lost.len().min(5)]
    );
    let refilled = got.iter().filter(|t| t.recovered).count();
    assert!(refilled > 0, "the hole's trades came from REST");
    let gaps = events
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| matches!(e, FeedEvent::TradeGap { .. }))
        .count();
    assert_eq!(gaps, 0, "no unrecoverable hole");
    println!(
        "half-open ({}): detected by pong timeout after {:.0} ms (ping {PING_S} s + pong {PONG_S} s), path down for {:.0} ms, \
         reconnected; {refilled} trades of the hole refilled from REST {:.0} ms and live data {:.0} ms after the path returned; \
         {} journal trades, 0 lost, 0 duplicated, book equal to the true book at u={}",
        isolation.as_str(),
        detection.as_secs_f64() * 1000.0,
        (restored_at - dropped_at).as_secs_f64() * 1000.0,
        (recovered_at - restored_at).as_secs_f64() * 1000.0,
        (live_at - restored_at).as_secs_f64() * 1000.0,
        expected.len(),
        truth.u,
    );
    let _ = stop.send(());
    let _ = collector.await;
    let _ = sim.kill().await;
    drop(net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_in_process_detected_by_heartbeat_and_hole_refilled() {
    half_open(Isolation::InProcess, std::process::id() * 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_worker_process_detected_by_heartbeat_and_hole_refilled() {
    half_open(Isolation::Process, std::process::id() * 2 + 1).await;
}
