//! A counting global allocator for memory investigations (cargo feature `heap-stats`, off in
//! normal builds): it wraps the real allocator, keeps the live heap bytes, their peak and the
//! number of allocations in atomics, and a thread logs them as `heap_stats` once a minute. The
//! gap between a process's RSS and its live heap is the allocator's own retention (freed pages
//! kept for reuse), not data the program still holds.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Live bytes now.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Highest `LIVE` seen.
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocations since start.
static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// `A` with counters.
pub struct Counting<A>(pub A);

fn grow(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to `A`, a `GlobalAlloc`, with the caller's layout and pointer
// unchanged, so `A`'s guarantees hold as they are; the counters only read the sizes and never
// allocate (atomics only), so there is no re-entry into the allocator.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see above).
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is (see above).
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see above).
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is (see above).
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grow(new_size);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
}

/// (live bytes, peak bytes, allocations) now.
pub fn snapshot() -> (usize, usize, u64) {
    (
        LIVE.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
        ALLOCS.load(Ordering::Relaxed),
    )
}

/// The process's resident set (kB) from `/proc/self/status`.
fn rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Logs `heap_stats` (live and peak heap, allocations, RSS) every `every` on a thread of its own,
/// for the life of the process.
pub fn log_every(every: Duration) {
    let _ = std::thread::Builder::new()
        .name("heap-stats".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let (live, peak, allocs) = snapshot();
            tracing::info!(
                event = "heap_stats",
                live_kb = live / 1024,
                peak_kb = peak / 1024,
                allocs_total = allocs,
                rss_kb = rss_kb(),
                pid = std::process::id(),
            );
        });
}
