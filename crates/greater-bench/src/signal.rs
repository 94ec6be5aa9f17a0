//! `greater bench signal` (issue 18): does a training signal that agrees with the evaluation make
//! better prompts? Per task, two seeded optimisations with the same budget and examples:
//!
//! - `official`: the paper's target (one tokenisation of extractor space + gold) and the
//!   teacher-forced mistake flag;
//! - `aligned`: the loss over every answer spelling the evaluation accepts (`answer_target =
//!   "variants"`) and the graded mistake flag (`selection_mistake = "graded"`).
//!
//! Each run's best training prompt (no dev selection among top prompts, so dev stays unseen) and
//! the initial prompt are evaluated on the dev split; the report gives dev accuracy with Wilson
//! intervals, the paired McNemar test of `aligned` against `official` and of each against the
//! initial prompt, and, from the `aligned` run's events, how often the teacher-forced and the
//! graded flags disagree on the training examples. Test is never read.
//!
//! Resumable: each run resumes from its checkpoint, each evaluation is a JSON file in the task's
//! `evals/`, and `signal-<model>.json` is rewritten after each task.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use greater_models::model::LoadedModel;
use greater_opt::eval::{EvalOptions, EvalResult, PromptInput, evaluate_drafted};
use greater_opt::optimize::{AnswerTarget, OptimizeConfig, Run, SelectionMistake, StepEvent};
use greater_tasks::{Accuracy, PairedComparison, Task};

use crate::bbh::model_slug;
use crate::{Common, Host, resume_report, write_json};

/// Arguments of `greater bench signal`.
#[derive(Debug, clap::Args)]
pub struct SignalArgs {
    /// Model name or path.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// Tasks, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "gen/boolean_expressions,bbh/boolean_expressions,bbh/navigate")]
    pub tasks: Vec<String>,
    /// Train examples.
    #[arg(long, default_value_t = 10)]
    pub train: usize,
    /// Optimisation steps per run (the fixed budget).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Reasoning cap in tokens, in the loop and on dev.
    #[arg(long, default_value_t = 128)]
    pub max_reasoning_tokens: usize,
    /// Dev examples evaluated: the first N (0: the whole dev split).
    #[arg(long, default_value_t = 0)]
    pub dev: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generation batch size.
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// The two training signals compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Official,
    Aligned,
}

impl Setting {
    const ALL: [Setting; 2] = [Setting::Official, Setting::Aligned];

    fn name(self) -> &'static str {
        match self {
            Setting::Official => "official",
            Setting::Aligned => "aligned",
        }
    }

    fn apply(self, cfg: OptimizeConfig) -> OptimizeConfig {
        match self {
            Setting::Official => cfg,
            Setting::Aligned => OptimizeConfig {
                answer_target: AnswerTarget::Variants,
                selection_mistake: SelectionMistake::Graded,
                ..cfg
            },
        }
    }
}

/// One setting's outcome on a task.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SettingResult {
    /// `official` or `aligned`.
    pub setting: String,
    /// The best training prompt.
    pub prompt: String,
    /// Its dev accuracy.
    pub dev: Accuracy,
    /// Paired dev comparison with the initial prompt (initial first).
    pub versus_initial: PairedComparison,
    /// Mean teacher-forced mistake rate over the scored candidates.
    pub teacher_forced_mistake_rate: Option<f64>,
    /// Mean graded mistake rate over the scored candidates (aligned only).
    pub graded_mistake_rate: Option<f64>,
    /// Training examples whose two flags disagree, over every candidate scored in full.
    pub flag_disagreements: Option<usize>,
    /// Training examples behind `flag_disagreements`.
    pub flag_examples: usize,
    /// Seconds of the optimisation.
    pub optimise_seconds: f64,
}

/// One task's row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SignalTask {
    /// Task name.
    pub task: String,
    /// The initial prompt's dev accuracy.
    pub initial_dev: Accuracy,
    /// `official`, then `aligned`.
    pub settings: Vec<SettingResult>,
    /// Paired dev comparison, official first, aligned second.
    pub aligned_versus_official: PairedComparison,
}

