//! Section 12: what tenant checks add to a warm acquire inside the daemon (issue 24).
//!
//! In process, no HTTP socket and no engine: the API's router over the in-memory engine, one
//! warm pool, acquires sent through the router one at a time. The same acquires on the open
//! API (no tenants) and as the last of 100 tenants, each with all three quotas (generous, so
//! none refuses), measured in the same run beside the router's null route (`GET /healthz`).
//! Then each check alone, in a tight loop: finding the caller among 100 tenants by its token,
//! the quotas' admission and settling, and minting and checking a lease token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use warmpool_api::tenancy::lease_token::LeaseKeys;
use warmpool_api::tenancy::quota::Usage;
use warmpool_api::tenancy::{Quotas, TenantSpec, Tenants};
use warmpool_api::{ApiConfig, router};
use warmpool_core::{BuiltinExhaustion, BuiltinSizing, Manager, ManagerConfig, Policies};
use warmpool_fake::FakeBackend;

use crate::{Report, row, stats};

const TENANTS: usize = 100;

fn quotas() -> Quotas {
    Quotas {
        max_leases: Some(1_000_000),
        acquires_per_s: Some(1_000_000.0),
        lease_seconds_per_hour: Some(u64::MAX / 4),
    }
}

fn specs() -> Vec<TenantSpec> {
    (0..TENANTS)
        .map(|i| TenantSpec {
            name: format!("t{i}"),
            token: format!("token-of-tenant-{i:04}-0123456789abcdef"),
            admin: false,
            pools: None,
            quotas: quotas(),
        })
        .collect()
}

/// A router over a warm pool of `n` containers on the in-memory engine.
async fn app(n: u32, tenants: Vec<TenantSpec>) -> axum::Router {
    let backend = Arc::new(FakeBackend::new(Duration::ZERO));
    let mut cfg = warmpool_testkit::fixtures::pool("p", n, n, n + 1);
    cfg.default_ttl = Duration::from_secs(600);
    let pol = Policies {
        sizing: Arc::new(BuiltinSizing::Fixed),
        exhaustion: Arc::new(BuiltinExhaustion::Fail),
        health: None,
    };
    let mcfg = ManagerConfig {
        max_containers: n + 10,
        ..ManagerConfig::default()
    };
    let m = Manager::new(mcfg, vec![(cfg, pol)], backend);
    m.start();
    m.warm_up("p", Duration::from_secs(120)).await.unwrap();
    router(
        m,
        ApiConfig {
            tenants,
            max_request_bytes: 1 << 20,
            max_upload_bytes: 1 << 20,
            ..ApiConfig::default()
        },
    )
}

/// Microseconds of each of `n` requests made by `req`, one at a time.
async fn time_each(app: &axum::Router, n: usize, req: impl Fn() -> Request<Body>) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = req();
        let t = Instant::now();
        let resp = app.clone().oneshot(r).await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(resp.status().is_success(), "{}", resp.status());
    }
    out
}

fn acquire(token: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/v1/leases")
        .header("content-type", "application/json")
        .header("host", "127.0.0.1");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(r#"{"pool":"p"}"#)).unwrap()
}

/// Nanoseconds per call of `f`, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e9 / n as f64
}

pub async fn tenants(quick: bool, r: &mut Report) {
    let n = if quick { 300 } else { 3000 };
    r.section(
        "12. Tenant checks inside the daemon: a warm acquire through the API's router, in process",
    );
    r.line(&format!(
        "One warm pool of {n} on the in-memory engine; {n} acquires one at a time, open API against \
         the last of {TENANTS} tenants with all three quotas (none refusing); the router's null \
         route beside them. Microseconds per request (no socket, no engine)."
    ));
    r.line("| request | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|");
    // Both routers up front, their acquires interleaved, so drift in the machine hits both.
    let all = specs();
    let last = all[TENANTS - 1].token.clone();
    let open = app(n as u32, Vec::new()).await;
    let tenant = app(n as u32, all).await;
    let null = stats(
        time_each(&open, n, || {
            Request::get("/healthz")
                .header("host", "127.0.0.1")
                .body(Body::empty())
                .unwrap()
        })
        .await,
    );
    r.line(&row(
        "null route (GET /healthz)",
        &null,
        "µs",
        "the router alone",
    ));
    let (mut open_t, mut ten_t) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        open_t.extend(time_each(&open, 1, || acquire(None)).await);
        ten_t.extend(time_each(&tenant, 1, || acquire(Some(&last))).await);
    }
    let (open_s, ten_s) = (stats(open_t), stats(ten_t));
    r.line(&row("acquire, open API", &open_s, "µs", "no tenants"));
    let added = ten_s.p50 - open_s.p50;
    r.line(&row(
        &format!("acquire as tenant {TENANTS} of {TENANTS}, three quotas"),
        &ten_s,
        "µs",
        &format!(
            "{added:+.2} µs at the median ({:.3}× the open acquire)",
            ten_s.p50 / open_s.p50
        ),
    ));
    r.record("tenants_null_route_us_p50", null.p50);
    r.record("tenants_open_acquire_us_p50", open_s.p50);
    r.record("tenants_tenant_acquire_us_p50", ten_s.p50);
    r.record("tenants_added_us_p50", added);

    // Each check alone.
    let loops = if quick { 20_000 } else { 200_000 };
    let tenants = Tenants::new(specs());
    let find = per_call(loops, || {
        std::hint::black_box(tenants.find(std::hint::black_box(&last)));
    });
    let usage = Usage::new(quotas());
    let admit = per_call(loops, || {
        // What one lease costs its tenant's quotas: let through with its time held, its time
        // taken as it enters the lease table, the hold let go, its unused time given back.
        let a = usage.admit(|| 0, Duration::from_secs(600)).unwrap();
        usage.take(Duration::from_secs(600));
        drop(a);
        usage.refund(Duration::from_secs(300));
    });
    let keys = LeaseKeys::random();
    let id = "0b5e1d2c-7a4f-4e8b-9c3d-1f2e3a4b5c6d";
    let mint = per_call(loops, || {
        std::hint::black_box(keys.mint(std::hint::black_box(id)));
    });
    let token = keys.mint(id);
    let verify = per_call(loops, || {
        std::hint::black_box(keys.verify(std::hint::black_box(&token)));
    });
    r.line(&format!(
        "\nEach check alone ({loops} calls each, ns per call): caller found among {TENANTS} \
         tenants **{find:.0}**; quotas admitted, charged and refunded **{admit:.0}**; lease token minted \
         **{mint:.0}**, checked **{verify:.0}**; in all **{:.2} µs** per acquire.",
        (find + admit + mint) / 1000.0
    ));
    r.record("tenants_find_ns", find);
    r.record("tenants_admit_settle_ns", admit);
    r.record("tenants_mint_ns", mint);
    r.record("tenants_verify_ns", verify);
}
