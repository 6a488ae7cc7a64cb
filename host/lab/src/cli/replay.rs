//! `warmpool-lab replay`: drive a running daemon over HTTP with an acquire trace, optionally
//! compressed in time, and measure what the simulation measures, so the two can be compared
//! (`warmpool-lab simulate --speed` compresses the same way).
//!
//! Each acquire of the trace is sent at its time; its lease is held for its `hold_ms`, then
//! released. A lease served from the pool within [`WARM_MS`] inside the daemon is a hit; the
//! daemon's own `acquire_ms` is the wait. Idle container-seconds, peak and creates are the
//! pool's own figures (`GET /v1/pools/{pool}`), before and after.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use tokio::time::Instant;
use warmpool::client::Conn;

use super::trace::Playback;
use crate::simulate::{Cost, Outcome, Sample, Served, Tally};
use crate::{Trace, table};

/// Longest a warm acquire takes inside the daemon: one that waited for a create took at least
/// a create's few hundred milliseconds.
pub const WARM_MS: f64 = 100.0;

/// `warmpool-lab replay`'s arguments.
#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    conn: Conn,
    /// The acquire trace (CSV `t_ms,pool,hold_ms`).
    #[arg(long)]
    trace: PathBuf,
    #[command(flatten)]
    playback: Playback,
    /// The pool to replay; default: the trace's only pool.
    #[arg(long)]
    pool: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// Run `warmpool-lab replay`.
pub async fn run(args: ReplayArgs) -> ExitCode {
    match go(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone)]
struct Daemon {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Daemon {
    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(m, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn pool(&self, pool: &str) -> Result<Value, String> {
        let resp = self
            .req(reqwest::Method::GET, &format!("/v1/pools/{pool}"))
            .send()
            .await
            .map_err(|e| format!("cannot reach the daemon at {}: {e}", self.url))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("GET /v1/pools/{pool}: {status}: {body}"));
        }
        Ok(body)
    }
}

async fn go(args: ReplayArgs) -> Result<(), String> {
    let trace = Trace::from_path(&args.trace).map_err(|e| e.to_string())?;
    let mut pools: Vec<&str> = trace.acquires.iter().map(|a| a.pool.as_str()).collect();
    pools.sort_unstable();
    pools.dedup();
    let pool = match (&args.pool, pools.as_slice()) {
        (Some(p), _) => p.clone(),
        (None, [one]) => one.to_string(),
        (None, many) => {
            return Err(format!(
                "the trace asks several pools ({}); choose one with --pool",
                many.join(", ")
            ));
        }
    };
    let trace = args.playback.apply(Trace {
        acquires: trace
            .acquires
            .into_iter()
            .filter(|a| a.pool == pool)
            .collect(),
    })?;
    if trace.acquires.is_empty() {
        return Err(format!("no acquire of the trace asks pool {pool}"));
    }
    let d = Daemon {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?,
        url: args.conn.url().trim_end_matches('/').to_string(),
        token: args.conn.token().map(str::to_string),
    };
    let before = d.pool(&pool).await?;
    eprintln!(
        "replay: {} acquires over {:.0} s on pool {pool} at {}",
        trace.acquires.len(),
        trace.span_ms() as f64 / 1000.0,
        d.url
    );
    let t0 = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (d, pool, done) = (d.clone(), pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut timeline = Vec::new();
            while !done.load(Ordering::Acquire) {
                if let Ok(s) = d.pool(&pool).await {
                    let n = |k: &str| s["counts"][k].as_u64().unwrap_or(0) as u32;
                    timeline.push(Sample {
                        t_s: t0.elapsed().as_secs_f64(),
                        leased: n("leased"),
                        ready: n("ready"),
                    });
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            timeline
        })
    };
    let mut clients = Vec::with_capacity(trace.acquires.len());
    for a in &trace.acquires {
        tokio::time::sleep_until(t0 + Duration::from_millis(a.t_ms)).await;
        let (d, pool, hold) = (d.clone(), pool.clone(), a.hold_ms);
        clients.push(tokio::spawn(async move { one(&d, &pool, hold).await }));
    }
    let mut tally = Tally::default();
    let mut errors = 0;
    for c in clients {
        match c.await {
            Ok(Ok(s)) => tally.add(s),
            Ok(Err(e)) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("replay: {e}");
                }
                tally.add(Served::Refused);
            }
            Err(e) => return Err(format!("a replay client failed: {e}")),
        }
    }
    let span = t0.elapsed();
    let after = d.pool(&pool).await?;
    done.store(true, Ordering::Release);
    let timeline = sampler.await.unwrap_or_default();
    let f = |v: &Value, k: &[&str]| k.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap_or(0.0);
    let cost = Cost {
        idle_container_seconds: f(&after, &["idle_container_seconds"])
            - f(&before, &["idle_container_seconds"]),
        peak_containers: f(&after, &["peak_containers"]) as u32,
        creates: (f(&after, &["creates", "total"]) - f(&before, &["creates", "total"])) as u64,
        create_failures: (f(&after, &["creates", "failures"])
            - f(&before, &["creates", "failures"])) as u64,
    };
    let policy = after["policies"]["sizing"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let o: Outcome = tally.outcome(&format!("daemon ({policy})"), cost, span, timeline);
    if args.json {
        let doc = json!({
            "trace": args.trace.display().to_string(),
            "pool": pool,
            "speed": args.playback.speed,
            "transport_errors": errors,
            "outcome": o,
        });
        println!("{doc:#}");
    } else {
        print!("{}", table::table(std::slice::from_ref(&o)));
        if errors > 0 {
            println!("note: {errors} acquires failed in transport (counted as rejected)");
        }
    }
    Ok(())
}

/// One client: acquire, hold, release.
async fn one(d: &Daemon, pool: &str, hold_ms: u64) -> Result<Served, String> {
    let ttl_s = hold_ms.div_ceil(1000) + 5;
    let resp = d
        .req(reqwest::Method::POST, "/v1/leases")
        .json(&json!({"pool": pool, "ttl_s": ttl_s}))
        .send()
        .await
        .map_err(|e| format!("acquire: {e}"))?;
    if !resp.status().is_success() {
        // Refused (exhausted, timed out waiting): the daemon's answer, not a transport error.
        return Ok(Served::Refused);
    }
    let lease: Value = resp.json().await.map_err(|e| format!("acquire: {e}"))?;
    let Some(id) = lease["lease_id"].as_str().filter(|id| !id.is_empty()) else {
        return Err(format!("acquire: an answer without a lease_id: {lease}"));
    };
    let id = id.to_string();
    // Whatever the daemon says, a wait is a finite, non-negative duration.
    let acquire_ms = lease["acquire_ms"]
        .as_f64()
        .filter(|v| v.is_finite())
        .unwrap_or(0.0)
        .clamp(0.0, 86_400_000.0);
    let cold = lease["source"] == "cold";
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    let released = d
        .req(reqwest::Method::DELETE, &format!("/v1/leases/{id}"))
        .send()
        .await
        .map_err(|e| format!("release: {e}"))?;
    // 404: the lease ran out (a hold past max_ttl); anything else unexpected is an error.
    let st = released.status();
    if !st.is_success() && st != reqwest::StatusCode::NOT_FOUND {
        return Err(format!("release of {id}: {st}"));
    }
    // A hit in the simulation waits exactly zero; here, under WARM_MS inside the daemon.
    let waited = if !cold && acquire_ms < WARM_MS {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(acquire_ms / 1000.0)
    };
    Ok(Served::Lent { waited, cold })
}
