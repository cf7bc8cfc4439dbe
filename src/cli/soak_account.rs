//! The soak's bookkeeping: every trade the service delivered against the simulator's journal
//! (lost, unrecoverable, duplicated, unexpected), and what `/proc` says about the process and its
//! workers (RSS, open descriptors, zombies).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// Trades of one symbol: the journal's truth and what the service delivered.
#[derive(Debug, Default)]
pub struct SymbolTrades {
    /// Journal trades: id -> exchange time (ms).
    pub journal: HashMap<String, u64>,
    /// Newest journal time fetched so far (the next fetch starts there).
    pub journal_last_ms: Option<u64>,
    /// Id of the newest journal trade fetched.
    pub journal_last_id: Option<String>,
    /// Delivered trades: id -> times delivered.
    pub delivered: HashMap<String, u32>,
    /// Holes the service reported as unrecoverable (`bybit_connector_trade_gap_unrecoverable`).
    pub unrecoverable_gaps: Vec<(u64, u64)>,
    /// Trades left out of the account (from before the service subscribed).
    pub ignored: HashSet<String>,
}

/// The result of comparing delivered trades with the journal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TradeCounts {
    /// Trades in the journal.
    pub journal: u64,
    /// Distinct trades delivered.
    pub delivered: u64,
    /// Journal trades never delivered although REST still had them.
    pub lost: u64,
    /// Journal trades never delivered inside a hole the service reported as unrecoverable.
    pub unrecoverable: u64,
    /// Extra deliveries of a trade already delivered.
    pub duplicated: u64,
    /// Delivered trades the journal does not have.
    pub unexpected: u64,
}

impl TradeCounts {
    fn add(&mut self, o: TradeCounts) {
        self.journal += o.journal;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.unrecoverable += o.unrecoverable;
        self.duplicated += o.duplicated;
        self.unexpected += o.unexpected;
    }
}

impl SymbolTrades {
    /// Adds journal trades (already known and ignored ids are skipped).
    pub fn add_journal(&mut self, trades: impl IntoIterator<Item = (String, u64)>) {
        for (id, ts) in trades {
            if self.ignored.contains(&id) {
                continue;
            }
            if self.journal_last_ms.is_none_or(|l| ts >= l) {
                self.journal_last_ms = Some(ts);
                self.journal_last_id = Some(id.clone());
            }
            self.journal.entry(id).or_insert(ts);
        }
    }

    /// Leaves these trades out of the account (they happened before the service subscribed).
    pub fn ignore(&mut self, trades: impl IntoIterator<Item = (String, u64)>) {
        for (id, ts) in trades {
            self.ignored.insert(id);
            if self.journal_last_ms.is_none_or(|l| ts > l) {
                self.journal_last_ms = Some(ts);
            }
        }
    }

    /// Records one delivery.
    pub fn deliver(&mut self, id: &str) {
        *self.delivered.entry(id.to_string()).or_insert(0) += 1;
    }

    /// True when the newest journal trade has been delivered (or the journal is empty).
    pub fn caught_up(&self) -> bool {
        self.journal_last_id
            .as_ref()
            .is_none_or(|id| self.delivered.contains_key(id))
    }

    /// Journal trades never delivered and not inside a reported hole, oldest first: (id, time).
    pub fn lost(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .journal
            .iter()
            .filter(|(id, ts)| {
                !self.delivered.contains_key(*id)
                    && !self
                        .unrecoverable_gaps
                        .iter()
                        .any(|(from, to)| (*from..=*to).contains(*ts))
            })
            .map(|(id, ts)| (id.clone(), *ts))
            .collect();
        v.sort_by_key(|(_, ts)| *ts);
        v
    }

    /// Compares deliveries with the journal.
    pub fn counts(&self) -> TradeCounts {
        let mut c = TradeCounts {
            journal: self.journal.len() as u64,
            delivered: self
                .delivered
                .keys()
                .filter(|id| !self.ignored.contains(*id))
                .count() as u64,
            ..TradeCounts::default()
        };
        for (id, ts) in &self.journal {
            if self.delivered.contains_key(id) {
                continue;
            }
            if self
                .unrecoverable_gaps
                .iter()
                .any(|(from, to)| (*from..=*to).contains(ts))
            {
                c.unrecoverable += 1;
            } else {
                c.lost += 1;
            }
        }
        for (id, n) in &self.delivered {
            if self.ignored.contains(id) {
                continue;
            }
            c.duplicated += u64::from(n.saturating_sub(1));
            if !self.journal.contains_key(id) {
                c.unexpected += 1;
            }
        }
        c
    }
}

/// Every symbol's trades.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Per symbol.
    pub symbols: BTreeMap<String, SymbolTrades>,
    /// Stream events the observer missed because it fell behind (makes the counts unreliable).
    pub observer_lagged: u64,
}

impl Ledger {
    /// One symbol's entry.
    pub fn symbol(&mut self, s: &str) -> &mut SymbolTrades {
        self.symbols.entry(s.to_string()).or_default()
    }

