//! `greater export DIR --to lm-eval|promptfoo|json`: a run's optimised prompt for other tools.
//!
//! The YAML is written by hand as JSON-quoted scalars (a JSON string is a valid YAML
//! double-quoted scalar), which keeps every prompt byte exact without a YAML serialiser.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use greater_opt::layout::PromptPlace;
use greater_opt::report::Report;
use greater_tasks::Task;
use serde_json::{Value, json};

use super::eval::read_report;

/// Shown under `greater export --help`.
const AFTER: &str = "\
lm-eval    <task>.yaml (an lm-evaluation-harness task: doc_to_text with the prompt placed as in
           the run, greedy generate_until, a regex filter with the task's flexible pattern taking
           its last match, exact_match) and <task>.jsonl, the test split it reads.
promptfoo  promptfooconfig.yaml: the prompt with {{input}}, one test per test example with a
           javascript assert that takes the last match of the flexible pattern and compares it
           with the gold. Set `providers` to your model.
json       prompt.json: the prompt text and ids, where it goes, the extractor, pattern, labels
           and the run's accuracies.

lm-eval and promptfoo generate once and read the answer from the reasoning (greater's flexible
score); greater's exact score appends the extractor and reads the answer after it.";

/// Target formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An lm-evaluation-harness task YAML and its data.
    LmEval,
    /// A promptfoo config.
    Promptfoo,
    /// The plain prompt record.
    Json,
}

/// Flags of `greater export`.
#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct ExportArgs {
    /// A finished run folder (with report.json).
    pub dir: PathBuf,
    /// What to write.
    #[arg(long = "to", value_enum)]
    pub format: Format,
    /// Folder to write into [default: DIR/export].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `greater export`.
