//! The worker process: a byte pump between one exchange WebSocket and its supervisor's pipes.
//!
//! - Down its stdin come [`Down`] commands: connect to a URL, send a text frame, send a ping
//!   frame, close. It never decides anything about the exchange protocol itself.
//! - Up its stdout go [`Up`] frames: every WebSocket frame received, with its receive time, and
//!   the connection's lifecycle. Everything already readable from the socket goes up in one write
//!   (up to 64 KiB): one pipe write per burst. A full pipe (a slow supervisor) stops the socket
//!   reads: the exchange's TCP window backs up, nothing is dropped and memory stays flat.
//! - While a connection is open or being opened it sends a heartbeat every `heartbeat_s`, so the
//!   supervisor tells a hung worker (SIGSTOP, a stuck library) from a quiet exchange.
//! - It logs JSON lines to stderr, all named `bybit_connector_worker_*` (it has nothing to say
//!   about the exchange protocol; the supervisor's session logs that).
//! - It exits cleanly on SIGTERM or SIGINT (closing its WebSocket with a close frame), and on its
//!   own when the supervisor goes away: stdin reaches EOF, or writing stdout fails. Never an orphan.
//! - With `busy_poll_us` its runtime polls the socket instead of sleeping while frames flow
//!   ([`crate::busy_poll`]).
//!
//! Test hook: `HFT_CONNECTOR_WORKER_PANIC_AFTER=N` makes the FIRST worker generation panic after
//! forwarding N frames (the tests' way to crash a worker; replacements run normally).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::pipe::{self, Down, EndKind, Up};

/// Environment variable of the panic test hook (see the module docs).
pub const PANIC_AFTER_ENV: &str = "HFT_CONNECTOR_WORKER_PANIC_AFTER";

/// Most bytes gathered into one write.
const BURST_BYTES: usize = 64 * 1024;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connection being opened.
type Connecting = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Ws, String>>>>;

/// What the supervisor passes to a worker (JSON, in the `HFT_FEED_WORKER` environment variable or
/// `hft-connector worker --config-json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Seconds between heartbeats while a connection is open or being opened.
    pub heartbeat_s: f64,
    /// Seconds between `bybit_connector_worker_stats` log lines.
    pub stats_interval_s: f64,
    /// 1 for the first worker of a feed, 2 for its first replacement, ...
    pub generation: u64,
    /// `feed.busy_poll_us`: poll the socket instead of sleeping while frames flow.
    pub busy_poll_us: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            heartbeat_s: 1.0,
            stats_interval_s: 60.0,
            generation: 1,
            busy_poll_us: 0,
        }
    }
}

/// One JSON log line on stderr (the supervisor re-logs it as `bybit_connector_subprocess_stderr`).
pub(crate) fn log(level: &str, event: &str, fields: serde_json::Value) {
    let mut line = serde_json::Map::new();
    let ts = crate::feed::health::iso_time(crate::feed::health::unix_ms()).unwrap_or_default();
    line.insert("timestamp".into(), ts.into());
    line.insert("level".into(), level.into());
    line.insert("event".into(), event.into());
    line.insert("pid".into(), std::process::id().into());
    if let serde_json::Value::Object(f) = fields {
        line.extend(f);
    }
    let text = serde_json::Value::Object(line).to_string();
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Why the worker is stopping (the first reason wins).
#[derive(Clone, Default)]
struct Reason(Arc<Mutex<Option<String>>>);

impl Reason {
    fn set(&self, why: &str) {
        if let Ok(mut r) = self.0.lock() {
            r.get_or_insert_with(|| why.to_string());
        }
    }
    fn get(&self) -> String {
        self.0
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "stopped".into())
    }
}

#[derive(Default)]
struct Counters {
    frames: u64,
    bytes: u64,
    connections: u64,
}

/// The worker's stdout: a non-blocking pipe written from the worker's task, or (stdout is not a
/// pipe: a file, a terminal) plain blocking writes.
enum Out {
    Pipe(tokio::net::unix::pipe::Sender),
    Blocking,
}

impl Out {
    fn open() -> Out {
        use std::os::fd::AsFd;
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .and_then(tokio::net::unix::pipe::Sender::from_owned_fd)
            .map(Out::Pipe)
            .unwrap_or(Out::Blocking)
    }

    async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Pipe(p) => p.write_all(buf).await,
            Out::Blocking => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf).and_then(|()| out.flush())
            }
        }
    }
}

/// The socket's state.
#[derive(Default)]
struct Socket {
    connecting: Option<Connecting>,
    sink: Option<SplitSink<Ws, Message>>,
    stream: Option<SplitStream<Ws>>,
}

impl Socket {
    fn busy(&self) -> bool {
        self.connecting.is_some() || self.stream.is_some()
    }
}

