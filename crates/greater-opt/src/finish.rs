//! The end of a run (SPEC A5): dev evaluation of the top prompts, the final prompt, and
//! train/dev/test accuracy of the initial and final prompts with the paired test difference.
//! Each evaluation is saved as soon as it is done, so a resumed run skips it.

use std::collections::HashMap;
use std::path::Path;

use greater_tasks::Example;
use greater_tasks::{Accuracy, PairedComparison};

use crate::eval::{EvalOptions, EvalResult, PromptInput, evaluate_drafted};
use crate::optimize::{PhaseSeconds, Prepared, Run, RunState};
use crate::report::{Accuracies, DevCandidate, Report, Seconds};
use crate::{OptError, report};

/// Evaluate, choose the final prompt, and write `report.json` and `report.html`.
pub fn finish(run: &Run<'_>, prep: &Prepared, state: &RunState, total_seconds: f64) -> Result<Report, OptError> {
    let cfg = run.cfg;
    let tok = &run.loaded.tokenizer;
    let opts = EvalOptions {
        max_reasoning_tokens: cfg.max_reasoning_tokens,
        max_answer_tokens: crate::eval::MAX_ANSWER_TOKENS,
        batch_size: cfg.batch_size,
        placement: cfg.placement(),
        draft_chunk: if cfg.draft { cfg.draft_chunk } else { 0 },
        draft_ngram: cfg.draft_ngram,
        continuous: cfg.continuous_batching,
    };
    let limit = |xs: &[Example]| -> Vec<Example> {
        if cfg.eval_limit == 0 { xs.to_vec() } else { xs.iter().take(cfg.eval_limit).cloned().collect() }
    };
    let dev = limit(&run.task.dev);
    let test = limit(&run.task.test);
    let evals = run.dir.join("evals");
    std::fs::create_dir_all(&evals).map_err(|e| OptError::io(&evals, e))?;
    let mut eval_seconds = 0.0;
    // Per split, the last evaluation's reasoning drafts the next one's, and a prompt evaluated
    // once on a split is not evaluated again (the final prompt is one of the top prompts on dev).
    // On train, a prompt whose reasoning the run kept (the initial one, the top ones) is drafted
    // from it: the same greedy chains, so only verified, never decoded token by token.
    let mut drafts: HashMap<String, Vec<Vec<u32>>> = HashMap::new();
    let mut done: HashMap<(String, Vec<u32>), EvalResult> = HashMap::new();
    let mut cached = |label: &str, split: &str, examples: &[Example], ids: &[u32]| -> Result<EvalResult, OptError> {
        let path = evals.join(format!("{label}-{split}.json"));
        let r = match (read_eval(&path)?, done.get(&(split.to_string(), ids.to_vec()))) {
            (Some(r), _) => r,
            (None, Some(r)) => {
                let r = r.clone();
                crate::optimize::state::write_atomic(&path, &serde_json::to_vec(&r).expect("serialises"))?;
                r
            }
            (None, None) => {
                run.observer.message(&format!("evaluating {label} prompt on {split} ({} examples)", examples.len()));
                let prompt = PromptInput::Ids(ids.to_vec());
                let known = if split == "train" { state.reasoning_of(ids) } else { None };
                let draft = known.or_else(|| drafts.get(split).map(Vec::as_slice)).unwrap_or(&[]);
                let r = evaluate_drafted(run.loaded, &run.task.spec, examples, &prompt, &opts, draft, run.observer)?;
                eval_seconds += r.seconds;
                crate::optimize::state::write_atomic(&path, &serde_json::to_vec(&r).expect("serialises"))?;
                r
            }
        };
        if r.records.iter().all(|rec| !rec.reasoning_ids.is_empty() || rec.reasoning_tokens == 0) {
            drafts.insert(split.to_string(), r.records.iter().map(|rec| rec.reasoning_ids.clone()).collect());
        }
        done.insert((split.to_string(), ids.to_vec()), r.clone());
        Ok(r)
    };

    let mut dev_candidates = Vec::new();
    let mut final_ids = state.best.as_ref().map_or(state.control.clone(), |b| b.ids.clone());
    if cfg.final_eval && !dev.is_empty() && !state.top.is_empty() {
        let mut best: Option<(f64, usize)> = None;
        for (i, p) in state.top.iter().enumerate() {
            let r = cached(&format!("top{i}"), "dev", &dev, &p.ids)?;
            let acc = r.scores.exact.accuracy;
            // `top` is sorted by train score, so on equal dev accuracy the earlier (lower) wins.
            if best.is_none_or(|(a, _)| acc > a) {
                best = Some((acc, i));
            }
            dev_candidates.push(DevCandidate {
                text: p.text.clone(),
                ids: p.ids.clone(),
                train_score: p.score,
                dev_accuracy: acc,
            });
        }
        if let Some((_, i)) = best {
            final_ids = state.top[i].ids.clone();
        }
    }

    let mut initial = Accuracies::default();
    let mut fin = Accuracies::default();
    let mut test_difference = None;
    if cfg.final_eval {
        let splits: [(&str, &[Example]); 3] = [("train", &prep.examples), ("dev", &dev), ("test", &test)];
        let mut test_results: Vec<Vec<bool>> = Vec::new();
        for (split, examples) in splits {
            if examples.is_empty() {
                continue;
            }
            let a = cached("initial", split, examples, &prep.initial)?;
            let b = cached("final", split, examples, &final_ids)?;
            initial.set(split, a.scores.exact);
            fin.set(split, b.scores.exact);
            if split == "test" {
                test_results = vec![a.correct(), b.correct()];
            }
        }
        if test_results.len() == 2 {
            test_difference = Some(PairedComparison::new(&test_results[0], &test_results[1])?);
        }
    }
    let phase = |f: fn(&PhaseSeconds) -> f64| state.history.iter().map(|h| f(&h.seconds)).sum::<f64>();
    let report = Report {
        task: run.task.name.clone(),
        model: cfg.model.clone(),
        initial_prompt: tok.decode(&prep.initial, false)?,
        initial_prompt_ids: prep.initial.clone(),
        final_prompt: tok.decode(&final_ids, false)?,
        final_prompt_ids: final_ids,
        best_train_score: state.best.as_ref().map(|b| b.score),
        steps_run: state.step,
        accuracy_initial: initial,
        accuracy_final: fin,
        test_difference,
        dev_candidates,
        seconds: Seconds {
            total: total_seconds,
            generation: phase(|s| s.generation),
            proposal: phase(|s| s.proposal),
            gradient: phase(|s| s.gradient),
            selection: phase(|s| s.selection),
            evaluation: eval_seconds,
        },
        history: state.history.clone(),
        config: cfg.clone(),
    };
    report::write(&run.dir, &report)?;
    Ok(report)
}

fn read_eval(path: &Path) -> Result<Option<EvalResult>, OptError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| OptError::io(path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| OptError::BadFile { path: path.into(), reason: e.to_string() })
}

impl Accuracies {
    fn set(&mut self, split: &str, acc: Accuracy) {
        match split {
            "train" => self.train = Some(acc),
            "dev" => self.dev = Some(acc),
            _ => self.test = Some(acc),
        }
    }
}
