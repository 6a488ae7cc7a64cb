//! Pools under gVisor (`runtime: runsc`), end to end (issue 25): two engines of the test's own,
//! of which only `e1` registers Debian's `runsc` (`engines.sh up DIR 2 --runsc 1`), and one
//! daemon driving both. Every runsc pool's containers land on `e1` (and really run under
//! gVisor), a pool naming no runtime still uses both engines, and a pool whose runtime no engine
//! has is `degraded` with the reason and refuses acquires at once. Under runsc: warm and cold
//! acquire, exec through the agent and through the engine, files and tar both ways, a terminal,
//! exec kill, the reuse scrub (a verified reset, and a refused one), health probes, and a
//! `kill -9` of the daemon after which the lease and the ready containers are re-adopted.
//!
//! One engine pair and one daemon serve every step, in order (each step leaves the pools as
//! the next expects): engines and gVisor sandboxes cost seconds to start on two cores.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use warmpool_e2e::{Daemon, ExtraEngines, IMAGE, Setup, engines_of, eventually, pool_yaml};

const REUSE: &str = r#"reuse: { enabled: true, max_uses: 5, reset: ["rm -rf /work/* /work/.[!.]* /tmp/* /tmp/.[!.]*"], verify: ["test -z \"$(ls -A /work)\" && test -z \"$(ls -A /tmp)\""] }"#;

fn pools() -> Vec<String> {
    vec![
        pool_yaml(
            "ga",
            &format!(
                "runtime: runsc\nmin_ready: 4\nmax_ready: 4\nmax_total: 8\nworkdir: /work\n{REUSE}"
            ),
        ),
        pool_yaml(
            "ge",
            &format!(
                "runtime: runsc\nexec: engine\nmin_ready: 0\nmax_ready: 1\nmax_total: 4\nworkdir: /work\n{REUSE}"
            ),
        ),
        pool_yaml(
            "gh",
            "runtime: runsc\nmin_ready: 1\nmax_ready: 1\nhealth: { cmd: \"test ! -e /tmp/sick\", interval: 500ms, timeout: 5s }",
        ),
        pool_yaml("gn", "runtime: nope\nmin_ready: 1\nmax_ready: 1"),
        pool_yaml("plain", "min_ready: 2\nmax_ready: 2"),
    ]
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_works_under_runsc_and_runsc_pools_stay_on_its_engine() {
    let t0 = Instant::now();
    let engines = ExtraEngines::up_runsc(2, &[1]);
    for e in ["e1", "e2"] {
        engines.load(e, IMAGE);
    }
    let docker = engines.docker_yaml(|_| "{}".into(), None);
    let server = format!(
        "  state_dir: {{STATE_DIR}}\n  commit_interval: 20ms\n  keep_on_shutdown: true\n{docker}"
    );
    let mut d = Daemon::start_setup(
        &pools(),
        Setup {
            server: &server,
            limits: "  max_containers: 24\n  max_concurrent_creates: 4\n",
            ..Setup::default()
        },
    )
    .await;
    let started = t0.elapsed();
    for p in ["ga", "gh", "plain"] {
        d.warm_up(p).await;
    }
    eprintln!(
        "engines and daemon {started:.1?}, pools warm {:.1?}",
        t0.elapsed()
    );

    engines_show_their_runtimes(&d).await;
    let nope = a_runtime_nobody_has_degrades_its_pool(&d).await;
    placement_follows_the_runtime(&d, &engines).await;
    let (warm_exec_ms, engine_exec_ms) = acquire_and_exec(&d).await;
    files_both_ways(&d).await;
    terminals(&d).await;
    exec_kill(&d).await;
    reuse_scrub(&d).await;
    health(&d, &engines).await;
    restart_readopts(&mut d, &engines).await;
    // Nothing was ever sent to e2 for a runsc pool, across every step.
    placement_follows_the_runtime(&d, &engines).await;
    eprintln!(
        "runsc: exec through the agent p50 {warm_exec_ms} ms, through the engine p50 \
         {engine_exec_ms} ms; `nope` refused in {nope:?}; whole test {:.1?}",
        t0.elapsed()
    );
}

async fn engines_show_their_runtimes(d: &Daemon) {
    let by = engines_of(d).await;
    let names = |e: &str| -> Vec<String> {
        by[e]["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert!(names("e1").contains(&"runsc".to_string()), "{by:?}");
    assert!(names("e1").contains(&"runc".to_string()), "{by:?}");
    assert!(!names("e2").contains(&"runsc".to_string()), "{by:?}");
    assert_eq!(by["e2"]["default_runtime"], "runc");
}

/// `runtime: nope`: degraded with the runtime named, and an acquire refused at once (503), not
/// after a wait; nothing was ever created for it.
async fn a_runtime_nobody_has_degrades_its_pool(d: &Daemon) -> Duration {
    let p = d
        .wait_pool("gn", Duration::from_secs(10), |p| p["status"] == "degraded")
        .await;
    let reason = p["reason"].as_str().unwrap();
    assert!(
        reason.contains("\"nope\"") && reason.contains("e1:") && reason.contains("runsc"),
        "{p:#}"
    );
    assert_eq!(p["runtime"], "nope");
    assert_eq!(p["counts"]["ready"], 0);
    assert_eq!(p["creates"]["total"], 0);
    let t = Instant::now();
    let (st, h, err) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "gn"})))
        .await;
    let took = t.elapsed();
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"]["code"], "pool_degraded", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("nope"),
        "{err}"
    );
    assert!(h.get("retry-after").is_some());
    took
}

