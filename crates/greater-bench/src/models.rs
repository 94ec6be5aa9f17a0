//! `greater bench models`: prefill and decode throughput of real models on the default device,
//! measured against the machine's own GEMM rate and memory bandwidth.
//!
//! Goals (performance issue): prefill at ≥ 50% of the measured GEMM rate of the model's largest
//! matmul; decode ≥ 25 tokens/s at batch 1 and ≥ 120 tokens/s at batch 8.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use greater_models::KvCache;
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::config::ModelConfig;
use greater_models::generate::{GenerateOptions, decode, try_prefill};
use greater_models::model::LoadedModel;
use greater_models::rng::SplitMix64;

use crate::breakdown::{self, Breakdown};
use crate::machine::{self, Bandwidth, GemmRate, Threads};
use crate::verify_cost::{self, VerifyCost};
use crate::{Common, token_ids, verdict, write_json};

/// The models measured when none is named: whichever of these is cached.
pub const DEFAULT_MODELS: &[&str] = &["smollm2-135m-instruct", "gemma3-270m"];

/// Goal: prefill reaches this fraction of the measured GEMM rate.
pub const GOAL_PREFILL_FRACTION: f64 = 0.5;
/// Goal: decode tokens/s at batch 1.
pub const GOAL_DECODE_B1: f64 = 25.0;
/// Goal: decode tokens/s at batch 8.
pub const GOAL_DECODE_B8: f64 = 120.0;

/// `greater bench models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// A registry name, a path, or `random:SHAPE` (seeded random weights in a real shape, see
    /// `greater bench step --help`); repeat for several. Default: the cached ones among
    /// smollm2-135m-instruct and gemma3-270m.
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    #[command(flatten)]
    pub common: Common,
    /// Timed runs of prefill and decode, after one warm-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Timed runs of each GEMM.
    #[arg(long, default_value_t = 5)]
    pub gemm_runs: usize,
    /// Prompt length of the prefill measurement (batch 1).
    #[arg(long, default_value_t = 512)]
    pub prefill_tokens: usize,
    /// Prompt length before decoding.
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: usize,
    /// New tokens per decode run (stop tokens are off).
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Batch sizes to decode at.
    #[arg(long = "batch", value_delimiter = ',', default_values_t = [1usize, 8])]
    pub batches: Vec<usize>,
    /// Skip the per-part timing of one decode step.
    #[arg(long)]
    pub no_breakdown: bool,
    /// Also time one draft-verification forward at this batch, feeding 1 to
    /// `--verify-max-width` tokens per row over `--verify-cached` cached tokens, and fit the
    /// engine's fixed-cost constant (0: skip).
    #[arg(long, default_value_t = 0)]
    pub verify_batch: usize,
    /// Cached tokens per row before each verification forward.
    #[arg(long, default_value_t = 400)]
    pub verify_cached: usize,
    /// Widest verification forward, in tokens per row.
    #[arg(long, default_value_t = 9)]
    pub verify_max_width: usize,
    /// Decode with weights rounded to bfloat16 (the opt-in `GREATER_BF16_WEIGHTS=1` path: half
    /// the bytes per token, results change); prefill stays f32.
    #[arg(long)]
    pub bf16_weights: bool,
}

/// The whole report, written to `models.json`.
#[derive(Debug, serde::Serialize)]
pub struct ModelsReport {
    /// burn backend behind the default device.
    pub backend: &'static str,
    /// Whether decode steps read bfloat16 weights (`--bf16-weights`).
    pub bf16_weights: bool,
    /// CPU model name.
    pub cpu: Option<String>,
    /// Worker threads.
    pub threads: Threads,
    /// `/proc/loadavg` before the first measurement.
    pub load_start: Option<[f64; 3]>,
    /// `/proc/loadavg` after the last.
    pub load_end: Option<[f64; 3]>,
    /// GEMM rate of `[512×576]×[576×1536]` (SmolLM2's MLP up-projection at 512 tokens).
    pub gemm_reference: GemmRate,
    /// Memory bandwidth.
    pub bandwidth: Bandwidth,
    /// One entry per model.
    pub models: Vec<ModelReport>,
}

