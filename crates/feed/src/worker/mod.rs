//! Worker-process isolation: the live feed runs in a supervised child process
//! (`hft-connector worker`) so a crash, hang or leak in the network path never takes the service
//! down.
//!
//! # Layout
//! - [`framing`]: length-prefixed MessagePack frames (events, health reports) on the worker's stdout.
//! - [`child`]: the worker process: runs the feed, forwards frames, logs to stderr, exits with its
//!   supervisor.
//! - [`supervisor`]: [`WorkerFeed`]: spawns, watches (exit, stderr, silence), stops and restarts
//!   workers; rebuilds the books and keeps the trade tape continuous across workers.
//! - [`control`]: operator requests to a worker (SIGUSR1 reconnect, SIGUSR2 resync).
//! - [`options`]: [`WorkerOptions`]: executable, heartbeat, hang threshold, grace period.
//! - [`raw`]: raw frames forwarded to the supervisor when it records (`[sinks.record]`).
//! - [`stderr`]: worker stderr lines into structured logs.
//! - [`forward`]: the worker's contract events re-logged at top level by the supervisor.
//! - [`state`]: what the supervisor shares with readers (books, pid, health).
//! - [`signals`]: process-group signals and exit descriptions.

pub mod child;
pub mod control;
pub mod forward;
pub mod framing;
pub mod options;
pub mod raw;
pub mod signals;
pub mod state;
pub mod stderr;
pub(crate) mod stdout;
pub mod supervisor;
pub mod wire;

pub use child::WorkerConfig;
pub use options::WorkerOptions;
pub use state::WorkerShared;
pub use supervisor::WorkerFeed;
