//! Each tenant's metrics, read at scrape time from its use and the core's lease count:
//! `warmpool_tenant_leases`, `warmpool_tenant_acquires_total`,
//! `warmpool_tenant_rejections_total{quota}` and `warmpool_tenant_lease_seconds_used`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use warmpool_core::{Backend, Manager};

use super::{QuotaKind, Tenants};
use crate::metrics::{counter, gauge};

/// The tenants' metrics.
pub struct TenantCollector<B: Backend> {
    /// The tenants.
    pub tenants: Arc<Tenants>,
    /// Counts each tenant's leases.
    pub manager: Arc<Manager<B>>,
}

impl<B: Backend> std::fmt::Debug for TenantCollector<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantCollector")
    }
}

impl<B: Backend> Collector for TenantCollector<B> {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.tenants.all();
        if all.is_empty() {
            return Ok(());
        }
        let name = |t: &super::Tenant| vec![("tenant", t.name.clone())];
        let leases: Vec<_> = all
            .iter()
            .map(|t| (name(t), i64::from(self.manager.tenant_leases(&t.name))))
            .collect();
        gauge(
            &mut enc,
            "warmpool_tenant_leases",
            "Leases each tenant holds",
            &leases,
        )?;
        let acquires: Vec<_> = all.iter().map(|t| (name(t), t.usage.acquires())).collect();
        counter(
            &mut enc,
            "warmpool_tenant_acquires",
            "Acquires each tenant's quotas let through",
            &acquires,
        )?;
        let mut rejections = Vec::new();
        for t in all {
            for q in QuotaKind::ALL {
                rejections.push((
                    vec![
                        ("tenant", t.name.clone()),
                        ("quota", q.as_str().to_string()),
                    ],
                    t.usage.rejected(q),
                ));
            }
        }
        counter(
            &mut enc,
            "warmpool_tenant_rejections",
            "Requests each tenant's quotas refused, by quota",
            &rejections,
        )?;
        let used: Vec<_> = all
            .iter()
            .filter_map(|t| Some((name(t), t.usage.seconds_used()? as i64)))
            .collect();
        gauge(
            &mut enc,
            "warmpool_tenant_lease_seconds_used",
            "Lease-seconds of the hourly budget in use (taken and not yet refilled)",
            &used,
        )
    }
}
