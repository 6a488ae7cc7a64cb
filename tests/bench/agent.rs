//! Section 11, the agent inside every sandbox (issue 22), side by side in one run on one
//! engine: exec of `true` (and of `python3 -c 'print(1)'` in the Python image) through the
//! agent, through engine exec (`exec: engine`) and as a raw Engine-API exec, beside the null
//! HTTP route (`GET /healthz`); the round trip of a line through a streamed command (stdin in,
//! stdout out, over the WebSocket exec); a terminal keystroke's echo; a warm acquire with
//! 4 env entries, a secret and 2 small files beside a plain one; and the agent's cost: its RSS
//! in each container, its binary's size, and what it adds to a create (warm-up of 4 from
//! empty, agent pool against engine pool).

use std::time::{Duration, Instant};

use bollard::Docker;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use warmpool_e2e::{Daemon, IMAGE, pool_yaml};

use crate::raw::{raw_create_start, raw_exec, raw_remove_all};
use crate::{Report, Stats, row, stats};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn pool(name: &str, image: &str, exec: &str) -> String {
    pool_yaml(
        name,
        &format!("min_ready: 2\nmax_ready: 2\nmax_total: 4\nexec: {exec}\nlease: {{ default_ttl: 1h, max_ttl: 1h }}"),
    )
    .replace(IMAGE, image)
}

async fn lease(d: &Daemon, pool: &str) -> String {
    let l = d.acquire(json!({"pool": pool})).await;
    l["lease_id"].as_str().unwrap().to_string()
}

/// `n` buffered execs of `cmd` over HTTP, their latencies (client side).
async fn http_execs(d: &Daemon, lease: &str, cmd: &[&str], want: &str, n: usize) -> Stats {
    let mut v = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let out = d.exec(lease, json!({"cmd": cmd})).await;
        v.push(ms(t));
        assert_eq!(out["stdout"], want, "{out}");
    }
    stats(v)
}

