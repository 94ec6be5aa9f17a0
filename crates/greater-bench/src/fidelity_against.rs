//! `greater bench fidelity --against DIR[,DIR…]`: greater's final prompt of this bench against the
//! one of other fidelity folders with the same model and settings (e.g. `--keep-current` against
//! the paper's selection; a task is taken from the first folder that finished it), paired example
//! by example. Dev is the split a default may be changed on (issue 13); test is shown for the
//! record. The evaluations that do not depend on the optimisation are taken from those folders
//! rather than computed again ([`reuse_fixed_evaluations`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use greater_tasks::{PairedComparison, mcnemar_exact};

use crate::fidelity::{FidelityReport, KEEP_CURRENT, read_opt, task_dir};
use crate::write_json;

/// One task: the other folder's greater prompt first, this folder's second.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SideBySide {
    /// Task name.
    pub task: String,
    /// The other folder it was found in.
    pub against: String,
    /// Paired on the whole dev split.
    pub dev: PairedComparison,
    /// Paired on the whole test split.
    pub test: PairedComparison,
}

/// `against-<model>.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgainstReport {
    /// Tasks finished here and in one of the other folders, in the bench's order.
    pub tasks: Vec<SideBySide>,
    /// Exact McNemar p of every task's dev pairs pooled.
    pub pooled_dev_p: f64,
    /// The same on test.
    pub pooled_test_p: f64,
}

/// Compare the greater prompts of `out` and `others` on every task of `tasks` finished in `out`
/// and in one of `others` (the first that has it); write `against-<slug>.json` into `out` and
/// return the report (`None` when no task is in both).
pub fn compare(out: &Path, others: &[PathBuf], slug: &str, tasks: &[String]) -> Result<Option<AgainstReport>> {
    let mut rows = Vec::new();
    for task in tasks {
        let evals = |root: &Path| task_dir(root, slug, task).join("evals");
        let mine = evals(out);
        let Some(other) = others.iter().find(|o| evals(o).join("final-dev.json").exists()) else { continue };
        let theirs = evals(other);
        let pair = |split: &str| -> Result<Option<PairedComparison>> {
            let file = format!("final-{split}.json");
            let (Some(a), Some(b)) = (read_opt(&theirs.join(&file))?, read_opt(&mine.join(&file))?) else {
                return Ok(None);
            };
            if a.records.iter().map(|r| &r.input).ne(b.records.iter().map(|r| &r.input)) {
                bail!("{task} {split}: {} and {} hold different examples", theirs.display(), mine.display());
            }
            Ok(Some(PairedComparison::new(&a.correct(), &b.correct())?))
        };
        if let (Some(dev), Some(test)) = (pair("dev")?, pair("test")?) {
            rows.push(SideBySide { task: task.clone(), against: other.display().to_string(), dev, test });
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let pooled = |f: fn(&SideBySide) -> &PairedComparison| {
        let (b, c) = rows.iter().map(f).fold((0, 0), |(b, c), p| (b + p.b, c + p.c));
        mcnemar_exact(b, c)
    };
    let report = AgainstReport { pooled_dev_p: pooled(|r| &r.dev), pooled_test_p: pooled(|r| &r.test), tasks: rows };
    write_json(out, &format!("against-{slug}.json"), &report)?;
    Ok(Some(report))
}

/// Before a task runs here: the evaluations that do not depend on the optimisation — ZS-CoT on
/// train, dev and test (`initial-*`) and the paper's prompts (`paper-*`) — copied into `here`'s `evals/`
/// from the first of `others` whose report has the same settings as `settings` (the
/// selection aside) and holds them. Greedy evaluation is deterministic, so the copy is what an
/// evaluation here would write, without its hours; a file already here is kept. Returns how many
/// files were copied and from where (`None` when no folder qualifies).
pub fn reuse_fixed_evaluations(
    here: &Path,
    others: &[PathBuf],
    slug: &str,
    task: &str,
    settings: &str,
) -> Result<Option<(usize, PathBuf)>> {
    let selection_aside = |s: &str| s.replace(KEEP_CURRENT, "");
    for other in others {
        let path = other.join(format!("fidelity-{slug}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let report: FidelityReport =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        if selection_aside(&report.args) != selection_aside(settings) {
            continue;
        }
        let theirs = task_dir(other, slug, task).join("evals");
        let Ok(entries) = std::fs::read_dir(&theirs) else { continue };
        let mine = here.join("evals");
        std::fs::create_dir_all(&mine).with_context(|| format!("creating {}", mine.display()))?;
        let mut copied = 0;
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let fixed = name.starts_with("initial-") || name.starts_with("paper-");
            if fixed && name.ends_with(".json") && !mine.join(&name).exists() {
                std::fs::copy(theirs.join(&name), mine.join(&name))
                    .with_context(|| format!("copying {} to {}", theirs.join(&name).display(), mine.display()))?;
                copied += 1;
            }
        }
        return Ok(Some((copied, other.clone())));
    }
    Ok(None)
}

/// The report as Markdown: per task and pooled, the other folder's accuracy, this one's, and the
/// paired difference with its exact McNemar p.
pub fn table(report: &AgainstReport) -> String {
    let cell = |p: &PairedComparison| {
        format!(
            "{:.1} % → {:.1} % | {:+.1} ({} wins / {} losses, p = {:.3})",
            100.0 * p.first.accuracy,
            100.0 * p.second.accuracy,
            100.0 * p.difference,
            p.c,
            p.b,
            p.p_value
        )
    };
    let mut s = "greater's prompt there (the folder named) against the one here\n\n".to_string();
    s += "| task | there | dev: there → here | Δ dev | test: there → here | Δ test |\n|---|---|---|---|---|---|\n";
    for r in &report.tasks {
        s += &format!("| {} | {} | {} | {} |\n", r.task, r.against, cell(&r.dev), cell(&r.test));
    }
    let mean = |f: fn(&SideBySide) -> f64| 100.0 * report.tasks.iter().map(f).sum::<f64>() / report.tasks.len() as f64;
    s += &format!(
        "| **average ({} tasks)** | | {:.1} % → {:.1} % | {:+.1} (pooled p = {:.3}) | {:.1} % → {:.1} % | {:+.1} (pooled p = {:.3}) |\n",
        report.tasks.len(),
        mean(|r| r.dev.first.accuracy),
        mean(|r| r.dev.second.accuracy),
        mean(|r| r.dev.difference),
        report.pooled_dev_p,
        mean(|r| r.test.first.accuracy),
        mean(|r| r.test.second.accuracy),
        mean(|r| r.test.difference),
        report.pooled_test_p
    );
    s
}
