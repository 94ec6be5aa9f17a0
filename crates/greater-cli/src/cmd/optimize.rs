//! `greater optimize`: the GReaTer loop with checkpoints, Ctrl-C and resume, then the final
//! evaluation and report.
//!
//! Configuration is layered: `OptimizeConfig::default()`, then `--config FILE.toml`, then flags.
//! `--resume DIR` starts from DIR/config.toml instead (flags such as `--steps` may extend it) and
//! continues from DIR/state.json. Which settings may change on resume, and when a finished run
//! reopens, is `greater_opt::resume`'s decision.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use greater_opt::finish::finish;
use greater_opt::manifest::utc_stamp;
use greater_opt::memory::human;
use greater_opt::optimize::{OptimizeConfig, Run, load_config};
use greater_opt::resume::{self, Previous};

use super::{MODEL_HELP, TASK_HELP, load_model, load_task_with, stopped_or};
use crate::progress::{Bars, install_ctrlc};

/// Flags of `greater optimize`. Every flag overrides the config file.
#[derive(Debug, Args)]
pub struct OptimizeArgs {
    #[arg(long, help = MODEL_HELP, long_help = format!("{MODEL_HELP} [default: smollm2-135m-instruct, or the config file's]"))]
    model: Option<String>,
    #[arg(long, help = TASK_HELP, long_help = format!("{TASK_HELP} [default: gen/boolean_expressions, or the config file's]"))]
    task: Option<String>,
    /// A TOML file with any OptimizeConfig fields (unknown keys are errors); flags override it.
    #[arg(long, value_name = "FILE.toml", conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Optimisation steps (one prompt position each) [default: 100].
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Training examples used: the first N of the train split [default: 50].
    #[arg(long, value_name = "N")]
    train: Option<usize>,
    /// Seed of every random choice [default: 0].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// The initial prompt text [default: "proper logical reasoning and think step by step. …"].
    #[arg(long, value_name = "TEXT")]
    initial_prompt: Option<String>,
    /// Output folder (config.toml, state.json, events.jsonl, evals/, report.json, report.html)
    /// [default: runs/<task>-<UTC timestamp>].
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint, with its config.toml (pass --steps to extend it).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Cap on reasoning tokens, in the loop and in the final evaluation [default: 512].
    #[arg(long, value_name = "N")]
    max_reasoning_tokens: Option<usize>,
    /// Sequences generated together [default: 10].
    #[arg(long, value_name = "B")]
    batch_size: Option<usize>,
    /// Evaluate at most N dev and N test examples at the end [default: all].
    #[arg(long, value_name = "N")]
    eval_limit: Option<usize>,
    /// Skip the final dev/test evaluation (the final prompt is then the best training prompt).
    #[arg(long)]
    no_final_eval: bool,
    /// The gradient's answer target: `official` (the paper's: extractor space + gold, one
    /// tokenisation) or `variants` (every spelling the evaluation grades as the gold, e.g. `True`
    /// and ` True`) [default: official].
    #[arg(long, value_name = "T", value_parser = ["official", "variants"])]
    answer_target: Option<String>,
    /// The selection score's mistake flag: `teacher_forced` (the paper's) or `graded` (the greedy
    /// answer does not grade as the gold, as in evaluation; both flags then go to events.jsonl)
    /// [default: teacher_forced].
    #[arg(long, value_name = "M", value_parser = ["teacher_forced", "graded"])]
    selection_mistake: Option<String>,
    /// Not the paper's selection: also score the current token (free with the speed-ups on) and
    /// keep it when no top-μ candidate beats it strictly; a '.' win still stands and the position
    /// advances either way. An experiment against prompts that drift from an early best (see
    /// benches/README.md, "Fidelity") [default: off].
    #[arg(long)]
    keep_current: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    task_file: super::TaskFileArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    placing: super::PlacementArgs,
    /// What the token gradient flows through: `reasoning` (the method) or `none` (the answer right
    /// after the prompt, without the reasoning: the paper's Fig. 3 ablation; selection still
    /// regenerates and grades reasoning) [default: reasoning].
    #[arg(long, value_name = "G", value_parser = ["reasoning", "none"])]
    gradient_through: Option<String>,
    /// Turn selection speed-ups off, comma separated: `one-pass` (score a candidate in its own
    /// generation pass), `draft` (verify the current prompt's reasoning as a draft), `prune` (drop
    /// candidates that can no longer win), `continuous` (refill finished generation rows),
    /// `prefix-cache` (prefill only what follows the optimised position), or `all`. Each one
    /// changes no decision; turning them off gives the plain path to compare with.
    #[arg(long, value_name = "LIST", value_delimiter = ',',
          value_parser = ["one-pass", "draft", "prune", "continuous", "prefix-cache", "all"])]
    no_speedup: Vec<String>,
    /// Refuse to start when the predicted peak memory is above SIZE (e.g. `12G`, `800M`). The
    /// prediction (weights, generation, gradient) is printed at the start of every run.
    #[arg(long, value_name = "SIZE", value_parser = greater_opt::memory::parse_size)]
    max_memory: Option<u64>,
    /// Recompute memory-bound activations in the gradient's backward pass: less peak memory on
    /// long reasoning, more time; changes no value.
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Print the expected tokens, FLOPs, memory and time per phase (from the model's shapes, the
    /// config and a ~10 s probe of this machine on the model), warn about what will not fit, and
    /// stop without optimising.
    #[arg(long)]
    dry_run: bool,
    /// Refuse to start a run expected (plain-path upper bound, after the probe) to take longer.
    #[arg(long, value_name = "HOURS")]
    max_hours: Option<f64>,
}

