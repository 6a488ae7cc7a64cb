//! Restart without loss against the real engine: `kill -9` the daemon while clients hold leases
//! and keep acquiring, start it again on the same state, and every committed lease still answers
//! exec with its files and its expiry; every container on the engine is accounted for; the pool
//! reaches its target by re-adopting what it could rather than recreating it; and no container
//! is ever handed out twice: every acquire's container, before the kill and after it, is one no
//! acquire got before (the pool does not reuse).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_core::USED_SUFFIX;
use warmpool_core::lease_store::LeaseStore;
use warmpool_e2e::{Daemon, Setup, containers_of, pool_yaml};

const PERSIST: &str = "  state_dir: {STATE_DIR}\n  commit_interval: 20ms\n";
/// One removal at a time, so released containers wait their turn and some are still on the
/// engine, unremoved, when the daemon dies: a restart must not lend them again.
const LIMITS: &str =
    "  max_containers: 20\n  max_concurrent_creates: 4\n  max_concurrent_removes: 1\n";

/// Every container an acquire was answered with, over every incarnation of the daemon.
#[derive(Clone, Default)]
struct HandedOut(Arc<Mutex<Vec<String>>>);

impl HandedOut {
    fn record(&self, lease: &Value) {
        let cid = lease["container_id"].as_str().expect("a container id");
        self.0.lock().unwrap().push(cid.to_string());
    }

    /// Fails naming every container handed out more than once.
    fn assert_each_once(&self, log: &str) {
        let all = self.0.lock().unwrap().clone();
        let mut seen = BTreeSet::new();
        let twice: Vec<&String> = all.iter().filter(|c| !seen.insert(*c)).collect();
        assert!(
            twice.is_empty(),
            "handed out twice: {twice:?} (of {} acquires)\nlog:\n{log}",
            all.len()
        );
    }
}

/// The state store's commits so far (`warmpool_store_commits_total`).
async fn store_commits(d: &Daemon) -> u64 {
    let (_, _, metrics) = d.call(Method::GET, "/metrics", None).await;
    metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("warmpool_store_commits_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The containers a restart may re-adopt, read while the daemon cannot change its store (it is
/// stopped or dead): running on the engine, never marked as leased, neither in the store's
/// lendable set nor a persisted lease's. The store file is read from a copy, since the daemon
/// holds its lock; the copy holds the last commit, as a restart would find it.
fn readoptable(d: &Daemon) -> BTreeSet<String> {
    let state = d.dir.path().join("state");
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        state.join(warmpool_store::FILE_NAME),
        copy.path().join(warmpool_store::FILE_NAME),
    )
    .unwrap();
    let persisted = warmpool_store::RedbStore::open(copy.path())
        .unwrap()
        .load()
        .unwrap();
    let leased: BTreeSet<&str> = persisted
        .leases
        .values()
        .map(|r| r.container_id.as_str())
        .collect();
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=warmpool.host={}", d.host_id),
            "--format",
            "{{.ID}} {{.Names}} {{.State}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (id, name, state) = (f.next()?, f.next()?, f.next()?);
            let fresh = state == "running"
                && !name.ends_with(USED_SUFFIX)
                && !persisted.lendable.contains_key(id)
                && !leased.contains(id);
            fresh.then(|| id.to_string())
        })
        .collect()
}

async fn lease(d: &Daemon, id: &str) -> (StatusCode, Value) {
    let (st, _, v) = d.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
    (st, v)
}

