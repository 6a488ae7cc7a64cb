//! `/readyz` answers anyone (load balancers, orchestrators), so it says which state the daemon
//! is in and no more (issue 21): the engine's own error (an endpoint, a socket path, a TLS
//! complaint) stays behind the token, at `/v1/engines`, as its endpoint already does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use warmpool_api::{ApiConfig, router};
use warmpool_core::{BuiltinExhaustion, Manager, ManagerConfig};
use warmpool_fake::FakeBackend;

use common::{call, pool};

#[tokio::test(start_paused = true)]
async fn readyz_names_the_state_and_v1_engines_keeps_the_engines_error() {
    let backend = Arc::new(FakeBackend::new(Duration::from_millis(5)));
    let m = Manager::new(
        ManagerConfig::default(),
        vec![pool("p", BuiltinExhaustion::Fail)],
        backend.clone(),
    );
    m.start();
    m.warm_up("p", Duration::from_secs(5)).await.unwrap();
    let app = router(
        m,
        ApiConfig {
            tenants: vec![warmpool_api::tenancy::TenantSpec::admin("admin", "s3cret")],
            max_request_bytes: 4096,
            max_upload_bytes: 1 << 20,
            ..ApiConfig::default()
        },
    );
    assert_eq!(
        call(&app, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );

    backend.state().down = true;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (st, hdrs, v) = call(&app, "GET", "/readyz", None, None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(hdrs.get("retry-after").is_some());
    assert_eq!(v["error"]["code"], "engine_unavailable", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        !msg.contains("fake engine is down"),
        "the engine's own error reached an unauthenticated caller: {msg}"
    );
    assert!(
        msg.contains("/v1/engines"),
        "it says where the detail is: {msg}"
    );

    // Behind the token, the detail is there.
    let (st, _, v) = call(&app, "GET", "/v1/engines", None, Some("s3cret")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["engines"][0]["state"], "down", "{v}");
    let last = v["engines"][0]["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("fake engine is down"), "{v}");
}
