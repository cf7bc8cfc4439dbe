//! Busy polling (`feed.busy_poll_us`): keeps the thread that reads a feed's input (the socket
//! in-process and in a worker, the worker's pipe in the supervisor) polling instead of sleeping
//! while data flows, so a frame is picked up without an OS wake-up.
//!
//! Why: on a virtual machine a sleeping core is halted; waking it for a frame costs tens of
//! microseconds, most of the send -> consumer latency at paced rates (BENCHMARKS.md, issue 12).
//! A spinner task keeps the runtime turning: each turn polls the I/O driver without blocking
//! ([`tokio::task::yield_now`]) and offers the core to any other runnable thread
//! ([`std::thread::yield_now`], so a worker process and its supervisor pinned to one core take
//! turns instead of waiting out each other's time slices). It spins until no frame arrived for
//! the window, then sleeps until the next frame: a quiet market costs nothing, a busy one a core.
//!
//! The reader calls [`Activity::touch`] per frame: one relaxed atomic add and one load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Frames seen by a reader, and the spinner's bell.
#[derive(Debug, Default)]
pub struct Activity {
    frames: AtomicU64,
    /// The spinner sleeps until the next frame.
    parked: AtomicBool,
    bell: Notify,
}

impl Activity {
    /// One frame arrived.
    #[inline]
    pub fn touch(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if self.parked.load(Ordering::Relaxed) {
            self.parked.store(false, Ordering::Relaxed);
            self.bell.notify_one();
        }
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Sleeps until a frame arrives after `seen` frames.
    async fn idle(&self, seen: u64) {
        self.parked.store(true, Ordering::SeqCst);
        // A frame that came in between the caller's look and `parked` must not be slept through
        // (`notify_one` keeps a permit when nobody waits yet, so a touch after this is not lost).
        if self.frames.load(Ordering::SeqCst) != seen {
            self.parked.store(false, Ordering::Relaxed);
            return;
        }
        self.bell.notified().await;
    }
}

/// What the spinner decides on one turn (pure, so the rule is tested without a clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Keep polling.
    Spin,
    /// Nothing for a whole window: sleep until the next frame.
    Sleep,
}

/// The spinner's memory: the frame count last seen and since when it has not moved.
#[derive(Debug)]
pub(crate) struct Watch {
    seen: u64,
    since: Instant,
    window: Duration,
}

impl Watch {
    pub(crate) fn new(seen: u64, now: Instant, window: Duration) -> Self {
        Watch {
            seen,
            since: now,
            window,
        }
    }

    /// One turn: `frames` is the reader's count now.
    pub(crate) fn turn(&mut self, frames: u64, now: Instant) -> Turn {
        if frames != self.seen {
            self.seen = frames;
            self.since = now;
            Turn::Spin
        } else if now.saturating_duration_since(self.since) >= self.window {
            Turn::Sleep
        } else {
            Turn::Spin
        }
    }
}

/// Starts the spinner for `activity` on the current runtime when `window_us` > 0; it ends with
/// `cancel`.
pub fn spawn(activity: Arc<Activity>, window_us: u64, cancel: CancellationToken) {
    if window_us == 0 {
        return;
    }
    tokio::spawn(spin(activity, Duration::from_micros(window_us), cancel));
}

async fn spin(activity: Arc<Activity>, window: Duration, cancel: CancellationToken) {
    let mut watch = Watch::new(activity.frames(), Instant::now(), window);
    loop {
        if cancel.is_cancelled() {
            return;
        }
        match watch.turn(activity.frames(), Instant::now()) {
            Turn::Spin => {
                tokio::task::yield_now().await;
                std::thread::yield_now();
            }
            Turn::Sleep => {
                let seen = watch.seen;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = activity.idle(seen) => {}
                }
                watch = Watch::new(activity.frames(), Instant::now(), window);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_spins_while_frames_come_and_sleeps_after_a_quiet_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Watch::new(0, t0, ms(10));
        assert_eq!(w.turn(0, t0 + ms(9)), Turn::Spin, "inside the window");
        assert_eq!(w.turn(1, t0 + ms(15)), Turn::Spin, "a frame restarts it");
        assert_eq!(w.turn(1, t0 + ms(24)), Turn::Spin);
        assert_eq!(w.turn(1, t0 + ms(25)), Turn::Sleep, "quiet for the window");
    }

    #[tokio::test]
    async fn a_sleeping_spinner_wakes_on_the_next_frame_even_one_that_raced_its_sleep() {
        let a = Arc::new(Activity::default());
        // The frame came after the spinner looked (seen = 0) but before it slept.
        a.touch();
        tokio::time::timeout(Duration::from_secs(10), a.idle(0))
            .await
            .expect("not slept through");
        // Asleep first, then a frame.
        let sleeper = tokio::spawn({
            let a = a.clone();
            async move { a.idle(1).await }
        });
        while !a.parked.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        a.touch();
        tokio::time::timeout(Duration::from_secs(10), sleeper)
            .await
            .expect("woken")
            .expect("joins");
    }

    /// Waits (yielding) until `cond` holds; the guard only stops a hang.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let guard = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < guard, "never: {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_spinner_sleeps_when_frames_stop_and_spins_again_on_the_next() {
        let a = Arc::new(Activity::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(spin(a.clone(), Duration::from_millis(5), cancel.clone()));
        until("asleep after a quiet window", || {
            a.parked.load(Ordering::SeqCst)
        })
        .await;
        a.touch();
        assert!(!a.parked.load(Ordering::SeqCst), "a frame rings the bell");
        // Awake again, it sleeps again once the frames stop.
        until("asleep again", || a.parked.load(Ordering::SeqCst)).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("ends")
            .expect("joins");
    }

    #[tokio::test]
    async fn the_spinner_ends_with_its_feed() {
        let a = Arc::new(Activity::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(spin(a.clone(), Duration::from_micros(100), cancel.clone()));
        a.touch();
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("ends")
            .expect("joins");
    }
}
