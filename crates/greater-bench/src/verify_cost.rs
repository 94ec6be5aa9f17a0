//! What one draft-verification forward costs by the tokens it feeds per row: the measurement
//! behind the engine's width rule (`greater_models::engine`'s `FIXED_COST`). A batch of prompts
//! is prefilled once; then `w` tokens per row are fed through that cache and read back through
//! the output head, as the engine's verification does, for `w` = 1, 2, …, and the cache is rolled
//! back after each forward.

use anyhow::Result;
use burn::tensor::{Int, Tensor, TensorData};
use greater_models::KvCache;
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::generate::try_prefill;

use crate::machine;

/// `greater bench models --verify-batch`: the seconds of one verification forward by width.
#[derive(Debug, serde::Serialize)]
pub struct VerifyCost {
    /// Rows per forward.
    pub batch: usize,
    /// Tokens cached per row before each forward.
    pub cached: usize,
    /// One entry per width, 1 upwards.
    pub widths: Vec<WidthCost>,
    /// The least-squares fit `seconds ≈ per_token · (fixed_cost + w)`: the fixed part of a forward
    /// in tokens per row, the engine's `FIXED_COST`.
    pub fixed_cost: f64,
    /// Seconds per fed token per row, from the same fit.
    pub per_token_s: f64,
}

/// One width's timing.
#[derive(Debug, serde::Serialize)]
pub struct WidthCost {
    /// Tokens fed per row.
    pub tokens_per_row: usize,
    /// Every timed run, seconds.
    pub runs_s: Vec<f64>,
    /// Median seconds.
    pub median_s: f64,
}

/// Time verification forwards of `prompts` (one row each, equal lengths) over their prefilled
/// cache, feeding 1 to `max_width` tokens per row, `runs` timed runs each after one warm-up.
pub fn measure(model: &AnyModel, prompts: &[Vec<u32>], max_width: usize, runs: usize) -> Result<VerifyCost> {
    let (b, cached) = (prompts.len(), prompts[0].len());
    let device = model.device();
    let mut cache = KvCache::new(b, cached + max_width);
    drop(try_prefill(model, prompts, &mut cache)?);
    let mut widths = Vec::new();
    for w in 1..=max_width {
        let ids: Vec<i64> = prompts.iter().flat_map(|p| p[..w].iter().map(|&t| i64::from(t))).collect();
        let runs_s = machine::time_runs(1, runs, || {
            let x = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [b, w]), device);
            let hidden = model.forward_hidden(model.embed(x), None, &mut cache);
            let logits = model.lm_head(hidden);
            drop(logits.into_data());
            cache.truncate(cached);
        });
        let median_s = machine::median_s(&runs_s);
        widths.push(WidthCost { tokens_per_row: w, runs_s, median_s });
    }
    let (fixed_cost, per_token_s) = fit(&widths);
    Ok(VerifyCost { batch: b, cached, widths, fixed_cost, per_token_s })
}

/// Least squares of `median_s = α + β · w`; returns `(α / β, β)`.
fn fit(widths: &[WidthCost]) -> (f64, f64) {
    let n = widths.len() as f64;
    let mx = widths.iter().map(|c| c.tokens_per_row as f64).sum::<f64>() / n;
    let my = widths.iter().map(|c| c.median_s).sum::<f64>() / n;
    let sxy: f64 = widths.iter().map(|c| (c.tokens_per_row as f64 - mx) * (c.median_s - my)).sum();
    let sxx: f64 = widths.iter().map(|c| (c.tokens_per_row as f64 - mx).powi(2)).sum();
    let beta = sxy / sxx;
    ((my - beta * mx) / beta, beta)
}

/// Print the table.
pub fn print(v: &VerifyCost) {
    println!("  verification forward at batch {} over {} cached tokens:", v.batch, v.cached);
    for c in &v.widths {
        let model = v.per_token_s * (v.fixed_cost + c.tokens_per_row as f64);
        println!("    {} per row: {:8.1} ms   (fit {:8.1} ms)", c.tokens_per_row, c.median_s * 1e3, model * 1e3);
    }
    println!(
        "    fit: a forward costs {:.1} ms per fed token per row, fixed part {:.2} tokens",
        v.per_token_s * 1e3,
        v.fixed_cost
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_recovers_a_linear_cost() {
        let widths: Vec<WidthCost> = (1..=9)
            .map(|w| WidthCost { tokens_per_row: w, runs_s: vec![], median_s: 0.05 * (3.0 + w as f64) })
            .collect();
        let (fixed, per) = fit(&widths);
        assert!((fixed - 3.0).abs() < 1e-9 && (per - 0.05).abs() < 1e-12, "{fixed} {per}");
    }
}
