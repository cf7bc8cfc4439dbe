//! The service as `hft-connector run` starts it: feeds with the configured isolation, the HTTP
//! routes, and running until a signal, then a stop bounded by `[service] shutdown_timeout_s`.

use tokio_util::sync::CancellationToken;

use crate::service::runner::{Running, ServiceError};
use crate::shutdown::Signals;

/// The HTTP routes the service serves: status API, metrics, event stream, dashboard, and the
/// state-changing routes behind the token guard ([`crate::http::actions`]).
pub fn routes(
    state: crate::service::ServiceState,
    shutdown: tokio_util::sync::CancellationToken,
) -> axum::Router {
    let actions = crate::http::actions::routes(state.clone());
    crate::http::router_with(state, shutdown, actions)
}

/// How workers are started for `cfg`: a worker that does not end on SIGTERM is killed after at
/// most 2 s, and well within `[service] shutdown_timeout_s`.
pub fn worker_options(cfg: &crate::config::ServiceConfig) -> hft_feed::worker::WorkerOptions {
    hft_feed::worker::WorkerOptions {
        term_grace_s: (cfg.service.shutdown_timeout_s / 4.0).clamp(0.1, 2.0),
        ..hft_feed::worker::WorkerOptions::default()
    }
}

/// Starts the service with the configured isolation.
pub async fn start_service(cfg: crate::config::ServiceConfig) -> Result<Running, ServiceError> {
    start_service_until(cfg, CancellationToken::new()).await
}

/// [`start_service`], stopped by `stop` as well (see [`crate::service::runner::start_until`]).
pub async fn start_service_until(
    cfg: crate::config::ServiceConfig,
    stop: CancellationToken,
) -> Result<Running, ServiceError> {
    let isolation = cfg.service.isolation;
    let opts = worker_options(&cfg);
    crate::service::runner::start_until(
        cfg,
        move |f| {
            crate::source::FeedSource::spawn_with(f, isolation, opts.clone())
                .map_err(|e| e.to_string())
        },
        routes,
        stop,
    )
    .await
}

/// Starts the service with the configured isolation and runs it until a signal.
pub async fn serve(cfg: crate::config::ServiceConfig) -> Result<(), ServiceError> {
    // Before anything else: Ctrl-C while starting is a clean stop, not a kill.
    serve_with(cfg, &Signals::install()).await
}

/// Runs the service until the first of `signals` (or a fatal error), then stops it within
/// `[service] shutdown_timeout_s`: [`ServiceError::ShutdownIncomplete`] when that ran out (the
/// tasks still running are named in `service_shutdown_incomplete`; worker processes are killed).
/// A second signal exits at once ([`Signals`]).
pub async fn serve_with(
    cfg: crate::config::ServiceConfig,
    signals: &Signals,
) -> Result<(), ServiceError> {
    tracing::info!(
        event = "service_starting",
        symbols = %cfg.feed.symbols.join(","),
        categories = %cfg.categories().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","),
        isolation = ?cfg.service.isolation,
        data_dir = %cfg.store.data_dir.display(),
        backfill_days = if cfg.backfill.enabled { cfg.backfill.days } else { 0.0 },
        shutdown_timeout_s = cfg.service.shutdown_timeout_s,
    );
    let timeout_s = cfg.service.shutdown_timeout_s;
    signals.set_bound(cfg.service.shutdown_timeout());
    let running = match start_service_until(cfg, signals.token()).await {
        Ok(r) => r,
        Err(ServiceError::Stopped) => {
            tracing::info!(
                event = "service_stopping",
                reason = "signal",
                signal = signals.received(),
                shutdown_timeout_s = timeout_s,
                starting = true
            );
            tracing::info!(event = "service_stopped");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    signals.watch(running.tasks());
    running.ended().await;
    signals.stopping();
    if let Some(signal) = signals.received() {
        tracing::info!(
            event = "service_stopping",
            reason = "signal",
            signal,
            shutdown_timeout_s = timeout_s,
        );
    }
    let result = running.shutdown().await;
    if matches!(result, Err(ServiceError::ShutdownIncomplete(_))) {
        crate::shutdown::kill_children();
    }
    result
}