#[tokio::test]
async fn kill_9_keeps_leases_and_accounts_for_every_container() {
    let mut d = Daemon::start_setup(
        &[pool_yaml(
            "k9",
            "min_ready: 6\nmax_ready: 6\nmax_total: 14\nworkdir: /work\nlease: { default_ttl: 600s, max_ttl: 3600s }",
        )],
        Setup {
            server: PERSIST,
            limits: LIMITS,
            ..Setup::default()
        },
    )
    .await;
    d.warm_up("k9").await;
    let handed_out = HandedOut::default();

    // Two sessions with files in them; one renewed to a longer expiry.
    let mut held = Vec::new();
    for owner in ["alice", "bob"] {
        let l = d.acquire(json!({"pool": "k9", "owner": owner})).await;
        handed_out.record(&l);
        let id = l["lease_id"].as_str().unwrap().to_string();
        let out = d
            .exec(
                &id,
                json!({"cmd": ["sh", "-c", format!("echo {owner} > /work/who")]}),
            )
            .await;
        assert_eq!(out["exit_code"], 0, "{out}");
        held.push((id, owner));
    }
    let (st, _, renewed) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{}/renew", held[1].0),
            Some(json!({"ttl_s": 1800})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{renewed}");
    let mut before = Vec::new();
    for (id, _) in &held {
        before.push(lease(&d, id).await.1);
    }

    // Clients keep acquiring and releasing while the daemon dies.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (url, stop, handed_out) = (d.url.clone(), stop.clone(), handed_out.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u32;
            let mut open: Option<String> = None;
            while !stop.load(Ordering::Acquire) {
                // A steady client, not a flood: the pool stays warm, so some ready containers
                // were never lendable and can be re-adopted.
                tokio::time::sleep(Duration::from_millis(150)).await;
                let Ok(r) = http
                    .post(format!("{url}/v1/leases"))
                    .json(&json!({"pool": "k9", "owner": "churn", "wait_ms": 500}))
                    .send()
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                if r.status() == StatusCode::CREATED {
                    n += 1;
                    let Ok(v) = r.json::<Value>().await else {
                        continue; // the answer was cut off by the kill: never handed out
                    };
                    handed_out.record(&v);
                    // Each lease stays open until the next one is held, so one is always in
                    // flight, committed or not, when the daemon dies.
                    let new = v["lease_id"].as_str().map(str::to_string);
                    if let Some(id) = std::mem::replace(&mut open, new) {
                        let _ = http.delete(format!("{url}/v1/leases/{id}")).send().await;
                    }
                }
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A burst just before the kill: three containers leased and released, queued for removal
    // behind one another (and the churn's), so still on the engine when the daemon dies, while
    // the ready ones they came from are still being replaced, so a restart would have room to
    // re-adopt them.
    let (mut burst, mut burst_containers) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let l = d.acquire(json!({"pool": "k9", "owner": "burst"})).await;
        handed_out.record(&l);
        burst.push(l["lease_id"].as_str().unwrap().to_string());
        burst_containers.push(l["container_id"].as_str().unwrap().to_string());
    }
    for id in &burst {
        let (st, _, _) = d
            .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    // The releases are committed before the kill: a release younger than a commit would come
    // back as a lease after the restart (on a container the dead daemon's removal may still
    // take away), which is not what this test is about. A commit that began after the releases
    // has ended once two more commits are counted (the churn keeps them coming).
    let commits = store_commits(&d).await;
    let t0 = std::time::Instant::now();
    while store_commits(&d).await < commits + 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no store commit after the releases"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Kill at a moment the restart has something to re-adopt: a running container the store
    // neither holds as lendable nor as a lease's, and that was never marked as leased. Such a
    // container lives only between its start and the next commit, so the daemon is frozen
    // (SIGSTOP: no further commit can land) and the store and the engine are read; if nothing
    // re-adoptable is there, it runs on and is frozen again a moment later.
    let t0 = std::time::Instant::now();
    loop {
        d.signal("STOP");
        if !readoptable(&d).is_empty() {
            break;
        }
        d.signal("CONT");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "in 30 s the store never showed a running, never-lendable container\nlog:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    d.kill9();
    stop.store(true, Ordering::Release);
    let churned = client.await.unwrap();
    assert!(churned > 0, "the churn client acquired nothing");
    // Starts the dead daemon asked for may still land; then the engine holds what the restart
    // will find.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let readoptable = readoptable(&d);
    let on_engine_at_kill: BTreeSet<String> = containers_of(&d.host_id).into_iter().collect();
    let released_left = burst_containers
        .iter()
        .filter(|c| on_engine_at_kill.contains(*c))
        .count();
    assert!(
        released_left > 0,
        "every released container was gone before the kill: the restart had nothing to refuse"
    );

    d.restart().await;

    // Every committed lease answers, with its container, owner, expiry and files.
    for ((id, owner), old) in held.iter().zip(&before) {
        let (st, now) = lease(&d, id).await;
        assert_eq!(
            st,
            StatusCode::OK,
            "lease {id} lost: {now}\nlog:\n{}",
            d.log()
        );
        assert_eq!(now["container_id"], old["container_id"]);
        assert_eq!(now["owner"], *owner);
        assert_eq!(
            now["expires_at"].as_str().unwrap()[..19],
            old["expires_at"].as_str().unwrap()[..19],
            "expiry kept to the second"
        );
        let out = d.exec(id, json!({"cmd": ["cat", "/work/who"]})).await;
        assert_eq!(out["stdout"].as_str().unwrap().trim(), *owner, "{out}");
    }

    // The pool reaches its target; then every container on the engine is one warmpool
    // accounts for, as ready or leased.
    let p = d
        .wait_pool("k9", Duration::from_secs(60), |p| {
            p["counts"]["ready"] == 6
                && p["counts"]["creating"] == 0
                && p["counts"]["removing"] == 0
        })
        .await;
    let (_, _, leases) = d.call(Method::GET, "/v1/leases", None).await;
    let leases = leases["leases"].as_array().cloned().unwrap_or_default();
    let leased: BTreeSet<String> = leases
        .iter()
        .map(|l| l["container_id"].as_str().unwrap().to_string())
        .collect();
    let on_engine: BTreeSet<String> = containers_of(&d.host_id).into_iter().collect();
    let counted = p["counts"]["ready"].as_u64().unwrap() + p["counts"]["leased"].as_u64().unwrap();
    assert_eq!(
        on_engine.len() as u64,
        counted,
        "engine has {on_engine:?}; daemon counts {p:#}"
    );
    assert!(leased.is_subset(&on_engine));
    assert_eq!(
        p["counts"]["leased"].as_u64().unwrap() as usize,
        leases.len()
    );

    // Re-adopted, not recreated: some ready containers are the very ones from before the kill,
    // and the daemon created only what it had to.
    let adopted = p["counters"]["adopted_total"].as_u64().unwrap();
    let created = p["counters"]["creates_total"].as_u64().unwrap();
    let survivors = on_engine.intersection(&on_engine_at_kill).count() as u64;
    assert_eq!(
        adopted,
        readoptable.len().min(6) as u64,
        "re-adoptable at the kill: {readoptable:?}; {p:#}\nlog:\n{}",
        d.log()
    );
    assert_eq!(adopted + created, 6, "{p:#}");
    assert_eq!(survivors, adopted + leased.len() as u64);
    eprintln!(
        "kill -9: {churned} churn acquires, {released_left} of 3 released containers left on the engine; after restart {} leases re-attached, {adopted} ready re-adopted, {created} created",
        leases.len()
    );

    // The same figures reach the metrics, with the store's commits.
    let (_, _, metrics) = d.call(Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains(&format!(
            "warmpool_containers_adopted_total{{pool=\"k9\"}} {adopted}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmpool_store_commits_total"),
        "{metrics}"
    );

    // Acquire more than the pool holds ready, all held at once, so every re-adopted container
    // is handed out: none of them, nor any other, is one an acquire got before.
    let mut after = Vec::new();
    for _ in 0..10 {
        let l = d.acquire(json!({"pool": "k9", "wait_ms": 5000})).await;
        handed_out.record(&l);
        let cid = l["container_id"].as_str().unwrap();
        assert!(
            !leased.contains(cid),
            "{cid} is still leased, and handed out"
        );
        after.push(l);
    }
    handed_out.assert_each_once(&d.log());
    for l in &after {
        let id = l["lease_id"].as_str().unwrap();
        let (st, _, _) = d
            .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
}