/// Every container of a runsc pool is on e1 and runs under runsc; `plain` uses both engines.
async fn placement_follows_the_runtime(d: &Daemon, engines: &ExtraEngines) {
    for p in ["ga", "ge", "gh"] {
        let s = d.pool(p).await;
        let on_e2 = &s["engines"]["e2"];
        let total: u64 = on_e2
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(total, 0, "{p} on e2: {s:#}");
        assert_eq!(s["runtime"], "runsc");
    }
    for e in ["e1", "e2"] {
        let out = engines.docker(
            e,
            &[
                "ps",
                "-a",
                "--filter",
                &format!("label=warmpool.host={}", d.host_id),
                "--format",
                "{{.ID}} {{.Label \"warmpool.pool\"}}",
            ],
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (id, pool) = line.split_once(' ').unwrap();
            let rt = engines.docker(e, &["inspect", "-f", "{{.HostConfig.Runtime}}", id]);
            if !rt.status.success() {
                continue; // removed since it was listed
            }
            let rt = String::from_utf8_lossy(&rt.stdout).trim().to_string();
            if pool == "plain" {
                assert_eq!(rt, "runc", "{e} {line}");
            } else {
                assert_eq!((e, rt.as_str()), ("e1", "runsc"), "{line}");
            }
        }
    }
    let plain = d.pool("plain").await;
    for e in ["e1", "e2"] {
        assert!(
            plain["engines"][e]["ready"].as_u64().unwrap()
                + plain["engines"][e]["leased"].as_u64().unwrap()
                > 0,
            "a pool naming no runtime spreads over both engines: {plain:#}"
        );
    }
}

async fn lease_of(d: &Daemon, pool: &str) -> (Value, String) {
    let l = d.acquire(json!({"pool": pool})).await;
    let id = l["lease_id"].as_str().unwrap().to_string();
    (l, id)
}

/// Median of `n` execs of `true`, in ms, as the daemon timed them.
async fn exec_p50(d: &Daemon, lease: &str, n: usize) -> u64 {
    let mut ms = Vec::new();
    for _ in 0..n {
        let out = d.exec(lease, json!({"cmd": ["true"]})).await;
        assert_eq!(out["exit_code"], 0, "{out}");
        ms.push(out["duration_ms"].as_u64().unwrap());
    }
    ms.sort_unstable();
    ms[n / 2]
}

