//! `greater export-random NAME DIR`: a random model in a real shape as a Hugging Face folder.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use greater_models::random;

/// Shown under `greater export-random --help`.
const AFTER: &str = "\
The folder holds config.json, model.safetensors, a byte-level tokenizer.json and
tokenizer_config.json; `greater` and transformers (`AutoModelForCausalLM.from_pretrained(DIR)`)
both load it, with identical weights. f32 weights take 4 bytes per parameter (llama3-8b: 32 GB),
f16 and bf16 take 2: the weights are rounded to that format and stored in it (greater computes
in f32 on every backend, as with a real half-precision checkpoint).

Shapes: tiny, tiny-qwen2, tiny-gemma2, smollm2-135m, qwen2.5-0.5b, llama3-8b, gemma2-9b.";

/// Flags of `greater export-random`.
#[derive(Debug, Args)]
#[command(after_help = AFTER)]
pub struct ExportRandomArgs {
    /// The shape (see below).
    pub name: String,
    /// The folder to write (created if missing).
    pub dir: PathBuf,
    /// Seed of the weights (the same seed gives the same weights as `greater bench step --random`).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Weight format on disk: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: random::WeightDtype,
    /// Write only config.json and the tokenizer files, no weights (for a peer that builds the
    /// shape with its own random weights, e.g. an 8B shape timed in transformers).
    #[arg(long)]
    pub config_only: bool,
}

/// Run `greater export-random`.
pub fn run(args: ExportRandomArgs) -> Result<()> {
    let shape = random::shape(&args.name)?;
    let params = shape.config()?.num_parameters();
    eprintln!(
        "writing random {} ({:.1}M parameters, seed {}, {:?}) to {}",
        shape.name,
        params as f64 / 1e6,
        args.seed,
        args.dtype,
        args.dir.display()
    );
    let into = || format!("exporting into {}", args.dir.display());
    if args.config_only {
        random::export_config(shape, args.dtype, &args.dir).with_context(into)?;
    } else {
        random::export(shape, args.seed, args.dtype, &args.dir).with_context(into)?;
    }
    println!("{}", args.dir.display());
    Ok(())
}
