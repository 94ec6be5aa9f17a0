//! `greater bench step --random NAME`: one full GReaTer step (reasoning, proposal, gradient,
//! selection) of a random model in a real shape ([`greater_models::random`]) on generated task
//! examples, timed by phase, through greater-opt's public loop (`Run::prepare`, `Run::optimize`).
//!
//! The reasoning is capped at `--reasoning-tokens`; random weights almost never emit the stop
//! token, so the cap is the length. Written to `step-<name>.json`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use greater_models::arch::CausalLm;
use greater_models::model::LoadedModel;
use greater_models::random;
use greater_opt::NoObserver;
use greater_opt::optimize::{OptimizeConfig, Run};

use crate::{Common, machine, write_json};

/// `greater bench step`.
#[derive(Debug, Clone, clap::Args)]
pub struct StepArgs {
    /// Random model shape: tiny, tiny-qwen2, tiny-gemma2, smollm2-135m, qwen2.5-0.5b, llama3-8b, gemma2-9b.
    #[arg(long = "random", value_name = "NAME")]
    pub random: String,
    /// Seed of the weights and of the step.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Precision the weights are rounded to: f32, f16 or bf16 (computed in f32 on every backend;
    /// see `greater export-random --help`).
    #[arg(long, default_value = "f32")]
    pub dtype: random::WeightDtype,
    /// Training examples of the step.
    #[arg(long, default_value_t = 20)]
    pub examples: usize,
    /// Reasoning tokens per example (the generation cap).
    #[arg(long, default_value_t = 256)]
    pub reasoning_tokens: usize,
    /// A generated task (needs no data).
    #[arg(long, default_value = "gen/boolean_expressions")]
    pub task: String,
    /// Sequences generated together.
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// The report, `step-<name>.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    /// The shape.
    pub random: String,
    /// Parameters of the shape.
    pub params: usize,
    /// burn backend.
    pub backend: &'static str,
    /// Precision of the weights.
    pub dtype: String,
    /// Examples and reasoning cap.
    pub examples: usize,
    /// Reasoning cap in tokens.
    pub reasoning_tokens: usize,
    /// Seconds to build the random model on the device.
    pub build_s: f64,
    /// Seconds of the step's phases.
    pub phases: Phases,
    /// Sum of the phases.
    pub step_s: f64,
    /// Tokens generated in the step (reasoning and re-scoring) per second of generation.
    pub tokens_per_s: f64,
    /// Tokens generated in the step.
    pub generated_tokens: u64,
    /// Peak resident memory of the process, bytes (`VmHWM`; the host side on a GPU backend).
    pub peak_rss: Option<u64>,
    /// Bytes the device allocator holds after the step (its pools keep pages for reuse, so
    /// this is the step's high-water mark); `None` on a backend that does not report it (flex).
    pub device_reserved: Option<u64>,
}

/// Seconds of one step by phase.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Phases {
    /// Reasoning of every example with the current prompt.
    pub reasoning: f64,
    /// Candidate proposal.
    pub proposal: f64,
    /// Token gradients.
    pub gradient: f64,
    /// Re-scoring the candidates.
    pub selection: f64,
}

