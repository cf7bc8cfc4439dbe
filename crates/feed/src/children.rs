//! Every worker process this process started and has not reaped yet, so that a process that must
//! exit now (its bounded stop ran out, or a second SIGTERM / SIGINT) takes them with it instead of
//! leaving them behind: [`kill_all`] sends SIGKILL to each worker's process group (each worker
//! leads its own) and reaps them, within a bound.
//!
//! The supervisor records a worker with [`started`] right after spawning it and forgets it with
//! [`reaped`] once its waiter collected the exit status. The set is process-wide on purpose: a
//! process exits as a whole.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn live_set() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records a worker process (and process group) `pid` this process started.
pub fn started(pid: u32) {
    if pid > 1 {
        live_set().insert(pid);
    }
}

/// Forgets `pid`: its exit status was collected.
pub fn reaped(pid: u32) {
    live_set().remove(&pid);
}

/// The worker processes started and not yet reaped.
pub fn live() -> Vec<u32> {
    live_set().iter().copied().collect()
}

/// Sends SIGKILL to every live worker's process group, then reaps each (or sees it reaped by its
/// own waiter) for at most `wait`. Returns the pids still not reaped when `wait` ran out (none
/// unless the kernel is slow to deliver). For a process about to exit: no worker, and none of a
/// worker's own children, outlives it, and none is left a zombie.
pub fn kill_all(wait: Duration) -> Vec<u32> {
    let pids = live();
    for &pid in &pids {
        if let Ok(raw) = i32::try_from(pid) {
            // The whole group: a worker's own children go with it. ESRCH: already gone.
            let _ = nix::sys::signal::killpg(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + wait;
    let mut left: Vec<u32> = pids;
    loop {
        left.retain(|&pid| {
            let Ok(raw) = i32::try_from(pid) else {
                return false;
            };
            match waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                // Reaped now, or already by its waiter (ECHILD): gone either way.
                Ok(_) | Err(_) => {
                    reaped(pid);
                    false
                }
            }
        });
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_all_kills_and_reaps_a_process_group() {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        let pid = child.id();
        started(pid);
        assert!(live().contains(&pid));
        let left = kill_all(Duration::from_secs(5));
        assert!(left.is_empty(), "{left:?}");
        assert!(!live().contains(&pid));
        // Reaped: not even a zombie is left.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        std::mem::forget(child);
    }
}
