//! `greater bench fidelity` (issue 13): does an optimised prompt beat ZS-CoT on a small model?
//! Per task one seeded optimisation, then the **whole** dev and test splits for the initial prompt
//! (ZS-CoT), greater's final prompt, and the paper's published GReaTer prompts for the task (both
//! optimisers, `datasets/paper_prompts.toml`) as transfer baselines. Per prompt: exact-match
//! accuracy with its Wilson interval, the paired test difference to ZS-CoT with the exact McNemar
//! p, the constrained score, seconds.
//!
//! Resumable task by task: the optimisation resumes from its checkpoint, every evaluation is a
//! JSON file in the task's `evals/`, and `fidelity-<model>.json` is rewritten after each task, so
//! a killed bench continues where it stopped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use greater_models::model::LoadedModel;
use greater_opt::eval::{EvalOptions, EvalResult, PromptInput, evaluate_drafted};
use greater_opt::finish;
use greater_opt::optimize::{OptimizeConfig, Run, RunState, state};
use greater_tasks::{Accuracy, Example, PairedComparison, Task, mcnemar_exact};

use crate::bbh::model_slug;
use crate::{Common, Host, resume_report, write_json};

/// The paper's prompts, embedded so that the binary needs no repository checkout.
const PAPER_PROMPTS: &str = include_str!("../../../datasets/paper_prompts.toml");

/// Arguments of `greater bench fidelity`.
#[derive(Debug, clap::Args)]
pub struct FidelityArgs {
    /// Model name or path.
    #[arg(long, default_value = "qwen2.5-coder-0.5b-instruct")]
    pub model: String,
    /// Tasks, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bbh/date_understanding,bbh/causal_judgement,bbh/sports_understanding,bbh/formal_fallacies,bbh/logical_deduction_five_objects"
    )]
    pub tasks: Vec<String>,
    /// Train examples.
    #[arg(long, default_value_t = 20)]
    pub train: usize,
    /// Optimisation steps per task.
    #[arg(long, default_value_t = 15)]
    pub steps: usize,
    /// Reasoning cap in tokens.
    #[arg(long, default_value_t = 256)]
    pub max_reasoning_tokens: usize,
    /// Top prompts re-scored on dev to choose the final one.
    #[arg(long, default_value_t = 3)]
    pub top_prompts: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generation batch size.
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    /// Optimise with the experimental `keep_current` selection (not the paper's; see `greater
    /// optimize --keep-current`). It is part of the report's settings, so a report never mixes
    /// the two selections: give it its own --out.
    #[arg(long)]
    pub keep_current: bool,
    /// Other fidelity folders, comma separated (same model and settings, e.g. the paper's
    /// selection next to `--keep-current`): greater's final prompt here against theirs (a task
    /// from the first folder that finished it), paired on dev and on test; written to
    /// `against-<model>.json`. The ZS-CoT and paper evaluations, which the optimisation does not
    /// change, are copied from the first of them with the same settings instead of recomputed.
    #[arg(long, value_name = "DIR,…", value_delimiter = ',')]
    pub against: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// One published prompt.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PaperPrompt {
    /// Our task name.
    pub task: String,
    /// The model that optimised it.
    pub optimizer: String,
    /// `greater`, `ape` or `pe2`.
    pub method: String,
    /// The prompt as published.
    pub text: String,
    /// Where in the paper.
    pub source: String,
    /// The paper prints it cut short.
    #[serde(default)]
    pub abridged: bool,
}

#[derive(serde::Deserialize)]
struct PaperFile {
    prompt: Vec<PaperPrompt>,
}

/// The paper's prompts from `datasets/paper_prompts.toml`.
pub fn paper_prompts() -> Result<Vec<PaperPrompt>> {
    let f: PaperFile = toml::from_str(PAPER_PROMPTS).context("reading datasets/paper_prompts.toml")?;
    Ok(f.prompt)
}

