//! Operator requests across the process boundary: the supervisor side tells a worker with
//! SIGUSR1 (reconnect) or SIGUSR2 (resync the books) ([`tell`]); the worker turns each signal
//! into a request to its feed ([`crate::feed::control`]): drop the connection and reconnect the
//! normal way (resubscribe, fresh book snapshots, REST trade gap-fill), or resubscribe the book
//! topics for fresh snapshots. The worker keeps running: its supervisor's trade tape and books
//! carry on as across any reconnect or resync.
//!
//! A worker installs its handlers before it reports anything, and SIGUSR1/SIGUSR2 would otherwise
//! end a process: the supervisor side only signals a worker that has already reported its feed's
//! state (see [`tell`]).

use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::feed::{ConnState, FeedShared};
use crate::worker::WorkerShared;

/// What a worker can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerRequest {
    /// Drop the connection and reconnect (SIGUSR1).
    Reconnect,
    /// Resubscribe the book topics for fresh snapshots (SIGUSR2).
    Resync,
}

impl WorkerRequest {
    fn signal(self) -> Signal {
        match self {
            WorkerRequest::Reconnect => Signal::SIGUSR1,
            WorkerRequest::Resync => Signal::SIGUSR2,
        }
    }
}

/// What telling a worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerReconnect {
    /// Worker `pid` was told (SIGUSR1 or SIGUSR2).
    Signalled {
        /// The worker's pid.
        pid: u32,
    },
    /// No worker is ready to be told (none running, or one just started that has not reported
    /// its state yet): its connection is being opened anyway.
    NotReady,
}

/// The worker side: SIGUSR1 and SIGUSR2 are caught from now on (install before reporting
/// anything).
pub fn listen() -> std::io::Result<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    Ok((
        signal(SignalKind::user_defined1())?,
        signal(SignalKind::user_defined2())?,
    ))
}

/// The worker side: each SIGUSR1 becomes a reconnect request to the worker's feed, each SIGUSR2
/// a resync request.
pub async fn forward(
    (mut usr1, mut usr2): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    feed: Arc<FeedShared>,
) {
    let pid = std::process::id();
    loop {
        tokio::select! {
            got = usr1.recv() => {
                if got.is_none() { break; }
                let seq = feed.control.request_reconnect("asked by the supervisor (SIGUSR1)");
                tracing::info!(event = "bybit_connector_worker_reconnect_requested", pid, requests = seq);
            }
            got = usr2.recv() => {
                if got.is_none() { break; }
                let seq = feed.control.request_resync("asked by the supervisor (SIGUSR2)");
                tracing::info!(event = "bybit_connector_worker_resync_requested", pid, requests = seq);
            }
        }
    }
}

/// The supervisor side: tells the current worker `request`. Only a worker that is alive and has
/// reported a state of its own (anything but the `connecting` the supervisor sets when it starts
/// one) is signalled: that worker has its handlers installed.
pub fn tell(shared: &WorkerShared, request: WorkerRequest) -> WorkerReconnect {
    let Some(pid) = shared.pid() else {
        return WorkerReconnect::NotReady;
    };
    if !shared.is_alive() || shared.snapshot().state == ConnState::Connecting {
        return WorkerReconnect::NotReady;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return WorkerReconnect::NotReady;
    };
    if raw <= 1 {
        return WorkerReconnect::NotReady;
    }
    let signal = request.signal();
    match nix::sys::signal::kill(Pid::from_raw(raw), signal) {
        Ok(()) => WorkerReconnect::Signalled { pid },
        Err(e) => {
            tracing::warn!(event = "bybit_connector_signal_failed", pid, signal = %signal, error = %e);
            WorkerReconnect::NotReady
        }
    }
}
