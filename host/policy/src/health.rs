//! Health checks, in two pure steps: [`plan`](ExecProbe::plan) says which probes the host runs,
//! and [`judge`](ExecProbe::judge) turns their results into a verdict.

use crate::types::{ContainerInfo, Probe, ProbeResult, Verdict};

/// `exec-probe`: run a command inside the container; healthy when it exits 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecProbe {
    /// Program and arguments, run without a shell; `["true"]` by default.
    pub argv: Vec<String>,
    /// Time limit of the command, in milliseconds; 5000 by default.
    pub timeout_ms: u64,
}

impl ExecProbe {
    /// From plugin config pairs: `cmd` (JSON list or shell text), `timeout_ms`.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut p = Self {
            argv: vec!["true".into()],
            timeout_ms: 5_000,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "cmd" => p.argv = crate::config::argv(k, v)?,
                "timeout_ms" => p.timeout_ms = crate::config::number(k, v)?,
                other => {
                    return Err(format!(
                        "unknown setting {other:?} (exec-probe takes cmd, timeout_ms)"
                    ));
                }
            }
        }
        Ok(p)
    }

    /// One exec probe running `argv` within `timeout_ms`.
    pub fn plan(&self, _c: &ContainerInfo) -> Vec<Probe> {
        vec![Probe::Exec {
            argv: self.argv.clone(),
            timeout_ms: self.timeout_ms,
        }]
    }

    /// Healthy when the probe exited 0; see [`judge_all`].
    pub fn judge(&self, _c: &ContainerInfo, results: &[ProbeResult]) -> Verdict {
        judge_all(results)
    }
}

/// `http-probe`: GET a path on a port of the container; healthy on a 2xx or 3xx answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// Container port to GET; required, never 0.
    pub port: u16,
    /// Path to GET; `/` by default.
    pub path: String,
    /// Time limit of the request, in milliseconds; 5000 by default.
    pub timeout_ms: u64,
}

impl HttpProbe {
    /// From plugin config pairs: `port` (required), `path`, `timeout_ms`.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut p = Self {
            port: 0,
            path: "/".into(),
            timeout_ms: 5_000,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "port" => p.port = crate::config::number(k, v)?,
                "path" => p.path = v.clone(),
                "timeout_ms" => p.timeout_ms = crate::config::number(k, v)?,
                other => {
                    return Err(format!(
                        "unknown setting {other:?} (http-probe takes port, path, timeout_ms)"
                    ));
                }
            }
        }
        if p.port == 0 {
            return Err("http-probe needs a port".into());
        }
        Ok(p)
    }

    /// One HTTP probe of `path` on `port` within `timeout_ms`.
    pub fn plan(&self, _c: &ContainerInfo) -> Vec<Probe> {
        vec![Probe::Http {
            port: self.port,
            path: self.path.clone(),
            timeout_ms: self.timeout_ms,
        }]
    }

    /// Healthy on a 2xx or 3xx status; see [`judge_all`].
    pub fn judge(&self, _c: &ContainerInfo, results: &[ProbeResult]) -> Verdict {
        judge_all(results)
    }
}

/// Healthy when every probe passed; otherwise unhealthy, naming the first failure.
pub fn judge_all(results: &[ProbeResult]) -> Verdict {
    for r in results {
        let failure = match r {
            ProbeResult::Exec { exit_code: 0, .. } => None,
            ProbeResult::Exec { exit_code, output } => {
                Some(format!("probe exited {exit_code}: {}", output.trim()))
            }
            ProbeResult::Http { status } if (200..400).contains(status) => None,
            ProbeResult::Http { status } => Some(format!("probe answered HTTP {status}")),
            ProbeResult::TcpConnected => None,
            ProbeResult::TimedOut => Some("probe timed out".to_string()),
            ProbeResult::Error { reason } => Some(format!("probe failed: {reason}")),
        };
        if let Some(reason) = failure {
            return Verdict::Unhealthy { reason };
        }
    }
    Verdict::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_names_the_first_failure() {
        let ok = ProbeResult::Exec {
            exit_code: 0,
            output: String::new(),
        };
        let bad = ProbeResult::Exec {
            exit_code: 3,
            output: "boom\n".into(),
        };
        assert_eq!(judge_all(std::slice::from_ref(&ok)), Verdict::Healthy);
        assert_eq!(
            judge_all(&[ok, bad, ProbeResult::TimedOut]),
            Verdict::Unhealthy {
                reason: "probe exited 3: boom".into()
            }
        );
        assert_eq!(
            judge_all(&[ProbeResult::Http { status: 503 }]),
            Verdict::Unhealthy {
                reason: "probe answered HTTP 503".into()
            }
        );
    }
}
