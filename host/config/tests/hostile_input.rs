//! Hostile and extreme configs (issue 9): no input panics or exhausts the validator; every
//! number, duration and size has a range; every problem is reported with its path.

use warmpool_config::parse;

fn problems(yaml: &str) -> Vec<String> {
    match parse(yaml, "t", Vec::<(String, String)>::new()) {
        Ok(_) => vec![],
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn has(lines: &[String], prefix: &str) -> bool {
    lines.iter().any(|l| l.starts_with(prefix))
}

#[test]
fn huge_counts_are_refused_not_overflowed() {
    let p = problems("pools:\n  a:\n    image: x\n    max_ready: 4294967295\n");
    assert!(
        has(&p, "pools.a.max_ready: 4294967295 is out of range"),
        "{p:#?}"
    );
    let p = problems(
        "pools:\n  a: {image: x, min_ready: 3000000000, max_ready: 3000000000, max_total: 3000000000}\n  b: {image: x, min_ready: 3000000000, max_ready: 3000000000, max_total: 3000000000}\n",
    );
    assert!(has(&p, "pools.a.min_ready"), "{p:#?}");
    assert!(has(&p, "pools.b.min_ready"), "{p:#?}");
    // Legal per pool, too many together: the sum is checked without overflowing.
    let p = problems(
        "limits: {max_containers: 100000}\npools:\n  a: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  b: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  c: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  d: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  e: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  f: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  g: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  h: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  i: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  j: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n  k: {image: x, min_ready: 10000, max_ready: 10000, max_total: 100000}\n",
    );
    assert!(
        has(&p, "limits.max_containers: must be ≥ the sum"),
        "{p:#?}"
    );
}

#[test]
fn every_duration_has_a_range() {
    let p = problems(
        "server: {shutdown_grace: 500000000y}\npools:\n  a:\n    image: x\n    lease: {default_ttl: 500000000y, max_ttl: 1ns}\n    lifecycle: {probation: 1y, start_settle: 1h}\n    exhaustion: {wait_timeout: 9999h}\n    setup_timeout: 0s\n",
    );
    for path in [
        "server.shutdown_grace",
        "pools.a.lease.default_ttl",
        "pools.a.lease.max_ttl",
        "pools.a.lifecycle.probation",
        "pools.a.lifecycle.start_settle",
        "pools.a.exhaustion.wait_timeout",
        "pools.a.setup_timeout",
    ] {
        assert!(has(&p, &format!("{path}: ")), "{path} not refused: {p:#?}");
    }
}

#[test]
fn byte_limits_of_zero_are_refused() {
    let p = problems(
        "server: {max_request_bytes: 0, max_upload_bytes: 0, exec_output_bytes: 0}\npools:\n  a: {image: x, memory: 0}\n",
    );
    for path in [
        "server.max_request_bytes",
        "server.max_upload_bytes",
        "server.exec_output_bytes",
        "pools.a.memory",
    ] {
        assert!(has(&p, &format!("{path}: ")), "{path} not refused: {p:#?}");
    }
}

#[test]
fn two_type_errors_in_one_section_are_both_reported() {
    let p = problems(
        "pools:\n  a:\n    image: x\n    min_ready: lots\n    read_only: maybe\n    cpus: [1]\n",
    );
    assert!(has(&p, "pools.a.min_ready"), "{p:#?}");
    assert!(has(&p, "pools.a.read_only"), "{p:#?}");
    assert!(has(&p, "pools.a.cpus"), "{p:#?}");
    // A required key of the wrong type is reported once, not again as missing.
    let p = problems("pools:\n  a:\n    image: [1, 2]\n    init: nope\n");
    assert!(has(&p, "pools.a.image"), "{p:#?}");
    assert!(has(&p, "pools.a.init"), "{p:#?}");
    assert!(!p.iter().any(|l| l.contains("missing field")), "{p:#?}");
}

#[test]
fn an_alias_bomb_is_refused_before_it_is_built() {
    let mut text = String::from("x-a: &a [a, a, a, a, a, a, a, a, a, a]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        text.push_str(&format!(
            "x-{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    text.push_str("pools:\n  a: {image: x}\n");
    assert!(text.len() < 4096, "a small file");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("nodes"), "{p:#?}");
}

#[test]
fn a_file_larger_than_a_mebibyte_is_refused() {
    let mut text = String::from("pools:\n  a: {image: x}\n");
    text.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
    let p = problems(&text);
    assert!(has(&p, "(file): "), "{p:#?}");
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: mutate a valid config byte by byte.
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/quickstart.yaml"
    ))
    .unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let bytes = base.as_bytes();
    for _ in 0..3000 {
        let mut b = bytes.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % b.len();
            b[i] = (next() % 256) as u8;
        }
        let text = String::from_utf8_lossy(&b);
        let _ = parse(&text, "fuzz", Vec::<(String, String)>::new());
    }
}
