//! Builds warmpool's agent (`host/agent`, a workspace of its own) as a static binary for the
//! target the daemon is built for, and tells the crate where it is: the daemon embeds it and
//! places it into the containers of `exec: agent` pools. Rebuilt only when the agent's or its
//! protocol's sources change; its own target directory (`target/agent`) keeps it out of the
//! daemon's build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .join("../..")
        .canonicalize()
        .expect("the workspace root");
    let agent = root.join("host/agent");
    let proto = root.join("host/agent-proto");
    for p in [
        agent.join("src"),
        agent.join("Cargo.toml"),
        agent.join("Cargo.lock"),
        proto.join("src"),
        proto.join("Cargo.toml"),
    ] {
        println!("cargo::rerun-if-changed={}", p.display());
    }
    let target = std::env::var("TARGET").expect("set by cargo");
    let target_dir = root.join("target/agent");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--target", &target])
        .arg("--manifest-path")
        .arg(agent.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Static: the agent must run in an image without a C library.
        .env_remove("RUSTFLAGS")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Ctarget-feature=+crt-static\u{1f}-Dwarnings",
        )
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo to build the agent");
    assert!(status.success(), "building the agent (host/agent) failed");
    let bin = target_dir.join(&target).join("release/warmpool-agent");
    println!("cargo::rustc-env=WARMPOOL_AGENT_BINARY={}", bin.display());
}
