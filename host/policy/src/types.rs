//! Plain data exchanged between the pool core and a policy. These records mirror the WIT package
//! `warmpool:plugin` one to one, so the wasm bindings convert field by field.

/// Where an acquired container came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireSource {
    /// Taken from the warm pool.
    Pool,
    /// Created on demand because the pool was empty.
    Cold,
}

/// One recent acquire, as the sizing policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireSample {
    /// Time of the acquire, in the same clock as [`PoolSnapshot::now_ms`].
    pub at_ms: u64,
    /// Whether the acquire was served from the pool or created cold.
    pub source: AcquireSource,
}

/// Everything a policy may know about a pool at one instant. Counts are per state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolSnapshot {
    /// Milliseconds on the host's monotonic clock; policies get no clock of their own.
    pub now_ms: u64,
    /// Containers ready to be leased.
    pub ready: u32,
    /// Containers being created, started and set up.
    pub creating: u32,
    /// Containers leased to clients.
    pub leased: u32,
    /// Containers being removed.
    pub removing: u32,
    /// Containers found unhealthy and not yet removed.
    pub unhealthy: u32,
    /// Acquires queued for a container right now.
    pub waiters: u32,
    /// Configured floor of ready containers.
    pub min_ready: u32,
    /// Configured upper bound on ready containers.
    pub max_ready: u32,
    /// Configured cap on the pool's containers in any state.
    pub max_total: u32,
    /// Containers the global cap still allows, over all pools.
    pub global_free: u32,
    /// The target the pool works toward now (the last decision, clamped).
    pub current_target: u32,
    /// Milliseconds since the last acquire; `None` when the pool never had one.
    pub since_last_acquire_ms: Option<u64>,
    /// Recent acquires, oldest first (a bounded window).
    pub recent_acquires: Vec<AcquireSample>,
    /// Recent create+start(+setup) latencies in milliseconds, oldest first.
    pub recent_create_ms: Vec<u32>,
    /// The pool's `lifecycle.idle_timeout`, in milliseconds.
    pub idle_timeout_ms: u64,
}

impl PoolSnapshot {
    /// Every container the pool holds, in any state.
    pub fn total(&self) -> u32 {
        self.ready + self.creating + self.leased + self.removing + self.unhealthy
    }

    /// Acquires at or after `now_ms - window_ms`.
    pub fn acquires_within(&self, window_ms: u64) -> u32 {
        let since = self.now_ms.saturating_sub(window_ms);
        self.recent_acquires
            .iter()
            .filter(|a| a.at_ms >= since)
            .count() as u32
    }

    /// Median of the recent create latencies, if any were measured.
    pub fn median_create_ms(&self) -> Option<u32> {
        if self.recent_create_ms.is_empty() {
            return None;
        }
        let mut v = self.recent_create_ms.clone();
        v.sort_unstable();
        Some(v[v.len() / 2])
    }
}

/// A sizing policy's answer: how many containers to keep ready, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizingDecision {
    /// Containers to keep ready; the core clamps it to `[0, max_ready]`.
    pub target: u32,
    /// Human-readable explanation, reported with the pool's stats.
    pub reason: String,
}

/// The acquire that found the pool empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExhaustionRequest {
    /// The client's own bound on waiting, if it gave one.
    pub wait_ms: Option<u64>,
    /// The pool's `exhaustion.wait_timeout`, in milliseconds.
    pub wait_timeout_ms: u64,
}

/// What an acquire does when no container is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExhaustionAction {
    /// Queue (FIFO) for the next ready container, for at most `max_ms`.
    Wait {
        /// Longest wait in milliseconds; the host also bounds it by the client's wait.
        max_ms: u64,
    },
    /// Refuse now; the client may retry after `retry_after_ms`.
    Fail {
        /// Client back-off in milliseconds, sent as Retry-After; the host caps it.
        retry_after_ms: u64,
        /// Why the acquire was refused; the host clips its length.
        reason: String,
    },
    /// Create a container for this request now, counted against the caps.
    ColdCreate,
}

/// What a health check knows about the container it judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The container's engine (Docker) id.
    pub id: String,
    /// Name of the pool that holds the container.
    pub pool: String,
    /// Milliseconds since the container became ready.
    pub age_ms: u64,
    /// How many leases the container has served.
    pub uses: u32,
}

/// One check the host runs on a health check's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Run `argv` inside the container; success is exit code 0.
    Exec {
        /// Program and its arguments, run directly, not through a shell.
        argv: Vec<String>,
        /// Time limit in milliseconds; past it the result is `TimedOut`.
        timeout_ms: u64,
    },
    /// HTTP GET `path` on the container's `port`.
    Http {
        /// Container port to send the request to.
        port: u16,
        /// Path to GET, as sent in the request line.
        path: String,
        /// Time limit for connect, request and response, in milliseconds.
        timeout_ms: u64,
    },
    /// Open a TCP connection to the container's `port`.
    Tcp {
        /// Container port to connect to.
        port: u16,
        /// Connect time limit, in milliseconds.
        timeout_ms: u64,
    },
}

impl Probe {
    /// The probe's own time limit.
    pub fn timeout_ms(&self) -> u64 {
        match self {
            Probe::Exec { timeout_ms, .. }
            | Probe::Http { timeout_ms, .. }
            | Probe::Tcp { timeout_ms, .. } => *timeout_ms,
        }
    }
}

/// What the host observed running one [`Probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The command ran to completion.
    Exec {
        /// The command's exit code; 0 means success.
        exit_code: i64,
        /// The command's stdout followed by its stderr, capped by the host.
        output: String,
    },
    /// The HTTP GET got a response.
    Http {
        /// Status code of the HTTP response.
        status: u16,
    },
    /// The TCP connection was established.
    TcpConnected,
    /// The probe did not finish within its `timeout_ms`.
    TimedOut,
    /// The probe could not run at all (no address, engine error, …).
    Error {
        /// Why the probe could not run.
        reason: String,
    },
}

/// A health check's judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The container is fine and stays in the pool.
    Healthy,
    /// Remove the container now and replace it.
    Unhealthy {
        /// What failed; logged when the container is retired.
        reason: String,
    },
    /// The container works but should be replaced (e.g. it is worn); handled like unhealthy
    /// but reported apart.
    Recycle {
        /// Why the container should be replaced.
        reason: String,
    },
}
