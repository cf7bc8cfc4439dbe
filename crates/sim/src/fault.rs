//! Fault injection: the request (`POST /sim/fault`, [`super::SimHandle::inject`]), what each kind
//! does, and the report of what was done.
//!
//! Kinds (absent `symbol`/`category` = all):
//! - `close`: a clean close frame (1000) to the matching connections;
//! - `reset`: abrupt TCP reset (RST, no close frame);
//! - `stall`: for `seconds`, nothing at all is sent on the matching connections (pings unanswered);
//! - `silence`: for `seconds`, market frames stop (dropped, not delayed) but pongs and acks go on;
//! - `gap`: the next update of every matching 50/200/1000 book topic skips one `u`;
//! - `restart`: every matching book topic sends a `u = 1` snapshot and counts on from there;
//! - `malformed`: `count` (default 1) corrupt frames to the matching connections;
//! - `reject_subscribe`: for `seconds`, subscribes answer `success:false`;
//! - `refuse`: for `seconds`, new TCP connections are reset at once, except requests to the
//!   control routes (`/sim/...`), which stay reachable;
//! - `rest_error`: the next `count` (default 1) REST market calls answer HTTP `status`, or with
//!   `status` absent or 0 hang for `seconds` (default 30) and then answer 504 (a timeout);
//! - `slow`: for `seconds`, every frame to the matching connections is delayed by `millis` ms
//!   (or `count` ms when `millis` is absent; default 100);
//! - `blackhole`: for `seconds`, the exchange accepts connections and never answers them: a new
//!   connection (WebSocket or REST) is accepted and then neither read nor written until the fault
//!   ends (then it is closed), and a REST request on a connection already open is held
//!   unanswered until then (then 504); connections already streaming go on, and the control
//!   routes (`/sim/...`) stay reachable, like `refuse`. An exchange behind a load balancer whose
//!   back ends stopped answering.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::encode;
use super::hub::{Ctl, Out, NOT_MARKET};
use super::server::Shared;
use crate::protocol::Category;

/// A fault kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Clean close frame.
    Close,
    /// TCP reset.
    Reset,
    /// Nothing sent at all.
    Stall,
    /// Market data stops, pongs go on.
    Silence,
    /// Skip one `u`.
    Gap,
    /// `u = 1` snapshot.
    Restart,
    /// Corrupt frames.
    Malformed,
    /// Subscribes refused.
    RejectSubscribe,
    /// Connections refused.
    Refuse,
    /// REST errors or timeouts.
    RestError,
    /// Added latency.
    Slow,
    /// New connections and REST requests accepted and never answered.
    Blackhole,
}

impl FaultKind {
    /// The kinds the soak and the fault matrix draw from, in the order the README lists them:
    /// every kind but [`FaultKind::Blackhole`], which came with the stop tests (issue 28) and is
    /// not part of their mix yet.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Close,
        FaultKind::Reset,
        FaultKind::Stall,
        FaultKind::Silence,
        FaultKind::Gap,
        FaultKind::Restart,
        FaultKind::Malformed,
        FaultKind::RejectSubscribe,
        FaultKind::Refuse,
        FaultKind::RestError,
        FaultKind::Slow,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Close => "close",
            FaultKind::Reset => "reset",
            FaultKind::Stall => "stall",
            FaultKind::Silence => "silence",
            FaultKind::Gap => "gap",
            FaultKind::Restart => "restart",
            FaultKind::Malformed => "malformed",
            FaultKind::RejectSubscribe => "reject_subscribe",
            FaultKind::Refuse => "refuse",
            FaultKind::RestError => "rest_error",
            FaultKind::Slow => "slow",
            FaultKind::Blackhole => "blackhole",
        }
    }
}

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRequest {
    /// What to do.
    pub kind: FaultKind,
    /// How long (fractions allowed) for timed kinds.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// How many (frames, REST calls; ms for `slow` when `millis` is absent).
    #[serde(default)]
    pub count: Option<u64>,
    /// HTTP status for `rest_error` (0 or absent: time out).
    #[serde(default)]
    pub status: Option<u16>,
    /// Added latency of `slow`, in ms.
    #[serde(default)]
    pub millis: Option<u64>,
    /// Only this symbol.
    #[serde(default)]
    pub symbol: Option<String>,
    /// Only this category.
    #[serde(default)]
    pub category: Option<Category>,
    /// Only the this many oldest matching connections (connection-level kinds; e.g. 1 breaks one
    /// line of an A/B pair and leaves the other alone).
    #[serde(default)]
    pub max_connections: Option<usize>,
}

