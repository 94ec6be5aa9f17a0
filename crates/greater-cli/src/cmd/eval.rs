//! `greater eval`: score a prompt on a task split, optionally against a second prompt.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use greater_models::hub;
use greater_opt::eval::{EvalOptions, EvalResult, MAX_ANSWER_TOKENS, PromptInput, evaluate, evaluate_drafted};
use greater_opt::layout::Placement;
use greater_opt::report::Report;
use greater_tasks::{PairedComparison, Split};

use super::{DEFAULT_MODEL, MODEL_HELP, TASK_HELP, fmt_accuracy, load_model, load_task_with, stopped_or};
use crate::progress::{Bars, install_ctrlc};

/// Flags of `greater eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[arg(long, default_value = DEFAULT_MODEL, help = MODEL_HELP)]
    model: String,
    #[arg(long, help = TASK_HELP)]
    task: String,
    /// The prompt text to evaluate [default: GReaTer's initial prompt, "proper logical reasoning and think step by step. …"].
    #[arg(long, conflicts_with = "prompt_from")]
    prompt: Option<String>,
    /// Evaluate the final prompt of an optimisation run: DIR/report.json. Its token ids are used on the
    /// same model; on another model its text is re-tokenised.
    #[arg(long, value_name = "DIR")]
    prompt_from: Option<PathBuf>,
    /// The split to evaluate on.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// Evaluate only the first N examples of the split.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Sequences generated together.
    #[arg(long, default_value_t = 8, value_name = "B")]
    batch_size: usize,
    /// Cap on reasoning tokens per example.
    #[arg(long, default_value_t = 512, value_name = "N")]
    max_reasoning_tokens: usize,
    /// Write examples.jsonl (one record per example) and summary.json into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A second prompt (text) evaluated on the same examples: prints the paired difference and the
    /// exact McNemar p-value; with --out also writes examples-compare.jsonl.
    #[arg(long, value_name = "PROMPT")]
    compare: Option<String>,
    /// Text between the question and the frozen prefix [default: ". ", or the run's with --prompt-from].
    #[arg(long, allow_hyphen_values = true)]
    joiner: Option<String>,
    /// Fixed text before the prompt [default: "Use ", or the run's with --prompt-from].
    #[arg(long, allow_hyphen_values = true)]
    frozen_prefix: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    task_file: super::TaskFileArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    placing: super::PlacementArgs,
    /// The reference path: reasoning batch by batch, then a second pass over prompt, reasoning
    /// and extractor for the answers, no drafts. It writes the same records as the default one
    /// pass (reasoning, answer and label scores from one KV cache), only slower.
    #[arg(long)]
    plain: bool,
}

/// A split as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SplitArg {
    Train,
    Dev,
    Test,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Dev => Split::Dev,
            SplitArg::Test => Split::Test,
        }
    }
}

/// Run `greater eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let from = args.prompt_from.as_deref().map(read_report).transpose()?;
    let custom = match (&from, args.task_file.options()) {
        (Some(report), o) if o.is_empty() && report.config.task == args.task => report.config.custom_options(),
        (_, o) => o,
    };
    let task = load_task_with(&args.task, &custom)?;
    let split = Split::from(args.split);
    let all = task.split(split);
    let examples = &all[..args.limit.unwrap_or(all.len()).min(all.len())];
    if examples.is_empty() {
        bail!("task `{}` has no {} examples to evaluate", task.name, split.name());
    }
    let loaded = load_model(&args.model)?;
    let placement = placement(&args, from.as_ref());
    let prompt = prompt_input(&args, from.as_ref());
    let opts = EvalOptions {
        max_reasoning_tokens: args.max_reasoning_tokens,
        max_answer_tokens: MAX_ANSWER_TOKENS,
        batch_size: args.batch_size,
        placement,
        ..EvalOptions::default()
    };
    let opts = if args.plain { EvalOptions { draft_chunk: 0, continuous: false, ..opts } } else { opts };
    install_ctrlc()?;
    let bars = Bars::new();
    let text_of = |p: &PromptInput| -> Result<String> {
        Ok(match p {
            PromptInput::Text(t) => t.clone(),
            PromptInput::Ids(ids) => loaded.tokenizer.decode(ids, false)?,
        })
    };
    let label = format!("{} {} ({} examples)", task.name, split.name(), examples.len());
    bars.println(&format!("evaluating on {label}: {:?}", text_of(&prompt)?));
    let first = evaluate(&loaded, &task.spec, examples, &prompt, &opts, &bars)
        .map_err(|e| stopped_or(e, None, || format!("evaluating on {label}")))?;
    let second = match &args.compare {
        None => None,
        Some(text) => {
            bars.println(&format!("evaluating on {label}: {text:?}"));
            let p = PromptInput::Text(text.clone());
            // The first prompt's reasoning drafts the second's: the same records, less work.
            let drafts: Vec<Vec<u32>> = first.records.iter().map(|r| r.reasoning_ids.clone()).collect();
            Some(
                evaluate_drafted(&loaded, &task.spec, examples, &p, &opts, &drafts, &bars)
                    .map_err(|e| stopped_or(e, None, || format!("evaluating on {label}")))?,
            )
        }
    };
    bars.finish();

    println!("{label}");
    let text = text_of(&prompt)?;
    print_scores("prompt", &text, &first);
    let compared = second.as_ref().zip(args.compare.as_deref());
    let paired = compared.map(|(second, text)| print_paired(&first, second, text)).transpose()?;
    if let Some(out) = &args.out {
        let config = serde_json::json!({
            "model": args.model,
            "model_file": loaded.source,
            "backend": greater_models::device::backend_name(),
            "task": task.name,
            "split": split.name(),
            "limit": args.limit,
            "prompt_from": args.prompt_from,
            "options": opts,
        });
        let mut summary = summary_json(&text, &prompt, &first);
        summary["config"] = config;
        if let Some((second, text)) = compared {
            summary["compare"] = summary_json(text, &PromptInput::Text(text.to_string()), second);
            summary["paired"] = serde_json::to_value(paired).expect("comparison serialises");
        }
        write_outputs(out, &first, second.as_ref(), &summary)?;
    }
    Ok(())
}

