//! The store writer: one thread owns the SQLite connection and applies batched writes sent from
//! async tasks, so the hot path never blocks on an fsync. A write is "stored" once its
//! acknowledgement arrives (the transaction committed).

use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

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
}

/// A handle to the writer thread. Cloning shares the thread; it ends when every handle is gone.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Cmd>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWriter")
    }
}

impl StoreWriter {
    /// Starts the writer thread on an opened store.
    pub fn start(mut store: Store) -> (StoreWriter, thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Cmd>();
        let handle = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(cmd) = rx.recv() {
                    let result = match cmd {
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
            })
            .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"));
        (StoreWriter { tx }, handle)
    }

    /// Upserts candles (fire and forget; failures are logged).
    pub fn candles(&self, c: Vec<StoredCandle>) {
        if !c.is_empty() {
            let _ = self.tx.send(Cmd::Candles(c));
        }
    }

    /// Stores a backfill chunk and marks it done, atomically; resolves once committed.
    pub async fn chunk(&self, id: String, c: Vec<StoredCandle>) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Cmd::Chunk(id, c, ack))
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Inserts trades (fire and forget; duplicates are ignored by the store).
    pub fn trades(&self, t: Vec<StoredTrade>) {
        if !t.is_empty() {
            let _ = self.tx.send(Cmd::Trades(t));
        }
    }

    /// Records a feed status change.
    pub fn status(&self, s: StatusRecord) {
        let _ = self.tx.send(Cmd::Status(s));
    }

    /// Deletes trades older than the retention.
    pub fn prune(&self, r: Retention, now_ms: u64) {
        let _ = self.tx.send(Cmd::Prune(r, now_ms));
    }

    /// Runs a read on the writer's connection and returns its result.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Read(Box::new(move |s| {
                let _ = tx.send(f(s));
            })))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }
}
