//! The simulator gives exactly the figures worked out by hand for small traces: the pool core
//! under paused time is deterministic, so a known answer is an exact one.

use std::sync::Arc;
use std::time::Duration;

use warmpool_core::{BuiltinExhaustion, BuiltinSizing, PoolConfig};
use warmpool_lab::simulate::{Candidate, CreateSpread, Setup, simulate};
use warmpool_lab::{Acquire, Trace};
use warmpool_testkit::fixtures;

fn trace(acquires: &[(u64, u64)]) -> Trace {
    Trace {
        acquires: acquires
            .iter()
            .map(|&(t_ms, hold_ms)| Acquire {
                t_ms,
                pool: "p".into(),
                hold_ms,
            })
            .collect(),
    }
}

/// Pool `p`: `min` ready, room for many more, no settle delay, creates taking `create_ms`.
fn setup(min: u32, create_ms: u64, exhaustion: BuiltinExhaustion) -> Setup {
    let pool = PoolConfig {
        start_settle: Duration::ZERO,
        wait_timeout: Duration::from_secs(30),
        ..fixtures::pool("p", min, 8, 16)
    };
    let mut s = Setup::new(pool, Arc::new(exhaustion));
    s.create = CreateSpread {
        p50: Duration::from_millis(create_ms),
        p99: Duration::from_millis(create_ms),
    };
    s
}

fn fixed() -> Candidate {
    Candidate {
        label: "builtin:fixed".into(),
        sizing: Arc::new(BuiltinSizing::Fixed),
        min_ready: None,
    }
}

#[test]
fn instant_creates_keep_every_acquire_warm_and_the_pool_full() {
    // Four acquires, two of them overlapping; each lent container is replaced at once, so
    // the pool holds 2 ready the whole time: idle = 2 × the span, to the microsecond.
    let t = trace(&[(0, 5_000), (1_000, 2_000), (10_000, 1_000), (10_500, 4_500)]);
    let o = simulate(&t, &setup(2, 0, BuiltinExhaustion::Wait), &fixed()).unwrap();
    assert_eq!(
        (o.acquires, o.warm, o.waited, o.cold, o.rejected),
        (4, 4, 0, 0, 0)
    );
    assert_eq!(o.hit_rate, 1.0);
    assert_eq!(o.span_s, 15.0, "the last release is at 10.5 s + 4.5 s");
    assert_eq!(o.idle_container_seconds, 30.0);
    assert_eq!(o.creates, 4, "one replacement per lent container");
    assert_eq!((o.wait_ms_p50, o.wait_ms_max), (0.0, 0.0));
}

#[test]
fn slow_creates_make_the_third_acquire_wait_for_the_first_replacement() {
    // Creates take 10 s; 2 ready at t=0.
    //   t=0   hit, ready 2→1, replacement A starts (ready at 10 s)
    //   t=1   hit, ready 1→0, replacement B starts (ready at 11 s)
    //   t=2   nothing ready, 2 creates in flight already cover the target: it waits for A,
    //         lent at 10 s (waited 8 s), which starts replacement C (ready at 20 s)
    //   t=11  B is ready and stays so; the last lease ends at 10 + 5 = 15 s.
    // Idle: 1 container over [0, 1) and 1 over [11, 15): 5 container-seconds.
    let t = trace(&[(0, 5_000), (1_000, 5_000), (2_000, 5_000)]);
    let o = simulate(&t, &setup(2, 10_000, BuiltinExhaustion::Wait), &fixed()).unwrap();
    assert_eq!(
        (o.acquires, o.warm, o.waited, o.cold, o.rejected),
        (3, 2, 1, 0, 0)
    );
    assert_eq!(o.wait_ms_max, 8_000.0);
    assert_eq!(o.wait_ms_p50, 0.0);
    assert_eq!(o.span_s, 15.0);
    assert_eq!(o.idle_container_seconds, 5.0);
    assert_eq!(
        o.creates, 2,
        "A and B finished within the trace; C is still creating"
    );
}

#[test]
fn an_empty_pool_with_cold_exhaustion_creates_every_sandbox_and_idles_none() {
    let t = trace(&[(0, 1_000), (500, 1_000), (5_000, 1_000)]);
    let o = simulate(&t, &setup(0, 300, BuiltinExhaustion::Cold), &fixed()).unwrap();
    assert_eq!((o.acquires, o.warm, o.cold, o.rejected), (3, 0, 3, 0));
    assert_eq!(o.hit_rate, 0.0);
    assert_eq!(o.wait_ms_max, 300.0, "each waits exactly one create");
    assert_eq!(o.idle_container_seconds, 0.0);
    assert_eq!(o.creates, 3);
}

#[test]
fn a_static_size_is_swept_by_min_ready_override() {
    // builtin:fixed:N runs the pool with min_ready N: 0 ready means no hit, 3 means all.
    let t = trace(&[(0, 1_000), (100, 1_000), (200, 1_000)]);
    let s = setup(0, 10_000, BuiltinExhaustion::Cold);
    let at = |n| {
        let c = Candidate {
            min_ready: Some(n),
            ..fixed()
        };
        simulate(&t, &s, &c).unwrap()
    };
    assert_eq!(at(0).warm, 0);
    assert_eq!(at(3).warm, 3);
    assert_eq!(at(2).warm, 2);
}

#[test]
fn a_trace_without_the_pool_is_refused_with_the_pools_it_names() {
    let t = Trace {
        acquires: vec![Acquire {
            t_ms: 0,
            pool: "other".into(),
            hold_ms: 1,
        }],
    };
    let e = simulate(&t, &setup(1, 0, BuiltinExhaustion::Wait), &fixed()).unwrap_err();
    assert!(e.to_string().contains("other"), "{e}");
}
