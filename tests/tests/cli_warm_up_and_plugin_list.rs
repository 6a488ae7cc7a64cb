//! The CLI against a real daemon: `warmpool warm-up POOL` fills the pool and, piped, reports
//! its progress as plain lines (the bar is for terminals); `warmpool plugin list` shows the
//! built-in policies of a pool that runs no plugin, not an empty table.

use std::process::Command;

use warmpool_e2e::{Daemon, binary, pool_yaml};

fn cli(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env("WARMPOOL_URL", &d.url)
        .env_remove("WARMPOOL_TOKEN")
        .output()
        .expect("run warmpool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn warm_up_fills_the_pool_and_prints_plain_progress_when_piped() {
    // Target 3, but nothing is created until asked: min_ready 0 with a fixed target set by
    // warm-up itself would hide the fill, so the pool starts filling as the daemon starts and
    // warm-up waits for the rest.
    let d = Daemon::start(&[pool_yaml("wu", "min_ready: 3\nmax_ready: 3\nmax_total: 4")]).await;
    let (ok, stdout, stderr) = cli(&d, &["warm-up", "wu", "--timeout-ms", "60000"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("wu: 3 ready of target 3"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Piped: no escape codes of a bar, and every progress line is a plain `wu: N/3 ready`.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    for line in stderr.lines() {
        assert!(
            line.starts_with("wu: ") && line.contains("/3 ready"),
            "not a progress line: {line:?}"
        );
    }
    assert_eq!(d.pool("wu").await["counts"]["ready"], 3);

    // An unknown pool: a clear error and a failing exit code.
    let (ok, _, stderr) = cli(&d, &["warm-up", "nope"]);
    assert!(!ok);
    assert!(stderr.contains("unknown_pool"), "{stderr}");
}

#[tokio::test]
async fn plugin_list_shows_the_builtin_policies() {
    let d = Daemon::start(&[pool_yaml(
        "bi",
        "min_ready: 1\nmax_ready: 2\nmax_total: 2\nexhaustion: { strategy: fail }",
    )])
    .await;
    let (ok, stdout, stderr) = cli(&d, &["plugin", "list"]);
    assert!(ok, "{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    let sizing = rows
        .iter()
        .find(|l| l.starts_with("bi ") && l.contains("sizing"))
        .unwrap_or_else(|| panic!("no sizing row:\n{stdout}"));
    assert!(sizing.contains("builtin"), "{sizing}");
    let exhaustion = rows
        .iter()
        .find(|l| l.starts_with("bi ") && l.contains("exhaustion"))
        .unwrap_or_else(|| panic!("no exhaustion row:\n{stdout}"));
    assert!(exhaustion.contains("builtin:fail"), "{exhaustion}");
}
