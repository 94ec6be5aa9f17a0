//! `greater bench bbh`: a fixed, seeded optimise + evaluate run per task, summarised in one table
//! (task, initial and final test accuracy, the paired difference with its p-value, median seconds
//! per step split by phase, generated tokens per second) and written as `bbh-<model>.json`.
//! Runs of different models go to different files and folders, so that `greater bench compare`
//! can put them side by side.

use std::path::PathBuf;

use anyhow::{Context, Result};
use greater_opt::optimize::OptimizeConfig;

use crate::report::{BenchReport, BenchRow, run_task, table};
use crate::{Common, Host, write_json};

/// Arguments of `greater bench bbh`. The defaults are small enough for a 2-core CPU.
#[derive(Debug, clap::Args)]
pub struct BbhArgs {
    /// Model name or path.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// Tasks, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "bbh/boolean_expressions,bbh/logical_deduction_three_objects")]
    pub tasks: Vec<String>,
    /// Optimisation steps per task.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Train examples.
    #[arg(long, default_value_t = 10)]
    pub train: usize,
    /// Reasoning cap in tokens.
    #[arg(long, default_value_t = 128)]
    pub max_reasoning_tokens: usize,
    /// Dev and test examples evaluated at the end (0: the whole split).
    #[arg(long, default_value_t = 50)]
    pub eval_limit: usize,
    /// Top prompts evaluated on dev to choose the final one.
    #[arg(long, default_value_t = 3)]
    pub top_prompts: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generation batch size.
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    /// Turn off the selection speed-ups (one pass, drafts, pruning, continuous batching): the
    /// plain path, to run side by side with the default one. Its results go to `bbh-<model>-plain`.
    #[arg(long)]
    pub plain: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// Run the suite.
pub fn run(args: &BbhArgs, host: &dyn Host) -> Result<()> {
    let loaded = host.load_model(&args.model)?;
    let slug = model_slug(&args.model) + if args.plain { "-plain" } else { "" };
    let mut rows: Vec<BenchRow> = Vec::new();
    for name in &args.tasks {
        let task = host.load_task(name)?;
        let cfg = OptimizeConfig {
            model: args.model.clone(),
            task: name.clone(),
            seed: args.seed,
            steps: args.steps,
            train: args.train,
            max_reasoning_tokens: args.max_reasoning_tokens,
            eval_limit: args.eval_limit,
            top_prompts: args.top_prompts,
            batch_size: args.batch_size,
            ..OptimizeConfig::default()
        };
        let cfg = if args.plain { cfg.without_accelerations() } else { cfg };
        let dir: PathBuf = args.common.out.join("bbh").join(&slug).join(name.replace('/', "_"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        let observer = host.observer(cfg.steps);
        let row =
            run_task(&loaded, &task, &cfg, &dir, observer.as_ref()).with_context(|| format!("benchmarking {name}"))?;
        drop(observer);
        eprintln!("{name}: done in {:.0} s; final prompt {:?}", row.total_seconds, row.final_prompt);
        rows.push(row);
    }
    println!(
        "model {} on {} ({} threads)",
        args.model,
        greater_models::device::backend_name(),
        rayon::current_num_threads()
    );
    print!("{}", table(&rows));
    let report = BenchReport { model: args.model.clone(), args: settings(args), rows };
    let path = write_json(&args.common.out, &format!("bbh-{slug}.json"), &report)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The names of the settings that must match for two models' rows to be comparable, in the
/// order [`settings`] writes them (`greater bench compare` reads them back).
pub const SETTING_KEYS: [&str; 7] =
    ["steps", "train", "max_reasoning_tokens", "eval_limit", "top_prompts", "seed", "batch_size"];

/// The comparable settings as `key=value` pairs separated by spaces.
fn settings(args: &BbhArgs) -> String {
    let values = [
        args.steps.to_string(),
        args.train.to_string(),
        args.max_reasoning_tokens.to_string(),
        args.eval_limit.to_string(),
        args.top_prompts.to_string(),
        args.seed.to_string(),
        args.batch_size.to_string(),
    ];
    SETTING_KEYS.iter().zip(values).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// A file-name-safe name for a model given by registry name or path (a GGUF file's stem, an HF
/// folder's name).
pub fn model_slug(model: &str) -> String {
    let path = std::path::Path::new(model);
    let name = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        path.file_stem()
    } else {
        path.file_name()
    };
    let stem = name.map_or_else(|| model.to_string(), |s| s.to_string_lossy().into_owned());
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::model_slug;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(model_slug("smollm2-135m-instruct"), "smollm2-135m-instruct");
        assert_eq!(model_slug("/models/Qwen2.5-0.5B/"), "Qwen2.5-0.5B");
        assert_eq!(model_slug("./my model.gguf"), "my_model");
    }
}
