//! The reuse scrub's requests: the baseline of processes, the scrub itself, and the readings.

use warmpool_agent_proto::msg::{Ev, Inspect, Inspected, Req};
use warmpool_core::BackendError;

use super::{ANSWER_WITHIN, done, failed};
use crate::agent::channel::Channel;

/// Ask the agent to record its baseline of processes; the container's clock in ticks.
pub async fn baseline(ch: &Channel) -> Result<u64, BackendError> {
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(id, Req::Baseline).await?;
        let ticks = match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
            Ok(Some(Ev::Ticks(t))) => t,
            Ok(other) => {
                return Err(failed(
                    ch,
                    "baseline",
                    format!("unexpected answer {other:?}"),
                ));
            }
            Err(_) => return Err(BackendError::Unavailable("no baseline answer".into())),
        };
        done(ch, &mut rx, "baseline").await?;
        Ok(ticks)
    }
    .await;
    ch.close_op(id);
    r
}

/// Kill everything but the baseline, forget the lease, empty `emptied` (mode, path).
pub async fn scrub(ch: &Channel, emptied: Vec<(u32, String)>) -> Result<(), BackendError> {
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(id, Req::Scrub { emptied }).await?;
        done(ch, &mut rx, "scrub")
            .await
            .map_err(|e| failed(ch, "scrub", e.to_string()))
    }
    .await;
    ch.close_op(id);
    r
}

/// Read `items` inside the container.
pub async fn inspect(
    ch: &Channel,
    items: Vec<Inspect>,
) -> Result<Vec<Result<Vec<String>, String>>, BackendError> {
    let n = items.len();
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(id, Req::Inspect(items)).await?;
        match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
            Ok(Some(Ev::Inspected(v))) if v.len() == n => {
                Ok(v.into_iter().map(|Inspected::Lines(l)| l).collect())
            }
            Ok(other) => Err(failed(
                ch,
                "inspect",
                format!("unexpected answer {other:?}"),
            )),
            Err(_) => Err(BackendError::Unavailable("no inspect answer".into())),
        }
    }
    .await;
    ch.close_op(id);
    r
}
