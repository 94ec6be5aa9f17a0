//! `greater bench grad`: the cost of the token gradient (one forward and one backward pass over
//! the whole sequence) next to the forward alone, and the peak memory of a large batch.
//!
//! Sequences are synthetic: random token ids laid out like real GReaTer sequences (user turn with
//! a shared ~15-token prompt, reasoning, extractor, a one-token answer), and a candidate set of
//! 16 tokens at one prompt position. Goal (performance issue): backward ≤ 2.5× the forward.

use std::path::PathBuf;

use anyhow::{Context, Result};
use greater_grad::{GradExample, GradOptions, TrainSequence, losses_at, token_gradients};
use greater_models::arch::CausalLm;
use greater_models::model::LoadedModel;
use greater_models::rng::SplitMix64;
use greater_opt::memory;

use crate::machine;
use crate::{Common, token_ids, verdict, write_json};

/// Goal: backward time over forward time.
pub const GOAL_BACKWARD_OVER_FORWARD: f64 = 2.5;

/// Tokens of the prompt under optimisation in every synthetic sequence.
pub const CONTROL_TOKENS: usize = 15;

/// `greater bench grad`.
#[derive(Debug, clap::Args)]
pub struct GradArgs {
    /// A registry name or a path.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    #[command(flatten)]
    pub common: Common,
    /// Timed runs of each measurement, after one warm-up (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Tokens per sequence (rows of a batch differ by a few, so padding is exercised).
    #[arg(long, default_value_t = 300)]
    pub tokens: usize,
    /// The large batch (the small one is 1).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Candidates at the prompt position.
    #[arg(long, default_value_t = 16)]
    pub candidates: usize,
    /// Tokens per sequence of the peak-memory run (at the large batch).
    #[arg(long, default_value_t = 400)]
    pub memory_tokens: usize,
    /// Tokens before the prompt in every sequence (template and question).
    #[arg(long, default_value_t = 30)]
    pub prefix_tokens: usize,
    /// Track the whole sequence in the autodiff graph (the plain path) instead of starting it at
    /// the prompt position, to compare the two.
    #[arg(long)]
    pub whole_forward: bool,
}

/// The report, written to `grad.json`.
#[derive(Debug, serde::Serialize)]
pub struct GradReport {
    /// The model name or path given.
    pub model: String,
    /// The file loaded.
    pub path: PathBuf,
    /// burn backend.
    pub backend: &'static str,
    /// Worker threads.
    pub threads: machine::Threads,
    /// Tokens before the prompt.
    pub prefix_tokens: usize,
    /// Whether the tokens before the prompt ran outside the autodiff graph.
    pub detach_prefix: bool,
    /// `/proc/loadavg` at start and end.
    pub load_start: Option<[f64; 3]>,
    /// `/proc/loadavg` at the end.
    pub load_end: Option<[f64; 3]>,
    /// One entry per batch size.
    pub batches: Vec<GradTiming>,
    /// Peak memory of one gradient at the large batch and `memory_tokens`, with and without
    /// gradient checkpointing.
    pub memory: Vec<Memory>,
}

/// Timings at one batch size.
#[derive(Debug, serde::Serialize)]
pub struct GradTiming {
    /// Sequences.
    pub batch: usize,
    /// Tokens of the longest sequence.
    pub tokens: usize,
    /// Candidates.
    pub candidates: usize,
    /// Every timed `token_gradients` run, seconds.
    pub forward_backward_runs_s: Vec<f64>,
    /// Every timed `losses_at` run (forward only, same shapes), seconds.
    pub forward_runs_s: Vec<f64>,
    /// Median forward+backward seconds.
    pub forward_backward_s: f64,
    /// Median forward seconds.
    pub forward_s: f64,
    /// `(forward_backward_s - forward_s) / forward_s`.
    pub backward_over_forward: f64,
    /// `forward_backward_s / forward_s`.
    pub total_over_forward: f64,
    /// Backward ≤ 2.5× forward.
    pub goal_met: bool,
}

/// Peak resident memory of one gradient.
#[derive(Debug, serde::Serialize)]
pub struct Memory {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence (longest).
    pub tokens: usize,
    /// `VmRSS` before the run (the model loaded), bytes.
    pub rss_before: Option<u64>,
    /// `VmHWM` after the run, bytes; with `peak_reset` it is the peak of this run alone.
    pub peak_rss: Option<u64>,
    /// Whether the peak was reset before the run (`/proc/self/clear_refs`).
    pub peak_reset: bool,
    /// Seconds of the run.
    pub seconds: f64,
    /// The peak [`greater_opt::memory`] predicts for it (base, weights, gradient), bytes.
    pub predicted_peak: u64,
    /// With gradient checkpointing.
    pub checkpointing: bool,
}

