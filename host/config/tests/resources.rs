//! `pools.<name>.resources`: the bounds of a lease's own cpus and memory, read like the pool's
//! own limits and held consistent with them, each problem at its YAML path.

use warmpool_config::parse;
use warmpool_core::ResourceBounds;

fn problems(yaml: &str) -> Vec<String> {
    parse(yaml, "t.yaml", vec![])
        .unwrap_err()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn bounds_are_read_like_the_pools_own_limits() {
    let c = parse(
        "pools:\n  p:\n    image: x\n    cpus: 0.5\n    memory: 64m\n    resources: { max_cpus: 2.5, max_memory: 1g }\n  q:\n    image: x\n    resources: { max_memory: 2147483648 }\n  plain:\n    image: x\n",
        "t",
        vec![],
    )
    .unwrap();
    assert_eq!(
        c.pools[0].pool.resources,
        Some(ResourceBounds {
            max_nano_cpus: Some(2_500_000_000),
            max_memory: Some(1 << 30),
        })
    );
    assert_eq!(
        c.pools[1].pool.resources,
        Some(ResourceBounds {
            max_nano_cpus: None,
            max_memory: Some(2 << 30),
        })
    );
    assert_eq!(c.pools[2].pool.resources, None);
}

#[test]
fn bounds_inconsistent_with_the_pools_limits_are_refused_at_their_path() {
    let got = problems(
        r#"
pools:
  a:
    image: x
    cpus: 2
    memory: 1g
    resources: { max_cpus: 1, max_memory: 512m }
  b:
    image: x
    resources: { max_cpus: 2 }
  c:
    image: x
    resources: {}
  d:
    image: x
    resources: { max_memory: lots, max_cpus: -1, burst: 2 }
  e:
    image: x
    resources: { max_memory: 1m }
"#,
    );
    let has = |path: &str, text: &str| {
        assert!(
            got.iter().any(|l| l.starts_with(path) && l.contains(text)),
            "no problem at {path} saying {text:?} in {got:#?}"
        )
    };
    has("pools.a.resources.max_cpus", "≥ the pool's cpus");
    has("pools.a.resources.max_memory", "≥ the pool's memory");
    has(
        "pools.b.resources.max_cpus",
        "needs the pool's own `pools.b.cpus`",
    );
    has("pools.c.resources", "give max_cpus, max_memory or both");
    has("pools.d.resources", "burst");
    has("pools.e.resources.max_memory", "out of range");
}