/// Run the step, print it and write the report.
pub fn run(args: &StepArgs) -> Result<()> {
    let report = measure(args)?;
    let p = &report.phases;
    println!(
        "random {} ({:.0}M params, {}): {} examples × {} reasoning tokens: step {:.2} s \
         (reasoning {:.2}, proposal {:.2}, gradient {:.2}, selection {:.2}); {:.1} tok/s; peak RSS {}; device memory {}",
        report.random,
        report.params as f64 / 1e6,
        report.backend,
        report.examples,
        report.reasoning_tokens,
        report.step_s,
        p.reasoning,
        p.proposal,
        p.gradient,
        p.selection,
        report.tokens_per_s,
        report.peak_rss.map_or("?".into(), |b| format!("{:.0} MB", b as f64 / 1e6)),
        report.device_reserved.map_or("not reported".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
    );
    let path = write_json(&args.common.out, &format!("step-{}.json", args.random), &report)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// One step of `args.random`, measured.
pub fn measure(args: &StepArgs) -> Result<StepReport> {
    let shape = random::shape(&args.random)?;
    let device = greater_models::default_device();
    let work: PathBuf = args.common.out.join(format!("step-{}", args.random));
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let t = Instant::now();
    let loaded: LoadedModel = random::load(shape, args.seed, args.dtype, &device, &work.join("tokenizer"))?;
    let build_s = t.elapsed().as_secs_f64();
    let task = greater_tasks::load_task(&args.task, std::path::Path::new(""))
        .with_context(|| format!("loading the generated task `{}`", args.task))?;
    let cfg = OptimizeConfig {
        model: format!("random:{}", args.random),
        task: args.task.clone(),
        seed: args.seed,
        steps: 1,
        train: args.examples,
        max_reasoning_tokens: args.reasoning_tokens,
        batch_size: args.batch_size,
        final_eval: false,
        ..OptimizeConfig::default()
    };
    let run = Run { loaded: &loaded, task: &task, cfg: &cfg, dir: work.join("run"), observer: &NoObserver };
    let prepared = run.prepare().context("laying out the examples")?;
    let state = run.optimize(&prepared, false).context("running the step")?;
    let step = state.history.first().context("the run recorded no step")?;
    let (reasoning, proposal, gradient, selection) =
        (step.seconds.generation, step.seconds.proposal, step.seconds.gradient, step.seconds.selection);
    let generated_tokens = generated_tokens(&work.join("run").join("events.jsonl"))?;
    let gen_s = reasoning + selection;
    Ok(StepReport {
        random: args.random.clone(),
        params: loaded.model.config().num_parameters(),
        backend: greater_models::device::backend_name(),
        dtype: format!("{:?}", args.dtype).to_lowercase(),
        examples: prepared.examples.len(),
        reasoning_tokens: args.reasoning_tokens,
        build_s,
        phases: Phases { reasoning, proposal, gradient, selection },
        step_s: reasoning + proposal + gradient + selection,
        tokens_per_s: if gen_s > 0.0 { generated_tokens as f64 / gen_s } else { 0.0 },
        generated_tokens,
        peak_rss: machine::status_bytes("VmHWM"),
        device_reserved: device.memory_pool_usage().map(|u| u.bytes_reserved),
    })
}

/// The sum of `generated_tokens` over the lines of `events.jsonl`.
fn generated_tokens(path: &std::path::Path) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: bad line", path.display()))?;
        n += v["generated_tokens"].as_u64().unwrap_or(0);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_of_the_tiny_shape_is_timed_by_phase() {
        let out = std::env::temp_dir().join(format!("greater-bench-step-{}", std::process::id()));
        let args = StepArgs {
            random: "tiny".into(),
            seed: 1,
            dtype: random::WeightDtype::Bf16,
            examples: 2,
            reasoning_tokens: 6,
            task: "gen/boolean_expressions".into(),
            batch_size: 2,
            common: Common { out: out.clone(), threads: None },
        };
        let r = measure(&args).unwrap();
        std::fs::remove_dir_all(&out).ok();
        assert_eq!((r.random.as_str(), r.examples, r.reasoning_tokens), ("tiny", 2, 6));
        assert_eq!(r.dtype, "bf16");
        let p = r.phases;
        for (name, s) in [("reasoning", p.reasoning), ("proposal", p.proposal), ("gradient", p.gradient)] {
            assert!(s > 0.0, "{name} was not timed");
        }
        assert!((r.step_s - (p.reasoning + p.proposal + p.gradient + p.selection)).abs() < 1e-9);
        // Two examples of at most 6 reasoning tokens, plus the re-scoring generations.
        assert!(r.generated_tokens > 0 && r.tokens_per_s > 0.0, "{r:?}");
    }
}
