//! The fixed, seeded end-to-end benchmark behind `cargo xtask bench bbh`: optimise and evaluate
//! each task, and summarise one row per task.

use std::path::Path;
use std::time::Instant;

use greater_models::model::LoadedModel;
use greater_opt::optimize::state::StepSummary;
use greater_opt::optimize::{OptimizeConfig, Run, StepCost, StepEvent};
use greater_opt::{Observer, OptError, finish};
use greater_tasks::Task;

use crate::machine::median;

/// One row of the benchmark table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchRow {
    /// Task name.
    pub task: String,
    /// Test accuracy of the initial prompt (exact match).
    pub initial_test: f64,
    /// Test accuracy of the final prompt.
    pub final_test: f64,
    /// Constrained test score of the initial prompt (closed label sets).
    pub initial_constrained: Option<f64>,
    /// Constrained test score of the final prompt.
    pub final_constrained: Option<f64>,
    /// `final_test - initial_test`.
    pub difference: f64,
    /// Exact McNemar p-value of the paired difference.
    pub p_value: f64,
    /// Test examples evaluated.
    pub test_examples: usize,
    /// Median seconds per step.
    pub step_seconds_median: f64,
    /// Median seconds per step in generation, proposal, gradient and selection.
    pub phase_seconds_median: [f64; 4],
    /// Tokens generated per second during the loop (reasoning and re-scoring).
    pub tokens_per_second: f64,
    /// The final prompt.
    pub final_prompt: String,
    /// Seconds for the whole task, evaluations included.
    pub total_seconds: f64,
    /// Seconds of the final evaluations (dev selection, train/dev/test of both prompts).
    #[serde(default)]
    pub eval_seconds: f64,
    /// Whether the selection speed-ups were on.
    #[serde(default)]
    pub accelerated: bool,
    /// Generation and speed-up counts over all steps.
    #[serde(default)]
    pub cost: StepCost,
}

/// Optimise and evaluate `task` with `cfg` in `dir`, and summarise.
pub fn run_task(
    loaded: &LoadedModel,
    task: &Task,
    cfg: &OptimizeConfig,
    dir: &Path,
    observer: &dyn Observer,
) -> Result<BenchRow, OptError> {
    let t = Instant::now();
    let run = Run { loaded, task, cfg, dir: dir.to_path_buf(), observer };
    let prep = run.prepare()?;
    let state = run.optimize(&prep, false)?;
    let report = finish::finish(&run, &prep, &state, t.elapsed().as_secs_f64())?;
    let events =
        std::fs::read_to_string(dir.join("events.jsonl")).map_err(|e| OptError::io(dir.join("events.jsonl"), e))?;
    let mut tokens = 0u64;
    let mut cost = StepCost::default();
    for line in events.lines() {
        let e: StepEvent = serde_json::from_str(line)
            .map_err(|e| OptError::BadFile { path: dir.join("events.jsonl"), reason: e.to_string() })?;
        tokens += e.generated_tokens as u64;
        cost.add(&e.cost);
    }
    let phases: Vec<[f64; 4]> = state.history.iter().map(phase_seconds).collect();
    let gen_seconds: f64 = phases.iter().map(|p| p[0] + p[3]).sum();
    let per_step: Vec<f64> = phases.iter().map(|p| p.iter().sum()).collect();
    // A run without steps has no step times: 0 s, not NaN (the JSON report must parse back).
    let med = |xs: &[f64]| median(xs).unwrap_or(0.0);
    let phase = |k: usize| med(&phases.iter().map(|p| p[k]).collect::<Vec<_>>());
    let d = report.test_difference.as_ref();
    let read = |name: &str| -> Option<f64> {
        let text = std::fs::read_to_string(dir.join("evals").join(name)).ok()?;
        let r: greater_opt::eval::EvalResult = serde_json::from_str(&text).ok()?;
        r.scores.constrained.map(|c| c.accuracy)
    };
    Ok(BenchRow {
        task: task.name.clone(),
        initial_test: report.accuracy_initial.test.map_or(f64::NAN, |a| a.accuracy),
        final_test: report.accuracy_final.test.map_or(f64::NAN, |a| a.accuracy),
        initial_constrained: read("initial-test.json"),
        final_constrained: read("final-test.json"),
        difference: d.map_or(f64::NAN, |d| d.difference),
        p_value: d.map_or(f64::NAN, |d| d.p_value),
        test_examples: report.accuracy_final.test.map_or(0, |a| a.total),
        step_seconds_median: med(&per_step),
        phase_seconds_median: [phase(0), phase(1), phase(2), phase(3)],
        tokens_per_second: if gen_seconds > 0.0 { tokens as f64 / gen_seconds } else { 0.0 },
        final_prompt: report.final_prompt,
        total_seconds: t.elapsed().as_secs_f64(),
        eval_seconds: report.seconds.evaluation,
        accelerated: cfg.accelerated(),
        cost,
    })
}

/// Seconds of one step in generation, proposal, gradient and selection (the order of
/// [`BenchRow::phase_seconds_median`]); the one place that reads the loop's timing record.
fn phase_seconds(step: &StepSummary) -> [f64; 4] {
    let s = &step.seconds;
    [s.generation, s.proposal, s.gradient, s.selection]
}

