//! Death notices from the engine's event stream, and the label sweep.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warmpool_core::{BackendError, BackendEvent, Existing, USED_SUFFIX};

use crate::labels::{self, HOST, MANAGED, POOL, SPEC};
use crate::{DockerBackend, create, unavailable};

/// Removes at once during a sweep: enough to clear a pool in a second, few enough not to swamp
/// the engine.
const SWEEP_PARALLELISM: usize = 8;

/// Every container labelled with this daemon's host id, running or not.
pub async fn list(b: &DockerBackend) -> Result<Vec<Existing>, BackendError> {
    let filters = HashMap::from([("label".to_string(), labels::host_filter(&b.host_id))]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let found = b
        .docker
        .list_containers(Some(opts))
        .await
        .map_err(unavailable)?;
    Ok(found
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            // Belt and braces: never touch another host's container, whatever the filter did.
            if labels.get(HOST) != Some(&b.host_id)
                || labels.get(MANAGED).map(String::as_str) != Some("true")
            {
                return None;
            }
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let (name, used) = match name.strip_suffix(USED_SUFFIX) {
                Some(base) => (base.to_string(), true),
                None => (name, false),
            };
            Some(Existing {
                id: c.id?,
                name,
                used,
                pool: labels.get(POOL).cloned(),
                fingerprint: labels.get(SPEC).cloned(),
                image: c.image.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                running: c.state.is_some_and(|s| s.to_string() == "running"),
                created: UNIX_EPOCH + Duration::from_secs(c.created.unwrap_or(0).max(0) as u64),
            })
        })
        .collect())
}

/// Remove every container labelled with this daemon's host id, in parallel.
pub async fn sweep(b: &DockerBackend) -> Result<usize, BackendError> {
    let ids: Vec<String> = list(b).await?.into_iter().map(|c| c.id).collect();
    let n = ids.len();
    let results: Vec<_> = futures_util::stream::iter(ids)
        .map(|id| async move { (create::remove(&b.docker, &id).await, id) })
        .buffer_unordered(SWEEP_PARALLELISM)
        .collect()
        .await;
    let mut removed = 0;
    for (r, id) in results {
        match r {
            Ok(()) => removed += 1,
            Err(e) => warn!(container = %id, error = %e, "sweep could not remove container"),
        }
    }
    if removed < n {
        return Err(BackendError::Operation {
            stage: "sweep",
            container: format!("{} of {n}", n - removed),
            message: "some containers could not be removed".into(),
        });
    }
    Ok(removed)
}

/// Follow the engine's events for this host's containers and report deaths, reconnecting with
/// back-off when the stream breaks (the engine restarted or is unreachable). Only `die` is a
/// death: the engine's `oom` names any process of the container the kernel killed for memory
/// (a client's `python` that grew too big), and the container lives on unless that was its
/// first process, which a `die` then reports.
pub async fn watch(b: &DockerBackend, tx: mpsc::Sender<BackendEvent>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["die".to_string()]),
            ("label".to_string(), labels::host_filter(&b.host_id)),
        ]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        let mut stream = b.docker.events(Some(opts));
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return,
                item = stream.next() => item,
            };
            match item {
                Some(Ok(ev)) => {
                    backoff = Duration::from_millis(250);
                    let actor = ev.actor.unwrap_or_default();
                    let Some(id) = actor.id else { continue };
                    let attrs = actor.attributes.unwrap_or_default();
                    let action = ev.action.unwrap_or_default();
                    let reason = match attrs.get("exitCode") {
                        Some(code) => format!("{action} (exit code {code})"),
                        None => action,
                    };
                    debug!(container = %id, %reason, "engine event");
                    // A checkpoint's stop: the container is suspended, not dead.
                    if crate::lock(&b.checkpointing).remove(&id) {
                        continue;
                    }
                    if tx.send(BackendEvent::Died { id, reason }).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    debug!(error = %e, "event stream broke");
                    break;
                }
                None => break,
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
        info!("reconnecting to the engine's event stream");
    }
}
