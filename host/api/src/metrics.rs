//! `/metrics` in the Prometheus text format. Per-state gauges and counters are read from the
//! pools at scrape time (a [`Collector`]), so they can never drift from the truth; the acquire
//! latency histogram is observed as acquires happen.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use warmpool_core::PluginStatusSource;
use warmpool_core::{Backend, Manager};

/// Labels of the acquire latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcquireLabels {
    /// Pool name.
    pub pool: String,
    /// `pool` (warm) or `cold` (created for the acquire).
    pub source: String,
}

/// The metrics registry rendered at `GET /metrics`.
pub struct Metrics {
    registry: Registry,
    /// Acquire latency in seconds, `warmpool_acquire_duration_seconds`; observed per acquire.
    pub acquire_seconds: Family<AcquireLabels, Histogram>,
}

impl Metrics {
    /// Register the acquire histogram and the pool (and plugin, if any) collectors.
    pub fn new<B: Backend>(manager: Arc<Manager<B>>, plugins: Option<PluginStatusSource>) -> Self {
        let mut registry = Registry::default();
        // 20 µs … ~10 s: warm acquires sit at the bottom, cold ones near the top.
        let acquire_seconds = Family::<AcquireLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00002, 2.5, 15))
        });
        registry.register(
            "warmpool_acquire_duration_seconds",
            "Time to acquire a container",
            acquire_seconds.clone(),
        );
        registry.register_collector(Box::new(PoolCollector { manager }));
        if let Some(source) = plugins {
            registry.register_collector(Box::new(PluginCollector { source }));
        }
        Self {
            registry,
            acquire_seconds,
        }
    }

    /// The registry in the OpenMetrics text format, as served at `GET /metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

struct PoolCollector<B: Backend> {
    manager: Arc<Manager<B>>,
}

impl<B: Backend> std::fmt::Debug for PoolCollector<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCollector")
    }
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, i64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, N)],
) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeCounterValue + Copy + std::fmt::Debug,
{
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl<B: Backend> Collector for PoolCollector<B> {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.manager.all_pool_stats();
        let pool = |s: &warmpool_core::PoolStats| vec![("pool", s.name.clone())];
        let mut states = Vec::new();
        for s in &stats {
            let c = s.counts;
            for (state, n) in [
                ("creating", c.creating),
                ("ready", c.ready),
                ("leased", c.leased),
                ("resetting", c.resetting),
                ("removing", c.removing),
                ("unhealthy", c.unhealthy),
            ] {
                states.push((
                    vec![("pool", s.name.clone()), ("state", state.to_string())],
                    i64::from(n),
                ));
            }
        }
        gauge(
            &mut enc,
            "warmpool_containers",
            "Containers per pool and state",
            &states,
        )?;
        let rows = |f: &dyn Fn(&warmpool_core::PoolStats) -> i64| {
            stats.iter().map(|s| (pool(s), f(s))).collect::<Vec<_>>()
        };
        gauge(
            &mut enc,
            "warmpool_pool_target",
            "Ready containers the pool works toward",
            &rows(&|s| i64::from(s.target)),
        )?;
        gauge(
            &mut enc,
            "warmpool_pool_waiters",
            "Acquires queued for a container",
            &rows(&|s| i64::from(s.waiters)),
        )?;
        gauge(
            &mut enc,
            "warmpool_pool_degraded",
            "1 while the pool's create breaker is open",
            &rows(&|s| i64::from(s.status == "degraded")),
        )?;
        let crows = |f: &dyn Fn(&warmpool_core::PoolStats) -> u64| {
            stats.iter().map(|s| (pool(s), f(s))).collect::<Vec<_>>()
        };
        let mut acquires = Vec::new();
        for s in &stats {
            for (source, n) in [("pool", s.acquires.pool), ("cold", s.acquires.cold)] {
                acquires.push((
                    vec![("pool", s.name.clone()), ("source", source.to_string())],
                    n,
                ));
            }
        }
        counter(
            &mut enc,
            "warmpool_acquires",
            "Acquires served, by source",
            &acquires,
        )?;
        counter(
            &mut enc,
            "warmpool_acquires_rejected",
            "Acquires refused or timed out",
            &crows(&|s| s.acquires.rejected),
        )?;
        counter(
            &mut enc,
            "warmpool_creates",
            "Containers created",
            &crows(&|s| s.creates.total),
        )?;
        counter(
            &mut enc,
            "warmpool_create_failures",
            "Container creates that failed",
            &crows(&|s| s.creates.failures),
        )?;
        counter(
            &mut enc,
            "warmpool_leases_expired",
            "Leases ended by their TTL",
            &crows(&|s| s.counters.expired_total),
        )?;
        counter(
            &mut enc,
            "warmpool_containers_unhealthy",
            "Containers removed as dead or unhealthy",
            &crows(&|s| s.counters.unhealthy_total),
        )?;
        counter(
            &mut enc,
            "warmpool_containers_recycled",
            "Ready containers replaced for age",
            &crows(&|s| s.counters.recycled_total),
        )?;
        counter(
            &mut enc,
            "warmpool_containers_adopted",
            "Ready containers of an earlier run re-adopted at startup",
            &crows(&|s| s.counters.adopted_total),
        )?;
        counter(
            &mut enc,
            "warmpool_idle_container_seconds",
            "Integral over time of ready, unleased containers: what keeping the pool warm cost",
            &stats
                .iter()
                .map(|s| (pool(s), s.idle_container_seconds))
                .collect::<Vec<_>>(),
        )?;
        gauge(
            &mut enc,
            "warmpool_peak_containers",
            "Most containers the pool counted at once since the daemon started",
            &rows(&|s| i64::from(s.peak_containers)),
        )?;
        gauge(
            &mut enc,
            "warmpool_lendable",
            "Ready containers a commit made lendable",
            &rows(&|s| i64::from(s.lendable)),
        )?;
        if let Some(p) = self.manager.persist_stats() {
            counter(
                &mut enc,
                "warmpool_store_commits",
                "Group commits of the lease store",
                &[(vec![], p.commits)],
            )?;
            counter(
                &mut enc,
                "warmpool_store_commit_failures",
                "Group commits that failed (nothing new is lent until one succeeds)",
                &[(vec![], p.commit_failures)],
            )?;
            gauge(
                &mut enc,
                "warmpool_store_last_commit_microseconds",
                "Duration of the last group commit",
                &[(vec![], (p.last_commit_ms * 1000.0) as i64)],
            )?;
        }
        let engines = self.manager.engine_stats();
        let per_engine = |v: fn(&warmpool_core::EngineStats) -> i64| {
            engines
                .iter()
                .map(|e| (vec![("engine", e.name.clone())], v(e)))
                .collect::<Vec<(Vec<(&str, String)>, i64)>>()
        };
        gauge(
            &mut enc,
            "warmpool_engine_up",
            "1 while the container engine answers",
            &per_engine(|e| i64::from(e.up)),
        )?;
        gauge(
            &mut enc,
            "warmpool_engine_containers",
            "Containers the daemon counts on the engine, in any state",
            &per_engine(|e| i64::from(e.counted)),
        )?;
        Ok(())
    }
}

