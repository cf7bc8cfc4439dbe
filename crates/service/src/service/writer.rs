//! The store writer: one thread owns the SQLite connection and applies batched writes sent from
//! async tasks, so the hot path never blocks on an fsync. A write is "stored" once its
//! acknowledgement arrives (the transaction committed). The queue is bounded ([`QUEUE_CAPACITY`]
//! batches), so a disk that falls behind never grows memory without limit: backfill chunks and
//! reads wait for room; the live path's fire-and-forget writes (trades, live candles, status,
//! pruning) never wait: when the queue is full the batch is dropped, counted
//! ([`StoreWriter::dropped`]) and logged as `store_queue_full` at most once a second. The live
//! feed always goes on; the store is its history.
//!
//! Closing ([`StoreWriter::close`], at shutdown): the queue stops taking new work, what it holds
//! is written (a backfill chunk or read whose requester is already gone is skipped: nobody was
//! told it was stored), then a WAL checkpoint is attempted and the thread ends (`store_closed`).
//! The thread also ends, the same way, once every handle is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

/// Batches the writer queue holds before senders wait.
pub const QUEUE_CAPACITY: usize = 1024;

use crate::store::{Retention, StatusRecord, Store, StoreError, StoredCandle, StoredTrade};

enum Cmd {
    Candles(Vec<StoredCandle>),
    Chunk(
        String,
        Vec<StoredCandle>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Trades(Vec<StoredTrade>),
    Status(StatusRecord),
    Prune(Retention, u64),
    Read(Box<dyn FnOnce(&Store) + Send>),
    /// Stop taking work; write what is queued, checkpoint, end.
    Close,
}

/// A handle to the writer thread. Cloning shares the thread; it ends when every handle is gone.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Cmd>,
    /// Unix ms of the last `store_queue_full` log line.
    last_full_log_ms: Arc<AtomicU64>,
    /// Batches dropped because the queue was full.
    dropped: Arc<AtomicU64>,
    /// Set by [`StoreWriter::close`]; the thread closes the queue when it sees it.
    closing: Arc<AtomicBool>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWriter")
    }
}

impl StoreWriter {
    /// Starts the writer thread on an opened store.
    pub fn start(store: Store) -> (StoreWriter, thread::JoinHandle<()>) {
        Self::start_with_capacity(store, QUEUE_CAPACITY)
    }

