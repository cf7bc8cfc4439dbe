//! Tests of the service configuration: defaults, file, environment and flag precedence, and
//! validation errors that name the field.

use super::*;

fn args() -> Overrides {
    Overrides::default()
}

#[test]
fn defaults_target_bybit_mainnet() {
    let c = ServiceConfig::load(&args(), Vec::new()).unwrap();
    assert_eq!(c.feed.symbols, vec!["BTCUSDT"]);
    assert_eq!(c.categories(), vec![Category::Linear]);
    assert_eq!(c.feed.depth, 50);
    assert_eq!(c.store.data_dir, PathBuf::from("./data"));
    assert_eq!(c.http.listen, "127.0.0.1:8080");
    assert_eq!(c.service.isolation, Isolation::Process);
    assert_eq!(
        c.feeds()[0].ws_endpoint(),
        "wss://stream.bybit.com/v5/public/linear"
    );
    assert!(c.backfill.enabled);
    assert_eq!(c.backfill.days, 90.0);
}

#[test]
fn file_then_env_then_flags() {
    let dir = std::env::temp_dir().join(format!("hftc-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        "[feed]\nsymbols = [\"ETHUSDT\"]\ndepth = 200\n[health]\nstale_after_s = 12.5\n[http]\nlisten = \"127.0.0.1:9000\"\n[backfill]\ndays = 7\n",
    )
    .unwrap();
    let mut a = args();
    a.config = Some(path);
    let env = vec![
        (
            "HFT_CONNECTOR_FEED_SYMBOLS".to_string(),
            "SOLUSDT, XRPUSDT".to_string(),
        ),
        ("HFT_CONNECTOR_HEALTH_GRACE_S".to_string(), "3".to_string()),
        (
            "HFT_CONNECTOR_SERVICE_ISOLATION".to_string(),
            "in-process".to_string(),
        ),
        (
            "HFT_CONNECTOR_BACKFILL_INTERVAL".to_string(),
            "5".to_string(),
        ),
        (
            "HFT_CONNECTOR_WORKER_SOMETHING".to_string(),
            "ignored".to_string(),
        ),
        ("PATH".to_string(), "/bin".to_string()),
    ];
    let c = ServiceConfig::load(&a, env.clone()).unwrap();
    assert_eq!(c.feed.symbols, vec!["SOLUSDT", "XRPUSDT"], "env beats file");
    assert_eq!(c.feed.depth, 200, "file beats default");
    assert_eq!(c.health.stale_after_s, 12.5);
    assert_eq!(c.health.grace_s, 3.0);
    assert_eq!(c.service.isolation, Isolation::InProcess);
    assert_eq!(c.backfill.days, 7.0);
    assert_eq!(c.backfill.interval, "5", "numeric-looking text stays text");
    a.symbols = Some(vec!["BTCUSDT".into()]);
    a.category = Some(vec!["spot".into(), "linear".into()]);
    a.listen = Some("127.0.0.1:0".into());
    a.backfill_days = Some(0.0);
    let c = ServiceConfig::load(&a, env).unwrap();
    assert_eq!(c.feed.symbols, vec!["BTCUSDT"], "flags beat env");
    assert_eq!(c.categories(), vec![Category::Spot, Category::Linear]);
    assert_eq!(c.feeds().len(), 2);
    assert_eq!(c.http.listen, "127.0.0.1:0");
    assert!(!c.backfill.enabled);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_values_name_the_field() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("HFT_CONNECTOR_FEED_SYMBOLS", "btcusdt")],
            "feed.symbols",
        ),
        (vec![("HFT_CONNECTOR_FEED_DEPTH", "500")], "feed.depth"),
        (
            vec![("HFT_CONNECTOR_BACKFILL_INTERVAL", "7")],
            "backfill.interval",
        ),
        (
            vec![("HFT_CONNECTOR_STORE_CANDLE_INTERVALS", "1,7")],
            "store.candle_intervals",
        ),
        (
            vec![("HFT_CONNECTOR_BACKFILL_CONCURRENCY", "0")],
            "backfill.concurrency",
        ),
        (
            vec![("HFT_CONNECTOR_HTTP_LISTEN", "localhost")],
            "http.listen",
        ),
        (vec![("HFT_CONNECTOR_HTTP_TOKEN", "short")], "http.token"),
        (
            vec![("HFT_CONNECTOR_HEALTH_STALE_AFTER_S", "0")],
            "health.stale_after_s",
        ),
        (vec![("HFT_CONNECTOR_FEED_NOPE", "1")], "config"),
        (vec![("HFT_CONNECTOR_LOG_FORMAT", "xml")], "log.format"),
    ];
    for (env, field) in cases {
        let env: Vec<(String, String)> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let e = ServiceConfig::load(&args(), env.clone()).expect_err(field);
        assert_eq!(e.field, field, "{env:?}: {e}");
    }
    let mut a = args();
    a.category = Some(vec!["futures".into()]);
    assert_eq!(
        ServiceConfig::load(&a, Vec::new()).unwrap_err().field,
        "--category"
    );
    a = args();
    a.config = Some(PathBuf::from("/nonexistent/hft.toml"));
    let e = ServiceConfig::load(&a, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/hft.toml"), "{e}");
}

