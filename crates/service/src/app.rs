//! The service as `hft-connector run` starts it: feeds with the configured isolation, the HTTP
//! routes, and running until a signal.

/// The HTTP routes the service serves: status API, metrics, event stream, dashboard, and the
/// state-changing routes behind the token guard ([`crate::http::actions`]).
pub fn routes(
    state: crate::service::ServiceState,
    shutdown: tokio_util::sync::CancellationToken,
) -> axum::Router {
    let actions = crate::http::actions::routes(state.clone());
    crate::http::router_with(state, shutdown, actions)
}

/// Starts the service with the configured isolation.
pub async fn start_service(
    cfg: crate::config::ServiceConfig,
) -> Result<crate::service::runner::Running, crate::service::runner::ServiceError> {
    let isolation = cfg.service.isolation;
    crate::service::runner::start(
        cfg,
        move |f| crate::source::FeedSource::spawn(f, isolation).map_err(|e| e.to_string()),
        routes,
    )
    .await
}

/// Starts the service with the configured isolation and runs it until a signal.
pub async fn serve(
    cfg: crate::config::ServiceConfig,
) -> Result<(), crate::service::runner::ServiceError> {
    // Before anything else: Ctrl-C while starting is a clean stop once started, not a kill.
    let stop = crate::service::runner::shutdown_signal_installed();
    tracing::info!(
        event = "service_starting",
        symbols = %cfg.feed.symbols.join(","),
        categories = %cfg.categories().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","),
        isolation = ?cfg.service.isolation,
        data_dir = %cfg.store.data_dir.display(),
        backfill_days = if cfg.backfill.enabled { cfg.backfill.days } else { 0.0 },
    );
    let running = start_service(cfg).await?;
    tokio::select! {
        _ = stop => {
            tracing::info!(event = "service_stopping", reason = "signal");
            running.stop();
        }
        _ = running.ended() => {}
    }
    running.wait().await
}