/// The figures of one model.
#[derive(Debug, serde::Serialize)]
pub struct ModelReport {
    /// The name or path it was given as.
    pub name: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The architecture family.
    pub family: String,
    /// Number of parameters.
    pub params: usize,
    /// f32 bytes of weights one decode step reads (layers, final norm, output head).
    pub weight_bytes_per_step: usize,
    /// Seconds to load and dequantise.
    pub load_s: f64,
    /// GEMM rate of the model's largest matmul at the prefill length.
    pub gemm_largest: GemmRate,
    /// Batch-1 prefill.
    pub prefill: Prefill,
    /// One entry per decode batch size.
    pub decode: Vec<Decode>,
    /// Batch-1 tokens/s if a step cost only streaming its weights once at the measured
    /// multi-threaded copy bandwidth.
    pub decode_floor_b1: f64,
    /// The same bound from the single-thread copy bandwidth (small matmuls run on one thread).
    pub decode_floor_b1_one_thread: f64,
    /// Where the time of one decode step goes.
    pub breakdown: Vec<Breakdown>,
    /// Verification forwards by width (`--verify-batch`).
    pub verify: Option<VerifyCost>,
    /// Goal verdicts.
    pub goals: Goals,
}

/// Prefill of one prompt.
#[derive(Debug, serde::Serialize)]
pub struct Prefill {
    /// Prompt tokens.
    pub tokens: usize,
    /// Every timed run, seconds.
    pub runs_s: Vec<f64>,
    /// Median seconds.
    pub median_s: f64,
    /// `tokens / median_s`.
    pub tokens_per_s: f64,
    /// Floating-point operations executed (see [`ModelConfig::prefill_flops`]).
    pub flops: f64,
    /// `flops / median_s / 1e9`.
    pub gflops: f64,
    /// `gflops` over the GEMM rate of the model's largest matmul.
    pub fraction_of_gemm: f64,
}

/// Greedy decoding of a batch.
#[derive(Debug, serde::Serialize)]
pub struct Decode {
    /// Rows.
    pub batch: usize,
    /// Prompt tokens per row.
    pub prompt_tokens: usize,
    /// New tokens per row.
    pub new_tokens: usize,
    /// Forward steps after the prefill (`new_tokens - 1`: the first token comes from the prefill).
    pub steps: usize,
    /// Every timed run of the decode loop, seconds (prefill excluded).
    pub runs_s: Vec<f64>,
    /// Median seconds.
    pub median_s: f64,
    /// `batch · steps / median_s`.
    pub tokens_per_s: f64,
    /// Milliseconds per step.
    pub ms_per_step: f64,
    /// Median prefill seconds of the prompt batch (for reference).
    pub prefill_s: f64,
}

/// Whether each goal is met.
#[derive(Debug, serde::Serialize)]
pub struct Goals {
    /// Prefill ≥ 50% of the GEMM rate.
    pub prefill_half_of_gemm: bool,
    /// Decode ≥ 25 tokens/s at batch 1 (`None`: not measured).
    pub decode_b1: Option<bool>,
    /// Decode ≥ 120 tokens/s at batch 8 (`None`: not measured).
    pub decode_b8: Option<bool>,
}

