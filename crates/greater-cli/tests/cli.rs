//! The `greater` binary end to end: help, errors and exit codes, and — with SmolLM2 in the cache —
//! generation, evaluation files, an optimisation run and the resume round trip.
//!
//! Every invocation inherits `GREATER_CACHE`. Tests that need SmolLM2 skip with a note when it is
//! not cached, unless `GREATER_REQUIRE_MODELS=1`, which makes them fail. They run one at a time
//! (a lock), so each has the machine's cores to itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{fails, greater, ok, read_json, run, text};

const MODEL: &str = "smollm2-135m-instruct";

/// Serialises the tests that run the model.
static MODEL_LOCK: Mutex<()> = Mutex::new(());

/// SmolLM2 is cached (else `None` after a note; a failure under `GREATER_REQUIRE_MODELS=1`).
fn smollm2() -> Option<PathBuf> {
    greater_testkit::existing(greater_testkit::cached_model(MODEL))
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn help_of_every_command_names_its_flags() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--help"],
            &["models", "generate", "eval", "optimize", "report", "greater optimize --model", "greater eval --model"],
        ),
        (&["models", "--help"], &["fetch", "list", "info"]),
        (&["models", "fetch", "--help"], &["<NAME>"]),
        (&["models", "list", "--help"], &["cached"]),
        (&["models", "info", "--help"], &["<MODEL>", "GGUF"]),
        (
            &["generate", "--help"],
            &["--model", "--prompt", "--chat", "--max-new-tokens", "--stop", "--no-stop", "[default: 128]"],
        ),
        (
            &["eval", "--help"],
            &[
                "--model",
                "--task",
                "--prompt",
                "--prompt-from",
                "--split",
                "--limit",
                "--batch-size",
                "--max-reasoning-tokens",
                "--out",
                "--compare",
                "--joiner",
                "--frozen-prefix",
                "[default: test]",
                "[default: 8]",
            ],
        ),
        (
            &["optimize", "--help"],
            &[
                "--model",
                "--task",
                "--config",
                "--steps",
                "--train",
                "--seed",
                "--out",
                "--resume",
                "--max-reasoning-tokens",
                "--batch-size",
                "--eval-limit",
                "--no-final-eval",
                "--keep-current",
            ],
        ),
        (&["report", "--help"], &["<DIR>", "report.json"]),
        (&["bench", "--help"], &["models", "grad", "bbh", "compare"]),
        (&["bench", "bbh", "--help"], &["--model", "--tasks", "--steps", "--eval-limit", "--top-prompts"]),
        (&["bench", "compare", "--help"], &["[REPORTS]", "bbh-*.json"]),
    ];
    for (args, wanted) in cases {
        let out = ok(args);
        for w in *wanted {
            assert!(out.contains(w), "greater {args:?} does not mention {w:?}:\n{out}");
        }
    }
}

#[test]
fn models_list_shows_the_registry() {
    let out = ok(&["models", "list"]);
    for name in [MODEL, "gemma3-270m", "qwen2.5-coder-0.5b-instruct"] {
        assert!(out.contains(name), "{out}");
    }
    assert!(out.contains("cached"), "{out}");
}

#[test]
fn unknown_task_lists_close_names() {
    let err = fails(greater().args(["eval", "--task", "bbh/navigte", "--limit", "1"]));
    assert!(err.contains("unknown task `bbh/navigte`") && err.contains("bbh/navigate"), "{err}");
    let err = fails(greater().args(["optimize", "--task", "gen/boolean_expresions", "--steps", "1"]));
    assert!(err.contains("gen/boolean_expressions"), "{err}");
}

#[test]
fn unknown_model_lists_known_names() {
    let err = fails(greater().args(["generate", "--model", "no-such-model", "--prompt", "hi"]));
    assert!(err.contains("no-such-model") && err.contains(MODEL), "{err}");
    let err = fails(greater().args(["models", "info", "no-such-model"]));
    assert!(err.contains(MODEL), "{err}");
    let err = fails(greater().args(["models", "fetch", "no-such-model"]));
    assert!(err.contains(MODEL), "{err}");
}

