//! A padded batch of training rows and the bookkeeping of which logits feed which loss.
//!
//! Every example has one row: its sequence with the official answer. With answer variants, an
//! example gets more rows only where a variant cannot be read off an existing row: a variant needs
//! the logits after each of its tokens but the last, so a row whose answer starts with all but the
//! last token of the variant serves it (all single-token variants share the official row). Rows of
//! one example share its one-hot, so the gradient of the example is taken through all of them.

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::generate::left_pad;
use greater_models::layers::download;
// Not burn's: its one-pass f32 normaliser loses ~1e-3 over a 262k vocabulary (Gemma).
use greater_models::layers::log_softmax::log_softmax;

use crate::gradient::{GradError, GradExample, GradOptions};
use crate::sequence::Part;

/// How many rows one example takes in a gradient batch: its official answer's row and one for
/// each variant that no earlier row serves (the rule [`Batch`] lays rows out by). Memory and time
/// of the gradient grow with it.
pub fn rows_per_example(official: &[u32], variants: &[Vec<u32>]) -> usize {
    let mut answers: Vec<&[u32]> = vec![official];
    for v in variants.iter().filter(|v| !v.is_empty()) {
        let head = &v[..v.len() - 1];
        if !answers.iter().any(|a| a.starts_with(head)) {
            answers.push(v);
        }
    }
    answers.len()
}

/// Rows, one-hots and loss entries of a batch.
pub(crate) struct Batch {
    /// Examples.
    pub e: usize,
    /// Rows (at least one per example).
    b: usize,
    s: usize,
    padded: Vec<i64>,
    valid: Vec<Vec<bool>>,
    /// The example of each row.
    row_example: Vec<i64>,
    /// `[e, candidates]`, one at each example's current token.
    pub onehot: Vec<f32>,
    /// `[b, s]`, one at the replaced position of each row.
    at: Vec<f32>,
    /// Flat hidden row (`row · s + position`) and target id of every loss entry.
    rows: Vec<i64>,
    targets: Vec<i64>,
    /// Per example: entries of the prompt tokens and of the official answer (its first row).
    control_entries: Vec<Vec<usize>>,
    answer_entries: Vec<Vec<usize>>,
    /// Per example and variant: the entries of the variant's tokens (answer variants only).
    variant_entries: Option<Vec<Vec<Vec<usize>>>>,
    /// With more rows than examples: each example's prefix (everything before its answer) is
    /// run once and every row continues from it through the KV cache, so an extra spelling costs
    /// its few answer tokens, not a whole sequence. Entries then index `[prefix rows · suffix rows]`.
    shared: Option<SharedPrefix>,
}

/// The layout of [`Batch::shared`]: prefixes per example, answer suffixes per row.
struct SharedPrefix {
    /// `[e, s_p]` left-padded prefix ids, their validity, and the one-hot position mask.
    ids: Vec<i64>,
    valid: Vec<Vec<bool>>,
    at: Vec<f32>,
    s_p: usize,
    /// `[b, s_s]` right-padded answer ids of every row, and their validity.
    suffix: Vec<i64>,
    suffix_valid: Vec<Vec<bool>>,
    s_s: usize,
}

/// The forward's outputs on the device.
pub(crate) struct Forward {
    logits: Tensor<2>,
    /// τ-scaled NLL of every loss entry, `[n, 1]`.
    nll_tau: Tensor<2>,
    pub loss_answer: Tensor<1>,
    pub loss_control: Tensor<1>,
    pub loss_total: Tensor<1>,
}

/// Loss values and mistake flags on the host, per example.
pub(crate) struct Losses {
    pub answer: Vec<f32>,
    pub control: Vec<f32>,
    pub total: Vec<f32>,
    /// Some official answer token is not the argmax of its teacher-forced logits.
    pub mistake: Vec<bool>,
    /// No variant has every token at the argmax (equals `mistake` without variants).
    pub mistake_variants: Vec<bool>,
    /// τ-scaled NLL of each official answer token.
    pub answer_token_nll: Vec<Vec<f32>>,
}

/// One row before padding: its ids and the answer tokens it holds.
struct Row {
    example: usize,
    ids: Vec<u32>,
    answer_start: usize,
}

