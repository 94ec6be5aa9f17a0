//! `greater-bench`: every benchmark of the workspace in one crate. The `greater` binary runs the
//! end-to-end suites (`greater bench <suite>`, `cargo xtask bench <suite>` writes them into
//! `target/bench/`); the criterion micro-benchmarks live in `benches/`.
//!
//! The CLI parses the flags (the argument structs here derive `clap::Args`) and supplies, through
//! [`Host`], what only it does: fetching models with a progress bar, finding task data, drawing
//! progress. Everything measured and every report format lives here.
//!
//! - `models`: prefill and decode throughput of real models, next to what the machine can do
//!   (f32 GEMM GFLOP/s, memory bandwidth) and a per-part timing of one decode step;
//! - `grad`: forward+backward time of the token gradient against forward-only time, and peak RSS;
//! - `bbh`: optimise + evaluate per task (`bbh-<model>.json`); `compare` tables several models;
//! - `peers`: the `models` workloads through HF transformers and llama.cpp too, with ratios;
//! - `step --random NAME`: one GReaTer step of a random model in a real shape, by phase;
//! - `fidelity`: ZS-CoT against greater's and the paper's prompts on whole splits (resumable),
//!   and (`fidelity_against`) two fidelity folders' greater prompts paired on dev;
//! - `signal`: the official training signal against the graded one, paired on dev (resumable);
//! - `parity`: logits, token gradient and greedy tokens of one model, compared across backends.
//!
//! Numbers come from here, never from timed tests. Criterion micro-benchmarks of single
//! operations live in `benches/models.rs`.

pub mod bbh;
pub mod breakdown;
pub mod compare;
pub mod fidelity;
pub mod fidelity_against;
pub mod grad;
pub mod machine;
pub mod models;
pub mod parity;
pub mod peers;
pub mod report;
pub mod signal;
pub mod step;
pub mod verify_cost;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use greater_models::model::LoadedModel;
use greater_opt::Observer;
use greater_tasks::Task;

/// What the suites need from the program that runs them.
pub trait Host {
    /// Resolve (fetching if needed) and load a model.
    fn load_model(&self, name: &str) -> Result<LoadedModel>;
    /// Load a task by name, with its data.
    fn load_task(&self, name: &str) -> Result<Task>;
    /// Progress of an optimisation of `steps` steps; dropped when the run ends.
    fn observer(&self, steps: usize) -> Box<dyn Observer>;
}

/// `greater bench <suite>`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmark suites.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Prefill/decode tokens per second, GEMM GFLOP/s, memory bandwidth, decode-step breakdown.
    Models(models::ModelsArgs),
    /// Forward+backward time of the token gradient next to forward-only time, and peak memory.
    Grad(grad::GradArgs),
    /// Optimise + evaluate per task with a fixed, seeded configuration; one table.
    Bbh(bbh::BbhArgs),
    /// Several models' `bbh` reports as one Markdown table, task by task.
    Compare(compare::CompareArgs),
    /// ZS-CoT, greater's prompt and the paper's prompts on whole dev/test splits, paired tests.
    Fidelity(fidelity::FidelityArgs),
    /// The paper's training signal against one that agrees with grading, paired on dev.
    Signal(signal::SignalArgs),
    /// The `models` workloads through greater, HF transformers and llama.cpp, with greater's ratios.
    Peers(peers::PeersArgs),
    /// One full GReaTer step of a random model in a real shape, timed by phase.
    Step(step::StepArgs),
    /// Logits, token gradient and greedy tokens of a model, to compare backends or peers.
    Parity(parity::ParityArgs),
}

/// Options every suite takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Folder the JSON report is written to (created if missing).
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Worker threads of the CPU backend (burn `flex` uses the global rayon pool);
    /// default: rayon's choice (`RAYON_NUM_THREADS`, else every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Run the benchmark `args` names.
pub fn run(args: BenchArgs, host: &dyn Host) -> Result<()> {
    match args.command {
        BenchCommand::Models(a) => {
            setup(&a.common)?;
            models::run(&a)
        }
        BenchCommand::Grad(a) => {
            setup(&a.common)?;
            grad::run(&a)
        }
        BenchCommand::Bbh(a) => {
            setup(&a.common)?;
            bbh::run(&a, host)
        }
        BenchCommand::Compare(a) => compare::run(&a),
        BenchCommand::Fidelity(a) => {
            setup(&a.common)?;
            fidelity::run(&a, host)
        }
        BenchCommand::Signal(a) => {
            setup(&a.common)?;
            signal::run(&a, host)
        }
        BenchCommand::Peers(a) => {
            setup(&a.common)?;
            peers::run(&a)
        }
        BenchCommand::Step(a) => {
            setup(&a.common)?;
            step::run(&a)
        }
        BenchCommand::Parity(a) => {
            setup(&a.common)?;
            parity::run(&a, host)
        }
    }
}

/// Size the thread pool (before any tensor work starts it) and create the output folder.
fn setup(common: &Common) -> Result<()> {
    if let Some(n) = common.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .with_context(|| format!("setting {n} worker threads: the pool is already running"))?;
    }
    std::fs::create_dir_all(&common.out).with_context(|| format!("creating {}", common.out.display()))
}

/// A resumable suite's report: the one at `path` when it exists and was made with `settings`
/// (`args_of` reads them back), `fresh` when there is none; another settings string is an error.
pub(crate) fn resume_report<T: serde::de::DeserializeOwned>(
    path: &Path,
    settings: &str,
    args_of: fn(&T) -> &str,
    fresh: impl FnOnce() -> T,
) -> Result<T> {
    let report = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str::<T>(&text).with_context(|| format!("reading {}", path.display()))?,
        Err(_) => return Ok(fresh()),
    };
    if args_of(&report) != settings {
        anyhow::bail!("{} was made with other settings ({}); use another --out", path.display(), args_of(&report));
    }
    Ok(report)
}

/// Write `value` as pretty JSON to `dir/name` and return the path.
pub fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> Result<PathBuf> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).context("serialising the report")?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `"ok"` or `"MISS"`, for goal columns.
fn verdict(met: bool) -> &'static str {
    if met { "ok" } else { "MISS" }
}

/// Resolve a model name or path through the registry and cache, without downloading.
fn resolve_model(name: &str) -> Result<PathBuf> {
    greater_models::hub::resolve(name).with_context(|| format!("locating model `{name}`"))
}

/// Deterministic pseudo-random token ids in `[lo, hi)`, so every run measures the same inputs.
pub fn token_ids(rng: &mut greater_models::rng::SplitMix64, n: usize, lo: u32, hi: u32) -> Vec<u32> {
    (0..n).map(|_| lo + (rng.next_u64() % u64::from(hi - lo)) as u32).collect()
}
