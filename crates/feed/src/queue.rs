//! The event queue between a feed (or a worker's supervisor, or the A/B lines' merge) and its
//! consumer, bounded twice: in events (`feed.queue_capacity`) and in bytes
//! (`feed.queue_max_bytes`). Events differ in size by three orders of magnitude (a trade against a
//! 1000-level snapshot), so a bound in events alone let a slow consumer pin tens of MB
//! (BENCHMARKS.md, issue 12). Whichever bound is reached first makes the producer wait: lossless
//! backpressure.
//!
//! Each bound is a semaphore: the producer takes one event and the event's (approximate) size in
//! bytes before queueing it, the consumer gives both back as it hands the event to its caller. An
//! event larger than the whole byte budget takes the whole budget, so it still passes, alone.
//!
//! # One hand-off per burst
//! The consumer takes everything queued in one wake-up: the whole queue moves into the
//! consumer's local batch under one lock, and [`QueueRx::recv`] then hands it out without touching
//! the shared queue ([`QueueRx::recv_many`] hands it out at once). Events in the local batch still
//! count against both bounds until handed out, so the bounds are exactly what they were. Each
//! event handed out takes one unit of the consuming task's cooperative budget, as with Tokio's own
//! channels: a consumer of a deep queue yields every 128 events instead of holding its thread
//! (measured: a whole 65,536-event queue handed out at once starved the service's other tasks for
//! seconds).
//!
//! The producer side wakes the consumer once per burst, not once per event: a producer task run
//! through [`QueueTx::wake_per_burst`] holds the consumer's wake-up until the end of its current
//! poll (everything it read from its socket or pipe without waiting), or until [`BURST_EVENTS`]
//! events are held, or until it waits (on a full queue, too). A consumer on another thread (the
//! `block_on` thread of `#[tokio::main]`) used to be woken, and on a shared core switched to,
//! once per event; it now gets the burst in one wake-up, as a consumer task on the producer's
//! runtime worker already did (a task woken by a running task waits for its poll to end).

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use tokio::sync::{Semaphore, TryAcquireError};

use crate::feed::FeedEvent;

/// Most consumer wake-ups a producer holds back within one burst: past this many events queued
/// since the consumer started waiting, it is woken at once (a consumer on another core starts on
/// the burst while the rest is decoded).
pub const BURST_EVENTS: usize = 64;

/// Makes a queue of at most `events` events and about `max_bytes` bytes.
pub fn bounded(events: usize, max_bytes: usize) -> (QueueTx, QueueRx) {
    let max_events = events.clamp(1, Semaphore::MAX_PERMITS);
    let max_bytes = max_bytes.clamp(1, Semaphore::MAX_PERMITS);
    let chan = Arc::new(Chan {
        inner: Mutex::new(Inner {
            buf: VecDeque::new(),
            waker: None,
            held: 0,
            senders: 1,
            closed: false,
        }),
        events: Semaphore::new(max_events),
        bytes: Semaphore::new(max_bytes),
        max_events,
        max_bytes,
        wake_held: AtomicBool::new(false),
    });
    (
        QueueTx { chan: chan.clone() },
        QueueRx {
            chan,
            local: VecDeque::new(),
        },
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

/// What both ends share.
struct Chan {
    inner: Mutex<Inner>,
    /// Free event slots (`max_events` minus queued, including the consumer's local batch).
    events: Semaphore,
    /// Free bytes.
    bytes: Semaphore,
    max_events: usize,
    max_bytes: usize,
    /// A wake-up was held back by the burst in progress ([`QueueTx::wake_per_burst`]).
    wake_held: AtomicBool,
}

struct Inner {
    /// Queued events with their cost in bytes, oldest first.
    buf: VecDeque<(FeedEvent, u32)>,
    /// The consumer, while it waits for an event.
    waker: Option<Waker>,
    /// Events queued during a burst since the consumer started waiting (its wake-up held back).
    held: usize,
    /// Live [`QueueTx`] clones; 0 ends the consumer once the queue is empty.
    senders: usize,
    /// The consumer is gone.
    closed: bool,
}

thread_local! {
    /// The queue whose consumer wake-ups the task being polled on this thread holds back.
    static BURST: Cell<*const Chan> = const { Cell::new(std::ptr::null()) };
}

impl Chan {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned queue is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event whose permits were taken; `Err` (with the event) if the consumer is gone.
    fn push(&self, ev: FeedEvent, n: u32) -> Result<(), FeedEvent> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(ev);
        }
        inner.buf.push_back((ev, n));
        if inner.waker.is_none() {
            return Ok(());
        }
        let bursting = BURST.with(|b| std::ptr::eq(b.get(), self));
        if bursting && inner.held < BURST_EVENTS {
            inner.held += 1;
            self.wake_held.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let waker = inner.waker.take();
        inner.held = 0;
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Wakes the consumer if a burst held its wake-up back.
    fn release_held(&self) {
        if !self.wake_held.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut inner = self.lock();
        inner.held = 0;
        let waker = if inner.buf.is_empty() {
            None
        } else {
            inner.waker.take()
        };
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Events queued now, the consumer's local batch included.
    fn len(&self) -> usize {
        self.max_events
            .saturating_sub(self.events.available_permits())
    }
}

/// The producing side.
pub struct QueueTx {
    chan: Arc<Chan>,
}

impl fmt::Debug for QueueTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueTx")
            .field("len", &self.len())
            .field("max_capacity", &self.max_capacity())
            .finish()
    }
}

impl Clone for QueueTx {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        QueueTx {
            chan: self.chan.clone(),
        }
    }
}