/// The report, `signal-<model>.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SignalReport {
    /// Model.
    pub model: String,
    /// Settings, `key=value` separated by spaces.
    pub args: String,
    /// Finished tasks.
    pub tasks: Vec<SignalTask>,
}

/// Run both settings on every task, skipping tasks the report already holds.
pub fn run(args: &SignalArgs, host: &dyn Host) -> Result<()> {
    let slug = model_slug(&args.model);
    let name = format!("signal-{slug}.json");
    let path = args.common.out.join(&name);
    let settings = format!(
        "train={} steps={} max_reasoning_tokens={} dev={} seed={} batch_size={}",
        args.train, args.steps, args.max_reasoning_tokens, args.dev, args.seed, args.batch_size
    );
    let fresh = || SignalReport { model: args.model.clone(), args: settings.clone(), tasks: Vec::new() };
    let mut report = resume_report(&path, &settings, |r: &SignalReport| r.args.as_str(), fresh)?;
    let loaded = host.load_model(&args.model)?;
    for task_name in &args.tasks {
        if report.tasks.iter().any(|t| &t.task == task_name) {
            eprintln!("{task_name}: already in {}", path.display());
            continue;
        }
        let task = host.load_task(task_name)?;
        let dir = args.common.out.join("signal").join(&slug).join(task_name.replace('/', "_"));
        let row = run_task(args, host, &loaded, &task, &dir).with_context(|| format!("measuring {task_name}"))?;
        report.tasks.push(row);
        write_json(&args.common.out, &name, &report)?;
    }
    print!("{}", table(&report));
    println!("wrote {}", path.display());
    Ok(())
}

fn run_task(args: &SignalArgs, host: &dyn Host, loaded: &LoadedModel, task: &Task, dir: &Path) -> Result<SignalTask> {
    let base = OptimizeConfig {
        model: args.model.clone(),
        task: task.name.clone(),
        seed: args.seed,
        steps: args.steps,
        train: args.train,
        max_reasoning_tokens: args.max_reasoning_tokens,
        batch_size: args.batch_size,
        final_eval: false,
        ..OptimizeConfig::default()
    };
    let dev: Vec<_> = if args.dev == 0 { task.dev.clone() } else { task.dev.iter().take(args.dev).cloned().collect() };
    let opts = EvalOptions {
        max_reasoning_tokens: args.max_reasoning_tokens,
        batch_size: args.batch_size,
        placement: base.placement(),
        ..EvalOptions::default()
    };
    let evals = dir.join("evals");
    std::fs::create_dir_all(&evals).with_context(|| format!("creating {}", evals.display()))?;
    let evaluate = |label: &str, prompt: PromptInput, drafts: &[Vec<u32>]| -> Result<EvalResult> {
        let file = evals.join(format!("{label}-dev.json"));
        if let Ok(text) = std::fs::read_to_string(&file) {
            return serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()));
        }
        eprintln!("{}: evaluating the {label} prompt on dev ({} examples)", task.name, dev.len());
        let obs = host.observer(0);
        let r = evaluate_drafted(loaded, &task.spec, &dev, &prompt, &opts, drafts, obs.as_ref())?;
        write_json(&evals, &format!("{label}-dev.json"), &r)?;
        Ok(r)
    };
    let initial = evaluate("initial", PromptInput::Text(base.initial_prompt.clone()), &[])?;
    let drafts: Vec<Vec<u32>> = initial.records.iter().map(|r| r.reasoning_ids.clone()).collect();
    let mut settings = Vec::new();
    let mut finals = Vec::new();
    for setting in Setting::ALL {
        let cfg = setting.apply(base.clone());
        let run_dir = dir.join(setting.name());
        let t = Instant::now();
        let observer = host.observer(cfg.steps);
        let run = Run { loaded, task, cfg: &cfg, dir: run_dir.clone(), observer: observer.as_ref() };
        let prep = run.prepare()?;
        let state = run.optimize(&prep, run_dir.join("state.json").exists())?;
        let optimise_seconds = t.elapsed().as_secs_f64();
        drop(observer);
        let ids = state.best.as_ref().map_or(state.control.clone(), |b| b.ids.clone());
        let r = evaluate(setting.name(), PromptInput::Ids(ids.clone()), &drafts)?;
        let flags = flag_summary(&run_dir.join("events.jsonl"), prep.examples.len())?;
        settings.push(SettingResult {
            setting: setting.name().into(),
            prompt: loaded.tokenizer.decode(&ids, false)?,
            dev: r.scores.exact,
            versus_initial: PairedComparison::new(&initial.correct(), &r.correct())?,
            teacher_forced_mistake_rate: flags.teacher_forced,
            graded_mistake_rate: flags.graded,
            flag_disagreements: flags.disagreements,
            flag_examples: flags.examples,
            optimise_seconds,
        });
        finals.push(r);
    }
    Ok(SignalTask {
        task: task.name.clone(),
        initial_dev: initial.scores.exact,
        aligned_versus_official: PairedComparison::new(&finals[0].correct(), &finals[1].correct())?,
        settings,
    })
}

