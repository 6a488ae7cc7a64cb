//! `warmpool plugin check` on hostile guests, Rust and Python: it never panics (exit 101) and
//! never hangs; it exits 1 naming what went wrong, with the guest's own log lines.

use std::time::{Duration, Instant};

use warmpool_e2e::{Guest, plugin_check};

/// Well past the 2 s load deadline and the 50 ms call deadline; the guests sleep 90 s.
const NO_HANG: Duration = Duration::from_secs(60);

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(guest: Guest, world: &str, mode: &str) -> Checked {
    check_with(guest, world, mode, &[])
}

fn check_with(guest: Guest, world: &str, mode: &str, extra: &[&str]) -> Checked {
    let t0 = Instant::now();
    let mode = format!("mode={mode}");
    let config: Vec<&str> = std::iter::once(mode.as_str())
        .chain(extra.iter().copied())
        .collect();
    let out = plugin_check(world, &config, &guest.built());
    assert!(
        t0.elapsed() < NO_HANG,
        "{guest:?} {mode}: check took {:?}",
        t0.elapsed()
    );
    Checked {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[test]
fn hostile_rust_guests_are_reported_not_crashed_on() {
    let g = Guest::Rust("test_guest_hostile_sizing");
    for (mode, why) in [
        ("sleep-decide", "deadline of 50ms"),
        ("sleep-init", "deadline of 2s"),
    ] {
        let c = check(g, "sizing", mode);
        assert_eq!(c.code, Some(1), "{mode}: {}{}", c.stdout, c.stderr);
        assert!(c.stderr.contains(why), "{mode}: {}", c.stderr);
        assert!(
            c.stderr.contains(&format!(
                "info: hostile sizing guest configured: mode {mode}"
            )),
            "{mode}: the guest's log is not shown: {}",
            c.stderr
        );
    }
    // Binding a socket is refused inside the guest, which answers saying so.
    let c = check(g, "sizing", "udp");
    assert_eq!(c.code, Some(0), "{}{}", c.stdout, c.stderr);
    assert!(c.stdout.contains("could not bind"), "{}", c.stdout);
    // A flood of 1000 lines a call: the answers come, and the check shows the last lines.
    let c = check_with(g, "sizing", "flood-log", &["n=1000"]);
    assert_eq!(c.code, Some(0), "{}{}", c.stdout, c.stderr);
    assert!(c.stdout.contains("warn: flood line 999"), "{}", c.stdout);
}

#[test]
fn hostile_python_guests_are_reported_not_crashed_on() {
    let g = Guest::Python("hostile_sizing", "sizing-policy");
    for (mode, code, why) in [
        ("sleep-decide", 1, "deadline of 50ms"),
        ("udp", 1, "PermissionError"),
        ("fine", 0, "dry    → target"),
    ] {
        let c = check(g, "sizing", mode);
        assert_eq!(c.code, Some(code), "{mode}: {}{}", c.stdout, c.stderr);
        let text = format!("{}{}", c.stdout, c.stderr);
        assert!(text.contains(why), "{mode}: {text}");
        assert!(
            text.contains(&format!(
                "info: hostile python sizing guest configured: mode {mode}"
            )),
            "{mode}: the guest's log is not shown: {text}"
        );
    }
}
