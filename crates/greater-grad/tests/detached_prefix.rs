//! The detached prefix (the columns before a batch's first prompt position run as a plain cached
//! forward, the autodiff graph starts there) gives the gradients, losses and mistake flags of one
//! tracked forward over whole sequences, for every family, padded batches whose prompt positions
//! sit in different columns, and answer variants (the shared-prefix layout).

use greater_grad::{
    GradExample, GradOptions, GradOutput, TrainSequence, token_gradients, token_gradients_with_variants,
};
use greater_models::arch::AnyModel;
use greater_models::config::{Family, ModelConfig};
use greater_models::loading::memory::MemoryWeights;

fn tiny(family: Family) -> AnyModel {
    let config = ModelConfig::tiny(family);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 5, 0.4, false);
    AnyModel::load(&config, &weights, &greater_models::default_device()).unwrap()
}

/// Three rows: prefixes of 6, 2 and 9 tokens, so the prompt position lands in a different column
/// of the left-padded batch in each, and reasoning of different lengths.
fn sequences() -> Vec<TrainSequence> {
    let row = |prefix: &[u32], reasoning: &[u32], answer: &[u32]| {
        TrainSequence::join([prefix, &[10, 11, 12, 13], &[7, 8], reasoning, &[30, 31, 32], answer])
    };
    vec![
        row(&[1, 2, 3, 4, 5, 6], &[20, 21, 22, 23], &[40]),
        row(&[9, 2], &[24, 25, 26, 27, 28, 29, 33], &[41, 42]),
        row(&[3, 1, 4, 1, 5, 9, 2, 6, 5], &[20, 22], &[43]),
    ]
}

fn assert_same(a: &GradOutput, b: &GradOutput, what: &str) {
    for (i, (x, y)) in a.examples.iter().zip(&b.examples).enumerate() {
        assert!(
            (x.loss_total - y.loss_total).abs() < 1e-5 * x.loss_total.abs().max(1.0),
            "{what} example {i}: {} vs {}",
            x.loss_total,
            y.loss_total
        );
        assert!(
            (x.loss_control - y.loss_control).abs() < 1e-5 * x.loss_control.abs().max(1.0),
            "{what} example {i}: control loss"
        );
        for (p, q) in x.grad_total.iter().zip(&y.grad_total) {
            assert!(
                (p - q).abs() < 1e-4 * p.abs().max(1.0),
                "{what} example {i}: {:?} vs {:?}",
                x.grad_total,
                y.grad_total
            );
        }
        assert_eq!((x.mistake, x.mistake_variants), (y.mistake, y.mistake_variants), "{what} example {i}");
    }
}

#[test]
fn the_detached_prefix_gives_the_whole_forward_gradient() {
    let seqs = sequences();
    let plain = GradOptions { detach_prefix: false, ..GradOptions::default() };
    let detached = GradOptions::default();
    assert!(detached.detach_prefix, "the detached prefix is the default");
    for family in [Family::Llama, Family::Qwen2, Family::Gemma2, Family::Gemma3] {
        let model = tiny(family);
        // Every row has its own prefix length, so the position's column differs per row.
        for (position, current) in [(0, 10), (2, 12), (3, 13)] {
            let ex: Vec<GradExample<'_>> = seqs.iter().map(|seq| GradExample { seq, position }).collect();
            let candidates = [current, 5, 50, 33, 9];
            let a = token_gradients(&model, &ex, &candidates, &plain).unwrap();
            let b = token_gradients(&model, &ex, &candidates, &detached).unwrap();
            assert_same(&a, &b, &format!("{family:?} position {position}"));
            let variants = vec![vec![vec![40], vec![44, 45]], vec![vec![41, 42]], vec![vec![43], vec![46]]];
            let a = token_gradients_with_variants(&model, &ex, &variants, &candidates, &plain).unwrap();
            let b = token_gradients_with_variants(&model, &ex, &variants, &candidates, &detached).unwrap();
            assert_same(&a, &b, &format!("{family:?} position {position} with variants"));
        }
    }
}