async fn next_of(stream: &mut Option<SplitStream<Ws>>) -> Option<Result<Message, String>> {
    match stream {
        Some(s) => s.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

async fn connected(connecting: &mut Option<Connecting>) -> Result<Ws, String> {
    match connecting {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Appends one received message; `true` when it ended the connection.
fn forward(out: &mut BytesMut, msg: Option<Result<Message, String>>, c: &mut Counters) -> bool {
    let recv_ns = unix_ns();
    let end = match msg {
        Some(Ok(Message::Text(t))) => {
            c.frames += 1;
            c.bytes += t.len() as u64;
            pipe::put_text(out, recv_ns, t.as_bytes());
            return false;
        }
        Some(Ok(Message::Binary(data))) => {
            c.frames += 1;
            pipe::put_up(out, &Up::Binary { recv_ns, data });
            return false;
        }
        Some(Ok(Message::Close(frame))) => EndKind::CloseFrame(
            frame
                .map(|f| format!("{} {}", f.code, f.reason))
                .unwrap_or_default(),
        ),
        Some(Ok(_)) => {
            pipe::put_up(out, &Up::Other { recv_ns });
            return false;
        }
        Some(Err(e)) => EndKind::Error(e),
        None => EndKind::StreamEnded,
    };
    pipe::put_up(out, &Up::Ended(end));
    true
}

/// Runs a worker until SIGTERM/SIGINT or the supervisor going away.
pub async fn run(cfg: WorkerConfig) -> ExitCode {
    let pid = std::process::id();
    log(
        "INFO",
        "bybit_connector_worker_starting",
        json!({"generation": cfg.generation, "busy_poll_us": cfg.busy_poll_us}),
    );
    let panic_after: Option<u64> = (cfg.generation == 1)
        .then(|| std::env::var(PANIC_AFTER_ENV).ok()?.parse().ok())
        .flatten();
    let stop = CancellationToken::new();
    let reason = Reason::default();
    if let Err(e) = watch_exit_signals(stop.clone(), reason.clone()) {
        log(
            "ERROR",
            "bybit_connector_worker_signal_setup_failed",
            json!({"error": e.to_string()}),
        );
        return ExitCode::from(2);
    }
    let mut commands = read_commands(stop.clone(), reason.clone());
    let activity = Arc::new(crate::busy_poll::Activity::default());
    crate::busy_poll::spawn(activity.clone(), cfg.busy_poll_us, stop.clone());
    let mut stdout = Out::open();
    let heartbeat_every = Duration::from_secs_f64(cfg.heartbeat_s.clamp(0.005, 60.0));
    let stats_every = Duration::from_secs_f64(cfg.stats_interval_s.clamp(0.01, 86_400.0));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats =
        tokio::time::interval_at(tokio::time::Instant::now() + stats_every, stats_every);
    let mut out = BytesMut::with_capacity(BURST_BYTES + 16 * 1024);
    pipe::put_up(
        &mut out,
        &Up::Hello {
            pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    );
    let mut sock = Socket::default();
    let mut c = Counters::default();
    let started = Instant::now();
    let mut last_stats = (Instant::now(), 0u64);
    loop {
        if !out.is_empty() {
            let wrote = tokio::select! {
                r = stdout.write(&out) => r,
                _ = stop.cancelled() => break,
            };
            if let Err(e) = wrote {
                let gone = e.kind() == std::io::ErrorKind::BrokenPipe;
                log(
                    "WARN",
                    "bybit_connector_worker_stdout_failed",
                    json!({"error": e.to_string(), "supervisor_gone": gone}),
                );
                reason.set(&format!("stdout write failed: {e}"));
                break;
            }
            out.clear();
            if let Some(n) = panic_after {
                if c.frames >= n {
                    std::thread::sleep(Duration::from_millis(20));
                    panic!(
                        "{PANIC_AFTER_ENV}={n}: test-hook panic after {} frames",
                        c.frames
                    );
                }
            }
        }
        let busy = sock.busy();
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                command(cmd, &mut sock, &mut out).await;
            }
            done = connected(&mut sock.connecting) => {
                sock.connecting = None;
                match done {
                    Ok(ws) => {
                        c.connections += 1;
                        let (sink, stream) = ws.split();
                        sock.sink = Some(sink);
                        sock.stream = Some(stream);
                        pipe::put_up(&mut out, &Up::Connected);
                    }
                    Err(e) => pipe::put_up(&mut out, &Up::ConnectFailed(e)),
                }
            }
            msg = next_of(&mut sock.stream) => {
                activity.touch();
                let mut ended = forward(&mut out, msg, &mut c);
                // Everything already readable goes up in the same write.
                while !ended && out.len() < BURST_BYTES {
                    let Some(stream) = sock.stream.as_mut() else { break };
                    match stream.next().now_or_never() {
                        Some(msg) => ended = forward(&mut out, msg.map(|r| r.map_err(|e| e.to_string())), &mut c),
                        None => break,
                    }
                }
                if ended {
                    sock.stream = None;
                    sock.sink = None;
                }
            }
            _ = heartbeat.tick(), if busy => pipe::put_up(&mut out, &Up::Heartbeat),
            _ = stats.tick() => {
                let dt = last_stats.0.elapsed().as_secs_f64().max(1e-9);
                log("INFO", "bybit_connector_worker_stats", json!({
                    "uptime_s": started.elapsed().as_secs_f64(),
                    "frames": c.frames,
                    "bytes": c.bytes,
                    "connections": c.connections,
                    "frames_per_s": (c.frames - last_stats.1) as f64 / dt,
                    "connected": sock.stream.is_some(),
                }));
                last_stats = (Instant::now(), c.frames);
            }
        }
    }
    let why = reason.get();
    log(
        "INFO",
        "bybit_connector_worker_stopping",
        json!({"reason": why}),
    );
    if let Some(mut sink) = sock.sink.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = sink.send(Message::Close(None)).await;
            let _ = sink.close().await;
        })
        .await;
    }
    log(
        "INFO",
        "bybit_connector_worker_stopped",
        json!({"reason": why, "frames": c.frames, "bytes": c.bytes, "connections": c.connections}),
    );
    ExitCode::SUCCESS
}

