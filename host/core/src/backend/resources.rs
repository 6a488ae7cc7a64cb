//! A container's CPU and memory limits, as a lease may change them (`resources:` of a pool,
//! asked at acquire or by a `PATCH` of the lease), and the bounds a pool sets on them.

use super::ContainerSpec;

/// The engine's floor on a CPU limit: 0.01 CPU (Docker refuses less).
pub const MIN_NANO_CPUS: i64 = 10_000_000;
/// The engine's floor on a memory limit: 6 MiB (Docker refuses less).
pub const MIN_MEMORY: i64 = 6 << 20;

/// CPU and memory limits of one container. The memory limit includes swap (the daemon sets
/// swap equal to memory: no swap on top of the limit), as at create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU limit in billionths of a CPU (Docker's NanoCpus); `None`: unlimited.
    pub nano_cpus: Option<i64>,
    /// Memory limit in bytes; `None`: unlimited.
    pub memory: Option<i64>,
}

impl Resources {
    /// The limits a container of `spec` is created with: the pool's own.
    pub fn of(spec: &ContainerSpec) -> Self {
        Self {
            nano_cpus: spec.nano_cpus,
            memory: spec.memory,
        }
    }

    /// Whether this asks for nothing (as an ask: both fields keep what the container has).
    pub fn is_empty(&self) -> bool {
        self.nano_cpus.is_none() && self.memory.is_none()
    }
}

/// `pools.<name>.resources`: the most a lease of the pool may ask for. A bound that is `None`
/// takes no ask of its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceBounds {
    /// The most CPU a lease may ask for, in billionths of a CPU.
    pub max_nano_cpus: Option<i64>,
    /// The most memory a lease may ask for, in bytes.
    pub max_memory: Option<i64>,
}

/// Why an ask for resources was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The pool sets no `resources:`, so it takes no ask.
    #[error(
        "pool {pool:?} does not allow choosing cpus or memory per lease (its config sets no \
         `resources:` bounds)"
    )]
    NotAllowed {
        /// The pool.
        pool: String,
    },
    /// The ask is outside a bound; the message starts with its name.
    #[error("{bound}: {message}")]
    OutOfBounds {
        /// `resources.max_cpus`, `resources.max_memory`, or the engine's floors `min_cpus`
        /// (0.01) and `min_memory` (6 MiB).
        bound: &'static str,
        /// What is outside it, with the numbers.
        message: String,
    },
}

impl ResourceBounds {
    /// The limits a lease of pool `pool` gets when it has `current` and asks for `ask` (a
    /// field not asked keeps its current value), or which bound the ask breaks.
    pub fn resolve(
        bounds: Option<&Self>,
        pool: &str,
        current: Resources,
        ask: &Resources,
    ) -> Result<Resources, ResourceError> {
        let Some(b) = bounds else {
            return Err(ResourceError::NotAllowed { pool: pool.into() });
        };
        let out = |bound: &'static str, message: String| {
            Err(ResourceError::OutOfBounds { bound, message })
        };
        if let Some(n) = ask.nano_cpus {
            let Some(max) = b.max_nano_cpus else {
                return out(
                    "resources.max_cpus",
                    format!("pool {pool:?} sets no resources.max_cpus: it takes no cpus ask"),
                );
            };
            if n < MIN_NANO_CPUS {
                return out(
                    "min_cpus",
                    format!("cpus {} is below the engine's floor of 0.01", cpus(n)),
                );
            }
            if n > max {
                return out(
                    "resources.max_cpus",
                    format!("cpus {} > the pool's max_cpus {}", cpus(n), cpus(max)),
                );
            }
        }
        if let Some(m) = ask.memory {
            let Some(max) = b.max_memory else {
                return out(
                    "resources.max_memory",
                    format!("pool {pool:?} sets no resources.max_memory: it takes no memory ask"),
                );
            };
            if m < MIN_MEMORY {
                return out(
                    "min_memory",
                    format!("memory {m} bytes is below the engine's floor of 6 MiB"),
                );
            }
            if m > max {
                return out(
                    "resources.max_memory",
                    format!("memory {m} bytes > the pool's max_memory {max} bytes"),
                );
            }
        }
        Ok(Resources {
            nano_cpus: ask.nano_cpus.or(current.nano_cpus),
            memory: ask.memory.or(current.memory),
        })
    }
}

/// Billionths of a CPU as CPUs, for messages.
fn cpus(nano: i64) -> f64 {
    nano as f64 / 1e9
}

/// `512m`, `2g`, `64KiB`, `1048576`: binary units, as Docker reads them (a pool's `memory` in
/// the config, a lease's `memory` in the API).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (num.is_finite() && num >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}