impl Drop for QueueTx {
    fn drop(&mut self) {
        let mut inner = self.chan.lock();
        inner.senders -= 1;
        let waker = if inner.senders == 0 {
            inner.waker.take()
        } else {
            None
        };
        drop(inner);
        // The last producer is gone: the consumer learns it (after the queued events).
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl QueueTx {
    fn cost(&self, ev: &FeedEvent) -> u32 {
        ev.approx_bytes()
            .min(self.chan.max_bytes)
            .min(u32::MAX as usize) as u32
    }

    /// Queues `ev` if both bounds allow it now.
    pub fn try_send(&self, ev: FeedEvent) -> Result<(), TrySendError> {
        let n = self.cost(&ev);
        let slot = match self.chan.events.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(ev)),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(ev)),
        };
        let bytes = match self.chan.bytes.try_acquire_many(n) {
            Ok(p) => p,
            // The slot goes back as `slot` drops.
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(ev)),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(ev)),
        };
        slot.forget();
        bytes.forget();
        self.chan.push(ev, n).map_err(TrySendError::Closed)
    }

    /// Queues `ev`, waiting while a bound is reached; `Err` (with the event) when the consumer is
    /// gone. Cancel-safe up to losing `ev` (as `mpsc::Sender::send`).
    pub async fn send(&self, ev: FeedEvent) -> Result<(), FeedEvent> {
        let n = self.cost(&ev);
        let Ok(slot) = self.chan.events.acquire().await else {
            return Err(ev);
        };
        let Ok(bytes) = self.chan.bytes.acquire_many(n).await else {
            return Err(ev);
        };
        slot.forget();
        bytes.forget();
        self.chan.push(ev, n)
    }

    /// Runs `producer` (the task that sends on this queue) so that it wakes the consumer once per
    /// burst: at the end of each of its polls, or every [`BURST_EVENTS`] events, instead of once
    /// per event (see the module docs). Sends from elsewhere wake as usual.
    pub fn wake_per_burst<F: Future>(&self, producer: F) -> impl Future<Output = F::Output> {
        let chan = self.chan.clone();
        async move {
            let mut producer = std::pin::pin!(producer);
            std::future::poll_fn(|cx| {
                let _burst = Burst::enter(&chan);
                producer.as_mut().poll(cx)
            })
            .await
        }
    }

    /// Most events the queue holds.
    pub fn max_capacity(&self) -> usize {
        self.chan.max_events
    }

    /// Events queued now (the consumer's local batch included).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One poll of a producer task in [`QueueTx::wake_per_burst`]: holds the consumer's wake-ups
/// while alive, wakes it on drop if one was held (a panicking poll included).
struct Burst<'a> {
    chan: &'a Chan,
    outer: *const Chan,
}

