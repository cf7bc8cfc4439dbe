//! The full live-feed fault suite of `tests/feed_faults.rs` (close, reset, stall, silence, gap,
//! restart, malformed, reject_subscribe, refuse), run with the feed in a supervised worker process:
//! the same detection bounds, recovery, zero lost / zero duplicated trades against the journal and
//! a final book equal to the true book. `tests/feed_common` runs `Rig::start` in process mode in
//! test targets named `worker_*` (checked by `worker_process.rs`); the cases are shared, not copied.

#[path = "feed_faults.rs"]
mod cases;
