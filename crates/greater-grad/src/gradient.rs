//! Token gradients over a candidate set (SPEC B.1.2 C.3).
//!
//! For each example the input embedding at the prompt position is replaced by
//! `onehot(C)ᵀ · E[C]`, with the one-hot at the current token, so the forward value is the plain
//! forward. The loss is
//!
//! ```text
//! L = mean_{t ∈ answer} CE(logits[t-1] / τ, ids[t])  +  w · mean_{t ∈ control} −log p(ids[t] | ids[<t])
//! ```
//!
//! and its gradient with respect to the one-hot ranks the candidates (lower is better). Many
//! examples of different lengths run as one left-padded batch; each has its own one-hot row, so
//! one backward pass yields every per-example gradient and, summed, the batch gradient.

use burn::tensor::{Tensor, TensorData};
use greater_models::arch::CausalLm;
use greater_models::layers::download;

use crate::batch::Batch;
use crate::sequence::{Part, TrainSequence};

/// Loss constants (SPEC A1 defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradOptions {
    /// Temperature τ dividing the answer logits (0.2).
    pub answer_temperature: f32,
    /// Weight w of the prompt NLL term (0.2).
    pub control_weight: f32,
    /// Recompute memory-bound activations in the backward pass instead of keeping them (burn's
    /// balanced gradient checkpointing): less peak memory for long sequences, more time.
    pub checkpointing: bool,
    /// Run the tokens before the first prompt position of a batch as a plain forward into a KV
    /// cache and start the autodiff graph there: they do not depend on the one-hot, so the
    /// gradient is the same (up to float rounding) for a shorter backward. Off: one tracked
    /// forward over whole sequences.
    pub detach_prefix: bool,
}

impl Default for GradOptions {
    fn default() -> Self {
        Self { answer_temperature: 0.2, control_weight: 0.2, checkpointing: false, detach_prefix: true }
    }
}

/// One example of a gradient batch.
#[derive(Debug, Clone)]
pub struct GradExample<'a> {
    /// The sequence.
    pub seq: &'a TrainSequence,
    /// The prompt position whose token is replaced (0-based within the control part).
    pub position: usize,
}

/// The gradient and losses of one example.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExampleGrad {
    /// `∂L_total / ∂onehot`, in candidate order.
    pub grad_total: Vec<f32>,
    /// Answer CE (τ-scaled), mean over answer tokens.
    pub loss_answer: f32,
    /// Prompt NLL, mean over control tokens.
    pub loss_control: f32,
    /// `loss_answer + w · loss_control`.
    pub loss_total: f32,
    /// Whether any answer token is not the argmax of its (teacher-forced) logits.
    pub mistake: bool,
    /// Whether no answer variant has all its tokens at the argmax (equals `mistake` without variants).
    pub mistake_variants: bool,
    /// τ-scaled CE of each official answer token (their mean is the official answer loss).
    #[serde(default)]
    pub answer_token_nll: Vec<f32>,
}

/// The result for a batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradOutput {
    /// Per example, in input order.
    pub examples: Vec<ExampleGrad>,
    /// The sum of the per-example gradients (SPEC: summed, not normalised).
    pub grad_sum: Vec<f32>,
}

impl GradOutput {
    /// The sum divided by its L2 norm (the official `get_grads` normalisation; ranking unchanged).
    pub fn grad_sum_normalized(&self) -> Vec<f32> {
        let n = self.grad_sum.iter().map(|g| g * g).sum::<f32>().sqrt();
        self.grad_sum.iter().map(|g| if n > 0.0 { g / n } else { 0.0 }).collect()
    }

    /// Candidate indices ordered by ascending gradient (best first); ties keep the lower index.
    pub fn ranking(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.grad_sum.len()).collect();
        order.sort_by(|&a, &b| self.grad_sum[a].total_cmp(&self.grad_sum[b]).then(a.cmp(&b)));
        order
    }
}

