//! Kline backfill: plans chunks per symbol, skips chunks already stored, fetches concurrently within
//! one shared REST budget, retries by the policy (429 / 5xx / timeouts back off; 403 pauses every
//! request), stores each chunk atomically, and reports progress (`backfill_progress` logs, the
//! status API, and a progress bar when stderr is a terminal, drawn below the log lines).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::state::{BackfillStatus, FeedKey, LogEvent, ServiceState};
use super::writer::StoreWriter;
use crate::backfill::{
    plan_chunks, remaining, BackfillProgress, Chunk, Decision, FatalError, FetchOutcome,
    RetryPolicy,
};
use crate::budget::RateBudget;
use crate::feed::health::{iso_time, unix_ms};
use crate::protocol::rest::{self, Candle, KlineResult};
use crate::protocol::Category;
use crate::store::StoredCandle;

/// Fetches klines with the shared budget and the retry policy.
#[derive(Debug, Clone)]
pub struct KlineFetcher {
    /// HTTP client.
    pub http: reqwest::Client,
    /// REST base URL.
    pub rest_url: String,
    /// Shared request budget.
    pub budget: RateBudget,
    /// Retry rules.
    pub policy: RetryPolicy,
}

impl KlineFetcher {
    async fn once(
        &self,
        query: &[(&'static str, String)],
    ) -> (FetchOutcome, Option<(Vec<Candle>, u64)>) {
        self.budget.acquire().await;
        let url = format!("{}/v5/market/kline", self.rest_url.trim_end_matches('/'));
        let resp = match self.http.get(&url).query(query).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return (FetchOutcome::Timeout, None),
            Err(e) => return (FetchOutcome::Network(e.to_string()), None),
        };
        let status = resp.status().as_u16();
        if status != 200 {
            return (FetchOutcome::Http(status), None);
        }
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return (FetchOutcome::Timeout, None),
            Err(e) => return (FetchOutcome::Network(e.to_string()), None),
        };
        match rest::decode::<KlineResult>(&body) {
            Ok(r) => {
                let as_of = r.time_ms.unwrap_or_else(unix_ms);
                (FetchOutcome::Ok, Some((r.result.list, as_of)))
            }
            Err(e) => (FetchOutcome::from(&e), None),
        }
    }

    /// Fetches one chunk until it succeeds or the policy gives up. Returns the candles (ascending)
    /// and the server time of the answer.
    pub async fn fetch(&self, chunk: &Chunk) -> Result<(Vec<Candle>, u64), FatalError> {
        let query = chunk.query();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let (outcome, data) = self.once(&query).await;
            match self.policy.decide(chunk, &outcome, attempt) {
                Decision::Accept => {
                    let (mut candles, as_of) = data.unwrap_or_default();
                    candles.sort_by_key(|c| c.start_ms);
                    candles.dedup_by_key(|c| c.start_ms);
                    candles.retain(|c| c.start_ms >= chunk.start_ms && c.start_ms < chunk.end_ms);
                    return Ok((candles, as_of));
                }
                Decision::Retry { delay_ms } => {
                    tracing::warn!(event = "backfill_retry", symbol = %chunk.symbol, chunk = %chunk.id, attempt, delay_ms, outcome = ?outcome);
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                Decision::PauseAll { wait_ms } => {
                    tracing::error!(event = "backfill_rate_limited", symbol = %chunk.symbol, wait_ms, "HTTP 403 access too frequent: every request waits");
                    self.budget.ban_for(Duration::from_millis(wait_ms));
                }
                Decision::Fatal(e) => return Err(e),
            }
        }
    }
}

/// One symbol's backfill job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Category.
    pub category: Category,
    /// Symbol.
    pub symbol: String,
    /// Interval.
    pub interval: String,
    /// From (ms).
    pub from_ms: u64,
    /// To (ms, exclusive).
    pub to_ms: u64,
    /// Candles per request.
    pub limit: u64,
}

/// Converts REST candles of a chunk into stored candles (confirmed when closed at `as_of`).
pub fn stored(job: &Job, interval_ms: u64, candles: &[Candle], as_of: u64) -> Vec<StoredCandle> {
    candles
        .iter()
        .map(|c| {
            StoredCandle::from_rest(
                &job.symbol,
                job.category,
                &job.interval,
                c,
                c.start_ms + interval_ms <= as_of,
            )
        })
        .collect()
}