/// Run the suite: machine yardsticks, then every model, then print and write `models.json`.
pub fn run(args: &ModelsArgs) -> Result<()> {
    let names = model_names(&args.models)?;
    if args.bf16_weights && !greater_models::layers::linear::use_bf16_weights(true) {
        bail!("--bf16-weights: GREATER_BF16_WEIGHTS=0 is set and turns bfloat16 weights off");
    }
    let load_start = machine::load_average();
    let device = greater_models::default_device();
    let threads = machine::threads();
    eprintln!("measuring GEMM and memory bandwidth ({} threads)", threads.rayon);
    let gemm_reference = machine::gemm_rate(&device, 512, 576, 1536, args.gemm_runs);
    let bandwidth = machine::bandwidth(256 << 20, threads.rayon, 5);
    let mut models = Vec::new();
    for name in &names {
        models.push(measure_model(name, args, &device, &bandwidth)?);
    }
    let report = ModelsReport {
        backend: greater_models::device::backend_name(),
        bf16_weights: greater_models::layers::linear::bf16_weights(),
        cpu: machine::cpu_name(),
        threads,
        load_start,
        load_end: machine::load_average(),
        gemm_reference,
        bandwidth,
        models,
    };
    print_report(&report);
    let path = write_json(&args.common.out, "models.json", &report)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `(m, k, n)` of the largest linear layer at `tokens` rows.
pub fn largest_matmul(c: &ModelConfig, tokens: usize) -> (usize, usize, usize) {
    let h = c.hidden_size;
    let q = c.num_attention_heads * c.head_dim;
    [(h, q), (q, h), (h, c.intermediate_size), (c.intermediate_size, h)]
        .into_iter()
        .max_by_key(|&(k, n)| (k * n, n))
        .map(|(k, n)| (tokens, k, n))
        .expect("four candidates")
}

fn model_names(given: &[String]) -> Result<Vec<String>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let cached: Vec<String> =
        DEFAULT_MODELS.iter().filter(|n| greater_models::hub::resolve(n).is_ok()).map(|n| n.to_string()).collect();
    if cached.is_empty() {
        bail!("none of {} is cached; run `greater models fetch smollm2-135m-instruct`", DEFAULT_MODELS.join(", "));
    }
    Ok(cached)
}

fn measure_model(name: &str, args: &ModelsArgs, device: &burn::tensor::Device, bw: &Bandwidth) -> Result<ModelReport> {
    let t = Instant::now();
    let (loaded, path) = load(name, args, device)?;
    let load_s = t.elapsed().as_secs_f64();
    let model = &loaded.model;
    let c = model.config().clone();
    let mut rng = SplitMix64(0x5eed);
    let hi = (c.vocab_size as u32).min(30_000);
    let lo = 1000.min(hi / 2);

    eprintln!("{name}: prefill 1x{}", args.prefill_tokens);
    let (gemm_largest, prefill) = measure_prefill(model, args, &mut rng, lo, hi);
    let mut decodes = Vec::new();
    for &b in &args.batches {
        eprintln!("{name}: decode batch {b}, {} new tokens", args.new_tokens);
        let prompts: Vec<Vec<u32>> = (0..b).map(|_| token_ids(&mut rng, args.prompt_tokens, lo, hi)).collect();
        decodes.push(measure_decode(model, &prompts, args)?);
    }

    let mut parts = Vec::new();
    if !args.no_breakdown {
        for &b in &args.batches {
            eprintln!("{name}: decode-step breakdown at batch {b}");
            let cached = args.prompt_tokens + args.new_tokens / 2;
            parts.push(breakdown::decode_step(model, b, cached, args.prompt_tokens + args.new_tokens, 20));
        }
    }

    let verify = if args.verify_batch > 0 {
        eprintln!("{name}: verification forwards at batch {}, widths 1..={}", args.verify_batch, args.verify_max_width);
        let prompts: Vec<Vec<u32>> = (0..args.verify_batch)
            .map(|_| token_ids(&mut rng, args.verify_cached.max(args.verify_max_width), lo, hi))
            .collect();
        Some(verify_cost::measure(model, &prompts, args.verify_max_width, args.runs)?)
    } else {
        None
    };

    let bytes = c.weight_bytes_per_step(4);
    let tps = |batch: usize| decodes.iter().find(|d| d.batch == batch).map(|d| d.tokens_per_s);
    let goals = Goals {
        prefill_half_of_gemm: prefill.fraction_of_gemm >= GOAL_PREFILL_FRACTION,
        decode_b1: tps(1).map(|t| t >= GOAL_DECODE_B1),
        decode_b8: tps(8).map(|t| t >= GOAL_DECODE_B8),
    };
    Ok(ModelReport {
        name: name.to_string(),
        path,
        family: c.family.name().to_string(),
        params: c.num_parameters(),
        weight_bytes_per_step: bytes,
        load_s,
        gemm_largest,
        prefill,
        decode: decodes,
        decode_floor_b1: bw.copy_gbps * 1e9 / bytes as f64,
        decode_floor_b1_one_thread: bw.copy_gbps_1t * 1e9 / bytes as f64,
        breakdown: parts,
        verify,
        goals,
    })
}

