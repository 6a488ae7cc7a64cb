//! Hostile and broken plugins are contained: the call fails with a reason naming what went
//! wrong, the pool's built-in answers instead, repeated failures bench the plugin, and a bad
//! new file never replaces a working one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warmpool_core::policy_logic::{PoolSnapshot, SizingDecision};
use warmpool_core::{BuiltinSizing, SizingPolicy};
use warmpool_plugin_host::component::Loaded;
use warmpool_plugin_host::testing::component;
use warmpool_plugin_host::{Limits, PluginEngine, PluginError, PluginHost, WasmSizing, World};

fn snap() -> PoolSnapshot {
    PoolSnapshot {
        ready: 1,
        min_ready: 2,
        max_ready: 4,
        max_total: 8,
        idle_timeout_ms: 1000,
        ..Default::default()
    }
}

fn load(name: &str) -> Result<Loaded, PluginError> {
    let e = PluginEngine::new(Limits::default()).unwrap();
    Loaded::load(&e, None, World::Sizing, &component(name), &[])
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let l = load("test_guest_spin_forever").unwrap();
    let t0 = Instant::now();
    let err = l.decide(&snap()).unwrap_err();
    assert!(matches!(err, PluginError::Deadline(5)), "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "deadline took {:?}",
        t0.elapsed()
    );
    // The instance was dropped; the next call starts clean and fails the same bounded way.
    assert!(matches!(
        l.decide(&snap()).unwrap_err(),
        PluginError::Deadline(_)
    ));
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let err = load("test_guest_grow_memory")
        .unwrap()
        .decide(&snap())
        .unwrap_err();
    assert!(matches!(err, PluginError::Memory(_)), "{err}");
}

#[test]
fn a_panic_is_reported_by_its_message() {
    let err = load("test_guest_panics")
        .unwrap()
        .decide(&snap())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("hostile guest refuses to size a pool of 1 ready"),
        "{msg}"
    );
}

#[test]
fn wrong_world_non_wasm_and_truncated_files_are_refused_with_reasons() {
    let e = PluginEngine::new(Limits::default()).unwrap();
    let err = Loaded::load(&e, None, World::Sizing, &component("exhaustion_cold"), &[])
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
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");

    let good = std::fs::read(component("sizing_fixed")).unwrap();
    let cut = dir.path().join("truncated.wasm");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let err = Loaded::load(&e, None, World::Sizing, &cut, &[])
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");

    let missing = dir.path().join("absent.wasm");
    assert!(matches!(
        Loaded::load(&e, None, World::Sizing, &missing, &[])
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
    assert!(slot.reload().unwrap());
    assert_eq!(slot.status().state, "active");
    let sha = slot.status().sha256.unwrap();
    std::fs::copy(component("test_guest_panics"), &file).unwrap();
    assert!(slot.reload().is_err());
    assert_eq!(
        slot.status().sha256.unwrap(),
        sha,
        "a failing file replaced a working plugin"
    );
    assert!(policy.name().starts_with("wasm:"));

    // The same content again (a touch) is not recompiled.
    std::fs::copy(component("sizing_adaptive"), &file).unwrap();
    assert!(!slot.reload().unwrap());
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
