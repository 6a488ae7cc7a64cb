//! A simulation is a function of its trace, setup and seed: the same seed gives the same
//! figures and timeline, and the seed does drive the engine's create latencies.

use std::sync::Arc;
use std::time::Duration;

use warmpool_core::policy_logic::sizing::AdaptiveConfig;
use warmpool_core::{BuiltinExhaustion, BuiltinSizing};
use warmpool_lab::shapes::{Shape, generate};
use warmpool_lab::simulate::{Candidate, CreateSpread, Setup, simulate};
use warmpool_testkit::fixtures;

fn setup(seed: u64) -> Setup {
    let mut s = Setup::new(
        fixtures::pool("default", 2, 16, 32),
        Arc::new(BuiltinExhaustion::Cold),
    );
    s.create = CreateSpread {
        p50: Duration::from_millis(400),
        p99: Duration::from_millis(2_000),
    };
    s.seed = seed;
    s
}

#[test]
fn the_same_seed_gives_the_same_result_and_another_seed_another() {
    let mut t = generate(Shape::Fanout, 5, "default");
    t.acquires.truncate(400);
    let c = Candidate {
        label: "builtin:adaptive".into(),
        sizing: Arc::new(BuiltinSizing::Adaptive(AdaptiveConfig::default())),
        min_ready: None,
    };
    let a = simulate(&t, &setup(7), &c).unwrap();
    let b = simulate(&t, &setup(7), &c).unwrap();
    assert_eq!(a, b, "same trace, setup and seed");
    assert_eq!(a.acquires, 400);
    assert!(a.timeline.len() > 10, "a timeline was sampled");
    let other = simulate(&t, &setup(8), &c).unwrap();
    assert_ne!(
        (a.idle_container_seconds, a.wait_ms_max),
        (other.idle_container_seconds, other.wait_ms_max),
        "the seed draws the create latencies"
    );
}