/// What a run's events say about its mistake flags.
#[derive(Debug, Default, PartialEq)]
struct Flags {
    teacher_forced: Option<f64>,
    graded: Option<f64>,
    disagreements: Option<usize>,
    examples: usize,
}

/// Mean flags over every candidate scored in full, from `events.jsonl` of a run on `n` examples.
fn flag_summary(events: &Path, n: usize) -> Result<Flags> {
    let text = std::fs::read_to_string(events).with_context(|| format!("reading {}", events.display()))?;
    let mut tf = Vec::new();
    let mut graded = Vec::new();
    let (mut disagree, mut examples, mut counted) = (0, 0, false);
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let e: StepEvent = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not a step event", events.display(), i + 1))?;
        for c in e.selection.iter().filter(|c| c.pruned_after.is_none()) {
            tf.extend(c.teacher_forced_mistake_rate.map(f64::from));
            graded.extend(c.graded_mistake_rate.map(f64::from));
            if let Some(d) = c.flag_disagreements {
                disagree += d;
                examples += n;
                counted = true;
            }
        }
    }
    let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    Ok(Flags { teacher_forced: mean(&tf), graded: mean(&graded), disagreements: counted.then_some(disagree), examples })
}

/// The Markdown table: per task, the initial prompt and each setting on dev.
pub fn table(report: &SignalReport) -> String {
    let pct = |a: &Accuracy| format!("{:.1} [{:.1}, {:.1}]", 100.0 * a.accuracy, 100.0 * a.ci_low, 100.0 * a.ci_high);
    let paired = |p: &PairedComparison| format!("{:+.1} (p={:.2})", 100.0 * p.difference, p.p_value);
    let rate = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}"));
    let mut out = format!("model: {}  ({})\n\n", report.model, report.args);
    out += "| task | initial dev % | setting | dev % [95% CI] | vs initial | vs official | TF mistake | graded mistake | flags disagree | prompt |\n";
    out += "|---|---|---|---|---|---|---|---|---|---|\n";
    for t in &report.tasks {
        for (i, s) in t.settings.iter().enumerate() {
            let disagree = s.flag_disagreements.map_or("–".into(), |d| format!("{d}/{}", s.flag_examples));
            let versus = if i == 0 { "–".into() } else { paired(&t.aligned_versus_official) };
            let first = if i == 0 { (t.task.as_str(), pct(&t.initial_dev)) } else { ("", String::new()) };
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | `{}` |\n",
                first.0,
                first.1,
                s.setting,
                pct(&s.dev),
                paired(&s.versus_initial),
                versus,
                rate(s.teacher_forced_mistake_rate),
                rate(s.graded_mistake_rate),
                disagree,
                s.prompt.replace('|', "\\|").replace('\n', " "),
            );
        }
    }
    out
}
