//! One daemon, three engines of the test's own (each a dockerd in its own network namespace,
//! reached over TCP, one of them over TLS with certificates the test generates): the pool
//! spreads over them, acquires with labels reach only matching engines, losing an engine under
//! load leaves the others serving while its leases answer 503 until it returns, and a kill -9
//! with leases on every engine restarts with each lease on its own engine and nothing
//! unaccounted anywhere. The tests run one at a time: three engines each is what two cores
//! carry.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{
    Daemon, ExtraEngines, IMAGE, Setup, engines_of, eventually, exec_status, pool_yaml,
};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ZONES: [(&str, &str); 3] = [("e1", "a"), ("e2", "b"), ("e3", "b")];

fn zone(name: &str) -> String {
    let z = ZONES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("?", |(_, z)| z);
    format!("{{zone: {z}, name: {name}}}")
}

/// Three engines (e2 on TLS) holding the test image, and a daemon driving them.
async fn three_engines(pool: &str, server: &str, max: Option<u32>) -> (ExtraEngines, Daemon) {
    let engines = ExtraEngines::up(3, &[2], true);
    for e in ["e1", "e2", "e3"] {
        engines.load(e, IMAGE);
    }
    let docker = format!("{server}{}", engines.docker_yaml(zone, max));
    let d = Daemon::start_setup(
        &[pool_yaml("p", pool)],
        Setup {
            server: &docker,
            limits: "  max_containers: 12\n  max_concurrent_creates: 4\n",
            ..Setup::default()
        },
    )
    .await;
    (engines, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_spreads_over_three_engines_and_labels_choose_among_them() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (engines, d) = three_engines("min_ready: 6\nmax_ready: 6\nmax_total: 12", "", None).await;
    d.warm_up("p").await;
    let by = engines_of(&d).await;
    for (name, e) in &by {
        assert_eq!(e["state"], "up", "{e}");
        assert_eq!(e["containers"]["ready"], 2, "spread evenly: {name}: {e}");
        assert!(e["version"].as_str().is_some_and(|v| !v.is_empty()), "{e}");
        assert!(
            e["images"].as_array().unwrap().iter().any(|i| i == IMAGE),
            "{e}"
        );
    }
    assert!(by["e2"]["endpoint"].as_str().unwrap().ends_with(":2376"));
    // Each engine really holds what the daemon says, and the host's engine holds none of it.
    for e in ["e1", "e2", "e3"] {
        assert_eq!(engines.containers_of(e, &d.host_id).len(), 2, "{e}");
    }
    let on_host = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=warmpool.host={}", d.host_id),
        ])
        .output()
        .unwrap();
    assert!(on_host.stdout.is_empty(), "nothing on the host's engine");

    // Labels narrow the choice; e2 is reached over TLS.
    for _ in 0..3 {
        let l = d
            .acquire(json!({"pool": "p", "engine": {"zone": "a"}}))
            .await;
        assert_eq!(l["engine"], "e1", "{l}");
        let (st, out) = exec_status(&d, l["lease_id"].as_str().unwrap()).await;
        assert_eq!(st, StatusCode::OK, "{out}");
    }
    for _ in 0..3 {
        let l = d
            .acquire(json!({"pool": "p", "engine": {"zone": "b"}}))
            .await;
        assert!(l["engine"] == "e2" || l["engine"] == "e3", "{l}");
        let (st, out) = exec_status(&d, l["lease_id"].as_str().unwrap()).await;
        assert_eq!(st, StatusCode::OK, "{out}");
    }
    let l = d
        .acquire(json!({"pool": "p", "engine": {"name": "e2"}}))
        .await;
    let id = l["lease_id"].as_str().unwrap();
    assert_eq!(l["engine"], "e2");
    assert_eq!(exec_status(&d, id).await.0, StatusCode::OK);
    let (st, _, err) = d
        .call(
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "p", "engine": {"zone": "mars"}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "no_such_engine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_an_engine_under_load_leaves_the_others_serving() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut engines, d) =
        three_engines("min_ready: 3\nmax_ready: 3\nmax_total: 12", "", Some(4)).await;
    d.warm_up("p").await;
    let on_e1 = d
        .acquire(json!({"pool": "p", "engine": {"name": "e1"}}))
        .await;
    let on_e2 = d
        .acquire(json!({"pool": "p", "engine": {"name": "e2"}}))
        .await;
    let (l1, l2) = (
        on_e1["lease_id"].as_str().unwrap().to_string(),
        on_e2["lease_id"].as_str().unwrap().to_string(),
    );
    let e1_before = engines.containers_of("e1", &d.host_id);

    engines.kill("e1");
    eventually(Duration::from_secs(20), "engine e1 shown down", || async {
        (engines_of(&d).await["e1"]["state"] == "down").then_some(())
    })
    .await;
    let (st, _, _) = d.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::OK, "two engines are up");
    let (st, err) = exec_status(&d, &l1).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"]["code"], "engine_unavailable");
    assert_eq!(
        exec_status(&d, &l2).await.0,
        StatusCode::OK,
        "e2's lease is untouched"
    );
    // Acquires keep succeeding from e2 and e3, within every engine's cap.
    for _ in 0..5 {
        let l = d.acquire(json!({"pool": "p", "wait_ms": 20_000})).await;
        assert_ne!(l["engine"], "e1", "{l}");
        let id = l["lease_id"].as_str().unwrap();
        let (st, _, _) = d
            .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        for (name, e) in engines_of(&d).await {
            assert!(e["counted"].as_u64().unwrap() <= 4, "{name}: {e}");
        }
        for e in ["e2", "e3"] {
            assert!(engines.containers_of(e, &d.host_id).len() <= 4, "{e}");
        }
    }

    engines.start("e1");
    eventually(Duration::from_secs(30), "engine e1 back up", || async {
        (engines_of(&d).await["e1"]["state"] == "up").then_some(())
    })
    .await;
    // Its lease works again (live restore kept the container), and e1 lends again.
    eventually(
        Duration::from_secs(20),
        "e1's lease answers again",
        || async { (exec_status(&d, &l1).await.0 == StatusCode::OK).then_some(()) },
    )
    .await;
    assert!(
        engines
            .containers_of("e1", &d.host_id)
            .contains(&on_e1["container_id"].as_str().unwrap().to_string())
    );
    assert!(!e1_before.is_empty());
    let l = d
        .acquire(json!({"pool": "p", "engine": {"name": "e1"}, "wait_ms": 20_000}))
        .await;
    assert_eq!(l["engine"], "e1");
    // The books and every engine agree.
    engines
        .books_match(&d, "books agree with the engines")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_leases_on_three_engines_keeps_every_lease_on_its_engine() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (engines, mut d) = three_engines(
        "min_ready: 3\nmax_ready: 3\nmax_total: 12",
        "  state_dir: \"{STATE_DIR}\"\n",
        None,
    )
    .await;
    d.warm_up("p").await;
    let mut leases = Vec::new();
    for e in ["e1", "e2", "e3"] {
        let l = d
            .acquire(json!({"pool": "p", "engine": {"name": e}, "wait_ms": 20_000}))
            .await;
        assert_eq!(l["engine"], e);
        leases.push((e, l["lease_id"].as_str().unwrap().to_string()));
    }
    // One commit interval (20 ms) makes them durable; then the daemon dies without a word.
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.kill9();
    d.restart().await;
    d.warm_up("p").await;
    for (e, id) in &leases {
        let (st, _, l) = d.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
        assert_eq!(st, StatusCode::OK, "{l}");
        assert_eq!(l["engine"], *e, "{l}");
        let (st, out) = exec_status(&d, id).await;
        assert_eq!(st, StatusCode::OK, "{out}");
    }
    engines
        .books_match(&d, "nothing unaccounted on any engine")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_without_the_image_gets_it_by_copy_from_another() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engines = ExtraEngines::up(2, &[], false);
    engines.load("e1", IMAGE);
    let lacks = engines.docker("e2", &["image", "inspect", IMAGE]);
    assert!(!lacks.status.success(), "e2 starts without the image");
    // The default source: a pull, which cannot reach a registry here, then a copy from e1.
    let docker = engines.docker_yaml(zone, None);
    let d = Daemon::start_setup(
        &[pool_yaml("p", "min_ready: 4\nmax_ready: 4\nmax_total: 8")],
        Setup {
            server: &docker,
            ..Setup::default()
        },
    )
    .await;
    d.warm_up("p").await;
    let e2 = eventually(
        Duration::from_secs(60),
        "e2 holds ready containers",
        || async {
            let by = engines_of(&d).await;
            (by["e2"]["containers"]["ready"].as_u64() >= Some(1)).then(|| by["e2"].clone())
        },
    )
    .await;
    assert!(
        e2["images"].as_array().unwrap().iter().any(|i| i == IMAGE),
        "{e2}"
    );
    let copy = e2["image_copy"].as_str().unwrap_or_default();
    assert!(
        copy.starts_with("copied") && copy.contains("from e1"),
        "{e2}"
    );
    assert!(d.log().contains("image copied from a peer engine"));
    let l = d
        .acquire(json!({"pool": "p", "engine": {"name": "e2"}}))
        .await;
    let (st, out) = exec_status(&d, l["lease_id"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::OK, "{out}");
    // The copy is the same image: the same ID on both engines.
    let id = |e: &str| {
        String::from_utf8_lossy(
            &engines
                .docker(e, &["image", "inspect", "--format", "{{.Id}}", IMAGE])
                .stdout,
        )
        .trim()
        .to_string()
    };
    assert_eq!(id("e1"), id("e2"));
}