/// Load `name`: a cached or local model, or `random:SHAPE` built on the device.
fn load(name: &str, args: &ModelsArgs, device: &burn::tensor::Device) -> Result<(LoadedModel, PathBuf)> {
    Ok(if let Some(shape) = name.strip_prefix("random:") {
        // A random model in a real shape, built on the device (nothing to download or carry).
        eprintln!("{name}: building seeded random weights");
        let shape = greater_models::random::shape(shape)?;
        let scratch = args.common.out.join(format!("random-{}", shape.name));
        let dtype = greater_models::random::WeightDtype::F32;
        (greater_models::random::load(shape, 0, dtype, device, &scratch)?, PathBuf::from(name))
    } else {
        let path = crate::resolve_model(name)?;
        eprintln!("{name}: loading {}", path.display());
        (LoadedModel::load(&path, device).map_err(anyhow::Error::from)?, path)
    })
}

/// The prefill of one prompt of `args.prefill_tokens` random ids, next to the largest GEMM of
/// the model at that length.
fn measure_prefill(model: &AnyModel, args: &ModelsArgs, rng: &mut SplitMix64, lo: u32, hi: u32) -> (GemmRate, Prefill) {
    let c = model.config();
    let device = model.device();
    let (m, k, n) = largest_matmul(c, args.prefill_tokens);
    let gemm_largest = machine::gemm_rate(device, m, k, n, args.gemm_runs);
    let prompt = vec![token_ids(rng, args.prefill_tokens, lo, hi)];
    let runs_s = machine::time_runs(1, args.runs, || {
        let mut cache = KvCache::new(1, args.prefill_tokens);
        let logits = try_prefill(model, &prompt, &mut cache).expect("the prefill prompt is not empty");
        device.sync().expect("device sync");
        drop(logits);
    });
    let median_s = machine::median_s(&runs_s);
    let flops = c.prefill_flops(args.prefill_tokens);
    let gflops = flops / median_s / 1e9;
    let prefill = Prefill {
        tokens: args.prefill_tokens,
        runs_s,
        median_s,
        tokens_per_s: args.prefill_tokens as f64 / median_s,
        flops,
        gflops,
        fraction_of_gemm: gflops / gemm_largest.gflops,
    };

    (gemm_largest, prefill)
}

fn measure_decode(model: &AnyModel, prompts: &[Vec<u32>], args: &ModelsArgs) -> Result<Decode> {
    let b = prompts.len();
    let opts = GenerateOptions { max_new_tokens: args.new_tokens, stop_ids: Vec::new() };
    let capacity = args.prompt_tokens + args.new_tokens;
    let mut prefill_times = Vec::new();
    let mut decode_times = Vec::new();
    for run in 0..=args.runs {
        let mut cache = KvCache::new(b, capacity);
        let t = Instant::now();
        let logits = try_prefill(model, prompts, &mut cache)?;
        model.device().sync().expect("device sync");
        let prefill_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let out = decode(model, cache, logits, &opts, |_, _| {});
        let decode_s = t.elapsed().as_secs_f64();
        if let Some(short) = out.iter().find(|g| g.ids.len() != args.new_tokens) {
            bail!("decoding stopped after {} of {} tokens with stop ids off", short.ids.len(), args.new_tokens);
        }
        // Run 0 is the warm-up.
        if run > 0 {
            prefill_times.push(prefill_s);
            decode_times.push(decode_s);
        }
    }
    let steps = args.new_tokens.saturating_sub(1).max(1);
    let median_s = machine::median_s(&decode_times);
    Ok(Decode {
        batch: b,
        prompt_tokens: args.prompt_tokens,
        new_tokens: args.new_tokens,
        steps,
        runs_s: decode_times,
        median_s,
        tokens_per_s: (b * steps) as f64 / median_s,
        ms_per_step: median_s / steps as f64 * 1e3,
        prefill_s: machine::median_s(&prefill_times),
    })
}

