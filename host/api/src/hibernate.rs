//! Lease hibernation routes: `POST /v1/leases/{id}/suspend` and `POST /v1/leases/{id}/resume`
//! (the core's `leasing/hibernate.rs` does the work). Under the lease scope like every route of
//! one lease: its tenant, an admin, or its lease token.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use warmpool_core::{Backend, LeaseInfo};

use crate::code::route_errors;
use crate::core_errors::LEASE_CODES;
use crate::{ApiError, Shared};

/// Body of `POST /v1/leases/{id}/suspend` and `/resume`: nothing to set; `{}`, or an empty
/// body (either sent as `application/json`, as every POST must be).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HibernateBody {}

route_errors!(
    /// What a suspend or resume answers: a lease's codes, among them 409 `cannot_suspend`.
    HibernateErrors = LEASE_CODES
);

/// `POST /v1/leases/{id}/suspend`: checkpoint the lease's container to the engine's disk and
/// stop it (memory and files kept, memory freed); answers the lease, `state: suspended`. The
/// TTL runs on while suspended. 409 `cannot_suspend` when the engine cannot checkpoint (the
/// reason is the engine's) or calls on the lease are under way.
#[utoipa::path(post, path = "/v1/leases/{id}/suspend", tag = "leases", operation_id = "suspend",
    params(("id" = String, Path, description = "The lease id")),
    request_body(content = HibernateBody, description = "`{}`; an empty body sent as `application/json` is the same"),
    responses(
        (status = 200, description = "The lease, suspended", body = LeaseInfo),
        HibernateErrors,
    ))]
pub async fn suspend<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    raw: bytes::Bytes,
) -> Result<Response, ApiError> {
    crate::body::object_or_default::<HibernateBody>(&headers, &raw)?;
    Ok(Json(s.manager.suspend(&id).await?).into_response())
}

/// `POST /v1/leases/{id}/resume`: restore a suspended lease's container from its checkpoint;
/// answers the lease, `state: active`. A running lease answers as it is.
#[utoipa::path(post, path = "/v1/leases/{id}/resume", tag = "leases", operation_id = "resume",
    params(("id" = String, Path, description = "The lease id")),
    request_body(content = HibernateBody, description = "`{}`; an empty body sent as `application/json` is the same"),
    responses(
        (status = 200, description = "The lease, running", body = LeaseInfo),
        HibernateErrors,
    ))]
pub async fn resume<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    raw: bytes::Bytes,
) -> Result<Response, ApiError> {
    crate::body::object_or_default::<HibernateBody>(&headers, &raw)?;
    Ok(Json(s.manager.resume(&id).await?).into_response())
}

/// The hibernation metrics of each pool: suspended leases now (`warmpool_containers{state=
/// "suspended"}` has them too), suspends and resumes done, and how long they took.
pub(crate) fn encode_metrics(
    enc: &mut prometheus_client::encoding::DescriptorEncoder,
    stats: &[warmpool_core::PoolStats],
) -> std::fmt::Result {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::MetricType;

    use crate::metrics::{counter, gauge};
    let pool = |s: &warmpool_core::PoolStats| vec![("pool", s.name.clone())];
    gauge(
        enc,
        "warmpool_leases_suspended",
        "Leases suspended now (their containers stopped, with a checkpoint on the engine's disk)",
        &stats
            .iter()
            .map(|s| (pool(s), i64::from(s.counts.suspended)))
            .collect::<Vec<_>>(),
    )?;
    let mut done = Vec::new();
    for s in stats {
        for (op, n) in [
            ("suspend", s.counters.suspends_total),
            ("resume", s.counters.resumes_total),
            ("lost", s.counters.hibernation_losses),
        ] {
            done.push((vec![("pool", s.name.clone()), ("op", op.to_string())], n));
        }
    }
    counter(
        enc,
        "warmpool_hibernations",
        "Suspends and resumes that succeeded, and those after which the container's memory was lost (the lease ended)",
        &done,
    )?;
    let mut m = enc.encode_descriptor(
        "warmpool_hibernation_seconds",
        "How long suspends and resumes took",
        None,
        MetricType::Histogram,
    )?;
    for s in stats {
        for (op, d) in [
            ("suspend", s.hibernation.suspend),
            ("resume", s.hibernation.resume),
        ] {
            // The encoder adds the buckets up itself: give it each bucket's own count.
            let mut buckets = Vec::with_capacity(d.buckets.len() + 1);
            let mut below = 0;
            for (bound, cum) in warmpool_core::HIBERNATION_BUCKETS_S.iter().zip(d.buckets) {
                buckets.push((*bound, cum - below));
                below = cum;
            }
            buckets.push((f64::INFINITY, d.count - below));
            let labels = vec![("pool", s.name.clone()), ("op", op.to_string())];
            struct Hist<'a>(f64, u64, &'a [(f64, u64)]);
            impl EncodeMetric for Hist<'_> {
                fn encode(
                    &self,
                    mut e: prometheus_client::encoding::MetricEncoder,
                ) -> std::fmt::Result {
                    e.encode_histogram::<Vec<(String, String)>>(self.0, self.1, self.2, None)
                }
                fn metric_type(&self) -> MetricType {
                    MetricType::Histogram
                }
            }
            Hist(d.sum_s, d.count, &buckets).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
