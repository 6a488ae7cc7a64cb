//! The hibernation families of `/metrics` (lease hibernation: `crate::hibernate`).

/// The hibernation metrics of each pool: suspended leases now (`warmpool_containers{state=
/// "suspended"}` has them too), suspends and resumes done, and how long they took.
pub(crate) fn encode_metrics(
    enc: &mut prometheus_client::encoding::DescriptorEncoder,
    stats: &[warmpool_core::PoolStats],
) -> std::fmt::Result {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::MetricType;

    use super::{counter, gauge};
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
