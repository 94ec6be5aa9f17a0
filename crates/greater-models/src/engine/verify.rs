//! A verification forward: how many tokens each row feeds (the width worth its cost) and the
//! forward itself, reading the logits of every fed token that counts.

use burn::tensor::{Int, Tensor, TensorData};

use crate::arch::CausalLm;
use crate::cache::KvCache;
use crate::layers::download;

/// A forward's cost that does not grow with the tokens it feeds (reading the weights), in fed
/// tokens per row. `greater bench models --verify-batch 10` times it: on the 2-core AMD EPYC of
/// benches/README.md, over 400 cached tokens, with the 3 × 4-tile few-rows kernel, Qwen2.5-0.5B
/// takes 133 / 217 / 311 / 408 ms to feed 1 / 2 / 3 / 4 tokens per row (fixed part about 0.6 over
/// those widths; wider forwards run on gemm and flatten the fit to 0.9–1.4). Measured side by side
/// (session 27): a Qwen evaluation drafted from another prompt's reasoning took 50.9 s at 1.5,
/// 47.7 s at 0.6, 45.7 s at 0.3 and 45.9 s without a draft; selection was level (62.1 / 39.5 s per
/// step at 0.6, 63.9 / 39.2 s at 1.5). It was 3.8 before the few-rows kernel, 1.5 before its
/// 3-row tiles.
const FIXED_COST: f64 = 0.6;

/// Tokens fed per row: the verification width with the most expected tokens per unit of cost.
/// Row `r` expects `1 + Σ_j p_r^j` tokens from `j` draft tokens (`p_r` its hit rate), and a
/// forward of width `w` costs `FIXED_COST + w` — padding included, so a few rows with long
/// drafts do not make every other row pay for them.
pub(super) fn width(proposals: &[Vec<u32>], rates: &[f64]) -> usize {
    let longest = proposals.iter().map(Vec::len).max().unwrap_or(0);
    let mut best = (1, f64::MIN);
    for w in 1..=longest + 1 {
        let expected: f64 = proposals
            .iter()
            .zip(rates)
            .map(|(p, &rate)| 1.0 + (1..=p.len().min(w - 1)).map(|j| rate.powi(j as i32)).sum::<f64>())
            .sum();
        let per_cost = expected / (FIXED_COST + w as f64);
        if per_cost > best.1 {
            best = (w, per_cost);
        }
    }
    best.0
}

/// One forward of `ids` (`[batch · w]`, `valid` per token) through `cache`; the host logits of
/// the first `counts[r]` tokens of every row, rows one after another.
pub(super) fn forward_rows(
    model: &dyn CausalLm,
    ids: Vec<i64>,
    valid: &[Vec<bool>],
    counts: &[usize],
    cache: &mut KvCache,
) -> Vec<f32> {
    let (b, w) = (valid.len(), valid[0].len());
    let device = model.device();
    let v = model.config().vocab_size;
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, w]), device);
    let all_valid = valid.iter().all(|r| r.iter().all(|&x| x));
    let hidden = model.forward_hidden(model.embed(x), (!all_valid).then_some(valid), cache);
    if all_valid {
        // Every token is read: the plain decode path when `w` is 1.
        return download(model.lm_head(hidden).reshape([b * w, v]));
    }
    let h = hidden.dims()[2];
    let picked: Vec<i64> =
        counts.iter().enumerate().flat_map(|(r, &c)| (0..c).map(move |i| (r * w + i) as i64)).collect();
    let n = picked.len();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(picked, [n]), device);
    download(model.lm_head(hidden.reshape([b * w, h]).select(0, idx).reshape([1, n, h])).reshape([n, v]))
}

#[cfg(test)]
mod tests {
    use super::width;

    #[test]
    fn width_follows_what_the_drafts_are_worth() {
        // No drafts: plain decoding.
        assert_eq!(width(&[vec![], vec![]], &[0.8, 0.8]), 1);
        // Every row has a long draft it gets right: verify all of it.
        assert_eq!(width(&[vec![1; 8], vec![1; 8]], &[0.99, 0.99]), 9);
        // Drafts that are usually wrong are not worth feeding.
        assert_eq!(width(&[vec![1; 8], vec![1; 8]], &[0.1, 0.1]), 1);
        // At an 80 % hit rate, the measured fixed cost (0.6 tokens) makes 2 tokens per row the
        // best width; 1.5 made it 3, 3.8 made it 5.
        assert_eq!(width(&[vec![1; 8], vec![1; 8]], &[0.8, 0.8]), 2);
        // One good draft among many rows without one: not worth the others' padding.
        let mut rows = vec![vec![]; 9];
        rows.push(vec![1; 8]);
        assert_eq!(width(&rows, &[0.9; 10]), 1);
    }
}
