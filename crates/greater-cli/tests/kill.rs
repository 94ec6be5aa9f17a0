//! SIGKILL at random points of an optimisation run (loop, final evaluations, report), on a tiny
//! random model: each killed run, resumed (and sometimes killed again while resuming), ends with
//! the final prompt and state of the uninterrupted run, with no event lost or doubled.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn greater() -> Command {
    Command::new(env!("CARGO_BIN_EXE_greater"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fresh-run command line for output folder `out`.
fn fresh(model: &Path, config: &Path, out: &Path) -> Command {
    let mut c = greater();
    c.args(["optimize", "--task", "gen/boolean_expressions", "--train", "2", "--steps", "4"]);
    c.args(["--max-reasoning-tokens", "6", "--eval-limit", "3"]);
    c.arg("--model").arg(model).arg("--config").arg(config).arg("--out").arg(out);
    c
}

/// How to continue the run in `out`: resume when a run was recorded, else start it again.
fn next_attempt(model: &Path, config: &Path, out: &Path) -> Command {
    if out.join("config.toml").exists() {
        let mut c = greater();
        c.arg("optimize").arg("--resume").arg(out);
        c
    } else {
        fresh(model, config, out)
    }
}

/// Runs `cmd`, killing it with SIGKILL after `after` unless it ends first; whether it was killed.
fn run_or_kill(mut cmd: Command, after: Option<Duration>) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(status.success(), "{cmd:?} failed ({status}):\n{err}");
            return false;
        }
        if after.is_some_and(|a| start.elapsed() >= a) {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn outcome(dir: &Path) -> (Value, Value, usize) {
    let r = read_json(&dir.join("report.json"));
    let s = read_json(&dir.join("state.json"));
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap().lines().count();
    (r["final_prompt_ids"].clone(), s["control"].clone(), events)
}

#[test]
fn sigkill_at_random_points_then_resume_ends_like_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model: PathBuf = tmp.path().join("model");
    greater_models::testing::write_tiny_model(&model, 5).unwrap();
    let config = tmp.path().join("no-early-stop.toml");
    std::fs::write(&config, "loss_threshold = -1.0\ntop_prompts = 2\n").unwrap();
    let reference = tmp.path().join("reference");
    let start = Instant::now();
    run_or_kill(fresh(&model, &config, &reference), None);
    let wall = start.elapsed();
    let (final_ids, control, events) = outcome(&reference);
    assert_eq!(events, 4);
    // Kill points spread over the whole run, from a fixed seed (xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let trials = 12;
    let (mut kills, mut resumes) = (0, 0);
    for trial in 0..trials {
        let out = tmp.path().join(format!("killed-{trial}"));
        let at = wall.mul_f64((trial as f64 + (next() % 1000) as f64 / 1000.0) / trials as f64);
        kills += usize::from(run_or_kill(fresh(&model, &config, &out), Some(at)));
        // Every other trial is killed a second time, early in its resume.
        if trial % 2 == 1 {
            let again = wall.mul_f64((next() % 500) as f64 / 1000.0);
            kills += usize::from(run_or_kill(next_attempt(&model, &config, &out), Some(again)));
        }
        while !out.join("report.json").exists() || read_json(&out.join("state.json"))["finished"] != true {
            run_or_kill(next_attempt(&model, &config, &out), None);
            resumes += 1;
        }
        let (f, c, e) = outcome(&out);
        assert_eq!(f, final_ids, "trial {trial} (killed at {at:?}): final prompt differs");
        assert_eq!(c, control, "trial {trial}: state prompt differs");
        assert_eq!(e, 4, "trial {trial}: events lost or doubled");
    }
    eprintln!("sigkill: reference run {wall:?}; {kills} kills over {trials} runs, {resumes} resumes; all ended alike");
    assert!(kills >= trials / 2, "only {kills} kills landed before the runs ended");
}