#[test]
fn log_format_from_file_then_env_then_flag() {
    use crate::terminal::LogFormat;
    assert_eq!(
        ServiceConfig::load(&args(), Vec::new())
            .unwrap()
            .log
            .format(),
        LogFormat::Auto
    );
    let dir = std::env::temp_dir().join(format!("hftc-config-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, "[log]\nformat = \"json\"\n").unwrap();
    let mut a = args();
    a.config = Some(path);
    assert_eq!(
        ServiceConfig::load(&a, Vec::new()).unwrap().log.format(),
        LogFormat::Json
    );
    let env = vec![("HFT_CONNECTOR_LOG_FORMAT".to_string(), "pretty".to_string())];
    let c = ServiceConfig::load(&a, env.clone()).unwrap();
    assert_eq!(c.log.format(), LogFormat::Pretty, "env beats file");
    a.log_format = Some(LogFormat::Auto);
    let c = ServiceConfig::load(&a, env).unwrap();
    assert_eq!(c.log.format(), LogFormat::Auto, "flag beats env");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn lines_come_from_the_file_the_environment_or_the_flag_and_are_checked() {
    let c = ServiceConfig::load(&args(), Vec::new()).unwrap();
    assert_eq!(c.feed.lines, 1, "one line by default: today's path");
    let env = vec![("HFT_CONNECTOR_FEED_LINES".to_string(), "2".to_string())];
    let c = ServiceConfig::load(&args(), env.clone()).unwrap();
    assert_eq!((c.feed.lines, c.feeds()[0].feed.lines), (2, 2));
    let mut a = args();
    a.lines = Some(1);
    assert_eq!(
        ServiceConfig::load(&a, env).unwrap().feed.lines,
        1,
        "the flag wins"
    );
    a.lines = Some(3);
    let e = ServiceConfig::load(&a, Vec::new()).unwrap_err();
    assert_eq!(e.field, "feed.lines");
    assert!(
        e.reason.contains("use 1") && e.reason.contains("or 2"),
        "{e}"
    );
    let env = vec![(
        "HFT_CONNECTOR_FEED_LINE_STALL_S".to_string(),
        "0".to_string(),
    )];
    let e = ServiceConfig::load(&args(), env).unwrap_err();
    assert_eq!(e.field, "feed.line_stall_s");
}

#[test]
fn a_listen_address_other_machines_reach_requires_a_token() {
    let load = |listen: &str, token: Option<&str>| {
        let mut a = args();
        a.listen = Some(listen.into());
        a.token = token.map(String::from);
        ServiceConfig::load(&a, Vec::new())
    };
    for open in [
        "0.0.0.0:8080",
        "192.168.1.10:8080",
        "[::]:8080",
        "[::ffff:10.0.0.1]:80",
    ] {
        let e = load(open, None).expect_err(open);
        assert_eq!(e.field, "http.listen", "{open}: {e}");
        let text = e.to_string();
        for names in ["http.token", "HFT_CONNECTOR_HTTP_TOKEN", "--token", open] {
            assert!(text.contains(names), "{open}: {text} does not name {names}");
        }
        let c = load(open, Some("s3cret-token")).expect("a token makes it fine");
        assert_eq!(c.http.token.as_deref(), Some("s3cret-token"));
    }
    for loopback in [
        "127.0.0.1:8080",
        "127.8.9.10:0",
        "[::1]:8080",
        "[::ffff:127.0.0.1]:8080",
        "localhost:8080",
        "LOCALHOST:0",
    ] {
        let c = load(loopback, None).unwrap_or_else(|e| panic!("{loopback}: {e}"));
        assert!(c.listen_addr().unwrap().ip().to_canonical().is_loopback());
    }
    assert_eq!(
        load("localhost:9", None).unwrap().listen_addr().unwrap(),
        "127.0.0.1:9".parse().unwrap()
    );
    // The token may come from the environment too.
    let mut a = args();
    a.listen = Some("0.0.0.0:8080".into());
    let env = vec![(
        "HFT_CONNECTOR_HTTP_TOKEN".to_string(),
        "from-the-env".to_string(),
    )];
    assert!(ServiceConfig::load(&a, env).is_ok());
}

#[test]
fn busy_polling_comes_from_the_file_the_environment_or_the_flag_and_is_checked() {
    let c = ServiceConfig::load(&args(), Vec::new()).unwrap();
    assert_eq!(c.feed.busy_poll_us, 0, "off by default: no core spent");
    let env = vec![(
        "HFT_CONNECTOR_FEED_BUSY_POLL_US".to_string(),
        "500".to_string(),
    )];
    let c = ServiceConfig::load(&args(), env.clone()).unwrap();
    assert_eq!(
        (c.feed.busy_poll_us, c.feeds()[0].feed.busy_poll_us),
        (500, 500)
    );
    let mut a = args();
    a.busy_poll_us = Some(2000);
    assert_eq!(
        ServiceConfig::load(&a, env).unwrap().feed.busy_poll_us,
        2000,
        "the flag wins"
    );
    a.busy_poll_us = Some(60_000_000);
    let e = ServiceConfig::load(&a, Vec::new()).unwrap_err();
    assert_eq!(e.field, "feed.busy_poll_us");
    assert!(e.reason.contains("at most"), "{e}");
}

#[test]
fn the_shutdown_timeout_comes_from_the_file_the_environment_or_the_flag_and_is_checked() {
    let c = ServiceConfig::load(&args(), Vec::new()).unwrap();
    assert_eq!(c.service.shutdown_timeout_s, 10.0, "10 s by default");
    assert_eq!(
        c.service.shutdown_timeout(),
        std::time::Duration::from_secs(10)
    );
    let dir = std::env::temp_dir().join(format!("hftc-config-stop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, "[service]\nshutdown_timeout_s = 4.5\n").unwrap();
    let mut a = args();
    a.config = Some(path);
    assert_eq!(
        ServiceConfig::load(&a, Vec::new())
            .unwrap()
            .service
            .shutdown_timeout_s,
        4.5
    );
    let env = vec![(
        "HFT_CONNECTOR_SERVICE_SHUTDOWN_TIMEOUT_S".to_string(),
        "3".to_string(),
    )];
    assert_eq!(
        ServiceConfig::load(&a, env.clone())
            .unwrap()
            .service
            .shutdown_timeout_s,
        3.0,
        "env beats file"
    );
    a.shutdown_timeout_s = Some(0.5);
    assert_eq!(
        ServiceConfig::load(&a, env)
            .unwrap()
            .service
            .shutdown_timeout(),
        std::time::Duration::from_millis(500),
        "the flag wins"
    );
    for bad in [0.0, -1.0, f64::INFINITY, 7200.0] {
        a.shutdown_timeout_s = Some(bad);
        let e = ServiceConfig::load(&a, Vec::new()).unwrap_err();
        assert_eq!(e.field, "service.shutdown_timeout_s", "{bad}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
