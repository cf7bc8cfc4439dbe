//! The worker's stdout, where its frames go. On a pipe (always, under a supervisor) it is written
//! asynchronously from the worker's own task: no hand-off to a writer thread and no thread wake-up
//! per burst, the largest share of process isolation's latency at moderate rates (BENCHMARKS.md,
//! issue 12). When stdout is not a pipe (a terminal, a file) a blocking writer thread does it.
//! Either way a burst is written whole before the next, and a failed write (EPIPE: the supervisor
//! is gone) stops the worker.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where bursts are written.
pub(crate) enum Out {
    /// Non-blocking writes on the stdout pipe.
    Pipe(pipe::Sender),
    /// A writer thread (stdout is not a pipe).
    Thread {
        tx: Option<mpsc::Sender<Vec<u8>>>,
        handle: Option<std::thread::JoinHandle<()>>,
    },
}

impl Out {
    /// Opens stdout.
    pub(crate) fn open(stop: CancellationToken, reason: Arc<Mutex<String>>) -> Out {
        let pipe = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(pipe::Sender::from_file);
        match pipe {
            Ok(p) => Out::Pipe(p),
            Err(_) => {
                let (tx, handle) = spawn_writer(stop, reason);
                Out::Thread {
                    tx: Some(tx),
                    handle: Some(handle),
                }
            }
        }
    }

    /// Writes `buf` (then clears it, keeping its capacity); `false` when the worker must stop.
    pub(crate) async fn send(
        &mut self,
        stop: &CancellationToken,
        reason: &Mutex<String>,
        buf: &mut Vec<u8>,
    ) -> bool {
        match self {
            Out::Pipe(p) => {
                let written = tokio::select! {
                    r = p.write_all(buf) => r,
                    _ = stop.cancelled() => return false,
                };
                buf.clear();
                match written {
                    Ok(()) => true,
                    Err(e) => {
                        failed(&e, reason);
                        stop.cancel();
                        false
                    }
                }
            }
            Out::Thread { tx: Some(tx), .. } => {
                let burst = std::mem::replace(buf, Vec::with_capacity(buf.capacity()));
                tokio::select! {
                    r = tx.send(burst) => r.is_ok(),
                    _ = stop.cancelled() => false,
                }
            }
            Out::Thread { tx: None, .. } => false,
        }
    }

    /// Lets the writer finish what it holds (bounded: a writer stuck on a full pipe must not keep
    /// the worker alive).
    pub(crate) async fn close(self) {
        if let Out::Thread { tx, handle } = self {
            drop(tx);
            if let Some(h) = handle {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    tokio::task::spawn_blocking(move || h.join()),
                )
                .await;
            }
        }
    }
}

fn failed(e: &std::io::Error, reason: &Mutex<String>) {
    let gone = e.kind() == std::io::ErrorKind::BrokenPipe;
    tracing::warn!(
        event = "bybit_connector_worker_stdout_failed",
        error = %e,
        supervisor_gone = gone,
    );
    super::child::set_reason(reason, format!("stdout write failed: {e}"));
}

/// One blocking thread writes bursts to stdout and flushes each.
fn spawn_writer(
    stop: CancellationToken,
    reason: Arc<Mutex<String>>,
) -> (mpsc::Sender<Vec<u8>>, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let handle = std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        while let Some(buf) = rx.blocking_recv() {
            if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
                failed(&e, &reason);
                stop.cancel();
                return;
            }
        }
    });
    (tx, handle)
}
