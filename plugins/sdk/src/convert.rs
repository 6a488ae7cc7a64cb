//! Conversions between the generated WIT types and `warmpool_policy`'s. The generated types
//! differ per world module but have one shape, so one macro serves all three.

macro_rules! conversions {
    () => {
        use warmpool_policy as p;

        #[allow(dead_code)]
        pub fn from_wit_snapshot(s: PoolSnapshot) -> p::PoolSnapshot {
            p::PoolSnapshot {
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
                    .into_iter()
                    .map(|a| p::AcquireSample {
                        at_ms: a.at_ms,
                        source: match a.source {
                            AcquireSource::Pool => p::AcquireSource::Pool,
                            AcquireSource::Cold => p::AcquireSource::Cold,
                        },
                    })
                    .collect(),
                recent_create_ms: s.recent_create_ms,
                idle_timeout_ms: s.idle_timeout_ms,
            }
        }

        #[allow(dead_code)]
        pub fn to_wit_decision(d: p::SizingDecision) -> SizingDecision {
            SizingDecision {
                target: d.target,
                reason: d.reason,
            }
        }

        #[allow(dead_code)]
        pub fn from_wit_request(r: ExhaustionRequest) -> p::ExhaustionRequest {
            p::ExhaustionRequest {
                wait_ms: r.wait_ms,
                wait_timeout_ms: r.wait_timeout_ms,
            }
        }

        #[allow(dead_code)]
        pub fn to_wit_action(a: p::ExhaustionAction) -> ExhaustionAction {
            match a {
                p::ExhaustionAction::Wait { max_ms } => ExhaustionAction::Wait(max_ms),
                p::ExhaustionAction::Fail {
                    retry_after_ms,
                    reason,
                } => ExhaustionAction::Fail(FailInfo {
                    retry_after_ms,
                    reason,
                }),
                p::ExhaustionAction::ColdCreate => ExhaustionAction::ColdCreate,
            }
        }

        #[allow(dead_code)]
        pub fn from_wit_container(c: ContainerInfo) -> p::ContainerInfo {
            p::ContainerInfo {
                id: c.id,
                pool: c.pool,
                age_ms: c.age_ms,
                uses: c.uses,
            }
        }

        #[allow(dead_code)]
        pub fn to_wit_probe(probe: p::Probe) -> Probe {
            match probe {
                p::Probe::Exec { argv, timeout_ms } => Probe::Exec(ExecProbe { argv, timeout_ms }),
                p::Probe::Http {
                    port,
                    path,
                    timeout_ms,
                } => Probe::Http(HttpProbe {
                    port,
                    path,
                    timeout_ms,
                }),
                p::Probe::Tcp { port, timeout_ms } => Probe::Tcp(TcpProbe { port, timeout_ms }),
            }
        }

        #[allow(dead_code)]
        pub fn from_wit_probe_result(r: ProbeResult) -> p::ProbeResult {
            match r {
                ProbeResult::Exec(e) => p::ProbeResult::Exec {
                    exit_code: e.exit_code,
                    output: e.output,
                },
                ProbeResult::Http(status) => p::ProbeResult::Http { status },
                ProbeResult::TcpConnected => p::ProbeResult::TcpConnected,
                ProbeResult::TimedOut => p::ProbeResult::TimedOut,
                ProbeResult::Error(reason) => p::ProbeResult::Error { reason },
            }
        }

        #[allow(dead_code)]
        pub fn to_wit_verdict(v: p::Verdict) -> Verdict {
            match v {
                p::Verdict::Healthy => Verdict::Healthy,
                p::Verdict::Unhealthy { reason } => Verdict::Unhealthy(reason),
                p::Verdict::Recycle { reason } => Verdict::Recycle(reason),
            }
        }
    };
}

pub(crate) use conversions;
