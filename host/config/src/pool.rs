//! Validation of one pool (and of the plugin settings it refers to): raw YAML to
//! `warmpool_core::PoolConfig` plus the policies that serve it, every problem at its path.

use std::time::Duration;

use serde_yaml::Value;
use warmpool_core::policy_logic::health::{ExecProbe, HttpProbe};
use warmpool_core::policy_logic::sizing::AdaptiveConfig;
use warmpool_core::{BuiltinExhaustion, BuiltinSizing, ContainerSpec, PoolConfig};

use crate::problems::{Problems, key_name};
use crate::raw::*;
use crate::{HealthPlan, PoolPlan};

/// Most containers one pool may keep ready, and hold in all.
const MAX_POOL: u32 = 10_000;
const MAX_POOL_TOTAL: u32 = crate::validate::MAX_CONTAINERS;

pub(crate) fn validate_plugin_settings(
    p: &mut Problems,
    raw: &RawPluginSettings,
    host_id: &str,
) -> crate::PluginSettings {
    let deadline = p.duration_in(
        "plugins.deadline",
        &raw.deadline,
        Duration::from_millis(50),
        Duration::from_millis(10),
        Duration::from_secs(10),
    );
    let load_deadline = p.duration_in(
        "plugins.load_deadline",
        &raw.load_deadline,
        Duration::from_secs(2),
        Duration::from_millis(10),
        Duration::from_secs(60),
    );
    let max_memory = p.size_in(
        "plugins.max_memory",
        &raw.max_memory,
        64 << 20,
        1 << 20,
        4 << 30,
    );
    let bench_after = p.count_in("plugins.bench_after", raw.bench_after, 5, 1, 1000);
    let cache_dir = raw.cache_dir.as_ref().map_or_else(
        || std::env::temp_dir().join(format!("warmpool-plugin-cache-{host_id}")),
        std::path::PathBuf::from,
    );
    crate::PluginSettings {
        cache_dir,
        deadline,
        load_deadline,
        max_memory: max_memory as usize,
        bench_after,
    }
}

/// A plugin entry: its path, and its config flattened to text pairs for the guest's `init`.
fn plugin_ref(
    p: &mut Problems,
    path: &str,
    raw: &Option<RawPluginRef>,
) -> Option<crate::PluginRef> {
    let raw = raw.as_ref()?;
    if raw.path.trim().is_empty() {
        p.push(format!("{path}.path"), "must name a .wasm file");
    }
    let mut config = Vec::new();
    for (k, v) in &raw.config {
        let key = key_name(k);
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            // Nested values reach the guest as JSON, which every language can read.
            other => match serde_json::to_string(other) {
                Ok(j) => j,
                Err(e) => {
                    p.push(
                        format!("{path}.config.{key}"),
                        format!("cannot be passed to the plugin: {e}"),
                    );
                    continue;
                }
            },
        };
        config.push((key, text));
    }
    Some(crate::PluginRef {
        path: raw.path.clone().into(),
        config,
    })
}

