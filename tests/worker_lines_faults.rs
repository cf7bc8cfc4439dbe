//! The A/B line cases of `tests/lines_faults.rs` with each line in its own supervised worker
//! process (`tests/feed_common` picks process mode in test targets named `worker_*`), plus kill -9
//! of one line's worker at a time: the other line carries the tape, nothing lost or duplicated.

#[path = "lines_faults.rs"]
mod cases;
