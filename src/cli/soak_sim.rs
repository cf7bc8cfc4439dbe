//! The soak's simulator: `hft-connector simulate` in a child process (so that its journal does
//! not count in the service's memory), driven over its `/sim/*` HTTP routes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::sim::{FaultRequest, TrueBook};

/// The symbols the soak streams (linear, order book depth 50).
pub const SYMBOLS: [&str; 2] = ["BTCUSDT", "ETHUSDT"];

/// A running simulator child.
pub struct SimChild {
    /// Its address (WebSocket, REST and control).
    pub addr: std::net::SocketAddr,
    /// Its process id.
    pub pid: u32,
    child: Child,
    http: reqwest::Client,
}

impl SimChild {
    /// Starts `hft-connector simulate` on a free loopback port; its output goes to `dir/sim.log`.
    pub async fn spawn(rate: f64, seed: u64, dir: &Path) -> anyhow::Result<SimChild> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let log = std::fs::File::create(dir.join("sim.log"))
            .with_context(|| format!("cannot write {}", dir.join("sim.log").display()))?;
        let mut child = Command::new(exe)
            .args([
                "simulate",
                "--listen",
                "127.0.0.1:0",
                "--categories",
                "linear",
            ])
            .args(["--symbols", &SYMBOLS.join(","), "--history-days", "1"])
            .args(["--rate", &rate.to_string(), "--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the simulator")?;
        let pid = child.id().context("the simulator exited at once")?;
        let stdout = child.stdout.take().context("no simulator stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // First line: "simulator listening on ADDR (...)".
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the simulator did not start within 30 s")??
            .context("the simulator exited before listening")?;
        let addr = first
            .strip_prefix("simulator listening on ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("unexpected simulator output: {first}"))?;
        // Keep draining its stdout so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(SimChild {
            addr,
            pid,
            child,
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a control route (`/sim/pause`, `/sim/resume`).
    pub async fn post(&self, path: &str) -> anyhow::Result<()> {
        self.http
            .post(self.url(path))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Injects a fault.
    pub async fn fault(&self, f: &FaultRequest) -> anyhow::Result<()> {
        self.http
            .post(self.url("/sim/fault"))
            .json(f)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The journal's linear trades of `symbol` since `since_ms`, as (id, time).
    pub async fn trades(
        &self,
        symbol: &str,
        since_ms: Option<u64>,
    ) -> anyhow::Result<Vec<(String, u64)>> {
        let mut q = vec![
            ("symbol", symbol.to_string()),
            ("type", "trade".into()),
            ("category", "linear".into()),
        ];
        if let Some(s) = since_ms {
            q.push(("since_ms", s.to_string()));
        }
        let events: Vec<serde_json::Value> = self
            .http
            .get(self.url("/sim/journal"))
            .query(&q)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        events
            .iter()
            .map(|e| {
                let id = e.get("id").and_then(|v| v.as_str());
                let ts = e.get("ts_ms").and_then(|v| v.as_u64());
                match (id, ts) {
                    (Some(id), Some(ts)) => Ok((id.to_string(), ts)),
                    _ => anyhow::bail!("journal trade without id or ts_ms: {e}"),
                }
            })
            .collect()
    }

    /// The true linear book of `symbol` at depth 50.
    pub async fn book(&self, symbol: &str) -> anyhow::Result<TrueBook> {
        Ok(self
            .http
            .get(self.url("/sim/book"))
            .query(&[("symbol", symbol), ("category", "linear"), ("depth", "50")])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Stops the simulator (SIGTERM, then SIGKILL after 5 s) and reaps it.
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
