//! What changed between two configs: a pure function, compared field by field with the config
//! types' own equality.

use warmpool_config::{Config, PoolPlan};

/// The difference between the running config and a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Settings that differ but apply only at a restart.
    pub restart_only: Vec<&'static str>,
    /// Each pool of the new config (by index) and whether its policies must be rebuilt (new
    /// pool, or changed sizing, exhaustion, health or plugin settings).
    pub pools: Vec<(usize, bool)>,
    /// Pools of the old config the new one lacks.
    pub removed: Vec<String>,
}

/// Whether two plans are served by the same policies.
fn same_policies(a: &PoolPlan, b: &PoolPlan) -> bool {
    a.sizing == b.sizing
        && a.exhaustion == b.exhaustion
        && a.health == b.health
        && a.plugins == b.plugins
}

/// What changed from `old` to `new`: pools added, removed, changed or respecified, and the
/// settings that only a restart applies. A pure function, compared by value.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    let (a, b) = (&old.server, &new.server);
    if a.listen != b.listen {
        d.restart_only.push("server.listen");
    }
    if a.host_id != b.host_id {
        d.restart_only.push("server.host_id");
    }
    if a.state_dir != b.state_dir {
        d.restart_only.push("server.state_dir");
    }
    if a.commit_interval != b.commit_interval {
        d.restart_only.push("server.commit_interval");
    }
    if a.keep_on_shutdown != b.keep_on_shutdown {
        d.restart_only.push("server.keep_on_shutdown");
    }
    if a.auth_token_env != b.auth_token_env {
        d.restart_only.push("server.auth_token_env");
    }
    if a.allowed_hosts != b.allowed_hosts || a.allow_any_host != b.allow_any_host {
        d.restart_only.push("server.allowed_hosts");
    }
    if a.max_request_bytes != b.max_request_bytes || a.max_upload_bytes != b.max_upload_bytes {
        d.restart_only
            .push("server.max_request_bytes/max_upload_bytes");
    }
    if a.audit_log != b.audit_log {
        d.restart_only.push("server.audit_log");
    }
    if a.shutdown_grace != b.shutdown_grace {
        d.restart_only.push("server.shutdown_grace");
    }
    let (m, n) = (&old.manager, &new.manager);
    if m.exec_output_limit != n.exec_output_limit {
        d.restart_only.push("server.exec_output_bytes");
    }
    if m.max_containers != n.max_containers
        || m.max_concurrent_creates != n.max_concurrent_creates
        || m.max_concurrent_removes != n.max_concurrent_removes
        || m.sweep_interval != n.sweep_interval
    {
        d.restart_only.push("limits");
    }
    if old.docker != new.docker {
        d.restart_only.push("docker");
    }
    if old.plugins != new.plugins {
        d.restart_only.push("plugins");
    }
    for (i, plan) in new.pools.iter().enumerate() {
        let was = old.pools.iter().find(|p| p.pool.name == plan.pool.name);
        d.pools
            .push((i, was.is_none_or(|o| !same_policies(o, plan))));
    }
    d.removed = old
        .pools
        .iter()
        .filter(|o| !new.pools.iter().any(|p| p.pool.name == o.pool.name))
        .map(|o| o.pool.name.clone())
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        warmpool_config::parse(text, "t", Vec::<(String, String)>::new()).unwrap()
    }

    const BASE: &str = "server: {host_id: h}\npools:\n  a: {image: x}\n  b: {image: y}\n";

    #[test]
    fn the_same_config_changes_nothing() {
        let d = diff(&cfg(BASE), &cfg(BASE));
        assert!(d.restart_only.is_empty());
        assert!(d.removed.is_empty());
        assert_eq!(d.pools, vec![(0, false), (1, false)]);
    }

    #[test]
    fn pools_added_removed_and_repoliced() {
        let new = cfg(
            "server: {host_id: h}\npools:\n  a: {image: x, sizing: {policy: fixed}}\n  c: {image: z}\n",
        );
        let d = diff(&cfg(BASE), &new);
        assert_eq!(d.removed, vec!["b".to_string()]);
        assert_eq!(d.pools, vec![(0, true), (1, true)]);
        // A size change alone keeps the policies.
        let sized = cfg(
            "server: {host_id: h}\npools:\n  a: {image: x, min_ready: 3, max_ready: 3}\n  b: {image: y}\n",
        );
        assert_eq!(diff(&cfg(BASE), &sized).pools, vec![(0, false), (1, false)]);
    }

    #[test]
    fn restart_only_settings_are_named() {
        let new = cfg(
            "server: {host_id: other, listen: 127.0.0.1:9}\nlimits: {max_containers: 9}\nplugins: {deadline: 20ms}\npools:\n  a: {image: x}\n  b: {image: y}\n",
        );
        let d = diff(&cfg(BASE), &new);
        assert_eq!(
            d.restart_only,
            vec!["server.listen", "server.host_id", "limits", "plugins"]
        );
    }
}