fn publish(state: &ServiceState, key: &FeedKey, p: &BackfillProgress) {
    let status = BackfillStatus::from(p);
    state.update_status(key, |s| {
        let changed = s.backfill != status;
        s.backfill = status;
        changed
    });
}

/// Runs one symbol's backfill to completion (or a fatal error), sharing `permits` and the fetcher.
pub async fn run_job(
    job: Job,
    fetcher: KlineFetcher,
    permits: Arc<Semaphore>,
    store: StoreWriter,
    state: ServiceState,
) -> Result<BackfillProgress, FatalError> {
    let key = FeedKey {
        category: job.category,
        symbol: job.symbol.clone(),
    };
    let interval_ms = crate::protocol::topic::interval_ms(&job.interval).unwrap_or(60_000);
    let chunks = match plan_chunks(
        &job.symbol,
        job.category,
        &job.interval,
        job.from_ms,
        job.to_ms,
        job.limit,
    ) {
        Ok(c) => c,
        Err(e) => {
            let mut p = BackfillProgress::new(&job.symbol, job.category, &job.interval, 0, 0);
            p.fail(e.to_string());
            publish(&state, &key, &p);
            return Ok(p);
        }
    };
    let done: HashSet<String> = store
        .read(|s| s.chunks_done().unwrap_or_default())
        .await
        .unwrap_or_default();
    let todo: Vec<Chunk> = remaining(&chunks, &done).into_iter().cloned().collect();
    let total = chunks.len() as u64;
    let mut progress = BackfillProgress::new(
        &job.symbol,
        job.category,
        &job.interval,
        total,
        total - todo.len() as u64,
    );
    progress.start();
    publish(&state, &key, &progress);
    tracing::info!(event = "backfill_progress", symbol = %job.symbol, category = %job.category, done = progress.done, total, resumed = progress.done > 0);
    let started = Instant::now();
    let bar = crate::terminal::bars::backfill_bar(
        total,
        progress.done,
        &format!("{} {}", job.category, job.symbol),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in todo {
        let fetcher = fetcher.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let r = fetcher.fetch(&chunk).await;
            (chunk, r)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((chunk, result)) = joined else {
            continue;
        };
        match result {
            Ok((candles, as_of)) => {
                let rows = stored(&job, interval_ms, &candles, as_of);
                // Only a chunk whose candles are all closed is recorded as done; the open one is
                // refetched on the next start.
                let stored_ok = if chunk.is_closed_at(as_of) {
                    store.chunk(chunk.id.clone(), rows).await.is_ok()
                } else {
                    store.candles(rows);
                    true
                };
                if stored_ok {
                    progress.chunk_done();
                }
                if let Some(b) = &bar {
                    b.set_position(progress.done);
                }
                publish(&state, &key, &progress);
                tracing::info!(event = "backfill_progress", symbol = %job.symbol, category = %job.category, done = progress.done, total);
            }
            Err(e) => {
                tasks.abort_all();
                progress.fail(e.to_string());
                publish(&state, &key, &progress);
                drop(bar);
                tracing::error!(event = "backfill_failed", symbol = %job.symbol, category = %job.category, error = %e);
                state.push_event(LogEvent {
                    timestamp: iso_time(unix_ms()).unwrap_or_default(),
                    level: "ERROR".into(),
                    event: "backfill_failed".into(),
                    category: Some(job.category),
                    symbol: Some(job.symbol.clone()),
                    detail: e.to_string(),
                });
                return Err(e);
            }
        }
    }
    drop(bar);
    state.push_event(LogEvent {
        timestamp: iso_time(unix_ms()).unwrap_or_default(),
        level: "INFO".into(),
        event: "backfill_done".into(),
        category: Some(job.category),
        symbol: Some(job.symbol.clone()),
        detail: format!("{}/{} chunks", progress.done, progress.total),
    });
    tracing::info!(event = "backfill_done", symbol = %job.symbol, category = %job.category, done = progress.done, total, elapsed_s = started.elapsed().as_secs_f64());
    Ok(progress)
}
