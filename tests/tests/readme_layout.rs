//! README's layout tables name every source file: a file nobody can find from the README is a
//! file a reviewer does not know exists. A source file is named when a markdown link in the
//! README.md of the repository's root, or of one of the file's own parent directories (the
//! plugins and the Python client keep their own tables), points at it.
//!
//! Sources: `.rs`, `.py` and `.sh` files, except the tests themselves (files directly in a
//! `tests` directory: one file per behaviour, named by their directory), build output and the
//! fuzz corpus. Support shared by tests (`tests/common`) and a unit-test module in its own
//! `src/**/tests.rs` are sources.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use warmpool_e2e::repo_root;

/// Directories that hold no sources of ours: build output, caches, venvs, the fuzz corpus.
const SKIP_DIRS: &[&str] = &[
    "target",
    ".git",
    "__pycache__",
    ".venv",
    "venv",
    ".pytest_cache",
    ".mypy_cache",
    "node_modules",
    "corpus",
    "artifacts",
];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                walk(&path, out);
            }
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// Relative to the root, with `/` separators.
fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn is_source(rel: &str) -> bool {
    let is_code = [".rs", ".py", ".sh"].iter().any(|ext| rel.ends_with(ext));
    let parent = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
    let is_test = parent == "tests" || parent.ends_with("/tests");
    is_code && !is_test
}

/// `base/target`, with `.` and `..` resolved, relative to the root.
fn resolve(base: &str, target: &str) -> String {
    let mut parts: Vec<String> = base
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for c in Path::new(target).components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// Every link target `](...)` of a markdown text, without its `#anchor`.
fn link_targets(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("](").filter_map(move |(i, _)| {
        let rest = &text[i + 2..];
        let end = rest.find(|c: char| c == ')' || c == '#' || c.is_whitespace())?;
        Some(&rest[..end]).filter(|t| !t.is_empty() && !t.contains("://"))
    })
}

#[test]
fn every_source_file_is_named_in_a_readme_layout_table() {
    let root = repo_root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut named: BTreeSet<String> = BTreeSet::new();
    let mut readmes = 0;
    for f in &files {
        if f.file_name().is_some_and(|n| n == "README.md") {
            readmes += 1;
            let dir = rel(&root, f.parent().unwrap_or(&root));
            let text = std::fs::read_to_string(f).unwrap();
            named.extend(link_targets(&text).map(|t| resolve(&dir, t)));
        }
    }
    let sources: Vec<String> = files
        .iter()
        .map(|f| rel(&root, f))
        .filter(|r| is_source(r))
        .collect();
    // A walk that found nothing would pass anything: it must have seen the tree.
    assert!(
        sources.len() > 150 && readmes >= 3,
        "{} sources and {readmes} READMEs found under {}",
        sources.len(),
        root.display()
    );
    let missing: Vec<&String> = sources.iter().filter(|s| !named.contains(*s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} source files are named by no README layout table (a markdown link to the file in \
         README.md or in the README.md of one of its directories):\n  {}",
        missing.len(),
        sources.len(),
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn a_file_linked_from_no_readme_is_reported() {
    // The check itself: a link resolves against its README's directory, `..` included, and
    // an anchor or a URL is not a file.
    let text = "see [a](src/a.rs), [b](../b.rs#L3), [web](https://x.y/z.rs), [c]( )";
    let got: Vec<String> = link_targets(text).map(|t| resolve("plugins", t)).collect();
    assert_eq!(got, ["plugins/src/a.rs", "b.rs"]);
    assert!(is_source("host/core/src/lib.rs"));
    assert!(!is_source("host/core/tests/reload.rs"));
    assert!(!is_source("tests/tests/reuse.rs"));
    assert!(is_source("host/config/src/reload/tests.rs"));
    assert!(is_source("host/core/tests/common/mod.rs"));
    assert!(is_source("tests/support/lib.rs"));
    assert!(!is_source("README.md"));
}