/// Carries out one command from the supervisor.
async fn command(cmd: Down, sock: &mut Socket, out: &mut BytesMut) {
    match cmd {
        Down::Connect { timeout_ms, url } => {
            if sock.busy() {
                // One connection at a time: the supervisor closes before it connects again.
                pipe::put_up(
                    out,
                    &Up::ConnectFailed("a connection is already open".into()),
                );
                return;
            }
            let timeout = Duration::from_millis(timeout_ms.max(1));
            sock.connecting = Some(Box::pin(async move {
                match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
                    Ok(Ok((ws, _))) => Ok(ws),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "connect timed out after {:.1} s",
                        timeout.as_secs_f64()
                    )),
                }
            }));
        }
        Down::Send(text) => send(sock, out, Message::text(text)).await,
        Down::Ping(data) => send(sock, out, Message::Ping(data.into())).await,
        Down::Close { graceful } => {
            sock.connecting = None;
            if let Some(mut sink) = sock.sink.take() {
                sock.stream = None;
                if graceful {
                    let _ = sink.send(Message::Close(None)).await;
                }
                let _ = sink.close().await;
                pipe::put_up(out, &Up::Ended(EndKind::Requested));
            }
        }
    }
}

async fn send(sock: &mut Socket, out: &mut BytesMut, msg: Message) {
    let Some(sink) = sock.sink.as_mut() else {
        return; // the connection already ended (its `Ended` is on its way up)
    };
    if let Err(e) = sink.send(msg).await {
        sock.sink = None;
        sock.stream = None;
        pipe::put_up(out, &Up::Ended(EndKind::Error(e.to_string())));
    }
}

/// SIGTERM and SIGINT stop the worker cleanly.
fn watch_exit_signals(stop: CancellationToken, reason: Reason) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        log(
            "INFO",
            "bybit_connector_worker_signal",
            json!({"signal": name}),
        );
        reason.set(name);
        stop.cancel();
    });
    Ok(())
}

/// Reads commands from stdin on a thread of its own; EOF (or garbage) means the supervisor is
/// gone: the worker stops.
fn read_commands(stop: CancellationToken, reason: Reason) -> mpsc::UnboundedReceiver<Down> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = BytesMut::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        let why = loop {
            match stdin.read(&mut chunk) {
                Ok(0) => break "supervisor gone (stdin closed)".to_string(),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break format!("stdin read failed: {e}"),
            }
            loop {
                match pipe::take_down(&mut buf) {
                    Ok(Some(cmd)) => {
                        if tx.send(cmd).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log(
                            "ERROR",
                            "bybit_connector_worker_bad_command",
                            json!({"error": e.to_string()}),
                        );
                        buf.clear();
                        break;
                    }
                }
            }
        };
        log(
            "WARN",
            "bybit_connector_worker_supervisor_gone",
            json!({"reason": why}),
        );
        reason.set(&why);
        stop.cancel();
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_as_json_with_defaults() {
        let cfg = WorkerConfig {
            generation: 3,
            heartbeat_s: 0.1,
            ..WorkerConfig::default()
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<WorkerConfig>(&json).unwrap(), cfg);
        let minimal: WorkerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(minimal, WorkerConfig::default());
    }

    #[test]
    fn frames_go_up_byte_for_byte_and_an_end_is_reported_once() {
        let mut out = BytesMut::new();
        let mut c = Counters::default();
        assert!(!forward(
            &mut out,
            Some(Ok(Message::text("{\"a\":1}"))),
            &mut c
        ));
        assert!(forward(&mut out, None, &mut c));
        match pipe::take_up(&mut out).unwrap() {
            Some(Up::Text { text, recv_ns }) => {
                assert_eq!(&text[..], b"{\"a\":1}");
                assert!(recv_ns > 0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pipe::take_up(&mut out).unwrap(),
            Some(Up::Ended(EndKind::StreamEnded))
        );
        assert_eq!(c.frames, 1);
    }
}
