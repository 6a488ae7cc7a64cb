//! `warmpool_policy` types ↔ the generated WIT types (field by field, both ways), with every
//! string and list a guest returns cut to bounds on the way in. Each cut is counted ([`Cut`]),
//! so `/v1/plugins` can say a plugin answers more than it may.

use std::sync::atomic::{AtomicU64, Ordering};

use warmpool_core::bounds;
use warmpool_core::policy_logic as p;

use crate::bindings::types as w;

/// Counts what was cut from a plugin's answers.
#[derive(Debug, Default)]
pub struct Cut(AtomicU64);

impl Cut {
    /// How many strings, lists and numbers have been cut so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn str(&self, s: String, max: usize) -> String {
        if s.len() <= max {
            return s;
        }
        self.0.fetch_add(1, Ordering::Relaxed);
        clip(&s, max)
    }

    fn list<T>(&self, mut v: Vec<T>, max: usize) -> Vec<T> {
        if v.len() > max {
            self.0.fetch_add(1, Ordering::Relaxed);
            v.truncate(max);
        }
        v
    }

    fn num(&self, n: u64, max: u64) -> u64 {
        if n > max {
            self.0.fetch_add(1, Ordering::Relaxed);
            return max;
        }
        n
    }
}

/// `s`, cut to at most `max` bytes on a character boundary, marked when cut.
pub fn clip(s: &str, max: usize) -> String {
    warmpool_core::bounds::clip(s, max)
}

/// A pool snapshot, for the guest, field by field.
pub fn snapshot(s: &p::PoolSnapshot) -> w::PoolSnapshot {
    w::PoolSnapshot {
        now_ms: s.now_ms,
        ready: s.ready,
        creating: s.creating,
        leased: s.leased,
        removing: s.removing,
        unhealthy: s.unhealthy,
        waiters: s.waiters,
        min_ready: s.min_ready,
        max_ready: s.max_ready,
        max_total: s.max_total,
        global_free: s.global_free,
        current_target: s.current_target,
        since_last_acquire_ms: s.since_last_acquire_ms,
        recent_acquires: s
            .recent_acquires
            .iter()
            .map(|a| w::AcquireSample {
                at_ms: a.at_ms,
                source: match a.source {
                    p::AcquireSource::Pool => w::AcquireSource::Pool,
                    p::AcquireSource::Cold => w::AcquireSource::Cold,
                },
            })
            .collect(),
        recent_create_ms: s.recent_create_ms.clone(),
        idle_timeout_ms: s.idle_timeout_ms,
    }
}

/// A guest's sizing decision, its reason cut to `bounds::MAX_REASON` bytes.
pub fn decision(d: w::SizingDecision, cut: &Cut) -> p::SizingDecision {
    p::SizingDecision {
        target: d.target,
        reason: cut.str(d.reason, bounds::MAX_REASON),
    }
}

/// An acquire that found no ready container, for the guest's `on-exhausted`.
pub fn request(r: &p::ExhaustionRequest) -> w::ExhaustionRequest {
    w::ExhaustionRequest {
        wait_ms: r.wait_ms,
        wait_timeout_ms: r.wait_timeout_ms,
    }
}

/// A guest's exhaustion action, its retry-after (ms) and reason cut to the host's bounds.
pub fn action(a: w::ExhaustionAction, cut: &Cut) -> p::ExhaustionAction {
    match a {
        w::ExhaustionAction::Wait(max_ms) => p::ExhaustionAction::Wait { max_ms },
        w::ExhaustionAction::Fail(f) => p::ExhaustionAction::Fail {
            retry_after_ms: cut.num(f.retry_after_ms, bounds::MAX_RETRY_AFTER_MS),
            reason: cut.str(f.reason, bounds::MAX_REASON),
        },
        w::ExhaustionAction::ColdCreate => p::ExhaustionAction::ColdCreate,
    }
}

/// A container's description, for the guest's `plan` and `judge`.
pub fn container(c: &p::ContainerInfo) -> w::ContainerInfo {
    w::ContainerInfo {
        id: c.id.clone(),
        pool: c.pool.clone(),
        age_ms: c.age_ms,
        uses: c.uses,
    }
}

/// A guest's probe list, cut to the host's bounds: count, argv, strings, and timeouts
/// (in ms, at least 1).
pub fn probes(v: Vec<w::Probe>, cut: &Cut) -> Vec<p::Probe> {
    let t = |ms: u64| cut.num(ms, bounds::MAX_PROBE_TIMEOUT_MS).max(1);
    cut.list(v, bounds::MAX_PROBES)
        .into_iter()
        .map(|pr| match pr {
            w::Probe::Exec(e) => p::Probe::Exec {
                argv: cut
                    .list(e.argv, bounds::MAX_ARGS)
                    .into_iter()
                    .map(|a| cut.str(a, bounds::MAX_ARG))
                    .collect(),
                timeout_ms: t(e.timeout_ms),
            },
            w::Probe::Http(h) => p::Probe::Http {
                port: h.port,
                path: cut.str(h.path, bounds::MAX_ARG),
                timeout_ms: t(h.timeout_ms),
            },
            w::Probe::Tcp(tc) => p::Probe::Tcp {
                port: tc.port,
                timeout_ms: t(tc.timeout_ms),
            },
        })
        .collect()
}

/// A probe's result, for the guest's `judge`.
pub fn probe_result(r: &p::ProbeResult) -> w::ProbeResult {
    match r {
        p::ProbeResult::Exec { exit_code, output } => w::ProbeResult::Exec(w::ExecResult {
            exit_code: *exit_code,
            output: output.clone(),
        }),
        p::ProbeResult::Http { status } => w::ProbeResult::Http(*status),
        p::ProbeResult::TcpConnected => w::ProbeResult::TcpConnected,
        p::ProbeResult::TimedOut => w::ProbeResult::TimedOut,
        p::ProbeResult::Error { reason } => w::ProbeResult::Error(reason.clone()),
    }
}

/// A guest's health verdict, its reason cut to `bounds::MAX_REASON` bytes.
pub fn verdict(v: w::Verdict, cut: &Cut) -> p::Verdict {
    match v {
        w::Verdict::Healthy => p::Verdict::Healthy,
        w::Verdict::Unhealthy(reason) => p::Verdict::Unhealthy {
            reason: cut.str(reason, bounds::MAX_REASON),
        },
        w::Verdict::Recycle(reason) => p::Verdict::Recycle {
            reason: cut.str(reason, bounds::MAX_REASON),
        },
    }
}