/// One prompt's result on a task.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PromptResult {
    /// `zs-cot`, `greater` or `paper <optimizer>`.
    pub label: String,
    /// The prompt text (after the frozen "Use ").
    pub text: String,
    /// Dev accuracy.
    pub dev: Accuracy,
    /// Test accuracy.
    pub test: Accuracy,
    /// Paired test comparison with ZS-CoT (`None` for ZS-CoT itself).
    pub versus_zs_cot: Option<PairedComparison>,
    /// Constrained test score (closed label sets).
    pub constrained_test: Option<f64>,
    /// Seconds of its evaluations.
    pub seconds: f64,
}

/// One task's row of the table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskResult {
    /// Task name.
    pub task: String,
    /// ZS-CoT first, then greater, then the paper's prompts.
    pub prompts: Vec<PromptResult>,
    /// Seconds of the optimisation: its steps' own seconds, summed over every session that ran
    /// them (refilled from `state.json` for rows written when only the last session counted).
    pub optimise_seconds: f64,
    /// The no-model reference: every example answered with the train examples' most frequent
    /// gold (filled in for rows written before it existed).
    #[serde(default)]
    pub majority: Option<MajorityLabel>,
}

/// Accuracy of answering every example with one label: the most frequent gold among the train
/// examples the optimisation used (ties: the label that sorts first).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MajorityLabel {
    /// The label.
    pub label: String,
    /// Dev accuracy.
    pub dev: Accuracy,
    /// Test accuracy.
    pub test: Accuracy,
}

/// The majority-label reference of a task whose optimisation used `train`.
pub fn majority_label(train: &[Example], dev: &[Example], test: &[Example]) -> Option<MajorityLabel> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for e in train {
        *counts.entry(e.target.as_str()).or_default() += 1;
    }
    // Sorted by label, and `max_by_key` keeps the last maximum: take the first via `rev`.
    let (label, _) = counts.into_iter().rev().max_by_key(|&(_, n)| n)?;
    let accuracy = |xs: &[Example]| Accuracy::new(xs.iter().filter(|e| e.target == label).count(), xs.len());
    Some(MajorityLabel { label: label.to_string(), dev: accuracy(dev), test: accuracy(test) })
}

/// The report, `fidelity-<model>.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FidelityReport {
    /// Model.
    pub model: String,
    /// Settings, `key=value` separated by spaces.
    pub args: String,
    /// Finished tasks.
    pub tasks: Vec<TaskResult>,
}

/// The settings' mark of the `keep_current` selection (absent with the paper's).
pub(crate) const KEEP_CURRENT: &str = " keep_current=true";

/// A task's run folder under a bench's `out`.
pub(crate) fn task_dir(out: &Path, slug: &str, task: &str) -> PathBuf {
    out.join("fidelity").join(slug).join(task.replace('/', "_"))
}

