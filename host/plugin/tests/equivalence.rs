//! Each shipped plugin answers exactly as its native twin (the same `warmpool_policy` function
//! compiled into the host) on a table of snapshots.

use std::sync::Arc;

use warmpool_core::policy_logic::health::{ExecProbe, HttpProbe};
use warmpool_core::policy_logic::sizing::{AdaptiveConfig, PredictiveConfig};
use warmpool_core::policy_logic::*;
use warmpool_plugin_host::component::Loaded;
use warmpool_plugin_host::convert::Cut;
use warmpool_plugin_host::{Limits, PluginEngine, World};
use warmpool_test_components::component;

fn engine() -> Arc<PluginEngine> {
    PluginEngine::new(Limits::default()).unwrap()
}

/// Snapshots covering idle, burst, cooldown, decay, dry, missing latency, extreme bounds.
fn table() -> Vec<PoolSnapshot> {
    let mut v = warmpool_plugin_host::check::samples()
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>();
    for (now, n, step, since, current, min, max) in [
        (100_000u64, 0u64, 0u64, None, 0u32, 0u32, 0u32),
        (100_000, 30, 100, Some(50), 2, 1, 6),
        (100_000, 5, 3_000, Some(20_000), 7, 2, 9),
        (100_000, 5, 3_000, Some(45_000), 7, 2, 9),
        (900_000, 40, 10, Some(700_000), 9, 3, 12),
        (60_000, 200, 250, Some(1), 4, 0, 50),
        (5_000, 3, 1, Some(4_990), 1, 5, 5),
    ] {
        let acquires = (0..n)
            .map(|i| AcquireSample {
                at_ms: now
                    .saturating_sub(since.unwrap_or(0))
                    .saturating_sub(i * step),
                source: if i % 3 == 0 {
                    AcquireSource::Cold
                } else {
                    AcquireSource::Pool
                },
            })
            .rev()
            .collect();
        v.push(PoolSnapshot {
            now_ms: now,
            ready: min,
            leased: n as u32 % 7,
            min_ready: min,
            max_ready: max,
            max_total: max + 5,
            current_target: current,
            since_last_acquire_ms: since,
            recent_acquires: acquires,
            recent_create_ms: if n % 2 == 0 {
                vec![300, 800, 450]
            } else {
                vec![]
            },
            idle_timeout_ms: 600_000,
            ..Default::default()
        });
    }
    v
}

fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizing_plugins_match_their_native_twins() {
    let cut = Cut::default();
    let e = engine();
    let fixed = Loaded::load(&e, None, World::Sizing, &component("sizing_fixed"), &[])
        .await
        .unwrap();
    let cfg = pairs(&[("burst_window_ms", "5000"), ("cooldown_ms", "20000")]);
    let adaptive = Loaded::load(&e, None, World::Sizing, &component("sizing_adaptive"), &cfg)
        .await
        .unwrap();
    let acfg = AdaptiveConfig::from_pairs(&cfg).unwrap();
    let pcfg_pairs = pairs(&[("alpha", "0.5"), ("headroom", "2")]);
    let predictive = Loaded::load(
        &e,
        None,
        World::Sizing,
        &component("sizing_predictive"),
        &pcfg_pairs,
    )
    .await
    .unwrap();
    let pcfg = PredictiveConfig::from_pairs(&pcfg_pairs).unwrap();
    let rows = table();
    assert!(rows.len() >= 10);
    for s in &rows {
        assert_eq!(
            fixed.decide(s, &cut).await.unwrap(),
            sizing::fixed(s),
            "fixed on {s:?}"
        );
        assert_eq!(
            adaptive.decide(s, &cut).await.unwrap(),
            sizing::adaptive(s, &acfg),
            "adaptive on {s:?}"
        );
        assert_eq!(
            predictive.decide(s, &cut).await.unwrap(),
            sizing::predictive(s, &pcfg),
            "predictive on {s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion_plugins_match_their_native_twins() {
    let cut = Cut::default();
    let e = engine();
    let wait = Loaded::load(
        &e,
        None,
        World::Exhaustion,
        &component("exhaustion_wait"),
        &[],
    )
    .await
    .unwrap();
    let fail = Loaded::load(
        &e,
        None,
        World::Exhaustion,
        &component("exhaustion_fail_fast"),
        &[],
    )
    .await
    .unwrap();
    let cold = Loaded::load(
        &e,
        None,
        World::Exhaustion,
        &component("exhaustion_cold"),
        &[],
    )
    .await
    .unwrap();
    for s in &table() {
        for r in [
            ExhaustionRequest {
                wait_ms: None,
                wait_timeout_ms: 30_000,
            },
            ExhaustionRequest {
                wait_ms: Some(250),
                wait_timeout_ms: 30_000,
            },
            ExhaustionRequest {
                wait_ms: Some(90_000),
                wait_timeout_ms: 5_000,
            },
        ] {
            assert_eq!(
                wait.on_exhausted(&r, s, &cut).await.unwrap(),
                exhaustion::wait(&r, s)
            );
            assert_eq!(
                fail.on_exhausted(&r, s, &cut).await.unwrap(),
                exhaustion::fail_fast(&r, s)
            );
            assert_eq!(
                cold.on_exhausted(&r, s, &cut).await.unwrap(),
                exhaustion::cold(&r, s)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_plugins_match_their_native_twins() {
    let cut = Cut::default();
    let e = engine();
    let exec_cfg = pairs(&[
        ("cmd", r#"["sh","-c","test -e /ready"]"#),
        ("timeout_ms", "1500"),
    ]);
    let exec = Loaded::load(
        &e,
        None,
        World::Health,
        &component("health_exec_probe"),
        &exec_cfg,
    )
    .await
    .unwrap();
    let exec_native = ExecProbe::from_pairs(&exec_cfg).unwrap();
    let http_cfg = pairs(&[("port", "8080"), ("path", "/healthz")]);
    let http = Loaded::load(
        &e,
        None,
        World::Health,
        &component("health_http_probe"),
        &http_cfg,
    )
    .await
    .unwrap();
    let http_native = HttpProbe::from_pairs(&http_cfg).unwrap();
    let c = ContainerInfo {
        id: "c1".into(),
        pool: "p".into(),
        age_ms: 5,
        uses: 1,
    };
    assert_eq!(exec.plan(&c, &cut).await.unwrap(), exec_native.plan(&c));
    assert_eq!(http.plan(&c, &cut).await.unwrap(), http_native.plan(&c));
    let results = [
        vec![ProbeResult::Exec {
            exit_code: 0,
            output: String::new(),
        }],
        vec![ProbeResult::Exec {
            exit_code: 2,
            output: "no\n".into(),
        }],
        vec![ProbeResult::Http { status: 204 }],
        vec![ProbeResult::Http { status: 503 }],
        vec![ProbeResult::TimedOut],
        vec![ProbeResult::Error {
            reason: "no address".into(),
        }],
        vec![ProbeResult::TcpConnected],
    ];
    for r in &results {
        assert_eq!(
            exec.judge(&c, r, &cut).await.unwrap(),
            exec_native.judge(&c, r),
            "{r:?}"
        );
        assert_eq!(
            http.judge(&c, r, &cut).await.unwrap(),
            http_native.judge(&c, r),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_rejecting_its_config_fails_to_load() {
    let e = engine();
    let err = Loaded::load(
        &e,
        None,
        World::Sizing,
        &component("sizing_adaptive"),
        &pairs(&[("speed", "11")]),
    )
    .await
    .err()
    .expect("bad config accepted");
    assert!(
        err.to_string().contains("unknown setting \"speed\""),
        "{err}"
    );
}
