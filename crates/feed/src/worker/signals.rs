//! Process signals for the supervisor: signalling a worker's process group and describing how a
//! process ended. Safe wrappers only (`nix`); no `unsafe` here.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Sends `signal` to the process group led by `pid` (workers run with `process_group(0)`, so their
/// group id is their pid). A group that no longer exists is not an error.
pub fn killpg(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 1 {
        return; // never signal init or "every process"
    }
    match nix::sys::signal::killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(event = "bybit_connector_signal_failed", pid, signal = %signal, error = %e)
        }
    }
}

/// `(exit_code, signal)` of an ended process: one of them is set.
pub fn describe(status: &ExitStatus) -> (Option<i32>, Option<&'static str>) {
    let signal = status.signal().map(|s| {
        Signal::try_from(s)
            .map(Signal::as_str)
            .unwrap_or("unknown signal")
    });
    (status.code(), signal)
}

/// Waits until the waiter task reaped the worker.
pub(super) async fn exited(
    rx: &mut tokio::sync::watch::Receiver<Option<ExitStatus>>,
) -> ExitStatus {
    match rx.wait_for(Option::is_some).await {
        Ok(status) => (*status).unwrap_or_else(failed_status),
        Err(_) => failed_status(),
    }
}

pub(super) fn failed_status() -> ExitStatus {
    ExitStatus::from_raw(1 << 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals_are_named() {
        assert_eq!(describe(&ExitStatus::from_raw(3 << 8)), (Some(3), None));
        assert_eq!(describe(&ExitStatus::from_raw(9)), (None, Some("SIGKILL")));
        assert_eq!(describe(&ExitStatus::from_raw(15)), (None, Some("SIGTERM")));
    }
}