pub fn run(args: ExportArgs) -> Result<()> {
    let report = read_report(&args.dir)?;
    let task = super::load_task_with(&report.config.task, &report.config.custom_options())?;
    let out = args.out.clone().unwrap_or_else(|| args.dir.join("export"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let files = match args.format {
        Format::Json => {
            vec![write(&out, "prompt.json", serde_json::to_string_pretty(&record(&report, &task))? + "\n")?]
        }
        Format::LmEval => lm_eval(&report, &task, &out)?,
        Format::Promptfoo => vec![write(&out, "promptfooconfig.yaml", promptfoo(&report, &task))?],
    };
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

fn write(dir: &Path, name: &str, text: String) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A YAML scalar holding `s` exactly.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

fn place(report: &Report, task: &Task) -> PromptPlace {
    report.config.prompt_placement.or(task.spec.placement).unwrap_or_default()
}

/// The user turn with `input` standing for the question, and the system text (the prompt, for
/// the system placement; else the run's `--system`).
fn turns(report: &Report, task: &Task, input: &str) -> (String, Option<String>) {
    let (c, prompt) = (&report.config, &report.final_prompt);
    match place(report, task) {
        PromptPlace::After => (format!("{input}{}{}{prompt}", c.joiner, c.frozen_prefix), c.system_prompt.clone()),
        PromptPlace::Before => (format!("{}{prompt}{}{input}", c.frozen_prefix, c.joiner), c.system_prompt.clone()),
        PromptPlace::System => (input.to_string(), Some(format!("{}{prompt}", c.frozen_prefix))),
    }
}

/// The prompt record (`--to json`).
fn record(report: &Report, task: &Task) -> Value {
    let (user, system) = turns(report, task, "{input}");
    json!({
        "task": report.task, "model": report.model,
        "prompt": report.final_prompt, "prompt_ids": report.final_prompt_ids,
        "initial_prompt": report.initial_prompt,
        "placement": place(report, task), "joiner": report.config.joiner,
        "frozen_prefix": report.config.frozen_prefix, "system": system, "user_turn": user,
        "extractor": task.spec.extractor, "pattern": task.spec.pattern, "labels": task.spec.labels,
        "max_reasoning_tokens": report.config.max_reasoning_tokens,
        "accuracy_initial": report.accuracy_initial, "accuracy_final": report.accuracy_final,
    })
}

fn slug(task: &str) -> String {
    let s: String = task.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("greater_{}", s.trim_matches('_'))
}

/// `<task>.yaml` and `<task>.jsonl` for lm-evaluation-harness.
fn lm_eval(report: &Report, task: &Task, out: &Path) -> Result<Vec<PathBuf>> {
    let name = slug(&report.task);
    let rows: Vec<String> =
        task.test.iter().map(|e| json!({"input": e.input, "target": e.target}).to_string()).collect();
    let data = write(out, &format!("{name}.jsonl"), rows.join("\n") + "\n")?;
    // Jinja: the fixed text goes inside {% raw %} so braces in a prompt stay literal.
    let raw = |s: &str| if s.is_empty() { String::new() } else { format!("{{% raw %}}{s}{{% endraw %}}") };
    let (user, system) = turns(report, task, "\u{0}");
    let (before, after) = user.split_once('\u{0}').expect("the question is in the user turn");
    let doc_to_text = format!("{}{{{{input}}}}{}", raw(before), raw(after));
    let pattern = task.spec.pattern.clone().unwrap_or_else(|| "(.+)".into());
    let mut y = String::new();
    y += &format!("# greater's optimised prompt for {} on {}\n", report.task, report.model);
    y += "# The answer is read from the reasoning with the task's flexible pattern (last match).\n";
    if let Some(s) = &system {
        y += &format!("# System turn (pass it with lm_eval --system_instruction): {}\n", q(s));
    }
    y += &format!("task: {}\n", q(&name));
    y += "dataset_path: json\ndataset_kwargs:\n  data_files:\n";
    y += &format!("    test: {}\n", q(&data.canonicalize().unwrap_or(data.clone()).display().to_string()));
    y += "test_split: test\noutput_type: generate_until\n";
    y += &format!("doc_to_text: {}\ndoc_to_target: {}\n", q(&doc_to_text), q("{{target}}"));
    y += "generation_kwargs:\n  until: []\n  do_sample: false\n";
    y += &format!("  max_gen_toks: {}\n", report.config.max_reasoning_tokens);
    y += "filter_list:\n  - name: flexible\n    filter:\n      - function: regex\n";
    y += &format!("        regex_pattern: {}\n        group_select: -1\n      - function: take_first\n", q(&pattern));
    y += "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n";
    y += "    ignore_case: true\n    ignore_punctuation: true\n";
    Ok(vec![write(out, &format!("{name}.yaml"), y)?, data])
}

/// `promptfooconfig.yaml`: the prompt and one test per test example.
fn promptfoo(report: &Report, task: &Task) -> String {
    let (user, system) = turns(report, task, "{{input}}");
    let pattern = task.spec.pattern.clone().unwrap_or_else(|| "(.+)".into());
    let (source, flags) = match pattern.strip_prefix("(?i)") {
        Some(rest) => (rest.to_string(), "gi"),
        None => (pattern.clone(), "g"),
    };
    let check = format!(
        "const m = [...output.matchAll(new RegExp({}, {}))].pop(); \
         const got = m ? m.slice(1).find((g) => g !== undefined) ?? m[0] : ''; \
         return got.trim().toLowerCase() === String(context.vars.target).toLowerCase();",
        q(&source),
        q(flags)
    );
    let mut y = format!("description: {}\n", q(&format!("greater's prompt for {} ({})", report.task, report.model)));
    y += "prompts:\n";
    match &system {
        Some(s) => {
            let chat = json!([{"role": "system", "content": s}, {"role": "user", "content": user}]);
            y += &format!("  - {}\n", q(&chat.to_string()));
        }
        None => y += &format!("  - {}\n", q(&user)),
    }
    y += "# Replace with your model, e.g. ollama:chat:qwen2.5-coder:0.5b\nproviders:\n  - echo\n";
    y += &format!("defaultTest:\n  assert:\n    - type: javascript\n      value: {}\n", q(&check));
    y += "tests:\n";
    for e in &task.test {
        y += &format!("  - vars:\n      input: {}\n      target: {}\n", q(&e.input), q(&e.target));
    }
    y
}