    /// Starts the writer thread with a queue of `capacity` batches (at least 1).
    pub fn start_with_capacity(
        mut store: Store,
        capacity: usize,
    ) -> (StoreWriter, thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Cmd>(capacity.max(1));
        let closing = Arc::new(AtomicBool::new(false));
        let thread_closing = closing.clone();
        let handle = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let mut closed = false;
                let mut skipped = 0u64;
                while let Some(cmd) = rx.blocking_recv() {
                    if !closed && thread_closing.load(Ordering::Acquire) {
                        // No new work from here on; what is queued is still written.
                        rx.close();
                        closed = true;
                    }
                    let result = match cmd {
                        Cmd::Close => {
                            rx.close();
                            closed = true;
                            Ok(())
                        }
                        // Its requester is gone (a stopping backfill): nobody was told it was
                        // stored, so a shutdown does not wait for it.
                        Cmd::Chunk(_, _, ack) if ack.is_closed() => {
                            skipped += 1;
                            Ok(())
                        }
                        Cmd::Candles(c) => store.upsert_candles(&c).map(drop),
                        Cmd::Chunk(id, c, ack) => {
                            let r = store.store_chunk(&id, &c).map(drop);
                            let _ = ack.send(r);
                            Ok(())
                        }
                        Cmd::Trades(t) => store.insert_trades(&t).map(drop),
                        Cmd::Status(s) => store.record_status(&s),
                        Cmd::Prune(r, now) => store.prune_trades(r, now).map(drop),
                        Cmd::Read(f) => {
                            f(&store);
                            Ok(())
                        }
                    };
                    if let Err(e) = result {
                        tracing::error!(event = "store_write_failed", error = %e);
                    }
                }
                let checkpoint = store.checkpoint();
                match &checkpoint {
                    Ok(c) => tracing::info!(
                        event = "store_closed",
                        closed_by = if closed { "close" } else { "handles dropped" },
                        skipped_chunks = skipped,
                        checkpoint_busy = c.busy,
                        wal_frames = c.log_frames,
                        checkpointed_frames = c.checkpointed_frames,
                    ),
                    Err(e) => tracing::warn!(
                        event = "store_closed",
                        closed_by = if closed { "close" } else { "handles dropped" },
                        skipped_chunks = skipped,
                        checkpoint_error = %e,
                    ),
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        let writer = StoreWriter {
            tx,
            last_full_log_ms: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
            closing,
        };
        (writer, handle)
    }

    /// Queues `cmd`, waiting while the queue is full. `Err` once the writer has stopped.
    async fn send(&self, cmd: Cmd) -> Result<(), StoreError> {
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Closed),
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                self.log_full("waits");
                self.tx.send(cmd).await.map_err(|_| StoreError::Closed)
            }
        }
    }

    /// Queues `cmd` if there is room; otherwise drops and counts it. Never waits.
    fn offer(&self, cmd: Cmd) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(cmd) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.log_full("dropped");
        }
    }

    fn log_full(&self, action: &'static str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = self.last_full_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000
            && self
                .last_full_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                event = "store_queue_full",
                queue_capacity = self.tx.max_capacity(),
                action,
                dropped_total = self.dropped.load(Ordering::Relaxed),
            );
        }
    }

    /// Closes the writer (for every handle): new work is refused from now on, what is queued is
    /// written (chunks nobody awaits any more are skipped), a WAL checkpoint is attempted, and the
    /// thread ends. Never waits.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        // Wakes a thread waiting for work; a full queue means it is busy and sees the flag.
        let _ = self.tx.try_send(Cmd::Close);
    }

    /// Fire-and-forget batches dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The live counter behind [`StoreWriter::dropped`] (for metrics).
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Upserts candles (fire and forget; failures are logged).
    pub fn candles(&self, c: Vec<StoredCandle>) {
        if !c.is_empty() {
            self.offer(Cmd::Candles(c));
        }
    }

    /// Stores a backfill chunk and marks it done, atomically; resolves once committed.
    pub async fn chunk(&self, id: String, c: Vec<StoredCandle>) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.send(Cmd::Chunk(id, c, ack)).await?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Inserts trades (fire and forget; duplicates are ignored by the store).
    pub fn trades(&self, t: Vec<StoredTrade>) {
        if !t.is_empty() {
            self.offer(Cmd::Trades(t));
        }
    }

    /// Records a feed status change (fire and forget).
    pub fn status(&self, s: StatusRecord) {
        self.offer(Cmd::Status(s));
    }

    /// Deletes trades older than the retention (fire and forget).
    pub fn prune(&self, r: Retention, now_ms: u64) {
        self.offer(Cmd::Prune(r, now_ms));
    }

    /// Runs a read on the writer's connection and returns its result.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Read(Box::new(move |s| {
            let _ = tx.send(f(s));
        })))
        .await?;
        rx.await.map_err(|_| StoreError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use super::*;
    use crate::protocol::Category;

    fn temp_store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "hftc-writer-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir).expect("store"), dir)
    }

    fn status(i: u64) -> StatusRecord {
        StatusRecord {
            ts_ms: i,
            symbol: "BTCUSDT".into(),
            category: Category::Linear,
            status: "Connected".into(),
            detail: String::new(),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_live_writes_and_makes_chunks_wait() {
        let (store, dir) = temp_store();
        let (w, thread) = StoreWriter::start_with_capacity(store, 2);
        // Hold the writer thread inside a read so the queue cannot drain.
        let (entered_tx, entered_rx) = std_mpsc::channel();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let blocker = w.clone();
        let read = tokio::spawn(async move {
            blocker
                .read(move |_| {
                    let _ = entered_tx.send(());
                    let _ = release_rx.recv();
                })
                .await
        });
        tokio::task::spawn_blocking(move || entered_rx.recv())
            .await
            .expect("join")
            .expect("the writer entered the read");
        // Capacity 2: two queue, the rest are dropped, never blocking this task.
        for i in 0..5 {
            w.status(status(i));
        }
        assert_eq!(w.dropped(), 3);
        // A chunk waits for room instead of being dropped.
        let chunk_writer = w.clone();
        let chunk = tokio::spawn(async move { chunk_writer.chunk("c1".into(), Vec::new()).await });
        tokio::task::yield_now().await;
        assert!(!chunk.is_finished());
        release_tx.send(()).expect("release");
        read.await.expect("join").expect("read");
        chunk
            .await
            .expect("join")
            .expect("chunk stored once there was room");
        let statuses = w
            .read(|s| s.status_history("BTCUSDT", Category::Linear, 100))
            .await
            .expect("read")
            .expect("history");
        assert_eq!(statuses.len(), 2, "exactly the queued ones were written");
        assert_eq!(w.dropped(), 3);
        drop(w);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join")
            .expect("writer thread");
        let _ = std::fs::remove_dir_all(dir);
    }
}