impl FaultRequest {
    /// A fault of `kind` on everything, with the kind's defaults.
    pub fn new(kind: FaultKind) -> Self {
        FaultRequest {
            kind,
            seconds: None,
            count: None,
            status: None,
            millis: None,
            symbol: None,
            category: None,
            max_connections: None,
        }
    }
    /// Sets `seconds`.
    pub fn seconds(mut self, s: f64) -> Self {
        self.seconds = Some(s);
        self
    }
    /// Sets `count`.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }
    /// Sets `status`.
    pub fn status(mut self, s: u16) -> Self {
        self.status = Some(s);
        self
    }
    /// Sets `millis`.
    pub fn millis(mut self, ms: u64) -> Self {
        self.millis = Some(ms);
        self
    }
    /// Only `symbol`.
    pub fn symbol(mut self, s: &str) -> Self {
        self.symbol = Some(s.to_string());
        self
    }
    /// Only `category`.
    pub fn category(mut self, c: Category) -> Self {
        self.category = Some(c);
        self
    }
    /// Only the `n` oldest matching connections.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }
}

/// What an injection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// The kind (wire name).
    pub kind: String,
    /// Whether it was applied (false: bad request, see `detail`).
    pub applied: bool,
    /// Connections affected.
    pub connections: usize,
    /// Book topics affected (`gap`, `restart`).
    pub topics: usize,
    /// Frames or REST calls concerned.
    pub count: u64,
    /// Duration of a timed fault (s).
    pub seconds: f64,
    /// Human-readable summary.
    pub detail: String,
}

/// A timed window scoped to a category and symbol.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// End (ms since start).
    pub until: u64,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this symbol.
    pub symbol: Option<String>,
}

/// Faults that are not tied to one connection.
#[derive(Debug, Default)]
pub struct GlobalFaults {
    /// `reject_subscribe`.
    pub reject_subscribe: Option<Window>,
    /// `refuse` ends then (ms since start).
    pub refuse_until: u64,
    /// `blackhole` ends then (ms since start).
    pub blackhole_until: u64,
    /// `rest_error` calls left.
    pub rest_errors: u64,
    /// Their status (0: time out).
    pub rest_status: u16,
    /// How long a timeout hangs.
    pub rest_hang: Duration,
}

impl GlobalFaults {
    /// Whether a subscribe of `topic` on `category` must be refused now.
    pub fn rejects(&self, now: u64, category: Category, topic: &str) -> bool {
        self.reject_subscribe.as_ref().is_some_and(|w| {
            now < w.until
                && w.category.is_none_or(|c| c == category)
                && w.symbol
                    .as_deref()
                    .is_none_or(|s| topic.rsplit('.').next() == Some(s))
        })
    }

    /// Takes one pending REST error: `Some(status)` (0: time out).
    pub fn take_rest_error(&mut self) -> Option<(u16, Duration)> {
        if self.rest_errors == 0 {
            return None;
        }
        self.rest_errors -= 1;
        Some((self.rest_status, self.rest_hang))
    }
}

fn bad(kind: FaultKind, detail: String) -> FaultReport {
    FaultReport {
        kind: kind.as_str().into(),
        applied: false,
        detail,
        ..FaultReport::default()
    }
}

