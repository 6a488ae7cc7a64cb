//! Section 15, runc against gVisor's runsc (issue 25), side by side in one run on one engine of
//! the bench's own (`tests/engines/engines.sh up … --runsc all --experimental`: Debian's runsc
//! registered as `runsc`, checkpoints on) and the same image, the pool's `runtime` the only
//! difference: refill from empty, warm acquire, exec of `true` and of `python3 -c 'print(1)'`
//! through the agent, the memory an idle ready container costs, and, where the runtime can,
//! suspend and resume of a lease (`POST /v1/leases/{id}/suspend` / `resume`): their times, the
//! checkpoint's size on disk and the memory the suspension gave back.
//!
//! Memory per container is read two ways, both from the host: what the container's memory
//! cgroup is charged (`memory.usage_in_bytes`, what `docker stats` shows), and the summed PSS
//! of every process in its cgroup (for runsc: the sandbox, the gofer and their helpers, whose
//! shared pages PSS splits between them instead of counting them once per process).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, ExtraEngines, IMAGE, Setup, pool_yaml};

use crate::refill::fill_seconds;
use crate::{Report, row, stats};

const RUNTIMES: [&str; 2] = ["runc", "runsc"];

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The pool `name` on `image` under `runtime`, agent exec, `ready` kept.
fn pool(name: &str, image: &str, runtime: &str, ready: usize) -> String {
    pool_yaml(
        name,
        &format!(
            "runtime: {runtime}\nmin_ready: {ready}\nmax_ready: {ready}\nmax_total: {}\nsizing: {{ policy: fixed }}\nlease: {{ default_ttl: 1h, max_ttl: 1h }}",
            ready + 2
        ),
    )
    .replace(IMAGE, image)
}

async fn daemon(engines: &ExtraEngines, pools: &[String], audit: Option<&Path>) -> Daemon {
    let mut server = String::new();
    if let Some(a) = audit {
        server.push_str(&format!("  audit_log: {}\n", a.display()));
    }
    server.push_str(&engines.docker_yaml(|_| "{}".into(), None));
    Daemon::start_setup(
        pools,
        Setup {
            server: &server,
            ..Setup::default()
        },
    )
    .await
}

/// The container's directory in cgroup hierarchy `controller` (engines.sh puts each engine's
/// containers under a parent cgroup of its own).
fn cgroup_dir(controller: &str, container: &str) -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup").join(controller);
    std::fs::read_dir(&root)
        .ok()?
        .flatten()
        .map(|e| e.path().join(container))
        .find(|p| p.is_dir())
}