/// The table as text, one row per task.
pub fn table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "{:<32} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7}\n",
        "task",
        "init",
        "final",
        "Δ",
        "p",
        "c.init",
        "c.final",
        "s/step",
        "gen",
        "prop",
        "grad",
        "select",
        "tok/s",
        "decoded",
        "drafted",
        "accept",
        "pruned",
        "eval s"
    );
    let c = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
    for r in rows {
        let [g, p, gr, se] = r.phase_seconds_median;
        s += &format!(
            "{:<32} {:>6.1}% {:>6.1}% {:>+7.1} {:>7.3} {:>7} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>8} {:>8} {:>6.1}% {:>7} {:>7.0}\n",
            r.task,
            100.0 * r.initial_test,
            100.0 * r.final_test,
            100.0 * r.difference,
            r.p_value,
            c(r.initial_constrained),
            c(r.final_constrained),
            r.step_seconds_median,
            g,
            p,
            gr,
            se,
            r.tokens_per_second,
            r.cost.decoded_tokens,
            r.cost.drafted_tokens,
            100.0 * r.cost.acceptance_rate,
            format!("{}+{}", r.cost.pruned_candidates, r.cost.skipped_candidates),
            r.eval_seconds,
        );
    }
    s
}

/// One model's benchmark results, as `greater bench bbh` writes them (`bbh-<model>.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchReport {
    /// The model name or path the run used.
    pub model: String,
    /// The command-line arguments, for the record.
    #[serde(default)]
    pub args: String,
    /// One row per task.
    pub rows: Vec<BenchRow>,
}

/// A Markdown table that puts the models' rows for each task next to each other: the task
/// order is that of the first report that has the task, the model order that of `reports`.
/// Settings are not checked here; the caller compares `args`.
pub fn comparison(reports: &[BenchReport]) -> String {
    let pct = |x: f64| if x.is_nan() { "–".to_string() } else { format!("{:.1} %", 100.0 * x) };
    let opt = |x: Option<f64>| x.map_or("–".to_string(), pct);
    let mut tasks: Vec<&str> = Vec::new();
    for r in reports.iter().flat_map(|r| &r.rows) {
        if !tasks.contains(&r.task.as_str()) {
            tasks.push(&r.task);
        }
    }
    let mut s = String::from(
        "| task | model | initial test | final test | Δ (McNemar p) | constrained initial → final | s/step (median) | tok/s | final prompt |\n",
    );
    s += "|---|---|---|---|---|---|---|---|---|\n";
    for task in tasks {
        for rep in reports {
            let Some(r) = rep.rows.iter().find(|r| r.task == task) else { continue };
            s += &format!(
                "| {} | {} | {} | {} | {:+.1} (p = {:.3}) | {} → {} | {:.1} | {:.1} | `{}` |\n",
                r.task,
                rep.model,
                pct(r.initial_test),
                pct(r.final_test),
                100.0 * r.difference,
                r.p_value,
                opt(r.initial_constrained),
                opt(r.final_constrained),
                r.step_seconds_median,
                r.tokens_per_second,
                r.final_prompt.trim().replace('|', "\\|").replace('`', "'"),
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    fn row(task: &str, initial: f64, fin: f64, constrained: Option<f64>) -> super::BenchRow {
        super::BenchRow {
            task: task.into(),
            initial_test: initial,
            final_test: fin,
            initial_constrained: constrained,
            final_constrained: constrained,
            difference: fin - initial,
            p_value: 0.5,
            test_examples: 20,
            step_seconds_median: 12.0,
            phase_seconds_median: [0.0; 4],
            tokens_per_second: 3.0,
            final_prompt: " think | step by `step`".into(),
            total_seconds: 60.0,
            eval_seconds: 10.0,
            accelerated: true,
            cost: Default::default(),
        }
    }

    #[test]
    fn comparison_groups_rows_by_task_in_model_order() {
        let a = super::BenchReport {
            model: "small".into(),
            args: String::new(),
            rows: vec![row("bbh/a", 0.1, 0.2, None), row("bbh/b", 0.3, 0.3, Some(0.65))],
        };
        let b =
            super::BenchReport { model: "big".into(), args: String::new(), rows: vec![row("bbh/b", 0.5, 0.75, None)] };
        let t = super::comparison(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(
            lines[2].starts_with("| bbh/a | small | 10.0 % | 20.0 % | +10.0 (p = 0.500) | – → – |"),
            "{}",
            lines[2]
        );
        assert!(lines[3].starts_with("| bbh/b | small |") && lines[3].contains("| 65.0 % → 65.0 % |"), "{}", lines[3]);
        assert!(lines[4].starts_with("| bbh/b | big | 50.0 % | 75.0 % | +25.0"), "{}", lines[4]);
        // A pipe in the prompt must not open a column; backticks must not close the code span.
        assert!(lines[4].ends_with("| `think \\| step by 'step'` |"), "{}", lines[4]);
    }
}
