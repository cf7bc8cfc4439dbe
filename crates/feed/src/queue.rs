//! The event queue between a feed (or a worker's supervisor) and its consumer, bounded twice: in
//! events (`feed.queue_capacity`) and in bytes (`feed.queue_max_bytes`). Events differ in size by
//! three orders of magnitude (a trade against a 1000-level snapshot), so a bound in events alone
//! let a slow consumer pin tens of MB (BENCHMARKS.md, issue 12). Whichever bound is reached first
//! makes the producer wait: lossless backpressure, as before.
//!
//! The byte bound is a semaphore of bytes: the producer takes an event's (approximate) size
//! before queueing it, the consumer gives it back when it takes the event out. An event larger
//! than the whole budget takes the whole budget, so it still passes, alone.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::feed::FeedEvent;

/// Makes a queue of at most `events` events and about `max_bytes` bytes.
pub fn bounded(events: usize, max_bytes: usize) -> (QueueTx, QueueRx) {
    let max_bytes = max_bytes.clamp(1, Semaphore::MAX_PERMITS);
    let bytes = Arc::new(Semaphore::new(max_bytes));
    let (tx, rx) = mpsc::channel(events.max(1));
    (
        QueueTx {
            tx,
            bytes: bytes.clone(),
            max_bytes,
        },
        QueueRx { rx, bytes },
    )
}

/// Why an event was not queued; it is handed back.
#[derive(Debug)]
pub enum TrySendError {
    /// One of the bounds is reached.
    Full(FeedEvent),
    /// The consumer is gone.
    Closed(FeedEvent),
}

/// The producing side.
#[derive(Debug, Clone)]
pub struct QueueTx {
    tx: mpsc::Sender<(FeedEvent, u32)>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
}

impl QueueTx {
    fn cost(&self, ev: &FeedEvent) -> u32 {
        ev.approx_bytes().min(self.max_bytes).min(u32::MAX as usize) as u32
    }

    /// Queues `ev` if both bounds allow it now.
    pub fn try_send(&self, ev: FeedEvent) -> Result<(), TrySendError> {
        let n = self.cost(&ev);
        match self.bytes.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(TrySendError::Full(ev)),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(TrySendError::Closed(ev)),
        }
        match self.tx.try_send((ev, n)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full((ev, n))) => {
                self.bytes.add_permits(n as usize);
                Err(TrySendError::Full(ev))
            }
            Err(mpsc::error::TrySendError::Closed((ev, _))) => Err(TrySendError::Closed(ev)),
        }
    }

    /// Queues `ev`, waiting while a bound is reached; `Err` (with the event) when the consumer is
    /// gone. Cancel-safe up to losing `ev` (as `mpsc::Sender::send`).
    pub async fn send(&self, ev: FeedEvent) -> Result<(), FeedEvent> {
        let n = self.cost(&ev);
        match self.bytes.acquire_many(n).await {
            Ok(p) => p.forget(),
            Err(_) => return Err(ev),
        }
        self.tx.send((ev, n)).await.map_err(|e| e.0 .0)
    }

    /// Most events the queue holds.
    pub fn max_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The consuming side.
#[derive(Debug)]
pub struct QueueRx {
    rx: mpsc::Receiver<(FeedEvent, u32)>,
    bytes: Arc<Semaphore>,
}

impl QueueRx {
    /// The next event; `None` once every producer is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<FeedEvent> {
        let (ev, n) = self.rx.recv().await?;
        self.bytes.add_permits(n as usize);
        Some(ev)
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        // A producer waiting for bytes must learn that nobody will ever free them.
        self.bytes.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::DisconnectReason;

    fn small() -> FeedEvent {
        FeedEvent::Disconnected {
            reason: DisconnectReason::Stale,
        }
    }

    #[tokio::test]
    async fn the_byte_bound_stops_the_producer_before_the_event_bound() {
        let one = small().approx_bytes();
        let (tx, mut rx) = bounded(1000, one * 3);
        for _ in 0..3 {
            tx.try_send(small()).expect("fits");
        }
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Full(_))));
        assert_eq!(tx.len(), 3);
        rx.recv().await.expect("an event");
        tx.try_send(small())
            .expect("room again after one was taken");
    }

    #[tokio::test]
    async fn the_event_bound_still_holds_and_returns_the_bytes() {
        let (tx, mut rx) = bounded(2, usize::MAX);
        tx.try_send(small()).expect("1");
        tx.try_send(small()).expect("2");
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Full(_))));
        rx.recv().await.expect("an event");
        tx.try_send(small()).expect("room again");
    }

    #[tokio::test]
    async fn an_event_larger_than_the_budget_passes_alone() {
        let (tx, mut rx) = bounded(10, 1);
        tx.send(small()).await.expect("passes");
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Full(_))));
        rx.recv().await.expect("an event");
        tx.send(small()).await.expect("passes again");
    }

    #[tokio::test]
    async fn a_waiting_producer_learns_the_consumer_is_gone() {
        let (tx, rx) = bounded(10, 1);
        tx.send(small()).await.expect("passes");
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(small()).await.is_err() }
        });
        drop(rx);
        assert!(
            waiting.await.expect("joins"),
            "send fails once the consumer is gone"
        );
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Closed(_))));
    }
}