/// What the container's memory cgroup is charged, in KiB (0 once it is gone).
fn cgroup_kib(container: &str) -> u64 {
    cgroup_dir("memory", container)
        .and_then(|d| std::fs::read_to_string(d.join("memory.usage_in_bytes")).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(0, |b| b / 1024)
}

/// The summed PSS, in KiB, of every process in the container's cgroup.
fn pss_kib(container: &str) -> u64 {
    let Some(dir) = cgroup_dir("pids", container) else {
        return 0;
    };
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

fn du_kib(path: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-sk", &path.display().to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The containers of `pool` on the engine: with no lease open, its ready ones.
fn pool_containers(engines: &ExtraEngines, d: &Daemon, pool: &str) -> Vec<String> {
    let out = engines.docker(
        "e1",
        &[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=warmpool.host={}", d.host_id),
            "--filter",
            &format!("label=warmpool.pool={pool}"),
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

async fn quiet(d: &Daemon, pool: &str, ready: usize) {
    d.wait_pool(pool, Duration::from_secs(120), |p| {
        p["counts"]["ready"] == ready as u64
            && p["counts"]["creating"] == 0
            && p["counts"]["removing"] == 0
    })
    .await;
}

/// `n` buffered execs of `cmd` over HTTP: their latencies, client side.
async fn execs(d: &Daemon, lease: &str, cmd: &[&str], want: &str, n: usize) -> Vec<f64> {
    let mut v = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let out = d.exec(lease, json!({"cmd": cmd})).await;
        v.push(ms(t));
        assert_eq!(out["stdout"], want, "{out}");
    }
    v
}

/// What one runtime measured.
#[derive(Default)]
struct Measured {
    refill: Vec<f64>,
    acquire: Vec<f64>,
    exec_true: Vec<f64>,
    exec_py: Vec<f64>,
    cgroup_kib: Vec<f64>,
    pss_kib: Vec<f64>,
    suspend: Vec<Suspension>,
    refused: Option<String>,
}

struct Suspension {
    image: &'static str,
    suspend_ms: f64,
    resume_ms: f64,
    disk_kib: u64,
    freed_kib: u64,
    continued: bool,
}

pub async fn runtimes(quick: bool, py: Option<&'static str>, r: &mut Report) {
    r.section("15. runc against gVisor's runsc, one engine, same image");
    let engines = ExtraEngines::up_with(1, &["--runsc", "all", "--experimental"]);
    engines.load("e1", IMAGE);
    if let Some(py) = py {
        engines.load("e1", py);
    }
    let (ready, reps, n_acq, n_exec, n_py, n_susp) = if quick {
        (4, 1, 5, 10, 5, 1)
    } else {
        (8, 3, 40, 100, 30, 5)
    };
    let mut all = Vec::new();
    for rt in RUNTIMES {
        let mut m = Measured::default();
        // Refill: a fresh daemon, from its first create to `ready` ready.
        for _ in 0..reps {
            let logs = tempfile::tempdir().unwrap();
            let audit = logs.path().join("audit.jsonl");
            let mut d = daemon(&engines, &[pool("r", IMAGE, rt, ready)], Some(&audit)).await;
            m.refill.push(fill_seconds(&d, &audit, ready).await);
            let (status, _) = d.terminate(Duration::from_secs(60));
            assert!(status.success());
        }
        let mut pools = vec![pool("b", IMAGE, rt, 2)];
        if let Some(py) = py {
            pools.push(pool("py", py, rt, 1));
        }
        let d = daemon(&engines, &pools, None).await;
        quiet(&d, "b", 2).await;
        // Memory of an idle ready container, each of the two.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for id in pool_containers(&engines, &d, "b") {
            m.cgroup_kib.push(cgroup_kib(&id) as f64);
            m.pss_kib.push(pss_kib(&id) as f64);
        }
        // Warm acquire, on a quiet pool each time.
        for i in 0..n_acq {
            quiet(&d, "b", 2).await;
            let t = Instant::now();
            let (st, _, l) = d
                .call(Method::POST, "/v1/leases", Some(json!({"pool": "b"})))
                .await;
            m.acquire.push(ms(t));
            assert!(st.is_success(), "acquire {i}: {l}");
            let id = l["lease_id"].as_str().unwrap();
            d.call(Method::DELETE, &format!("/v1/leases/{id}"), None)
                .await;
        }
        quiet(&d, "b", 2).await;
        let l = d.acquire(json!({"pool": "b"})).await;
        let lease = l["lease_id"].as_str().unwrap().to_string();
        m.exec_true = execs(&d, &lease, &["true"], "", n_exec).await;
        if py.is_some() {
            let pl = d.acquire(json!({"pool": "py"})).await;
            let plid = pl["lease_id"].as_str().unwrap();
            m.exec_py = execs(&d, plid, &["python3", "-c", "print(1)"], "1\n", n_py).await;
        }
        // Suspend and resume: a counter in the lease's memory must go on from where it was.
        for (image, pool_name) in [("busybox", "b"), ("python", "py")] {
            if pool_name == "py" && py.is_none() {
                continue;
            }
            for _ in 0..n_susp {
                quiet(&d, pool_name, if pool_name == "b" { 2 } else { 1 }).await;
                let l = d.acquire(json!({"pool": pool_name})).await;
                let (lid, cid) = (
                    l["lease_id"].as_str().unwrap().to_string(),
                    l["container_id"].as_str().unwrap().to_string(),
                );
                let start = if image == "python" {
                    "nohup python3 -c 'import time\nn=0\nwhile True:\n    n+=1\n    open(\"/tmp/n\",\"w\").write(str(n))\n    time.sleep(0.05)' >/dev/null 2>&1 &"
                } else {
                    "nohup sh -c 'n=0; while true; do n=$((n+1)); echo $n > /tmp/n; sleep 0.05; done' >/dev/null 2>&1 &"
                };
                let out = d.exec(&lid, json!({"cmd": ["sh", "-c", start]})).await;
                assert_eq!(out["exit_code"], 0, "{out}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let counter = read_n(&d, &lid).await;
                let before_kib = cgroup_kib(&cid) + pss_kib(&cid);
                let t = Instant::now();
                let (st, _, v) = d
                    .call(Method::POST, &format!("/v1/leases/{lid}/suspend"), None)
                    .await;
                let suspend_ms = ms(t);
                if st == StatusCode::CONFLICT {
                    m.refused = Some(v.to_string());
                    d.call(Method::DELETE, &format!("/v1/leases/{lid}"), None)
                        .await;
                    break;
                }
                assert!(st.is_success(), "suspend: {st} {v}");
                let after_kib = cgroup_kib(&cid) + pss_kib(&cid);
                let disk_kib = du_kib(
                    &engines
                        .dir()
                        .join("e1/data/containers")
                        .join(&cid)
                        .join("checkpoints"),
                );
                let t = Instant::now();
                let (st, _, v) = d
                    .call(Method::POST, &format!("/v1/leases/{lid}/resume"), None)
                    .await;
                let resume_ms = ms(t);
                assert!(st.is_success(), "resume: {st} {v}");
                // A counter held in the loop's memory goes on from where it was: it grows past
                // the value read just before the suspend (a process started afresh, or none,
                // would leave it there).
                tokio::time::sleep(Duration::from_millis(500)).await;
                let n1 = read_n(&d, &lid).await;
                m.suspend.push(Suspension {
                    image,
                    suspend_ms,
                    resume_ms,
                    disk_kib,
                    freed_kib: before_kib.saturating_sub(after_kib),
                    // From memory, not from 0: the value on disk at the suspension, or later.
                    continued: matches!((counter, n1), (Some(c), Some(n)) if n > c && c > 1),
                });
                d.call(Method::DELETE, &format!("/v1/leases/{lid}"), None)
                    .await;
            }
        }
        drop(d);
        all.push((rt, m));
    }
    report(r, py, ready, &all);
}

/// The counter the lease's loop writes, read through the lease (a call that may resume it).
async fn read_n(d: &Daemon, lease: &str) -> Option<u64> {
    let (_, _, out) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{lease}/exec"),
            Some(json!({"cmd": ["cat", "/tmp/n"]})),
        )
        .await;
    out["stdout"].as_str()?.trim().parse().ok()
}

fn report(r: &mut Report, py: Option<&str>, ready: usize, all: &[(&str, Measured)]) {
    // Each row's name carries its runtime as a column of its own (`measure | runtime`).
    r.line("| measure | runtime | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|---|");
    let runc = &all[0].1;
    for (rt, m) in all {
        let ratio = |a: &[f64], b: &[f64]| {
            let (x, y) = (stats(a.to_vec()).p50, stats(b.to_vec()).p50);
            if *rt == "runc" {
                String::new()
            } else {
                format!("{:.2}× runc", x / y)
            }
        };
        let refill = stats(m.refill.clone());
        r.line(&row(
            &format!("refill empty → {ready} ready | {rt}"),
            &refill,
            "s",
            &format!(
                "{:.2} containers/s {}",
                ready as f64 / refill.p50,
                ratio(&m.refill, &runc.refill)
            ),
        ));
        r.line(&row(
            &format!("warm acquire | {rt}"),
            &stats(m.acquire.clone()),
            "ms",
            &ratio(&m.acquire, &runc.acquire),
        ));
        r.line(&row(
            &format!("exec `true`, agent | {rt}"),
            &stats(m.exec_true.clone()),
            "ms",
            &ratio(&m.exec_true, &runc.exec_true),
        ));
        if py.is_some() {
            r.line(&row(
                &format!("exec `python3 -c 'print(1)'`, agent | {rt}"),
                &stats(m.exec_py.clone()),
                "ms",
                &ratio(&m.exec_py, &runc.exec_py),
            ));
        }
        r.line(&row(
            &format!("idle ready container, memory cgroup | {rt}"),
            &stats(m.cgroup_kib.iter().map(|k| k / 1024.0).collect()),
            "MiB",
            &ratio(&m.cgroup_kib, &runc.cgroup_kib),
        ));
        r.line(&row(
            &format!("idle ready container, PSS of its processes | {rt}"),
            &stats(m.pss_kib.iter().map(|k| k / 1024.0).collect()),
            "MiB",
            &ratio(&m.pss_kib, &runc.pss_kib),
        ));
        if let Some(why) = &m.refused {
            r.line(&format!(
                "| suspend | {rt} | | | | | refused with 409: {why} |"
            ));
        }
        for image in ["busybox", "python"] {
            let s: Vec<&Suspension> = m.suspend.iter().filter(|s| s.image == image).collect();
            if s.is_empty() {
                continue;
            }
            let cont = s.iter().filter(|s| s.continued).count();
            r.line(&row(
                &format!("suspend, {image} | {rt}"),
                &stats(s.iter().map(|s| s.suspend_ms).collect()),
                "ms",
                &format!(
                    "checkpoint {:.0} KiB on disk (median); a counter in memory went on in {cont} of {}",
                    stats(s.iter().map(|s| s.disk_kib as f64).collect()).p50,
                    s.len()
                ),
            ));
            r.line(&row(
                &format!("resume, {image} | {rt}"),
                &stats(s.iter().map(|s| s.resume_ms).collect()),
                "ms",
                "until the resume call answered",
            ));
            r.line(&row(
                &format!("memory freed by suspension, {image} | {rt}"),
                &stats(s.iter().map(|s| s.freed_kib as f64 / 1024.0).collect()),
                "MiB",
                "memory cgroup + PSS of its processes, before − after",
            ));
            r.record(
                &format!("runtimes_{rt}_{image}_suspend_ms_p50"),
                stats(s.iter().map(|s| s.suspend_ms).collect()).p50,
            );
            r.record(
                &format!("runtimes_{rt}_{image}_resume_ms_p50"),
                stats(s.iter().map(|s| s.resume_ms).collect()).p50,
            );
        }
        r.record(&format!("runtimes_{rt}_refill_s_p50"), refill.p50);
        r.record(
            &format!("runtimes_{rt}_acquire_ms_p50"),
            stats(m.acquire.clone()).p50,
        );
        r.record(
            &format!("runtimes_{rt}_exec_true_ms_p50"),
            stats(m.exec_true.clone()).p50,
        );
        r.record(
            &format!("runtimes_{rt}_idle_pss_kib_p50"),
            stats(m.pss_kib.clone()).p50,
        );
    }
}
