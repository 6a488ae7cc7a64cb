//! Replay the fault simulation: `sim --seed N [--steps S] [--trace]`, or run a range of seeds:
//! `sim --seeds A..B [--steps S]`. See `warmpool_testkit::sim`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let steps: usize = value("--steps")
        .and_then(|s| s.parse().ok())
        .unwrap_or(warmpool_testkit::sim::STEPS);
    let trace = args.iter().any(|a| a == "--trace");
    let seeds: Vec<u64> = if let Some(s) = value("--seed") {
        match s.parse() {
            Ok(n) => vec![n],
            Err(_) => return usage(),
        }
    } else if let Some(r) = value("--seeds") {
        let Some((a, b)) = r.split_once("..") else {
            return usage();
        };
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(a), Ok(b)) => (a..b).collect(),
            _ => return usage(),
        }
    } else {
        return usage();
    };
    let t0 = std::time::Instant::now();
    let mut failed = 0;
    for &seed in &seeds {
        match warmpool_testkit::sim::run(seed, steps, trace) {
            Ok(o) => {
                if seeds.len() == 1 {
                    println!("{o:#?}");
                }
            }
            Err(f) => {
                failed += 1;
                eprintln!("{f}");
            }
        }
    }
    println!(
        "{} seed(s), {} failed, {:.1} s",
        seeds.len(),
        failed,
        t0.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: sim --seed N [--steps S] [--trace] | sim --seeds A..B [--steps S]");
    ExitCode::from(2)
}
