//! Kline backfill: the pure planning, progress and retry rules of fetching history in chunks from
//! `GET /v5/market/kline`. The fetching itself (HTTP, concurrency, the shared rate budget) is built on
//! these by the service.

pub mod plan;

pub use plan::{
    plan_chunks, remaining, BackfillProgress, BackfillState, Chunk, Decision, FatalError,
    FetchOutcome, PlanError, RetryPolicy, MAX_KLINE_LIMIT,
};
