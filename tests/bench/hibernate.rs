//! Section 14: lease hibernation (issue 25). On an engine of the bench's own running gVisor's
//! `runsc` as its default runtime in experimental mode, per image (busybox, and Python when
//! its image is built): a leased container with a process holding some memory (a shell loop;
//! for Python, an interpreter holding 64 MiB of its own) is suspended and resumed through the
//! daemon's API, several times. Measured:
//!
//! - suspend and resume time, as the client sees them (the HTTP call);
//! - the checkpoint's size on the engine's disk (`containers/<id>/checkpoints/warmpool` under
//!   the engine's data root), read while suspended;
//! - the memory freed: the resident memory of every host process of the container (runsc's
//!   sandbox and gofer, whose command lines carry the container's ID) before the suspend, and
//!   after it (none is left: the sandbox exits).

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, ExtraEngines, IMAGE, Setup, pool_yaml};

use crate::{Report, rss_kib, stats};

/// Resident memory (KiB) of every host process whose command line names `cid`, and their
/// names.
fn rss_of(cid: &str) -> (u64, Vec<String>) {
    let mut kib = 0;
    let mut names = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(cid) {
            let k = rss_kib(pid);
            kib += k;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            names.push(format!("{} {k} KiB", comm.trim()));
        }
    }
    (kib, names)
}

/// Size in KiB of everything under `p`.
fn du_kib(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            n += du_kib(&e.path());
        } else {
            n += m.len();
        }
    }
    n / 1024 + u64::from(n % 1024 > 0)
}

pub async fn hibernate(quick: bool, python: Option<&str>, r: &mut Report) {
    r.section("14. Lease hibernation: suspend and resume under runsc (issue 25)");
    r.line(
        "One engine of the bench's own (`engines.sh up … --runsc all --experimental \
         --default-runtime runsc`), the daemon on it over TCP; each cycle suspends and resumes \
         one lease through the API. Memory: resident memory of the container's host processes \
         (runsc sandbox and gofer) before the suspend, and after it.",
    );
    r.line(
        "| image | cycles | suspend median | suspend p90 | resume median | resume p90 | checkpoint on disk | memory before | memory after suspend |\n|---|---|---|---|---|---|---|---|---|",
    );
    let engines = ExtraEngines::up_with(
        1,
        &[
            "--runsc",
            "all",
            "--experimental",
            "--default-runtime",
            "runsc",
        ],
    );
    let mut images = vec![("busybox", IMAGE)];
    if let Some(py) = python {
        images.push(("python", py));
    }
    for (_, image) in &images {
        engines.load("e1", image);
    }
    let pools: Vec<String> = images
        .iter()
        .map(|(name, image)| {
            pool_yaml(name, "min_ready: 1\nmax_ready: 1\nmax_total: 3")
                .replace(&format!("image: {IMAGE}"), &format!("image: {image}"))
        })
        .collect();
    let server = engines.docker_yaml(|_| "{}".into(), None);
    let d = Daemon::start_setup(
        &pools,
        Setup {
            server: &server,
            ..Setup::default()
        },
    )
    .await;
    let cycles = if quick { 2 } else { 10 };
    for (name, _) in &images {
        d.warm_up(name).await;
        let lease = d.acquire(json!({"pool": name, "ttl_s": 3600})).await;
        let l = lease["lease_id"].as_str().unwrap().to_string();
        let cid = lease["container_id"].as_str().unwrap().to_string();
        let load = if *name == "python" {
            "(python3 -c 'import time; b = bytearray(64 << 20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(1e9)' >/dev/null 2>&1 &) ; sleep 2; echo ok"
        } else {
            "(i=0; while true; do i=$((i+1)); sleep 0.1; done >/dev/null 2>&1 &) ; echo ok"
        };
        d.exec(&l, json!({"cmd": ["sh", "-c", load], "timeout_ms": 30_000}))
            .await;
        let (mut sus, mut res) = (Vec::new(), Vec::new());
        let (mut disk, mut before, mut after) = (0, 0, 0);
        let (mut before_names, mut after_names) = (Vec::new(), Vec::new());
        for _ in 0..cycles {
            let (b, names) = rss_of(&cid);
            before = b;
            before_names = names;
            let t = Instant::now();
            let (st, _, v) = d
                .call(Method::POST, &format!("/v1/leases/{l}/suspend"), None)
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            sus.push(t.elapsed().as_secs_f64() * 1000.0);
            let (a, names) = rss_of(&cid);
            after = a;
            after_names = names;
            disk = du_kib(
                &engines
                    .dir()
                    .join("e1/data/containers")
                    .join(&cid)
                    .join("checkpoints/warmpool"),
            );
            let t = Instant::now();
            let (st, _, v) = d
                .call(Method::POST, &format!("/v1/leases/{l}/resume"), None)
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            res.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (s, rs) = (stats(sus), stats(res));
        r.line(&format!(
            "| {name} | {cycles} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {disk} KiB | {before} KiB | {after} KiB |",
            s.p50, s.p90, rs.p50, rs.p90
        ));
        r.line(&format!(
            "{name}: before the suspend: {}; after it: {}",
            before_names.join(", "),
            if after_names.is_empty() {
                "none".to_string()
            } else {
                after_names.join(", ")
            }
        ));
        r.record(&format!("hibernate_{name}_suspend_ms_p50"), s.p50);
        r.record(&format!("hibernate_{name}_resume_ms_p50"), rs.p50);
        r.record(&format!("hibernate_{name}_checkpoint_kib"), disk as f64);
        r.record(&format!("hibernate_{name}_rss_before_kib"), before as f64);
        r.record(&format!("hibernate_{name}_rss_after_kib"), after as f64);
    }
}
