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

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::generate::left_pad;
use greater_models::layers::download;
// Not burn's: its one-pass f32 normaliser loses ~1e-3 over a 262k vocabulary (Gemma).
use greater_models::layers::log_softmax::log_softmax;

use crate::sequence::{Part, TrainSequence};

/// Loss constants (SPEC A1 defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradOptions {
    /// Temperature τ dividing the answer logits (0.2).
    pub answer_temperature: f32,
    /// Weight w of the prompt NLL term (0.2).
    pub control_weight: f32,
}

impl Default for GradOptions {
    fn default() -> Self {
        Self { answer_temperature: 0.2, control_weight: 0.2 }
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
    let n_c = candidates.len();
    if examples.is_empty() {
        return Ok(GradOutput { examples: Vec::new(), grad_sum: vec![0.0; n_c] });
    }
    let batch = Batch::new(examples, candidates)?;
    let ad = model.device().clone().autodiff();
    let onehot = Tensor::<2>::from_data(TensorData::new(batch.onehot.clone(), [batch.b, n_c]), &ad).require_grad();
    let out = batch.forward(model, candidates, onehot.clone(), opts);
    let grads = out.loss_total.clone().sum().backward();
    let grad = download(onehot.grad(&grads).expect("the one-hot requires a gradient"));
    let (la, lc, lt, mistakes) = out.read(&batch);
    let mut grad_sum = vec![0.0f32; n_c];
    let examples = (0..batch.b)
        .map(|e| {
            let g = grad[e * n_c..(e + 1) * n_c].to_vec();
            grad_sum.iter_mut().zip(&g).for_each(|(s, x)| *s += x);
            ExampleGrad {
                grad_total: g,
                loss_answer: la[e],
                loss_control: lc[e],
                loss_total: lt[e],
                mistake: mistakes[e],
            }
        })
        .collect();
    Ok(GradOutput { examples, grad_sum })
}

/// Forward-only losses with arbitrary (not necessarily one-hot) weights over the candidates at
/// each example's position: `weights[e]` has one value per candidate. Used to check gradients
/// against finite differences, and to score without a backward pass.
pub fn losses_at(
    model: &dyn CausalLm,
    examples: &[GradExample<'_>],
    candidates: &[u32],
    weights: &[Vec<f32>],
    opts: &GradOptions,
) -> Result<Vec<(f32, f32, f32)>, GradError> {
    let batch = Batch::new(examples, candidates)?;
    let flat: Vec<f32> = weights.iter().flatten().copied().collect();
    let onehot = Tensor::<2>::from_data(TensorData::new(flat, [batch.b, candidates.len()]), model.device());
    let out = batch.forward(model, candidates, onehot, opts);
    let (la, lc, lt, _) = out.read(&batch);
    Ok((0..batch.b).map(|e| (la[e], lc[e], lt[e])).collect())
}

/// A padded batch and the bookkeeping of which logits rows feed which loss.
struct Batch {
    b: usize,
    s: usize,
    padded: Vec<i64>,
    valid: Vec<Vec<bool>>,
    onehot: Vec<f32>,
    at: Vec<f32>,
    rows: Vec<i64>,
    targets: Vec<i64>,
    answer_rows: Vec<Vec<usize>>,
    control_rows: Vec<Vec<usize>>,
}

struct Forward {
    logits: Tensor<2>,
    loss_answer: Tensor<1>,
    loss_control: Tensor<1>,
    loss_total: Tensor<1>,
}

impl Batch {
    fn new(examples: &[GradExample<'_>], candidates: &[u32]) -> Result<Self, GradError> {
        let n_c = candidates.len();
        let b = examples.len();
        let prompts: Vec<Vec<u32>> = examples.iter().map(|e| e.seq.ids.clone()).collect();
        let (padded, valid) = left_pad(&prompts);
        let s = valid[0].len();
        let mut batch = Batch {
            b,
            s,
            padded,
            valid,
            onehot: vec![0.0; b * n_c],
            at: vec![0.0; b * s],
            rows: Vec::new(),
            targets: Vec::new(),
            answer_rows: Vec::with_capacity(b),
            control_rows: Vec::with_capacity(b),
        };
        for (e, ex) in examples.iter().enumerate() {
            let seq = ex.seq;
            let pad = s - seq.ids.len();
            let control = seq.range(Part::Control);
            let answer = seq.range(Part::Answer);
            if ex.position >= control.len() {
                let reason = format!("prompt position {} outside a prompt of {} tokens", ex.position, control.len());
                return Err(GradError::BadExample { example: e, reason });
            }
            if answer.is_empty() || control.start == 0 {
                let reason = "empty answer, or a prompt at the very start".to_string();
                return Err(GradError::BadExample { example: e, reason });
            }
            let pos = control.start + ex.position;
            let token = seq.ids[pos];
            let Some(c) = candidates.iter().position(|&t| t == token) else {
                return Err(GradError::CurrentNotCandidate { example: e, position: ex.position, token });
            };
            batch.onehot[e * n_c + c] = 1.0;
            batch.at[e * s + pad + pos] = 1.0;
            let mut take = |range: std::ops::Range<usize>| -> Vec<usize> {
                range
                    .map(|t| {
                        batch.rows.push((e * s + pad + t - 1) as i64);
                        batch.targets.push(seq.ids[t] as i64);
                        batch.rows.len() - 1
                    })
                    .collect()
            };
            let a = take(answer);
            let c = take(control);
            batch.answer_rows.push(a);
            batch.control_rows.push(c);
        }
        Ok(batch)
    }

    /// One forward: the embedding at each example's position is `onehot[e] · E[C]`.
    fn forward(&self, model: &dyn CausalLm, candidates: &[u32], onehot: Tensor<2>, opts: &GradOptions) -> Forward {
        let (b, s, n_c) = (self.b, self.s, candidates.len());
        let n = self.rows.len();
        let h = model.config().hidden_size;
        let device = model.device();
        let int1 = |v: Vec<i64>, len: usize| Tensor::<1, Int>::from_data(TensorData::new(v, [len]), device);
        let e_c = model.embedding_matrix().select(0, int1(candidates.iter().map(|&t| t as i64).collect(), n_c));
        let replaced = onehot.matmul(e_c).reshape([b, 1, h]);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(self.padded.clone(), [b, s]), device);
        let base = model.embed(ids);
        // Blend rather than scatter: positions differ per example, and a product with a constant
        // 0/1 mask is cheap and differentiable on every backend.
        let at = Tensor::<3>::from_data(TensorData::new(self.at.clone(), [b, s, 1]), device);
        let keep = at.clone().neg() + 1.0;
        let embeds = base * keep + at * replaced;
        let all_valid = self.valid.iter().all(|r| r.iter().all(|&v| v));
        let valid = (!all_valid).then_some(&self.valid[..]);
        let hidden = model.forward_hidden(embeds, valid, &mut KvCache::uncached(b));
        // Only the rows the loss reads go through the output head.
        let picked = hidden.reshape([b * s, h]).select(0, int1(self.rows.clone(), n));
        let logits = model.lm_head(picked.reshape([1, n, h])).reshape([n, model.config().vocab_size]);
        let targets = Tensor::<2, Int>::from_data(TensorData::new(self.targets.clone(), [n, 1]), device);
        let nll_plain = log_softmax(logits.clone(), 1).gather(1, targets.clone()).neg().reshape([n, 1]);
        let nll_tau = log_softmax(logits.clone() / opts.answer_temperature, 1).gather(1, targets).neg().reshape([n, 1]);
        let mut w_ans = vec![0.0f32; b * n];
        let mut w_ctl = vec![0.0f32; b * n];
        for e in 0..b {
            for &k in &self.answer_rows[e] {
                w_ans[e * n + k] = 1.0 / self.answer_rows[e].len() as f32;
            }
            for &k in &self.control_rows[e] {
                w_ctl[e * n + k] = 1.0 / self.control_rows[e].len() as f32;
            }
        }
        let w_ans = Tensor::<2>::from_data(TensorData::new(w_ans, [b, n]), device);
        let w_ctl = Tensor::<2>::from_data(TensorData::new(w_ctl, [b, n]), device);
        let loss_answer = w_ans.matmul(nll_tau).reshape([b]);
        let loss_control = w_ctl.matmul(nll_plain).reshape([b]);
        let loss_total = loss_answer.clone() + loss_control.clone() * opts.control_weight;
        Forward { logits, loss_answer, loss_control, loss_total }
    }
}

impl Forward {
    /// Loss values and mistake flags on the host.
    fn read(self, batch: &Batch) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<bool>) {
        let argmax: Vec<i64> = self.logits.argmax(1).try_into_vec_as::<i64>().expect("reading argmax");
        let mistakes =
            batch.answer_rows.iter().map(|rows| rows.iter().any(|&k| argmax[k] != batch.targets[k])).collect();
        (
            download(self.loss_answer.detach()),
            download(self.loss_control.detach()),
            download(self.loss_total.detach()),
            mistakes,
        )
    }
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
        let batch = Batch::new(&examples, &candidates)?;
        let onehot =
            Tensor::<2>::from_data(TensorData::new(batch.onehot.clone(), [batch.b, candidates.len()]), model.device());
        let fwd = batch.forward(model, &candidates, onehot, opts);
        let (la, lc, _, mistakes) = fwd.read(&batch);
        for (k, &i) in chunk.iter().enumerate() {
            scored[i] = Some(SequenceScore { loss_answer: la[k], loss_control: lc[k], mistake: mistakes[k] });
        }
    }
    out.extend(scored.into_iter().map(|s| s.expect("every sequence is scored")));
    Ok(out)
}
