//! `GET /v1/events[?pool=NAME]`: the lifecycle events as Server-Sent Events, one `event:` per
//! kind with the JSON record as data. The stream ends when the daemon shuts down, so graceful
//! shutdown never waits on a subscriber.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use warmpool_core::Backend;

use crate::code::{Code, route_errors};
use crate::tenancy::caller::Caller;
use crate::{ApiError, Shared};

/// Query of `GET /v1/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only stream events of this pool; all pools when absent.
    pub pool: Option<String>,
    /// End the stream after this many milliseconds (at most an hour), for a client that
    /// watches for a while and then goes; absent, the stream lasts until the daemon stops.
    #[param(maximum = 3_600_000)]
    pub for_ms: Option<u64>,
}

/// Longest `for_ms`.
const MAX_FOR_MS: u64 = 3_600_000;

route_errors!(
    /// A bad query (`for_ms` past its bound).
    EventsErrors = [Code::BadRequest]
);

/// `GET /v1/events`: the lifecycle events as SSE, until the daemon shuts down.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "events",
    params(EventsQuery),
    responses(
        EventsErrors,
        (status = 200, content_type = "text/event-stream", body = warmpool_core::Event,
        description = "Server-Sent Events: `event:` is the kind (`created`, `ready`, `leased`, `released`, `reused`, `recycled`, `unhealthy`, `removed`, `breaker`, `reload`, `engine_up`, `engine_down`, or `lagged` when this subscriber fell behind, with `missed`, the count of events it missed); `data:` the JSON event. The stream ends when the daemon shuts down, or after `for_ms`."),
    ))]
pub async fn stream<B: Backend>(
    State(s): State<Shared<B>>,
    caller: Caller,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if q.for_ms.is_some_and(|ms| ms > MAX_FOR_MS) {
        return Err(ApiError::bad_request(format!(
            "for_ms must be at most {MAX_FOR_MS}"
        )));
    }
    let rx = s.manager.subscribe();
    let cancel = s.manager.cancel_token();
    // Without for_ms the stream ends only at shutdown.
    let until = q
        .for_ms
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    // A tenant sees the events of its own leases alone (an admin, every event).
    let sees = move |ev: &warmpool_core::Event| {
        caller.is_admin()
            || ev
                .lease
                .as_deref()
                .is_some_and(|l| caller.sees(l, ev.tenant.as_deref()))
    };
    let state = (rx, cancel, q.pool);
    let events = futures_util::stream::unfold(state, move |(mut rx, cancel, pool)| {
        let sees = sees.clone();
        async move {
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = async {
                        match until {
                            Some(t) => tokio::time::sleep_until(t).await,
                            None => std::future::pending().await,
                        }
                    } => return None,
                    r = rx.recv() => r,
                };
                let ev = match next {
                    Ok(ev) if pool.as_ref().is_some_and(|p| *p != ev.pool) || !sees(&ev) => {
                        continue;
                    }
                    Ok(ev) => SseEvent::default()
                        .event(ev.kind)
                        .json_data(&ev)
                        .unwrap_or_default(),
                    // Say how many were missed rather than silently skipping them, as an
                    // event of the same shape as every other.
                    Err(RecvError::Lagged(n)) => SseEvent::default()
                        .event("lagged")
                        .json_data(warmpool_core::Event {
                            at: warmpool_core::rfc3339(std::time::SystemTime::now()),
                            kind: "lagged",
                            pool: "*".into(),
                            engine: None,
                            container: None,
                            lease: None,
                            tenant: None,
                            reason: Some(format!("missed {n} events")),
                            missed: Some(n),
                        })
                        .unwrap_or_default(),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(ev), (rx, cancel, pool)));
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