impl<'a> Burst<'a> {
    fn enter(chan: &'a Arc<Chan>) -> Self {
        let outer = BURST.with(|b| b.replace(Arc::as_ptr(chan)));
        Burst { chan, outer }
    }
}

impl Drop for Burst<'_> {
    fn drop(&mut self) {
        BURST.with(|b| b.set(self.outer));
        self.chan.release_held();
    }
}

/// The consuming side.
pub struct QueueRx {
    chan: Arc<Chan>,
    /// Events taken from the queue in the last wake-up and not handed out yet (still counted in
    /// both bounds).
    local: VecDeque<(FeedEvent, u32)>,
}

impl fmt::Debug for QueueRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueRx")
            .field("len", &self.len())
            .field("local", &self.local.len())
            .finish()
    }
}

impl QueueRx {
    /// The next event; `None` once every producer is gone and the queue is empty. Cancel-safe.
    /// Each event takes one unit of the task's cooperative budget, as `mpsc::Receiver::recv`.
    pub async fn recv(&mut self) -> Option<FeedEvent> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Appends the events queued now to `out`, waiting for one if none is; the number appended, 0
    /// once every producer is gone and the queue is empty. Cancel-safe. Each event takes one unit
    /// of the task's cooperative budget (Tokio's, 128 per poll): one call hands out everything
    /// queued, or as many as the budget allows (the task then yields before the next call goes on
    /// with the rest), so a consumer of a deep queue never keeps its thread from other tasks.
    pub async fn recv_many(&mut self, out: &mut Vec<FeedEvent>) -> usize {
        std::future::poll_fn(|cx| self.poll_recv_many(cx, out)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<FeedEvent>> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        if self.local.is_empty() && !ready!(self.poll_refill(cx)) {
            return Poll::Ready(None);
        }
        let Some((ev, n)) = self.local.pop_front() else {
            return Poll::Ready(None);
        };
        coop.made_progress();
        self.give_back(1, n as usize);
        Poll::Ready(Some(ev))
    }

    fn poll_recv_many(&mut self, cx: &mut Context<'_>, out: &mut Vec<FeedEvent>) -> Poll<usize> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        if self.local.is_empty() && !ready!(self.poll_refill(cx)) {
            return Poll::Ready(0);
        }
        coop.made_progress();
        out.reserve(self.local.len());
        let (mut count, mut bytes) = (0usize, 0usize);
        while let Some((ev, n)) = self.local.pop_front() {
            out.push(ev);
            count += 1;
            bytes += n as usize;
            if self.local.is_empty() {
                break;
            }
            // The next event takes budget too; once it is spent, the rest waits for the next call.
            match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(more) => more.made_progress(),
                Poll::Pending => break,
            }
        }
        self.give_back(count, bytes);
        Poll::Ready(count)
    }

    /// Moves every queued event into the local batch (`true`), or registers the consumer to be
    /// woken when one comes (`Pending`); `false` once every producer is gone and nothing is left.
    fn poll_refill(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut inner = self.chan.lock();
        if !inner.buf.is_empty() {
            // Both buffers keep their allocations: no allocation per batch.
            std::mem::swap(&mut inner.buf, &mut self.local);
            inner.waker = None;
            inner.held = 0;
            return Poll::Ready(true);
        }
        if inner.senders == 0 {
            return Poll::Ready(false);
        }
        match &mut inner.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Frees the slots and bytes of events handed out.
    fn give_back(&self, events: usize, bytes: usize) {
        self.chan.events.add_permits(events);
        self.chan.bytes.add_permits(bytes);
    }

    /// Events queued now (the local batch included).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        // A producer waiting for a slot or bytes must learn that nobody will ever free them.
        self.chan.lock().closed = true;
        self.chan.events.close();
        self.chan.bytes.close();
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

    /// An event that says which one it is.
    fn nth(i: u64) -> FeedEvent {
        FeedEvent::GaveUp { attempts: i as u32 }
    }

    fn index(ev: &FeedEvent) -> u64 {
        match ev {
            FeedEvent::GaveUp { attempts } => u64::from(*attempts),
            other => panic!("not a numbered event: {other:?}"),
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

    #[tokio::test]
    async fn a_waiting_producer_for_a_slot_learns_the_consumer_is_gone() {
        let (tx, rx) = bounded(1, usize::MAX);
        tx.send(small()).await.expect("passes");
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(small()).await.is_err() }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(waiting.await.expect("joins"));
    }

    #[tokio::test]
    async fn a_batch_is_everything_queued_in_order() {
        let (tx, mut rx) = bounded(100, usize::MAX);
        for i in 0..10 {
            tx.try_send(nth(i)).expect("fits");
        }
        let mut out = Vec::new();
        assert_eq!(rx.recv_many(&mut out).await, 10);
        assert_eq!(
            out.iter().map(index).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(rx.is_empty() && tx.is_empty(), "handed out means freed");
        // Appends, never clears what the caller kept.
        tx.try_send(nth(10)).expect("fits");
        assert_eq!(rx.recv_many(&mut out).await, 1);
        assert_eq!(out.len(), 11);
        assert_eq!(index(&out[10]), 10);
    }

    #[tokio::test]
    async fn the_local_batch_counts_against_both_bounds_until_handed_out() {
        let one = small().approx_bytes();
        let (tx, mut rx) = bounded(4, one * 4);
        for _ in 0..4 {
            tx.try_send(small()).expect("fits");
        }
        // Takes the whole queue into the local batch and hands out one.
        rx.recv().await.expect("an event");
        assert_eq!(rx.len(), 3, "three still held by the consumer's batch");
        assert_eq!(tx.len(), 3);
        tx.try_send(small()).expect("one slot free");
        assert!(
            matches!(tx.try_send(small()), Err(TrySendError::Full(_))),
            "the batch still holds its slots: the bound is 4 events in all"
        );
        for _ in 0..4 {
            rx.recv().await.expect("an event");
        }
        assert!(rx.is_empty());
        // Same for bytes alone.
        let (tx, mut rx) = bounded(100, one * 2);
        tx.try_send(small()).expect("fits");
        tx.try_send(small()).expect("fits");
        rx.recv().await.expect("an event");
        tx.try_send(small())
            .expect("the handed-out event's bytes are free");
        assert!(matches!(tx.try_send(small()), Err(TrySendError::Full(_))));
    }

    #[tokio::test]
    async fn single_events_and_batches_mix_without_loss_or_duplicates() {
        let (tx, mut rx) = bounded(8, usize::MAX);
        let producer = tokio::spawn(async move {
            for i in 0..5_000u64 {
                tx.send(nth(i)).await.expect("consumer alive");
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut got = Vec::new();
        let mut batch = Vec::new();
        let mut turn = 0u64;
        loop {
            turn += 1;
            if turn % 3 == 0 {
                match rx.recv().await {
                    Some(ev) => got.push(index(&ev)),
                    None => break,
                }
            } else {
                batch.clear();
                let n = rx.recv_many(&mut batch).await;
                if n == 0 {
                    break;
                }
                assert!(n <= 8, "a batch never exceeds the bound: {n}");
                assert_eq!(n, batch.len());
                got.extend(batch.iter().map(index));
            }
        }
        producer.await.expect("producer");
        assert_eq!(got, (0..5_000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_consumer_ends_after_the_events_queued_before_close() {
        let (tx, mut rx) = bounded(100, usize::MAX);
        for i in 0..5 {
            tx.try_send(nth(i)).expect("fits");
        }
        drop(tx);
        assert_eq!(rx.recv().await.map(|e| index(&e)), Some(0));
        let mut out = Vec::new();
        assert_eq!(rx.recv_many(&mut out).await, 4);
        assert_eq!(out.iter().map(index).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert!(rx.recv().await.is_none());
        assert_eq!(rx.recv_many(&mut out).await, 0);
    }

    #[tokio::test]
    async fn a_waiting_consumer_learns_the_producers_are_gone() {
        let (tx, mut rx) = bounded(100, usize::MAX);
        let tx2 = tx.clone();
        let consumer = tokio::spawn(async move {
            let mut out = Vec::new();
            (rx.recv_many(&mut out).await, rx.recv().await.is_none())
        });
        tokio::task::yield_now().await;
        drop(tx);
        tx2.try_send(small()).expect("one producer is left");
        drop(tx2);
        assert_eq!(consumer.await.expect("joins"), (1, true));
    }

    #[tokio::test]
    async fn a_cancelled_receive_loses_nothing() {
        let (tx, mut rx) = bounded(100, usize::MAX);
        // Cancelled while waiting.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(5), rx.recv())
                .await
                .is_err()
        );
        for i in 0..3 {
            tx.try_send(nth(i)).expect("fits");
        }
        let mut out = Vec::new();
        assert_eq!(rx.recv_many(&mut out).await, 3);
        assert_eq!(out.iter().map(index).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_batch_takes_at_most_the_tasks_budget_and_the_rest_comes_next() {
        let (tx, mut rx) = bounded(1000, usize::MAX);
        for i in 0..500 {
            tx.try_send(nth(i)).expect("fits");
        }
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        while out.len() < 500 {
            let n = rx.recv_many(&mut out).await;
            assert!(n > 0);
            sizes.push(n);
        }
        assert!(
            sizes.iter().all(|&n| n <= 128) && sizes.len() >= 4,
            "one unit of budget per event: {sizes:?}"
        );
        assert_eq!(
            out.iter().map(index).collect::<Vec<_>>(),
            (0..500).collect::<Vec<_>>()
        );
        assert!(rx.is_empty());
    }

    /// The regression this guards: the service's pipeline took a whole queue (65,536 events) in
    /// one poll and the runtime's other tasks (timers, HTTP, REST) waited seconds.
    #[tokio::test]
    async fn a_consumer_of_a_deep_queue_lets_other_tasks_run() {
        let (tx, mut rx) = bounded(100_000, usize::MAX);
        for i in 0..50_000 {
            tx.try_send(nth(i)).expect("fits");
        }
        let other = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let other = other.clone();
            async move { other.store(true, Ordering::SeqCst) }
        });
        let (mut out, mut taken_before_other) = (Vec::new(), None);
        let (mut single, mut turn) = (0, 0u64);
        while out.len() + single < 50_000 {
            turn += 1;
            if turn % 4 == 0 {
                rx.recv().await.expect("an event");
                single += 1;
            } else {
                rx.recv_many(&mut out).await;
            }
            if taken_before_other.is_none() && other.load(Ordering::SeqCst) {
                taken_before_other = Some(out.len() + single);
            }
        }
        let taken = taken_before_other.expect("the other task ran while the queue was consumed");
        assert!(taken <= 256, "the other task waited for {taken} events");
    }

    /// A consumer on another thread (as in `#[tokio::main]`) is woken once per burst of a
    /// producer running under `wake_per_burst`, not once per event.
    #[test]
    fn a_burst_wakes_the_consumer_once() {
        use std::sync::atomic::AtomicUsize;
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = bounded(1000, usize::MAX);
        // The consumer waits.
        assert!(rx.poll_refill(&mut cx).is_pending());
        // One poll of the producer queues a burst of 10.
        let burst = tx.wake_per_burst(async {
            for i in 0..10 {
                tx.send(nth(i)).await.expect("alive");
            }
        });
        let mut burst = std::pin::pin!(burst);
        let noop = Waker::noop();
        assert!(burst
            .as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_ready());
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "one wake-up for the burst"
        );
        assert_eq!(rx.poll_refill(&mut cx), Poll::Ready(true));
        assert_eq!(rx.local.len(), 10);
        // A burst longer than BURST_EVENTS wakes every BURST_EVENTS events (the consumer is not
        // polled meanwhile here, so it is woken once then stays unregistered).
        rx.local.clear();
        assert!(rx.poll_refill(&mut cx).is_pending());
        let n = BURST_EVENTS as u64 * 3;
        let long = tx.wake_per_burst(async {
            for i in 0..n {
                tx.try_send(nth(i)).expect("fits");
            }
        });
        let mut long = std::pin::pin!(long);
        assert!(long
            .as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_ready());
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            2,
            "woken at the {}th event of the burst",
            BURST_EVENTS + 1
        );
        // Outside a burst every send wakes a waiting consumer at once.
        rx.local.clear();
        let mut out = Vec::new();
        let _ = rx.poll_refill(&mut cx);
        rx.local.drain(..).for_each(|(ev, _)| out.push(ev));
        assert!(rx.poll_refill(&mut cx).is_pending());
        tx.try_send(nth(0)).expect("fits");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 3);
    }
}
