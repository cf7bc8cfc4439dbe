//! The deployment's connector configuration (`deploy/connector/hft-connector.toml`) loads with the
//! service's own loader, with the secrets the systemd unit provides from the environment, and
//! describes what deploy/README.md says: A/B lines, three NATS servers, three replicas, and a
//! duplicate window that covers the worst case of its timers (no `nats_dedup_window_short`).

use hft_connector::config::{Overrides, ServiceConfig};
use hft_connector::sinks::dedup::{self, WorstCase};

#[test]
fn the_deployment_config_loads_and_its_dedup_window_covers_the_worst_case() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/connector/hft-connector.toml"
    );
    let overrides = Overrides {
        config: Some(path.into()),
        // What HFT_CONNECTOR_TOKEN gives `run --token` (the unit's secrets.env).
        token: Some("deploy-test-token".into()),
        ..Overrides::default()
    };
    let env = [
        ("HFT_CONNECTOR_SINKS_NATS_USER", "hft-connector"),
        ("HFT_CONNECTOR_SINKS_NATS_PASSWORD", "deploy-test-password"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg =
        ServiceConfig::load(&overrides, env).expect("deploy/connector/hft-connector.toml is valid");
    assert_eq!(cfg.feed.lines, 2, "A/B lines");
    let nats = &cfg.sinks.nats;
    assert_eq!(nats.servers().len(), 3);
    assert_eq!(nats.replicas, 3);
    assert_eq!(nats.auth_kind(), "user_password");
    assert_eq!(
        cfg.store.data_dir,
        std::path::Path::new("/var/lib/hft-connector"),
        "the unit's StateDirectory"
    );
    let w = WorstCase::of(&cfg);
    assert!(
        nats.dedup_window_s >= w.total_s(),
        "{} s < {w:?} = {} s",
        nats.dedup_window_s,
        w.total_s()
    );
    assert!(dedup::check(&cfg).is_none());
}