#[test]
fn missing_data_says_how_to_get_it() {
    let empty = tempfile::tempdir().unwrap();
    // GREATER_DATA points at a folder without the data.
    let err = fails(greater().args(["eval", "--task", "bbh/snarks"]).env("GREATER_DATA", empty.path()));
    assert!(err.contains("snarks") && err.contains("fetch-data"), "{err}");
    // GREATER_DATA unset, and no target/data in the working directory.
    let err =
        fails(greater().args(["eval", "--task", "bbh/snarks"]).env_remove("GREATER_DATA").current_dir(empty.path()));
    assert!(err.contains("GREATER_DATA") && err.contains("cargo xtask fetch-data"), "{err}");
}

#[test]
fn bad_inputs_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "steps = 2\nno_such_key = 1\n").unwrap();
    let err = fails(greater().args(["optimize", "--config"]).arg(&cfg));
    assert!(err.contains("bad.toml") && err.contains("no_such_key"), "{err}");
    let err = fails(greater().args(["report"]).arg(dir.path()));
    assert!(err.contains("report.json"), "{err}");
    let err = fails(greater().args(["optimize", "--resume"]).arg(dir.path()));
    assert!(err.contains("config.toml"), "{err}");
    // Flags are checked by clap (exit code 2).
    let out = run(&["eval", "--task", "gen/boolean_expressions", "--split", "validation"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// A `bbh-<model>.json` as `greater bench bbh` writes it, with one row.
fn bench_report(model: &str, settings: &str, initial: f64, fin: f64) -> String {
    serde_json::json!({
        "model": model,
        "args": settings,
        "rows": [{
            "task": "bbh/boolean_expressions", "initial_test": initial, "final_test": fin,
            "initial_constrained": 0.5, "final_constrained": 0.55, "difference": fin - initial,
            "p_value": 0.25, "test_examples": 20, "step_seconds_median": 50.0,
            "phase_seconds_median": [0.0, 1.0, 9.0, 40.0], "tokens_per_second": 8.5,
            "final_prompt": " think step by step.", "total_seconds": 500.0
        }]
    })
    .to_string()
}

#[test]
fn bench_compare_puts_models_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let same = "steps=5 train=10";
    std::fs::write(dir.path().join("bbh-small.json"), bench_report("small", same, 0.35, 0.4)).unwrap();
    std::fs::write(dir.path().join("bbh-big.json"), bench_report("big", same, 0.6, 0.75)).unwrap();
    let out = greater().args(["bench", "compare", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    // Files are taken by name: bbh-big before bbh-small.
    let big = table.find("| bbh/boolean_expressions | big | 60.0 % | 75.0 % | +15.0 (p = 0.250) | 50.0 % → 55.0 % |");
    let small = table.find("| bbh/boolean_expressions | small | 35.0 % | 40.0 % | +5.0");
    assert!(big.is_some() && small.is_some() && big < small, "{table}");
    assert!(!text(&out.stderr).contains("different settings"), "{}", text(&out.stderr));

    // Explicit files keep the given order; different settings are flagged.
    let other = dir.path().join("other.json");
    std::fs::write(&other, bench_report("other", "steps=1 train=2", 0.1, 0.1)).unwrap();
    let out = greater().args(["bench", "compare"]).arg(dir.path().join("bbh-small.json")).arg(&other).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("different settings"), "{}", text(&out.stderr));

    // A file that is not a report is an error naming it.
    let bad = dir.path().join("bbh-bad.json");
    std::fs::write(&bad, "{\"rows\": 3}").unwrap();
    let err = fails(greater().args(["bench", "compare"]).arg(&bad));
    assert!(err.contains("bbh-bad.json"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = fails(greater().args(["bench", "compare", "--out"]).arg(empty.path()));
    assert!(err.contains("greater bench bbh"), "{err}");
}

#[test]
fn generate_streams_text() {
    let Some(_) = smollm2() else { return };
    let _lock = MODEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = greater()
        .args([
            "generate",
            "--model",
            MODEL,
            "--prompt",
            "What is the capital of France?",
            "--chat",
            "--max-new-tokens",
            "8",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.trim().len() >= 3, "no text: {stdout:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("prompt tokens") && stderr.contains("new tokens"), "{stderr}");
    // `models info` reads the same file.
    let info = ok(&["models", "info", MODEL]);
    for w in ["llama", "parameters", "layers:", "context:", "vocabulary:", "Q4_1", "chat template: the model's own"] {
        assert!(info.contains(w), "{w:?} missing:\n{info}");
    }
}

#[test]
fn eval_writes_records_and_summary() {
    let Some(_) = smollm2() else { return };
    let _lock = MODEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let stdout = ok(&[
        "eval",
        "--model",
        MODEL,
        "--task",
        "gen/boolean_expressions",
        "--limit",
        "2",
        "--max-reasoning-tokens",
        "16",
        "--compare",
        "think.",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("McNemar p"), "{stdout}");
    assert!(stdout.contains("accuracy") && stdout.contains("95% CI") && stdout.contains("s/example"), "{stdout}");
    let records = std::fs::read_to_string(out.join("examples.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 2);
    for (i, line) in records.lines().enumerate() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["index"], i);
        for k in ["input", "user_turn", "reasoning", "raw_answer", "gold", "correct", "flexible_correct", "constrained"]
        {
            assert!(r.get(k).is_some(), "record {i} lacks {k}: {r}");
        }
        assert!(r["reasoning_tokens"].as_u64().unwrap() <= 16, "{r}");
        assert!(r["user_turn"].as_str().unwrap().ends_with(greater_default_prompt()), "{r}");
    }
    let s = read_json(&out.join("summary.json"));
    assert_eq!(s["examples"], 2);
    let acc = s["accuracy"].as_f64().unwrap();
    let interval = s["interval"].as_array().unwrap();
    let (lo, hi) = (interval[0].as_f64().unwrap(), interval[1].as_f64().unwrap());
    assert!(lo <= acc && acc <= hi && (0.0..=1.0).contains(&lo) && hi <= 1.0, "{s}");
    for k in ["flexible", "unparseable_rate", "constrained", "correct", "seconds", "seconds_per_example"] {
        assert!(s[k].is_number(), "summary lacks {k}: {s}");
    }
    assert_eq!(s["config"]["task"], "gen/boolean_expressions");
    assert_eq!(s["config"]["split"], "test");
    assert_eq!(s["config"]["options"]["max_reasoning_tokens"], 16);
    // --compare: the second prompt's records and the paired comparison.
    assert_eq!(lines(&out.join("examples-compare.jsonl")), 2);
    assert_eq!(s["compare"]["prompt"], "think.");
    let (b, c) = (s["paired"]["b"].as_u64().unwrap(), s["paired"]["c"].as_u64().unwrap());
    assert!(b + c <= 2 && s["paired"]["p_value"].is_number(), "{s}");
    let diff = s["compare"]["accuracy"].as_f64().unwrap() - acc;
    assert!((s["paired"]["difference"].as_f64().unwrap() - diff).abs() < 1e-12, "{s}");
}

fn greater_default_prompt() -> &'static str {
    "think step by step. Finally give the actual correct answer."
}

/// A config file beside `run_dir` that turns off the early stop (a selection score under the
/// threshold ends a run at once, and two easy examples can get there in one step).
fn no_early_stop(run_dir: &Path) -> PathBuf {
    let path = run_dir.with_extension("toml");
    std::fs::write(&path, "loss_threshold = -1.0\n").unwrap();
    path
}

/// Tiny optimisation flags shared by the loop tests.
fn tiny(run_dir: &Path, steps: usize) -> Vec<String> {
    let mut v: Vec<String> = ["optimize", "--model", MODEL, "--task", "gen/boolean_expressions", "--train", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push("--config".into());
    v.push(no_early_stop(run_dir).display().to_string());
    v.extend(["--max-reasoning-tokens", "16", "--no-final-eval", "--steps"].map(String::from));
    v.push(steps.to_string());
    v.push("--out".into());
    v.push(run_dir.display().to_string());
    v
}

fn run_strings(args: &[String]) -> String {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&refs)
}

#[test]
fn optimize_writes_a_report() {
    let Some(_) = smollm2() else { return };
    let _lock = MODEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let config = no_early_stop(&run_dir);
    let stdout = ok(&[
        "optimize",
        "--model",
        MODEL,
        "--task",
        "gen/boolean_expressions",
        "--train",
        "4",
        "--steps",
        "2",
        "--max-reasoning-tokens",
        "32",
        "--eval-limit",
        "4",
        "--config",
        config.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
    ]);
    assert!(stdout.contains("final prompt") && stdout.contains("report.html"), "{stdout}");
    let r = read_json(&run_dir.join("report.json"));
    for k in ["initial_prompt", "final_prompt", "final_prompt_ids", "best_train_score", "test_difference", "seconds"] {
        assert!(!r[k].is_null(), "report lacks {k}: {r}");
    }
    for which in ["accuracy_initial", "accuracy_final"] {
        for split in ["train", "dev", "test"] {
            let a = &r[which][split];
            assert!(a["accuracy"].is_number(), "{which}.{split}: {r}");
        }
        assert_eq!(r[which]["test"]["total"], 4);
        assert_eq!(r[which]["train"]["total"], 4);
    }
    assert_eq!(r["steps_run"], 2);
    assert!(r["seconds"]["total"].as_f64().unwrap() > 0.0);
    assert_eq!(r["config"]["steps"], 2);
    assert_eq!(r["config"]["loss_threshold"], -1.0);
    assert!(run_dir.join("report.html").exists());
    assert_eq!(lines(&run_dir.join("events.jsonl")), 2);
    let state = read_json(&run_dir.join("state.json"));
    assert_eq!(state["step"], 2);
    // `greater report` rebuilds the page from report.json.
    std::fs::remove_file(run_dir.join("report.html")).unwrap();
    let out = ok(&["report", run_dir.to_str().unwrap()]);
    assert!(out.contains("initial prompt") && run_dir.join("report.html").exists(), "{out}");
    // `eval --prompt-from` evaluates the final prompt by its ids on the same model.
    let ev = dir.path().join("eval");
    ok(&[
        "eval",
        "--prompt-from",
        run_dir.to_str().unwrap(),
        "--task",
        "gen/boolean_expressions",
        "--limit",
        "2",
        "--max-reasoning-tokens",
        "8",
        "--out",
        ev.to_str().unwrap(),
    ]);
    let s = read_json(&ev.join("summary.json"));
    assert_eq!(s["prompt_ids"], r["final_prompt_ids"], "{s}");
    assert_eq!(s["prompt"], r["final_prompt"], "{s}");
    // The same folder without --resume is refused.
    let err = fails(greater().args(["optimize", "--task", "gen/boolean_expressions", "--out"]).arg(&run_dir));
    assert!(err.contains("--resume"), "{err}");
}

/// Final prompt ids (report) and current prompt ids (state) of a finished run.
fn outcome(dir: &Path) -> (Value, Value) {
    let r = read_json(&dir.join("report.json"));
    let s = read_json(&dir.join("state.json"));
    assert_eq!(s["step"], 3, "{}: {s}", dir.display());
    assert_eq!(lines(&dir.join("events.jsonl")), 3, "{}", dir.display());
    (r["final_prompt_ids"].clone(), s["control"].clone())
}

#[test]
fn resumed_runs_end_where_an_uninterrupted_run_ends() {
    let Some(_) = smollm2() else { return };
    let _lock = MODEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));

    // A: three steps in one go.
    run_strings(&tiny(&a, 3));

    // B: one step, then resumed and extended to three.
    run_strings(&tiny(&b, 1));
    assert_eq!(lines(&b.join("events.jsonl")), 1);
    ok(&["optimize", "--resume", b.to_str().unwrap(), "--steps", "3"]);

    // C: killed (SIGKILL) once its first step is recorded, then resumed.
    let args = tiny(&c, 3);
    let mut child = greater().args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while lines(&c.join("events.jsonl")) < 1 {
        assert!(start.elapsed() < Duration::from_secs(300), "run C wrote no event in 300 s");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("run C exited ({status}) before its first event");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = read_json(&c.join("state.json"));
    assert!(killed["step"].as_u64().unwrap() < 3, "run C finished before the kill: {killed}");
    ok(&["optimize", "--resume", c.to_str().unwrap()]);

    let (fa, sa) = outcome(&a);
    let (fb, sb) = outcome(&b);
    let (fc, sc) = outcome(&c);
    assert!(fa.as_array().is_some_and(|v| !v.is_empty()), "{fa}");
    assert_eq!(fa, fb, "final prompt ids: A vs B");
    assert_eq!(fa, fc, "final prompt ids: A vs C");
    assert_eq!(sa, sb, "state prompt ids: A vs B");
    assert_eq!(sa, sc, "state prompt ids: A vs C");
    // The resumed config records the extension.
    let cfg = std::fs::read_to_string(b.join("config.toml")).unwrap();
    assert!(cfg.contains("steps = 3"), "{cfg}");
}

#[test]
fn ctrl_c_stops_with_code_130_and_a_resume_hint() {
    let Some(_) = smollm2() else { return };
    let _lock = MODEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let child = greater().args(tiny(&dir, 6)).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while lines(&dir.join("events.jsonl")) < 1 {
        assert!(start.elapsed() < Duration::from_secs(300), "no event in 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted; resume with `greater optimize --resume"), "{err}");
    let state = read_json(&dir.join("state.json"));
    let step = state["step"].as_u64().unwrap();
    assert!((1..6).contains(&step), "{state}");
    assert_eq!(lines(&dir.join("events.jsonl")) as u64, step);
}

#[test]
fn export_random_writes_a_folder_that_greater_loads() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    ok(&["export-random", "tiny", model.to_str().unwrap(), "--seed", "3"]);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert!(model.join(f).is_file(), "{f} missing");
    }
    // The folder loads and generates (the text of random weights is arbitrary).
    ok(&["generate", "--model", model.to_str().unwrap(), "--prompt", "ab", "--max-new-tokens", "3"]);
    let err = fails(greater().args(["export-random", "gpt-5", dir.path().to_str().unwrap()]));
    assert!(err.contains("random:gpt-5") && err.contains("llama3-8b"), "{err}");
    // The config alone, for a peer that draws its own weights.
    let shape = dir.path().join("8b");
    ok(&["export-random", "llama3-8b", shape.to_str().unwrap(), "--config-only", "--dtype", "bf16"]);
    let config = read_json(&shape.join("config.json"));
    assert_eq!((config["hidden_size"].as_u64(), config["torch_dtype"].as_str()), (Some(4096), Some("bfloat16")));
    assert!(shape.join("tokenizer.json").is_file() && !shape.join("model.safetensors").exists());
}

#[test]
fn a_run_over_its_memory_budget_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    ok(&["export-random", "tiny", model.to_str().unwrap(), "--seed", "3"]);
    let args = |budget: &str, out: &Path| -> Vec<String> {
        let m = model.to_str().unwrap();
        ["optimize", "--model", m, "--task", "gen/boolean_expressions", "--train", "2", "--steps", "1"]
            .into_iter()
            .chain(["--max-reasoning-tokens", "4", "--no-final-eval", "--max-memory", budget, "--out"])
            .map(String::from)
            .chain([out.display().to_string()])
            .collect()
    };
    let refused = dir.path().join("refused");
    let err = fails(greater().args(args("1M", &refused)));
    assert!(err.contains("predicted to need") && err.contains("max_memory is 1 MiB"), "{err}");
    assert!(!refused.join("state.json").exists(), "nothing is written for a refused run");
    let fits = dir.path().join("fits");
    let fit_args = args("64G", &fits);
    let out = run(&fit_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("predicted peak memory"), "{}", text(&out.stderr));
    assert!(fits.join("state.json").exists());
}