fn print_report(r: &ModelsReport) {
    let load = |l: Option<[f64; 3]>| l.map_or("?".to_string(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"));
    println!(
        "backend {} on {}, {} rayon threads ({} cores); load average {} at start, {} at end",
        r.backend,
        r.cpu.as_deref().unwrap_or("unknown CPU"),
        r.threads.rayon,
        r.threads.available,
        load(r.load_start),
        load(r.load_end)
    );
    println!("GEMM {}: {:.1} GFLOP/s", r.gemm_reference.shape, r.gemm_reference.gflops);
    let bw = &r.bandwidth;
    println!(
        "memory copy {:.1} GB/s ({:.1} on one thread), read {:.1} GB/s ({:.1} on one thread)",
        bw.copy_gbps, bw.copy_gbps_1t, bw.read_gbps, bw.read_gbps_1t
    );
    for m in &r.models {
        println!();
        println!(
            "{} ({}, {:.1}M params, {:.0} MB f32 weights per decode step, loaded in {:.1} s)",
            m.name,
            m.family,
            m.params as f64 / 1e6,
            m.weight_bytes_per_step as f64 / 1e6,
            m.load_s
        );
        println!("  {:<28} {:>10} {:>12}  goal", "measurement", "median", "rate");
        let p = &m.prefill;
        println!(
            "  {:<28} {:>8.3} s {:>8.1} tok/s  {:.1} GFLOP/s = {:.0}% of GEMM {} ({:.1}); goal ≥ 50%: {}",
            format!("prefill 1x{}", p.tokens),
            p.median_s,
            p.tokens_per_s,
            p.gflops,
            100.0 * p.fraction_of_gemm,
            m.gemm_largest.shape,
            m.gemm_largest.gflops,
            verdict(m.goals.prefill_half_of_gemm)
        );
        for d in &m.decode {
            let goal = match d.batch {
                1 => format!("goal ≥ {GOAL_DECODE_B1}: {}", verdict(d.tokens_per_s >= GOAL_DECODE_B1)),
                8 => format!("goal ≥ {GOAL_DECODE_B8}: {}", verdict(d.tokens_per_s >= GOAL_DECODE_B8)),
                _ => String::new(),
            };
            println!(
                "  {:<28} {:>8.3} s {:>8.1} tok/s  {:.1} ms/step; {goal}",
                format!("decode b{} x{} (prompt {})", d.batch, d.new_tokens, d.prompt_tokens),
                d.median_s,
                d.tokens_per_s,
                d.ms_per_step
            );
        }
        println!(
            "  decode floor at batch 1: {:.1} tok/s (weights streamed once at {:.1} GB/s; {:.1} tok/s at one thread's bandwidth)",
            m.decode_floor_b1, bw.copy_gbps, m.decode_floor_b1_one_thread
        );
        for b in &m.breakdown {
            breakdown::print(b);
        }
        if let Some(v) = &m.verify {
            verify_cost::print(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use greater_models::config::Family;

    #[test]
    fn largest_matmul_is_the_mlp_projection() {
        let c = ModelConfig::tiny(Family::Llama);
        assert_eq!(largest_matmul(&c, 512), (512, 32, 64));
    }
}
