//! Hostile and broken plugins are contained: the call fails with a reason naming what went
//! wrong, the pool's built-in answers instead, repeated failures bench the plugin, a bad new
//! file never replaces a working one, and nothing a guest does (loop, sleep in any call,
//! `init` included, bind a socket, flood the log, answer megabytes) holds a caller past its
//! deadline or reaches the daemon unbounded.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cfg, roomy, snap};
use warmpool_core::policy_logic::{
    ContainerInfo, ExhaustionAction, ExhaustionRequest, PoolSnapshot, SizingDecision,
};
use warmpool_core::{
    BuiltinExhaustion, BuiltinHealth, BuiltinSizing, ExhaustionStrategy, HealthCheck, SizingPolicy,
    bounds,
};
use warmpool_plugin_host::component::Loaded;
use warmpool_plugin_host::convert::Cut;
use warmpool_plugin_host::{
    Limits, PluginEngine, PluginError, PluginHost, WasmExhaustion, WasmHealth, WasmSizing, World,
};
use warmpool_test_components::component;

/// A bound no contained call comes near (the deadline is 50 ms): it only catches a hang.
const NO_HANG: Duration = Duration::from_secs(10);

async fn load(name: &str, config: &[(String, String)]) -> Result<Loaded, PluginError> {
    let e = PluginEngine::new(Limits::default()).unwrap();
    Loaded::load(&e, None, World::Sizing, &component(name), config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_hits_the_deadline() {
    let l = load("test_guest_spin_forever", &[]).await.unwrap();
    let t0 = Instant::now();
    let err = l.decide(&snap(), &Cut::default()).await.unwrap_err();
    assert!(matches!(err, PluginError::Deadline(_)), "{err}");
    assert!(t0.elapsed() < NO_HANG, "deadline took {:?}", t0.elapsed());
    // The instance was dropped; the next call starts clean and fails the same bounded way.
    assert!(matches!(
        l.decide(&snap(), &Cut::default()).await.unwrap_err(),
        PluginError::Deadline(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_parked_in_a_sleep_is_abandoned_at_its_deadline() {
    let l = load(
        "test_guest_hostile_sizing",
        &cfg(&[("mode", "sleep-decide")]),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let err = l.decide(&snap(), &Cut::default()).await.unwrap_err();
    assert!(matches!(err, PluginError::Deadline(_)), "{err}");
    assert!(
        t0.elapsed() < NO_HANG,
        "a 90 s sleep held the call for {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sleeping_in_init_fails_its_load_within_the_load_deadline() {
    let t0 = Instant::now();
    let err = load("test_guest_hostile_sizing", &cfg(&[("mode", "sleep-init")]))
        .await
        .err()
        .expect("a load whose init never ends must fail");
    assert!(matches!(err, PluginError::Deadline(_)), "{err}");
    assert!(
        t0.elapsed() < NO_HANG,
        "init held the load for {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_binding_a_socket_is_refused_and_nothing_panics() {
    // On a runtime thread: a blocking WASI call here once panicked the whole process.
    let l = load("test_guest_hostile_sizing", &cfg(&[("mode", "udp")]))
        .await
        .unwrap();
    let d = l.decide(&snap(), &Cut::default()).await.unwrap();
    assert!(d.reason.starts_with("could not bind"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    // The memory cap alone must stop it: on a busy machine, growing a debug build's memory to
    // the cap can take longer than the 50 ms call deadline (which has tests of its own), and
    // the test then failed on the deadline.
    let e = PluginEngine::new(roomy()).unwrap();
    let err = Loaded::load(
        &e,
        None,
        World::Sizing,
        &component("test_guest_grow_memory"),
        &[],
    )
    .await
    .unwrap()
    .decide(&snap(), &Cut::default())
    .await
    .unwrap_err();
    assert!(matches!(err, PluginError::Memory(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_by_its_message() {
    let err = load("test_guest_panics", &[])
        .await
        .unwrap()
        .decide(&snap(), &Cut::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("hostile guest refuses to size a pool of 1 ready"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_answers_are_cut_to_bounds_and_counted() {
    let host = PluginHost::new(roomy(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sizing = dir.path().join("s.wasm");
    std::fs::copy(component("test_guest_hostile_sizing"), &sizing).unwrap();
    let s = host.slot(
        "p",
        World::Sizing,
        &sizing,
        cfg(&[("mode", "huge-reason"), ("n", "10000000")]),
    );
    let ex = dir.path().join("e.wasm");
    std::fs::copy(component("test_guest_hostile_exhaustion"), &ex).unwrap();
    let e = host.slot("p", World::Exhaustion, &ex, vec![]);
    let he = dir.path().join("h.wasm");
    std::fs::copy(component("test_guest_hostile_health"), &he).unwrap();
    let h = host.slot("p", World::Health, &he, vec![]);
    host.settled().await;

    let sizing = WasmSizing {
        slot: s.clone(),
        fallback: Arc::new(BuiltinSizing::Fixed),
    };
    let d = sizing.decide(&snap()).await;
    assert_eq!(s.status().state, "active", "{:?}", s.status());
    assert!(d.reason.len() <= bounds::MAX_REASON, "{}", d.reason.len());
    assert!(s.status().truncated > 0);

    let exhaustion = WasmExhaustion {
        slot: e.clone(),
        fallback: Arc::new(BuiltinExhaustion::Cold),
    };
    let r = ExhaustionRequest {
        wait_ms: None,
        wait_timeout_ms: 1000,
    };
    match exhaustion.on_exhausted(&r, &snap()).await {
        ExhaustionAction::Fail {
            retry_after_ms,
            reason,
        } => {
            assert!(retry_after_ms <= bounds::MAX_RETRY_AFTER_MS);
            assert!(reason.len() <= bounds::MAX_REASON);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.status().truncated > 0);

    let health = WasmHealth {
        slot: h.clone(),
        fallback: Arc::new(BuiltinHealth::Pass),
    };
    let c = ContainerInfo {
        id: "c".into(),
        pool: "p".into(),
        age_ms: 0,
        uses: 0,
    };
    let plan = health.plan(&c).await;
    assert!(plan.len() <= bounds::MAX_PROBES, "{} probes", plan.len());
    for p in &plan {
        assert!(p.timeout_ms() <= bounds::MAX_PROBE_TIMEOUT_MS);
    }
    assert!(h.status().truncated > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_cut_and_counted() {
    let host = PluginHost::new(roomy(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flood.wasm");
    std::fs::copy(component("test_guest_hostile_sizing"), &file).unwrap();
    let slot = host.slot(
        "p",
        World::Sizing,
        &file,
        cfg(&[("mode", "flood-log"), ("n", "5000")]),
    );
    host.settled().await;
    let policy = WasmSizing {
        slot: slot.clone(),
        fallback: Arc::new(BuiltinSizing::Fixed),
    };
    policy.decide(&snap()).await;
    let st = slot.status();
    assert!(
        st.log_dropped >= 4000,
        "a flood of 5000 lines per call must be cut: {st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_world_non_wasm_and_truncated_files_are_refused_with_reasons() {
    let e = PluginEngine::new(Limits::default()).unwrap();
    let err = Loaded::load(&e, None, World::Sizing, &component("exhaustion_cold"), &[])
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            PluginError::World {
                world: "sizing-policy",
                ..
            }
        ),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"#!/bin/sh\necho not wasm\n").unwrap();
    let err = Loaded::load(&e, None, World::Sizing, &junk, &[])
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");

    let good = std::fs::read(component("sizing_fixed")).unwrap();
    let cut = dir.path().join("truncated.wasm");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let err = Loaded::load(&e, None, World::Sizing, &cut, &[])
        .await
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");

    let missing = dir.path().join("absent.wasm");
    assert!(matches!(
        Loaded::load(&e, None, World::Sizing, &missing, &[])
            .await
            .err()
            .unwrap(),
        PluginError::Read { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_fall_back_and_never_replace_a_working_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::new(
        Limits {
            bench_after: 3,
            ..Limits::default()
        },
        Some(&dir.path().join("cache")),
    )
    .unwrap();
    let file = dir.path().join("sizing.wasm");
    std::fs::copy(component("test_guest_target_too_big"), &file).unwrap();
    let slot = host.slot("p", World::Sizing, &file, vec![]);
    let policy = WasmSizing {
        slot: slot.clone(),
        fallback: Arc::new(BuiltinSizing::Fixed),
    };

    // The trial call catches a malformed answer before the plugin may serve: built-in answers.
    host.settled().await;
    assert_eq!(slot.status().state, "fallback");
    assert!(
        slot.status()
            .last_error
            .unwrap()
            .contains("malformed answer: target 1004 > max_ready 4")
    );
    assert_eq!(
        policy.decide(&snap()).await,
        SizingDecision {
            target: 2,
            reason: "fixed: keep min_ready=2".into()
        }
    );

    // A good plugin swaps in; a panicking one that passes no trial cannot replace it.
    std::fs::copy(component("sizing_adaptive"), &file).unwrap();
    assert!(slot.reload().await.unwrap());
    assert_eq!(slot.status().state, "active");
    let sha = slot.status().sha256.unwrap();
    std::fs::copy(component("test_guest_panics"), &file).unwrap();
    assert!(slot.reload().await.is_err());
    assert_eq!(
        slot.status().sha256.unwrap(),
        sha,
        "a failing file replaced a working plugin"
    );
    assert!(policy.name().starts_with("wasm:"));

    // The same content again (a touch) is not recompiled.
    std::fs::copy(component("sizing_adaptive"), &file).unwrap();
    assert!(!slot.reload().await.unwrap());
    assert_eq!(slot.status().reloads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_failing_at_call_time_is_benched_after_n_failures() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::new(
        Limits {
            bench_after: 3,
            ..Limits::default()
        },
        None,
    )
    .unwrap();
    let file = dir.path().join("sizing.wasm");
    // `fixed` passes its trial; it then answers a malformed target for a pool whose min_ready
    // exceeds max_ready, which stands in for a plugin that goes wrong in service.
    std::fs::copy(component("sizing_fixed"), &file).unwrap();
    let slot = host.slot("p", World::Sizing, &file, vec![]);
    host.settled().await;
    assert_eq!(slot.status().state, "active");
    let policy = WasmSizing {
        slot: slot.clone(),
        fallback: Arc::new(BuiltinSizing::Fixed),
    };
    // A snapshot the plugin answers wrongly: min_ready above max_ready makes `fixed` exceed it.
    let bad = PoolSnapshot {
        min_ready: 9,
        max_ready: 4,
        ..snap()
    };
    for i in 1..=3 {
        let d = policy.decide(&bad).await;
        assert_eq!(d.target, 9, "the built-in answered");
        assert_eq!(slot.status().consecutive_failures, i);
    }
    let st = slot.status();
    assert_eq!(st.state, "benched", "{st:?}");
    assert!(st.last_error.unwrap().contains("malformed answer"));
    // Benched: the plugin is not called any more.
    policy.decide(&snap()).await;
    assert_eq!(slot.status().calls, 3);
    assert!(policy.name().contains("benched"), "{}", policy.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_never_blocks_and_one_compile_serves_every_slot() {
    let host = PluginHost::new(Limits::default(), None).unwrap();
    let t0 = Instant::now();
    let a = host.slot("a", World::Sizing, &component("sizing_adaptive"), vec![]);
    let b = host.slot("b", World::Sizing, &component("sizing_adaptive"), vec![]);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "creating a slot waited for its compile"
    );
    host.settled().await;
    let (ca, cb) = (a.current().unwrap(), b.current().unwrap());
    assert!(
        Arc::ptr_eq(&ca.compiled, &cb.compiled),
        "two pools loading one file compiled it twice"
    );
    assert!(a.status().code_bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_fails_every_other_call_is_benched_too() {
    // Each fresh instance answers its first call, then sleeps past the deadline: failures
    // never come twice in a row, so only their share over the last 20 calls benches it.
    let host = PluginHost::new(Limits::default(), None).unwrap();
    let slot = host.slot(
        "p",
        World::Sizing,
        &component("test_guest_hostile_sizing"),
        cfg(&[("mode", "sleep-later"), ("n", "90")]),
    );
    host.settled().await;
    let policy = WasmSizing {
        slot: slot.clone(),
        fallback: Arc::new(BuiltinSizing::Fixed),
    };
    for _ in 0..40 {
        policy.decide(&snap()).await;
    }
    let st = slot.status();
    assert_eq!(st.state, "benched", "{st:?}");
    assert!(
        st.consecutive_failures < 5,
        "not by failures in a row: {st:?}"
    );
    assert!(
        (10..=11).contains(&st.failures),
        "benched at half of a 20-call window: {st:?}"
    );
    assert_eq!(st.calls, st.failures * 2 - 1, "{st:?}");
}
