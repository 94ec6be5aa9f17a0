//! `greater export-random NAME DIR`: a random model in a real shape as a Hugging Face folder.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use greater_models::random;

/// Shown under `greater export-random --help`.
const AFTER: &str = "\
The folder holds config.json, model.safetensors (f32), a byte-level tokenizer.json and
tokenizer_config.json; `greater` and transformers (`AutoModelForCausalLM.from_pretrained(DIR)`)
both load it, with identical weights. A shape's f32 weights take 4 bytes per parameter
(llama3-8b: 32 GB).

Shapes: tiny, smollm2-135m, qwen2.5-0.5b, llama3-8b, gemma2-9b.";

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
}

/// Run `greater export-random`.
pub fn run(args: ExportRandomArgs) -> Result<()> {
    let shape = random::shape(&args.name)?;
    let params = shape.config()?.num_parameters();
    eprintln!(
        "writing random {} ({:.1}M parameters, seed {}) to {}",
        shape.name,
        params as f64 / 1e6,
        args.seed,
        args.dir.display()
    );
    random::export(shape, args.seed, &args.dir).with_context(|| format!("exporting into {}", args.dir.display()))?;
    println!("{}", args.dir.display());
    Ok(())
}
