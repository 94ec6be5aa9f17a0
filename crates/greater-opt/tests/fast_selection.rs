//! Selection with every speed-up on (one pass, drafts, pruning, continuous batching) makes the
//! decisions of the plain path: same candidates, top-μ, winners, prompts and scores.

use std::path::Path;

use greater_models::config::Family;
use greater_models::model::LoadedModel;
use greater_models::testing::tiny_loaded;
use greater_opt::NoObserver;
use greater_opt::optimize::{AnswerTarget, CandidateScore, OptimizeConfig, Run, RunState, SelectionMistake, StepEvent};
use greater_tasks::Task;

fn task() -> Task {
    greater_tasks::load_task("gen/boolean_expressions", Path::new("/nonexistent")).unwrap()
}

fn config(dot_rule_fraction: f32) -> OptimizeConfig {
    OptimizeConfig {
        steps: 3,
        train: 4,
        initial_prompt: "go. ok".into(),
        max_reasoning_tokens: 16,
        mu: 64,
        top_k: 4,
        min_candidates: 3,
        dot_rule_fraction,
        batch_size: 3,
        grad_batch_size: 2,
        final_eval: false,
        draft_chunk: 4,
        draft_ngram: 2,
        ..Default::default()
    }
}

fn optimize(loaded: &LoadedModel, cfg: &OptimizeConfig) -> (RunState, Vec<StepEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let task = task();
    let run = Run { loaded, task: &task, cfg, dir: dir.path().to_path_buf(), observer: &NoObserver };
    let prep = run.prepare().unwrap();
    let state = run.optimize(&prep, false).unwrap();
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    (state, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

/// Runs `cfg` plain and fast; asserts equal decisions and returns the fast events.
fn same_decisions(loaded: &LoadedModel, cfg: &OptimizeConfig) -> Vec<StepEvent> {
    let (plain_state, plain) = optimize(loaded, &cfg.clone().without_accelerations());
    let (fast_state, fast) = optimize(loaded, cfg);
    assert_eq!(plain.len(), fast.len());
    for (i, (p, f)) in plain.iter().zip(&fast).enumerate() {
        let decision =
            |e: &StepEvent| (e.position, e.candidates.clone(), e.top_mu.clone(), e.chosen, e.prompt_ids.clone());
        assert_eq!(decision(p), decision(f), "step {i}");
        assert!((p.score - f.score).abs() <= 1e-5, "step {i}: winner's score {} vs {}", p.score, f.score);
        for s in &f.selection {
            let q = p.selection.iter().find(|q| q.token == s.token).expect("the fast path scores no extra candidate");
            match s.pruned_after {
                None => {
                    assert!((q.score - s.score).abs() <= 1e-5, "step {i} {:?}: {} vs {}", s.text, q.score, s.score);
                    let flags = |c: &CandidateScore| {
                        (c.mistake_rate, c.teacher_forced_mistake_rate, c.graded_mistake_rate, c.flag_disagreements)
                    };
                    assert_eq!(flags(q), flags(s), "step {i} {:?}: flags", s.text);
                }
                // A pruned candidate's bound is below its true score and above the winner's.
                Some(_) => assert!(s.score <= q.score + 1e-5 && s.score > f.score, "step {i} {:?}", s.text),
            }
        }
    }
    assert_eq!(
        (plain_state.control, plain_state.best.map(|b| b.ids)),
        (fast_state.control, fast_state.best.map(|b| b.ids))
    );
    fast
}

#[test]
fn fast_selection_makes_the_plain_decisions() {
    for (family, seed) in [(Family::Llama, 11), (Family::Qwen2, 5)] {
        let loaded = tiny_loaded(family, seed).unwrap();
        // The '.' rule never applies: every candidate is evaluated or pruned.
        let scored = same_decisions(&loaded, &config(10.0));
        // The '.' rule from position 0: a '.'-like candidate wins alone.
        let dotted = same_decisions(&loaded, &config(0.0));
        let all: Vec<&StepEvent> = scored.iter().chain(&dotted).collect();
        let sum = |f: fn(&StepEvent) -> usize| all.iter().map(|e| f(e)).sum::<usize>();
        // Each speed-up did something, so a broken one cannot hide behind an idle one.
        assert!(sum(|e| e.cost.accepted_tokens) > 0, "{family:?}: no draft token accepted");
        // A random model gets every answer wrong, so no candidate falls behind on mistakes and
        // pruning has nothing to drop here: prune.rs tests the rule over random score sequences,
        // and the SmolLM2 and Qwen tests below exercise it on real models.
        assert!(sum(|e| e.cost.skipped_candidates) > 0, "{family:?}: the '.' shortcut never fired");
    }
}

/// The graded signal (issue 18): the answer decoded from the candidate's own cache gives the
/// plain answer pass's flags, so the decisions are the plain path's.
fn graded(cfg: OptimizeConfig) -> OptimizeConfig {
    OptimizeConfig { selection_mistake: SelectionMistake::Graded, answer_target: AnswerTarget::Variants, ..cfg }
}

#[test]
fn fast_graded_selection_makes_the_plain_decisions() {
    for (family, seed) in [(Family::Llama, 11), (Family::Qwen2, 5)] {
        let loaded = tiny_loaded(family, seed).unwrap();
        let scored = same_decisions(&loaded, &graded(config(10.0)));
        assert!(scored.iter().flat_map(|e| &e.selection).all(|c| c.graded_mistake_rate.is_some()));
        same_decisions(&loaded, &graded(config(0.0)));
    }
}

/// A cached real model; a missing default model fails under `GREATER_REQUIRE_MODELS=1` (CI
/// fetches only the default one, so the others are skipped where they are absent).
fn real_model(name: &str, required: bool) -> Option<LoadedModel> {
    let cache = std::env::var_os("GREATER_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("greater")))?;
    let path = cache.join(format!("models/{name}.gguf"));
    if !path.exists() {
        let require = required && std::env::var("GREATER_REQUIRE_MODELS").is_ok_and(|v| v == "1");
        assert!(!require, "{} missing (GREATER_REQUIRE_MODELS=1)", path.display());
        eprintln!("note: {} missing; skipping", path.display());
        return None;
    }
    Some(LoadedModel::load(&path, &greater_models::default_device()).unwrap())
}

fn real_config(train: usize, tokens: usize) -> OptimizeConfig {
    OptimizeConfig {
        steps: 3,
        train,
        max_reasoning_tokens: tokens,
        batch_size: 4,
        final_eval: false,
        ..Default::default()
    }
}

#[test]
fn fast_selection_makes_the_plain_decisions_on_smollm2() {
    let Some(loaded) = real_model("smollm2-135m-instruct", true) else { return };
    let fast = same_decisions(&loaded, &real_config(4, 24));
    assert!(fast.iter().map(|e| e.cost.accepted_tokens).sum::<usize>() > 0, "no draft token accepted");
}

#[test]
fn fast_graded_selection_makes_the_plain_decisions_on_smollm2() {
    let Some(loaded) = real_model("smollm2-135m-instruct", true) else { return };
    let fast = same_decisions(&loaded, &graded(real_config(4, 24)));
    let rates: Vec<f32> = fast.iter().flat_map(|e| &e.selection).filter_map(|c| c.graded_mistake_rate).collect();
    eprintln!("smollm2 graded mistake rates: {rates:?}");
    assert!(!rates.is_empty());
}

/// Evaluation in one engine pass (reasoning, then the extractor through its cache, the answer and
/// the label scores from there) writes the records of the two-pass plain path on a real model.
#[test]
fn one_pass_evaluation_gives_the_plain_records_on_smollm2() {
    use greater_opt::eval::{EvalOptions, PromptInput, evaluate};
    let Some(loaded) = real_model("smollm2-135m-instruct", true) else { return };
    let Some(data) = std::env::var_os("GREATER_DATA") else {
        assert!(std::env::var("GREATER_REQUIRE_MODELS").map_or(true, |v| v != "1"), "GREATER_DATA unset");
        return;
    };
    let task = greater_tasks::load_task("bbh/boolean_expressions", Path::new(&data)).unwrap();
    let examples = &task.dev[..10];
    let fast = EvalOptions { max_reasoning_tokens: 48, batch_size: 4, ..Default::default() };
    let plain = EvalOptions { draft_chunk: 0, continuous: false, ..fast.clone() };
    let prompt = PromptInput::Text(greater_tasks::DEFAULT_INITIAL_PROMPT.into());
    let want = evaluate(&loaded, &task.spec, examples, &prompt, &plain, &NoObserver).unwrap();
    let got = evaluate(&loaded, &task.spec, examples, &prompt, &fast, &NoObserver).unwrap();
    assert_eq!(got.records, want.records);
    assert!(want.records.iter().any(|r| r.constrained.is_some()), "labels were scored");
}

#[test]
fn fast_selection_makes_the_plain_decisions_on_qwen() {
    let Some(loaded) = real_model("qwen2.5-coder-0.5b-instruct", false) else { return };
    let fast = same_decisions(&loaded, &real_config(6, 32));
    let sum = |f: fn(&StepEvent) -> usize| fast.iter().map(f).sum::<usize>();
    eprintln!(
        "qwen: accepted {} of {} drafted, pruned {} candidates",
        sum(|e| e.cost.accepted_tokens),
        sum(|e| e.cost.drafted_tokens),
        sum(|e| e.cost.pruned_candidates)
    );
    assert!(sum(|e| e.cost.accepted_tokens) > 0, "no draft token accepted");
}

#[test]
fn drafted_continuous_evaluation_gives_the_plain_records() {
    use greater_opt::eval::{EvalOptions, PromptInput, evaluate, evaluate_drafted};
    let loaded = tiny_loaded(Family::Llama, 11).unwrap();
    let task = task();
    let examples = &task.test[..5];
    let base = EvalOptions { max_reasoning_tokens: 12, batch_size: 2, ..Default::default() };
    let plain = EvalOptions { draft_chunk: 0, continuous: false, ..base.clone() };
    let first = PromptInput::Text("Think step by step.".into());
    let second = PromptInput::Text("Think step by step!".into());
    let a = evaluate(&loaded, &task.spec, examples, &first, &plain, &NoObserver).unwrap();
    let want = evaluate(&loaded, &task.spec, examples, &second, &plain, &NoObserver).unwrap();
    let drafts: Vec<Vec<u32>> = a.records.iter().map(|r| r.reasoning_ids.clone()).collect();
    let got = evaluate_drafted(&loaded, &task.spec, examples, &second, &base, &drafts, &NoObserver).unwrap();
    assert_eq!(got.records, want.records);
    assert_eq!(evaluate(&loaded, &task.spec, examples, &first, &base, &NoObserver).unwrap().records, a.records);
}

/// The end of a run with drafted evaluations and dev-result reuse writes the records the plain
/// path writes, every split keeps its own examples, and train evaluations are drafted from the
/// reasoning the run kept.
#[test]
fn drafted_final_evaluation_writes_the_plain_records() {
    let loaded = tiny_loaded(Family::Llama, 11).unwrap();
    let task = task();
    let cfg = OptimizeConfig { final_eval: true, eval_limit: 5, top_prompts: 2, ..config(10.0) };
    let records = |cfg: &OptimizeConfig| {
        let dir = tempfile::tempdir().unwrap();
        let run = Run { loaded: &loaded, task: &task, cfg, dir: dir.path().to_path_buf(), observer: &NoObserver };
        let prep = run.prepare().unwrap();
        let state = run.optimize(&prep, false).unwrap();
        let report = greater_opt::finish::finish(&run, &prep, &state, 0.0).unwrap();
        let mut out = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(dir.path().join("evals")).unwrap() {
            let path = entry.unwrap().path();
            let r: greater_opt::eval::EvalResult =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            out.insert(path.file_name().unwrap().to_string_lossy().into_owned(), r);
        }
        (report.final_prompt_ids, out)
    };
    let (fast_ids, fast) = records(&cfg);
    let (plain_ids, plain) = records(&cfg.clone().without_accelerations());
    assert_eq!(fast_ids, plain_ids);
    assert_eq!(fast.keys().collect::<Vec<_>>(), plain.keys().collect::<Vec<_>>());
    for (name, r) in &fast {
        assert_eq!(r.records, plain[name].records, "{name}");
        let train = name.ends_with("-train.json");
        let want = if train { cfg.train } else { cfg.eval_limit };
        assert_eq!(r.records.len(), want, "{name} holds its own split");
        if train {
            // The run kept the initial and top prompts' train reasoning: a perfect draft.
            assert!(r.drafted_tokens > 0, "{name}: not drafted from the run's reasoning");
            assert_eq!(r.accepted_tokens, r.drafted_tokens, "{name}: the run's reasoning was not the greedy one");
        }
    }
}

/// `keep_current` with the speed-ups on (the current token's score from the gradient pass) keeps
/// the tokens the plain path keeps (its score from a scoring pass).
#[test]
fn fast_selection_keeps_the_current_token_where_the_plain_path_does() {
    // Models and seeds under which the current token sometimes beats the top-μ candidate.
    for (family, seed) in [(Family::Llama, 5), (Family::Qwen2, 2)] {
        let loaded = tiny_loaded(family, seed).unwrap();
        let cfg = OptimizeConfig { mu: 1, steps: 8, keep_current: true, ..config(10.0) };
        let fast = same_decisions(&loaded, &cfg);
        let kept = fast.iter().filter(|e| e.current_token == Some(e.chosen) && !e.top_mu.contains(&e.chosen)).count();
        assert!(kept > 0, "{family:?}: the current token was never kept from outside the top-μ");
    }
}
