//! On a tiny random model, the one-hot gradient equals central finite differences of the loss,
//! and a padded batch gives each example the gradient it gets alone.

use greater_grad::{GradExample, GradOptions, Part, TrainSequence, losses_at, token_gradients};
use greater_models::arch::AnyModel;
use greater_models::config::{Family, ModelConfig};
use greater_models::loading::memory::MemoryWeights;

fn tiny(family: Family) -> AnyModel {
    let config = ModelConfig::tiny(family);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 11, 0.4, false);
    AnyModel::load(&config, &weights, &greater_models::default_device()).unwrap()
}

fn seq(prefix: &[u32], control: &[u32], reasoning: &[u32], answer: &[u32]) -> TrainSequence {
    TrainSequence::join([prefix, control, &[7, 8], reasoning, &[30, 31, 32], answer])
}

#[test]
fn gradient_matches_central_finite_differences() {
    let model = tiny(Family::Llama);
    let s = seq(&[1, 2, 3], &[10, 11, 12, 13], &[20, 21, 22, 23, 24], &[40, 41]);
    let candidates = [12u32, 5, 50, 33, 9];
    let opts = GradOptions::default();
    let ex = [GradExample { seq: &s, position: 2 }];
    let out = token_gradients(&model, &ex, &candidates, &opts).unwrap();
    let g = &out.examples[0].grad_total;
    // The one-hot forward is the plain forward: the loss at e_0 is the reported loss.
    let base = [1.0, 0.0, 0.0, 0.0, 0.0];
    let l0 = losses_at(&model, &ex, &candidates, &[base.to_vec()], &opts).unwrap()[0];
    assert!((l0.2 - out.examples[0].loss_total).abs() < 1e-4, "{l0:?} vs {:?}", out.examples[0]);
    let eps = 1e-2f32;
    for c in 0..candidates.len() {
        let mut plus = base.to_vec();
        let mut minus = base.to_vec();
        plus[c] += eps;
        minus[c] -= eps;
        let lp = losses_at(&model, &ex, &candidates, &[plus], &opts).unwrap()[0].2;
        let lm = losses_at(&model, &ex, &candidates, &[minus], &opts).unwrap()[0].2;
        let fd = (lp - lm) / (2.0 * eps);
        let tol = 2e-2 * fd.abs().max(g[c].abs()).max(1.0);
        assert!((fd - g[c]).abs() <= tol, "candidate {c}: finite difference {fd} vs gradient {}", g[c]);
    }
}

#[test]
fn batched_gradients_equal_single_example_gradients() {
    let model = tiny(Family::Qwen2);
    let a = seq(&[1, 2, 3, 4, 5], &[10, 11, 12], &[20, 21, 22], &[40]);
    let b = seq(&[6], &[10, 11, 12], &[25, 26, 27, 28, 29, 30, 31], &[41, 42]);
    let candidates = [11u32, 3, 44, 60];
    let opts = GradOptions::default();
    let both = [GradExample { seq: &a, position: 1 }, GradExample { seq: &b, position: 1 }];
    let batched = token_gradients(&model, &both, &candidates, &opts).unwrap();
    for (i, ex) in both.iter().enumerate() {
        let single = token_gradients(&model, std::slice::from_ref(ex), &candidates, &opts).unwrap();
        let (x, y) = (&batched.examples[i], &single.examples[0]);
        assert!((x.loss_total - y.loss_total).abs() < 1e-4, "example {i}: {} vs {}", x.loss_total, y.loss_total);
        for (p, q) in x.grad_total.iter().zip(&y.grad_total) {
            assert!((p - q).abs() < 1e-4 * p.abs().max(1.0), "example {i}: {:?} vs {:?}", x.grad_total, y.grad_total);
        }
        assert_eq!(x.mistake, y.mistake);
    }
    for c in 0..candidates.len() {
        let sum = batched.examples[0].grad_total[c] + batched.examples[1].grad_total[c];
        assert!((batched.grad_sum[c] - sum).abs() < 1e-5);
    }
}

#[test]
fn current_token_must_be_a_candidate() {
    let model = tiny(Family::Llama);
    let s = seq(&[1, 2], &[10, 11], &[20], &[40]);
    let err =
        token_gradients(&model, &[GradExample { seq: &s, position: 0 }], &[3, 4], &GradOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not among the candidates"), "{err}");
    assert_eq!(s.range(Part::Control), 2..4);
}

#[test]
fn gradient_checkpointing_changes_no_value() {
    for family in [Family::Llama, Family::Gemma3] {
        let model = tiny(family);
        let a = seq(&[1, 2, 3, 4, 5], &[10, 11, 12], &[20, 21, 22], &[40]);
        let b = seq(&[6], &[10, 11, 12], &[25, 26, 27, 28, 29, 30, 31], &[41, 42]);
        let candidates = [11u32, 3, 44, 60];
        let both = [GradExample { seq: &a, position: 1 }, GradExample { seq: &b, position: 1 }];
        let plain = token_gradients(&model, &both, &candidates, &GradOptions::default()).unwrap();
        let opts = GradOptions { checkpointing: true, ..GradOptions::default() };
        let checkpointed = token_gradients(&model, &both, &candidates, &opts).unwrap();
        for (x, y) in plain.examples.iter().zip(&checkpointed.examples) {
            assert!((x.loss_total - y.loss_total).abs() <= 1e-6, "{family:?}: {x:?} vs {y:?}");
            for (p, q) in x.grad_total.iter().zip(&y.grad_total) {
                assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{family:?}: {x:?} vs {y:?}");
            }
        }
    }
}
