//! A run's memory prediction counts what its config asks for: answer variants add gradient rows,
//! each only its answer tokens long (they continue from the example's prefix).

use std::path::Path;

use greater_models::config::Family;
use greater_models::testing::tiny_loaded;
use greater_opt::NoObserver;
use greater_opt::optimize::{AnswerTarget, OptimizeConfig, Run};

#[test]
fn variant_rows_raise_the_predicted_gradient() {
    let loaded = tiny_loaded(Family::Llama, 3).unwrap();
    let task = greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap();
    let estimate = |answer_target| {
        let cfg = OptimizeConfig { train: 3, max_reasoning_tokens: 8, answer_target, ..Default::default() };
        let run = Run { loaded: &loaded, task: &task, cfg: &cfg, dir: "/nonexistent".into(), observer: &NoObserver };
        let prep = run.prepare().unwrap();
        (run.memory_estimate(&prep), prep)
    };
    let (official, _) = estimate(AnswerTarget::Official);
    let (variants, prep) = estimate(AnswerTarget::Variants);
    let rows = prep
        .layouts
        .iter()
        .zip(&prep.variants)
        .map(|(l, v)| greater_grad::rows_per_example(&l.answer, v))
        .max()
        .unwrap();
    assert!(rows > 1, "byte-level spellings take more than one row");
    assert!(variants.gradient > official.gradient, "{variants:?} vs {official:?}");
    // Shared prefixes: far less than a whole second sequence per extra row.
    assert!(variants.gradient < official.gradient * 3 / 2, "{variants:?} vs {official:?}");
    assert_eq!(variants.generation, official.generation);
}
