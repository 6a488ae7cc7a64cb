//! Plugin benchmark: per-call latency of `decide` through wasm against the native twin, and the
//! time from renaming a new plugin file into place to its first decision, under a tight call
//! loop. Prints a table; the figures go into BENCHMARKS.md.
//!
//!     cargo run --release -p warmpool-plugin-host --example plugin_bench [-- --quick]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warmpool_core::policy_logic::sizing::{self, AdaptiveConfig};
use warmpool_core::{BuiltinSizing, SizingPolicy};
use warmpool_plugin_host::check::samples;
use warmpool_plugin_host::component::Loaded;
use warmpool_plugin_host::testing::component;
use warmpool_plugin_host::{Limits, PluginEngine, PluginHost, WasmSizing, World};

fn pct(v: &mut [u64], q: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn time_calls(n: usize, mut f: impl FnMut()) -> Vec<u64> {
    for _ in 0..n / 10 {
        f();
    }
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as u64
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 20_000 } else { 200_000 };
    let swaps = if quick { 5 } else { 20 };
    let snap = samples()
        .into_iter()
        .find(|(n, _)| *n == "burst")
        .unwrap()
        .1;

    let engine = PluginEngine::new(Limits::default()).unwrap();
    let wasm = Loaded::load(
        &engine,
        None,
        World::Sizing,
        &component("sizing_adaptive"),
        &[],
    )
    .unwrap();
    let cfg = AdaptiveConfig::default();
    assert_eq!(
        wasm.decide(&snap).unwrap(),
        sizing::adaptive(&snap, &cfg),
        "twins disagree"
    );
    let mut w = time_calls(n, || {
        black_box(wasm.decide(black_box(&snap)).unwrap());
    });
    let mut nat = time_calls(n, || {
        black_box(sizing::adaptive(black_box(&snap), &cfg));
    });

    // The daemon's path: the policy trait, a blocking-pool hop, the slot's bookkeeping.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sizing.wasm");
    std::fs::copy(component("sizing_fixed"), &file).unwrap();
    let host = PluginHost::new(Limits::default(), Some(&dir.path().join("cache"))).unwrap();
    let slot = host.slot("bench", World::Sizing, &file, vec![]);
    let policy = Arc::new(WasmSizing {
        slot: slot.clone(),
        fallback: Arc::new(BuiltinSizing::Fixed),
    });
    let mut via_trait = {
        let policy = policy.clone();
        let snap = snap.clone();
        rt.block_on(async move {
            let mut v = Vec::with_capacity(n / 10);
            for _ in 0..n / 10 {
                let t = Instant::now();
                black_box(policy.decide(&snap).await);
                v.push(t.elapsed().as_nanos() as u64);
            }
            v
        })
    };

    // Rename → first decision by the new plugin, alternating fixed (target 2) and adaptive (10).
    let cancel = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    rt.block_on(async { host.watch(cancel.clone(), &tracker).unwrap() });
    let mut swap_ms = Vec::new();
    let failures_before = slot.status().failures;
    let mut calls = 0u64;
    for i in 0..swaps {
        let (next, want) = if i % 2 == 0 {
            ("sizing_adaptive", 10)
        } else {
            ("sizing_fixed", 2)
        };
        let tmp = dir.path().join("incoming.tmp");
        std::fs::copy(component(next), &tmp).unwrap();
        let t0 = Instant::now();
        std::fs::rename(&tmp, &file).unwrap();
        rt.block_on(async {
            loop {
                calls += 1;
                if policy.decide(&snap).await.target == want {
                    break;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "swap {i} never took effect"
                );
            }
        });
        swap_ms.push(t0.elapsed().as_micros() as u64);
    }
    cancel.cancel();
    let errors = slot.status().failures - failures_before;

    let us = |ns: u64| ns as f64 / 1000.0;
    println!("| measure | n | median | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| `decide` wasm (adaptive, reused instance, epoch deadline on) | {n} | {:.2} µs | {:.2} µs |",
        us(pct(&mut w, 0.5)),
        us(pct(&mut w, 0.99))
    );
    println!(
        "| `decide` native twin (same crate, in the host) | {n} | {:.3} µs | {:.3} µs |",
        us(pct(&mut nat, 0.5)),
        us(pct(&mut nat, 0.99))
    );
    println!(
        "| `decide` through the daemon's policy trait (blocking-pool hop + fallback bookkeeping) | {} | {:.2} µs | {:.2} µs |",
        n / 10,
        us(pct(&mut via_trait, 0.5)),
        us(pct(&mut via_trait, 0.99))
    );
    let mut s = swap_ms.clone();
    println!(
        "| rename → first decision by the new plugin | {swaps} swaps | {:.1} ms | max {:.1} ms |",
        pct(&mut s, 0.5) as f64 / 1000.0,
        *s.iter().max().unwrap() as f64 / 1000.0
    );
    println!();
    println!(
        "wasm/native median ratio: {:.1}×; calls during swaps: {calls}; failed plugin calls during swaps: {errors}",
        pct(&mut w, 0.5) as f64 / pct(&mut nat, 0.5).max(1) as f64
    );
}
