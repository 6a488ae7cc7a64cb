//! `GET /v1/events[?pool=NAME]`: the lifecycle events as Server-Sent Events, one `event:` per
//! kind with the JSON record as data. The stream ends when the daemon shuts down, so graceful
//! shutdown never waits on a subscriber.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use warmpool_core::Backend;

use crate::Shared;

/// Query of `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only stream events of this pool; all pools when absent.
    pub pool: Option<String>,
}

/// `GET /v1/events`: the lifecycle events as SSE, until the daemon shuts down.
pub async fn stream<B: Backend>(
    State(s): State<Shared<B>>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.manager.subscribe();
    let cancel = s.manager.cancel_token();
    let events =
        futures_util::stream::unfold((rx, cancel, q.pool), |(mut rx, cancel, pool)| async move {
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return None,
                    r = rx.recv() => r,
                };
                let ev = match next {
                    Ok(ev) if pool.as_ref().is_some_and(|p| *p != ev.pool) => continue,
                    Ok(ev) => SseEvent::default()
                        .event(ev.kind)
                        .json_data(&ev)
                        .unwrap_or_default(),
                    // Say how many were missed rather than silently skipping them.
                    Err(RecvError::Lagged(n)) => {
                        SseEvent::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(ev), (rx, cancel, pool)));
            }
        });
    Sse::new(events).keep_alive(KeepAlive::default())
}