/// Run `greater optimize`.
pub fn run(args: OptimizeArgs) -> Result<()> {
    let (cfg, dir, resume) = resolve(&args)?;
    if args.dry_run || args.max_hours.is_some() {
        let fits = super::cost::dry_run(&cfg, &dir, args.max_hours);
        if args.dry_run {
            return fits;
        }
        fits?;
    }
    execute(cfg, dir, resume)
}

/// Optimise with `cfg` into `dir` (continuing the run there with `resume`), evaluate, write the
/// report and the manifest (`greater replay` runs this too).
pub fn execute(cfg: OptimizeConfig, dir: PathBuf, resume: bool) -> Result<()> {
    cfg.validate().context("checking the configuration")?;
    if !resume && dir.join("state.json").exists() {
        bail!(
            "{} already holds a run; continue it with `greater optimize --resume {}` or choose another --out",
            dir.display(),
            dir.display()
        );
    }
    let task = load_task_with(&cfg.task, &cfg.custom_options())?;
    let loaded = load_model(&cfg.model)?;
    super::manifest::start(&dir, &cfg, &task, &super::model_file(&cfg.model)?, resume)?;
    install_ctrlc()?;
    let resume_hint = Some(format!("greater optimize --resume {}", dir.display()));
    let previous = if resume {
        resume::prepare(&dir, &cfg).with_context(|| format!("resuming the run in {}", dir.display()))?
    } else {
        Previous::default()
    };
    let bars = Bars::with_steps(cfg.steps, previous.steps);
    let run = Run { loaded: &loaded, task: &task, cfg: &cfg, dir: dir.clone(), observer: &bars };
    let prepared = run.prepare().context("laying out the train examples")?;
    bars.println(&format!(
        "{} {} on {} with {} train examples, {} step(s); writing to {}",
        if resume { "resuming" } else { "optimising" },
        task.name,
        cfg.model,
        prepared.examples.len(),
        cfg.steps,
        dir.display()
    ));
    let mem = run.memory_estimate(&prepared);
    bars.println(&format!(
        "predicted peak memory {} (weights {}, generation {}, gradient {}){}",
        human(mem.peak),
        human(mem.weights),
        human(mem.generation),
        human(mem.gradient),
        cfg.max_memory.map_or(String::new(), |b| format!("; budget {}", human(b)))
    ));
    let start = Instant::now();
    let state =
        run.optimize(&prepared, resume).map_err(|e| stopped_or(e, resume_hint.clone(), || "optimising".into()))?;
    let loop_seconds = previous.seconds + start.elapsed().as_secs_f64();
    let mut report = finish(&run, &prepared, &state, loop_seconds)
        .map_err(|e| stopped_or(e, resume_hint, || "evaluating and writing the report".into()))?;
    bars.finish();
    // `finish` is given the time before it ran; the total also counts its evaluations.
    report.seconds.total = previous.seconds + start.elapsed().as_secs_f64();
    greater_opt::report::write(&dir, &report).with_context(|| format!("writing the report in {}", dir.display()))?;
    super::manifest::finish(&dir, &cfg)?;
    super::report::print_report(&report);
    println!("report: {}", dir.join("report.html").display());
    Ok(())
}