/// Run the suite, skipping tasks the report already holds.
pub fn run(args: &FidelityArgs, host: &dyn Host) -> Result<()> {
    let slug = model_slug(&args.model);
    let path = args.common.out.join(format!("fidelity-{slug}.json"));
    let mut settings = format!(
        "train={} steps={} max_reasoning_tokens={} top_prompts={} seed={} batch_size={}",
        args.train, args.steps, args.max_reasoning_tokens, args.top_prompts, args.seed, args.batch_size
    );
    if args.keep_current {
        // Only when on, so that the reports written before the option resume as they were.
        settings += KEEP_CURRENT;
    }
    let fresh = || FidelityReport { model: args.model.clone(), args: settings.clone(), tasks: Vec::new() };
    let mut report = resume_report(&path, &settings, |r: &FidelityReport| r.args.as_str(), fresh)?;
    let paper = paper_prompts()?;
    let loaded = host.load_model(&args.model)?;
    for name in &args.tasks {
        let dir = task_dir(&args.common.out, &slug, name);
        if let Some(done) = report.tasks.iter_mut().find(|t| &t.task == name) {
            eprintln!("{name}: already in {}", path.display());
            let before = done.clone();
            if done.majority.is_none() {
                let task = host.load_task(name)?;
                done.majority = majority_label(used_train(&task, args), &task.dev, &task.test);
            }
            if state::has_checkpoint(&dir)? {
                done.optimise_seconds = step_seconds(&state::load(&dir)?);
            }
            if *done != before {
                write_json(&args.common.out, &format!("fidelity-{slug}.json"), &report)?;
            }
            continue;
        }
        if let Some((n, from)) =
            crate::fidelity_against::reuse_fixed_evaluations(&dir, &args.against, &slug, name, &settings)?
        {
            eprintln!("{name}: {n} evaluations of the ZS-CoT and paper prompts taken from {}", from.display());
        }
        let task = host.load_task(name)?;
        let row = run_task(args, host, &loaded, &task, &dir, &paper).with_context(|| format!("benchmarking {name}"))?;
        report.tasks.push(row);
        write_json(&args.common.out, &format!("fidelity-{slug}.json"), &report)?;
    }
    print!("{}", table(&report));
    println!("wrote {}", path.display());
    if !args.against.is_empty() {
        match crate::fidelity_against::compare(&args.common.out, &args.against, &slug, &args.tasks)? {
            Some(r) => print!("\n{}", crate::fidelity_against::table(&r)),
            None => println!("no task is finished both here and in {:?}", args.against),
        }
    }
    Ok(())
}

fn run_task(
    args: &FidelityArgs,
    host: &dyn Host,
    loaded: &LoadedModel,
    task: &Task,
    dir: &Path,
    paper: &[PaperPrompt],
) -> Result<TaskResult> {
    let cfg = OptimizeConfig {
        model: args.model.clone(),
        task: task.name.clone(),
        seed: args.seed,
        steps: args.steps,
        train: args.train,
        max_reasoning_tokens: args.max_reasoning_tokens,
        eval_limit: 0,
        top_prompts: args.top_prompts,
        batch_size: args.batch_size,
        keep_current: args.keep_current,
        ..OptimizeConfig::default()
    };
    let observer = host.observer(cfg.steps);
    let run = Run { loaded, task, cfg: &cfg, dir: dir.to_path_buf(), observer: observer.as_ref() };
    let prep = run.prepare()?;
    let state = run.optimize(&prep, dir.join("state.json").exists())?;
    let optimise_seconds = step_seconds(&state);
    // The final prompt is the dev step's choice among the top prompts, not always the best
    // training prompt: its text comes from the run's report, whose evaluations the row shows.
    let report = finish::finish(&run, &prep, &state, optimise_seconds)?;
    drop(observer);
    let evals = dir.join("evals");
    let zs = (read(&evals.join("initial-dev.json"))?, read(&evals.join("initial-test.json"))?);
    let fin = (read(&evals.join("final-dev.json"))?, read(&evals.join("final-test.json"))?);
    let mut prompts = vec![
        result("zs-cot", report.initial_prompt, &zs, None),
        result("greater", report.final_prompt, &fin, Some(&zs)),
    ];
    let opts = EvalOptions {
        max_reasoning_tokens: cfg.max_reasoning_tokens,
        batch_size: cfg.batch_size,
        placement: cfg.placement(),
        ..EvalOptions::default()
    };
    for p in paper.iter().filter(|p| p.task == task.name && p.method == "greater") {
        // The frozen prefix "Use " is ours to add; the paper's prompts start with it.
        let body = p.text.strip_prefix(cfg.frozen_prefix.as_str()).unwrap_or(&p.text).to_string();
        let mut pair = Vec::new();
        for (split, examples, initial) in [("dev", &task.dev, &zs.0), ("test", &task.test, &zs.1)] {
            let file = evals.join(format!("paper-{}-{split}.json", p.optimizer));
            let r = match read_opt(&file)? {
                Some(r) => r,
                None => {
                    let drafts: Vec<Vec<u32>> = initial.records.iter().map(|r| r.reasoning_ids.clone()).collect();
                    let prompt = PromptInput::Text(body.clone());
                    let obs = host.observer(0);
                    let r = evaluate_drafted(loaded, &task.spec, examples, &prompt, &opts, &drafts, obs.as_ref())?;
                    write_json(&evals, &format!("paper-{}-{split}.json", p.optimizer), &r)?;
                    r
                }
            };
            pair.push(r);
        }
        let pair = (pair.remove(0), pair.remove(0));
        prompts.push(result(&format!("paper {}", p.optimizer), body, &pair, Some(&zs)));
    }
    let majority = majority_label(used_train(task, args), &task.dev, &task.test);
    Ok(TaskResult { task: task.name.clone(), prompts, optimise_seconds, majority })
}

