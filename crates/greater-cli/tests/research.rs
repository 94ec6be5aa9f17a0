//! The research workflow end to end on a tiny random model (no download): custom tasks with their
//! own field names and placement, run manifests with verify and replay, exports, attribution via
//! `explain`, and `bench parity` across backends' files.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{fails, greater, ok, read_json, text};

/// A tiny random model with weights from `seed`, exported to `path`.
fn export_tiny(path: PathBuf, seed: &str) -> PathBuf {
    ok(&["export-random", "tiny", path.to_str().unwrap(), "--seed", seed]);
    path
}

/// A run of `steps` steps of `model` on a generated task into `run`, with `extra` flags.
fn tiny_run(model: &Path, run: &Path, steps: &str, extra: &[&str]) {
    let (m, r) = (model.to_str().unwrap(), run.to_str().unwrap());
    let mut args =
        vec!["optimize", "--model", m, "--task", "gen/boolean_expressions", "--train", "2", "--steps", steps];
    args.extend(["--max-reasoning-tokens", "3", "--no-final-eval", "--out", r]);
    args.extend(extra);
    ok(&args);
}

fn ok_strings(args: &[String]) -> String {
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn bench_parity_compares_two_backends_files_and_fails_past_the_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let (f32_model, bf16_model) = (dir.path().join("f32"), dir.path().join("bf16"));
    ok(&["export-random", "tiny", f32_model.to_str().unwrap(), "--seed", "3"]);
    ok(&["export-random", "tiny", bf16_model.to_str().unwrap(), "--seed", "3", "--dtype", "bf16"]);
    let out = dir.path().join("out");
    let parity = |model: &Path, against: Option<&Path>| {
        let mut c = greater();
        c.args(["bench", "parity", "--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        if let Some(a) = against {
            c.args(["--against", a.to_str().unwrap()]);
        }
        c
    };
    assert!(parity(&f32_model, None).output().unwrap().status.success());
    let first = dir.path().join("first.json");
    std::fs::rename(out.join("parity-flex.json"), &first).unwrap();
    let p = read_json(&first);
    assert_eq!(p["logits"].as_array().unwrap().len(), 8 * 320);
    let grad: Vec<f64> = p["grad"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(grad.len(), 320);
    assert!(grad.iter().any(|&g| g != 0.0) && p["loss"].as_f64().unwrap().is_finite());
    assert_eq!(p["generated"].as_array().unwrap().len(), 16);
    // The same model on the same backend agrees exactly.
    let same = parity(&f32_model, Some(&first)).output().unwrap();
    assert!(same.status.success(), "{}", text(&same.stderr));
    let report = text(&same.stdout);
    assert!(report.contains("\"max_abs_logit_diff\": 0.0") && report.contains("\"same_generation\": true"), "{report}");
    // bf16-rounded weights are another model: past the tolerance, the command fails and says so.
    let err = fails(&mut parity(&bf16_model, Some(&first)));
    assert!(err.contains("over the tolerance"), "{err}");
}

#[test]
fn a_custom_task_with_other_field_names_placement_and_system_runs_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    ok(&["export-random", "tiny", model.to_str().unwrap(), "--seed", "3"]);
    let data = dir.path().join("parity.jsonl");
    let rows: Vec<String> =
        (0..30).map(|i| format!(r#"{{"question": "Is {i} even?", "answer": "{}"}}"#, ["Yes", "No"][i % 2])).collect();
    std::fs::write(&data, rows.join("\n")).unwrap();
    std::fs::write(dir.path().join("parity.toml"), "train = 4\ndev = 4\nextractor = \"So: $ \"\n").unwrap();
    let out = dir.path().join("run");
    let (m, d, o) = (model.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap());
    let base = ["optimize", "--model", m, "--task", d, "--train", "2", "--steps", "1", "--max-reasoning-tokens", "3"];
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--no-final-eval", "--input-field", "question", "--target-field", "answer"]);
    args.extend(["--placement", "before", "--system", "none", "--out", o]);
    ok(&args);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    for line in [
        "input_field = \"question\"",
        "target_field = \"answer\"",
        "prompt_placement = \"before\"",
        "system_prompt = \"\"",
    ] {
        assert!(config.contains(line), "{line} missing from\n{config}");
    }
    // Without the field names the file does not read, and the error names the field.
    let err = fails(greater().args(base).args(["--no-final-eval", "--out", dir.path().join("x").to_str().unwrap()]));
    assert!(err.contains("field `input`"), "{err}");
    // Field names belong to custom files only.
    let err = fails(greater().args(["optimize", "--task", "bbh/navigate", "--input-field", "q", "--steps", "1"]));
    assert!(err.contains("apply to custom task files"), "{err}");
}

#[test]
fn a_run_writes_a_manifest_that_verify_checks_and_replay_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let (model, run_dir) = (export_tiny(dir.path().join("tiny"), "3"), dir.path().join("run"));
    tiny_run(&model, &run_dir, "2", &[]);
    let r = run_dir.to_str().unwrap();
    let manifest = read_json(&run_dir.join("manifest.json"));
    let files: Vec<&str> = manifest["model"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(files.iter().any(|f| f.ends_with("model.safetensors")), "{files:?}");
    assert_eq!(manifest["examples"]["train"].as_array().unwrap().len(), 50, "ids of the whole train split");
    assert_eq!(manifest["config"]["seed"], 0);
    assert!(manifest["finished_utc"].is_string() && manifest["git_commit"].is_string(), "{manifest}");
    assert!(manifest["device"].as_str().unwrap().contains("threads"), "{manifest}");
    assert!(ok(&["verify", r]).contains("ok"));
    // explain: the chosen token is marked and every training example has its line.
    let why = ok(&["explain", r, "--step", "2"]);
    assert!(why.contains("step 2 (position") && why.contains("→"), "{why}");
    assert_eq!(why.matches("  delta ").count(), 2, "{why}");
    let err = fails(greater().args(["explain", r, "--step", "3"]));
    assert!(err.contains("steps 1 to 2; there is no step 3"), "{err}");
    // The same config again makes the same decisions.
    let replay = dir.path().join("replay");
    let out = ok(&["replay", r, "--out", replay.to_str().unwrap()]);
    assert!(out.contains("all 2 steps make the same decisions"), "{out}");
    // A decision that differs is named by step and kind.
    let events = run_dir.join("events.jsonl");
    let mut lines: Vec<Value> =
        std::fs::read_to_string(&events).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    lines[1]["chosen"] = Value::from(lines[1]["chosen"].as_u64().unwrap() + 1);
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&events, text.join("\n") + "\n").unwrap();
    let err = fails(greater().args(["replay", r, "--out", dir.path().join("replay2").to_str().unwrap()]));
    assert!(err.contains("step 1: the chosen token"), "{err}");
    // A changed weight file is named.
    let weights = model.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let err = fails(greater().args(["verify", r]));
    assert!(err.contains("1 of") && err.contains("model.safetensors") && err.contains("differs"), "{err}");
}

#[test]
fn export_writes_lm_eval_promptfoo_and_json_that_parse_with_the_prompt_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (model, run_dir) = (export_tiny(dir.path().join("tiny"), "3"), dir.path().join("run"));
    tiny_run(&model, &run_dir, "1", &["--placement", "before"]);
    let r = run_dir.to_str().unwrap();
    let prompt = read_json(&run_dir.join("report.json"))["final_prompt"].as_str().unwrap().to_string();
    let out = dir.path().join("export");
    let o = out.to_str().unwrap();
    ok(&["export", r, "--to", "json", "--out", o]);
    let record = read_json(&out.join("prompt.json"));
    assert_eq!(record["prompt"].as_str(), Some(prompt.as_str()));
    assert_eq!(record["user_turn"].as_str().unwrap(), format!("Use {prompt}. {{input}}"));

    ok(&["export", r, "--to", "lm-eval", "--out", o]);
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(out.join("greater_gen_boolean_expressions.yaml")).unwrap())
            .unwrap();
    assert_eq!(yaml["task"].as_str(), Some("greater_gen_boolean_expressions"));
    assert_eq!(yaml["output_type"].as_str(), Some("generate_until"));
    let doc = yaml["doc_to_text"].as_str().unwrap();
    assert_eq!(doc, format!("{{% raw %}}Use {prompt}. {{% endraw %}}{{{{input}}}}"));
    assert_eq!(yaml["filter_list"][0]["filter"][0]["regex_pattern"].as_str(), Some("(?i)\\b(true|false)\\b"));
    assert_eq!(yaml["generation_kwargs"]["do_sample"].as_bool(), Some(false));
    let data = std::fs::read_to_string(yaml["dataset_kwargs"]["data_files"]["test"].as_str().unwrap()).unwrap();
    let first: Value = serde_json::from_str(data.lines().next().unwrap()).unwrap();
    assert!(first["input"].is_string() && first["target"].is_string(), "{first}");

    ok(&["export", r, "--to", "promptfoo", "--out", o]);
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(out.join("promptfooconfig.yaml")).unwrap()).unwrap();
    assert_eq!(yaml["prompts"][0].as_str().unwrap(), format!("Use {prompt}. {{{{input}}}}"));
    let tests = yaml["tests"].as_sequence().unwrap();
    assert_eq!(tests.len(), data.lines().count(), "one test per test example");
    assert!(tests[0]["vars"]["target"].is_string());
    let check = yaml["defaultTest"]["assert"][0]["value"].as_str().unwrap();
    assert!(check.contains("matchAll") && check.contains("\"gi\""), "{check}");
}