/// Applies `req` to the simulator.
pub fn apply(shared: &Shared, req: &FaultRequest) -> FaultReport {
    let kind = req.kind;
    let seconds = match req.seconds {
        None => match kind {
            FaultKind::RestError => 30.0,
            _ => 5.0,
        },
        Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => s,
        Some(s) => {
            return bad(
                kind,
                format!("seconds must be between 0 and 86400, got {s}"),
            )
        }
    };
    if let Some(sym) = &req.symbol {
        if !crate::protocol::topic::valid_symbol(sym) {
            return bad(kind, format!("invalid symbol {sym:?}"));
        }
    }
    let now = shared.mono_ms();
    let until = now + (seconds * 1000.0).round() as u64;
    let mut report = FaultReport {
        kind: kind.as_str().into(),
        applied: true,
        seconds,
        ..FaultReport::default()
    };
    let (insts, conns) = {
        let core = shared.lock_core();
        let insts = core.matching(req.category, req.symbol.as_deref());
        let subscribed: Option<HashSet<u64>> =
            req.symbol.as_ref().map(|_| core.hub.subscribers_of(&insts));
        let mut conns: Vec<_> = shared
            .conns()
            .into_iter()
            .filter(|c| req.category.is_none_or(|cat| cat == c.category))
            .filter(|c| subscribed.as_ref().is_none_or(|s| s.contains(&c.id)))
            .collect();
        if let Some(n) = req.max_connections {
            // Ids grow with each accepted connection: the oldest first.
            conns.sort_by_key(|c| c.id);
            conns.truncate(n);
        }
        (insts, conns)
    };
    if insts.is_empty() && (req.symbol.is_some() || req.category.is_some()) {
        return bad(kind, "no instrument matches symbol/category".into());
    }
    report.connections = conns.len();
    match kind {
        FaultKind::Close | FaultKind::Reset => {
            let ctl = if kind == FaultKind::Close {
                Ctl::Close
            } else {
                Ctl::Reset
            };
            for c in &conns {
                let _ = c.ctl.send(ctl);
            }
        }
        FaultKind::Stall => conns
            .iter()
            .for_each(|c| c.with_faults(|f| f.stall_until = until)),
        FaultKind::Silence => {
            let only: Vec<u16> = if req.symbol.is_some() {
                insts.clone()
            } else {
                Vec::new()
            };
            for c in &conns {
                c.with_faults(|f| {
                    f.silence_until = until;
                    f.silence_insts.clone_from(&only);
                });
            }
        }
        FaultKind::Slow => {
            let ms = req.millis.or(req.count).unwrap_or(100);
            report.count = ms;
            for c in &conns {
                c.with_faults(|f| {
                    f.slow_until = until;
                    f.slow_ms = ms;
                });
            }
        }
        FaultKind::Malformed => {
            let n = req.count.unwrap_or(1).min(10_000);
            report.count = n;
            let core = shared.lock_core();
            for c in &conns {
                let inst = insts.first().map(|&i| &core.insts[usize::from(i)].inst);
                for k in 0..n {
                    let text = match inst {
                        Some(inst) => encode::malformed(inst, k as usize),
                        None => "{\"topic\":".to_string(),
                    };
                    c.push(Out {
                        text: text.into(),
                        at: std::time::Instant::now(),
                        inst: NOT_MARKET,
                    });
                }
            }
        }
        FaultKind::Gap => report.topics = shared.lock_core().gap(&insts),
        FaultKind::Restart => {
            report.topics = shared.lock_core().restart(&insts, super::server::wall_ms())
        }
        FaultKind::RejectSubscribe => {
            shared.with_global(|g| {
                g.reject_subscribe = Some(Window {
                    until,
                    category: req.category,
                    symbol: req.symbol.clone(),
                })
            });
        }
        FaultKind::Refuse => shared.with_global(|g| g.refuse_until = until),
        FaultKind::Blackhole => shared.with_global(|g| g.blackhole_until = until),
        FaultKind::RestError => {
            let n = req.count.unwrap_or(1);
            let status = req.status.unwrap_or(0);
            if status != 0 && !(400..=599).contains(&status) {
                return bad(
                    kind,
                    format!("status must be 0 (timeout) or 400..=599, got {status}"),
                );
            }
            report.count = n;
            shared.with_global(|g| {
                g.rest_errors = n;
                g.rest_status = status;
                g.rest_hang = Duration::from_secs_f64(seconds);
            });
        }
    }
    report.detail = format!(
        "{} applied to {} connection(s), {} topic(s)",
        kind.as_str(),
        report.connections,
        report.topics
    );
    shared.stats.fault(kind.as_str());
    report
}