    /// Totals over every symbol.
    pub fn totals(&self) -> TradeCounts {
        let mut t = TradeCounts::default();
        for s in self.symbols.values() {
            t.add(s.counts());
        }
        t
    }
}

/// Parses the detail of a `bybit_connector_trade_gap_unrecoverable` event
/// (`trades between FROM and TO could not be recovered`).
pub fn parse_gap(detail: &str) -> Option<(u64, u64)> {
    let rest = detail.strip_prefix("trades between ")?;
    let mut words = rest.split_whitespace();
    let from = words.next()?.parse().ok()?;
    if words.next()? != "and" {
        return None;
    }
    let to = words.next()?.parse().ok()?;
    Some((from, to))
}

/// Resident memory (kB) and open descriptors of one process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcUsage {
    /// VmRSS (kB).
    pub rss_kb: u64,
    /// Entries in `/proc/PID/fd`.
    pub fds: u64,
}

/// Reads `/proc/PID/status` and `/proc/PID/fd` (`None` when the process is gone).
pub fn usage(pid: u32) -> Option<ProcUsage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some(ProcUsage { rss_kb, fds })
}

/// The children of `parent` with their state letter (`R`, `S`, `T`, `Z`, ...).
pub fn children(parent: u32) -> Vec<(u32, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": the command may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = after.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push((pid, state));
        }
    }
    out
}

/// Memory and descriptors of this process and of its children except `skip` (the simulator).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// This process (the service).
    pub service: ProcUsage,
    /// Its worker processes together.
    pub workers: ProcUsage,
    /// Worker processes alive.
    pub worker_count: u64,
    /// Children that exited and were not reaped.
    pub zombies: u64,
}

/// Measures the service process and its workers now.
pub fn footprint(skip: Option<u32>) -> Footprint {
    let me = std::process::id();
    let mut f = Footprint {
        service: usage(me).unwrap_or_default(),
        ..Footprint::default()
    };
    for (pid, state) in children(me) {
        if Some(pid) == skip {
            continue;
        }
        if state == 'Z' {
            f.zombies += 1;
            continue;
        }
        if let Some(u) = usage(pid) {
            f.workers.rss_kb += u.rss_kb;
            f.workers.fds += u.fds;
            f.worker_count += 1;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lost_unrecoverable_duplicated_and_unexpected() {
        let mut s = SymbolTrades::default();
        s.add_journal([
            ("a".to_string(), 10),
            ("b".to_string(), 20),
            ("c".to_string(), 30),
            ("d".to_string(), 40),
        ]);
        assert_eq!(s.journal_last_id.as_deref(), Some("d"));
        s.deliver("a");
        s.deliver("a");
        s.deliver("d");
        s.deliver("zz");
        assert!(s.caught_up());
        s.unrecoverable_gaps.push((25, 35));
        assert_eq!(s.lost(), vec![("b".to_string(), 20)]);
        let c = s.counts();
        assert_eq!(
            c,
            TradeCounts {
                journal: 4,
                delivered: 3,
                lost: 1,
                unrecoverable: 1,
                duplicated: 1,
                unexpected: 1,
            }
        );
    }

    #[test]
    fn trades_from_before_the_subscription_are_left_out() {
        let mut s = SymbolTrades::default();
        s.ignore([("old".to_string(), 5)]);
        s.add_journal([("old".to_string(), 5), ("new".to_string(), 6)]);
        s.deliver("old");
        s.deliver("old");
        assert_eq!(s.journal_last_ms, Some(6));
        let c = s.counts();
        assert_eq!((c.journal, c.delivered, c.lost, c.duplicated), (1, 0, 1, 0));
    }

    #[test]
    fn not_caught_up_until_the_newest_journal_trade_arrives() {
        let mut s = SymbolTrades::default();
        assert!(s.caught_up());
        s.add_journal([("x".to_string(), 5), ("y".to_string(), 6)]);
        s.deliver("x");
        assert!(!s.caught_up());
        s.deliver("y");
        assert!(s.caught_up());
    }

    #[test]
    fn parses_the_unrecoverable_gap_detail() {
        assert_eq!(
            parse_gap("trades between 100 and 250 could not be recovered"),
            Some((100, 250))
        );
        assert_eq!(parse_gap("something else"), None);
    }

    #[test]
    fn reads_its_own_footprint_from_proc() {
        let u = usage(std::process::id()).expect("/proc/self");
        assert!(u.rss_kb > 0 && u.fds >= 3, "{u:?}");
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        // Not reaped yet: once it exits it is a zombie child of this process.
        let pid = child.id();
        let mut zombie = false;
        for _ in 0..2000 {
            if children(std::process::id()).contains(&(pid, 'Z')) {
                zombie = true;
                break;
            }
            std::thread::yield_now();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.wait();
        assert!(zombie, "an exited, unreaped child shows as Z");
        assert!(!children(std::process::id()).iter().any(|(p, _)| *p == pid));
    }
}
