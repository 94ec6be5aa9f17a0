//! Repository hygiene that a reviewer would otherwise check by hand.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The longest a source file may grow before it must be split by concept (STYLE.md: "under
/// about 600 lines").
pub const MAX_LINES: usize = 600;

/// Which workspace crates each crate may depend on (the layering of STYLE.md). Every folder
/// under `crates/` must have a row, so a new crate states its place in the layering.
const ALLOWED_EDGES: &[(&str, &[&str])] = &[
    ("greater-models", &[]),
    ("greater-tasks", &[]),
    ("greater-testkit", &[]),
    ("greater-grad", &["greater-models"]),
    ("greater-opt", &["greater-models", "greater-grad", "greater-tasks"]),
    ("greater-bench", &["greater-models", "greater-grad", "greater-tasks", "greater-opt"]),
    ("greater-cli", &["greater-models", "greater-grad", "greater-tasks", "greater-opt", "greater-bench"]),
    // The fuzz driver sits beside the CLI: it calls the parsers of the two bottom crates.
    ("greater-fuzz", &["greater-models", "greater-tasks"]),
];

/// Crates that must build without burn (plain Rust, fast to compile).
const BURN_FREE: &[&str] = &["greater-tasks", "greater-testkit"];

/// Every problem found under `root`, as a sentence.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        collect_rs(&root.join(dir), &mut files)?;
    }
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        problems.extend(length_problem(f, &text));
    }
    let crates_dir = root.join("crates");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&crates_dir)
        .with_context(|| format!("listing {}", crates_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    for dir in crates {
        let krate = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let manifest = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
        problems.extend(edge_problems(&krate, &text));
    }
    Ok(problems)
}

/// A sentence when `text` (the file `f`) is longer than [`MAX_LINES`].
fn length_problem(f: &Path, text: &str) -> Option<String> {
    let n = text.lines().count();
    (n > MAX_LINES).then(|| format!("{} has {n} lines (max {MAX_LINES}): split it by concept", f.display()))
}

/// The layering problems of crate `krate` whose manifest is `manifest` (only `[dependencies]`
/// count: tests may use anything).
fn edge_problems(krate: &str, manifest: &str) -> Vec<String> {
    let Some((_, allowed)) = ALLOWED_EDGES.iter().find(|(k, _)| *k == krate) else {
        return vec![format!("crates/{krate} has no row in ALLOWED_EDGES (xtask/src/tidy.rs): give it a layer")];
    };
    let mut problems = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
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
        if BURN_FREE.contains(&krate) && name == "burn" {
            problems.push(format!("{krate} must stay free of burn"));
        }
    }
    problems
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
    use std::path::Path;

    use super::*;

    #[test]
    fn repository_is_tidy() {
        let root = super::super::root();
        let problems = check(&root).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_file_one_line_over_the_limit_is_reported() {
        let at_limit = "x\n".repeat(MAX_LINES);
        assert_eq!(length_problem(Path::new("a.rs"), &at_limit), None);
        let over = at_limit + "x\n";
        let p = length_problem(Path::new("a.rs"), &over).expect("601 lines are too many");
        assert!(p.contains("a.rs has 601 lines (max 600)"), "{p}");
    }

    #[test]
    fn layering_violations_and_unknown_crates_are_reported() {
        let up = "[dependencies]\ngreater-opt.workspace = true\n[dev-dependencies]\ngreater-cli = {}\n";
        assert_eq!(
            edge_problems("greater-models", up),
            ["greater-models must not depend on greater-opt (layering in STYLE.md)"]
        );
        assert_eq!(
            edge_problems("greater-tasks", "[dependencies]\nburn.workspace = true\n"),
            ["greater-tasks must stay free of burn"]
        );
        assert!(edge_problems("greater-bench", "[dependencies]\ngreater-opt.workspace = true\n").is_empty());
        assert!(edge_problems("greater-new", "")[0].contains("no row in ALLOWED_EDGES"));
    }
}
