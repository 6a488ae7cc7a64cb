//! `warmpool validate -c FILE`: every problem with its YAML path, or a summary of the pools.

use std::path::Path;
use std::process::ExitCode;

use warmpool_config::HealthPlan;

/// `warmpool validate`: load and check a config, print every problem with its YAML path, or a
/// summary of the pools.
pub fn run(path: &Path) -> ExitCode {
    match warmpool_config::load(path) {
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Ok(cfg) => {
            println!(
                "{}: ok, {} pool(s), host_id {}, listen {}",
                path.display(),
                cfg.pools.len(),
                cfg.server.host_id,
                cfg.server.listen
            );
            match &cfg.server.state_dir {
                Some(dir) => println!(
                    "leases persisted in {} (group commit every {:?})",
                    dir.display(),
                    cfg.manager.commit_interval
                ),
                None => println!(
                    "leases not persisted (no server.state_dir): a restart removes every container"
                ),
            }
            println!(
                "{:<16} {:<36} {:>5} {:>5} {:>5}  {:<10} {:<9} HEALTH",
                "POOL", "IMAGE", "MIN", "MAX", "TOTAL", "EXHAUSTION", "TTL"
            );
            for p in &cfg.pools {
                let c = &p.pool;
                let health = match &p.health {
                    Some(HealthPlan::Exec(e)) => {
                        format!("exec {:?} every {:?}", e.argv, c.health_interval)
                    }
                    Some(HealthPlan::Http(h)) => {
                        format!("http :{}{} every {:?}", h.port, h.path, c.health_interval)
                    }
                    None => "events only".into(),
                };
                println!(
                    "{:<16} {:<36} {:>5} {:>5} {:>5}  {:<10} {:<9} {}",
                    c.name,
                    c.spec.image,
                    c.min_ready,
                    c.max_ready,
                    c.max_total,
                    format!("{:?}", p.exhaustion).to_lowercase(),
                    humantime::format_duration(c.default_ttl).to_string(),
                    health
                );
            }
            ExitCode::SUCCESS
        }
    }
}
