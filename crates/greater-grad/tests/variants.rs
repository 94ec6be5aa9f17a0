//! The answer loss over answer variants, on a tiny random model: it is −log Σ_v p_τ(v), its
//! gradient is exact, it reduces to the official loss for one single-token variant, and the
//! variant mistake flag accepts a variant the model prefers.

use greater_grad::{
    GradExample, GradOptions, Part, TrainSequence, losses_at_with_variants, token_gradients,
    token_gradients_with_variants,
};
use greater_models::arch::AnyModel;
use greater_models::config::{Family, ModelConfig};
use greater_models::loading::memory::MemoryWeights;

fn tiny() -> AnyModel {
    let config = ModelConfig::tiny(Family::Llama);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 3, 0.4, false);
    AnyModel::load(&config, &weights, &greater_models::default_device()).unwrap()
}

fn seq(answer: &[u32]) -> TrainSequence {
    TrainSequence::join([&[1, 2, 3], &[10, 11, 12, 13], &[7, 8], &[20, 21, 22], &[30, 31], answer])
}

const CANDIDATES: [u32; 4] = [12, 5, 50, 33];

fn official(model: &AnyModel, answer: &[u32], opts: &GradOptions) -> f32 {
    let s = seq(answer);
    token_gradients(model, &[GradExample { seq: &s, position: 2 }], &CANDIDATES, opts).unwrap().examples[0].loss_answer
}

#[test]
fn one_single_token_variant_is_the_official_loss() {
    let model = tiny();
    let opts = GradOptions::default();
    let s = seq(&[40]);
    let ex = [GradExample { seq: &s, position: 2 }];
    let a = token_gradients(&model, &ex, &CANDIDATES, &opts).unwrap();
    let b = token_gradients_with_variants(&model, &ex, &[vec![vec![40]]], &CANDIDATES, &opts).unwrap();
    assert!((a.examples[0].loss_total - b.examples[0].loss_total).abs() < 1e-5);
    for (x, y) in a.grad_sum.iter().zip(&b.grad_sum) {
        assert!((x - y).abs() < 1e-4 * x.abs().max(1.0), "{:?} vs {:?}", a.grad_sum, b.grad_sum);
    }
}

#[test]
fn variant_loss_is_minus_log_sum_of_variant_probabilities() {
    let model = tiny();
    let opts = GradOptions::default();
    let variants = vec![vec![40], vec![41, 42], vec![43], vec![41, 44, 45]];
    // Each variant alone: the official loss is the mean over its tokens, so the sum is mean · len.
    let log_p: Vec<f64> = variants.iter().map(|v| -(official(&model, v, &opts) as f64) * v.len() as f64).collect();
    let m = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let want = -(m + log_p.iter().map(|l| (l - m).exp()).sum::<f64>().ln());
    let s = seq(&variants[0]);
    let ex = [GradExample { seq: &s, position: 2 }];
    let got = token_gradients_with_variants(&model, &ex, std::slice::from_ref(&variants), &CANDIDATES, &opts).unwrap();
    let got = got.examples[0].loss_answer as f64;
    assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "{got} vs {want}");
    // More accepted spellings never make the loss larger.
    assert!(got <= official(&model, &variants[0], &opts) as f64 + 1e-5);
}

#[test]
fn variant_gradient_matches_finite_differences() {
    let model = tiny();
    let opts = GradOptions::default();
    let variants = vec![vec![vec![40], vec![41, 42]], vec![vec![44, 45], vec![46]]];
    let (a, b) = (seq(&[40]), seq(&[44, 45]));
    let ex = [GradExample { seq: &a, position: 1 }, GradExample { seq: &b, position: 3 }];
    let out = token_gradients_with_variants(&model, &ex, &variants, &CANDIDATES[..], &opts);
    // Example 1's current token (13) must be a candidate.
    assert!(out.is_err());
    let cands = [11u32, 13, 5, 50];
    let out = token_gradients_with_variants(&model, &ex, &variants, &cands, &opts).unwrap();
    let base: Vec<Vec<f32>> = vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]];
    let eps = 1e-2f32;
    for e in 0..2 {
        for c in 0..cands.len() {
            let mut plus = base.clone();
            let mut minus = base.clone();
            plus[e][c] += eps;
            minus[e][c] -= eps;
            let total = |w: &[Vec<f32>]| -> f32 {
                losses_at_with_variants(&model, &ex, &cands, w, Some(&variants), &opts)
                    .unwrap()
                    .iter()
                    .map(|l| l.2)
                    .sum()
            };
            let fd = (total(&plus) - total(&minus)) / (2.0 * eps);
            let g = out.examples[e].grad_total[c];
            assert!((fd - g).abs() <= 2e-2 * fd.abs().max(g.abs()).max(1.0), "example {e} candidate {c}: {fd} vs {g}");
        }
    }
}

#[test]
fn a_preferred_variant_is_no_mistake() {
    let model = tiny();
    let opts = GradOptions::default();
    // Find the model's argmax answer token after this context, then make the official target
    // another token and offer the argmax as a variant.
    let probe = seq(&[40]);
    let ex = [GradExample { seq: &probe, position: 0 }];
    let mut best = (f32::INFINITY, 0u32);
    for t in 4..64u32 {
        let l = token_gradients_with_variants(&model, &ex, &[vec![vec![t]]], &[10], &opts).unwrap();
        if l.examples[0].loss_answer < best.0 {
            best = (l.examples[0].loss_answer, t);
        }
    }
    let preferred = best.1;
    let other = if preferred == 40 { 41 } else { 40 };
    let s = seq(&[other]);
    let ex = [GradExample { seq: &s, position: 0 }];
    let out = token_gradients_with_variants(&model, &ex, &[vec![vec![other], vec![preferred]]], &[10], &opts).unwrap();
    let e = &out.examples[0];
    assert!(e.mistake, "the official target is not the argmax");
    assert!(!e.mistake_variants, "the preferred variant is the argmax");
    assert!(e.loss_answer < official(&model, &[other], &opts));
}