/// The config, the output folder, and whether to resume.
fn resolve(args: &OptimizeArgs) -> Result<(OptimizeConfig, PathBuf, bool)> {
    if let Some(dir) = &args.resume {
        let old = load_config(dir).with_context(|| format!("reading the run in {}", dir.display()))?;
        let mut cfg = old.clone();
        override_with_flags(&mut cfg, args);
        // Refuse a fixed change now, before the model is loaded.
        resume::check_resumable(dir, &old, &cfg)?;
        return Ok((cfg, dir.clone(), true));
    }
    let mut cfg = match &args.config {
        Some(file) => {
            OptimizeConfig::from_toml_file(file).with_context(|| format!("reading the config {}", file.display()))?
        }
        None => OptimizeConfig::default(),
    };
    override_with_flags(&mut cfg, args);
    let dir = args.out.clone().unwrap_or_else(|| default_out(&cfg.task, SystemTime::now()));
    Ok((cfg, dir, false))
}

/// Every flag over `cfg` (on resume, [`resume::check_resumable`] then refuses the fixed ones).
fn override_with_flags(cfg: &mut OptimizeConfig, args: &OptimizeArgs) {
    if let Some(m) = &args.model {
        cfg.model = m.clone();
    }
    if let Some(t) = &args.task {
        cfg.task = t.clone();
    }
    if let Some(n) = args.train {
        cfg.train = n;
    }
    if let Some(t) = &args.answer_target {
        cfg.answer_target =
            if t == "variants" { greater_opt::optimize::AnswerTarget::Variants } else { Default::default() };
    }
    if let Some(m) = &args.selection_mistake {
        cfg.selection_mistake =
            if m == "graded" { greater_opt::optimize::SelectionMistake::Graded } else { Default::default() };
    }
    if args.keep_current {
        cfg.keep_current = true;
    }
    let t = &args.task_file;
    cfg.task_spec = t.spec.clone().or(cfg.task_spec.take());
    cfg.input_field = t.input_field.clone().or(cfg.input_field.take());
    cfg.target_field = t.target_field.clone().or(cfg.target_field.take());
    cfg.prompt_placement = args.placing.place().or(cfg.prompt_placement);
    cfg.system_prompt = args.placing.system().or(cfg.system_prompt.take());
    if let Some(g) = &args.gradient_through {
        cfg.gradient_through =
            if g == "none" { greater_opt::optimize::GradientThrough::None } else { Default::default() };
    }
    for off in &args.no_speedup {
        match off.as_str() {
            "one-pass" => cfg.one_pass = false,
            "draft" => cfg.draft = false,
            "prune" => cfg.prune = false,
            "continuous" => cfg.continuous_batching = false,
            "prefix-cache" => cfg.prefix_cache = false,
            _ => *cfg = cfg.clone().without_accelerations(),
        }
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if let Some(p) = &args.initial_prompt {
        cfg.initial_prompt = p.clone();
    }
    if let Some(n) = args.steps {
        cfg.steps = n;
    }
    if let Some(n) = args.max_reasoning_tokens {
        cfg.max_reasoning_tokens = n;
    }
    if let Some(n) = args.batch_size {
        cfg.batch_size = n;
    }
    if let Some(n) = args.eval_limit {
        cfg.eval_limit = n;
    }
    if args.no_final_eval {
        cfg.final_eval = false;
    }
    if let Some(b) = args.max_memory {
        cfg.max_memory = Some(b);
    }
    if args.gradient_checkpointing {
        cfg.gradient_checkpointing = true;
    }
}

/// `runs/<task with / as ->-<YYYYMMDD-HHMMSS UTC>`.
fn default_out(task: &str, now: SystemTime) -> PathBuf {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let name: String = task
        .trim_end_matches(".jsonl")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '-' })
        .collect();
    PathBuf::from("runs").join(format!("{}-{}", name.trim_matches('-'), utc_stamp(secs)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn utc_stamps_by_hand() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2000-02-29 12:34:56 UTC = 951_827_696 (a leap day in a century leap year).
        assert_eq!(utc_stamp(951_827_696), "20000229-123456");
        // 2024-12-31 23:59:59 UTC = 1_735_689_599.
        assert_eq!(utc_stamp(1_735_689_599), "20241231-235959");
    }

    #[test]
    fn default_out_names_the_task() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        assert_eq!(
            default_out("gen/boolean_expressions", t),
            Path::new("runs/gen-boolean_expressions-19700102-000000")
        );
        assert_eq!(default_out("data/my task.jsonl", t), Path::new("runs/data-my-task-19700102-000000"));
    }
}