/// The optimisation's seconds: its steps' own, so that a run resumed across sessions counts every
/// step once and none of the time between sessions. In whole milliseconds: the sum over the
/// steps read back from `state.json` can differ from the sum in memory in its last bit (JSON
/// parsing is not exact to the bit), and a refilled row must equal the one first written.
pub fn step_seconds(state: &RunState) -> f64 {
    let s: f64 = state.history.iter().map(|h| h.seconds.total()).sum();
    (s * 1e3).round() / 1e3
}

/// The train examples the optimisation uses: the first `args.train`.
fn used_train<'t>(task: &'t Task, args: &FidelityArgs) -> &'t [Example] {
    &task.train[..args.train.min(task.train.len())]
}

fn result(
    label: &str,
    text: String,
    r: &(EvalResult, EvalResult),
    base: Option<&(EvalResult, EvalResult)>,
) -> PromptResult {
    PromptResult {
        label: label.into(),
        text,
        dev: r.0.scores.exact,
        test: r.1.scores.exact,
        versus_zs_cot: base.and_then(|b| PairedComparison::new(&b.1.correct(), &r.1.correct()).ok()),
        constrained_test: r.1.scores.constrained.map(|c| c.accuracy),
        seconds: r.0.seconds + r.1.seconds,
    }
}

fn read(path: &PathBuf) -> Result<EvalResult> {
    read_opt(path)?.with_context(|| format!("{} is missing", path.display()))
}

/// An evaluation file, `None` when it is not there yet.
pub(crate) fn read_opt(path: &PathBuf) -> Result<Option<EvalResult>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?)),
        Err(_) => Ok(None),
    }
}

/// A prompt's seconds: its two evaluations, and for greater's prompt also the optimisation.
fn seconds_cell(label: &str, evaluation: f64, optimise: f64) -> String {
    if label == "greater" { format!("{evaluation:.0} + {optimise:.0} optimising") } else { format!("{evaluation:.0}") }
}

/// The Markdown table: per task and prompt, then the average over tasks of each prompt label
/// ([`average_row`]) and of the majority label.
pub fn table(report: &FidelityReport) -> String {
    let pct = |a: &Accuracy| format!("{:.1} % [{:.1}, {:.1}]", 100.0 * a.accuracy, 100.0 * a.ci_low, 100.0 * a.ci_high);
    let mut s = format!("model {} ({})\n\n", report.model, report.args);
    s += "| task | prompt | dev | test [95 % Wilson] | Δ test vs ZS-CoT (McNemar p) | constrained test | s |\n";
    s += "|---|---|---|---|---|---|---|\n";
    for t in &report.tasks {
        for p in &t.prompts {
            let d = p
                .versus_zs_cot
                .as_ref()
                .map_or("–".into(), |c| format!("{:+.1} (p = {:.3})", 100.0 * c.difference, c.p_value));
            let c = p.constrained_test.map_or("–".into(), |c| format!("{:.1} %", 100.0 * c));
            s += &format!(
                "| {} | {} | {:.1} % | {} | {} | {} | {} |\n",
                t.task,
                p.label,
                100.0 * p.dev.accuracy,
                pct(&p.test),
                d,
                c,
                seconds_cell(&p.label, p.seconds, t.optimise_seconds)
            );
        }
        if let Some(m) = &t.majority {
            s += &format!(
                "| {} | majority label ({}) | {:.1} % | {} | | | |\n",
                t.task,
                m.label,
                100.0 * m.dev.accuracy,
                pct(&m.test)
            );
        }
    }
    let mut labels: Vec<&str> = Vec::new();
    for p in report.tasks.iter().flat_map(|t| &t.prompts) {
        if !labels.contains(&p.label.as_str()) {
            labels.push(&p.label);
        }
    }
    for label in labels {
        s += &average_row(report, label);
    }
    let refs: Vec<&MajorityLabel> = report.tasks.iter().filter_map(|t| t.majority.as_ref()).collect();
    if !refs.is_empty() {
        let mean = |f: &dyn Fn(&MajorityLabel) -> f64| refs.iter().map(|m| f(m)).sum::<f64>() / refs.len() as f64;
        s += &format!(
            "| **average ({} tasks)** | majority label | {:.1} % | {:.1} % | | | |\n",
            refs.len(),
            100.0 * mean(&|m| m.dev.accuracy),
            100.0 * mean(&|m| m.test.accuracy)
        );
    }
    s
}

