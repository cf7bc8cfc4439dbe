//! Reconnect requests across the process boundary: the supervisor side tells a worker with
//! SIGUSR1 ([`tell_reconnect`]); the worker turns each SIGUSR1 into a request to its feed
//! ([`crate::feed::control`]), which drops its connection and reconnects the normal way
//! (resubscribe, fresh book snapshots, REST trade gap-fill). The worker keeps running: its
//! supervisor's trade tape and books carry on as across any reconnect.
//!
//! A worker installs its SIGUSR1 handler before it reports anything, and SIGUSR1 would otherwise
//! end a process: the supervisor side only signals a worker that has already reported its feed's
//! state (see [`tell_reconnect`]).

use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::feed::{ConnState, FeedShared};
use crate::worker::WorkerShared;

/// What telling a worker to reconnect did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerReconnect {
    /// Worker `pid` was told (SIGUSR1).
    Signalled {
        /// The worker's pid.
        pid: u32,
    },
    /// No worker is ready to be told (none running, or one just started that has not reported
    /// its state yet): its connection is being opened anyway.
    NotReady,
}

/// The worker side: SIGUSR1 is caught from now on (install before reporting anything).
pub fn listen() -> std::io::Result<tokio::signal::unix::Signal> {
    signal(SignalKind::user_defined1())
}

/// The worker side: each SIGUSR1 becomes a reconnect request to the worker's feed.
pub async fn forward(mut usr1: tokio::signal::unix::Signal, feed: Arc<FeedShared>) {
    while usr1.recv().await.is_some() {
        let seq = feed
            .control
            .request_reconnect("asked by the supervisor (SIGUSR1)");
        tracing::info!(
            event = "bybit_connector_worker_reconnect_requested",
            pid = std::process::id(),
            requests = seq,
        );
    }
}

/// The supervisor side: tells the current worker to drop its connection and reconnect. Only a
/// worker that is alive and has reported a state of its own (anything but the `connecting` the
/// supervisor sets when it starts one) is signalled: that worker has its handler installed.
pub fn tell_reconnect(shared: &WorkerShared) -> WorkerReconnect {
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
    match nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGUSR1) {
        Ok(()) => WorkerReconnect::Signalled { pid },
        Err(e) => {
            tracing::warn!(event = "bybit_connector_signal_failed", pid, signal = "SIGUSR1", error = %e);
            WorkerReconnect::NotReady
        }
    }
}
