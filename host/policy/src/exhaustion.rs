//! Exhaustion strategies: what an acquire does when no container is ready.

use crate::types::{ExhaustionAction, ExhaustionRequest, PoolSnapshot};

/// `wait`: queue for the next ready container, bounded by the client's `wait_ms` and the pool's
/// `wait_timeout`, whichever is shorter.
pub fn wait(req: &ExhaustionRequest, _s: &PoolSnapshot) -> ExhaustionAction {
    let max_ms = req
        .wait_ms
        .map_or(req.wait_timeout_ms, |w| w.min(req.wait_timeout_ms));
    ExhaustionAction::Wait { max_ms }
}

/// `fail-fast`: refuse at once. The retry hint is the time one create takes here (the median of
/// recent creates), so a client that honours it finds a container ready.
pub fn fail_fast(_req: &ExhaustionRequest, s: &PoolSnapshot) -> ExhaustionAction {
    let retry_after_ms = u64::from(s.median_create_ms().unwrap_or(1_000)).max(100);
    ExhaustionAction::Fail {
        retry_after_ms,
        reason: format!(
            "pool exhausted: 0 ready, {} creating, {} leased of max_total {}",
            s.creating, s.leased, s.max_total
        ),
    }
}

/// `cold`: create a container for this request now. The core counts it against the caps and
/// queues the request (bounded by `wait_timeout`) when the caps leave no room.
pub fn cold(_req: &ExhaustionRequest, _s: &PoolSnapshot) -> ExhaustionAction {
    ExhaustionAction::ColdCreate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_takes_the_shorter_bound() {
        let s = PoolSnapshot::default();
        let r = |w| ExhaustionRequest {
            wait_ms: w,
            wait_timeout_ms: 5_000,
        };
        assert_eq!(wait(&r(None), &s), ExhaustionAction::Wait { max_ms: 5_000 });
        assert_eq!(
            wait(&r(Some(200)), &s),
            ExhaustionAction::Wait { max_ms: 200 }
        );
        assert_eq!(
            wait(&r(Some(9_000)), &s),
            ExhaustionAction::Wait { max_ms: 5_000 }
        );
    }

    #[test]
    fn fail_fast_hints_the_create_latency() {
        let s = PoolSnapshot {
            recent_create_ms: vec![300, 500, 400],
            ..Default::default()
        };
        let r = ExhaustionRequest {
            wait_ms: None,
            wait_timeout_ms: 1,
        };
        match fail_fast(&r, &s) {
            ExhaustionAction::Fail { retry_after_ms, .. } => assert_eq!(retry_after_ms, 400),
            other => panic!("expected Fail, got {other:?}"),
        }
    }
}