async fn ws(d: &Daemon, lease: &str, route: &str, start: Value) -> Ws {
    let url = format!(
        "{}/v1/leases/{lease}/{route}",
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

/// Send `input`, then read until `want` has come back; the milliseconds it took.
async fn round_trip(ws: &mut Ws, input: &[u8], want: &[u8]) -> f64 {
    let t = Instant::now();
    ws.send(Message::Binary(input.to_vec().into()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            if let Message::Binary(b) = m.unwrap() {
                seen.extend_from_slice(&b[1..]);
                if seen.windows(want.len()).any(|w| w == want) {
                    return;
                }
            }
        }
        panic!("the session ended before {want:?} came back");
    })
    .await
    .expect("the echo within 10 s");
    ms(t)
}

/// The PID on the host of the container's PID 1 (the agent), and its RSS in KiB.
async fn agent_rss_kib(docker: &Docker, container: &str) -> u64 {
    let pid = docker
        .inspect_container(container, None)
        .await
        .ok()
        .and_then(|c| c.state?.pid)
        .unwrap_or(0);
    crate::rss_kib(pid as u32)
}

/// Seconds from a daemon's start until `pool` holds 4 ready, from empty.
async fn warm_up_4(image: &str, exec: &str) -> f64 {
    let p = pool_yaml(
        "w",
        &format!(
            "min_ready: 4\nmax_ready: 4\nmax_total: 4\nexec: {exec}\nsizing: {{ policy: fixed }}"
        ),
    )
    .replace(IMAGE, image);
    let t = Instant::now();
    let d = Daemon::start(&[p]).await;
    d.wait_pool("w", Duration::from_secs(120), |p| p["counts"]["ready"] == 4)
        .await;
    let s = t.elapsed().as_secs_f64();
    drop(d);
    s
}

pub async fn agent(docker: &Docker, quick: bool, py: Option<&str>, r: &mut Report) {
    let n = if quick { 20 } else { 300 };
    r.section("11. The agent: exec, streaming, terminal, lease set-up, footprint");
    r.line("| measure | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|");

    // The raw reference: Engine-API exec in an already-running container.
    let (raw_id, _) = raw_create_start(docker, IMAGE).await;
    let mut raw = Vec::new();
    for _ in 0..n.min(100) {
        raw.push(raw_exec(docker, &raw_id, &["true"]).await.1);
    }
    raw_remove_all(docker).await;
    let raw = stats(raw);

    let d = Daemon::start(&[pool("ag", IMAGE, "agent"), pool("en", IMAGE, "engine")]).await;
    d.warm_up("ag").await;
    d.warm_up("en").await;
    let (la, le) = (lease(&d, "ag").await, lease(&d, "en").await);
    // The null route: what any HTTP answer costs this client.
    let mut null = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let (st, _, _) = d.call(Method::GET, "/healthz", None).await;
        assert!(st.is_success());
        null.push(ms(t));
    }
    let null = stats(null);
    let agent_true = http_execs(&d, &la, &["true"], "", n).await;
    let engine_true = http_execs(&d, &le, &["true"], "", n.min(100)).await;
    r.line(&row(
        "null HTTP route (`GET /healthz`)",
        &null,
        "ms",
        "the floor of any call",
    ));
    r.line(&row(
        "exec `true`, agent",
        &agent_true,
        "ms",
        &format!(
            "{:.1}× the null route; {:.3}× engine exec; {:.3}× raw exec",
            agent_true.p50 / null.p50,
            agent_true.p50 / engine_true.p50,
            agent_true.p50 / raw.p50
        ),
    ));
    r.line(&row(
        "exec `true`, engine exec (`exec: engine`)",
        &engine_true,
        "ms",
        &format!("{:.2}× raw exec", engine_true.p50 / raw.p50),
    ));
    r.line(&row(
        "exec `true`, raw Engine-API exec",
        &raw,
        "ms",
        "create, start, inspect",
    ));
    r.record("agent_exec_true_ms_p50", agent_true.p50);
    r.record("engine_exec_true_ms_p50", engine_true.p50);
    r.record("raw_exec_true_ms_p50", raw.p50);
    r.record("null_route_ms_p50", null.p50);

    // A line through `cat`, streamed both ways (WebSocket exec, no terminal): the time from
    // writing to the command until its output is back is what a streamed client waits for
    // a chunk its command wrote.
    let mut s = ws(&d, &la, "exec/ws", json!({"cmd": ["cat"]})).await;
    let mut rt = Vec::new();
    for i in 0..n {
        let line = format!("line-{i}\n");
        rt.push(round_trip(&mut s, line.as_bytes(), line.as_bytes()).await);
    }
    drop(s);
    let rt = stats(rt);
    r.line(&row(
        "streamed: a line into `cat` and back out",
        &rt,
        "ms",
        &format!("{:.1}× the null route", rt.p50 / null.p50),
    ));
    r.record("agent_stream_round_trip_ms_p50", rt.p50);
    // First byte of a streamed exec: request sent until the first stdout chunk of a command
    // that writes at once and then keeps running.
    let mut fb = Vec::new();
    for _ in 0..n.min(100) {
        let t = Instant::now();
        let mut resp = reqwest::Client::new()
            .post(format!("{}/v1/leases/{la}/exec/stream", d.url))
            .json(&json!({"cmd": ["sh", "-c", "echo x; sleep 0.2"]}))
            .send()
            .await
            .unwrap();
        let mut first = None;
        while let Some(c) = resp.chunk().await.unwrap() {
            if first.is_none() && String::from_utf8_lossy(&c).contains("\"stdout\"") {
                first = Some(ms(t));
            }
        }
        fb.push(first.expect("a stdout chunk"));
    }
    let fb = stats(fb);
    r.line(&row(
        "streamed exec: request to first stdout chunk",
        &fb,
        "ms",
        "includes starting `sh`; the command runs on 200 ms more",
    ));
    r.record("agent_stream_first_byte_ms_p50", fb.p50);

    // A keystroke's echo through a terminal (`cat` under a pty: the line discipline echoes).
    let mut t = ws(&d, &la, "pty", json!({"cmd": ["cat"]})).await;
    let mut echo = Vec::new();
    for i in 0..n {
        let c = [b'a' + (i % 26) as u8];
        echo.push(round_trip(&mut t, &c, &c).await);
    }
    drop(t);
    let echo = stats(echo);
    r.line(&row(
        "terminal: a keystroke's echo",
        &echo,
        "ms",
        &format!("{:.1}× the null route", echo.p50 / null.p50),
    ));
    r.record("agent_pty_echo_ms_p50", echo.p50);

    // Warm acquire with a lease's own set-up, beside a plain one; each released at once.
    let setup = json!({
        "env": {"A": "1", "B": "2", "C": "3", "D": "4"},
        "secrets": {"TOKEN": "bench-secret"},
        "files": {"/tmp/a.txt": "first small file", "/tmp/b.txt": "second small file"},
    });
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    for i in 0..n.min(100) {
        for (setup_it, into) in [(false, &mut plain), (true, &mut with)] {
            // On a quiet engine: the last lease's removal and its replacement's create done,
            // as for the other rows (the set-up goes through the engine's attach relay, which
            // a removal under way slows; a plain acquire never reaches the engine).
            d.wait_pool("ag", Duration::from_secs(60), |p| {
                p["counts"]["ready"] == 2
                    && p["counts"]["creating"] == 0
                    && p["counts"]["removing"] == 0
            })
            .await;
            let mut body = json!({"pool": "ag"});
            if setup_it {
                for (k, v) in setup.as_object().unwrap() {
                    body[k] = v.clone();
                }
            }
            let t = Instant::now();
            let (st, _, l) = d.call(Method::POST, "/v1/leases", Some(body)).await;
            into.push(ms(t));
            assert!(st.is_success(), "acquire {i}: {l}");
            let id = l["lease_id"].as_str().unwrap();
            d.call(Method::DELETE, &format!("/v1/leases/{id}"), None)
                .await;
        }
    }
    let (plain, with) = (stats(plain), stats(with));
    r.line(&row("warm acquire, plain", &plain, "ms", "agent pool"));
    r.line(&row(
        "warm acquire with 4 env, 1 secret, 2 files",
        &with,
        "ms",
        &format!("+{:.3} ms at the median", with.p50 - plain.p50),
    ));
    r.record("acquire_plain_ms_p50", plain.p50);
    r.record("acquire_setup_ms_p50", with.p50);

    // The agent's own cost: RSS in the containers of the agent pool, the binary's size.
    let mut rss = Vec::new();
    for c in warmpool_e2e::containers_of(&d.host_id) {
        let pool = docker
            .inspect_container(&c, None)
            .await
            .ok()
            .and_then(|i| i.config?.labels?.get("warmpool.pool").cloned());
        if pool.as_deref() == Some("ag") {
            rss.push(agent_rss_kib(docker, &c).await as f64 / 1024.0);
        }
    }
    let rss = stats(rss);
    r.line(&row(
        "agent RSS per container",
        &rss,
        "MiB",
        "PID 1 of each agent-pool container",
    ));
    r.record("agent_rss_mib_p50", rss.p50);
    drop(d);

    // Python: the same exec of a real interpreter.
    if let Some(py) = py {
        let (raw_id, _) = raw_create_start(docker, py).await;
        let mut raw = Vec::new();
        let cmd = ["python3", "-c", "print(1)"];
        for _ in 0..n.min(50) {
            raw.push(raw_exec(docker, &raw_id, &cmd).await.1);
        }
        raw_remove_all(docker).await;
        let raw = stats(raw);
        let d = Daemon::start(&[pool("pa", py, "agent"), pool("pe", py, "engine")]).await;
        d.warm_up("pa").await;
        d.warm_up("pe").await;
        let (la, le) = (lease(&d, "pa").await, lease(&d, "pe").await);
        let a = http_execs(&d, &la, &cmd, "1\n", n.min(50)).await;
        let e = http_execs(&d, &le, &cmd, "1\n", n.min(50)).await;
        r.line(&row(
            "exec `python3 -c 'print(1)'`, agent",
            &a,
            "ms",
            &format!(
                "{:.3}× engine exec; {:.3}× raw exec",
                a.p50 / e.p50,
                a.p50 / raw.p50
            ),
        ));
        r.line(&row(
            "exec `python3 -c 'print(1)'`, engine exec",
            &e,
            "ms",
            "",
        ));
        r.line(&row(
            "exec `python3 -c 'print(1)'`, raw Engine-API exec",
            &raw,
            "ms",
            "",
        ));
        r.record("agent_exec_python_ms_p50", a.p50);
        r.record("engine_exec_python_ms_p50", e.p50);
        r.record("raw_exec_python_ms_p50", raw.p50);
    } else {
        r.not_measured(
            "agent python exec",
            "warmpool-test/python:latest is missing; build it with tests/images/build-python.sh",
        );
    }

    // What the agent adds to a create: warm-up of 4 from empty, agent against engine pool.
    let reps = if quick { 1 } else { 4 };
    let (mut wa, mut we) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        wa.push(warm_up_4(IMAGE, "agent").await);
        we.push(warm_up_4(IMAGE, "engine").await);
    }
    let (wa, we) = (stats(wa), stats(we));
    r.line(&row(
        "start to 4 ready, agent pool",
        &wa,
        "s",
        &format!("{:.3}× the engine pool", wa.p50 / we.p50),
    ));
    r.line(&row(
        "start to 4 ready, engine pool",
        &we,
        "s",
        "daemon start included in both",
    ));
    r.record("warm_up4_agent_s_p50", wa.p50);
    r.record("warm_up4_engine_s_p50", we.p50);

    let bin = warmpool_e2e::repo_root()
        .join("target/agent/x86_64-unknown-linux-gnu/release/warmpool-agent");
    match std::fs::metadata(&bin) {
        Ok(m) => {
            r.line(&format!(
                "\nAgent binary: {:.2} MiB ({}), static.",
                m.len() as f64 / (1024.0 * 1024.0),
                bin.display()
            ));
            r.record("agent_binary_bytes", m.len() as f64);
        }
        Err(e) => r.not_measured("agent binary size", &format!("{}: {e}", bin.display())),
    }
}
