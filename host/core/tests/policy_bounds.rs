//! The core never takes a policy's word for a size, a time or a length (issue 9): a target
//! above `max_ready`, a megabyte of reason, a probe that asks for an hour, a refusal that asks
//! clients to come back in a century are all cut to bounds, whatever policy said them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use warmpool_core::policy_logic::{
    ContainerInfo, ExhaustionAction, ExhaustionRequest, PoolSnapshot, Probe, ProbeResult,
    SizingDecision, Verdict,
};
use warmpool_core::{
    AcquireError, AcquireRequest, ExhaustionStrategy, HealthCheck, ManagerConfig, Policies,
    SizingPolicy, bounds,
};

struct Greedy;

impl SizingPolicy for Greedy {
    fn decide<'a>(&'a self, _: &'a PoolSnapshot) -> BoxFuture<'a, SizingDecision> {
        async {
            SizingDecision {
                target: u32::MAX,
                reason: "x".repeat(1 << 20),
            }
        }
        .boxed()
    }
    fn name(&self) -> String {
        "greedy".into()
    }
}

impl ExhaustionStrategy for Greedy {
    fn on_exhausted<'a>(
        &'a self,
        _: &'a ExhaustionRequest,
        _: &'a PoolSnapshot,
    ) -> BoxFuture<'a, ExhaustionAction> {
        async {
            ExhaustionAction::Fail {
                retry_after_ms: u64::MAX,
                reason: "y".repeat(1 << 20),
            }
        }
        .boxed()
    }
    fn name(&self) -> String {
        "greedy".into()
    }
}

impl HealthCheck for Greedy {
    fn plan<'a>(&'a self, _: &'a ContainerInfo) -> BoxFuture<'a, Vec<Probe>> {
        async {
            vec![
                Probe::Exec {
                    argv: vec!["z".repeat(5000); 100],
                    timeout_ms: u64::MAX,
                };
                40
            ]
        }
        .boxed()
    }
    fn judge<'a>(&'a self, _: &'a ContainerInfo, r: &'a [ProbeResult]) -> BoxFuture<'a, Verdict> {
        let n = r.len();
        async move {
            assert!(n <= bounds::MAX_PROBES, "{n} probes ran");
            Verdict::Healthy
        }
        .boxed()
    }
    fn name(&self) -> String {
        "greedy".into()
    }
}

#[tokio::test(start_paused = true)]
async fn every_policy_answer_is_cut_to_bounds() {
    let mut cfg = pool("g", 1, 3, 6);
    cfg.health_interval = Duration::from_secs(1);
    let policies = Policies {
        sizing: Arc::new(Greedy),
        exhaustion: Arc::new(Greedy),
        health: Some(Arc::new(Greedy)),
    };
    let (m, _b) = manager(ManagerConfig::default(), vec![(cfg, policies)]);
    run_for(Duration::from_secs(5)).await;
    let s = m.pool_stats("g").unwrap();
    assert_eq!(s.target, 3, "the target is clamped to max_ready");
    assert!(
        s.target_reason.len() <= bounds::MAX_REASON,
        "{}",
        s.target_reason.len()
    );
    assert_eq!(s.counts.ready, 3);
    // Drain the pool, then the refusal's Retry-After and reason are bounded too.
    for _ in 0..3 {
        m.acquire(AcquireRequest {
            pool: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let err = loop {
        match m
            .acquire(AcquireRequest {
                pool: "g".into(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    match err {
        AcquireError::Exhausted {
            retry_after,
            reason,
            ..
        } => {
            assert!(retry_after <= Duration::from_millis(bounds::MAX_RETRY_AFTER_MS));
            assert!(reason.len() <= bounds::MAX_REASON);
        }
        other => panic!("expected exhausted, got {other:?}"),
    }
}

#[test]
fn probes_are_cut_in_number_length_and_time() {
    let p = bounds::probes(vec![
        Probe::Exec {
            argv: vec!["a".repeat(10_000); 100],
            timeout_ms: u64::MAX,
        };
        40
    ]);
    assert_eq!(p.len(), bounds::MAX_PROBES);
    match &p[0] {
        Probe::Exec { argv, timeout_ms } => {
            assert_eq!(argv.len(), bounds::MAX_ARGS);
            assert!(argv[0].len() <= bounds::MAX_ARG);
            assert_eq!(*timeout_ms, bounds::MAX_PROBE_TIMEOUT_MS);
        }
        other => panic!("{other:?}"),
    }
}
