//! Process isolation: the feed's exchange connection lives in a supervised child process, so a
//! crash, hang or leak in the network path (TLS, WebSocket, the socket itself) never takes the
//! service down.
//!
//! # Which process does what
//! - The **worker** is a byte pump ([`child`]). It owns the socket and nothing else: TLS, the
//!   WebSocket handshake, reading frames, writing what it is told to, closing. It does not parse a
//!   single frame.
//! - The **supervisor** (the program using the feed) runs the one [`Session`] and connection shell
//!   the in-process feed runs ([`crate::feed`]): one decode, one book, one trade tape, one
//!   de-duplication, one health computation, whichever the isolation. It starts, watches, stops and
//!   replaces the worker ([`supervisor`]). A worker restart is a reconnect the session already
//!   survives: the trade tape continues (gap-filled from REST), books restart from fresh snapshots.
//!
//! # What crosses the pipes ([`pipe`])
//! - Up the worker's stdout: each received WebSocket frame with its receive time (Unix ns),
//!   length-prefixed, text or binary, byte for byte; the connection's lifecycle (connected, connect
//!   failed, ended and why); a heartbeat while a connection is open or being opened.
//! - Down its stdin: connect to a URL, send a text frame (subscribe, the JSON ping), send a ping
//!   frame, close. Operator requests (reconnect, resync) are the session's business and need no
//!   command of their own: a reconnect is a close and a connect.
//! - Up its stderr: its own JSON log lines (`bybit_connector_worker_*`), re-logged line by line as
//!   `bybit_connector_subprocess_stderr`, panics included.
//! - Its configuration (heartbeat, statistics interval, busy polling) in the environment
//!   variable [`WORKER_ENV`].
//!
//! # Why this split
//! Frames cross the pipe as they came off the socket, so the worker needs no protocol knowledge
//! and the supervisor no second decoder, book or de-duplication; every new data type is built
//! once. The isolation keeps what it was for: the code that talks to the network runs apart, and
//! a worker that dies (its stdout's EOF), hangs (no heartbeat for `hung_after_s`) or breaks the
//! pipe protocol is stopped (its process group killed) and replaced, logged with its exit code or
//! signal. While it is dead, hung or being replaced the health check says `process_alive: false`.
//! A decoding panic in the supervisor is caught per frame ([`crate::feed::session`]).
//!
//! # Hosting workers
//! The supervisor starts the current executable (or [`WorkerOptions::program`]) with
//! [`WORKER_ENV`] set; any program that calls [`main`] first thing in its `main` is its own
//! worker:
//!
//! ```no_run
//! // First thing in `main`: in a worker process this runs the worker and exits.
//! hft_feed::worker::main();
//! // ... the program itself, e.g. a `FeedSource` with `Isolation::Process`
//! ```
//!
//! # Layout
//! - [`pipe`]: the frames of both pipes.
//! - [`child`]: the worker process.
//! - [`supervisor`]: starting, watching, stopping and replacing workers; [`WorkerStatus`].
//! - [`options`]: [`WorkerOptions`]: executable, heartbeat, hang threshold, grace period.
//! - [`stderr`]: worker stderr lines into structured logs.
//! - [`forward`]: which events are the supervisor's (the contract) and which the worker's own.
//! - [`signals`]: process-group signals and exit descriptions.
//!
//! [`Session`]: crate::feed::session::Session

pub mod child;
pub mod forward;
pub mod options;
pub mod pipe;
pub mod signals;
pub mod stderr;
pub mod supervisor;

use std::process::ExitCode;
use std::time::Duration;

pub use child::WorkerConfig;
pub use options::WorkerOptions;
pub use supervisor::WorkerStatus;

/// The environment variable that makes a process a worker: its [`WorkerConfig`] as JSON.
pub const WORKER_ENV: &str = "HFT_FEED_WORKER";

/// The argument workers are started with (it names them in `ps`; a program that forgot to call
/// [`main`] refuses it instead of starting a second copy of itself).
pub const WORKER_ARG: &str = "--hft-feed-worker";

/// The span a worker's connection is logged in; its `pid` field names the worker on every event.
pub const WORKER_SPAN: &str = "feed_worker";

/// Call first thing in `main`: in a process started as a worker (see [`WORKER_ENV`]) this runs
/// the worker until its supervisor stops it, then exits the process; anywhere else it returns at
/// once.
pub fn main() {
    let Some(json) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let code = match json.to_str().map(serde_json::from_str::<WorkerConfig>) {
        Some(Ok(cfg)) => {
            if run(cfg) == ExitCode::SUCCESS {
                0
            } else {
                1
            }
        }
        other => {
            let error = match other {
                Some(Err(e)) => e.to_string(),
                _ => "not UTF-8".into(),
            };
            child::log(
                "ERROR",
                "bybit_connector_worker_config_invalid",
                serde_json::json!({ "error": error }),
            );
            2
        }
    };
    std::process::exit(code);
}

/// Runs a worker on a one-thread runtime of its own until SIGTERM or its supervisor going away
/// (what [`main`] does in a worker process). A panic is logged as one structured line
/// (`bybit_connector_worker_panic`) before Rust's own message.
pub fn run(cfg: WorkerConfig) -> ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(non-string panic payload)");
        child::log(
            "ERROR",
            "bybit_connector_worker_panic",
            serde_json::json!({
                "message": message,
                "location": info.location().map(|l| l.to_string()).unwrap_or_default(),
            }),
        );
        default_hook(info);
    }));
    // One thread: the socket reads and the pipe writes happen on it without a cross-thread
    // wake-up (BENCHMARKS.md, issue 12).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            child::log(
                "ERROR",
                "bybit_connector_worker_runtime_failed",
                serde_json::json!({ "error": e.to_string() }),
            );
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(child::run(cfg));
    // The blocking stdin reader must not hold the exit up.
    rt.shutdown_timeout(Duration::from_millis(500));
    code
}
