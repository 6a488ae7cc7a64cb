//! Policies' figures on one trace as a plain-text table, one row a policy.

use std::fmt::Write;

use crate::simulate::Outcome;

/// The table `warmpool-lab simulate` prints.
pub fn table(outcomes: &[Outcome]) -> String {
    let head = [
        "policy",
        "acquires",
        "hit rate",
        "wait p50",
        "wait p99",
        "wait max",
        "cold",
        "rejected",
        "idle c·s",
        "peak",
        "creates",
    ];
    let rows: Vec<[String; 11]> = outcomes
        .iter()
        .map(|o| {
            [
                o.policy.clone(),
                o.acquires.to_string(),
                format!("{:.1}%", o.hit_rate * 100.0),
                ms(o.wait_ms_p50),
                ms(o.wait_ms_p99),
                ms(o.wait_ms_max),
                o.cold.to_string(),
                o.rejected.to_string(),
                format!("{:.0}", o.idle_container_seconds),
                o.peak_containers.to_string(),
                o.creates.to_string(),
            ]
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            let pad = w - c.chars().count();
            // The policy's name reads left to right; numbers line up on the right.
            if i == 0 {
                let _ = write!(out, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{c}", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&mut out, &head);
    for r in &rows {
        line(&mut out, &r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// A wait in ms, or in s once it passes ten seconds.
fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}s", v / 1000.0)
    } else {
        format!("{v:.0}ms")
    }
}
