//! Python guests (componentize-py, built in this run from `plugins/test-guests/python`) are
//! contained exactly as Rust ones: a sleep in `decide` or `init`, a busy loop and a log flood
//! end at the deadline; a socket is refused and the guest's own traceback says so; a memory
//! bomb hits the cap; answers out of bounds are cut and counted; and two pools loading the
//! same Python file share one compile.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{cfg, roomy, snap};
use warmpool_core::policy_logic::{ExhaustionAction, ExhaustionRequest};
use warmpool_core::{BuiltinExhaustion, BuiltinSizing, ExhaustionStrategy, SizingPolicy, bounds};
use warmpool_plugin_host::component::Loaded;
use warmpool_plugin_host::convert::Cut;
use warmpool_plugin_host::{
    Limits, PluginEngine, PluginError, PluginHost, WasmExhaustion, WasmSizing, World,
};
use warmpool_test_components::python_component;

/// A bound no contained call comes near: it only catches a hang (the guest sleeps 90 s).
const NO_HANG: Duration = Duration::from_secs(20);

/// One engine and compile cache for the whole file: the 18 MB component compiles once and
/// every later load reads the cache (kept beside the built guests, under `plugins/target`).
fn engine() -> &'static (Arc<PluginEngine>, PathBuf) {
    static E: OnceLock<(Arc<PluginEngine>, PathBuf)> = OnceLock::new();
    E.get_or_init(|| {
        let cache = sizing_guest().with_file_name("cwasm");
        std::fs::create_dir_all(&cache).unwrap();
        (PluginEngine::new(Limits::default()).unwrap(), cache)
    })
}

fn sizing_guest() -> PathBuf {
    python_component("hostile_sizing", "sizing-policy")
}

async fn load(
    file: &Path,
    world: World,
    config: &[(String, String)],
) -> Result<Loaded, PluginError> {
    let (e, cache) = engine();
    Loaded::load(e, Some(cache), world, file, config).await
}

async fn decide_in(mode: &str, extra: &[(&str, &str)]) -> Result<String, PluginError> {
    let mut kv = vec![("mode", mode)];
    kv.extend_from_slice(extra);
    let l = load(&sizing_guest(), World::Sizing, &cfg(&kv)).await?;
    l.decide(&snap(), &Cut::default()).await.map(|d| d.reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_behaved_python_guest_answers_and_logs() {
    let reason = decide_in("fine", &[]).await.unwrap();
    assert_eq!(reason, "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_sleep_in_decide_is_abandoned_at_the_deadline() {
    let t0 = Instant::now();
    let err = decide_in("sleep-decide", &[]).await.unwrap_err();
    assert!(matches!(err, PluginError::Deadline(_)), "{err}");
    assert!(t0.elapsed() < NO_HANG, "held for {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_sleep_in_init_fails_the_load_at_its_deadline() {
    // Compile first (shared through the cache), so the clock below times `init` alone.
    let _ = sizing_guest();
    let _ = decide_in("fine", &[]).await;
    let t0 = Instant::now();
    let err = load(
        &sizing_guest(),
        World::Sizing,
        &cfg(&[("mode", "sleep-init")]),
    )
    .await
    .err()
    .expect("an init that never ends must fail the load");
    assert!(matches!(err, PluginError::Deadline(_)), "{err}");
    assert!(t0.elapsed() < NO_HANG, "held for {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_and_a_log_flood_end_at_the_deadline() {
    for mode in ["spin", "flood-log"] {
        let err = decide_in(mode, &[]).await.unwrap_err();
        assert!(matches!(err, PluginError::Deadline(_)), "{mode}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_refused_and_the_traceback_names_why() {
    let err = decide_in("udp", &[]).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PluginError::Trap(_)), "{msg}");
    assert!(
        msg.contains("PermissionError"),
        "the guest's traceback is missing: {msg}"
    );
    assert!(msg.len() <= 1100, "an error is short: {} bytes", msg.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_is_reported_by_its_message() {
    let err = decide_in("raise", &[]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("RuntimeError: the python guest raised"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_reason_hits_the_memory_cap_and_a_1_mib_one_is_cut() {
    let err = decide_in("huge-reason", &[]).await.unwrap_err();
    assert!(matches!(err, PluginError::Memory(_)), "{err}");
    let cut = Cut::default();
    let l = load(
        &sizing_guest(),
        World::Sizing,
        &cfg(&[("mode", "huge-reason"), ("n", "1048576")]),
    )
    .await
    .unwrap();
    let d = l.decide(&snap(), &cut).await.unwrap();
    assert!(d.reason.len() <= bounds::MAX_REASON, "{}", d.reason.len());
    assert_eq!(cut.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_bounds_exhaustion_answers_are_cut_in_a_running_host() {
    let file = python_component("hostile_exhaustion", "exhaustion-strategy");
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::new(roomy(), Some(&dir.path().join("cache"))).unwrap();
    let slot = host.slot("p", World::Exhaustion, &file, vec![]);
    host.settled().await;
    assert_eq!(slot.status().state, "active", "{:?}", slot.status());
    let strategy = WasmExhaustion {
        slot: slot.clone(),
        fallback: Arc::new(BuiltinExhaustion::Cold),
    };
    let r = ExhaustionRequest {
        wait_ms: None,
        wait_timeout_ms: 1000,
    };
    match strategy.on_exhausted(&r, &snap()).await {
        ExhaustionAction::Fail {
            retry_after_ms,
            reason,
        } => {
            assert_eq!(retry_after_ms, bounds::MAX_RETRY_AFTER_MS);
            assert!(reason.len() <= bounds::MAX_REASON);
        }
        other => panic!("{other:?}"),
    }
    assert!(slot.status().truncated >= 2, "{:?}", slot.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_on_one_python_file_share_one_compile_and_serve_meanwhile() {
    let host = PluginHost::new(Limits::default(), None).unwrap();
    let file = sizing_guest();
    let t0 = Instant::now();
    let a = host.slot("a", World::Sizing, &file, cfg(&[("mode", "fine")]));
    let b = host.slot("b", World::Sizing, &file, cfg(&[("mode", "fine")]));
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a slot waited for its compile"
    );
    // While it compiles, the built-in answers.
    assert_eq!(a.status().state, "compiling");
    let policy = WasmSizing {
        slot: a.clone(),
        fallback: Arc::new(BuiltinSizing::Fixed),
    };
    assert_eq!(
        policy.decide(&snap()).await.reason,
        "fixed: keep min_ready=2"
    );
    host.settled().await;
    let (ca, cb) = (a.current().unwrap(), b.current().unwrap());
    assert!(
        Arc::ptr_eq(&ca.compiled, &cb.compiled),
        "one file compiled twice"
    );
    assert_eq!(policy.decide(&snap()).await.reason, "fine");
    let st = a.status();
    assert!(st.memory_bytes > 0 && st.code_bytes > 0, "{st:?}");
}
