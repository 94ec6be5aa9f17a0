//! `greater bench fidelity` end to end on a tiny random model and a generated task: it writes its
//! report, and a second run continues from it instead of starting again.

use std::path::Path;

use anyhow::Result;
use greater_bench::fidelity::{FidelityArgs, FidelityReport, run, step_seconds};
use greater_bench::{Common, Host};
use greater_models::config::Family;
use greater_models::model::LoadedModel;
use greater_models::testing::tiny_loaded;
use greater_opt::{NoObserver, Observer};
use greater_tasks::Task;

struct TinyHost;

impl Host for TinyHost {
    fn load_model(&self, _: &str) -> Result<LoadedModel> {
        Ok(tiny_loaded(Family::Llama, 3)?)
    }
    fn load_task(&self, name: &str) -> Result<Task> {
        let mut t = greater_tasks::load_task(name, Path::new("/nonexistent"))?;
        t.dev.truncate(6);
        t.test.truncate(6);
        Ok(t)
    }
    fn observer(&self, _: usize) -> Box<dyn Observer> {
        Box::new(NoObserver)
    }
}

/// A bench of one short step per task into `out`.
fn tiny_args(out: &Path, tasks: &[&str]) -> FidelityArgs {
    FidelityArgs {
        model: "tiny".into(),
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        train: 2,
        steps: 1,
        max_reasoning_tokens: 4,
        top_prompts: 1,
        seed: 0,
        batch_size: 3,
        keep_current: false,
        against: Vec::new(),
        common: Common { out: out.to_path_buf(), threads: None },
    }
}

#[test]
fn fidelity_writes_its_table_and_resumes_task_by_task() {
    let out = tempfile::tempdir().unwrap();
    let args = |tasks: &[&str]| tiny_args(out.path(), tasks);
    run(&args(&["gen/boolean_expressions"]), &TinyHost).unwrap();
    let path = out.path().join("fidelity-tiny.json");
    let first: FidelityReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(first.tasks.len(), 1);
    let labels: Vec<&str> = first.tasks[0].prompts.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["zs-cot", "greater"]);
    assert_eq!(first.tasks[0].prompts[0].test.total, 6, "the whole (truncated) test split");
    let majority = first.tasks[0].majority.clone().expect("the majority-label reference");
    assert_eq!((majority.dev.total, majority.test.total), (6, 6));
    // The optimisation's seconds are its steps' own, as its checkpoint records them.
    let dir = out.path().join("fidelity/tiny/gen_boolean_expressions");
    let steps = greater_opt::optimize::state::load(&dir).unwrap();
    assert!(first.tasks[0].optimise_seconds > 0.0);
    assert_eq!(first.tasks[0].optimise_seconds, step_seconds(&steps));
    // A row written before the reference existed gets it on the next run, and one that counted
    // only the last session's seconds gets the steps' own; nothing else changes.
    let mut old = first.clone();
    old.tasks[0].majority = None;
    old.tasks[0].optimise_seconds = 0.08;
    std::fs::write(&path, serde_json::to_string(&old).unwrap()).unwrap();
    run(&args(&["gen/boolean_expressions"]), &TinyHost).unwrap();
    let refilled: FidelityReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(refilled, first);
    // A second task: the first is kept as it was, not run again.
    run(&args(&["gen/boolean_expressions", "gen/object_counting"]), &TinyHost).unwrap();
    let second: FidelityReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(second.tasks.len(), 2);
    assert_eq!(second.tasks[0], first.tasks[0]);
    // Other settings into the same folder are refused.
    let mut other = args(&["gen/boolean_expressions"]);
    other.steps = 2;
    assert!(run(&other, &TinyHost).is_err());
    // So is the experimental selection; in its own folder its runs are configured with it.
    let mut kept = args(&["gen/boolean_expressions"]);
    kept.keep_current = true;
    assert!(run(&kept, &TinyHost).is_err(), "a keep_current bench resumed the paper-selection report");
    let own = tempfile::tempdir().unwrap();
    kept.common.out = own.path().to_path_buf();
    run(&kept, &TinyHost).unwrap();
    let cfg = greater_opt::optimize::load_config(&own.path().join("fidelity/tiny/gen_boolean_expressions")).unwrap();
    assert!(cfg.keep_current);
}

