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
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use warmpool_core::PluginStatusSource;
use warmpool_core::{Backend, Manager};

mod hibernation;

/// Labels of the acquire latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcquireLabels {
    /// Pool name.
    pub pool: String,
    /// `warm` (taken from the pool) or `cold` (created for the acquire), as in
    /// `warmpool_acquires_total`.
    pub source: String,
}

/// Bounds of the acquire latency histogram, in seconds: round numbers (1, 2.5, 5 per decade),
/// from 10 µs, where warm acquires sit, to 30 s, past any cold create.
pub const ACQUIRE_BUCKETS: [f64; 20] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `source` label of an acquire: the API's lease says `pool` for a warm one.
pub fn source_label(lease_source: &str) -> &'static str {
    if lease_source == "cold" {
        "cold"
    } else {
        "warm"
    }
}

/// The metrics registry rendered at `GET /metrics`.
pub struct Metrics {
    registry: Registry,
    /// Families only an admin's scrape gets (each tenant's use: tenants must not learn of
    /// each other, and `/metrics` answers without a token).
    admin: Registry,
    /// Acquire latency in seconds, `warmpool_acquire_duration_seconds`; observed per acquire.
    pub acquire_seconds: Family<AcquireLabels, Histogram>,
}

impl Metrics {
    /// Register the acquire histogram and the pool (and plugin, if any) collectors.
    pub fn new<B: Backend>(manager: Arc<Manager<B>>, plugins: Option<PluginStatusSource>) -> Self {
        let mut registry = Registry::default();
        let acquire_seconds = Family::<AcquireLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(ACQUIRE_BUCKETS)
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
            admin: Registry::default(),
            acquire_seconds,
        }
    }

    /// Add a collector read at each scrape by an admin alone (the tenants' metrics, which this
    /// module does not know of).
    pub fn register_admin(&mut self, c: Box<dyn Collector>) {
        self.admin.register_collector(c);
    }

    /// The registry in the OpenMetrics text format, served at `GET /metrics` to a scraper that
    /// asks for it (Prometheus does); with `admin`, the admin's families too.
    pub fn render(&self, admin: bool) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        if admin {
            let mut more = String::new();
            prometheus_client::encoding::text::encode(&mut more, &self.admin)
                .expect("writing to a String");
            // One document: one `# EOF`, at its end.
            if let Some(body) = out.strip_suffix("# EOF\n") {
                out = format!("{body}{more}");
            }
        }
        out
    }

    /// The registry in the Prometheus text format 0.0.4, served at `GET /metrics` to anything
    /// else (curl, promtool, older scrapers).
    pub fn render_text(&self, admin: bool) -> String {
        openmetrics_to_text(&self.render(admin))
    }
}

/// OpenMetrics as `prometheus_client` writes it, in the Prometheus text format 0.0.4. The two
/// differ, for what this daemon exports, in two ways: OpenMetrics names a counter family without
/// its `_total` suffix in `# HELP` and `# TYPE` (its samples keep it), where 0.0.4 names the
/// family as its samples are named, and only OpenMetrics ends with `# EOF` and has `# UNIT`.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut counters = std::collections::HashSet::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.insert(name.to_string());
        }
    }
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

struct PoolCollector<B: Backend> {
    manager: Arc<Manager<B>>,
}

impl<B: Backend> std::fmt::Debug for PoolCollector<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCollector")
    }
}

pub(crate) fn gauge<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, N)],
) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeGaugeValue + Copy + std::fmt::Debug,
{
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

pub(crate) fn counter<N>(
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
                ("suspended", c.suspended),
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
        // One counter, three sources: warm (from the pool), cold (created for the acquire) and
        // rejected (refused or timed out), so `sum by (source)` shows the split at once.
        let mut acquires = Vec::new();
        for s in &stats {
            for (source, n) in [
                ("warm", s.acquires.pool),
                ("cold", s.acquires.cold),
                ("rejected", s.acquires.rejected),
            ] {
                acquires.push((
                    vec![("pool", s.name.clone()), ("source", source.to_string())],
                    n,
                ));
            }
        }
        counter(
            &mut enc,
            "warmpool_acquires",
            "Acquires by source: warm (a ready container), cold (created for it), rejected (refused or timed out)",
            &acquires,
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
        hibernation::encode_metrics(&mut enc, &stats)?;
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
                "warmpool_store_last_commit_seconds",
                "Duration of the last group commit",
                &[(vec![], p.last_commit_ms / 1000.0)],
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
