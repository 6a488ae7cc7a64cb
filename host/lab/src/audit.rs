//! A daemon's audit log (`server.audit_log`: one lifecycle event a line, as
//! `GET /v1/events` sends them) turned into the trace of the traffic it served: each `leased`
//! event is an acquire at that time, held until the `released` event of the same lease
//! (released, expired, or ended otherwise).
//!
//! What the log cannot say: acquires that were refused (429) or gave up never leased anything,
//! so they are missing; and an acquire's own wait is inside its `leased` time. Leases still
//! open when the log ends are held to its last event.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::SystemTime;

use serde::Deserialize;

use crate::trace::{Acquire, Trace, TraceError};

#[derive(Deserialize)]
struct Event {
    at: String,
    kind: String,
    pool: String,
    #[serde(default)]
    lease: Option<String>,
}

/// What a conversion read, besides the trace.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Lines that were not lifecycle events (or not JSON), skipped.
    pub skipped: u64,
    /// Leases whose end the log does not hold.
    pub open_at_end: u64,
}

/// Read an audit log into a trace of every pool's leases, or only `pool`'s.
pub fn trace_from_audit(
    r: impl BufRead,
    pool: Option<&str>,
) -> Result<(Trace, AuditSummary), TraceError> {
    let mut summary = AuditSummary::default();
    let mut open: HashMap<String, usize> = HashMap::new();
    // (start, pool, end)
    let mut leases: Vec<(SystemTime, String, Option<SystemTime>)> = Vec::new();
    let mut last: Option<SystemTime> = None;
    for (i, line) in r.lines().enumerate() {
        let line = line.map_err(|source| TraceError::Io {
            path: format!("line {}", i + 1),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(e) = serde_json::from_str::<Event>(&line) else {
            summary.skipped += 1;
            continue;
        };
        let Ok(at) = humantime::parse_rfc3339(&e.at) else {
            summary.skipped += 1;
            continue;
        };
        last = Some(last.map_or(at, |l: SystemTime| l.max(at)));
        match (e.kind.as_str(), e.lease) {
            ("leased", Some(id)) if pool.is_none_or(|p| p == e.pool) => {
                open.insert(id, leases.len());
                leases.push((at, e.pool, None));
            }
            ("released", Some(id)) => {
                if let Some(i) = open.remove(&id) {
                    leases[i].2 = Some(at);
                }
            }
            _ => {}
        }
    }
    summary.open_at_end = open.len() as u64;
    let Some(first) = leases.iter().map(|l| l.0).min() else {
        return Err(TraceError::Empty);
    };
    let ms = |a: SystemTime, b: SystemTime| b.duration_since(a).map_or(0, |d| d.as_millis() as u64);
    let mut acquires: Vec<Acquire> = leases
        .into_iter()
        .map(|(start, pool, end)| Acquire {
            t_ms: ms(first, start),
            pool,
            hold_ms: ms(start, end.or(last).unwrap_or(start)),
        })
        .collect();
    acquires.sort_by_key(|a| a.t_ms);
    Ok((Trace { acquires }, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_become_acquires_held_until_their_release() {
        let log = r#"{"at":"2026-11-23T10:00:00.000Z","kind":"ready","pool":"p"}
{"at":"2026-11-23T10:00:01.000Z","kind":"leased","pool":"p","lease":"a","reason":"pool"}
{"at":"2026-11-23T10:00:01.500Z","kind":"leased","pool":"q","lease":"b"}
not json
{"at":"2026-11-23T10:00:03.250Z","kind":"released","pool":"p","lease":"a","reason":"expired"}
{"at":"2026-11-23T10:00:04.000Z","kind":"leased","pool":"p","lease":"c"}
{"at":"2026-11-23T10:00:05.000Z","kind":"removed","pool":"p"}
"#;
        let (t, s) = trace_from_audit(log.as_bytes(), None).unwrap();
        let got: Vec<_> = t
            .acquires
            .iter()
            .map(|a| (a.t_ms, a.pool.as_str(), a.hold_ms))
            .collect();
        assert_eq!(
            got,
            vec![(0, "p", 2250), (500, "q", 3500), (3000, "p", 1000)]
        );
        assert_eq!(
            s,
            AuditSummary {
                skipped: 1,
                open_at_end: 2
            }
        );
        let (only_p, _) = trace_from_audit(log.as_bytes(), Some("p")).unwrap();
        assert_eq!(only_p.acquires.len(), 2);
        assert!(trace_from_audit("".as_bytes(), None).is_err());
    }
}