/// `--against`: the other folder's greater prompt first, this one's second, example by example.
#[test]
fn against_pairs_the_two_folders_greater_prompts_in_that_order() {
    use greater_bench::fidelity_against::{AgainstReport, compare};
    let here = tempfile::tempdir().unwrap();
    let args = tiny_args(here.path(), &["gen/boolean_expressions"]);
    let tasks = args.tasks.clone();
    run(&args, &TinyHost).unwrap();
    // Against itself: nothing differs.
    let same = compare(here.path(), &[here.path().to_path_buf()], "tiny", &tasks).unwrap().expect("a task in both");
    assert_eq!((same.tasks[0].dev.b, same.tasks[0].dev.c, same.tasks[0].dev.first.total), (0, 0, 6));
    // A copy where the first dev example flips: the copy is "there", so the flip shows as this
    // folder's win (c) when the copy got it wrong, its loss (b) when the copy got it right.
    let there = tempfile::tempdir().unwrap();
    let evals = |root: &Path| root.join("fidelity/tiny/gen_boolean_expressions/evals");
    std::fs::create_dir_all(evals(there.path())).unwrap();
    for split in ["dev", "test"] {
        let file = format!("final-{split}.json");
        std::fs::copy(evals(here.path()).join(&file), evals(there.path()).join(&file)).unwrap();
    }
    let path = evals(there.path()).join("final-dev.json");
    let mut dev: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let was = dev["records"][0]["correct"].as_bool().unwrap();
    dev["records"][0]["correct"] = serde_json::Value::Bool(!was);
    std::fs::write(&path, dev.to_string()).unwrap();
    // A folder without the task is passed over for the next one.
    let empty = tempfile::tempdir().unwrap();
    let flipped = compare(here.path(), &[empty.path().to_path_buf(), there.path().to_path_buf()], "tiny", &tasks)
        .unwrap()
        .unwrap();
    let d = &flipped.tasks[0].dev;
    assert_eq!((d.b, d.c), if was { (0, 1) } else { (1, 0) }, "there first, here second");
    assert_eq!((flipped.tasks[0].test.b, flipped.tasks[0].test.c), (0, 0));
    assert_eq!(flipped.tasks[0].against, there.path().display().to_string());
    let written: AgainstReport =
        serde_json::from_str(&std::fs::read_to_string(here.path().join("against-tiny.json")).unwrap()).unwrap();
    assert_eq!(written, flipped);
    assert!(greater_bench::fidelity_against::table(&flipped).contains("average (1 tasks)"));
}

/// `--against` takes the ZS-CoT and paper evaluations from a folder with the same settings instead
/// of computing them again, and never from one with other settings.
#[test]
fn against_reuses_the_fixed_evaluations_of_a_folder_with_the_same_settings() {
    let there = tempfile::tempdir().unwrap();
    run(&tiny_args(there.path(), &["gen/boolean_expressions"]), &TinyHost).unwrap();
    // A mark no evaluation here could write: the seconds of ZS-CoT on test.
    let evals = |root: &Path| root.join("fidelity/tiny/gen_boolean_expressions/evals");
    let marked = evals(there.path()).join("initial-test.json");
    let mut zs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&marked).unwrap()).unwrap();
    zs["seconds"] = serde_json::json!(12345.0);
    std::fs::write(&marked, zs.to_string()).unwrap();
    let seconds = |root: &Path| -> f64 {
        let report: FidelityReport =
            serde_json::from_str(&std::fs::read_to_string(root.join("fidelity-tiny.json")).unwrap()).unwrap();
        report.tasks[0].prompts[0].seconds
    };
    let kept = |out: &Path, against: &Path| {
        let mut a = tiny_args(out, &["gen/boolean_expressions"]);
        a.keep_current = true;
        a.against = vec![against.to_path_buf()];
        a
    };
    let here = tempfile::tempdir().unwrap();
    run(&kept(here.path(), there.path()), &TinyHost).unwrap();
    let copied: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(evals(here.path()).join("initial-test.json")).unwrap()).unwrap();
    assert_eq!(copied, zs, "ZS-CoT on test was evaluated again");
    assert!(seconds(here.path()) > 12345.0, "the report shows the copied evaluations' seconds");
    assert!(evals(here.path()).join("initial-train.json").exists());
    // Other settings there: everything is evaluated here.
    let other = tempfile::tempdir().unwrap();
    let mut longer = kept(other.path(), there.path());
    longer.max_reasoning_tokens = 5;
    run(&longer, &TinyHost).unwrap();
    assert!(seconds(other.path()) < 12345.0, "evaluations taken from a folder with other settings");
}
