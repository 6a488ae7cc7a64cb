//! The daemon's binary links no test code: neither the in-memory engine, the fault simulation
//! nor the policy lab (with tokio's `test-util`, plotters and csv) is among the normal
//! dependencies of the `warmpool` package. The lab is its own binary, `warmpool-lab`.

use std::process::Command;

use warmpool_e2e::repo_root;

/// Crates that exist for tests or the lab, and what they bring.
const TEST_ONLY: &[&str] = &[
    "warmpool-testkit",
    "warmpool-fake",
    "warmpool-lab",
    "warmpool-test-components",
    "plotters",
    "csv",
];

fn cargo_tree(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "warmpool",
            "--prefix",
            "none",
        ])
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_daemon_package_has_no_test_crate_among_its_normal_dependencies() {
    let tree = cargo_tree(&["-e", "normal"]);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // The tree was read: the daemon's own crates are in it.
    for needed in ["warmpool", "warmpool-core", "warmpool-docker", "tokio"] {
        assert!(crates.contains(&needed), "{needed} missing from:\n{tree}");
    }
    let found: Vec<&&str> = TEST_ONLY.iter().filter(|c| crates.contains(c)).collect();
    assert!(found.is_empty(), "the daemon links {found:?}:\n{tree}");
}

#[test]
fn the_daemon_build_does_not_turn_on_tokio_test_util() {
    let tree = cargo_tree(&["-e", "normal,features", "-i", "tokio"]);
    assert!(tree.contains("tokio feature"), "no feature lines:\n{tree}");
    assert!(
        !tree.contains("\"test-util\""),
        "tokio's test-util in the daemon's build:\n{tree}"
    );
}
