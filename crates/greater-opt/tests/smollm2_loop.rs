//! The evaluation runner and the loop on the real default model, with tiny settings.

use std::path::PathBuf;

use greater_models::model::LoadedModel;
use greater_opt::eval::{EvalOptions, PromptInput, evaluate};
use greater_opt::optimize::{OptimizeConfig, Run, StepEvent};
use greater_opt::{NoObserver, finish};

fn model() -> Option<LoadedModel> {
    let cache = std::env::var_os("GREATER_CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("greater")))?;
    let path = cache.join("models/smollm2-135m-instruct.gguf");
    if !path.exists() {
        let required = std::env::var("GREATER_REQUIRE_MODELS").is_ok_and(|v| v == "1");
        assert!(!required, "{} missing (GREATER_REQUIRE_MODELS=1)", path.display());
        eprintln!("note: {} missing; skipping", path.display());
        return None;
    }
    Some(LoadedModel::load(&path, &greater_models::default_device()).unwrap())
}

#[test]
fn evaluation_scores_every_example() {
    let Some(loaded) = model() else { return };
    let task = greater_tasks::load_task("gen/boolean_expressions", std::path::Path::new("/nonexistent")).unwrap();
    let opts = EvalOptions { max_reasoning_tokens: 24, batch_size: 3, ..Default::default() };
    let examples = &task.test[..3];
    let prompt = PromptInput::Text(greater_tasks::DEFAULT_INITIAL_PROMPT.into());
    let r = evaluate(&loaded, &task.spec, examples, &prompt, &opts, &NoObserver).unwrap();
    assert_eq!(r.records.len(), 3);
    for rec in &r.records {
        assert!(rec.reasoning_tokens <= 24);
        assert!(rec.user_turn.ends_with(greater_tasks::DEFAULT_INITIAL_PROMPT), "{}", rec.user_turn);
        // True/False is a closed set: the constrained score always predicts one of the labels.
        assert!(matches!(rec.constrained.as_deref(), Some("True") | Some("False")), "{rec:?}");
    }
    assert_eq!(r.scores.exact.total, 3);
    // The same prompt as ids gives the same records.
    let ids = {
        let layouter = greater_opt::layout::Layouter::new(&loaded, &task.spec, Default::default());
        layouter.example(0, &examples[0], greater_tasks::DEFAULT_INITIAL_PROMPT).unwrap().1
    };
    let r2 = evaluate(&loaded, &task.spec, examples, &PromptInput::Ids(ids), &opts, &NoObserver).unwrap();
    assert_eq!(r.records, r2.records);
}

/// Asks to stop (as Ctrl-C does) once `after` steps have reported.
struct StopAfter {
    after: usize,
    steps: std::cell::Cell<usize>,
}

impl greater_opt::Observer for StopAfter {
    fn message(&self, text: &str) {
        if text.starts_with("step ") {
            self.steps.set(self.steps.get() + 1);
        }
    }
    fn should_stop(&self) -> bool {
        self.steps.get() >= self.after
    }
}

fn events(dir: &std::path::Path) -> Vec<StepEvent> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn two_steps_then_report_and_resume_equals_uninterrupted() {
    let Some(loaded) = model() else { return };
    let task = greater_tasks::load_task("gen/boolean_expressions", std::path::Path::new("/nonexistent")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = OptimizeConfig {
        steps: 2,
        train: 3,
        max_reasoning_tokens: 16,
        eval_limit: 2,
        top_prompts: 2,
        ..Default::default()
    };
    let run = Run { loaded: &loaded, task: &task, cfg: &cfg, dir: dir.path().to_path_buf(), observer: &NoObserver };
    let prep = run.prepare().unwrap();
    let t = std::time::Instant::now();
    let state = run.optimize(&prep, false).unwrap();
    assert_eq!(state.step, 2);
    assert_eq!(state.history.len(), 2);
    assert!(state.best.is_some());
    let report = finish::finish(&run, &prep, &state, t.elapsed().as_secs_f64()).unwrap();
    assert!(report.accuracy_final.test.is_some() && report.accuracy_initial.dev.is_some());
    for f in ["report.json", "report.html", "events.jsonl", "state.json", "config.toml"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    assert_eq!(events(dir.path()).len(), 2);

    // The same run interrupted after its first step, then resumed, makes the same decisions.
    let split = tempfile::tempdir().unwrap();
    let stop = StopAfter { after: 1, steps: Default::default() };
    let interrupted = Run { observer: &stop, dir: split.path().to_path_buf(), ..run };
    assert!(interrupted.optimize(&prep, false).is_err());
    assert_eq!(events(split.path()).len(), 1);
    let resumed = Run { observer: &NoObserver, ..interrupted };
    let again = resumed.optimize(&prep, true).unwrap();
    let decisions = |e: Vec<StepEvent>| -> Vec<_> {
        e.into_iter().map(|x| (x.position, x.candidates, x.top_mu, x.chosen, x.prompt_ids)).collect()
    };
    assert_eq!(decisions(events(dir.path())), decisions(events(split.path())));
    assert_eq!((again.control, again.best), (state.control, state.best));
}
