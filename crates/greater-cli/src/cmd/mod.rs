//! One module per subcommand, and what they share: resolving (and fetching) models, finding
//! task data, and turning a Ctrl-C into [`Interrupted`].

pub mod cost;
pub mod eval;
pub mod explain;
pub mod export;
pub mod export_run;
pub mod generate;
pub mod manifest;
pub mod models;
pub mod optimize;
pub mod report;
pub mod sweep;
pub mod transfer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use greater_models::hub;
use greater_models::model::LoadedModel;
use greater_opt::OptError;
use greater_tasks::{Accuracy, Source, Task};

use crate::progress::{FetchBar, stop_requested};

/// The model every command uses when `--model` is not given.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// Help text of every `--model` flag.
pub const MODEL_HELP: &str = "Model: a registry name (see `greater models list`; fetched into the cache on first use) or a path to a GGUF file or a Hugging Face folder";

/// Help text of every `--task` flag.
pub const TASK_HELP: &str = "Task: bbh/<name> (27 BBH tasks), gsm8k, folio, gen/<generator> (generated, needs no data) or a path to a .jsonl file with {\"input\", \"target\"} rows or a .csv file whose header names the input and target columns";

/// A run stopped by Ctrl-C; `main` prints it and exits with code 130.
#[derive(Debug)]
pub struct Interrupted {
    /// How to continue, when the work can be resumed.
    pub resume: Option<String>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.resume {
            Some(how) => write!(f, "interrupted; resume with `{how}`"),
            None => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for Interrupted {}

/// Turn a library error into [`Interrupted`] when the user pressed Ctrl-C (the libraries stop
/// with an error at their next check), else into an error with `context`.
pub fn stopped_or(e: OptError, resume: Option<String>, context: impl FnOnce() -> String) -> anyhow::Error {
    if matches!(e, OptError::Interrupted(_)) || stop_requested() {
        return Interrupted { resume }.into();
    }
    anyhow::Error::new(e).context(context())
}

/// The file of a model argument: an existing path as it is; a registry name from the cache,
/// fetched there (with a progress bar) when it is not yet; anything else is an error that lists
/// the known names.
pub fn model_file(name_or_path: &str) -> Result<PathBuf> {
    if Path::new(name_or_path).exists() {
        return Ok(PathBuf::from(name_or_path));
    }
    if hub::lookup(name_or_path).is_none() {
        // `resolve` fails here with the message that lists the registry's names.
        return hub::resolve(name_or_path).map_err(Into::into);
    }
    let target = hub::model_path(name_or_path)?;
    if !target.is_file() {
        eprintln!("model {name_or_path} is not in the cache yet; fetching it into {}", target.display());
    }
    let bar = FetchBar::new();
    let path =
        greater_models::fetch::fetch(name_or_path, &bar).with_context(|| format!("fetching model `{name_or_path}`"));
    bar.finish();
    path
}

/// Resolve (fetching if needed) and load a model onto this build's default device.
pub fn load_model(name_or_path: &str) -> Result<LoadedModel> {
    let path = model_file(name_or_path)?;
    let device = greater_models::default_device();
    let start = Instant::now();
    let loaded = LoadedModel::load(&path, &device).with_context(|| format!("loading model {}", path.display()))?;
    let cfg = loaded.config();
    eprintln!(
        "loaded {} ({}, {:.0}M parameters) on {} in {:.1} s",
        path.display(),
        cfg.family,
        cfg.num_parameters() as f64 / 1e6,
        greater_models::device::backend_name(),
        start.elapsed().as_secs_f64()
    );
    Ok(loaded)
}

/// How a custom task file is read (`optimize` and `eval`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TaskFileArgs {
    /// A custom task's spec file (TOML: answer kind, labels, extractor, pattern, field names,
    /// split sizes, placement) [default: the data file's `.toml` beside it, when there is one;
    /// for `eval --prompt-from`, the run's].
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// A custom task's question field (JSONL) or column (CSV) [default: input].
    #[arg(long, value_name = "NAME")]
    pub input_field: Option<String>,
    /// A custom task's gold-answer field or column [default: target].
    #[arg(long, value_name = "NAME")]
    pub target_field: Option<String>,
}

impl TaskFileArgs {
    /// The options these flags give.
    pub fn options(&self) -> greater_tasks::CustomOptions {
        greater_tasks::CustomOptions {
            spec: self.spec.clone(),
            input_field: self.input_field.clone(),
            target_field: self.target_field.clone(),
        }
    }
}

/// Where the prompt goes (`optimize` and `eval`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlacementArgs {
    /// Where the prompt goes: `after` the question (the paper's: `{question}. Use {prompt}`),
    /// `before` it (`Use {prompt}. {question}`), or `system` (the system turn is `Use {prompt}`,
    /// the user turn the question) [default: after, or the task spec's; for `eval --prompt-from`,
    /// the run's].
    #[arg(long, value_name = "WHERE", value_parser = ["after", "before", "system"])]
    pub placement: Option<String>,
    /// The system turn: TEXT replaces the chat template's default, `none` asks for no system text
    /// (SmolLM2's and Qwen2.5's templates inject a default system turn otherwise). Not with
    /// `--placement system`.
    #[arg(long, value_name = "TEXT|none", allow_hyphen_values = true)]
    pub system: Option<String>,
}

