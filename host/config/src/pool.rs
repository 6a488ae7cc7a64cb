//! Validation of one pool: raw YAML to `warmpool_core::PoolConfig` plus the policies that serve
//! it, every problem at its path. One function per section of the pool's YAML; `validate_pool`
//! puts them together. Plugin entries are read in [`crate::plugins`].

use std::time::Duration;

use warmpool_core::policy_logic::health::{ExecProbe, HttpProbe};
use warmpool_core::policy_logic::sizing::AdaptiveConfig;
use warmpool_core::{
    BuiltinExhaustion, BuiltinSizing, ContainerSpec, ExecMode, HibernationConfig, ImageSource,
    OnSuspended, PoolConfig, ReuseConfig,
};

use crate::resources::resources;

use crate::plugins::plugin_ref;
use crate::problems::Problems;
use crate::raw::*;
use crate::{HealthPlan, PoolPlan};

/// Most containers one pool may keep ready, and hold in all.
const MAX_POOL: u32 = 10_000;
const MAX_POOL_TOTAL: u32 = crate::problems::MAX_CONTAINERS;

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const DAY: Duration = secs(24 * 3600);

/// Pool `name` at YAML path `path`.
pub(crate) fn validate_pool(p: &mut Problems, path: &str, name: String, raw: RawPool) -> PoolPlan {
    let at = |k: &str| format!("{path}.{k}");
    let spec = container_spec(p, path, &raw);
    let resources = raw.resources.as_ref().map(|r| resources(p, path, r, &spec));
    let (min_ready, max_ready, max_total) = sizes(p, path, &raw);
    let (default_ttl, max_ttl) = lease_ttls(p, path, &raw.lease);
    let life = lifecycle(p, path, &raw.lifecycle);
    let reuse = raw.reuse.enabled.then(|| reuse(p, path, &raw.reuse));
    if reuse.is_some() {
        reuse_caps(p, path, &spec.cap_add);
    }
    if spec.exec == ExecMode::Agent {
        agent_caps(p, path, &spec.cap_add);
    }
    let wait_timeout = p.duration_in(
        &at("exhaustion.wait_timeout"),
        &raw.exhaustion.wait_timeout,
        secs(30),
        Duration::ZERO,
        secs(3600),
    );
    let (health_interval, health) = match raw.health.as_ref().and_then(|h| health(p, path, h)) {
        Some((i, pl)) => (i, Some(pl)),
        None => (secs(30), None),
    };
    let sizing = sizing(p, path, &raw.sizing);
    let exhaustion = match raw.exhaustion.strategy.unwrap_or(Strategy::Cold) {
        Strategy::Wait => BuiltinExhaustion::Wait,
        Strategy::Fail => BuiltinExhaustion::Fail,
        Strategy::Cold => BuiltinExhaustion::Cold,
    };
    let plugins = crate::PoolPlugins {
        sizing: plugin_ref(p, &at("plugins.sizing"), &raw.plugins.sizing),
        exhaustion: plugin_ref(p, &at("plugins.exhaustion"), &raw.plugins.exhaustion),
        health: plugin_ref(p, &at("plugins.health"), &raw.plugins.health),
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
            max_warm_age: life.max_warm_age,
            idle_timeout: life.idle_timeout,
            wait_timeout,
            health_interval,
            max_lifetime: life.max_lifetime,
            image_check_interval: life.image_check_interval,
            reuse,
            probation: life.probation,
            start_settle: life.start_settle,
            resources,
            hibernation: hibernation(p, path, &raw.lease),
        },
        sizing,
        exhaustion,
        health,
        plugins,
    }
}

/// `min_ready`, `max_ready`, `max_total`, each within bounds and in that order.
fn sizes(p: &mut Problems, path: &str, raw: &RawPool) -> (u32, u32, u32) {
    let at = |k: &str| format!("{path}.{k}");
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
    (min_ready, max_ready, max_total)
}

/// `lease:`: the default and the longest TTL.
fn lease_ttls(p: &mut Problems, path: &str, raw: &RawLease) -> (Duration, Duration) {
    let at = |k: &str| format!("{path}.lease.{k}");
    let default_ttl = p.duration_in(
        &at("default_ttl"),
        &raw.default_ttl,
        secs(600),
        secs(1),
        30 * DAY,
    );
    let max_ttl = p.duration_in(
        &at("max_ttl"),
        &raw.max_ttl,
        secs(3600).max(default_ttl),
        secs(1),
        365 * DAY,
    );
    if default_ttl > max_ttl {
        p.push(
            at("default_ttl"),
            format!("must be ≤ lease.max_ttl ({default_ttl:?} > {max_ttl:?})"),
        );
    }
    (default_ttl, max_ttl)
}