impl Batch {
    /// Lay out `examples`; `variants[e]`, when given, lists example `e`'s answer variants (token ids
    /// placed after its extractor), and the answer loss becomes −log Σ_v p(v).
    pub fn new(
        examples: &[GradExample<'_>],
        candidates: &[u32],
        variants: Option<&[Vec<Vec<u32>>]>,
    ) -> Result<Self, GradError> {
        let (n_c, e) = (candidates.len(), examples.len());
        if let Some(v) = variants
            && v.len() != e
        {
            let reason = format!("{} variant lists for {e} examples", v.len());
            return Err(GradError::BadExample { example: v.len().min(e), reason });
        }
        let mut onehot = vec![0.0; e * n_c];
        let mut rows: Vec<Row> = Vec::with_capacity(e);
        let mut served: Vec<Vec<usize>> = Vec::with_capacity(e);
        let mut first_rows = Vec::with_capacity(e);
        for (i, ex) in examples.iter().enumerate() {
            let c = check_example(i, ex, candidates)?;
            onehot[i * n_c + c] = 1.0;
            let seq = ex.seq;
            let answer = seq.range(Part::Answer);
            let first = rows.len();
            first_rows.push(first);
            rows.push(Row { example: i, ids: seq.ids.clone(), answer_start: answer.start });
            let mut by_variant = Vec::new();
            for v in variants.map_or(&[][..], |v| &v[i][..]) {
                if v.is_empty() {
                    return Err(GradError::BadExample { example: i, reason: "an empty answer variant".into() });
                }
                let head = &v[..v.len() - 1];
                let r = (first..rows.len()).find(|&r| rows[r].ids[rows[r].answer_start..].starts_with(head));
                let r = r.unwrap_or_else(|| {
                    let ids = [&seq.ids[..answer.start], &v[..]].concat();
                    rows.push(Row { example: i, ids, answer_start: answer.start });
                    rows.len() - 1
                });
                by_variant.push(r);
            }
            served.push(by_variant);
        }
        Ok(Self::from_rows(examples, rows, &first_rows, &served, onehot, variants))
    }

    fn from_rows(
        examples: &[GradExample<'_>],
        rows: Vec<Row>,
        first_rows: &[usize],
        served: &[Vec<usize>],
        onehot: Vec<f32>,
        variants: Option<&[Vec<Vec<u32>>]>,
    ) -> Self {
        let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
        let (padded, valid) = left_pad(&ids);
        let (b, s) = (rows.len(), valid[0].len());
        let mut batch = Batch {
            e: examples.len(),
            b,
            s,
            padded,
            valid,
            row_example: rows.iter().map(|r| r.example as i64).collect(),
            onehot,
            at: vec![0.0; b * s],
            rows: Vec::new(),
            targets: Vec::new(),
            control_entries: Vec::new(),
            answer_entries: Vec::new(),
            variant_entries: variants.map(|_| Vec::new()),
            shared: None,
        };
        let pad: Vec<usize> = rows.iter().map(|r| s - r.ids.len()).collect();
        for (r, row) in rows.iter().enumerate() {
            let ex = &examples[row.example];
            batch.at[r * s + pad[r] + ex.seq.range(Part::Control).start + ex.position] = 1.0;
        }
        let shared = (b > examples.len()).then(|| SharedPrefix::new(examples, &rows));
        let e = examples.len();
        // The flat hidden index whose logits predict token `t` of row `r`.
        let hidden_at = |r: usize, t: usize| match &shared {
            None => r * s + pad[r] + t - 1,
            Some(sh) => {
                let (ex, start) = (rows[r].example, rows[r].answer_start);
                if t - 1 < start {
                    ex * sh.s_p + (sh.s_p - start) + t - 1
                } else {
                    e * sh.s_p + r * sh.s_s + (t - 1 - start)
                }
            }
        };
        let mut entry = |r: usize, t: usize, target: u32| {
            batch.rows.push(hidden_at(r, t) as i64);
            batch.targets.push(target as i64);
            batch.rows.len() - 1
        };
        for (i, ex) in examples.iter().enumerate() {
            let (seq, first) = (ex.seq, first_rows[i]);
            let ctl: Vec<usize> = seq.range(Part::Control).map(|t| entry(first, t, seq.ids[t])).collect();
            let ans: Vec<usize> = seq.range(Part::Answer).map(|t| entry(first, t, seq.ids[t])).collect();
            batch.control_entries.push(ctl);
            batch.answer_entries.push(ans);
            if let Some(vs) = variants {
                let start = seq.range(Part::Answer).start;
                let per: Vec<Vec<usize>> = vs[i]
                    .iter()
                    .zip(&served[i])
                    .map(|(v, &r)| v.iter().enumerate().map(|(k, &tok)| entry(r, start + k, tok)).collect())
                    .collect();
                batch.variant_entries.as_mut().expect("variants given").push(per);
            }
        }
        batch.shared = shared;
        batch
    }

    /// One forward: the embedding at each row's position is `onehot[example] · E[C]`.
    pub fn forward(&self, model: &dyn CausalLm, candidates: &[u32], onehot: Tensor<2>, opts: &GradOptions) -> Forward {
        let (b, s, n_c) = (self.b, self.s, candidates.len());
        let n = self.rows.len();
        let h = model.config().hidden_size;
        let device = model.device();
        let int1 = |v: Vec<i64>, len: usize| Tensor::<1, Int>::from_data(TensorData::new(v, [len]), device);
        let e_c = model.embedding_matrix().select(0, int1(candidates.iter().map(|&t| t as i64).collect(), n_c));
        let detach = opts.detach_prefix;
        let hidden = match &self.shared {
            None => {
                let per_row = onehot.select(0, int1(self.row_example.clone(), b));
                let replaced = per_row.matmul(e_c).reshape([b, 1, h]);
                let hidden = blended_forward(
                    model,
                    &self.padded,
                    &self.valid,
                    &self.at,
                    replaced,
                    &mut KvCache::uncached(b),
                    detach,
                );
                hidden.reshape([b * s, h])
            }
            Some(sh) => {
                let e = self.e;
                let replaced = onehot.matmul(e_c).reshape([e, 1, h]);
                let mut cache = KvCache::new(e, sh.s_p + sh.s_s);
                let prefix = blended_forward(model, &sh.ids, &sh.valid, &sh.at, replaced, &mut cache, detach);
                // Every row continues from its example's prefix.
                let of_row: Vec<usize> = self.row_example.iter().map(|&x| x as usize).collect();
                cache.retain_rows(&of_row);
                let ids = Tensor::<2, Int>::from_data(TensorData::new(sh.suffix.clone(), [b, sh.s_s]), device);
                let all_valid = sh.suffix_valid.iter().all(|r| r.iter().all(|&v| v));
                let valid = (!all_valid).then_some(&sh.suffix_valid[..]);
                let suffix = model.forward_hidden(model.embed(ids), valid, &mut cache);
                Tensor::cat(vec![prefix.reshape([e * sh.s_p, h]), suffix.reshape([b * sh.s_s, h])], 0)
            }
        };
        // Only the rows the loss reads go through the output head.
        let picked = hidden.select(0, int1(self.rows.clone(), n));
        let logits = model.lm_head(picked.reshape([1, n, h])).reshape([n, model.config().vocab_size]);
        let targets = Tensor::<2, Int>::from_data(TensorData::new(self.targets.clone(), [n, 1]), device);
        let nll_plain = log_softmax(logits.clone(), 1).gather(1, targets.clone()).neg().reshape([n, 1]);
        let nll_tau = log_softmax(logits.clone() / opts.answer_temperature, 1).gather(1, targets).neg().reshape([n, 1]);
        let loss_control = self.mean_over(&self.control_entries, device).matmul(nll_plain).reshape([self.e]);
        let kept = nll_tau.clone().detach();
        let loss_answer = match &self.variant_entries {
            None => self.mean_over(&self.answer_entries, device).matmul(nll_tau).reshape([self.e]),
            Some(v) => self.variant_loss(v, nll_tau, device),
        };
        let loss_total = loss_answer.clone() + loss_control.clone() * opts.control_weight;
        Forward { logits, nll_tau: kept, loss_answer, loss_control, loss_total }
    }

    /// `[e, n]` weights averaging each example's `entries`.
    fn mean_over(&self, entries: &[Vec<usize>], device: &burn::tensor::Device) -> Tensor<2> {
        let n = self.rows.len();
        let mut w = vec![0.0f32; self.e * n];
        for (i, ks) in entries.iter().enumerate() {
            for &k in ks {
                w[i * n + k] = 1.0 / ks.len() as f32;
            }
        }
        Tensor::<2>::from_data(TensorData::new(w, [self.e, n]), device)
    }

    /// −log Σ_v exp(log p_τ(v)) per example, with log p_τ(v) the sum over the variant's tokens;
    /// shifted by each example's largest log-probability (a constant, so the gradient is exact).
    fn variant_loss(&self, v: &[Vec<Vec<usize>>], nll_tau: Tensor<2>, device: &burn::tensor::Device) -> Tensor<1> {
        let n = self.rows.len();
        let p: usize = v.iter().map(Vec::len).sum();
        let (mut w_sum, mut w_ex) = (vec![0.0f32; p * n], vec![0.0f32; self.e * p]);
        let mut k = 0;
        for (i, variants) in v.iter().enumerate() {
            for entries in variants {
                entries.iter().for_each(|&j| w_sum[k * n + j] = 1.0);
                w_ex[i * p + k] = 1.0;
                k += 1;
            }
        }
        let w_sum = Tensor::<2>::from_data(TensorData::new(w_sum, [p, n]), device);
        let log_p = w_sum.matmul(nll_tau).neg(); // [p, 1]
        let values = download(log_p.clone().detach().reshape([p]));
        let mut shift = vec![0.0f32; self.e];
        let mut shift_p = Vec::with_capacity(p);
        let mut k = 0;
        for (i, variants) in v.iter().enumerate() {
            shift[i] = values[k..k + variants.len()].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            shift_p.extend(std::iter::repeat_n(shift[i], variants.len()));
            k += variants.len();
        }
        let shift_p = Tensor::<2>::from_data(TensorData::new(shift_p, [p, 1]), device);
        let shift = Tensor::<2>::from_data(TensorData::new(shift, [self.e, 1]), device);
        let w_ex = Tensor::<2>::from_data(TensorData::new(w_ex, [self.e, p]), device);
        let summed = w_ex.matmul((log_p - shift_p).exp());
        (summed.log() + shift).neg().reshape([self.e])
    }
}

/// The forward of left-padded `ids` (`[rows, s]`) whose embedding at the 1s of `at` is
/// `replaced[row]` (`[rows, 1, h]`): a blend rather than a scatter, since positions differ per
/// row and a product with a constant 0/1 mask is cheap and differentiable on every backend.
///
/// With `detach_prefix`, the columns before the first replaced position run first as a plain
/// forward into a KV cache: nothing there depends on the one-hot, so the autodiff graph (and the
/// backward pass) starts at that column. The values are those of one forward over the whole
/// sequence up to float rounding (a cached continuation, as in decoding).
fn blended_forward(
    model: &dyn CausalLm,
    ids: &[i64],
    valid: &[Vec<bool>],
    at: &[f32],
    replaced: Tensor<3>,
    cache: &mut KvCache,
    detach_prefix: bool,
) -> Tensor<3> {
    let (rows, s) = (valid.len(), valid[0].len());
    let first = (0..s).find(|&j| (0..rows).any(|r| at[r * s + j] != 0.0)).unwrap_or(s);
    if !detach_prefix || first == 0 || first == s {
        return blended_columns(model, ids, valid, at, replaced, cache, 0..s);
    }
    let mut local = KvCache::new(rows, s);
    let cache = if cache.capacity() == 0 { &mut local } else { cache };
    let device = model.device();
    let (head, head_valid) = columns(ids, valid, 0..first);
    let all_valid = head_valid.iter().all(|r| r.iter().all(|&v| v));
    let embeds = model.embed(Tensor::<2, Int>::from_data(TensorData::new(head, [rows, first]), device));
    let prefix = model.forward_hidden(embeds, (!all_valid).then_some(&head_valid[..]), cache);
    let rest = blended_columns(model, ids, valid, at, replaced, cache, first..s);
    Tensor::cat(vec![prefix, rest], 1)
}

/// The ids (`[rows, s]`, flat) and validity of the columns `cols` of every row.
fn columns(ids: &[i64], valid: &[Vec<bool>], cols: std::ops::Range<usize>) -> (Vec<i64>, Vec<Vec<bool>>) {
    let s = valid[0].len();
    let picked = (0..valid.len()).flat_map(|r| ids[r * s + cols.start..r * s + cols.end].iter().copied()).collect();
    (picked, valid.iter().map(|v| v[cols.clone()].to_vec()).collect())
}

/// [`blended_forward`] over the columns `cols` of every row, continuing `cache`.
fn blended_columns(
    model: &dyn CausalLm,
    ids: &[i64],
    valid: &[Vec<bool>],
    at: &[f32],
    replaced: Tensor<3>,
    cache: &mut KvCache,
    cols: std::ops::Range<usize>,
) -> Tensor<3> {
    let (rows, s, n) = (valid.len(), valid[0].len(), cols.len());
    let device = model.device();
    let (picked, valid) = columns(ids, valid, cols.clone());
    let at: Vec<f32> = (0..rows).flat_map(|r| at[r * s + cols.start..r * s + cols.end].to_vec()).collect();
    let base = model.embed(Tensor::<2, Int>::from_data(TensorData::new(picked, [rows, n]), device));
    let at = Tensor::<3>::from_data(TensorData::new(at, [rows, n, 1]), device);
    let keep = at.clone().neg() + 1.0;
    let embeds = base * keep + at * replaced;
    let all_valid = valid.iter().all(|r| r.iter().all(|&v| v));
    model.forward_hidden(embeds, (!all_valid).then_some(&valid[..]), cache)
}

impl SharedPrefix {
    /// Prefixes of `examples` (their rows' ids before the answer, equal for all rows of one
    /// example) and every row's answer tokens.
    fn new(examples: &[GradExample<'_>], rows: &[Row]) -> Self {
        let prefixes: Vec<Vec<u32>> =
            examples.iter().map(|ex| ex.seq.ids[..ex.seq.range(Part::Answer).start].to_vec()).collect();
        let (ids, valid) = left_pad(&prefixes);
        let s_p = valid[0].len();
        let mut at = vec![0.0; examples.len() * s_p];
        for (i, ex) in examples.iter().enumerate() {
            let pad = s_p - prefixes[i].len();
            at[i * s_p + pad + ex.seq.range(Part::Control).start + ex.position] = 1.0;
        }
        let s_s = rows.iter().map(|r| r.ids.len() - r.answer_start).max().unwrap_or(1).max(1);
        let (mut suffix, mut suffix_valid) = (Vec::with_capacity(rows.len() * s_s), Vec::with_capacity(rows.len()));
        for r in rows {
            let answer = &r.ids[r.answer_start..];
            suffix.extend(answer.iter().map(|&t| t as i64).chain(std::iter::repeat_n(0, s_s - answer.len())));
            suffix_valid.push((0..s_s).map(|k| k < answer.len()).collect());
        }
        Self { ids, valid, at, s_p, suffix, suffix_valid, s_s }
    }
}

impl Forward {
    /// Loss values and mistake flags on the host.
    pub fn read(self, batch: &Batch) -> Losses {
        let argmax: Vec<i64> = self.logits.argmax(1).try_into_vec_as::<i64>().expect("reading argmax");
        let wrong = |entries: &[usize]| entries.iter().any(|&k| argmax[k] != batch.targets[k]);
        let mistake: Vec<bool> = batch.answer_entries.iter().map(|a| wrong(a)).collect();
        let mistake_variants = match &batch.variant_entries {
            None => mistake.clone(),
            Some(v) => v.iter().map(|variants| variants.iter().all(|entries| wrong(entries))).collect(),
        };
        let nll = download(self.nll_tau.reshape([batch.rows.len()]));
        let answer_token_nll = batch.answer_entries.iter().map(|a| a.iter().map(|&k| nll[k]).collect()).collect();
        Losses {
            answer_token_nll,
            answer: download(self.loss_answer.detach()),
            control: download(self.loss_control.detach()),
            total: download(self.loss_total.detach()),
            mistake,
            mistake_variants,
        }
    }
}

/// Check one example and return the index of its current token among the candidates.
fn check_example(i: usize, ex: &GradExample<'_>, candidates: &[u32]) -> Result<usize, GradError> {
    let seq = ex.seq;
    let control = seq.range(Part::Control);
    let answer = seq.range(Part::Answer);
    if ex.position >= control.len() {
        let reason = format!("prompt position {} outside a prompt of {} tokens", ex.position, control.len());
        return Err(GradError::BadExample { example: i, reason });
    }
    if answer.is_empty() || control.start == 0 {
        let reason = "empty answer, or a prompt at the very start".to_string();
        return Err(GradError::BadExample { example: i, reason });
    }
    let token = seq.ids[control.start + ex.position];
    candidates.iter().position(|&t| t == token).ok_or(GradError::CurrentNotCandidate {
        example: i,
        position: ex.position,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::TrainSequence;

    #[test]
    fn rows_per_example_counts_the_rows_the_batch_lays_out() {
        let seq = TrainSequence::join([&[1, 2][..], &[3, 4], &[5], &[6], &[7], &[8, 9]]);
        let official = seq.part(Part::Answer).to_vec();
        let variants: Vec<Vec<u32>> =
            vec![official.clone(), vec![8], vec![10], vec![8, 11], vec![12, 13], vec![12, 14]];
        let ex = [GradExample { seq: &seq, position: 0 }];
        let batch = Batch::new(&ex, &[3], Some(std::slice::from_ref(&variants))).unwrap();
        assert_eq!(rows_per_example(&official, &variants), batch.b);
        // [8, 9] serves every one-token variant and [8, 11]; [12, 13] needs a row, [12, 14] shares it.
        assert_eq!(batch.b, 2);
        assert_eq!(rows_per_example(&official, &[]), 1);
    }
}
