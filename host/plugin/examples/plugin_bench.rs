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
use warmpool_plugin_host::convert::Cut;
use warmpool_plugin_host::{Limits, PluginEngine, PluginHost, PluginWatcher, WasmSizing, World};
use warmpool_test_components::component;

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The guest itself: one loaded instance, called in a loop on the plugin runtime.
    let engine = PluginEngine::new(Limits::default()).unwrap();
    let cut = Arc::new(Cut::default());
    let wasm = Arc::new(
        rt.block_on(Loaded::load(
            &engine,
            None,
            World::Sizing,
            &component("sizing_adaptive"),
            &[],
        ))
        .unwrap(),
    );
    let cfg = AdaptiveConfig::default();
    let mut w = {
        let (wasm, snap, cut) = (wasm.clone(), snap.clone(), cut.clone());
        rt.block_on(engine.run(Duration::from_secs(600), async move {
            assert_eq!(
                wasm.decide(&snap, &cut).await.unwrap(),
                sizing::adaptive(&snap, &AdaptiveConfig::default()),
                "twins disagree"
            );
            for _ in 0..n / 10 {
                black_box(wasm.decide(black_box(&snap), &cut).await.unwrap());
            }
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                black_box(wasm.decide(black_box(&snap), &cut).await.unwrap());
                v.push(t.elapsed().as_nanos() as u64);
            }
            v
        }))
        .unwrap()
    };
    let mut nat = time_calls(n, || {
        black_box(sizing::adaptive(black_box(&snap), &cfg));
    });

    // The daemon's path: the policy trait, the hop to the plugin runtime, the slot's bookkeeping.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sizing.wasm");
    std::fs::copy(component("sizing_fixed"), &file).unwrap();
    let host = PluginHost::new(Limits::default(), Some(&dir.path().join("cache"))).unwrap();
    let slot = host.slot("bench", World::Sizing, &file, vec![]);
    rt.block_on(host.settled());
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

    // Rename → first decision by the new plugin, alternating fixed (target 2) and adaptive (10),
    // through the daemon's watcher and its 60 ms debounce.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<std::path::PathBuf>>();
    let mut watcher = PluginWatcher::new(move |paths| {
        let _ = tx.send(paths);
    })
    .unwrap();
    watcher.watch(host.dirs(), false);
    {
        let host = host.clone();
        rt.spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut all: std::collections::BTreeSet<_> = first.into_iter().collect();
                while let Ok(Some(more)) =
                    tokio::time::timeout(Duration::from_millis(60), rx.recv()).await
                {
                    all.extend(more);
                }
                host.files_changed(&all);
            }
        });
    }
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
    let errors = slot.status().failures - failures_before;

    let us = |ns: u64| ns as f64 / 1000.0;
    println!("| measure | n | median | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| `decide` wasm (adaptive, reused instance, async call with deadline) | {n} | {:.2} µs | {:.2} µs |",
        us(pct(&mut w, 0.5)),
        us(pct(&mut w, 0.99))
    );
    println!(
        "| `decide` native twin (same crate, in the host) | {n} | {:.3} µs | {:.3} µs |",
        us(pct(&mut nat, 0.5)),
        us(pct(&mut nat, 0.99))
    );
    println!(
        "| `decide` through the daemon's policy trait (hop to the plugin runtime + bookkeeping) | {} | {:.2} µs | {:.2} µs |",
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
    let st = slot.status();
    println!();
    println!(
        "wasm/native median ratio: {:.1}×; calls during swaps: {calls}; failed plugin calls during swaps: {errors}; \
         the Rust plugin's memory: {} KiB linear, {} KiB code",
        pct(&mut w, 0.5) as f64 / pct(&mut nat, 0.5).max(1) as f64,
        st.memory_bytes >> 10,
        st.code_bytes >> 10
    );
    drop(watcher);
    rt.shutdown_background();
}