/// The answer token the model prefers after `answer`'s first `at` tokens (lowest per-token NLL).
fn argmax_at(model: &AnyModel, answer: &[u32], at: usize, opts: &GradOptions) -> u32 {
    let mut best = (f32::INFINITY, 0u32);
    for t in 0..64u32 {
        let mut a = answer.to_vec();
        a[at] = t;
        let s = seq(&a);
        let out = token_gradients(model, &[GradExample { seq: &s, position: 2 }], &CANDIDATES, opts).unwrap();
        let nll = out.examples[0].answer_token_nll[at];
        if nll < best.0 {
            best = (nll, t);
        }
    }
    best.1
}

#[test]
fn a_mistake_is_any_answer_token_off_the_argmax() {
    // SPEC C.5: the teacher-forced flag is set when any official answer token is not the argmax.
    let model = tiny();
    let opts = GradOptions::default();
    let first = argmax_at(&model, &[0, 0], 0, &opts);
    let second = argmax_at(&model, &[first, 0], 1, &opts);
    let other = |t: u32| if t == 40 { 41 } else { 40 };
    let flag = |answer: &[u32]| {
        let s = seq(answer);
        token_gradients(&model, &[GradExample { seq: &s, position: 2 }], &CANDIDATES, &opts).unwrap().examples[0]
            .mistake
    };
    assert!(!flag(&[first, second]), "both tokens are the argmax");
    assert!(flag(&[first, other(second)]), "the second token is off");
    assert!(flag(&[other(first), second]), "the first token is off");
}

#[test]
fn per_token_answer_losses_average_to_the_answer_loss() {
    let model = tiny();
    let opts = GradOptions::default();
    let (a, b) = (seq(&[40, 41, 42]), seq(&[43]));
    let ex = [GradExample { seq: &a, position: 2 }, GradExample { seq: &b, position: 2 }];
    let out = token_gradients(&model, &ex, &CANDIDATES, &opts).unwrap();
    for (e, len) in out.examples.iter().zip([3, 1]) {
        assert_eq!(e.answer_token_nll.len(), len);
        let mean = e.answer_token_nll.iter().sum::<f32>() / len as f32;
        assert!((mean - e.loss_answer).abs() < 1e-4 * e.loss_answer.max(1.0), "{e:?}");
        assert!(e.answer_token_nll.iter().all(|&x| x > 0.0));
    }
    // The tokens' losses differ: each is its own position's, not the mean repeated.
    let t = &out.examples[0].answer_token_nll;
    assert!(t[0] != t[1] || t[1] != t[2], "{t:?}");
}

#[test]
fn examples_of_unequal_length_with_extra_rows_equal_each_example_alone() {
    // Extra spelling rows continue from each example's prefix through the KV cache; prefixes of
    // unequal length are left-padded. Each example must come out as when it is alone.
    let model = tiny();
    let opts = GradOptions::default();
    let long = TrainSequence::join([&[1, 2, 3, 9, 9, 9, 9], &[10, 11, 12, 13], &[7, 8], &[20, 21], &[30, 31], &[40]]);
    let short = TrainSequence::join([&[1], &[10, 11, 12, 13], &[7], &[20, 21, 22, 23, 24], &[30], &[44, 45]]);
    let variants = vec![vec![vec![40], vec![41, 42], vec![43, 47, 48]], vec![vec![44, 45], vec![46, 49], vec![46]]];
    let ex = [GradExample { seq: &long, position: 2 }, GradExample { seq: &short, position: 1 }];
    let cands = [11u32, 12, 5, 50];
    let both = token_gradients_with_variants(&model, &ex, &variants, &cands, &opts).unwrap();
    for i in 0..2 {
        let alone = token_gradients_with_variants(&model, &ex[i..=i], &variants[i..=i], &cands, &opts).unwrap();
        let (a, b) = (&both.examples[i], &alone.examples[0]);
        assert!(
            (a.loss_total - b.loss_total).abs() < 1e-4 * b.loss_total.abs().max(1.0),
            "example {i}: {a:?} vs {b:?}"
        );
        for (x, y) in a.grad_total.iter().zip(&b.grad_total) {
            assert!((x - y).abs() < 1e-3 * y.abs().max(1.0), "example {i}: {:?} vs {:?}", a.grad_total, b.grad_total);
        }
        assert_eq!((a.mistake, a.mistake_variants), (b.mistake, b.mistake_variants));
    }
    // And alone, the variant loss is the closed form over separately scored spellings.
    let log_p: Vec<f64> = variants[1]
        .iter()
        .map(|v| {
            let p = |part| short.part(part);
            let s = TrainSequence::join([
                p(Part::Prefix),
                p(Part::Control),
                p(Part::Suffix),
                p(Part::Reasoning),
                p(Part::Extractor),
                v,
            ]);
            let l = token_gradients(&model, &[GradExample { seq: &s, position: 1 }], &cands, &opts).unwrap();
            -(l.examples[0].loss_answer as f64) * v.len() as f64
        })
        .collect();
    let m = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let want = -(m + log_p.iter().map(|l| (l - m).exp()).sum::<f64>().ln());
    let got = both.examples[1].loss_answer as f64;
    assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "{got} vs {want}");
}
