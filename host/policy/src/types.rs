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
    pub source: AcquireSource,
}

/// Everything a policy may know about a pool at one instant. Counts are per state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolSnapshot {
    /// Milliseconds on the host's monotonic clock; policies get no clock of their own.
    pub now_ms: u64,
    pub ready: u32,
    pub creating: u32,
    pub leased: u32,
    pub removing: u32,
    pub unhealthy: u32,
    /// Acquires queued for a container right now.
    pub waiters: u32,
    pub min_ready: u32,
    pub max_ready: u32,
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
    pub target: u32,
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
    Wait { max_ms: u64 },
    /// Refuse now; the client may retry after `retry_after_ms`.
    Fail { retry_after_ms: u64, reason: String },
    /// Create a container for this request now, counted against the caps.
    ColdCreate,
}

/// What a health check knows about the container it judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
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
    Exec { argv: Vec<String>, timeout_ms: u64 },
    /// HTTP GET `path` on the container's `port`.
    Http {
        port: u16,
        path: String,
        timeout_ms: u64,
    },
    /// Open a TCP connection to the container's `port`.
    Tcp { port: u16, timeout_ms: u64 },
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
    Exec {
        exit_code: i64,
        output: String,
    },
    Http {
        status: u16,
    },
    TcpConnected,
    TimedOut,
    /// The probe could not run at all (no address, engine error, …).
    Error {
        reason: String,
    },
}

/// A health check's judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// Remove the container now and replace it.
    Unhealthy {
        reason: String,
    },
    /// The container works but should be replaced (e.g. it is worn); handled like unhealthy
    /// but reported apart.
    Recycle {
        reason: String,
    },
}