/// `lease.on_suspended` and `lease.suspend_after_idle`: lease hibernation.
fn hibernation(p: &mut Problems, path: &str, raw: &RawLease) -> HibernationConfig {
    let at = |k: &str| format!("{path}.lease.{k}");
    HibernationConfig {
        on_suspended: match raw.on_suspended.unwrap_or(OnSuspendedRaw::Resume) {
            OnSuspendedRaw::Resume => OnSuspended::Resume,
            OnSuspendedRaw::Refuse => OnSuspended::Refuse,
        },
        suspend_after_idle: raw.suspend_after_idle.as_ref().map(|_| {
            p.duration_in(
                &at("suspend_after_idle"),
                &raw.suspend_after_idle,
                secs(300),
                secs(1),
                30 * DAY,
            )
        }),
    }
}

/// The `lifecycle:` section, validated.
struct Lifecycle {
    max_warm_age: Option<Duration>,
    max_lifetime: Option<Duration>,
    image_check_interval: Duration,
    probation: Duration,
    start_settle: Duration,
    idle_timeout: Duration,
}

fn lifecycle(p: &mut Problems, path: &str, raw: &RawLifecycle) -> Lifecycle {
    let at = |k: &str| format!("{path}.lifecycle.{k}");
    let max_warm_age = raw.max_warm_age.as_ref().map(|_| {
        p.duration_in(
            &at("max_warm_age"),
            &raw.max_warm_age,
            secs(1800),
            secs(1),
            30 * DAY,
        )
    });
    let max_lifetime = raw.max_lifetime.as_ref().map(|_| {
        p.duration_in(
            &at("max_lifetime"),
            &raw.max_lifetime,
            secs(3600),
            secs(1),
            365 * DAY,
        )
    });
    Lifecycle {
        max_warm_age,
        max_lifetime,
        image_check_interval: p.duration_in(
            &at("image_check_interval"),
            &raw.image_check_interval,
            secs(30),
            Duration::from_millis(100),
            DAY,
        ),
        probation: p.duration_in(
            &at("probation"),
            &raw.probation,
            secs(10),
            Duration::ZERO,
            secs(600),
        ),
        start_settle: p.duration_in(
            &at("start_settle"),
            &raw.start_settle,
            Duration::from_millis(100),
            Duration::ZERO,
            secs(10),
        ),
        idle_timeout: p.duration_in(
            &at("idle_timeout"),
            &raw.idle_timeout,
            secs(600),
            secs(1),
            30 * DAY,
        ),
    }
}

