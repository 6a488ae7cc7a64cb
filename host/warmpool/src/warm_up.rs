//! `warmpool warm-up POOL`: ask the daemon to fill a pool to its target and show it filling.
//!
//! The daemon's `POST /v1/pools/{name}/warm-up` blocks until the pool is at its target; while
//! it does, the pool's stats are polled for the ready count. On a terminal that is a progress
//! bar (indicatif); piped, it is one plain line per change, so logs and CI read it too.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Conn;

/// How often the pool's ready count is read while the warm-up runs.
const POLL: Duration = Duration::from_millis(200);

/// Run the warm-up, reporting progress on stderr and the pool's final counts on stdout.
pub async fn run(c: &Conn, pool: &str, timeout_ms: Option<u64>) -> ExitCode {
    let path = format!("/v1/pools/{pool}/warm-up");
    let body = timeout_ms.map_or_else(|| json!({}), |t| json!({ "timeout_ms": t }));
    let warm = c.send(c.req(Method::POST, &path).json(&body));
    tokio::pin!(warm);
    let bar = Progress::new(std::io::stderr().is_terminal(), pool);
    let stats_path = format!("/v1/pools/{pool}");
    let mut tick = tokio::time::interval(POLL);
    let outcome = loop {
        tokio::select! {
            r = &mut warm => break r,
            _ = tick.tick() => {
                if let Ok((_, p)) = c.send(c.req(Method::GET, &stats_path)).await {
                    bar.show(&p);
                }
            }
        }
    };
    match outcome {
        Ok((_, p)) => {
            bar.show(&p);
            bar.finish();
            println!(
                "{pool}: {} ready of target {} ({})",
                p["counts"]["ready"],
                p["target"],
                p["target_reason"].as_str().unwrap_or("")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            bar.abandon();
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    pool: String,
    last: std::sync::Mutex<Option<(u64, u64)>>,
}

impl Progress {
    fn new(terminal: bool, pool: &str) -> Self {
        let bar = terminal.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ready {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(pool.to_string());
            b
        });
        Self {
            bar,
            pool: pool.to_string(),
            last: std::sync::Mutex::new(None),
        }
    }

    fn show(&self, p: &Value) {
        let ready = p["counts"]["ready"].as_u64().unwrap_or(0);
        let target = p["target"].as_u64().unwrap_or(0);
        let creating = p["counts"]["creating"].as_u64().unwrap_or(0);
        match &self.bar {
            Some(b) => {
                b.set_length(target.max(ready));
                b.set_position(ready);
                b.set_message(format!("({creating} creating)"));
            }
            None => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                if *last != Some((ready, target)) {
                    *last = Some((ready, target));
                    eprintln!("{}: {ready}/{target} ready, {creating} creating", self.pool);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }

    fn abandon(&self) {
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }
}
