//! `GET /v1/tenants`: each tenant's leases, quotas, use and rejections. An admin sees every
//! tenant, a tenant itself alone; the open API has none.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use warmpool_core::Backend;

use crate::Shared;
use crate::tenancy::caller::Caller;
use crate::tenancy::{QuotaKind, Tenant};

/// A tenant's quotas; null is unlimited.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaInfo {
    /// Leases held at once.
    pub max_leases: Option<u32>,
    /// Acquires per second.
    pub acquires_per_s: Option<f64>,
    /// Lease-seconds per hour.
    pub lease_seconds_per_hour: Option<u64>,
}

/// What a tenant uses of its quotas now.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsedInfo {
    /// Lease-seconds of the hourly budget in use (taken and not yet refilled); null without
    /// that quota.
    pub lease_seconds_last_hour: Option<u64>,
}

/// Requests each quota refused since the daemon started.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionInfo {
    /// By `max_leases`.
    pub max_leases: u64,
    /// By `acquires_per_s`.
    pub acquires_per_s: u64,
    /// By `lease_seconds_per_hour`.
    pub lease_seconds_per_hour: u64,
}

/// One tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantInfo {
    /// Its name.
    pub name: String,
    /// Whether it is an admin.
    pub admin: bool,
    /// The pools it may use; null: every pool.
    pub pools: Option<Vec<String>>,
    /// Leases it holds now.
    pub leases: u32,
    /// Its quotas.
    pub quotas: QuotaInfo,
    /// Its use of them.
    pub used: UsedInfo,
    /// Acquires its quotas let through since the daemon started.
    pub acquires: u64,
    /// Requests its quotas refused since the daemon started.
    pub rejections: RejectionInfo,
}

/// The tenants the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// In config order.
    pub tenants: Vec<TenantInfo>,
}

/// `GET /v1/tenants`: every tenant to an admin, itself to a tenant.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", operation_id = "list_tenants",
    responses((status = 200, description = "The tenants the caller may see: all of them for an admin, itself for a tenant, none on an open daemon", body = TenantList)))]
pub async fn list<B: Backend>(State(s): State<Shared<B>>, caller: Caller) -> Json<TenantList> {
    let tenants = s
        .tenants
        .all()
        .iter()
        .filter(|t| match &caller {
            Caller::Tenant(me) => me.admin || me.name == t.name,
            _ => caller.is_admin(),
        })
        .map(|t| info(&s, t))
        .collect();
    Json(TenantList { tenants })
}

fn info<B: Backend>(s: &Shared<B>, t: &Tenant) -> TenantInfo {
    let q = t.usage.quotas();
    TenantInfo {
        name: t.name.clone(),
        admin: t.admin,
        pools: t.pools.as_ref().map(|p| p.iter().cloned().collect()),
        leases: s.manager.tenant_leases(&t.name),
        quotas: QuotaInfo {
            max_leases: q.max_leases,
            acquires_per_s: q.acquires_per_s,
            lease_seconds_per_hour: q.lease_seconds_per_hour,
        },
        used: UsedInfo {
            lease_seconds_last_hour: t.usage.seconds_used(),
        },
        acquires: t.usage.acquires(),
        rejections: RejectionInfo {
            max_leases: t.usage.rejected(QuotaKind::MaxLeases),
            acquires_per_s: t.usage.rejected(QuotaKind::AcquiresPerS),
            lease_seconds_per_hour: t.usage.rejected(QuotaKind::LeaseSecondsPerHour),
        },
    }
}
