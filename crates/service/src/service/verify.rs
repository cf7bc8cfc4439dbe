//! Symbols the exchange could not be asked about at start (instruments-info unreachable) are not
//! trusted blind: each is checked again, with capped backoff, until REST answers. Its backfill
//! waits for the answer; an unknown symbol then stops the service loudly (`symbol_unknown`, the
//! same error as at start), a known one logs `symbol_verified` and its backfill begins.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::runner::{check_symbols, ServiceError};
use crate::protocol::Category;

/// First wait between checks; doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);

/// A symbol whose existence is not confirmed yet.
pub struct Pending {
    /// Category.
    pub category: Category,
    /// Symbol.
    pub symbol: String,
    /// Set to `true` once the exchange listed it.
    pub verified: watch::Sender<bool>,
}

/// Waits until `rx` says the symbol was verified (at once for a symbol checked at start). If the
/// check ended without verifying it (the symbol is unknown, or the service is stopping) this never
/// returns: a backfill must not race the check's fatal error to REST (it would report an unknown
/// symbol as a backfill failure, or fetch for a symbol that does not exist).
pub async fn until_verified(rx: Option<watch::Receiver<bool>>) {
    if let Some(mut rx) = rx {
        if rx.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Checks `p` until REST answers: `Ok` once listed, `Err(UnknownSymbol)` if not; returns `Ok`
/// early when cancelled.
pub async fn verify(
    http: reqwest::Client,
    rest_url: String,
    p: Pending,
    cancel: CancellationToken,
) -> Result<(), ServiceError> {
    let mut wait = FIRST_WAIT;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        let unverified = match check_symbols(
            &http,
            &rest_url,
            p.category,
            std::slice::from_ref(&p.symbol),
        )
        .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(event = "symbol_unknown", symbol = %p.symbol, category = %p.category, error = %e);
                return Err(e);
            }
        };
        if unverified.is_empty() {
            tracing::info!(event = "symbol_verified", symbol = %p.symbol, category = %p.category);
            let _ = p.verified.send(true);
            return Ok(());
        }
        wait = (wait * 2).min(MAX_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_backfill_starts_only_once_its_symbol_is_verified() {
        let (tx, rx) = watch::channel(false);
        let waiting = tokio::spawn(until_verified(Some(rx)));
        tx.send(true).expect("a receiver");
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("verified: the backfill starts")
            .expect("joins");
        // The check ended without verifying (unknown symbol, or stopping): it never starts.
        let (tx, rx) = watch::channel(false);
        let waiting = tokio::spawn(until_verified(Some(rx)));
        drop(tx);
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), waiting)
                .await
                .is_err(),
            "a backfill must not race the check's fatal error"
        );
        // Checked at start: at once.
        until_verified(None).await;
    }
}
