//! Kline backfill: the pure planning, progress and retry rules of fetching history in chunks from
//! `GET /v5/market/kline`. The fetching itself (HTTP, concurrency, the shared rate budget) is built on
//! these by the service.

pub mod plan;
pub mod retry;

#[cfg(test)]
mod tests;

pub use plan::{
    plan_chunks, remaining, BackfillProgress, BackfillState, Chunk, PlanError, MAX_KLINE_LIMIT,
};
pub use retry::{Decision, FatalError, FetchOutcome, RetryPolicy};
