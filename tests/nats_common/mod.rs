//! Helpers for the NATS tests: a real `nats-server` (JetStream on, a temp store dir, a free loopback
//! port) that can be killed and restarted on the same port and store, and a reader of a stream.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

/// Where `nats-server` is: `PATH`, then the sbin directories Debian installs it to.
fn binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// The effective uid is 0 (from /proc/self/status: `Uid: real effective ...`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A running `nats-server -js`.
pub struct NatsServer {
    bin: PathBuf,
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its JetStream store directory.
    pub dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl NatsServer {
    /// Starts a server, or `None` (with a loud message) when the binary is missing and we cannot
    /// install it (not root and not under scripts/test.sh). Under scripts/test.sh or as root a
    /// missing binary fails the test: scripts/nats-deps.sh installs it.
    pub fn start(name: &str) -> Option<NatsServer> {
        let Some(bin) = binary() else {
            if is_root() || std::env::var_os("HFT_CONNECTOR_REQUIRE_NATS").is_some() {
                panic!(
                    "nats-server is not installed: run scripts/nats-deps.sh (scripts/test.sh does)"
                );
            }
            eprintln!("\n!!!!! SKIPPED {name}: nats-server is not installed and we are not root; scripts/nats-deps.sh installs it !!!!!\n");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "hftc-nats-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("store dir");
        let mut s = NatsServer {
            bin,
            child: None,
            port: free_port(),
            dir,
        };
        s.launch();
        Some(s)
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits for "Server is ready".
    fn launch(&mut self) {
        let mut child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server is ready") {
                    let _ = tx.send(Ok(()));
                }
                log.push(line);
            }
            let _ = tx.send(Err(log.join("\n")));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("nats-server exited before it was ready:\n{log}"),
            Err(_) => panic!("nats-server was not ready within 60 s"),
        }
        self.child = Some(child);
    }

    /// Stops the server (SIGTERM: it flushes its store, as in a rolling restart) and waits for it
    /// to be gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A message read back: its stream sequence, subject, `Nats-Msg-Id` and JSON payload.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub json: serde_json::Value,
}

/// Reads `filter` from `stream` from the start until `done` holds for what was read, or `timeout`
/// passes (then panics with what was read).
pub async fn read_until(
    url: &str,
    stream: &str,
    filter: &str,
    timeout: Duration,
    done: impl Fn(&[Stored]) -> bool,
) -> Vec<Stored> {
    let client = async_nats::connect(url).await.expect("connect to nats");
    let js = jetstream::new(client);
    let deadline = tokio::time::Instant::now() + timeout;
    let s = loop {
        match js.get_stream(stream).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("stream {stream}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let consumer = s
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    if done(&out) {
        return out;
    }
    loop {
        let next = tokio::time::timeout_at(deadline, messages.next()).await;
        let msg = match next {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => panic!("reading {stream}: {e}"),
            Ok(None) => panic!("{stream}: the consumer ended"),
            Err(_) => panic!(
                "{stream} {filter}: condition not met within {timeout:?}; read {} messages, last {:?}",
                out.len(),
                out.last()
            ),
        };
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        let msg_id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        let json = serde_json::from_slice(&msg.payload).unwrap_or_else(|e| {
            panic!(
                "payload is not JSON ({e}): {}",
                String::from_utf8_lossy(&msg.payload)
            )
        });
        out.push(Stored {
            seq,
            subject: msg.subject.to_string(),
            msg_id,
            json,
        });
        if done(&out) {
            return out;
        }
    }
}