/// A warm acquire (agent) and a cold one (engine exec); exec with stdin and the lease's env,
/// inside gVisor (its kernel says 4.4.0). Returns the exec p50 of each path.
async fn acquire_and_exec(d: &Daemon) -> (u64, u64) {
    let warm = d
        .acquire(json!({"pool": "ga", "env": {"FROM_LEASE": "yes"}}))
        .await;
    assert_eq!(warm["source"], "pool", "{warm}");
    assert_eq!(warm["engine"], "e1", "{warm}");
    let wid = warm["lease_id"].as_str().unwrap();
    let out = d
        .exec(
            wid,
            json!({"cmd": ["sh", "-c", "uname -r; cat; echo $FROM_LEASE; pwd"], "stdin": "in\n"}),
        )
        .await;
    assert_eq!(out["stdout"], "4.4.0\nin\nyes\n/work\n", "{out}");
    let agent_p50 = exec_p50(d, wid, 15).await;

    let (cold, cid) = lease_of(d, "ge").await;
    assert_eq!(cold["source"], "cold", "{cold}");
    assert_eq!(cold["engine"], "e1", "{cold}");
    let out = d
        .exec(
            &cid,
            json!({"cmd": ["sh", "-c", "uname -r; cat; exit 3"], "stdin": "in\n"}),
        )
        .await;
    assert_eq!(
        (out["exit_code"].as_i64(), out["stdout"].as_str()),
        (Some(3), Some("4.4.0\nin\n")),
        "{out}"
    );
    let engine_p50 = exec_p50(d, &cid, 9).await;
    release(d, wid).await;
    release(d, &cid).await;
    // The same through the agent under runc, on the same engines, for comparison.
    let (plain, pid) = lease_of(d, "plain").await;
    let out = d.exec(&pid, json!({"cmd": ["uname", "-r"]})).await;
    assert_ne!(
        out["stdout"], "4.4.0\n",
        "{plain} runs on the host's kernel"
    );
    let runc_p50 = exec_p50(d, &pid, 15).await;
    release(d, &pid).await;
    eprintln!("exec of `true` through the agent: p50 {runc_p50} ms under runc");
    (agent_p50, engine_p50)
}

async fn release(d: &Daemon, lease: &str) {
    let (st, _, v) = d
        .call(Method::DELETE, &format!("/v1/leases/{lease}"), None)
        .await;
    assert!(st.is_success(), "{v}");
}

