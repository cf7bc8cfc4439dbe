//! Fuzz target: the configuration parser. Any text as the TOML file, and after a NUL byte any
//! `KEY=VALUE` lines as `HFT_CONNECTOR_*` environment variables, through `ServiceConfig::load`.
//! Nothing may panic; an error must name a field; an accepted config must validate and survive a
//! round trip through TOML unchanged.
#![no_main]

use std::path::PathBuf;

use hft_connector::config::{Overrides, ServiceConfig};
use libfuzzer_sys::fuzz_target;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hft-fuzz-{}-{name}.toml", std::process::id()))
}

fn load(path: PathBuf, text: &str, env: Vec<(String, String)>) -> Result<ServiceConfig, String> {
    std::fs::write(&path, text).expect("temp file");
    let overrides = Overrides {
        config: Some(path),
        ..Overrides::default()
    };
    ServiceConfig::load(&overrides, env).map_err(|e| {
        assert!(!e.field.is_empty(), "an error names its field: {e:?}");
        e.to_string()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let k = if k.starts_with("HFT_CONNECTOR_") {
                k.to_string()
            } else {
                format!("HFT_CONNECTOR_{k}")
            };
            (k, v.to_string())
        })
        .collect();
    let Ok(cfg) = load(temp("in"), file, env) else {
        return;
    };
    if let Err(e) = cfg.validate() {
        panic!("load returned a config that does not validate: {e}");
    }
    let again = toml::to_string(&cfg).expect("an accepted config serializes");
    let reloaded = load(temp("again"), &again, Vec::new())
        .unwrap_or_else(|e| panic!("the serialized config is refused: {e}\n{again}"));
    assert_eq!(
        reloaded, cfg,
        "round trip through TOML changed the config:\n{again}"
    );
});