/// Run the suite, print a table and write `grad.json`.
pub fn run(args: &GradArgs) -> Result<()> {
    let load_start = machine::load_average();
    let path = crate::resolve_model(&args.model)?;
    let device = greater_models::default_device();
    eprintln!("{}: loading {}", args.model, path.display());
    let loaded = LoadedModel::load(&path, &device).with_context(|| format!("loading {}", path.display()))?;
    let model = &loaded.model;
    let vocab = model.config().vocab_size as u32;
    let mut rng = SplitMix64(0x6ead);
    let set = Workload::new(&mut rng, vocab, args.batch, args.tokens, args.candidates, args.prefix_tokens);
    let opts = GradOptions { detach_prefix: !args.whole_forward, ..GradOptions::default() };
    let mut batches = Vec::new();
    for b in [1, args.batch] {
        eprintln!("{}: gradient of {b} x {} tokens", args.model, args.tokens);
        batches.push(time_batch(model, &set, b, args.runs, &opts)?);
    }
    eprintln!("{}: peak memory of {} x {} tokens", args.model, args.batch, args.memory_tokens);
    let big = Workload::new(&mut rng, vocab, args.batch, args.memory_tokens, args.candidates, args.prefix_tokens);
    // Checkpointed first: the allocator keeps what a run freed, so the smaller peak goes first
    // and the larger one is measured on top of it, not hidden by it.
    let mut memory = Vec::new();
    for checkpointing in [true, false] {
        memory.push(peak_memory(&loaded, &big, args, checkpointing)?);
    }
    let report = GradReport {
        model: args.model.clone(),
        path,
        backend: greater_models::device::backend_name(),
        threads: machine::threads(),
        prefix_tokens: args.prefix_tokens,
        detach_prefix: opts.detach_prefix,
        load_start,
        load_end: machine::load_average(),
        batches,
        memory,
    };
    print_report(&report);
    let out = write_json(&args.common.out, "grad.json", &report)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Peak RSS of one gradient of `set` (the large batch), next to its prediction.
fn peak_memory(loaded: &LoadedModel, set: &Workload, args: &GradArgs, checkpointing: bool) -> Result<Memory> {
    let model = &loaded.model;
    let rss_before = machine::status_bytes("VmRSS");
    let peak_reset = machine::reset_peak_rss();
    let t = std::time::Instant::now();
    let opts = GradOptions { checkpointing, detach_prefix: !args.whole_forward, ..GradOptions::default() };
    token_gradients(model, &set.examples(args.batch), &set.candidates, &opts)?;
    let seconds = t.elapsed().as_secs_f64();
    let m = model.config();
    let tokens = set.seqs.iter().map(|s| s.ids.len()).max().unwrap_or(0);
    let gradient =
        memory::gradient_bytes(m, args.batch, tokens, CONTROL_TOKENS + 1, set.candidates.len(), checkpointing);
    Ok(Memory {
        batch: args.batch,
        tokens,
        rss_before,
        peak_rss: machine::status_bytes("VmHWM"),
        peak_reset,
        seconds,
        predicted_peak: memory::BASE_BYTES + 4 * m.num_parameters() as u64 + gradient,
        checkpointing,
    })
}

/// Synthetic sequences sharing one prompt, and a candidate set holding its token at
/// [`Workload::POSITION`].
#[derive(Debug, Clone)]
pub struct Workload {
    /// One sequence per row of the largest batch.
    pub seqs: Vec<TrainSequence>,
    /// Candidate token ids, the current prompt token first.
    pub candidates: Vec<u32>,
}

impl Workload {
    /// The prompt position whose token the gradient is taken for.
    pub const POSITION: usize = 7;

    /// `batch` sequences of about `tokens` ids (row `r` is `r mod 4` tokens shorter) drawn from
    /// `[100, min(vocab, 30000))`, `prefix` of them before the prompt, with `candidates` distinct
    /// candidates.
    pub fn new(
        rng: &mut SplitMix64,
        vocab: u32,
        batch: usize,
        tokens: usize,
        candidates: usize,
        prefix: usize,
    ) -> Self {
        let hi = vocab.min(30_000);
        let lo = 100.min(hi / 2);
        let control = token_ids(rng, CONTROL_TOKENS, lo, hi);
        let seqs = (0..batch)
            .map(|r| {
                let len = tokens.saturating_sub(r % 4).max(CONTROL_TOKENS + 20);
                let (prefix, suffix, extractor) =
                    (token_ids(rng, prefix, lo, hi), token_ids(rng, 5, lo, hi), token_ids(rng, 6, lo, hi));
                let fixed = prefix.len() + CONTROL_TOKENS + suffix.len() + extractor.len() + 1;
                let reasoning = token_ids(rng, len.saturating_sub(fixed), lo, hi);
                let answer = token_ids(rng, 1, lo, hi);
                TrainSequence::join([&prefix, &control, &suffix, &reasoning, &extractor, &answer])
            })
            .collect();
        let mut cands = vec![control[Self::POSITION]];
        while cands.len() < candidates {
            let t = token_ids(rng, 1, lo, hi)[0];
            if !cands.contains(&t) {
                cands.push(t);
            }
        }
        Self { seqs, candidates: cands }
    }

    /// The first `b` sequences as gradient examples at [`Workload::POSITION`].
    pub fn examples(&self, b: usize) -> Vec<GradExample<'_>> {
        self.seqs[..b].iter().map(|seq| GradExample { seq, position: Self::POSITION }).collect()
    }
}

