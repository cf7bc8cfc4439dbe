//! [`ConnectionBudget`]: Bybit's connection limit (500 new connections per 5 minutes) counted once
//! per exchange address for the whole machine, not per feed: every feed of a service, every
//! worker process and every replacement worker takes its slots from the same window.
//!
//! The window lives in a small file per address (`host:port`) under the budget directory
//! (`HFT_CONNECTOR_BUDGET_DIR`, default `$TMPDIR/hft-connector-budget`), one Unix-ms time per
//! line, read and rewritten under an exclusive `flock`: processes need no supervisor round trip
//! and a killed worker's slots still count. The decision itself is the pure
//! [`SlidingWindow`]'s. If the file cannot be used (read-only
//! disk, odd permissions) the feed logs it and keeps its own per-feed window instead of stopping.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hft_core::ratelimit::SlidingWindow;
use nix::fcntl::{Flock, FlockArg};

/// The environment variable naming the budget directory.
pub const BUDGET_DIR_ENV: &str = "HFT_CONNECTOR_BUDGET_DIR";

/// The machine-wide connection window of one exchange address.
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    path: PathBuf,
    limit: usize,
    window_ms: u64,
}

impl ConnectionBudget {
    /// The budget of the address of `ws_url` (`limit` connections per `window_ms`), in the
    /// default directory.
    pub fn for_url(ws_url: &str, limit: usize, window_ms: u64) -> Self {
        let dir = std::env::var_os(BUDGET_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("hft-connector-budget"));
        Self::in_dir(&dir, ws_url, limit, window_ms)
    }

    /// The budget of the address of `ws_url` kept in `dir`.
    pub fn in_dir(dir: &Path, ws_url: &str, limit: usize, window_ms: u64) -> Self {
        let name: String = address_of(ws_url)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        ConnectionBudget {
            path: dir.join(format!("connections-{name}")),
            limit,
            window_ms,
        }
    }

    /// The file holding the window.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks for a connection slot at `now_ms` (Unix ms): `Ok` took one, `Err(Ok(ms))` says how
    /// long to wait, `Err(Err(e))` that the shared file could not be used.
    pub fn try_admit(&self, now_ms: u64) -> Result<(), Result<u64, std::io::Error>> {
        self.admit_locked(now_ms).map_err(|e| match e {
            Admit::Wait(ms) => Ok(ms),
            Admit::Io(e) => Err(e),
        })
    }

    fn admit_locked(&self, now_ms: u64) -> Result<(), Admit> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(Admit::Io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(Admit::Io)?;
        let mut file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Admit::Io(std::io::Error::from(errno)))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(Admit::Io)?;
        let mut window = SlidingWindow::new(self.limit, self.window_ms);
        // Unreadable lines are skipped: a torn write can only under-count one slot.
        let mut times: Vec<u64> = text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&t: &u64| t.saturating_add(self.window_ms) > now_ms && t <= now_ms)
            .collect();
        times.sort_unstable();
        for &t in &times {
            let _ = window.try_acquire(t);
        }
        let verdict = window.try_acquire(now_ms);
        if verdict.is_ok() {
            times.push(now_ms);
        }
        rewrite(&mut file, &times).map_err(Admit::Io)?;
        verdict.map_err(Admit::Wait)
    }
}

enum Admit {
    Wait(u64),
    Io(std::io::Error),
}

fn rewrite(file: &mut File, times: &[u64]) -> std::io::Result<()> {
    let mut out = String::with_capacity(times.len() * 14);
    for t in times {
        out.push_str(&t.to_string());
        out.push('\n');
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(out.as_bytes())
}

/// `host:port` of a ws(s) URL (the port defaulted by scheme).
fn address_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("ws", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    if has_port {
        authority.to_ascii_lowercase()
    } else {
        let port = if scheme.eq_ignore_ascii_case("wss") {
            443
        } else {
            80
        };
        format!("{}:{port}", authority.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "hft-budget-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn addresses_name_host_and_port() {
        assert_eq!(
            address_of("wss://stream.bybit.com/v5/public/linear"),
            "stream.bybit.com:443"
        );
        assert_eq!(
            address_of("ws://127.0.0.1:9443/v5/public"),
            "127.0.0.1:9443"
        );
        assert_eq!(address_of("ws://[::1]/x"), "[::1]:80");
        assert_eq!(
            address_of("WSS://Stream.Bybit.com:443"),
            "stream.bybit.com:443"
        );
    }

    #[test]
    fn every_holder_of_an_address_shares_one_window() {
        let d = dir();
        let url = "wss://stream.bybit.com/v5/public/linear";
        // Two feeds (or a worker and its replacement): separate values, one file.
        let a = ConnectionBudget::in_dir(&d, url, 3, 1_000);
        let b = ConnectionBudget::in_dir(&d, "wss://stream.bybit.com/v5/public/spot", 3, 1_000);
        assert_eq!(a.path(), b.path());
        assert!(a.try_admit(10_000).is_ok());
        assert!(b.try_admit(10_100).is_ok());
        assert!(a.try_admit(10_200).is_ok());
        match b.try_admit(10_300) {
            Err(Ok(wait)) => assert_eq!(wait, 700, "until the first slot leaves the window"),
            other => panic!("expected a wait, got {other:?}"),
        }
        assert!(
            b.try_admit(11_000).is_ok(),
            "the first slot left the window"
        );
        // Another address has its own window.
        let c = ConnectionBudget::in_dir(&d, "ws://127.0.0.1:9/v5/public", 3, 1_000);
        assert!(c.try_admit(10_300).is_ok());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn the_window_is_shared_across_processes() {
        // A child process takes the slots; this one must wait for them.
        let d = dir();
        let url = "ws://127.0.0.1:1/v5/public";
        let budget = ConnectionBudget::in_dir(&d, url, 2, 60_000);
        let now = hft_now_ms();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s\\n%s\\n' {now} {now} > '{}'",
                budget.path().display()
            ))
            .status()
            .expect("sh runs");
        assert!(status.success());
        assert!(matches!(budget.try_admit(now + 1), Err(Ok(_))));
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn an_unusable_directory_is_an_error_not_a_wait() {
        let d = dir();
        let file = d.join("not-a-dir");
        std::fs::write(&file, b"x").expect("write");
        let budget = ConnectionBudget::in_dir(&file, "ws://h:1", 3, 1_000);
        assert!(matches!(budget.try_admit(1), Err(Err(_))));
        std::fs::remove_dir_all(&d).ok();
    }

    fn hft_now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}
