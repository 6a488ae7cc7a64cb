//! Validation of a pool's `resources:` section: the bounds of what a lease may ask for.

use warmpool_core::{ContainerSpec, ResourceBounds};

use crate::problems::Problems;
use crate::raw::RawResources;

/// `resources:`: the bounds of a lease's own cpus and memory, consistent with the pool's own
/// limits (each bound at least the pool's; a cpus bound needs the pool's `cpus`, which a reuse
/// puts back: the engine cannot take a CPU limit off again).
pub(crate) fn resources(
    p: &mut Problems,
    path: &str,
    raw: &RawResources,
    spec: &ContainerSpec,
) -> ResourceBounds {
    let at = |k: &str| format!("{path}.resources.{k}");
    if raw.max_cpus.is_none() && raw.max_memory.is_none() {
        p.push(
            format!("{path}.resources"),
            "give max_cpus, max_memory or both (or leave resources out)",
        );
    }
    let max_nano_cpus = match raw.max_cpus {
        None => None,
        Some(c) if !(0.01..=1024.0).contains(&c) => {
            p.push(
                at("max_cpus"),
                format!("must be between 0.01 and 1024 ({c})"),
            );
            None
        }
        Some(c) => {
            let n = (c * 1e9) as i64;
            match spec.nano_cpus {
                None => p.push(
                    at("max_cpus"),
                    format!(
                        "needs the pool's own `{path}.cpus`: a reused container gets the pool's \
                         limit back, and the engine cannot lift a CPU limit once set"
                    ),
                ),
                Some(own) if own > n => p.push(
                    at("max_cpus"),
                    format!("must be ≥ the pool's cpus ({} > {c})", own as f64 / 1e9),
                ),
                Some(_) => {}
            }
            Some(n)
        }
    };
    let max_memory = raw.max_memory.as_ref().map(|_| {
        let m = p.size_in(&at("max_memory"), &raw.max_memory, 0, 6 << 20, 1 << 40) as i64;
        if let Some(own) = spec.memory
            && own > m
        {
            p.push(
                at("max_memory"),
                format!("must be ≥ the pool's memory ({own} > {m} bytes)"),
            );
        }
        m
    });
    ResourceBounds {
        max_nano_cpus,
        max_memory,
    }
}