/// Why a gradient could not be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GradError {
    /// The example's current token is not in the candidate set.
    #[error("example {example}: the current token {token} at prompt position {position} is not among the candidates")]
    CurrentNotCandidate {
        /// Which example.
        example: usize,
        /// The prompt position.
        position: usize,
        /// The token there.
        token: u32,
    },
    /// The position is outside the prompt, or a part the loss needs is empty.
    #[error("example {example}: {reason}")]
    BadExample {
        /// Which example.
        example: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Gradients of the GReaTer loss with respect to a one-hot over `candidates` at each example's
/// prompt position, for a whole batch in one forward and one backward pass.
pub fn token_gradients(
    model: &dyn CausalLm,
    examples: &[GradExample<'_>],
    candidates: &[u32],
    opts: &GradOptions,
) -> Result<GradOutput, GradError> {
    gradients(model, examples, None, candidates, opts)
}

/// [`token_gradients`] with the answer loss over answer variants: `variants[e]` lists the token
/// sequences that grade as example `e`'s gold after its extractor, and the answer loss is
/// `−log Σ_v p_τ(v)` (the product of the variant's τ-scaled token probabilities), so the gradient
/// rewards the right answer in any accepted spelling. With the official answer as the only
/// single-token variant this equals the official loss.
pub fn token_gradients_with_variants(
    model: &dyn CausalLm,
    examples: &[GradExample<'_>],
    variants: &[Vec<Vec<u32>>],
    candidates: &[u32],
    opts: &GradOptions,
) -> Result<GradOutput, GradError> {
    gradients(model, examples, Some(variants), candidates, opts)
}

fn gradients(
    model: &dyn CausalLm,
    examples: &[GradExample<'_>],
    variants: Option<&[Vec<Vec<u32>>]>,
    candidates: &[u32],
    opts: &GradOptions,
) -> Result<GradOutput, GradError> {
    let n_c = candidates.len();
    if examples.is_empty() {
        return Ok(GradOutput { examples: Vec::new(), grad_sum: vec![0.0; n_c] });
    }
    let batch = Batch::new(examples, candidates, variants)?;
    let ad = model.device().clone().autodiff();
    let ad = if opts.checkpointing { ad.gradient_checkpointing() } else { ad };
    let onehot = Tensor::<2>::from_data(TensorData::new(batch.onehot.clone(), [batch.e, n_c]), &ad).require_grad();
    let out = batch.forward(model, candidates, onehot.clone(), opts);
    let grads = out.loss_total.clone().sum().backward();
    let grad = download(onehot.grad(&grads).expect("the one-hot requires a gradient"));
    let l = out.read(&batch);
    let mut grad_sum = vec![0.0f32; n_c];
    let examples = (0..batch.e)
        .map(|e| {
            let g = grad[e * n_c..(e + 1) * n_c].to_vec();
            grad_sum.iter_mut().zip(&g).for_each(|(s, x)| *s += x);
            ExampleGrad {
                grad_total: g,
                loss_answer: l.answer[e],
                loss_control: l.control[e],
                loss_total: l.total[e],
                mistake: l.mistake[e],
                mistake_variants: l.mistake_variants[e],
                answer_token_nll: l.answer_token_nll[e].clone(),
            }
        })
        .collect();
    Ok(GradOutput { examples, grad_sum })
}

/// Forward-only losses with arbitrary (not necessarily one-hot) weights over the candidates at
/// each example's position: `weights[e]` has one value per candidate. Used to check gradients
/// against finite differences. Empty `examples` give an empty result.
pub fn losses_at(
    model: &dyn CausalLm,
    examples: &[GradExample<'_>],
    candidates: &[u32],
    weights: &[Vec<f32>],
    opts: &GradOptions,
) -> Result<Vec<(f32, f32, f32)>, GradError> {
    losses_at_with_variants(model, examples, candidates, weights, None, opts)
}

/// [`losses_at`] with the answer loss over answer variants (see [`token_gradients_with_variants`]).
pub fn losses_at_with_variants(
    model: &dyn CausalLm,
    examples: &[GradExample<'_>],
    candidates: &[u32],
    weights: &[Vec<f32>],
    variants: Option<&[Vec<Vec<u32>>]>,
    opts: &GradOptions,
) -> Result<Vec<(f32, f32, f32)>, GradError> {
    if examples.is_empty() {
        return Ok(Vec::new());
    }
    let batch = Batch::new(examples, candidates, variants)?;
    let flat: Vec<f32> = weights.iter().flatten().copied().collect();
    let onehot = Tensor::<2>::from_data(TensorData::new(flat, [batch.e, candidates.len()]), model.device());
    let l = batch.forward(model, candidates, onehot, opts).read(&batch);
    Ok((0..batch.e).map(|e| (l.answer[e], l.control[e], l.total[e])).collect())
}

/// Teacher-forced scores of one sequence (selection, SPEC B.1.2 C.5).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceScore {
    /// Answer CE at temperature τ, mean over answer tokens.
    pub loss_answer: f32,
    /// The sequence's own prompt NLL, mean over control tokens.
    pub loss_control: f32,
    /// Whether any answer token is not the argmax of its logits.
    pub mistake: bool,
}

/// Forward-only scores of whole sequences, `batch_size` at a time (no gradient is tracked).
pub fn score_sequences(
    model: &dyn CausalLm,
    seqs: &[TrainSequence],
    opts: &GradOptions,
    batch_size: usize,
) -> Result<Vec<SequenceScore>, GradError> {
    let mut out = Vec::with_capacity(seqs.len());
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| (seqs[i].ids.len(), i));
    let mut scored = vec![None; seqs.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        // Position 0 with its own token as the only candidate: the forward is the plain one.
        let first: Vec<u32> = chunk.iter().map(|&i| seqs[i].ids[seqs[i].range(Part::Control).start]).collect();
        let mut candidates = first.clone();
        candidates.sort_unstable();
        candidates.dedup();
        let examples: Vec<GradExample<'_>> =
            chunk.iter().map(|&i| GradExample { seq: &seqs[i], position: 0 }).collect();
        let batch = Batch::new(&examples, &candidates, None)?;
        let onehot =
            Tensor::<2>::from_data(TensorData::new(batch.onehot.clone(), [batch.e, candidates.len()]), model.device());
        let l = batch.forward(model, &candidates, onehot, opts).read(&batch);
        for (k, &i) in chunk.iter().enumerate() {
            scored[i] =
                Some(SequenceScore { loss_answer: l.answer[k], loss_control: l.control[k], mistake: l.mistake[k] });
        }
    }
    out.extend(scored.into_iter().map(|s| s.expect("every sequence is scored")));
    Ok(out)
}
