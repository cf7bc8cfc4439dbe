//! `hft-connector tail`: reads a JetStream subject as JSON lines on stdout, from a stream sequence
//! or a time, and reports gaps on stderr (messages the stream no longer holds, book updates whose
//! `u` skipped ids).

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use clap::Args;
use futures_util::StreamExt;
use time::OffsetDateTime;

/// Flags of `tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// NATS server URL (e.g. nats://127.0.0.1:4222).
    #[arg(long = "nats", value_name = "URL")]
    pub nats: String,
    /// Subject, wildcards allowed (e.g. md.bybit.linear.BTCUSDT.trade or md.>).
    #[arg(long, value_name = "SUBJ")]
    pub subject: String,
    /// Stream name (default: the stream that holds the subject).
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Start at this stream sequence (resume: the last printed sequence + 1).
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub from_seq: Option<u64>,
    /// Start at this time: RFC 3339 (2026-11-29T08:00:00Z), Unix ms, or an age like 90s, 15m, 2h, 1d.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stop after N messages (default: follow until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Parses `--since`: RFC 3339, Unix ms, or an age (`90s`, `15m`, `2h`, `1d`) before `now`.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let t = text.trim();
    if let Ok(dt) = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Ok(dt);
    }
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        let ms: i128 = t.parse().map_err(|e| format!("{t:?}: {e}"))?;
        return OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
            .map_err(|e| format!("{t:?}: {e}"));
    }
    let unit = t.chars().last().unwrap_or(' ');
    let secs = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => 0.0,
    };
    let n: Option<f64> = t[..t.len().saturating_sub(1)].parse().ok();
    match n {
        Some(n) if secs > 0.0 && n.is_finite() && n >= 0.0 => {
            Ok(now - Duration::from_secs_f64(n * secs))
        }
        _ => Err(format!(
            "{t:?} is not a time: use RFC 3339 (2026-11-29T08:00:00Z), Unix ms, or an age like 90s, 15m, 2h, 1d"
        )),
    }
}

/// Book `u` continuity per (category, symbol, depth): reports deltas that skipped ids.
#[derive(Debug, Default)]
pub struct GapTracker {
    last_u: HashMap<(String, String, u64), u64>,
}

/// A gap in a book's updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookGap {
    /// Category.
    pub category: String,
    /// Symbol.
    pub symbol: String,
    /// Depth.
    pub depth: u64,
    /// The `u` that should have come next.
    pub expected_u: u64,
    /// The `u` that came.
    pub got_u: u64,
}

impl GapTracker {
    /// Looks at one payload; a delta whose `u` is not the previous + 1 is a gap (a snapshot starts
    /// afresh; an older `u`, e.g. from a slower redundant publisher, is not).
    pub fn check(&mut self, v: &serde_json::Value) -> Option<BookGap> {
        if v.get("type")?.as_str()? != "book" {
            return None;
        }
        let key = (
            v.get("category")?.as_str()?.to_string(),
            v.get("symbol")?.as_str()?.to_string(),
            v.get("depth")?.as_u64()?,
        );
        let u = v.get("u")?.as_u64()?;
        let snapshot = v.get("kind").and_then(|k| k.as_str()) == Some("snapshot");
        let prev = self.last_u.get(&key).copied();
        match prev {
            Some(p) if u <= p => return None,
            _ => {}
        }
        self.last_u.insert(key.clone(), u);
        match prev {
            Some(p) if !snapshot && u != p + 1 => Some(BookGap {
                category: key.0,
                symbol: key.1,
                depth: key.2,
                expected_u: p + 1,
                got_u: u,
            }),
            _ => None,
        }
    }
}

/// Runs `tail`.
pub fn main(args: TailArgs) -> ExitCode {
    crate::logging::init_json();
    // A signal at any moment (connecting, looking up the stream, reading) ends `tail` cleanly; a
    // stop stuck on a stdout nobody reads is ended by the watchdog (`[service]
    // shutdown_timeout_s`, default 10 s, from the environment); a second signal exits at once.
    let signals = crate::shutdown::Signals::install();
    let bound = crate::config::ServiceConfig::load(&Default::default(), std::env::vars())
        .map(|c| c.service.shutdown_timeout())
        .unwrap_or_else(|_| crate::shutdown::timeout_of(crate::shutdown::DEFAULT_TIMEOUT_S));
    signals.set_bound(bound);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hft-connector tail: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            biased;
            r = tail(args, &signals) => match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hft-connector tail: {e}");
                    ExitCode::from(2)
                }
            },
            // Stopped before reading anything (e.g. while a server that does not answer is
            // being connected to).
            _ = signals.first() => {
                tracing::info!(event = "tail_done", reason = "signal", messages = 0u64);
                ExitCode::SUCCESS
            }
        }
    });
    runtime.shutdown_timeout(crate::cli::EXIT_GRACE);
    code
}

