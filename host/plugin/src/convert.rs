//! `warmpool_policy` types ↔ the generated WIT types (field by field, both ways).

use warmpool_core::policy_logic as p;

use crate::bindings::types as w;

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

pub fn decision(d: w::SizingDecision) -> p::SizingDecision {
    p::SizingDecision {
        target: d.target,
        reason: d.reason,
    }
}

pub fn request(r: &p::ExhaustionRequest) -> w::ExhaustionRequest {
    w::ExhaustionRequest {
        wait_ms: r.wait_ms,
        wait_timeout_ms: r.wait_timeout_ms,
    }
}

pub fn action(a: w::ExhaustionAction) -> p::ExhaustionAction {
    match a {
        w::ExhaustionAction::Wait(max_ms) => p::ExhaustionAction::Wait { max_ms },
        w::ExhaustionAction::Fail(f) => p::ExhaustionAction::Fail {
            retry_after_ms: f.retry_after_ms,
            reason: f.reason,
        },
        w::ExhaustionAction::ColdCreate => p::ExhaustionAction::ColdCreate,
    }
}

pub fn container(c: &p::ContainerInfo) -> w::ContainerInfo {
    w::ContainerInfo {
        id: c.id.clone(),
        pool: c.pool.clone(),
        age_ms: c.age_ms,
        uses: c.uses,
    }
}

pub fn probe(pr: w::Probe) -> p::Probe {
    match pr {
        w::Probe::Exec(e) => p::Probe::Exec {
            argv: e.argv,
            timeout_ms: e.timeout_ms,
        },
        w::Probe::Http(h) => p::Probe::Http {
            port: h.port,
            path: h.path,
            timeout_ms: h.timeout_ms,
        },
        w::Probe::Tcp(t) => p::Probe::Tcp {
            port: t.port,
            timeout_ms: t.timeout_ms,
        },
    }
}

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

pub fn verdict(v: w::Verdict) -> p::Verdict {
    match v {
        w::Verdict::Healthy => p::Verdict::Healthy,
        w::Verdict::Unhealthy(reason) => p::Verdict::Unhealthy { reason },
        w::Verdict::Recycle(reason) => p::Verdict::Recycle { reason },
    }
}
