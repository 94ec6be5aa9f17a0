//! `greater transfer --runs DIR... --models A,B`: every run's final prompt (and the initial one)
//! on every model, as a matrix of paired differences.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use greater_opt::NoObserver;
use greater_opt::eval::{EvalOptions, EvalResult, PromptInput, evaluate};
use greater_opt::report::Report;
use greater_tasks::{Accuracy, PairedComparison, Split};

use super::eval::read_report;
use super::{load_model, load_task_with};

/// Flags of `greater transfer`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each cell is one run's final prompt evaluated on one model, next to the initial prompt on the
same model and examples: accuracy, the paired difference and its exact McNemar p. The initial
prompt is evaluated once per model and task (runs of one task share it). A prompt is used as
token ids on the model it was optimised on and re-tokenised from its text elsewhere. The prompt
goes where the run placed it. Writes transfer.json and transfer.html (a heat-map of the
differences) into --out.

  greater transfer --runs runs/navigate-smollm2 runs/navigate-qwen \\
      --models smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct --split test")]
pub struct TransferArgs {
    /// Run folders (each with report.json).
    #[arg(long, num_args = 1.., required = true, value_name = "DIR")]
    pub runs: Vec<PathBuf>,
    /// Models to evaluate on, comma-separated (names or paths).
    #[arg(long, value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// Split to evaluate on.
    #[arg(long, default_value = "test", value_parser = ["dev", "test"])]
    pub split: String,
    /// At most N examples of the split [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Cap on reasoning tokens [default: each run's].
    #[arg(long)]
    pub max_reasoning_tokens: Option<usize>,
    /// Sequences generated together.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Where transfer.json and transfer.html go.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// One cell of the matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cell {
    /// The run folder.
    pub run: PathBuf,
    /// Its task.
    pub task: String,
    /// The model the run optimised on.
    pub optimised_on: String,
    /// The model evaluated on.
    pub model: String,
    /// The initial prompt's accuracy on that model.
    pub initial: Accuracy,
    /// The final prompt's.
    pub fin: Accuracy,
    /// Paired: initial first, final second.
    pub paired: PairedComparison,
}

/// Run `greater transfer`.
pub fn run(args: TransferArgs) -> Result<()> {
    let split = if args.split == "dev" { Split::Dev } else { Split::Test };
    let reports: Vec<(PathBuf, Report)> =
        args.runs.iter().map(|d| Ok((d.clone(), read_report(d)?))).collect::<Result<_>>()?;
    let mut cells = Vec::new();
    for model in &args.models {
        let loaded = load_model(model)?;
        // The initial prompt's results per (task, placement), shared by the runs of one task.
        let mut initial: BTreeMap<String, EvalResult> = BTreeMap::new();
        for (dir, report) in &reports {
            let c = &report.config;
            let task = load_task_with(&c.task, &c.custom_options())?;
            let all = task.split(split);
            let examples = &all[..args.limit.unwrap_or(all.len()).min(all.len())];
            let opts = EvalOptions {
                max_reasoning_tokens: args.max_reasoning_tokens.unwrap_or(c.max_reasoning_tokens),
                batch_size: args.batch_size,
                placement: c.placement(),
                ..EvalOptions::default()
            };
            let same = *model == report.model;
            // The prompt as ids on the model it was optimised on, as text elsewhere.
            let prompt = |ids: &[u32], text: &str| {
                if same { PromptInput::Ids(ids.to_vec()) } else { PromptInput::Text(text.to_string()) }
            };
            let eval = |which: &str, prompt: PromptInput| {
                eprintln!("{model}: {which} prompt of {} on {} ({} examples)", dir.display(), c.task, examples.len());
                evaluate(&loaded, &task.spec, examples, &prompt, &opts, &NoObserver)
                    .with_context(|| format!("evaluating the {which} prompt of {} on {model}", dir.display()))
            };
            let key = format!("{}|{:?}|{}", c.task, opts.placement, report.initial_prompt);
            if !initial.contains_key(&key) {
                let r = eval("initial", prompt(&report.initial_prompt_ids, &report.initial_prompt))?;
                initial.insert(key.clone(), r);
            }
            let fin = eval("final", prompt(&report.final_prompt_ids, &report.final_prompt))?;
            let init = &initial[&key];
            cells.push(Cell {
                run: dir.clone(),
                task: c.task.clone(),
                optimised_on: report.model.clone(),
                model: model.clone(),
                initial: init.scores.exact,
                fin: fin.scores.exact,
                paired: PairedComparison::new(&init.correct(), &fin.correct())?,
            });
        }
    }
    print_matrix(&cells, &args);
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join("transfer.json");
    std::fs::write(&json, serde_json::to_string_pretty(&cells)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let html = args.out.join("transfer.html");
    std::fs::write(&html, heat_map(&cells, &args)).with_context(|| format!("writing {}", html.display()))?;
    println!("wrote {} and {}", json.display(), html.display());
    Ok(())
}

fn cell_text(c: &Cell) -> String {
    format!("{:.1}% ({:+.1}, p {:.2})", 100.0 * c.fin.accuracy, 100.0 * c.paired.difference, c.paired.p_value)
}

fn print_matrix(cells: &[Cell], args: &TransferArgs) {
    println!("final prompt accuracy (difference to the initial prompt, McNemar p), {}:", args.split);
    println!("{:<40} {}", "run (task, optimised on)", args.models.join(" | "));
    for run in &args.runs {
        let row: Vec<&Cell> = cells.iter().filter(|c| &c.run == run).collect();
        let Some(first) = row.first() else { continue };
        let label = format!("{} ({}, {})", run.display(), first.task, first.optimised_on);
        let texts: Vec<String> = row.iter().map(|c| cell_text(c)).collect();
        println!("{label:<40} {}", texts.join(" | "));
    }
}

/// A table coloured by the paired difference: green where the final prompt gains, red where it loses.
fn heat_map(cells: &[Cell], args: &TransferArgs) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut h = String::from(
        "<!doctype html><meta charset=utf-8><title>greater transfer</title>\
         <style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px}</style>",
    );
    let _ = write!(h, "<h1>Transfer ({})</h1><table><tr><th>run</th>", esc(&args.split));
    for m in &args.models {
        let _ = write!(h, "<th>{}</th>", esc(m));
    }
    h += "</tr>";
    for run in &args.runs {
        let _ = write!(h, "<tr><th>{}</th>", esc(&run.display().to_string()));
        for m in &args.models {
            match cells.iter().find(|c| &c.run == run && &c.model == m) {
                Some(c) => {
                    // ±20 points saturate the colour.
                    let t = (c.paired.difference / 0.2).clamp(-1.0, 1.0);
                    let (r, g) = if t >= 0.0 { (255.0 * (1.0 - t), 255.0) } else { (255.0, 255.0 * (1.0 + t)) };
                    let _ = write!(
                        h,
                        "<td style=\"background:rgb({r:.0},{g:.0},{:.0})\">{}</td>",
                        255.0 * (1.0 - t.abs()),
                        esc(&cell_text(c))
                    );
                }
                None => h += "<td></td>",
            }
        }
        h += "</tr>";
    }
    h + "</table>"
}