pub(crate) fn validate_pool(p: &mut Problems, path: &str, name: String, raw: RawPool) -> PoolPlan {
    let at = |k: &str| format!("{path}.{k}");
    let secs = Duration::from_secs;
    let day = secs(24 * 3600);
    if raw.image.trim().is_empty() {
        p.push(at("image"), "must name an image");
    }
    let min_ready = p.count_in(&at("min_ready"), raw.min_ready, 1, 0, MAX_POOL);
    let max_ready = p.count_in(
        &at("max_ready"),
        raw.max_ready,
        min_ready.max(1),
        0,
        MAX_POOL,
    );
    let max_total = p.count_in(
        &at("max_total"),
        raw.max_total,
        max_ready.saturating_add(10).min(MAX_POOL_TOTAL),
        1,
        MAX_POOL_TOTAL,
    );
    if min_ready > max_ready {
        p.push(
            at("min_ready"),
            format!("must be ≤ max_ready ({min_ready} > {max_ready})"),
        );
    }
    if max_ready > max_total {
        p.push(
            at("max_ready"),
            format!("must be ≤ max_total ({max_ready} > {max_total})"),
        );
    }
    let default_ttl = p.duration_in(
        &at("lease.default_ttl"),
        &raw.lease.default_ttl,
        secs(600),
        secs(1),
        30 * day,
    );
    let max_ttl = p.duration_in(
        &at("lease.max_ttl"),
        &raw.lease.max_ttl,
        secs(3600).max(default_ttl),
        secs(1),
        365 * day,
    );
    if default_ttl > max_ttl {
        p.push(
            at("lease.default_ttl"),
            format!("must be ≤ lease.max_ttl ({default_ttl:?} > {max_ttl:?})"),
        );
    }
    let max_warm_age = raw.lifecycle.max_warm_age.as_ref().map(|_| {
        p.duration_in(
            &at("lifecycle.max_warm_age"),
            &raw.lifecycle.max_warm_age,
            secs(1800),
            secs(1),
            30 * day,
        )
    });
    let max_lifetime = raw.lifecycle.max_lifetime.as_ref().map(|_| {
        p.duration_in(
            &at("lifecycle.max_lifetime"),
            &raw.lifecycle.max_lifetime,
            secs(3600),
            secs(1),
            365 * day,
        )
    });
    let image_check_interval = p.duration_in(
        &at("lifecycle.image_check_interval"),
        &raw.lifecycle.image_check_interval,
        secs(30),
        Duration::from_millis(100),
        day,
    );
    let probation = p.duration_in(
        &at("lifecycle.probation"),
        &raw.lifecycle.probation,
        secs(10),
        Duration::ZERO,
        secs(600),
    );
    let start_settle = p.duration_in(
        &at("lifecycle.start_settle"),
        &raw.lifecycle.start_settle,
        Duration::from_millis(100),
        Duration::ZERO,
        secs(10),
    );
    let reuse = if raw.reuse.enabled {
        let r = &raw.reuse;
        let max_uses = p.count_in(&at("reuse.max_uses"), r.max_uses, 10, 2, 1_000_000);
        // Reuse is only safe when the reset is explicit and its result is checked.
        if r.reset.is_empty() {
            p.push(at("reuse.reset"), "reuse needs at least one reset command");
        }
        if r.verify.is_empty() {
            p.push(
                at("reuse.verify"),
                "reuse needs at least one verify command that proves the reset",
            );
        }
        for (i, a) in r.allowed_changes.iter().enumerate() {
            if !a.starts_with('/') || a.trim_end_matches('/').is_empty() || a.contains("..") {
                p.push(
                    format!("{path}.reuse.allowed_changes[{i}]"),
                    "must be an absolute path other than / and without '..'",
                );
            }
        }
        Some(warmpool_core::ReuseConfig {
            max_uses,
            reset: r.reset.iter().map(Command::argv).collect(),
            verify: r.verify.iter().map(Command::argv).collect(),
            timeout: p.duration_in(
                &at("reuse.timeout"),
                &r.timeout,
                secs(30),
                secs(1),
                secs(3600),
            ),
            allowed_changes: r.allowed_changes.clone(),
        })
    } else {
        None
    };
    let idle_timeout = p.duration_in(
        &at("lifecycle.idle_timeout"),
        &raw.lifecycle.idle_timeout,
        secs(600),
        secs(1),
        30 * day,
    );
    let wait_timeout = p.duration_in(
        &at("exhaustion.wait_timeout"),
        &raw.exhaustion.wait_timeout,
        secs(30),
        Duration::ZERO,
        secs(3600),
    );
    let setup_timeout = p.duration_in(
        &at("setup_timeout"),
        &raw.setup_timeout,
        secs(120),
        secs(1),
        secs(3600),
    );

    // Docker's minimum is 6m.
    let memory = p.size_in(&at("memory"), &raw.memory, 512 << 20, 6 << 20, 1 << 40);
    let nano_cpus = match raw.cpus {
        Some(c) if !(c > 0.0 && c <= 1024.0) => {
            p.push(at("cpus"), format!("must be > 0 ({c})"));
            None
        }
        Some(c) => Some((c * 1e9) as i64),
        None => None,
    };
    let pids_limit = raw.pids_limit.unwrap_or(256);
    if pids_limit == 0 || pids_limit < -1 {
        p.push(at("pids_limit"), "must be ≥ 1, or -1 for unlimited");
    }
    for k in raw.labels.keys() {
        if k.starts_with("warmpool.") {
            p.push(
                format!("{path}.labels.{k}"),
                "the warmpool.* labels are reserved",
            );
        }
    }
    let cmd = raw
        .cmd
        .map_or_else(|| vec!["sleep".into(), "infinity".into()], |c| c.argv());
    if cmd.is_empty() {
        p.push(
            at("cmd"),
            "must not be empty (omit it to keep the container alive with `sleep infinity`)",
        );
    }
    let setup: Vec<Vec<String>> = raw.setup.iter().map(Command::argv).collect();
    for (i, c) in setup.iter().enumerate() {
        if c.is_empty() || c[0].is_empty() {
            p.push(format!("{path}.setup[{i}]"), "must not be empty");
        }
    }
    let health = raw.health.as_ref().and_then(|h| {
        let interval = p.duration_in(
            &at("health.interval"),
            &h.interval,
            secs(30),
            Duration::from_millis(100),
            day,
        );
        let timeout = p.duration_in(
            &at("health.timeout"),
            &h.timeout,
            secs(5),
            Duration::from_millis(10),
            secs(600),
        );
        let timeout_ms = timeout.as_millis() as u64;
        let plan = match (&h.cmd, &h.http) {
            (Some(c), None) if !c.argv().is_empty() => Some(HealthPlan::Exec(ExecProbe {
                argv: c.argv(),
                timeout_ms,
            })),
            (None, Some(http)) => Some(HealthPlan::Http(HttpProbe {
                port: http.port,
                path: http.path.clone(),
                timeout_ms,
            })),
            (Some(_), Some(_)) => {
                p.push(at("health"), "give either cmd or http, not both");
                None
            }
            _ => {
                p.push(
                    at("health"),
                    "needs a probe: cmd (a command) or http (port, path)",
                );
                None
            }
        };
        plan.map(|pl| (interval, pl))
    });
    let (health_interval, health) = match health {
        Some((i, pl)) => (i, Some(pl)),
        None => (Duration::from_secs(30), None),
    };
    let sizing_window = p.duration_in(
        &at("sizing.burst_window"),
        &raw.sizing.burst_window,
        secs(10),
        secs(1),
        secs(3600),
    );
    let cooldown = p.duration_in(
        &at("sizing.cooldown"),
        &raw.sizing.cooldown,
        secs(30),
        Duration::ZERO,
        day,
    );
    let sizing = match raw.sizing.policy.unwrap_or(SizingKind::Adaptive) {
        SizingKind::Fixed => BuiltinSizing::Fixed,
        SizingKind::Adaptive => BuiltinSizing::Adaptive(AdaptiveConfig {
            burst_window_ms: sizing_window.as_millis() as u64,
            cooldown_ms: cooldown.as_millis() as u64,
        }),
    };
    let exhaustion = match raw.exhaustion.strategy.unwrap_or(Strategy::Cold) {
        Strategy::Wait => BuiltinExhaustion::Wait,
        Strategy::Fail => BuiltinExhaustion::Fail,
        Strategy::Cold => BuiltinExhaustion::Cold,
    };
    let spec = ContainerSpec {
        image: raw.image,
        cmd,
        env: raw.env,
        workdir: raw.workdir,
        user: raw.user,
        labels: raw.labels,
        memory: Some(memory as i64),
        nano_cpus,
        pids_limit: Some(pids_limit),
        network: raw.network.unwrap_or_else(|| "none".into()),
        read_only: raw.read_only.unwrap_or(false),
        init: raw.init.unwrap_or(true),
        cap_drop: raw.cap_drop.unwrap_or_else(|| vec!["ALL".into()]),
        cap_add: raw.cap_add,
        no_new_privileges: raw.no_new_privileges.unwrap_or(true),
        setup,
        setup_timeout,
    };
    PoolPlan {
        pool: PoolConfig {
            name,
            spec,
            min_ready,
            max_ready,
            max_total,
            default_ttl,
            max_ttl,
            max_warm_age,
            idle_timeout,
            wait_timeout,
            health_interval,
            max_lifetime,
            image_check_interval,
            reuse,
            probation,
            start_settle,
        },
        sizing,
        exhaustion,
        health,
        plugins: crate::PoolPlugins {
            sizing: plugin_ref(p, &at("plugins.sizing"), &raw.plugins.sizing),
            exhaustion: plugin_ref(p, &at("plugins.exhaustion"), &raw.plugins.exhaustion),
            health: plugin_ref(p, &at("plugins.health"), &raw.plugins.health),
        },
    }
}
