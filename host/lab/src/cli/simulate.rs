//! `warmpool-lab simulate`: what each sizing policy would have done with a trace of acquires, in
//! virtual time, with the pool as the config defines it ([`crate::simulate`]). A wasm
//! policy is loaded by the real plugin host, as the daemon would load it, behind the pool's
//! built-in policy as fallback: the pool's policies and the plugin limits come from the daemon's
//! own library (`warmpool::policies`, `warmpool::serve::plugin_limits`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use warmpool_config::{Config, PoolPlan};
use warmpool_core::{BuiltinSizing, SizingPolicy};
use warmpool_plugin_host::{PluginHost, PluginSlot, WasmSizing, World};

use super::trace::Playback;
use crate::simulate::{Candidate, CreateSpread, Outcome, PluginRun, Setup, simulate};
use crate::{Trace, svg, table};

/// `warmpool-lab simulate`'s arguments.
#[derive(Args)]
pub struct SimulateArgs {
    /// The daemon's config: the pool's sizes, timings, exhaustion strategy and plugin limits.
    #[arg(short, long, env = "WARMPOOL_CONFIG", default_value = "warmpool.yaml")]
    config: PathBuf,
    /// The acquire trace (CSV `t_ms,pool,hold_ms`; see `warmpool-lab trace`).
    #[arg(long)]
    trace: PathBuf,
    /// A sizing policy to try (repeatable): `builtin:fixed`, `builtin:fixed:N` (min_ready N),
    /// `builtin:adaptive`, `config` (the pool's own), or a `.wasm` sizing plugin.
    /// Default: `config`.
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Played as `warmpool-lab replay` plays it.
    #[command(flatten)]
    playback: Playback,
    /// The pool to simulate; default: the one pool both the trace and the config name.
    #[arg(long)]
    pool: Option<String>,
    /// Create latency as `P50,P99` in milliseconds (log-normal), e.g. `400,1500`.
    #[arg(long, value_parser = parse_spread)]
    create_ms: Option<CreateSpread>,
    /// Take the create latency from a running daemon's figures for the pool (median and p99
    /// of its recent creates), e.g. `http://127.0.0.1:7070`; `WARMPOOL_TOKEN` authenticates.
    #[arg(long, conflicts_with = "create_ms")]
    create_from: Option<String>,
    /// Seed of the create latencies and placement: the same seed, the same result.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also draw the timeline and the trade-off as an SVG file here.
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn parse_spread(s: &str) -> Result<CreateSpread, String> {
    let bad = || format!("{s:?}: expected P50,P99 in milliseconds, e.g. 400,1500");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let (p50, p99): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    spread(p50, p99).map_err(|e| format!("{s:?}: {e}"))
}

/// A create spread, checked: the p99 at least the p50, and no create over an hour.
fn spread(p50: u64, p99: u64) -> Result<CreateSpread, String> {
    if p99 < p50 {
        return Err(format!("the p99 ({p99}) is below the p50 ({p50})"));
    }
    if p99 > 3_600_000 {
        return Err("a create over an hour is not a create".into());
    }
    Ok(CreateSpread {
        p50: Duration::from_millis(p50),
        p99: Duration::from_millis(p99),
    })
}

/// Run `warmpool-lab simulate`.
pub fn run(args: SimulateArgs) -> ExitCode {
    match go(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn go(args: SimulateArgs) -> Result<(), String> {
    let cfg = warmpool_config::load(&args.config).map_err(|e| e.to_string())?;
    let trace = args
        .playback
        .apply(Trace::from_path(&args.trace).map_err(|e| e.to_string())?)?;
    let plan = pick_pool(&cfg, &trace, args.pool.as_deref())?;
    let create = match (&args.create_ms, &args.create_from) {
        (Some(c), _) => *c,
        (None, Some(url)) => spread_from_daemon(url, &plan.pool.name)?,
        (None, None) => Setup::new(plan.pool.clone(), Arc::new(plan.exhaustion)).create,
    };
    let host = PluginHost::new(warmpool::policies::plugin_limits(&cfg), None)
        .map_err(|e| format!("plugin host: {e:#}"))?;
    let names = if args.policies.is_empty() {
        vec!["config".to_string()]
    } else {
        args.policies.clone()
    };
    // Each run gets the pool's own policies afresh, as a daemon builds them: its exhaustion
    // strategy, and its sizing policy as the `config` candidate. A plugin's instance, state
    // and bench record never carry from one run to the next, so no run depends on the order
    // of the `--policy` flags.
    let mut runs = Vec::new();
    for n in &names {
        let own = warmpool::policies::policies(plan, &host);
        let own_slot = plan
            .plugins
            .sizing
            .as_ref()
            .and_then(|_| host_slot(&host, &plan.pool.name));
        let (c, slot) = candidate(n, plan, &host, (&own.sizing, &own_slot))?;
        runs.push((c, slot, own.exhaustion));
    }
    settle(&host)?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (c, slot, exhaustion) in &runs {
        let setup = Setup {
            pool: plan.pool.clone(),
            exhaustion: exhaustion.clone(),
            create,
            seed: args.seed,
            max_containers: cfg.manager.max_containers,
            max_concurrent_creates: cfg.manager.max_concurrent_creates,
        };
        let mut o = simulate(&trace, &setup, c).map_err(|e| e.to_string())?;
        o.plugin = slot.as_ref().map(|s| {
            let st = s.status();
            PluginRun {
                state: st.state.to_string(),
                calls: st.calls,
                failures: st.failures,
                fallbacks: st.fallbacks,
                last_error: st.last_error,
            }
        });
        outcomes.push(o);
    }

    if args.json {
        let doc = serde_json::json!({
            "trace": args.trace.display().to_string(),
            "pool": plan.pool.name,
            "seed": args.seed,
            "create_ms": {"p50": create.p50.as_millis() as u64, "p99": create.p99.as_millis() as u64},
            "policies": outcomes,
        });
        println!("{doc:#}");
    } else {
        println!(
            "pool {} · trace {} ({} acquires) · creates p50 {} ms, p99 {} ms · seed {}",
            plan.pool.name,
            args.trace.display(),
            outcomes.first().map_or(0, |o| o.acquires),
            create.p50.as_millis(),
            create.p99.as_millis(),
            args.seed
        );
        print!("{}", table::table(&outcomes));
        for o in &outcomes {
            if let Some(p) = o
                .plugin
                .as_ref()
                .filter(|p| p.failures > 0 || p.state != "active")
            {
                println!(
                    "note: {}: plugin {} after {} calls, {} failed, {} answered by the built-in{}",
                    o.policy,
                    p.state,
                    p.calls,
                    p.failures,
                    p.fallbacks,
                    p.last_error
                        .as_ref()
                        .map_or(String::new(), |e| format!("; last error: {e}"))
                );
            }
        }
    }
    if let Some(path) = &args.svg {
        let title = format!(
            "{} on pool {}",
            args.trace.file_name().map_or_else(
                || args.trace.display().to_string(),
                |f| f.to_string_lossy().into_owned()
            ),
            plan.pool.name
        );
        let doc = svg::chart(&title, &outcomes)?;
        std::fs::write(path, doc).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

/// The pool to simulate: the one asked for, or the only one both the trace and config name.
fn pick_pool<'a>(
    cfg: &'a Config,
    trace: &Trace,
    asked: Option<&str>,
) -> Result<&'a PoolPlan, String> {
    let configured: Vec<&str> = cfg.pools.iter().map(|p| p.pool.name.as_str()).collect();
    let find = |n: &str| cfg.pools.iter().find(|p| p.pool.name == n);
    if let Some(n) = asked {
        return find(n).ok_or_else(|| {
            format!(
                "--pool {n}: the config has no such pool (it has: {})",
                configured.join(", ")
            )
        });
    }
    let mut both: Vec<&str> = trace
        .acquires
        .iter()
        .map(|a| a.pool.as_str())
        .filter(|n| configured.contains(n))
        .collect();
    both.sort_unstable();
    both.dedup();
    match both.as_slice() {
        [one] => Ok(find(one).expect("listed from the config")),
        [] => Err(format!(
            "no pool of the trace is in the config (the config has: {}); name one with --pool, or make the trace with `warmpool-lab trace generate --pool NAME`",
            configured.join(", ")
        )),
        many => Err(format!(
            "the trace asks several configured pools ({}); choose one with --pool",
            many.join(", ")
        )),
    }
}

/// One `--policy` value as a candidate, with its plugin slot when it is a wasm file.
fn candidate(
    name: &str,
    plan: &PoolPlan,
    host: &PluginHost,
    configured: (&Arc<dyn SizingPolicy>, &Option<Arc<PluginSlot>>),
) -> Result<(Candidate, Option<Arc<PluginSlot>>), String> {
    let builtin = |sizing: BuiltinSizing, min_ready: Option<u32>| Candidate {
        label: name.to_string(),
        sizing: Arc::new(sizing),
        min_ready,
    };
    let adaptive = match &plan.sizing {
        BuiltinSizing::Adaptive(c) => *c,
        BuiltinSizing::Fixed => Default::default(),
    };
    Ok(match name {
        "builtin:fixed" => (builtin(BuiltinSizing::Fixed, None), None),
        "builtin:adaptive" => (builtin(BuiltinSizing::Adaptive(adaptive), None), None),
        "config" => {
            let c = Candidate {
                label: format!("config ({})", config_name(plan)),
                sizing: configured.0.clone(),
                min_ready: None,
            };
            (c, configured.1.clone())
        }
        n if n.starts_with("builtin:fixed:") => {
            let v = &n["builtin:fixed:".len()..];
            let min: u32 = v
                .parse()
                .map_err(|_| format!("--policy {n}: {v:?} is not a number of containers"))?;
            (builtin(BuiltinSizing::Fixed, Some(min)), None)
        }
        n if n.ends_with(".wasm") => {
            let path = Path::new(n);
            if !path.is_file() {
                return Err(format!("--policy {n}: no such file"));
            }
            // The pool's own plugin settings when it is the pool's own plugin file.
            let config = plan
                .plugins
                .sizing
                .as_ref()
                .filter(|r| same_file(&r.path, path))
                .map(|r| r.config.clone())
                .unwrap_or_default();
            let slot = host.slot(&plan.pool.name, World::Sizing, path, config);
            let sizing: Arc<dyn SizingPolicy> = Arc::new(WasmSizing {
                slot: slot.clone(),
                fallback: Arc::new(plan.sizing.clone()),
            });
            (
                Candidate {
                    label: path
                        .file_name()
                        .map_or_else(|| n.to_string(), |f| f.to_string_lossy().into_owned()),
                    sizing,
                    min_ready: None,
                },
                Some(slot),
            )
        }
        n => {
            return Err(format!(
                "--policy {n}: expected builtin:fixed, builtin:fixed:N, builtin:adaptive, config, or a .wasm file"
            ));
        }
    })
}

fn config_name(plan: &PoolPlan) -> String {
    match &plan.plugins.sizing {
        Some(r) => r.path.file_name().map_or_else(
            || r.path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        ),
        None => match plan.sizing {
            BuiltinSizing::Fixed => "builtin:fixed".into(),
            BuiltinSizing::Adaptive(_) => "builtin:adaptive".into(),
        },
    }
}

/// The sizing slot the last `policies()` call made for `pool`.
fn host_slot(host: &PluginHost, pool: &str) -> Option<Arc<PluginSlot>> {
    host.slots_list()
        .into_iter()
        .rev()
        .find(|s| s.pool == pool && s.world == World::Sizing)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Wait until every plugin has loaded or failed to (the simulation must not start while the
/// built-in still stands in for a plugin that is compiling).
fn settle(host: &Arc<PluginHost>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(host.settled());
    Ok(())
}

/// The create latency a running daemon measured for `pool`.
fn spread_from_daemon(url: &str, pool: &str) -> Result<CreateSpread, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let stats: serde_json::Value = rt.block_on(async {
        let mut r = reqwest::Client::new()
            .get(format!("{}/v1/pools/{pool}", url.trim_end_matches('/')))
            .timeout(Duration::from_secs(10));
        if let Ok(t) = std::env::var("WARMPOOL_TOKEN") {
            r = r.bearer_auth(t);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| format!("--create-from: cannot reach {url}: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("--create-from: {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("--create-from: {url} answered {status}: {body}"));
        }
        Ok(body)
    })?;
    let c = &stats["creates"];
    match (c["median_ms"].as_u64(), c["p99_ms"].as_u64()) {
        (Some(p50), Some(p99)) => {
            spread(p50, p99.max(p50)).map_err(|e| format!("--create-from: {url}: {e}"))
        }
        _ => Err(format!(
            "--create-from: pool {pool} at {url} has not created a container yet; give --create-ms"
        )),
    }
}
