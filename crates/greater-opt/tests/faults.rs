//! Fault injection on the run folder with a tiny random model: a write failure (ENOSPC, EIO,
//! short write) at every file operation of a run leaves the folder at a checkpoint of the
//! uninterrupted run, the resumed run ends with the same final prompt, and nothing is lost. A
//! damaged `state.json` or `events.jsonl` is an error naming the file and line.

use std::path::{Path, PathBuf};

use greater_models::model::LoadedModel;
use greater_opt::faults::{self, Fault};
use greater_opt::optimize::{OptimizeConfig, Run, RunState, state};
use greater_opt::report::Report;
use greater_opt::{NoObserver, OptError, finish};
use greater_tasks::Task;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    loaded: LoadedModel,
    task: Task,
    cfg: OptimizeConfig,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    greater_models::testing::write_tiny_model(&root.join("model"), 11).unwrap();
    let loaded = LoadedModel::load(&root.join("model"), &greater_models::default_device()).unwrap();
    let task = greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap();
    let cfg = OptimizeConfig {
        steps: 3,
        train: 2,
        max_reasoning_tokens: 6,
        eval_limit: 2,
        top_prompts: 2,
        loss_threshold: -1.0,
        ..Default::default()
    };
    Fixture { _tmp: tmp, root, loaded, task, cfg }
}

impl Fixture {
    /// Optimise and finish in `dir`, resuming from its checkpoint when there is one.
    fn run(&self, dir: &Path) -> Result<(RunState, Report), OptError> {
        let run =
            Run { loaded: &self.loaded, task: &self.task, cfg: &self.cfg, dir: dir.into(), observer: &NoObserver };
        let prep = run.prepare()?;
        let state = run.optimize(&prep, true)?;
        let report = finish::finish(&run, &prep, &state, 0.0)?;
        Ok((state, report))
    }
}

/// The prompt texts of a state's history (what a checkpoint is, minus timings).
fn texts(s: &RunState) -> Vec<String> {
    s.history.iter().map(|h| h.text.clone()).collect()
}

#[test]
fn a_failed_write_anywhere_leaves_a_checkpoint_and_resume_ends_the_same() {
    let fx = fixture();
    let reference = fx.root.join("reference");
    faults::count();
    let (ref_state, ref_report) = fx.run(&reference).unwrap();
    let ops = faults::disarm();
    assert_eq!(ref_state.step, 3);
    assert!(ops.iter().any(|o| o.contains("events.jsonl")) && ops.iter().any(|o| o.contains("report.html")), "{ops:?}");
    let (mut injected, mut resumed) = (0, 0);
    for (n, op) in ops.iter().enumerate() {
        for fault in Fault::ALL {
            if fault == Fault::Short && !op.starts_with("write") {
                continue;
            }
            let dir = fx.root.join(format!("run-{n}-{fault:?}"));
            faults::arm(n, fault);
            let failed = fx.run(&dir);
            let seen = faults::disarm();
            assert!(seen.len() > n, "operation {n} ({op}) was not reached: the run is not deterministic");
            let err = failed.err().unwrap_or_else(|| panic!("{fault:?} at {n} ({op}) did not fail the run"));
            assert!(matches!(err, OptError::Io { .. }), "{fault:?} at {n} ({op}): {err}");
            injected += 1;
            // The folder is at a checkpoint of the uninterrupted run: the state parses, its
            // history is a prefix of the reference's, and the events agree with it.
            if dir.join("state.json").exists() {
                let s = state::load(&dir).unwrap_or_else(|e| panic!("{fault:?} at {n} ({op}): {e}"));
                assert!(s.step <= 3 && texts(&ref_state)[..s.step] == texts(&s)[..], "{fault:?} at {n} ({op})");
                state::truncate_events(&dir, s.events).unwrap_or_else(|e| panic!("{fault:?} at {n} ({op}): {e}"));
            }
            assert!(!dir.join("state.tmp").exists(), "{fault:?} at {n} ({op}) left a temporary file");
            let (s, r) = fx.run(&dir).unwrap_or_else(|e| panic!("resume after {fault:?} at {n} ({op}): {e}"));
            resumed += 1;
            assert_eq!(r.final_prompt_ids, ref_report.final_prompt_ids, "{fault:?} at {n} ({op})");
            assert_eq!(s.control, ref_state.control, "{fault:?} at {n} ({op})");
            assert_eq!(texts(&s), texts(&ref_state), "{fault:?} at {n} ({op})");
            let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
            assert_eq!(events.lines().count(), 3, "{fault:?} at {n} ({op}): events lost or doubled");
            assert_eq!(r.accuracy_final.test.map(|a| a.correct), ref_report.accuracy_final.test.map(|a| a.correct));
        }
    }
    eprintln!("fault injection: {} operations, {injected} faults injected, {resumed} runs resumed", ops.len());
}

#[test]
fn damaged_checkpoints_are_errors_naming_file_and_line() {
    let fx = fixture();
    let dir = fx.root.join("run");
    fx.run(&dir).unwrap();
    let copy = |name: &str| {
        let to = fx.root.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in ["config.toml", "state.json", "events.jsonl"] {
            std::fs::copy(dir.join(f), to.join(f)).unwrap();
        }
        to
    };
    // state.json cut in half.
    let cut = copy("cut-state");
    let text = std::fs::read(cut.join("state.json")).unwrap();
    std::fs::write(cut.join("state.json"), &text[..text.len() / 2]).unwrap();
    let err = fx.run(&cut).unwrap_err().to_string();
    assert!(err.contains("state.json") && err.contains("line 1, column"), "{err}");
    // events.jsonl with its second line damaged, then with its last line missing.
    let bad = copy("bad-events");
    let events = std::fs::read_to_string(bad.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = events.lines().collect();
    std::fs::write(bad.join("events.jsonl"), format!("{}\n{{\"step\": 1, oops\n{}\n", lines[0], lines[2])).unwrap();
    let err = fx.run(&bad).unwrap_err().to_string();
    assert!(err.contains("events.jsonl") && err.contains("line 2"), "{err}");
    let short = copy("short-events");
    std::fs::write(short.join("events.jsonl"), format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let err = fx.run(&short).unwrap_err().to_string();
    assert!(err.contains("events.jsonl") && err.contains("line 3"), "{err}");
    // state.json gone while events remain: refused, not restarted.
    let gone = copy("no-state");
    std::fs::remove_file(gone.join("state.json")).unwrap();
    let err = fx.run(&gone).unwrap_err().to_string();
    assert!(err.contains("state.json") && err.contains("events"), "{err}");
    assert_eq!(std::fs::read_to_string(gone.join("events.jsonl")).unwrap(), events, "events were touched");
}