fn time_batch(model: &dyn CausalLm, set: &Workload, b: usize, runs: usize, opts: &GradOptions) -> Result<GradTiming> {
    let examples = set.examples(b);
    // The plain one-hot (the current token): the same forward value `token_gradients` computes.
    let mut onehot = vec![0.0f32; set.candidates.len()];
    onehot[0] = 1.0;
    let weights = vec![onehot; b];
    let mut err = None;
    let fb = machine::time_runs(1, runs, || {
        if let Err(e) = token_gradients(model, &examples, &set.candidates, opts) {
            err = Some(e);
        }
    });
    let fwd = machine::time_runs(1, runs, || {
        if let Err(e) = losses_at(model, &examples, &set.candidates, &weights, opts) {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        return Err(e.into());
    }
    let (fb_s, fwd_s) = (machine::median_s(&fb), machine::median_s(&fwd));
    let backward_over_forward = (fb_s - fwd_s) / fwd_s;
    Ok(GradTiming {
        batch: b,
        tokens: examples.iter().map(|e| e.seq.ids.len()).max().unwrap_or(0),
        candidates: set.candidates.len(),
        forward_backward_runs_s: fb,
        forward_runs_s: fwd,
        forward_backward_s: fb_s,
        forward_s: fwd_s,
        backward_over_forward,
        total_over_forward: fb_s / fwd_s,
        goal_met: backward_over_forward <= GOAL_BACKWARD_OVER_FORWARD,
    })
}

fn print_report(r: &GradReport) {
    println!(
        "{} ({}, {} rayon threads; {} tokens before the prompt, {})",
        r.model,
        r.backend,
        r.threads.rayon,
        r.prefix_tokens,
        if r.detach_prefix { "outside the autodiff graph" } else { "whole sequence tracked" }
    );
    println!(
        "  {:<16} {:>12} {:>10} {:>11} {:>11}  goal ≤ {GOAL_BACKWARD_OVER_FORWARD}×",
        "batch x tokens", "fwd+bwd s", "fwd s", "bwd/fwd", "total/fwd"
    );
    for t in &r.batches {
        println!(
            "  {:<16} {:>12.3} {:>10.3} {:>10.2}× {:>10.2}×  {}",
            format!("{} x {}", t.batch, t.tokens),
            t.forward_backward_s,
            t.forward_s,
            t.backward_over_forward,
            t.total_over_forward,
            verdict(t.goal_met)
        );
    }
    let mb = |b: Option<u64>| b.map_or("?".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6));
    for m in &r.memory {
        println!(
            "  peak RSS of {} x {} tokens{}: {} (predicted {}; {}; {} before, {:.1} s)",
            m.batch,
            m.tokens,
            if m.checkpointing { ", checkpointed" } else { "" },
            mb(m.peak_rss),
            mb(Some(m.predicted_peak)),
            if m.peak_reset { "peak of this run" } else { "process peak: reset unavailable" },
            mb(m.rss_before),
            m.seconds
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use greater_grad::Part;

    #[test]
    fn workload_lays_out_parts_and_holds_the_current_token() {
        let mut rng = SplitMix64(1);
        let w = Workload::new(&mut rng, 50_000, 5, 300, 16, 30);
        // Row r is r mod 4 tokens shorter: 300, 299, 298, 297, 300.
        let lens: Vec<usize> = w.seqs.iter().map(|s| s.ids.len()).collect();
        assert_eq!(lens, [300, 299, 298, 297, 300]);
        let s = &w.seqs[0];
        assert_eq!(s.range(Part::Control), 30..45);
        assert_eq!(s.range(Part::Answer).len(), 1);
        assert_eq!(w.candidates.len(), 16);
        assert_eq!(w.candidates[0], s.part(Part::Control)[Workload::POSITION]);
        // Every row shares the prompt.
        assert!(w.seqs.iter().all(|q| q.part(Part::Control) == s.part(Part::Control)));
        let mut sorted = w.candidates.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16, "candidates are distinct");
        // The prefix length moves the prompt.
        let w = Workload::new(&mut SplitMix64(1), 50_000, 2, 300, 16, 120);
        assert_eq!(w.seqs[0].range(Part::Control), 120..135);
        assert_eq!(w.seqs[0].ids.len(), 300);
    }
}
