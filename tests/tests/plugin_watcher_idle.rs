//! An idle daemon with plugins configured reads no plugin file and uses no CPU between
//! changes: not after an accepted 18 MB Python plugin is renamed over itself, not after a
//! rejected file, and not while a guest that logs on every call is loaded.

use std::time::Duration;

use warmpool_e2e::{Daemon, Guest, eventually, plugin_yaml, pool_yaml, replace_by_rename};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_daemon_reads_no_plugin_file_and_burns_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let py = Guest::Python("hostile_sizing", "sizing-policy").copy_to(dir.path(), "py.wasm");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a component").unwrap();
    let loud = Guest::Rust("test_guest_hostile_sizing").copy_to(dir.path(), "loud.wasm");
    let d = Daemon::start(&[
        pool_yaml(
            "py",
            &format!(
                "min_ready: 1\nmax_ready: 1\n{}",
                plugin_yaml("sizing", &py, &[("mode", "fine")])
            ),
        ),
        pool_yaml(
            "junk",
            &format!(
                "min_ready: 1\nmax_ready: 1\n{}",
                plugin_yaml("sizing", &junk, &[])
            ),
        ),
        pool_yaml(
            "loud",
            &format!(
                "min_ready: 1\nmax_ready: 1\n{}",
                plugin_yaml("sizing", &loud, &[("mode", "flood-log"), ("n", "1000")])
            ),
        ),
    ])
    .await;
    eventually(Duration::from_secs(180), "the plugins settle", || async {
        let states = [
            d.plugin("py", "sizing").await["state"].clone(),
            d.plugin("junk", "sizing").await["state"].clone(),
            d.plugin("loud", "sizing").await["state"].clone(),
        ];
        (states == ["active", "fallback", "active"]).then_some(())
    })
    .await;
    for pool in ["py", "junk", "loud"] {
        d.wait_pool(pool, Duration::from_secs(60), |p| p["counts"]["ready"] == 1)
            .await;
    }

    // The accepted file renamed over itself (same bytes) and the rejected one rewritten.
    replace_by_rename(&py.clone(), &py);
    std::fs::write(&junk, b"still not a component").unwrap();
    eventually(
        Duration::from_secs(30),
        "the junk is rejected again",
        || async {
            let e = d.plugin("junk", "sizing").await["last_error"].clone();
            e.as_str()
                .is_some_and(|e| e.contains("not a valid wasm component"))
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (read0, cpu0, log0) = (d.read_chars(), d.cpu_ticks(), d.log().len());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (read1, cpu1, log1) = (d.read_chars(), d.cpu_ticks(), d.log().len());
    let (read, cpu, logged) = (read1 - read0, cpu1 - cpu0, log1 - log0);
    eprintln!("idle for 6 s: read {read} bytes, {cpu} CPU ticks, logged {logged} bytes");
    // One read of the Python plugin is 18 MB; the engine and HTTP chatter of an idle daemon
    // is a few KB.
    assert!(read < 1 << 20, "an idle daemon read {read} bytes in 6 s");
    // 6 s of wall time is 600 ticks per core: an idle daemon uses well under 5% of one.
    assert!(cpu < 30, "an idle daemon used {cpu} ticks of CPU in 6 s");
    assert!(
        logged < 64 << 10,
        "an idle daemon logged {logged} bytes in 6 s"
    );
}