/// The average row of prompt `label` over the tasks that have it, with the exact McNemar p of
/// all its tasks' test pairs pooled.
fn average_row(report: &FidelityReport, label: &str) -> String {
    // Each task's row of this label, with the task's optimisation seconds.
    let (rows, optimise): (Vec<&PromptResult>, Vec<f64>) = report
        .tasks
        .iter()
        .flat_map(|t| t.prompts.iter().filter(|p| p.label == label).map(move |p| (p, t.optimise_seconds)))
        .unzip();
    let mean = |f: &dyn Fn(&PromptResult) -> f64| rows.iter().map(|p| f(p)).sum::<f64>() / rows.len() as f64;
    let constrained: Vec<f64> = rows.iter().filter_map(|p| p.constrained_test).collect();
    let constrained = match constrained.len() {
        0 => "–".into(),
        n => format!("{:.1} %", 100.0 * constrained.iter().sum::<f64>() / n as f64),
    };
    let optimise = optimise.iter().sum::<f64>() / rows.len() as f64;
    let pairs: Vec<&PairedComparison> = rows.iter().filter_map(|p| p.versus_zs_cot.as_ref()).collect();
    let d = if pairs.is_empty() {
        "–".into()
    } else {
        // The tasks' examples are independent, so their discordant pairs pool into one exact
        // McNemar test of the whole table (it weighs tasks by their size; the mean does not).
        let (b, c) = pairs.iter().fold((0, 0), |(b, c), p| (b + p.b, c + p.c));
        let mean = pairs.iter().map(|p| p.difference).sum::<f64>() / pairs.len() as f64;
        format!("{:+.1} (pooled p = {:.3})", 100.0 * mean, mcnemar_exact(b, c))
    };
    format!(
        "| **average ({} tasks)** | {label} | {:.1} % | {:.1} % | {d} | {constrained} | {} |\n",
        rows.len(),
        100.0 * mean(&|p| p.dev.accuracy),
        100.0 * mean(&|p| p.test.accuracy),
        seconds_cell(label, mean(&|p| p.seconds), optimise)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_prompts_parse_and_name_known_tasks() {
        let prompts = paper_prompts().unwrap();
        assert!(prompts.len() >= 40, "{}", prompts.len());
        let known = greater_tasks::task_names();
        for p in &prompts {
            assert!(known.contains(&p.task), "{} is not a task name", p.task);
            assert!(!p.text.trim().is_empty() && !p.source.is_empty());
            assert!(["greater", "ape", "pe2"].contains(&p.method.as_str()), "{}", p.method);
        }
        let bbh = known.iter().filter(|t| t.starts_with("bbh/") && prompts.iter().any(|p| &p.task == *t)).count();
        assert!(bbh >= 20, "{bbh} BBH tasks have a paper prompt");
    }

    #[test]
    fn the_table_averages_each_prompt_over_tasks() {
        let acc = |c| Accuracy::new(c, 10);
        // `pairs`: McNemar's b and c against ZS-CoT.
        let prompt = |label: &str, c, pairs: Option<(usize, usize)>| PromptResult {
            label: label.into(),
            text: String::new(),
            dev: acc(c),
            test: acc(c),
            versus_zs_cot: pairs.map(|(b, c)| PairedComparison {
                first: acc(5),
                second: acc(5),
                b,
                c,
                difference: (c as f64 - b as f64) / 10.0,
                p_value: 1.0,
            }),
            constrained_test: Some(c as f64 / 10.0),
            seconds: c as f64,
        };
        let task = |name: &str, z, g, pairs| TaskResult {
            task: name.into(),
            prompts: vec![prompt("zs-cot", z, None), prompt("greater", g, Some(pairs))],
            optimise_seconds: 100.0 * z as f64,
            majority: None,
        };
        let r = FidelityReport {
            model: "m".into(),
            args: "a".into(),
            tasks: vec![task("bbh/x", 4, 6, (0, 2)), task("bbh/y", 6, 6, (1, 1))],
        };
        let t = table(&r);
        assert!(t.contains("| **average (2 tasks)** | zs-cot | 50.0 % | 50.0 % | – | 50.0 % | 5 |"), "{t}");
        // Task x's greater row: its evaluations, 6 s, and the optimisation, 400 s.
        assert!(t.contains("| 60.0 % | 6 + 400 optimising |"), "{t}");
        // Pooled b = 1, c = 3: p = 2 · (1 + 4) / 16.
        assert!(t.contains("| **average (2 tasks)** | greater | 60.0 % | 60.0 % | +10.0 (pooled p = 0.625) | 60.0 % | 6 + 500 optimising |"), "{t}");
        assert!(!t.contains("majority"), "no reference row without a reference");
        let mut with = r.clone();
        with.tasks[0].majority = Some(MajorityLabel { label: "Yes".into(), dev: acc(7), test: acc(3) });
        let t = table(&with);
        assert!(t.contains("| bbh/x | majority label (Yes) | 70.0 % | 30.0 % ["), "{t}");
        assert!(t.contains("| **average (1 tasks)** | majority label | 70.0 % | 30.0 % |"), "{t}");
    }

    #[test]
    fn the_optimisation_seconds_are_every_steps_own() {
        use greater_opt::optimize::PhaseSeconds;
        use greater_opt::optimize::state::StepSummary;
        let mut s = RunState::new(vec![1, 2]);
        for (step, selection) in [(0, 10.0), (1, 20.0)] {
            s.history.push(StepSummary {
                step,
                score: 0.5,
                mistake_rate: 0.5,
                text: String::new(),
                seconds: PhaseSeconds { generation: 1.0, proposal: 2.0, gradient: 3.0, selection },
                drivers: Vec::new(),
            });
        }
        assert_eq!(step_seconds(&s), 6.0 + 10.0 + 6.0 + 20.0);
        assert_eq!(step_seconds(&RunState::new(vec![1])), 0.0);
    }

    fn examples(golds: &[&str]) -> Vec<Example> {
        golds
            .iter()
            .map(|g| Example {
                input: String::new(),
                target: g.to_string(),
                raw_target: g.to_string(),
                choices: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn the_majority_label_is_the_most_frequent_train_gold_first_in_order_on_ties() {
        let (dev, test) = (examples(&["No", "Yes", "No"]), examples(&["Yes", "Yes", "No", "Maybe"]));
        let m = majority_label(&examples(&["Yes", "No", "Yes"]), &dev, &test).unwrap();
        assert_eq!((m.label.as_str(), m.dev.correct, m.dev.total, m.test.correct, m.test.total), ("Yes", 1, 3, 2, 4));
        // A tie between B and A: A, the first in order, wherever it appears first.
        let m = majority_label(&examples(&["B", "A", "B", "A", "C"]), &dev, &test).unwrap();
        assert_eq!(m.label, "A");
        assert!(majority_label(&[], &dev, &test).is_none());
    }
}