#[test]
fn transfer_evaluates_every_run_on_every_model_with_paired_differences() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (export_tiny(dir.path().join("a"), "3"), export_tiny(dir.path().join("b"), "4"));
    let runs = [dir.path().join("run-a"), dir.path().join("run-b")];
    tiny_run(&a, &runs[0], "1", &[]);
    tiny_run(&b, &runs[1], "1", &[]);
    let models = format!("{},{}", a.display(), b.display());
    let out = dir.path().join("transfer");
    let printed = ok(&[
        "transfer",
        "--runs",
        runs[0].to_str().unwrap(),
        runs[1].to_str().unwrap(),
        "--models",
        &models,
        "--limit",
        "3",
        "--max-reasoning-tokens",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(printed.contains("run-a") && printed.contains("run-b"), "{printed}");
    let cells = read_json(&out.join("transfer.json"));
    let cells = cells.as_array().unwrap();
    assert_eq!(cells.len(), 4, "2 runs × 2 models");
    for c in cells {
        assert_eq!(c["initial"]["total"], 3);
        assert_eq!(c["paired"]["first"], c["initial"]);
        assert_eq!(c["paired"]["second"], c["fin"]);
    }
    // Runs of one task share the initial prompt's evaluation on each model.
    assert_eq!(cells[0]["initial"], cells[1]["initial"]);
    let html = std::fs::read_to_string(out.join("transfer.html")).unwrap();
    assert_eq!(html.matches("<td style=\"background:rgb(").count(), 4, "{html}");
}

#[test]
fn a_sweep_runs_its_jobs_with_two_workers_skips_finished_ones_and_emits_scripts() {
    let dir = tempfile::tempdir().unwrap();
    // A dot in the model's name, as in `qwen2.5`: job names and logs must not be cut at it.
    let model = dir.path().join("tiny-0.5b");
    ok(&["export-random", "tiny", model.to_str().unwrap(), "--seed", "3"]);
    let base = dir.path().join("base.toml");
    std::fs::write(&base, "train = 2\nsteps = 1\nmax_reasoning_tokens = 3\nfinal_eval = false\n").unwrap();
    let out = dir.path().join("sweep");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            ["sweep", "--tasks", "gen/boolean_expressions,gen/word_sorting", "--models"].map(String::from).to_vec();
        a.push(model.display().to_string());
        a.extend(
            ["--seeds", "0,1", "--config", base.to_str().unwrap(), "--out", out.to_str().unwrap()].map(String::from),
        );
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let first = ok_strings(&args(&["--workers", "2"]));
    assert!(first.contains("4 jobs: 0 finished (skipped), 4 to run with 2 worker(s)"), "{first}");
    let jobs = read_json(&out.join("sweep.json"));
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    for j in jobs {
        let run = Path::new(j["dir"].as_str().unwrap());
        assert!(run.join("report.json").exists(), "{run:?} did not finish");
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(config.contains("steps = 1"), "the base config reaches the job");
    }
    // Same settings: every job is found finished. Names carry the config hash.
    let again = ok_strings(&args(&[]));
    assert!(again.contains("4 jobs: 4 finished (skipped), 0 to run"), "{again}");
    let slurm = ok_strings(&args(&["--emit", "slurm"]));
    let script = std::fs::read_to_string(slurm.trim()).unwrap();
    assert!(script.contains("#SBATCH --array=0-3") && script.contains("commands.txt"), "{script}");
    let ray = ok_strings(&args(&["--emit", "ray"]));
    let script = std::fs::read_to_string(ray.trim()).unwrap();
    assert!(script.contains("@ray.remote") && script.contains("commands.txt"), "{script}");
    let commands = std::fs::read_to_string(out.join("commands.txt")).unwrap();
    assert_eq!(commands.lines().count(), 4);
    // One log per job, named after it.
    for j in jobs {
        let log = format!("{}.log", j["dir"].as_str().unwrap());
        assert!(Path::new(&log).is_file(), "{log}");
    }
    assert!(commands.lines().all(|l| l.contains("'optimize'")), "{commands}");
}
