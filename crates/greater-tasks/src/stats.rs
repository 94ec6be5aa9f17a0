//! Statistics for reports: accuracy with a 95% Wilson interval, and the paired comparison of two prompts on
//! the same examples with an exact two-sided McNemar (binomial) test.

use serde::{Deserialize, Serialize};

use crate::answer::AnswerScore;
use crate::error::TaskError;

/// The 0.975 quantile of the standard normal distribution (two-sided 95%).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Accuracy on a set of examples, with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Correct answers.
    pub correct: usize,
    /// Examples scored.
    pub total: usize,
    /// `correct / total` (0 when `total` is 0).
    pub accuracy: f64,
    /// Lower end of the 95% Wilson interval.
    pub ci_low: f64,
    /// Upper end of the 95% Wilson interval.
    pub ci_high: f64,
}

impl Accuracy {
    /// Accuracy of `correct` out of `total`.
    pub fn new(correct: usize, total: usize) -> Self {
        let (ci_low, ci_high) = wilson_interval(correct, total, Z_95);
        let accuracy = if total == 0 { 0.0 } else { correct as f64 / total as f64 };
        Self { correct, total, accuracy, ci_low, ci_high }
    }

    /// Accuracy of per-example results.
    pub fn from_results(results: &[bool]) -> Self {
        Self::new(results.iter().filter(|&&r| r).count(), results.len())
    }
}

/// Wilson score interval for `correct` successes out of `total` at normal quantile `z`; `(0, 1)` for no data.
///
/// With p̂ = correct/total and n = total: centre (p̂ + z²/2n) / (1 + z²/n), half-width
/// z·√(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n).
pub fn wilson_interval(correct: usize, total: usize, z: f64) -> (f64, f64) {
    if total == 0 {
        return (0.0, 1.0);
    }
    let n = total as f64;
    let p = correct as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Exact two-sided McNemar p-value for `b` and `c` discordant pairs: under H0 the b+c discordant pairs split as
/// Binomial(b+c, ½), and p = min(1, 2·P[X ≤ min(b, c)]). 1 when there is no discordant pair.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // Sum C(n, i) / 2^n for i ≤ min(b, c) in log space: 2^-n underflows for n > 1074.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0;
    let mut terms = Vec::with_capacity(b.min(c) + 1);
    for i in 0..=b.min(c) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_choose + ln_half_n);
    }
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * terms.iter().map(|t| (t - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// Two prompts scored on the same examples, in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Accuracy of the first prompt (e.g. the initial one).
    pub first: Accuracy,
    /// Accuracy of the second prompt (e.g. the optimised one).
    pub second: Accuracy,
    /// McNemar's b: examples the first prompt gets right and the second wrong.
    pub b: usize,
    /// McNemar's c: examples the first prompt gets wrong and the second right.
    pub c: usize,
    /// `second.accuracy - first.accuracy`.
    pub difference: f64,
    /// Exact two-sided McNemar p-value ([`mcnemar_exact`]).
    pub p_value: f64,
}

impl PairedComparison {
    /// Compares per-example results of two prompts; the lists must have the same length.
    pub fn new(first: &[bool], second: &[bool]) -> Result<Self, TaskError> {
        if first.len() != second.len() {
            return Err(TaskError::LengthMismatch { left: first.len(), right: second.len() });
        }
        let b = first.iter().zip(second).filter(|&(&x, &y)| x && !y).count();
        let c = first.iter().zip(second).filter(|&(&x, &y)| !x && y).count();
        let (first, second) = (Accuracy::from_results(first), Accuracy::from_results(second));
        Ok(Self { first, second, b, c, difference: second.accuracy - first.accuracy, p_value: mcnemar_exact(b, c) })
    }
}

/// The scores of one prompt on one split (SPEC A6): exact, flexible, unparseable rate and constrained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    /// Greedy answer after the extractor, exact match after normalisation.
    pub exact: Accuracy,
    /// Last answer-like span of the reasoning.
    pub flexible: Accuracy,
    /// Greedy answers that fit no label of the answer kind.
    pub unparseable: usize,
    /// `unparseable / total`.
    pub unparseable_rate: f64,
    /// Highest-log-probability label after the extractor (closed label sets only).
    pub constrained: Option<Accuracy>,
}

