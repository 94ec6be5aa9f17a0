//! `greater`: optimise a task prompt with GReaTer on a local model, evaluate prompts, and manage
//! the model cache.
//!
//! This is the only crate that parses flags, picks the device, draws progress bars and turns
//! errors into messages and exit codes: 0 on success, 1 on an error (`error: …` with its causes),
//! 130 when Ctrl-C stopped a run (which can then be resumed).

mod allocator;
mod bench;
mod cmd;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd::Interrupted;

/// Shown under the top-level help.
const EXAMPLES: &str = "\
Examples:
  # Optimise the prompt of a task on the default model (fetched on first use):
  greater optimize --model smollm2-135m-instruct --task gen/boolean_expressions --out runs/bool

  # Evaluate the optimised prompt on the test split:
  greater eval --model smollm2-135m-instruct --task gen/boolean_expressions --prompt-from runs/bool

  # What a run will cost here, before running it (SmolLM2 is for smoke runs; Qwen2.5 reasons):
  greater optimize --model qwen2.5-coder-0.5b-instruct --task bbh/navigate --dry-run

  # Why step 3 changed the prompt; the prompt for lm-evaluation-harness:
  greater explain runs/bool --step 3
  greater export runs/bool --to lm-eval

Built-in tasks other than gen/* read their data from $GREATER_DATA (see `cargo xtask fetch-data`).
Models are cached under $GREATER_CACHE (default: ~/.cache/greater).";

/// GReaTer prompt optimisation on local language models.
#[derive(Debug, Parser)]
#[command(name = "greater", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Log more (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch, list and inspect models.
    #[command(subcommand)]
    Models(cmd::models::ModelsCommand),
    /// Generate text from a prompt, streaming it as it is produced.
    Generate(cmd::generate::GenerateArgs),
    /// Evaluate a prompt on a task split (accuracy, flexible and constrained scores).
    Eval(cmd::eval::EvalArgs),
    /// Optimise a task prompt with GReaTer (checkpointed; resumable after Ctrl-C).
    Optimize(cmd::optimize::OptimizeArgs),
    /// Rebuild report.html of a run folder from its report.json and print a summary.
    Report(cmd::report::ReportArgs),
    /// End-to-end benchmarks that write a JSON report (see `cargo xtask bench`).
    Bench(bench::BenchArgs),
    /// Write a random model in a real shape as a Hugging Face folder (for GPU checks).
    ExportRandom(cmd::export::ExportRandomArgs),
    /// Write a run's optimised prompt for lm-evaluation-harness, promptfoo, or as JSON.
    Export(cmd::export_run::ExportArgs),
    /// Every run's final prompt (and the initial one) on every model: a matrix of paired differences.
    Transfer(cmd::transfer::TransferArgs),
    /// Independent runs over tasks × models × seeds: locally with N workers, or for Slurm or Ray.
    Sweep(cmd::sweep::SweepArgs),
    /// Why a step changed the prompt: candidates, scores and each training example's part.
    Explain(cmd::explain::ExplainArgs),
    /// Re-hash a run's model and data files against its manifest.json.
    Verify(cmd::manifest::VerifyArgs),
    /// Run a run's config again into a new folder and check every decision matches.
    Replay(cmd::manifest::ReplayArgs),
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Models(c) => cmd::models::run(c),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Optimize(a) => cmd::optimize::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Bench(a) => bench::run(a),
        Command::ExportRandom(a) => cmd::export::run(a),
        Command::Export(a) => cmd::export_run::run(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Sweep(a) => cmd::sweep::run(a),
        Command::Transfer(a) => cmd::transfer::run(a),
        Command::Verify(a) => cmd::manifest::verify(a),
        Command::Replay(a) => cmd::manifest::replay(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(i) = e.downcast_ref::<Interrupted>() {
                eprintln!("{i}");
                return ExitCode::from(progress::INTERRUPTED_EXIT_CODE);
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; the default level is `warn`, raised by `-v`, replaced by `RUST_LOG`.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
