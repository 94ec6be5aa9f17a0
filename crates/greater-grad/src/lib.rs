//! `greater-grad`: the differentiable half of GReaTer.
//!
//! Given a model, sequences laid out as *user turn (with the prompt) · reasoning · extractor ·
//! answer* ([`sequence`]), a prompt position and a candidate set, [`gradient`] returns the
//! gradient of the answer loss (taken through the fixed reasoning tokens) with respect to a
//! one-hot over the candidates. The model runs on burn's autodiff device; its weights stay on the
//! plain device and are never tracked: only the one-hot requires a gradient. No file I/O here.

mod batch;
pub mod gradient;
pub mod sequence;

pub use batch::rows_per_example;
pub use gradient::{
    ExampleGrad, GradError, GradExample, GradOptions, GradOutput, SequenceScore, losses_at, losses_at_with_variants,
    score_sequences, token_gradients, token_gradients_with_variants,
};
pub use sequence::{Part, TrainSequence};
