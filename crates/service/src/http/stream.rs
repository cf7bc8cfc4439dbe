//! `GET /api/events`: the live event stream as Server-Sent Events. Each SSE event is named after
//! the [`StreamEvent`] type (`status`, `trade`, `book_top`, `candle`, `log`) and carries its JSON.
//! A new client first gets every feed's current `status`. A client too slow for the broadcast is
//! told how many events it missed (`event: lagged`, `{"type":"lagged","missed":N}`) and the
//! stream goes on. Optional filters: `?types=status,log&symbol=BTCUSDT&category=linear`.
//! Streams end when the router's shutdown token is cancelled, so a graceful shutdown is not held
//! open by dashboards. At most [`super::MAX_SSE_CLIENTS`] streams are served at once
//! ([`ClientSlots`]); one more is answered 503 `too_many_clients`.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::error::{ApiError, ApiResult};
use super::feeds::Params;
use crate::protocol::Category;
use crate::service::{ServiceState, StreamEvent};

/// Event type names of the stream.
pub const EVENT_TYPES: [&str; 5] = ["status", "trade", "book_top", "candle", "log"];

/// The SSE event name of a stream event.
pub fn event_type(e: &StreamEvent) -> &'static str {
    match e {
        StreamEvent::Status(_) => "status",
        StreamEvent::Trade(_) => "trade",
        StreamEvent::BookTop { .. } => "book_top",
        StreamEvent::Candle { .. } => "candle",
        StreamEvent::Log(_) => "log",
    }
}

/// Which events a client wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    types: Option<HashSet<&'static str>>,
    symbol: Option<String>,
    category: Option<Category>,
}

impl Filter {
    /// From `types`, `symbol` and `category` parameters.
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let types = match params.get("types").map(|t| t.trim()) {
            None | Some("") => None,
            Some(list) => {
                let mut set = HashSet::new();
                for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let known = EVENT_TYPES.iter().find(|k| **k == t).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid event type {t:?}: expected {}",
                            EVENT_TYPES.join(", ")
                        ))
                    })?;
                    set.insert(*known);
                }
                Some(set)
            }
        };
        let category = match params.get("category").map(|c| c.trim()) {
            None | Some("") => None,
            Some(c) => Some(Category::from_str(c).map_err(ApiError::bad_request)?),
        };
        let symbol = params
            .get("symbol")
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty());
        Ok(Filter {
            types,
            symbol,
            category,
        })
    }

    /// Whether `e` passes. Events without a symbol (or category) pass those filters.
    pub fn accepts(&self, e: &StreamEvent) -> bool {
        if let Some(types) = &self.types {
            if !types.contains(event_type(e)) {
                return false;
            }
        }
        let (symbol, category): (Option<&str>, Option<Category>) = match e {
            StreamEvent::Status(s) => (Some(&s.symbol), Some(s.category)),
            StreamEvent::Trade(t) => (
                Some(&t.symbol),
                t.category
                    .as_deref()
                    .and_then(|c| Category::from_str(c).ok()),
            ),
            StreamEvent::BookTop {
                symbol, category, ..
            } => (Some(symbol), Some(*category)),
            StreamEvent::Candle { category, candle } => (Some(&candle.symbol), Some(*category)),
            StreamEvent::Log(l) => (l.symbol.as_deref(), l.category),
        };
        let symbol_ok = match (&self.symbol, symbol) {
            (Some(want), Some(got)) => want == got,
            _ => true,
        };
        let category_ok = match (self.category, category) {
            (Some(want), Some(got)) => want == got,
            _ => true,
        };
        symbol_ok && category_ok
    }
}

/// One stream event as SSE.
pub fn to_sse(e: &StreamEvent) -> Event {
    match Event::default().event(event_type(e)).json_data(e) {
        Ok(ev) => ev,
        Err(err) => Event::default().event("error").data(format!(
            "{{\"type\":\"error\",\"error\":{:?}}}",
            err.to_string()
        )),
    }
}

/// The lag notice.
pub fn lagged(missed: u64) -> Event {
    Event::default()
        .event("lagged")
        .data(format!("{{\"type\":\"lagged\",\"missed\":{missed}}}"))
}

struct Feed {
    rx: Receiver<StreamEvent>,
    pending: VecDeque<Event>,
    filter: Filter,
    shutdown: CancellationToken,
}

/// The SSE stream of `state`'s events through `filter`, starting with the current statuses, until
/// `shutdown` is cancelled.
pub fn event_stream(
    state: &ServiceState,
    filter: Filter,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    // Subscribe before taking the snapshot so no change falls between them.
    let rx = state.subscribe();
    let pending: VecDeque<Event> = state
        .statuses()
        .into_iter()
        .map(StreamEvent::Status)
        .filter(|e| filter.accepts(e))
        .map(|e| to_sse(&e))
        .collect();
    let start = Feed {
        rx,
        pending,
        filter,
        shutdown,
    };
    stream::unfold(start, |mut f| async move {
        if let Some(ev) = f.pending.pop_front() {
            return Some((Ok(ev), f));
        }
        loop {
            let next = tokio::select! {
                r = f.rx.recv() => r,
                () = f.shutdown.cancelled() => return None,
            };
            match next {
                Ok(e) if f.filter.accepts(&e) => return Some((Ok(to_sse(&e)), f)),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => return Some((Ok(lagged(n)), f)),
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// `GET /api/events`.
pub async fn get_events(
    State(state): State<ServiceState>,
    State(shutdown): State<CancellationToken>,
    State(slots): State<ClientSlots>,
    Query(params): Query<Params>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let filter = Filter::from_params(&params)?;
    let permit = slots.0.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_clients",
            format!(
                "at most {} event-stream clients are served at once; close one or poll \
                 /api/events/recent",
                slots.capacity()
            ),
        )
    })?;
    // The slot is held by the stream and freed when the client goes away.
    let events = event_stream(&state, filter, shutdown).map(move |e| {
        let _held = &permit;
        e
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The event-stream client slots shared by every request (clones share them).
#[derive(Debug, Clone)]
pub struct ClientSlots(Arc<Semaphore>, usize);

impl ClientSlots {
    /// `capacity` concurrent streams.
    pub fn new(capacity: usize) -> Self {
        ClientSlots(Arc::new(Semaphore::new(capacity)), capacity)
    }

    /// Streams allowed at once.
    pub fn capacity(&self) -> usize {
        self.1
    }

    /// Streams being served now.
    pub fn in_use(&self) -> usize {
        self.1 - self.0.available_permits()
    }
}
