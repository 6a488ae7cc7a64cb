//! Test guest: a sizing plugin that misbehaves as its `mode` setting says. Built only for
//! warmpool's tests; the host must contain every mode.
//!
//! - `sleep-decide` / `sleep-init`: `std::thread::sleep` for `n` seconds (a WASI poll the
//!   guest parks in) in `decide` or in `init`;
//! - `sleep-later`: answer an instance's first call (so the host's trial passes), then sleep
//!   `n` seconds in every later `decide` of that instance: a plugin that goes bad in service
//!   (each fresh instance after an abandoned call answers once more, so it flaps);
//! - `udp`: bind a UDP socket in `decide`;
//! - `flood-log`: write `lines` log lines in `decide`;
//! - `huge-reason`: answer a reason of `bytes` bytes;
//! - `fine`: answer `min_ready`, logging one line.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use warmpool_plugin_sdk::policy::{PoolSnapshot, SizingDecision};
use warmpool_plugin_sdk::{Level, log};

struct Hostile;

pub struct Cfg {
    mode: String,
    n: u64,
}

fn sleep(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

impl warmpool_plugin_sdk::Sizing for Hostile {
    type Config = Cfg;
    fn configure(config: &[(String, String)]) -> Result<Cfg, String> {
        let get = |k: &str| {
            config
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let mode = get("mode").unwrap_or_else(|| "fine".into());
        let n = get("n")
            .and_then(|v| v.parse().ok())
            .unwrap_or(match mode.as_str() {
                "sleep-decide" | "sleep-init" | "sleep-later" => 90,
                "flood-log" => 100_000,
                "huge-reason" => 50 << 20,
                _ => 0,
            });
        log(
            Level::Info,
            &format!("hostile sizing guest configured: mode {mode}"),
        );
        if mode == "sleep-init" {
            sleep(n);
        }
        Ok(Cfg { mode, n })
    }

    fn decide(c: &Cfg, s: &PoolSnapshot) -> SizingDecision {
        let reason = match c.mode.as_str() {
            "sleep-decide" => {
                sleep(c.n);
                "slept".to_string()
            }
            "sleep-later" => {
                static CALLS: AtomicU64 = AtomicU64::new(0);
                if CALLS.fetch_add(1, Ordering::Relaxed) > 0 {
                    sleep(c.n);
                }
                "first call answered".to_string()
            }
            "udp" => match std::net::UdpSocket::bind("0.0.0.0:0") {
                Ok(_) => "bound a UDP socket".into(),
                Err(e) => format!("could not bind: {e}"),
            },
            "flood-log" => {
                for i in 0..c.n {
                    log(Level::Warn, &format!("flood line {i}"));
                }
                "flooded".into()
            }
            "huge-reason" => "x".repeat(c.n as usize),
            _ => {
                log(Level::Info, "deciding fine");
                "fine".into()
            }
        };
        SizingDecision {
            target: s.min_ready.min(s.max_ready),
            reason,
        }
    }
}

warmpool_plugin_sdk::export_sizing!(Hostile);
