//! `greater bench signal` end to end on a tiny random model and a generated task: both settings
//! run with their own signal, the paired numbers agree with the saved evaluations, and a second
//! run continues from the report instead of starting again.

use std::path::Path;

use anyhow::Result;
use greater_bench::signal::{SignalArgs, SignalReport, run};
use greater_bench::{Common, Host};
use greater_models::config::Family;
use greater_models::model::LoadedModel;
use greater_models::testing::tiny_loaded;
use greater_opt::eval::EvalResult;
use greater_opt::optimize::StepEvent;
use greater_opt::{NoObserver, Observer};
use greater_tasks::Task;

struct TinyHost;

impl Host for TinyHost {
    fn load_model(&self, _: &str) -> Result<LoadedModel> {
        Ok(tiny_loaded(Family::Llama, 3)?)
    }
    fn load_task(&self, name: &str) -> Result<Task> {
        let mut t = greater_tasks::load_task(name, Path::new("/nonexistent"))?;
        t.dev.truncate(9);
        Ok(t)
    }
    fn observer(&self, _: usize) -> Box<dyn Observer> {
        Box::new(NoObserver)
    }
}

fn events(path: &Path) -> Vec<StepEvent> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn eval(path: &Path) -> EvalResult {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn signal_runs_both_settings_pairs_them_on_dev_and_resumes() {
    let out = tempfile::tempdir().unwrap();
    let args = |tasks: &[&str], dev: usize| SignalArgs {
        model: "tiny".into(),
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        train: 3,
        steps: 2,
        max_reasoning_tokens: 4,
        dev,
        seed: 0,
        batch_size: 2,
        common: Common { out: out.path().to_path_buf(), threads: None },
    };
    run(&args(&["gen/boolean_expressions"], 7), &TinyHost).unwrap();
    let path = out.path().join("signal-tiny.json");
    let first: SignalReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let t = &first.tasks[0];
    let names: Vec<&str> = t.settings.iter().map(|s| s.setting.as_str()).collect();
    assert_eq!(names, ["official", "aligned"]);
    assert_eq!(t.initial_dev.total, 7, "the first --dev examples of dev");

    let dir = out.path().join("signal/tiny/gen_boolean_expressions");
    // Each run trained with its own signal: only the aligned one graded its candidates.
    let official = events(&dir.join("official/events.jsonl"));
    let aligned = events(&dir.join("aligned/events.jsonl"));
    assert_eq!((official.len(), aligned.len()), (2, 2));
    assert!(official.iter().flat_map(|e| &e.selection).all(|c| c.graded_mistake_rate.is_none()));
    assert!(aligned.iter().flat_map(|e| &e.selection).all(|c| c.graded_mistake_rate.is_some()));
    assert_eq!(t.settings[0].flag_disagreements, None);
    let full: Vec<_> = aligned.iter().flat_map(|e| &e.selection).filter(|c| c.pruned_after.is_none()).collect();
    let want: usize = full.iter().map(|c| c.flag_disagreements.unwrap()).sum();
    assert_eq!(t.settings[1].flag_disagreements, Some(want));
    assert_eq!(t.settings[1].flag_examples, 3 * full.len());

    // The paired numbers are those of the saved dev evaluations, official first.
    let (init, off, ali) = (
        eval(&dir.join("evals/initial-dev.json")),
        eval(&dir.join("evals/official-dev.json")),
        eval(&dir.join("evals/aligned-dev.json")),
    );
    let p = &t.aligned_versus_official;
    let b = off.correct().iter().zip(ali.correct()).filter(|(o, a)| **o && !*a).count();
    let c = off.correct().iter().zip(ali.correct()).filter(|(o, a)| !**o && *a).count();
    assert_eq!((p.b, p.c), (b, c));
    assert_eq!(t.settings[1].dev.correct, ali.correct().iter().filter(|&&x| x).count());
    assert_eq!(t.settings[0].versus_initial.first.correct, init.correct().iter().filter(|&&x| x).count());

    // A second task: the first is kept as it was, not run again.
    run(&args(&["gen/boolean_expressions", "gen/object_counting"], 7), &TinyHost).unwrap();
    let second: SignalReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(second.tasks.len(), 2);
    assert_eq!(second.tasks[0].initial_dev, first.tasks[0].initial_dev);
    assert_eq!(second.tasks[0].settings[1].prompt, first.tasks[0].settings[1].prompt);
    // Other settings into the same folder are refused.
    assert!(run(&args(&["gen/boolean_expressions"], 5), &TinyHost).is_err());
}