/// Print the second prompt's scores and the paired difference to the first.
fn print_paired(first: &EvalResult, second: &EvalResult, text: &str) -> Result<PairedComparison> {
    print_scores("compare", text, second);
    let cmp = PairedComparison::new(&first.correct(), &second.correct())?;
    println!(
        "paired difference (compare − prompt): {:+.1} points; prompt right/compare wrong {}, prompt wrong/compare right {}; exact McNemar p = {:.4}",
        100.0 * cmp.difference,
        cmp.b,
        cmp.c,
        cmp.p_value
    );
    Ok(cmp)
}

/// Write examples.jsonl (and examples-compare.jsonl) and summary.json into `out`.
fn write_outputs(
    out: &Path,
    first: &EvalResult,
    second: Option<&EvalResult>,
    summary: &serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_records(&out.join("examples.jsonl"), first)?;
    if let Some(second) = second {
        write_records(&out.join("examples-compare.jsonl"), second)?;
    }
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary).expect("summary serialises") + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {} and {}", out.join("examples.jsonl").display(), path.display());
    Ok(())
}

/// Where the prompt goes: the flags, else the run's (with --prompt-from), else the defaults.
fn placement(args: &EvalArgs, from: Option<&Report>) -> Placement {
    Placement {
        joiner: args
            .joiner
            .clone()
            .or_else(|| from.map(|r| r.config.joiner.clone()))
            .unwrap_or_else(|| greater_tasks::DEFAULT_JOINER.into()),
        frozen_prefix: args
            .frozen_prefix
            .clone()
            .or_else(|| from.map(|r| r.config.frozen_prefix.clone()))
            .unwrap_or_else(|| greater_tasks::DEFAULT_FROZEN_PREFIX.into()),
        place: args.placing.place().or_else(|| from.and_then(|r| r.config.prompt_placement)),
        system: args.placing.system().or_else(|| from.and_then(|r| r.config.system_prompt.clone())),
    }
}

/// The prompt to evaluate: --prompt, else the run's final prompt (its ids on the same model, its
/// text re-tokenised on another), else GReaTer's initial prompt.
fn prompt_input(args: &EvalArgs, from: Option<&Report>) -> PromptInput {
    match (&args.prompt, from) {
        (Some(text), _) => PromptInput::Text(text.clone()),
        (None, Some(report)) if same_model(&report.model, &args.model) => {
            PromptInput::Ids(report.final_prompt_ids.clone())
        }
        (None, Some(report)) => {
            eprintln!("the run used model {}; re-tokenising its final prompt text for {}", report.model, args.model);
            PromptInput::Text(report.final_prompt.clone())
        }
        (None, None) => PromptInput::Text(greater_tasks::DEFAULT_INITIAL_PROMPT.into()),
    }
}

/// Read an optimisation run's report.
pub fn read_report(dir: &Path) -> Result<Report> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Whether two model arguments name the same model (same text, or the same file).
fn same_model(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let canon = |m: &str| hub::resolve(m).ok().and_then(|p| p.canonicalize().ok());
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

fn print_scores(name: &str, text: &str, r: &EvalResult) {
    let s = &r.scores;
    let n = r.records.len().max(1);
    println!("{name}: {text:?}");
    println!("  accuracy     {}", fmt_accuracy(&s.exact));
    println!("  flexible     {}", fmt_accuracy(&s.flexible));
    match &s.constrained {
        Some(c) => println!("  constrained  {}", fmt_accuracy(c)),
        None => println!("  constrained  n/a (open answers)"),
    }
    println!("  unparseable  {:.1}% ({}/{})", 100.0 * s.unparseable_rate, s.unparseable, r.records.len());
    println!(
        "  time         {:.2} s/example ({:.1} s, {} tokens generated)",
        r.seconds / n as f64,
        r.seconds,
        r.generated_tokens
    );
}

fn summary_json(text: &str, prompt: &PromptInput, r: &EvalResult) -> serde_json::Value {
    let s = &r.scores;
    serde_json::json!({
        "prompt": text,
        "prompt_ids": match prompt { PromptInput::Ids(ids) => Some(ids), PromptInput::Text(_) => None },
        "examples": r.records.len(),
        "correct": s.exact.correct,
        "accuracy": s.exact.accuracy,
        "interval": [s.exact.ci_low, s.exact.ci_high],
        "flexible": s.flexible.accuracy,
        "flexible_correct": s.flexible.correct,
        "unparseable": s.unparseable,
        "unparseable_rate": s.unparseable_rate,
        "constrained": s.constrained.map(|c| c.accuracy),
        "constrained_correct": s.constrained.map(|c| c.correct),
        "scores": s,
        "seconds": r.seconds,
        "seconds_per_example": r.seconds / r.records.len().max(1) as f64,
        "generated_tokens": r.generated_tokens,
    })
}

fn write_records(path: &Path, r: &EvalResult) -> Result<()> {
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for rec in &r.records {
        serde_json::to_writer(&mut f, rec).expect("records serialise");
        f.write_all(b"\n").with_context(|| format!("writing {}", path.display()))?;
    }
    f.flush().with_context(|| format!("writing {}", path.display()))
}
