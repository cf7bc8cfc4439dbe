//! The duplicate window's worst case: how long after a message is first published the same
//! `Nats-Msg-Id` can be published again (a re-send after an ack was lost, or a redundant publisher
//! filling the same trades from REST after its own outage). A window shorter than that stores the
//! late copy a second time; [`check`] logs `nats_dedup_window_short` when it is.

use std::time::Duration;

use serde::Serialize;

use super::nats::{NATS_CONNECT_TIMEOUT, NATS_MAX_RECONNECT_DELAY};
use crate::config::ServiceConfig;

/// What a JetStream leader election may take: nats-server's raft election timeout is drawn
/// between 4 and 9 s, plus a second for the new leader to take over the stream.
pub const ELECTION: Duration = Duration::from_secs(10);

/// The REST refill of one symbol after a reconnect: three attempts, each up to
/// `reconnect.connect_timeout_s`, with 0.4 s and 0.8 s between them.
const REFILL_ATTEMPTS: f64 = 3.0;
const REFILL_PAUSES_S: f64 = 1.2;

/// The worst case, term by term (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WorstCase {
    /// Noticing a dead or silent exchange connection: the later of the pong timeout
    /// (`ping_interval_s + pong_timeout_s`) and `health.stale_after_s`.
    pub detect_s: f64,
    /// The longest pause before a reconnect plus its connect timeout.
    pub reconnect_s: f64,
    /// One symbol's REST refill with all its attempts.
    pub gap_fill_s: f64,
    /// The sink's own re-send: an ack timeout, a NATS reconnect pause and connect timeout.
    pub resend_s: f64,
    /// A JetStream leader election, during which the stream accepts nothing.
    pub election_s: f64,
}

impl WorstCase {
    /// The worst case of `cfg`'s timers.
    pub fn of(cfg: &ServiceConfig) -> WorstCase {
        let hb = &cfg.heartbeat;
        let rc = &cfg.reconnect;
        WorstCase {
            detect_s: (hb.ping_interval_s + hb.pong_timeout_s).max(cfg.health.stale_after_s),
            reconnect_s: rc.max_delay_s + rc.connect_timeout_s,
            gap_fill_s: REFILL_ATTEMPTS * rc.connect_timeout_s + REFILL_PAUSES_S,
            resend_s: cfg.sinks.nats.ack_timeout_s
                + NATS_MAX_RECONNECT_DELAY.as_secs_f64()
                + NATS_CONNECT_TIMEOUT.as_secs_f64(),
            election_s: ELECTION.as_secs_f64(),
        }
    }

    /// The sum of the terms.
    pub fn total_s(&self) -> f64 {
        self.detect_s + self.reconnect_s + self.gap_fill_s + self.resend_s + self.election_s
    }
}

/// Logs `nats_dedup_window_short` (WARN) when the sink is on and `sinks.nats.dedup_window_s` is
/// shorter than the worst case; returns the worst case when it is.
pub fn check(cfg: &ServiceConfig) -> Option<WorstCase> {
    let nats = &cfg.sinks.nats;
    if !nats.enabled() {
        return None;
    }
    let w = WorstCase::of(cfg);
    if nats.dedup_window_s >= w.total_s() {
        return None;
    }
    tracing::warn!(
        event = "nats_dedup_window_short",
        dedup_window_s = nats.dedup_window_s,
        worst_case_s = w.total_s(),
        detect_s = w.detect_s,
        reconnect_s = w.reconnect_s,
        gap_fill_s = w.gap_fill_s,
        resend_s = w.resend_s,
        election_s = w.election_s,
        detail = "a message re-published later than the window (a re-send, or a redundant publisher refilling after its own outage) is stored twice: raise sinks.nats.dedup_window_s or shorten the heartbeat, health and reconnect timers"
    );
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn cfg(pairs: &[(&str, &str)]) -> ServiceConfig {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        ServiceConfig::load(&Overrides::default(), env).expect("valid")
    }

    #[test]
    fn worst_case_adds_detection_reconnect_refill_resend_and_election() {
        let c = cfg(&[
            ("HFT_CONNECTOR_SINKS_NATS_URL", "nats://127.0.0.1:4222"),
            ("HFT_CONNECTOR_HEARTBEAT_PING_INTERVAL_S", "5"),
            ("HFT_CONNECTOR_HEARTBEAT_PONG_TIMEOUT_S", "5"),
            ("HFT_CONNECTOR_HEALTH_STALE_AFTER_S", "8"),
            ("HFT_CONNECTOR_RECONNECT_MAX_DELAY_S", "4"),
            ("HFT_CONNECTOR_RECONNECT_CONNECT_TIMEOUT_S", "2"),
            ("HFT_CONNECTOR_SINKS_NATS_ACK_TIMEOUT_S", "3"),
        ]);
        let w = WorstCase::of(&c);
        assert_eq!(w.detect_s, 10.0, "ping + pong beats stale");
        assert_eq!(w.reconnect_s, 6.0);
        assert_eq!(w.gap_fill_s, 7.2);
        assert_eq!(w.resend_s, 3.0 + 2.0 + 5.0);
        assert_eq!(w.election_s, 10.0);
        assert!((w.total_s() - 43.2).abs() < 1e-9);
        assert_eq!(check(&c), None, "120 s covers 43.2 s");
    }

    #[test]
    fn a_short_window_is_reported_and_the_defaults_need_more_than_120_s() {
        let url = ("HFT_CONNECTOR_SINKS_NATS_URL", "nats://127.0.0.1:4222");
        let short = cfg(&[url, ("HFT_CONNECTOR_SINKS_NATS_DEDUP_WINDOW_S", "30")]);
        let w = check(&short).expect("30 s is short");
        // The defaults: stale 60 s; max delay 30 s + connect 10 s; refill 3 x 10 s + 1.2 s;
        // ack 5 s + 2 s + 5 s; election 10 s.
        assert!((w.total_s() - 153.2).abs() < 1e-9, "{w:?}");
        assert!(check(&cfg(&[url])).is_some(), "the default 120 s is short");
        assert!(check(&cfg(&[
            url,
            ("HFT_CONNECTOR_SINKS_NATS_DEDUP_WINDOW_S", "300")
        ]))
        .is_none());
        assert!(check(&cfg(&[])).is_none(), "no sink, nothing to check");
    }
}