impl PlacementArgs {
    /// The placement asked for.
    pub fn place(&self) -> Option<greater_opt::layout::PromptPlace> {
        self.placement.as_deref().map(|p| p.parse().expect("clap checked the value"))
    }

    /// The system text asked for (`none` is the empty text).
    pub fn system(&self) -> Option<String> {
        self.system.as_ref().map(|t| if t == "none" { String::new() } else { t.clone() })
    }
}

/// Load a task: unknown names list the closest ones; built-in data comes from [`data_root`].
pub fn load_task(name: &str) -> Result<Task> {
    load_task_with(name, &greater_tasks::CustomOptions::default())
}

/// [`load_task`] with how a custom file is read (its spec file and field names).
pub fn load_task_with(name: &str, custom: &greater_tasks::CustomOptions) -> Result<Task> {
    if greater_tasks::is_custom_name(name) {
        return greater_tasks::load_custom_with(std::path::Path::new(name), custom)
            .with_context(|| format!("loading task `{name}`"));
    }
    if !custom.is_empty() {
        bail!("--spec, --input-field and --target-field apply to custom task files (.jsonl, .csv), not to `{name}`");
    }
    let generated = matches!(greater_tasks::spec(name)?.source, Source::Generated { .. });
    let root = if generated { data_root().unwrap_or_default() } else { data_root_for(name)? };
    greater_tasks::load_task(name, &root).with_context(|| format!("loading task `{name}`"))
}

/// `$GREATER_DATA`, else `target/data` under the working directory when it exists (where
/// `cargo xtask fetch-data` copies the data by default).
pub fn data_root() -> Option<PathBuf> {
    match std::env::var_os("GREATER_DATA") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => Some(PathBuf::from("target/data")).filter(|p| p.is_dir()),
    }
}

fn data_root_for(task: &str) -> Result<PathBuf> {
    match data_root() {
        Some(root) => Ok(root),
        None => bail!(
            "task `{task}` needs the datasets: set GREATER_DATA to a folder that holds bbh/, gsm8k/ and folio/, \
             or run `cargo xtask fetch-data` in the repository"
        ),
    }
}

/// `62.0% (31/50), 95% CI [48.2, 74.1]`.
pub fn fmt_accuracy(a: &Accuracy) -> String {
    format!(
        "{:.1}% ({}/{}), 95% CI [{:.1}, {:.1}]",
        100.0 * a.accuracy,
        a.correct,
        a.total,
        100.0 * a.ci_low,
        100.0 * a.ci_high
    )
}

/// A short form for tables: `62.0% [48.2, 74.1]`.
pub fn fmt_accuracy_short(a: Option<&Accuracy>) -> String {
    a.map_or_else(
        || "–".to_owned(),
        |a| format!("{:.1}% [{:.1}, {:.1}] n={}", 100.0 * a.accuracy, 100.0 * a.ci_low, 100.0 * a.ci_high, a.total),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_formats_with_interval() {
        // 1 of 2: Wilson interval (0.0945, 0.9055).
        let a = Accuracy::new(1, 2);
        assert_eq!(fmt_accuracy(&a), "50.0% (1/2), 95% CI [9.5, 90.5]");
        assert_eq!(fmt_accuracy_short(None), "–");
        assert_eq!(fmt_accuracy_short(Some(&a)), "50.0% [9.5, 90.5] n=2");
    }

    #[test]
    fn interrupted_names_the_resume_command() {
        let i = Interrupted { resume: Some("greater optimize --resume runs/x".into()) };
        assert_eq!(i.to_string(), "interrupted; resume with `greater optimize --resume runs/x`");
    }
}