impl ScoreSummary {
    /// Summarises per-example scores; `exact` and `flexible` (and `constrained`, if any) cover the same examples.
    pub fn new(exact: &[AnswerScore], flexible: &[AnswerScore], constrained: Option<&[bool]>) -> Self {
        let correct = |scores: &[AnswerScore]| scores.iter().map(|s| s.correct).collect::<Vec<_>>();
        let unparseable = exact.iter().filter(|s| s.prediction.is_none()).count();
        let unparseable_rate = if exact.is_empty() { 0.0 } else { unparseable as f64 / exact.len() as f64 };
        Self {
            exact: Accuracy::from_results(&correct(exact)),
            flexible: Accuracy::from_results(&correct(flexible)),
            unparseable,
            unparseable_rate,
            constrained: constrained.map(Accuracy::from_results),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_seven_of_ten_by_hand() {
        // p = 0.7, n = 10, z² = 3.841459; denominator 1 + z²/n = 1.3841459;
        // centre = (0.7 + z²/20) / 1.3841459 = 0.8920729 / 1.3841459 = 0.6444934;
        // half = z · √(0.021 + z²/400) / 1.3841459 = 1.959964 · √0.0306036 / 1.3841459 = 0.2477153;
        // interval = (0.396778, 0.892209) — the textbook Wilson interval for 7/10.
        let (low, high) = wilson_interval(7, 10, Z_95);
        assert!(close(low, 0.396778, 1e-6) && close(high, 0.892209, 1e-6), "({low}, {high})");
        let a = Accuracy::new(7, 10);
        assert_eq!((a.correct, a.total, a.accuracy), (7, 10, 0.7));
    }

    #[test]
    fn wilson_edges() {
        // 0 of 4: centre = (z²/8)/(1 + z²/4) = 0.480182/1.960365 = 0.244945 = half, so the interval is (0, 0.489891).
        let (low, high) = wilson_interval(0, 4, Z_95);
        assert!(close(low, 0.0, 1e-12) && close(high, 0.489891, 2e-6), "({low}, {high})");
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
        let (low, high) = wilson_interval(4, 4, Z_95);
        assert!(close(low, 1.0 - 0.489891, 2e-6) && close(high, 1.0, 1e-12), "({low}, {high})");
    }

    #[test]
    fn mcnemar_exact_by_hand() {
        // b = 1, c = 7: 2 · (C(8,0) + C(8,1)) / 2^8 = 2 · 9 / 256.
        assert!(close(mcnemar_exact(1, 7), 18.0 / 256.0, 1e-12));
        assert!(close(mcnemar_exact(7, 1), 18.0 / 256.0, 1e-12));
        // b = 0, c = 10: 2 / 1024.
        assert!(close(mcnemar_exact(0, 10), 2.0 / 1024.0, 1e-12));
        // b = 2, c = 3: 2 · (1 + 5 + 10) / 32 = 1.
        assert!(close(mcnemar_exact(2, 3), 1.0, 1e-12));
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large n stays finite: b = 0, c = 1100 underflows to 0, no NaN.
        let p = mcnemar_exact(600, 700);
        assert!(p > 0.0 && p < 0.01, "{p}");
        assert_eq!(mcnemar_exact(0, 1100), 0.0);
    }

    #[test]
    fn paired_counts_discordant_pairs() {
        let first = [true, true, false, false, true];
        let second = [true, false, true, true, true];
        let cmp = PairedComparison::new(&first, &second).unwrap();
        assert_eq!((cmp.b, cmp.c), (1, 2));
        assert!(close(cmp.difference, 0.2, 1e-12));
        // b + c = 3: 2 · (C(3,0) + C(3,1)) / 8 = 1.
        assert_eq!(cmp.p_value, 1.0);
        let err = PairedComparison::new(&first, &second[..4]).unwrap_err();
        assert!(err.to_string().contains("5 results against 4"), "{err}");
    }

    #[test]
    fn summary_counts_unparseable_and_serialises() {
        let s = |prediction: Option<&str>, correct| AnswerScore { prediction: prediction.map(String::from), correct };
        let exact = [s(Some("A"), true), s(None, false), s(Some("B"), false), s(None, false)];
        let flexible = [s(Some("A"), true), s(Some("C"), true), s(None, false), s(None, false)];
        let summary = ScoreSummary::new(&exact, &flexible, Some(&[true, true, true, false]));
        assert_eq!((summary.exact.correct, summary.flexible.correct, summary.unparseable), (1, 2, 2));
        assert_eq!(summary.unparseable_rate, 0.5);
        assert_eq!(summary.constrained.unwrap().correct, 3);
        let json = serde_json::to_string(&summary).unwrap();
        assert!(json.contains("\"unparseable\":2"), "{json}");
        let back: ScoreSummary = serde_json::from_str(&json).unwrap();
        assert_eq!((back.exact.correct, back.unparseable), (1, 2));
        assert!(close(back.flexible.ci_high, summary.flexible.ci_high, 1e-12));
    }
}
