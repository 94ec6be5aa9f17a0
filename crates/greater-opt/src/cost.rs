//! What a run will cost before it runs (`greater optimize --dry-run`): tokens, FLOPs and seconds
//! per phase from the model's shapes, the config and the laid-out examples, with this machine's
//! throughput from a short probe of the real model.
//!
//! The count is the plain path's: every top-μ candidate is re-generated in full and the final
//! evaluation scores every top prompt on the whole dev split. Chains are as long as the cap (the
//! upper bound) or, given a measured mean (the initial prompt's reasoning, which the dry run
//! generates), that long. Drafting and pruning only make a real run cheaper.

use std::time::Instant;

use greater_grad::{GradExample, GradOptions, TrainSequence, token_gradients};
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::generate::{GenerateOptions, decode, try_prefill};
use greater_models::rng::SplitMix64;

use crate::OptError;
use crate::optimize::{Prepared, Run};
use crate::rollout::generate_all;

/// Tokens per second of this machine on the model, by kind of work.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Throughput {
    /// Prompt tokens per second in a batched prefill.
    pub prefill: f64,
    /// New tokens per second in batched greedy decoding.
    pub decode: f64,
    /// Sequence tokens per second through the gradient's forward + backward.
    pub gradient: f64,
    /// Seconds the probe took.
    pub probe_s: f64,
}

/// One phase's expected work.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseCost {
    /// `reasoning`, `proposal`, `gradient`, `selection` or `final evaluation`.
    pub name: &'static str,
    /// Prefill (prompt) tokens.
    pub prefill_tokens: u64,
    /// Decoded tokens.
    pub decode_tokens: u64,
    /// Tokens through the gradient pass.
    pub gradient_tokens: u64,
    /// Floating-point operations (2 per parameter and token forward; 3× that with the backward).
    pub flops: f64,
    /// Expected seconds at the probed throughput.
    pub seconds: f64,
}

/// The whole run's expected cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CostEstimate {
    /// Per phase, over all steps.
    pub phases: Vec<PhaseCost>,
    /// Their sum.
    pub seconds: f64,
    /// The longest sequence the run feeds the model, and the model's context.
    pub longest_sequence: usize,
    /// `max_position_embeddings`.
    pub context: usize,
}

/// Measure `model`'s throughput on work shaped like the run's (`rows` sequences of `prompt`
/// tokens, gradient rows of `grad_tokens`), spending roughly `budget_s` seconds.
pub fn probe(model: &dyn CausalLm, rows: usize, prompt: usize, grad_tokens: usize, budget_s: f64) -> Throughput {
    let start = Instant::now();
    let vocab = model.config().vocab_size as u64;
    let mut rng = SplitMix64(0x9e37);
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % vocab.min(30_000)) as u32).collect() };
    let (rows, prompt) = (rows.max(1), prompt.max(1));
    let prompts: Vec<Vec<u32>> = (0..rows).map(|_| ids(prompt)).collect();
    let new = 8;
    let (mut prefill_s, mut prefill_n, mut decode_s, mut decode_n) = (0.0, 0usize, 0.0, 0usize);
    // At least one round of each; more while the budget's first half lasts.
    while prefill_n == 0 || start.elapsed().as_secs_f64() < budget_s / 2.0 {
        let mut cache = KvCache::new(rows, prompt + new);
        let t = Instant::now();
        let logits = try_prefill(model, &prompts, &mut cache).expect("probe prompts are not empty");
        let _ = logits.clone().into_data();
        prefill_s += t.elapsed().as_secs_f64();
        prefill_n += rows * prompt;
        let t = Instant::now();
        let opts = GenerateOptions { max_new_tokens: new, stop_ids: Vec::new() };
        let _ = decode(model, cache, logits, &opts, |_, _| {});
        decode_s += t.elapsed().as_secs_f64();
        decode_n += rows * (new - 1);
    }
    // Gradient rows as the run lays them out: several examples of unequal length (padded, masked).
    let seqs: Vec<TrainSequence> = (0..rows.min(4))
        .map(|i| {
            let seq = ids(grad_tokens.max(8 + 3 * i) - 3 * i);
            let n = seq.len();
            TrainSequence::join([&seq[..1], &seq[1..3], &seq[3..4], &seq[4..n - 2], &seq[n - 2..n - 1], &seq[n - 1..]])
        })
        .collect();
    let mut candidates: Vec<u32> = seqs.iter().map(|s| s.ids[1]).collect();
    candidates.extend((0..16).map(|i| (i * 7 + 100) % vocab as u32));
    candidates.sort_unstable();
    candidates.dedup();
    let (mut grad_s, mut grad_n) = (0.0, 0usize);
    while grad_n == 0 || start.elapsed().as_secs_f64() < budget_s {
        let t = Instant::now();
        let ex: Vec<GradExample<'_>> = seqs.iter().map(|s| GradExample { seq: s, position: 0 }).collect();
        let _ = token_gradients(model, &ex, &candidates, &GradOptions::default());
        grad_s += t.elapsed().as_secs_f64();
        grad_n += seqs.iter().map(|s| s.ids.len()).sum::<usize>();
    }
    let rate = |n: usize, s: f64| n as f64 / s.max(1e-9);
    Throughput {
        prefill: rate(prefill_n, prefill_s),
        decode: rate(decode_n, decode_s),
        gradient: rate(grad_n, grad_s),
        probe_s: start.elapsed().as_secs_f64(),
    }
}

