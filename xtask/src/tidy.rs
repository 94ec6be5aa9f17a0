//! Repository hygiene that a reviewer would otherwise check by hand.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// The longest a source file may grow before it must be split by concept.
const MAX_LINES: usize = 650;

/// Which workspace crates each crate may depend on (the layering of STYLE.md).
const ALLOWED_EDGES: &[(&str, &[&str])] = &[
    ("greater-models", &[]),
    ("greater-tasks", &[]),
    ("greater-grad", &["greater-models"]),
    ("greater-opt", &["greater-models", "greater-grad", "greater-tasks"]),
    ("greater-cli", &["greater-models", "greater-grad", "greater-tasks", "greater-opt"]),
    // The fuzz driver sits beside the CLI: it calls the parsers of the two bottom crates.
    ("greater-fuzz", &["greater-models", "greater-tasks"]),
];

/// Every problem found under `root`, as a sentence.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        collect_rs(&root.join(dir), &mut files)?;
    }
    for f in &files {
        let n = std::fs::read_to_string(f)?.lines().count();
        if n > MAX_LINES {
            problems.push(format!("{} has {n} lines (max {MAX_LINES}): split it by concept", f.display()));
        }
    }
    for (krate, allowed) in ALLOWED_EDGES {
        let manifest = root.join("crates").join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)?;
        let mut in_deps = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                in_deps = t == "[dependencies]";
                continue;
            }
            if !in_deps {
                continue;
            }
            let name = t.split(['=', '.', ' ']).next().unwrap_or("");
            if name.starts_with("greater-") && !allowed.contains(&name) {
                problems.push(format!("{krate} must not depend on {name} (layering in STYLE.md)"));
            }
            if *krate == "greater-tasks" && name == "burn" {
                problems.push("greater-tasks must stay free of burn".into());
            }
        }
    }
    Ok(problems)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_rs(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn repository_is_tidy() {
        let root = super::super::root();
        let problems = super::check(&root).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