async fn tail(args: TailArgs, signals: &crate::shutdown::Signals) -> Result<(), String> {
    let deliver_policy = match (&args.from_seq, &args.since) {
        (Some(0), _) => return Err("--from-seq: stream sequences start at 1".into()),
        (Some(n), _) => consumer::DeliverPolicy::ByStartSequence { start_sequence: *n },
        (None, Some(s)) => consumer::DeliverPolicy::ByStartTime {
            start_time: parse_since(s, OffsetDateTime::now_utc())
                .map_err(|e| format!("--since: {e}"))?,
        },
        (None, None) => consumer::DeliverPolicy::New,
    };
    let client = async_nats::ConnectOptions::new()
        .name("hft-connector tail")
        .connection_timeout(Duration::from_secs(5))
        .connect(args.nats.as_str())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.nats))?;
    let js = jetstream::new(client);
    let name = match &args.stream {
        Some(s) => s.clone(),
        None => js
            .stream_by_subject(args.subject.clone())
            .await
            .map_err(|e| format!("no stream holds {:?}: {e}", args.subject))?,
    };
    let mut stream = js
        .get_stream(&name)
        .await
        .map_err(|e| format!("stream {name:?}: {e}"))?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("stream {name:?}: {e}"))?;
    let first = info.state.first_sequence;
    if let Some(from) = args.from_seq {
        if from < first {
            tracing::warn!(
                event = "tail_gap",
                kind = "stream",
                from_seq = from,
                first_seq = first,
                missing = first - from,
                detail = "the stream no longer holds these messages (limits or purge)"
            );
        }
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: args.subject.clone(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot create a consumer on {name:?}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("cannot read {name:?}: {e}"))?;
    let stdout = std::io::stdout();
    let mut gaps = GapTracker::default();
    let mut seen: u64 = 0;
    let mut last_seq: Option<u64> = None;
    if args.count == Some(0) {
        return Ok(());
    }
    loop {
        let msg = tokio::select! {
            biased;
            _ = signals.first() => {
                signals.stopping();
                break;
            }
            m = messages.next() => m,
        };
        let Some(msg) = msg else { break };
        let msg = msg.map_err(|e| format!("reading {name:?}: {e}"))?;
        if let Ok(i) = msg.info() {
            last_seq = Some(i.stream_sequence);
        }
        let text = String::from_utf8_lossy(&msg.payload);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(g) = gaps.check(&v) {
                tracing::warn!(event = "tail_gap", kind = "book", category = %g.category, symbol = %g.symbol, depth = g.depth, expected_u = g.expected_u, got_u = g.got_u, seq = last_seq);
            }
        }
        let mut out = stdout.lock();
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            break;
        }
        seen += 1;
        if args.count.is_some_and(|c| seen >= c) {
            break;
        }
    }
    tracing::info!(event = "tail_done", stream = %name, messages = seen, last_seq, resume_from_seq = last_seq.map(|s| s + 1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_accepts_rfc3339_ms_and_ages() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            parse_since("2026-11-29T08:00:00Z", now)
                .unwrap()
                .unix_timestamp(),
            1_795_939_200
        );
        assert_eq!(parse_since("1800000000000", now).unwrap(), now);
        assert_eq!(
            parse_since("90s", now).unwrap().unix_timestamp(),
            1_800_000_000 - 90
        );
        assert_eq!(
            parse_since("2h", now).unwrap().unix_timestamp(),
            1_800_000_000 - 7200
        );
        assert_eq!(
            parse_since("1.5m", now).unwrap().unix_timestamp(),
            1_800_000_000 - 90
        );
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("-5m", now).is_err());
    }

    fn book(u: u64, kind: &str) -> serde_json::Value {
        json!({"type":"book","category":"linear","symbol":"BTCUSDT","depth":50,"u":u,"kind":kind})
    }

    #[test]
    fn gaps_are_skipped_ids_in_deltas_only() {
        let mut g = GapTracker::default();
        assert!(g.check(&book(10, "snapshot")).is_none());
        assert!(g.check(&book(11, "delta")).is_none());
        let gap = g.check(&book(13, "delta")).unwrap();
        assert_eq!((gap.expected_u, gap.got_u), (12, 13));
        // A late duplicate from a slower publisher is not a gap; a snapshot starts afresh.
        assert!(g.check(&book(12, "delta")).is_none());
        assert!(g.check(&book(40, "snapshot")).is_none());
        assert!(g.check(&book(41, "delta")).is_none());
        assert!(g.check(&json!({"type":"trade","id":"1"})).is_none());
    }
}
