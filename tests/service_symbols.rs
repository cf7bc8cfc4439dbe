//! The `run` service's errors for a new user: a data dir that is a file (or runs through one)
//! says so, one that cannot be created says "permission denied", and a symbol the exchange could not be asked about at start (instruments-info
//! unreachable) is verified once REST answers: its backfill waits, an unknown symbol then stops
//! the service with the same loud error as at start, a known one is backfilled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hft_connector::cli::run::{routes, Isolation, RunArgs};
use hft_connector::config::ServiceConfig;
use hft_connector::feed::Feed;
use hft_connector::protocol::Category;
use hft_connector::service::runner::{start, Running, ServiceError};
use hft_connector::service::FeedKey;
use hft_connector::sim::{FaultKind, FaultRequest, SimConfig, SimHandle, Simulator};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hftc-sym-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(&d);
    d
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig {
        symbols: vec!["BTCUSDT".into()],
        categories: vec![Category::Linear],
        rate: 50.0,
        history_days: 1,
        ..SimConfig::for_tests(29)
    })
    .await
    .unwrap()
}

fn config(sim: &SimHandle, data: &Path, symbol: &str) -> ServiceConfig {
    let args = RunArgs {
        symbols: Some(vec![symbol.into()]),
        category: Some(vec!["linear".into()]),
        ws_url: Some(format!("ws://{}/v5/public", sim.addr())),
        rest_url: Some(sim.rest_url()),
        data_dir: Some(data.to_path_buf()),
        listen: Some("127.0.0.1:0".into()),
        isolation: Some(Isolation::InProcess),
        backfill_days: Some(0.02),
        ..RunArgs::default()
    };
    ServiceConfig::load(&args.overrides(), Vec::new()).unwrap()
}

async fn run(cfg: ServiceConfig) -> Result<Running, ServiceError> {
    start(cfg, |f| Feed::spawn(f).map_err(|e| e.to_string()), routes).await
}

/// The next REST call (the start-up symbol check) fails as if the exchange were unreachable.
fn rest_down_once(sim: &SimHandle) {
    sim.inject(FaultRequest::new(FaultKind::RestError).count(1).status(503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_symbol_is_verified_when_rest_answers_and_fails_loudly() {
    let sim = sim().await;
    let data = tmp("unknown");
    rest_down_once(&sim);
    let r = run(config(&sim, &data, "NOPEUSDT"))
        .await
        .expect("an unreachable instruments-info does not stop the start");
    let key = FeedKey {
        category: Category::Linear,
        symbol: "NOPEUSDT".into(),
    };
    assert_eq!(
        r.state.status(&key).unwrap().backfill.state,
        "pending",
        "no backfill before the symbol is verified"
    );
    let e = tokio::time::timeout(Duration::from_secs(30), r.wait())
        .await
        .expect("the service stops once REST answers")
        .expect_err("an unknown symbol is fatal");
    assert!(
        matches!(&e, ServiceError::UnknownSymbol { symbol, .. } if symbol == "NOPEUSDT"),
        "the symbol check, not a blind backfill, caught it: {e}"
    );
    assert!(
        e.to_string().contains("not listed by instruments-info"),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_symbol_is_backfilled_once_verified() {
    let sim = sim().await;
    let data = tmp("known");
    rest_down_once(&sim);
    let r = run(config(&sim, &data, "BTCUSDT")).await.expect("starts");
    let key = FeedKey {
        category: Category::Linear,
        symbol: "BTCUSDT".into(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = r.state.status(&key).unwrap();
        if s.backfill.state == "done" {
            assert!(s.backfill.total > 0, "{s:?}");
            break;
        }
        assert!(s.backfill.state != "failed", "{s:?}");
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.stop();
    r.wait().await.expect("a clean stop");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_that_is_a_file_says_so() {
    let sim = sim().await;
    let file = tmp("file");
    std::fs::write(&file, b"not a dir").unwrap();
    for dir in [file.clone(), file.join("data")] {
        let e = run(config(&sim, &dir, "BTCUSDT"))
            .await
            .err()
            .expect("unusable data dir");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{} is a file, not a directory", file.display()))
                || msg.contains("it is a file, not a directory"),
            "{msg}"
        );
        assert!(msg.contains("--data-dir"), "{msg}");
    }
    let _ = std::fs::remove_file(&file);
    // A dir nobody may create (sysfs refuses even root): "permission denied", not an OS code.
    if Path::new("/sys/kernel").is_dir() {
        let e = run(config(&sim, Path::new("/sys/kernel/hftc-data"), "BTCUSDT"))
            .await
            .err()
            .expect("an uncreatable data dir");
        assert!(e.to_string().contains("permission denied"), "{e}");
    }
    sim.shutdown().await;
}
