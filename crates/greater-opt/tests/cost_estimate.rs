//! The dry-run estimate against the real run on a tiny model: the expected seconds of the loop's
//! phases are within 2× of what the run takes (plain path, every chain at the cap), and the
//! token counts follow the config.

use std::path::Path;

use greater_models::config::Family;
use greater_models::testing::tiny_loaded;
use greater_opt::NoObserver;
use greater_opt::cost::{check, probe};
use greater_opt::optimize::{OptimizeConfig, Run};

#[test]
fn the_estimate_is_within_twice_the_real_run() {
    let loaded = tiny_loaded(Family::Llama, 5).unwrap();
    let task = greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap();
    let cfg = OptimizeConfig {
        train: 4,
        steps: 2,
        max_reasoning_tokens: 48,
        batch_size: 4,
        final_eval: false,
        ..OptimizeConfig::default()
    }
    .without_accelerations();
    let dir = tempfile::tempdir().unwrap();
    let run = Run { loaded: &loaded, task: &task, cfg: &cfg, dir: dir.path().to_path_buf(), observer: &NoObserver };
    let prep = run.prepare().unwrap();
    let prompt = prep.layouts.iter().map(|l| l.generation_prompt(&prep.initial).len()).max().unwrap();
    let tail = prep.layouts.iter().map(|l| l.extractor.len() + l.answer.len()).max().unwrap();
    let tp = probe(&loaded.model, 4, prompt, prompt + 48 + tail, 2.0);
    let est = run.cost_estimate(&prep, &tp, None);
    // Token counts: 4 chains of 48 tokens for the first reasoning, μ − 1 = 2 candidates per step.
    let by = |name: &str| est.phases.iter().find(|p| p.name == name).unwrap().clone();
    assert_eq!(by("reasoning").decode_tokens, 4 * 48);
    assert_eq!(by("selection").decode_tokens, 2 * 2 * 4 * 48);
    assert_eq!(by("final evaluation").seconds, 0.0);
    let state = run.optimize(&prep, false).unwrap();
    let real: f64 = state
        .history
        .iter()
        .map(|h| h.seconds.generation + h.seconds.proposal + h.seconds.gradient + h.seconds.selection)
        .sum();
    let ratio = est.seconds / real;
    eprintln!("estimate {:.3} s, run {real:.3} s: ×{ratio:.2}", est.seconds);
    let sum =
        |f: fn(&greater_opt::optimize::PhaseSeconds) -> f64| state.history.iter().map(|h| f(&h.seconds)).sum::<f64>();
    eprintln!(
        "real: reasoning {:.3} proposal {:.3} gradient {:.3} selection {:.3}; estimate: {:?}",
        sum(|s| s.generation),
        sum(|s| s.proposal),
        sum(|s| s.gradient),
        sum(|s| s.selection),
        est.phases.iter().map(|p| format!("{} {:.3}", p.name, p.seconds)).collect::<Vec<_>>()
    );
    assert!((0.5..=2.0).contains(&ratio), "estimate {:.3} s against {real:.3} s (×{ratio:.2}); {tp:?}", est.seconds);
    // A measured mean shorter than the cap shortens the chains of every phase.
    let short = run.cost_estimate(&prep, &tp, Some(12.0));
    assert_eq!(short.phases.iter().find(|p| p.name == "reasoning").unwrap().decode_tokens, 4 * 12);
    assert!(short.seconds < est.seconds);
    // A budget below the estimate refuses the run; one above lets it start.
    assert!(check(&est, Some(est.seconds / 3600.0 / 2.0)).unwrap_err().to_string().contains("max_hours"));
    assert!(check(&est, Some(est.seconds / 3600.0 * 2.0)).is_ok());
}
