//! How a worker writes its frames to stdout (the pipe to its supervisor), two ways:
//!
//! - [`Stdout::Thread`] (default): one blocking writer thread takes bursts from a small queue, so
//!   the feed encodes the next burst while one is written: the most throughput (BENCHMARKS.md,
//!   issue 12: a non-blocking pipe written from the feed's task measured 229-249k msg/s against
//!   the thread's 299k).
//! - [`Stdout::Pipe`] (with `feed.busy_poll_us`): the burst is written from the worker's own task
//!   on a non-blocking pipe, without waking a thread for every burst: the lowest latency, for a
//!   worker whose runtime busy-polls anyway. A full pipe makes the task wait for room (the feed's
//!   own tasks go on reading the socket into its bounded queue).
//!
//! Either way a failed write (EPIPE: the supervisor is gone) stops the worker, logged as
//! `bybit_connector_worker_stdout_failed`.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The worker's stdout.
pub(crate) enum Stdout {
    /// Bursts go to a blocking writer thread.
    Thread {
        tx: mpsc::Sender<Vec<u8>>,
        handle: std::thread::JoinHandle<()>,
    },
    /// Bursts are written here, from the caller's task.
    Pipe(pipe::Sender),
}

impl Stdout {
    /// The writer for a worker (`busy`: `feed.busy_poll_us` > 0). A stdout that is not a pipe
    /// (a file, a terminal) gets the thread either way.
    pub(crate) fn open(busy: bool, stop: CancellationToken, reason: Arc<Mutex<String>>) -> Self {
        if busy {
            let pipe = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .and_then(pipe::Sender::from_owned_fd);
            if let Ok(p) = pipe {
                return Stdout::Pipe(p);
            }
        }
        let (tx, handle) = spawn_writer(stop, reason);
        Stdout::Thread { tx, handle }
    }

    /// `"thread"` or `"pipe"` (logged when the worker starts).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Stdout::Thread { .. } => "thread",
            Stdout::Pipe(_) => "pipe",
        }
    }

    /// Writes one burst; `false` when the worker must stop (stopping, or stdout failed).
    pub(crate) async fn send(
        &mut self,
        stop: &CancellationToken,
        reason: &Mutex<String>,
        buf: Vec<u8>,
    ) -> bool {
        match self {
            Stdout::Thread { tx, .. } => tokio::select! {
                r = tx.send(buf) => r.is_ok(),
                _ = stop.cancelled() => false,
            },
            Stdout::Pipe(p) => {
                let r = tokio::select! {
                    r = p.write_all(&buf) => r,
                    _ = stop.cancelled() => return false,
                };
                match r {
                    Ok(()) => true,
                    Err(e) => {
                        failed(&e, reason);
                        stop.cancel();
                        false
                    }
                }
            }
        }
    }

    /// Lets everything handed over be written (bounded: a writer stuck on a full pipe must not
    /// keep the worker alive).
    pub(crate) async fn close(self) {
        if let Stdout::Thread { tx, handle } = self {
            drop(tx);
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                tokio::task::spawn_blocking(move || handle.join()),
            )
            .await;
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
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
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