/// A file and a tar, in and out, on both paths.
async fn files_both_ways(d: &Daemon) {
    for pool in ["ga", "ge"] {
        let (_, id) = lease_of(d, pool).await;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let path = format!("/v1/leases/{id}/files/work/deep/data.bin");
        let (st, _) = d.raw(Method::PUT, &path, data.clone()).await;
        assert!(st.is_success(), "{pool}: PUT {st}");
        let (st, back) = d.raw(Method::GET, &path, vec![]).await;
        assert_eq!(st, StatusCode::OK, "{pool}");
        assert!(back == data, "{pool}: the file came back changed");

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "t/x.txt", &b"hello"[..]).unwrap();
        let tarball = b.into_inner().unwrap();
        let (st, _) = d
            .raw(
                Method::PUT,
                &format!("/v1/leases/{id}/archive/work/in"),
                tarball,
            )
            .await;
        assert!(st.is_success(), "{pool}: archive PUT {st}");
        let out = d
            .exec(&id, json!({"cmd": ["cat", "/work/in/t/x.txt"]}))
            .await;
        assert_eq!(out["stdout"], "hello", "{pool}: {out}");
        let (st, got) = d
            .raw(
                Method::GET,
                &format!("/v1/leases/{id}/archive/work/in"),
                vec![],
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{pool}");
        let mut names = Vec::new();
        for e in tar::Archive::new(&got[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert!(names.iter().any(|n| n == "in/t/x.txt"), "{pool}: {names:?}");
        release(d, &id).await;
    }
}

async fn open(d: &Daemon, lease: &str, start: Value) -> Ws {
    let url = format!(
        "{}/v1/leases/{lease}/pty",
        d.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    ws.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    ws
}

/// Read output until `want` shows (answering busybox's cursor question as a terminal would).
async fn until(ws: &mut Ws, want: &str) -> String {
    let mut seen = String::new();
    let r = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(m) = ws.next().await {
            if let Message::Binary(b) = m.unwrap() {
                let text = String::from_utf8_lossy(&b[1..]).into_owned();
                if text.contains("\u{1b}[6n") {
                    ws.send(Message::Binary(b"\x1b[1;1R".to_vec().into()))
                        .await
                        .unwrap();
                }
                seen.push_str(&text);
                if seen.contains(want) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(r.is_ok(), "no {want:?} within 15 s; saw {seen:?}");
    seen
}

async fn typed(ws: &mut Ws, s: &str) {
    ws.send(Message::Binary(s.as_bytes().to_vec().into()))
        .await
        .unwrap();
}

/// A terminal on both paths: its size, a resize, Ctrl-C, and the exit code.
async fn terminals(d: &Daemon) {
    for pool in ["ga", "ge"] {
        eprintln!("terminal through {pool}");
        let (_, id) = lease_of(d, pool).await;
        let mut ws = open(
            d,
            &id,
            json!({"cmd": ["sh"], "tty": {"rows": 30, "cols": 100}}),
        )
        .await;
        typed(&mut ws, "stty size; echo $((6*7))\n").await;
        let seen = until(&mut ws, "42").await;
        assert!(seen.contains("30 100"), "{pool}: {seen:?}");
        ws.send(Message::Text(
            json!({"resize": {"rows": 40, "cols": 120}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        typed(&mut ws, "stty size\n").await;
        until(&mut ws, "40 120").await;
        typed(&mut ws, "sleep 100\n").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws.send(Message::Text(json!({"signal": "INT"}).to_string().into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        typed(&mut ws, "echo after-$?\n").await;
        until(&mut ws, "after-130").await;
        typed(&mut ws, "exit 3\n").await;
        let end = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(m) = ws.next().await {
                if let Message::Text(t) = m.unwrap() {
                    return serde_json::from_str::<Value>(&t).unwrap();
                }
            }
            panic!("{pool}: closed without an exit");
        })
        .await
        .expect("an exit within 15 s");
        assert_eq!(end["exit_code"], 3, "{pool}: {end}");
        release(d, &id).await;
    }
}

async fn count(d: &Daemon, lease: &str, pattern: &str) -> usize {
    let ps = d.exec(lease, json!({"cmd": ["ps", "-o", "args"]})).await;
    ps["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| l.contains(pattern))
        .count()
}

/// A timed-out exec's processes are killed, on both paths.
async fn exec_kill(d: &Daemon) {
    for pool in ["ga", "ge"] {
        eprintln!("exec kill through {pool}");
        let (_, id) = lease_of(d, pool).await;
        let out = d
            .exec(
                &id,
                json!({"cmd": ["sh", "-c", "sleep 30 & sleep 30"], "timeout_ms": 1000}),
            )
            .await;
        assert_eq!(out["timed_out"], true, "{pool}: {out}");
        eventually(
            Duration::from_secs(10),
            "the timed-out exec's processes killed",
            || async { (count(d, &id, "sleep 30").await == 0).then_some(()) },
        )
        .await;
        release(d, &id).await;
    }
}

async fn release_for_reuse(d: &Daemon, lease: &str) -> Value {
    let (st, _, outcome) = d
        .call(
            Method::DELETE,
            &format!("/v1/leases/{lease}?reuse=true"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{outcome}");
    outcome
}

/// Reuse with a verified reset, through the agent: a spy loop, `/dev/shm` and gVisor's `/tmp`
/// (a tmpfs there) never reach the next client; a file outside the reset destroys the
/// container. Through the engine's exec the scrub cannot read SysV IPC under gVisor (no
/// `/proc/sysvipc`, and a shell has no other way to ask), so such a container is never reused.
async fn reuse_scrub(d: &Daemon) {
    let (_, id) = lease_of(d, "ge").await;
    let outcome = release_for_reuse(d, &id).await;
    assert_eq!(outcome["reused"], false, "{outcome}");
    assert!(
        outcome["reason"].as_str().unwrap().contains("baseline"),
        "{outcome}"
    );
    assert!(d.log().contains("/proc/sysvipc/shm"), "the log says why");
    for pool in ["ga"] {
        let (one, id1) = lease_of(d, pool).await;
        let out = d
            .exec(
                &id1,
                json!({"cmd": ["sh", "-c", "(while true; do ls /tmp >> /dev/shm/spy; sleep 1; done) >/dev/null 2>&1 & echo x > /dev/shm/note; echo t > /tmp/t; echo w > /work/w; echo started"]}),
            )
            .await;
        assert_eq!(out["stdout"], "started\n", "{pool}: {out}");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let outcome = release_for_reuse(d, &id1).await;
        assert_eq!(outcome["reused"], true, "{pool}: {outcome}\n{}", d.log());
        let two = eventually(
            Duration::from_secs(20),
            "the reused container lent again",
            || async {
                let l = d.acquire(json!({"pool": pool})).await;
                if l["container_id"] == one["container_id"] {
                    Some(l)
                } else {
                    release(d, l["lease_id"].as_str().unwrap()).await;
                    None
                }
            },
        )
        .await;
        let id2 = two["lease_id"].as_str().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            count(d, id2, "sleep 1").await,
            0,
            "{pool}: the loop survived"
        );
        for place in ["/dev/shm", "/tmp", "/work"] {
            let ls = d.exec(id2, json!({"cmd": ["ls", "-A", place]})).await;
            assert_eq!(ls["stdout"], "", "{pool}: {place} survived the reuse: {ls}");
        }
        d.exec(
            id2,
            json!({"cmd": ["sh", "-c", "echo secret > /root/.history"]}),
        )
        .await;
        let outcome = release_for_reuse(d, id2).await;
        assert_eq!(outcome["reused"], false, "{pool}: {outcome}");
        assert!(
            outcome["reason"]
                .as_str()
                .unwrap()
                .contains("/root/.history"),
            "{pool}: {outcome}"
        );
    }
}

/// A ready container that fails its probe is replaced, on e1.
async fn health(d: &Daemon, engines: &ExtraEngines) {
    let before = d.pool("gh").await["counters"]["unhealthy_total"]
        .as_u64()
        .unwrap();
    let out = engines.docker(
        "e1",
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=warmpool.host={}", d.host_id),
            "--filter",
            "label=warmpool.pool=gh",
        ],
    );
    let victim = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!victim.is_empty() && !victim.contains('\n'), "{victim:?}");
    let touched = engines.docker("e1", &["exec", &victim, "touch", "/tmp/sick"]);
    assert!(touched.status.success(), "{touched:?}");
    d.wait_pool("gh", Duration::from_secs(30), |p| {
        p["counters"]["unhealthy_total"].as_u64() == Some(before + 1) && p["counts"]["ready"] == 1
    })
    .await;
    let l = d.acquire(json!({"pool": "gh"})).await;
    assert!(!l["container_id"].as_str().unwrap().starts_with(&victim));
    release(d, l["lease_id"].as_str().unwrap()).await;
}

/// `kill -9` with a lease held: the lease answers exec again through its agent, with its
/// files. Then SIGTERM (with `keep_on_shutdown`) and a new start: the ready containers are
/// re-adopted, not made again, and the lease is still there.
async fn restart_readopts(d: &mut Daemon, engines: &ExtraEngines) {
    d.warm_up("ga").await;
    let (held, id) = lease_of(d, "ga").await;
    let held_c = held["container_id"].as_str().unwrap().to_string();
    d.exec(&id, json!({"cmd": ["sh", "-c", "echo kept > /work/kept"]}))
        .await;
    d.kill9();
    d.restart().await;
    assert_eq!(lease_kept(d, &id).await["stdout"], "kept\n");

    // At rest two ready containers per pool are lendable (a restart never re-adopts those:
    // they may have reached a client whose lease was not committed); the others are kept.
    d.wait_pool("ga", Duration::from_secs(30), |p| {
        p["counts"]["ready"] == 4 && p["counts"]["creating"] == 0
    })
    .await;
    let (st, took) = d.terminate(Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    let kept = ready_of(engines, &d.host_id, &held_c);
    assert!(!kept.is_empty(), "nothing unlent was kept");
    d.restart().await;
    let p = d.warm_up("ga").await;
    assert_eq!(
        p["counters"]["adopted_total"].as_u64(),
        Some(kept.len() as u64),
        "{p:#}"
    );
    let now = ready_of(engines, &d.host_id, &held_c);
    for c in &kept {
        assert!(
            now.contains(c),
            "{c} was not taken back: {kept:?} → {now:?}"
        );
    }
    assert_eq!(lease_kept(d, &id).await["stdout"], "kept\n");
    eprintln!(
        "SIGTERM with keep_on_shutdown took {took:.2?}; {} ready kept and re-adopted",
        kept.len()
    );
    release(d, &id).await;
}

/// Exec in lease `id` until it answers (its engine re-attached), reading the file it kept.
async fn lease_kept(d: &Daemon, id: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        "the lease answers again",
        || async {
            let (st, _, v) = d
                .call(
                    Method::POST,
                    &format!("/v1/leases/{id}/exec"),
                    Some(json!({"cmd": ["cat", "/work/kept"]})),
                )
                .await;
            (st == StatusCode::OK).then_some(v)
        },
    )
    .await
}

/// The containers of pool `ga` on e1 but the leased one `held`: its ready ones.
fn ready_of(engines: &ExtraEngines, host: &str, held: &str) -> Vec<String> {
    let out = engines.docker(
        "e1",
        &[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=warmpool.host={host}"),
            "--filter",
            "label=warmpool.pool=ga",
        ],
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|c| *c != held)
        .map(str::to_string)
        .collect();
    v.sort();
    v
}