impl Run<'_> {
    /// The run's expected work per phase and its seconds at `tp` (see the module's notes), with
    /// chains of `reasoning` tokens on average (`None`: the cap).
    pub fn cost_estimate(&self, prepared: &Prepared, tp: &Throughput, reasoning: Option<f64>) -> CostEstimate {
        let cfg = self.cfg;
        let model = self.loaded.model.config();
        let cap = cfg.max_reasoning_tokens as u64;
        let r = reasoning.map_or(cap, |m| (m.round() as u64).min(cap));
        let (n, steps) = (prepared.layouts.len() as u64, cfg.steps as u64);
        let control = &prepared.initial;
        let prompt: u64 = prepared.layouts.iter().map(|l| l.generation_prompt(control).len() as u64).sum();
        let tail: u64 = prepared.layouts.iter().map(|l| (l.extractor.len() + l.answer.len()) as u64).sum();
        let prefix: u64 = prepared.layouts.iter().map(|l| l.prefix.len() as u64).sum();
        let mu = cfg.mu as u64;
        let params = model.num_parameters() as f64;
        let phase = |name, prefill_tokens: u64, decode_tokens: u64, gradient_tokens: u64| {
            let flops = 2.0 * params * (prefill_tokens + decode_tokens) as f64 + 6.0 * params * gradient_tokens as f64;
            let seconds = prefill_tokens as f64 / tp.prefill
                + decode_tokens as f64 / tp.decode
                + gradient_tokens as f64 / tp.gradient;
            PhaseCost { name, prefill_tokens, decode_tokens, gradient_tokens, flops, seconds }
        };
        let eval_prompts = if cfg.final_eval {
            let limit = |len: usize| if cfg.eval_limit == 0 { len } else { len.min(cfg.eval_limit) } as u64;
            let (dev, test) = (limit(self.task.dev.len()), limit(self.task.test.len()));
            // The top prompts on dev, then the initial and the final one on test.
            cfg.top_prompts as u64 * dev + 2 * test
        } else {
            0
        };
        let avg_prompt = prompt / n.max(1);
        let phases = vec![
            // Step 0 generates; later steps reuse the winner's reasoning.
            phase("reasoning", prompt, n * r, 0),
            phase("proposal", steps * prefix, 0, 0),
            phase("gradient", 0, 0, steps * (prompt + n * r + tail)),
            // μ − 1 candidates generate (the current one keeps its reasoning); all μ are scored
            // by a forward over prompt, reasoning, extractor and answer.
            phase("selection", steps * ((mu - 1) * prompt + mu * (prompt + n * r + tail)), steps * (mu - 1) * n * r, 0),
            phase("final evaluation", eval_prompts * (avg_prompt + r), eval_prompts * r, 0),
        ];
        let longest = prepared
            .layouts
            .iter()
            .map(|l| l.generation_prompt(control).len() + cfg.max_reasoning_tokens + l.extractor.len() + l.answer.len())
            .max()
            .unwrap_or(0);
        CostEstimate {
            seconds: phases.iter().map(|p| p.seconds).sum(),
            phases,
            longest_sequence: longest,
            context: model.max_position_embeddings,
        }
    }
}

impl Run<'_> {
    /// The initial prompt's reasoning for every training example (what the run's first step
    /// generates): its mean length in tokens and the seconds it took.
    pub fn initial_reasoning_length(&self, prepared: &Prepared) -> Result<(f64, f64), OptError> {
        let t = Instant::now();
        let prompts: Vec<Vec<u32>> = prepared.layouts.iter().map(|l| l.generation_prompt(&prepared.initial)).collect();
        let stop = self.loaded.tokenizer.stop_ids();
        let chains = generate_all(
            &self.loaded.model,
            &prompts,
            self.cfg.max_reasoning_tokens,
            stop,
            self.cfg.batch_size,
            self.observer,
        )?;
        let mean = chains.iter().map(Vec::len).sum::<usize>() as f64 / chains.len().max(1) as f64;
        Ok((mean, t.elapsed().as_secs_f64()))
    }
}

/// Refuse a run expected to take longer than `max_hours`, or to pass the model's context.
pub fn check(estimate: &CostEstimate, max_hours: Option<f64>) -> Result<(), OptError> {
    if estimate.longest_sequence > estimate.context {
        return Err(OptError::Invalid(format!(
            "the longest sequence ({} tokens: prompt, reasoning cap, extractor, answer) passes the model's context of {}; lower max_reasoning_tokens",
            estimate.longest_sequence, estimate.context
        )));
    }
    if let Some(h) = max_hours
        && estimate.seconds > h * 3600.0
    {
        return Err(OptError::Invalid(format!(
            "the run is expected to take {:.1} h (plain-path upper bound), over max_hours {h}; lower steps, train or max_reasoning_tokens",
            estimate.seconds / 3600.0
        )));
    }
    Ok(())
}