struct PluginCollector {
    source: PluginStatusSource,
}

impl std::fmt::Debug for PluginCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginCollector")
    }
}

impl Collector for PluginCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let list = (self.source)();
        let labels = |p: &warmpool_core::PluginStatus| {
            vec![("pool", p.pool.clone()), ("kind", p.kind.clone())]
        };
        let rows = |f: &dyn Fn(&warmpool_core::PluginStatus) -> u64| {
            list.iter().map(|p| (labels(p), f(p))).collect::<Vec<_>>()
        };
        counter(
            &mut enc,
            "warmpool_plugin_reloads",
            "Plugin versions swapped in",
            &rows(&|p| p.reloads),
        )?;
        counter(
            &mut enc,
            "warmpool_plugin_calls",
            "Plugin calls",
            &rows(&|p| p.calls),
        )?;
        counter(
            &mut enc,
            "warmpool_plugin_failures",
            "Plugin calls that failed (trap, deadline, memory, malformed)",
            &rows(&|p| p.failures),
        )?;
        counter(
            &mut enc,
            "warmpool_plugin_fallbacks",
            "Decisions the built-in policy made instead",
            &rows(&|p| p.fallbacks),
        )?;
        counter(
            &mut enc,
            "warmpool_plugin_truncated",
            "Plugin answers cut to bounds (a long reason, too many probes, a huge Retry-After)",
            &rows(&|p| p.truncated),
        )?;
        counter(
            &mut enc,
            "warmpool_plugin_log_dropped",
            "Plugin log lines dropped past the per-call and per-second budgets",
            &rows(&|p| p.log_dropped),
        )?;
        let bytes = |f: &dyn Fn(&warmpool_core::PluginStatus) -> u64| {
            list.iter()
                .map(|p| (labels(p), i64::try_from(f(p)).unwrap_or(i64::MAX)))
                .collect::<Vec<_>>()
        };
        gauge(
            &mut enc,
            "warmpool_plugin_memory_bytes",
            "Linear memory of the plugin's live instance",
            &bytes(&|p| p.memory_bytes),
        )?;
        gauge(
            &mut enc,
            "warmpool_plugin_code_bytes",
            "Machine code of the plugin's compiled component (shared by every pool loading the same file)",
            &bytes(&|p| p.code_bytes),
        )?;
        let state: Vec<_> = list
            .iter()
            .map(|p| {
                let mut l = labels(p);
                l.push(("state", p.state.to_string()));
                (l, 1i64)
            })
            .collect();
        gauge(
            &mut enc,
            "warmpool_plugin_state",
            "1 for the plugin's current state (active, compiling, benched, fallback)",
            &state,
        )?;
        let since: Vec<_> = list
            .iter()
            .filter_map(|p| {
                let t = humantime::parse_rfc3339(p.last_reload_at.as_deref()?).ok()?;
                let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
                Some((labels(p), secs))
            })
            .collect();
        gauge(
            &mut enc,
            "warmpool_plugin_last_reload_timestamp_seconds",
            "Unix time of the last successful reload",
            &since,
        )
    }
}
