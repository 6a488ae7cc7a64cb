//! No crate of the project has an import cycle between its modules: in each crate, the modules
//! (one per source file) and the `crate::`/`super::` paths between them form a DAG, so every
//! module can be read, and tested, from what it depends on upwards.
//!
//! A module is a file under the crate's source directory (`a/mod.rs` and `a.rs` are module `a`,
//! `lib.rs` and `main.rs` the root, which is left out: it declares the others). An edge is any
//! `crate::x::...` or `super::...` path in a file's code (comments and the `#[cfg(test)] mod
//! tests` block at its end excluded), to the longest module that path names. A module's paths
//! to its own children (`use child::X`, `pub use child::X`) are how it is made of them, not
//! edges. Binaries under `src/bin` are crates of their own and are not scanned.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use warmpool_e2e::repo_root;

type Module = Vec<String>;

/// Each crate's source directory: a directory beside a `Cargo.toml` (`src`, or `support` for
/// the end-to-end crate).
fn source_dirs(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut subdirs = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && !name.starts_with('.')
                && name != "target"
            {
                subdirs.push(entry.path());
            }
        }
        if dir.join("Cargo.toml").is_file() {
            for s in ["src", "support"] {
                if dir.join(s).is_dir() {
                    out.push(dir.join(s));
                }
            }
        }
        for d in subdirs {
            walk(&d, out);
        }
    }
    let mut out = Vec::new();
    for top in ["host", "plugins", "tests", "examples"] {
        walk(&root.join(top), &mut out);
    }
    out
}

fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(src: &Path, dir: &Path, out: &mut BTreeMap<Module, PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if !(dir == src && entry.file_name() == "bin") {
                    walk(src, &path, out);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut m: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if m.last().is_some_and(|l| l == "mod") {
                m.pop();
            }
            if m == ["lib"] || m == ["main"] {
                m.clear();
            }
            out.insert(m, path);
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// A file's code: line comments and the trailing unit-test module removed.
fn code(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each `crate::a::b` or `super::a` path in `code`, as its segments.
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    for (kw, is_crate) in [("crate::", true), ("super::", false)] {
        for (i, _) in code.match_indices(kw) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut segs = Vec::new();
            let mut rest = &code[i + kw.len()..];
            // `super::super::x`
            let mut ups = if is_crate { 0 } else { 1 };
            while let Some(r) = rest.strip_prefix("super::") {
                ups += 1;
                rest = r;
            }
            for _ in 1..ups {
                segs.push("..".to_string());
            }
            loop {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                if end == 0 {
                    break;
                }
                segs.push(rest[..end].to_string());
                match rest[end..].strip_prefix("::") {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            out.push((is_crate, segs));
        }
    }
    out
}

fn edges(mods: &BTreeMap<Module, PathBuf>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut g: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, file) in mods {
        let text = std::fs::read_to_string(file).unwrap();
        let set = g.entry(m.clone()).or_default();
        for (is_crate, segs) in paths(&code(&text)) {
            let mut path: Module = if is_crate {
                Vec::new()
            } else {
                m[..m.len().saturating_sub(1)].to_vec()
            };
            for s in segs {
                if s == ".." {
                    path.pop();
                } else {
                    path.push(s);
                }
            }
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| mods.contains_key(p));
            if let Some(t) = target
                && !t.is_empty()
                && t != *m
            {
                set.insert(t);
            }
        }
    }
    g
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'a> {
        g: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a Module) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let Some((w, _)) = self.g.get_key_value(w) else {
                    continue;
                };
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = repo_root();
    let dirs = source_dirs(&root);
    assert!(
        dirs.len() >= 12,
        "found only {} crates under {}",
        dirs.len(),
        root.display()
    );
    let mut found = Vec::new();
    let mut scanned = 0;
    for dir in &dirs {
        let mods = modules(dir);
        scanned += mods.len();
        for comp in cycles(&edges(&mods)) {
            let names: Vec<String> = comp.iter().map(|m| m.join("/")).collect();
            found.push(format!(
                "{}: {}",
                dir.strip_prefix(&root).unwrap_or(dir).display(),
                names.join(" <-> ")
            ));
        }
    }
    assert!(scanned > 150, "only {scanned} modules scanned");
    assert!(
        found.is_empty(),
        "import cycles between modules (break each with a module both sides may depend on):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_scan_sees_a_cycle_through_crate_and_super_paths() {
    // The check itself, on a made-up crate: a -> b by `crate::`, b -> a by `super::`, c alone.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a; mod c;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "mod b;\nuse crate::a::b::B; // crate::c in a comment\n",
    )
    .unwrap();
    std::fs::write(src.join("a/b.rs"), "pub struct B(super::A);\n").unwrap();
    std::fs::write(
        src.join("c.rs"),
        "use crate::a::b::B;\n#[cfg(test)]\nmod tests { use crate::c; }\n",
    )
    .unwrap();
    let g = edges(&modules(src));
    let a: Module = vec!["a".into()];
    let ab: Module = vec!["a".into(), "b".into()];
    let c: Module = vec!["c".into()];
    assert_eq!(g[&a], BTreeSet::from([ab.clone()]));
    assert_eq!(g[&ab], BTreeSet::from([a.clone()]));
    assert_eq!(g[&c], BTreeSet::from([ab.clone()]));
    assert_eq!(cycles(&g), vec![vec![a, ab]]);
}

/// The core's manager parts, by layer (host/core/src/lib.rs has the table): a part may use
/// only parts of lower layers, and none may use the facade (layer 4, the files that compose the
/// parts: the manager, its builder, reload, shutdown and scale overrides).
const CORE_LAYERS: &[(&str, u8)] = &[
    ("shared", 0),
    ("lifecycle", 1),
    ("leasing", 2),
    ("persistence", 2),
    ("upkeep", 3),
    ("manager", 4),
    ("builder", 4),
    ("reload", 4),
    ("shutdown", 4),
    ("scale", 4),
];

/// The facade's layer.
const TOP: u8 = 4;

#[test]
fn the_core_parts_use_only_parts_of_lower_layers() {
    let src = repo_root().join("host/core/src");
    let mods = modules(&src);
    let layer = |m: &Module| {
        CORE_LAYERS
            .iter()
            .find(|(name, _)| m.first().is_some_and(|f| f == name))
            .map(|(_, l)| *l)
    };
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for (from, tos) in edges(&mods) {
        let Some(lf) = layer(&from) else { continue };
        seen.insert(from[0].clone());
        for to in tos {
            let Some(lt) = layer(&to) else { continue };
            // The top layer is the facade itself, in several files: they may use each other.
            if to[0] != from[0] && (lt > lf || (lt == lf && lf < TOP)) {
                wrong.push(format!(
                    "{} (layer {lf}) uses {} (layer {lt})",
                    from.join("/"),
                    to.join("/")
                ));
            }
        }
    }
    // Every part named above exists: a renamed part must not leave the check without a subject.
    let missing: Vec<&str> = CORE_LAYERS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !seen.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "parts not found in host/core/src: {missing:?}"
    );
    assert!(
        wrong.is_empty(),
        "calls against the layering:\n  {}",
        wrong.join("\n  ")
    );
}