/// `reuse:`, when enabled. Reuse is only safe when the reset is explicit and its result is
/// checked, so both are required.
fn reuse(p: &mut Problems, path: &str, r: &RawReuse) -> ReuseConfig {
    let at = |k: &str| format!("{path}.reuse.{k}");
    let max_uses = p.count_in(&at("max_uses"), r.max_uses, 10, 2, 1_000_000);
    if r.reset.is_empty() {
        p.push(at("reset"), "reuse needs at least one reset command");
    }
    if r.verify.is_empty() {
        p.push(
            at("verify"),
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
    ReuseConfig {
        max_uses,
        reset: r.reset.iter().map(Command::argv).collect(),
        verify: r.verify.iter().map(Command::argv).collect(),
        timeout: p.duration_in(&at("timeout"), &r.timeout, secs(30), secs(1), secs(3600)),
        allowed_changes: r.allowed_changes.clone(),
    }
}

/// Capabilities under which a client can change what no scrub can see or put back: mounts
/// (`SYS_ADMIN`: mount, remount a read-only mount, unshare) and the network's configuration
/// (`NET_ADMIN`: routes, firewall rules, interfaces). A reuse pool may not grant them.
const UNSCRUBBABLE_CAPS: &[(&str, &str)] = &[
    (
        "SYS_ADMIN",
        "it can mount, remount and unshare, which no scrub can undo",
    ),
    (
        "NET_ADMIN",
        "it can change routes, firewall rules and interfaces, which no scrub checks",
    ),
    ("ALL", "it grants CAP_SYS_ADMIN and CAP_NET_ADMIN"),
];

fn reuse_caps(p: &mut Problems, path: &str, cap_add: &[String]) {
    for (i, cap) in cap_add.iter().enumerate() {
        let name = cap.trim().to_ascii_uppercase();
        let name = name.strip_prefix("CAP_").unwrap_or(&name);
        if let Some((_, why)) = UNSCRUBBABLE_CAPS.iter().find(|(c, _)| *c == name) {
            p.push(
                format!("{path}.cap_add[{i}]"),
                format!(
                    "reuse is enabled, and a client holding {cap} could leave behind what a \
                     scrub cannot return to its state ({why}): drop it, or turn reuse off"
                ),
            );
        }
    }
}

/// Capabilities under which a client could reach into the agent (trace it, read its memory
/// and its channel) despite its being undumpable. An `exec: agent` pool may not grant them.
fn agent_caps(p: &mut Problems, path: &str, cap_add: &[String]) {
    for (i, cap) in cap_add.iter().enumerate() {
        let name = cap.trim().to_ascii_uppercase();
        let name = name.strip_prefix("CAP_").unwrap_or(&name);
        if name == "SYS_PTRACE" || name == "ALL" {
            p.push(
                format!("{path}.cap_add[{i}]"),
                format!(
                    "the pool runs warmpool's agent (`exec: agent`), and a client holding {cap} \
                     could trace it and read its channel: drop it, or set `exec: engine`"
                ),
            );
        }
    }
}

/// `health:`: the probe interval and the probe, or `None` (with a problem) when the probe is
/// missing or ambiguous.
fn health(p: &mut Problems, path: &str, h: &RawHealth) -> Option<(Duration, HealthPlan)> {
    let at = |k: &str| format!("{path}.{k}");
    let interval = p.duration_in(
        &at("health.interval"),
        &h.interval,
        secs(30),
        Duration::from_millis(100),
        DAY,
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
        (Some(c), None) if !c.argv().is_empty() => HealthPlan::Exec(ExecProbe {
            argv: c.argv(),
            timeout_ms,
        }),
        (None, Some(http)) => HealthPlan::Http(HttpProbe {
            port: http.port,
            path: http.path.clone(),
            timeout_ms,
        }),
        (Some(_), Some(_)) => {
            p.push(at("health"), "give either cmd or http, not both");
            return None;
        }
        _ => {
            p.push(
                at("health"),
                "needs a probe: cmd (a command) or http (port, path)",
            );
            return None;
        }
    };
    Some((interval, plan))
}

/// `sizing:`: the built-in sizing policy and its settings.
fn sizing(p: &mut Problems, path: &str, raw: &RawSizing) -> BuiltinSizing {
    let at = |k: &str| format!("{path}.sizing.{k}");
    let window = p.duration_in(
        &at("burst_window"),
        &raw.burst_window,
        secs(10),
        secs(1),
        secs(3600),
    );
    let cooldown = p.duration_in(
        &at("cooldown"),
        &raw.cooldown,
        secs(30),
        Duration::ZERO,
        DAY,
    );
    match raw.policy.unwrap_or(SizingKind::Adaptive) {
        SizingKind::Fixed => BuiltinSizing::Fixed,
        SizingKind::Adaptive => BuiltinSizing::Adaptive(AdaptiveConfig {
            burst_window_ms: window.as_millis() as u64,
            cooldown_ms: cooldown.as_millis() as u64,
        }),
    }
}

/// The container itself: image, command, limits, labels, set-up.
fn container_spec(p: &mut Problems, path: &str, raw: &RawPool) -> ContainerSpec {
    let at = |k: &str| format!("{path}.{k}");
    if raw.image.trim().is_empty() {
        p.push(at("image"), "must name an image");
    }
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
        .as_ref()
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
    let image_source = match raw.image_source.as_deref() {
        None | Some("pull") => ImageSource::Pull,
        Some("copy") => ImageSource::Copy,
        Some("none") => ImageSource::None,
        Some(other) => {
            p.push(
                at("image_source"),
                format!("{other:?} is not one of pull, copy, none"),
            );
            ImageSource::Pull
        }
    };
    let exec = match raw.exec.as_deref() {
        None | Some("agent") => ExecMode::Agent,
        Some("engine") => ExecMode::Engine,
        Some(other) => {
            p.push(at("exec"), format!("{other:?} is not one of agent, engine"));
            ExecMode::Agent
        }
    };
    let runtime = raw.runtime.as_deref().map(|r| {
        if let Err(why) = runtime_name(r) {
            p.push(at("runtime"), why);
        }
        r.to_string()
    });
    let setup_timeout = p.duration_in(
        &at("setup_timeout"),
        &raw.setup_timeout,
        secs(120),
        secs(1),
        secs(3600),
    );
    ContainerSpec {
        image: raw.image.clone(),
        cmd,
        env: raw.env.clone(),
        workdir: raw.workdir.clone(),
        user: raw.user.clone(),
        labels: raw.labels.clone(),
        memory: Some(memory as i64),
        nano_cpus,
        pids_limit: Some(pids_limit),
        runtime,
        network: raw.network.clone().unwrap_or_else(|| "none".into()),
        read_only: raw.read_only.unwrap_or(false),
        init: raw.init.unwrap_or(true),
        cap_drop: raw.cap_drop.clone().unwrap_or_else(|| vec!["ALL".into()]),
        cap_add: raw.cap_add.clone(),
        no_new_privileges: raw.no_new_privileges.unwrap_or(true),
        exec,
        setup,
        setup_timeout,
        image_source,
    }
}

/// A runtime name as engines register them (`runc`, `runsc`, `io.containerd.runsc.v1`):
/// letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most 128 bytes. The
/// name goes to the engine as it is; which engines have it is read from them at run time.
fn runtime_name(r: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if r.is_empty() {
        return Err("must name a runtime (omit it for the engine's default)".into());
    }
    if r.len() > 128 {
        return Err(format!("{} bytes long; at most 128", r.len()));
    }
    if !r.starts_with(|c: char| c.is_ascii_alphanumeric()) || !r.chars().all(ok_char) {
        return Err(format!(
            "{r:?} is not a runtime name: letters, digits, `.`, `_` and `-`, starting with a \
             letter or digit"
        ));
    }
    Ok(())
}
