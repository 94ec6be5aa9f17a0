//! The end of a run (SPEC A5): dev evaluation of the top prompts, the final prompt, and
//! train/dev/test accuracy of the initial and final prompts with the paired test difference.
//! Each evaluation is saved as soon as it is done, so a resumed run skips it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    let limit = |xs: &[Example]| -> Vec<Example> {
        if cfg.eval_limit == 0 { xs.to_vec() } else { xs.iter().take(cfg.eval_limit).cloned().collect() }
    };
    let dev = limit(&run.task.dev);
    let test = limit(&run.task.test);
    let mut evaluator = Evaluator::new(run, state)?;
    let mut final_ids = state.best.as_ref().map_or(state.control.clone(), |b| b.ids.clone());
    let mut dev_candidates = Vec::new();
    if cfg.final_eval && !dev.is_empty() && !state.top.is_empty() {
        (final_ids, dev_candidates) = choose_on_dev(&mut evaluator, state, &dev)?;
    }
    let mut initial = Accuracies::default();
    let mut fin = Accuracies::default();
    let mut test_difference = None;
    if cfg.final_eval {
        let splits: [(&str, &[Example]); 3] = [("train", &prep.examples), ("dev", &dev), ("test", &test)];
        for (split, examples) in splits {
            if examples.is_empty() {
                continue;
            }
            let a = evaluator.evaluate("initial", split, examples, &prep.initial)?;
            let b = evaluator.evaluate("final", split, examples, &final_ids)?;
            initial.set(split, a.scores.exact);
            fin.set(split, b.scores.exact);
            if split == "test" {
                test_difference = Some(PairedComparison::new(&a.correct(), &b.correct())?);
            }
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
            evaluation: evaluator.seconds,
        },
        history: state.history.clone(),
        config: cfg.clone(),
    };
    report::write(&run.dir, &report)?;
    Ok(report)
}

/// The top prompts on dev: the final prompt ([`best_on_dev`]) and every candidate's record.
fn choose_on_dev(
    evaluator: &mut Evaluator<'_, '_>,
    state: &RunState,
    dev: &[Example],
) -> Result<(Vec<u32>, Vec<DevCandidate>), OptError> {
    let mut candidates = Vec::new();
    for (i, p) in state.top.iter().enumerate() {
        let acc = evaluator.evaluate(&format!("top{i}"), "dev", dev, &p.ids)?.scores.exact.accuracy;
        candidates.push(DevCandidate {
            text: p.text.clone(),
            ids: p.ids.clone(),
            train_score: p.score,
            dev_accuracy: acc,
        });
    }
    let at = best_on_dev(&candidates).expect("`top` is not empty");
    Ok((state.top[at].ids.clone(), candidates))
}

/// SPEC A5: the candidate with the highest dev accuracy; on equal accuracy the lower training
/// score (lower is better), then the earlier.
fn best_on_dev(candidates: &[DevCandidate]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, c) in candidates.iter().enumerate() {
        let better = best.is_none_or(|b| {
            let b = &candidates[b];
            c.dev_accuracy > b.dev_accuracy || (c.dev_accuracy == b.dev_accuracy && c.train_score < b.train_score)
        });
        if better {
            best = Some(i);
        }
    }
    best
}

/// The final evaluations of one run. Each is saved as `evals/{label}-{split}.json` as soon as it
/// is done and read back on resume. Per split, the last evaluation's reasoning drafts the next
/// one's, and a prompt evaluated once on a split is not evaluated again (the final prompt is one
/// of the top prompts on dev). On train, a prompt whose reasoning the run kept (the initial one,
/// the top ones) is drafted from it: the same greedy chains, so only verified, never decoded
/// token by token.
struct Evaluator<'r, 'a> {
    run: &'r Run<'a>,
    state: &'r RunState,
    opts: EvalOptions,
    dir: PathBuf,
    drafts: HashMap<String, Vec<Vec<u32>>>,
    done: HashMap<(String, Vec<u32>), EvalResult>,
    /// Seconds spent evaluating in this process (saved evaluations cost none).
    seconds: f64,
}

impl<'r, 'a> Evaluator<'r, 'a> {
    fn new(run: &'r Run<'a>, state: &'r RunState) -> Result<Self, OptError> {
        let cfg = run.cfg;
        let opts = EvalOptions {
            max_reasoning_tokens: cfg.max_reasoning_tokens,
            max_answer_tokens: crate::eval::MAX_ANSWER_TOKENS,
            batch_size: cfg.batch_size,
            placement: cfg.placement(),
            draft_chunk: if cfg.draft { cfg.draft_chunk } else { 0 },
            draft_ngram: cfg.draft_ngram,
            continuous: cfg.continuous_batching,
        };
        let dir = run.dir.join("evals");
        std::fs::create_dir_all(&dir).map_err(|e| OptError::io(&dir, e))?;
        Ok(Self { run, state, opts, dir, drafts: HashMap::new(), done: HashMap::new(), seconds: 0.0 })
    }

    /// Prompt `ids` (called `label`) on `examples` of `split`: saved, done before, or run now.
    fn evaluate(
        &mut self,
        label: &str,
        split: &str,
        examples: &[Example],
        ids: &[u32],
    ) -> Result<EvalResult, OptError> {
        let path = self.dir.join(format!("{label}-{split}.json"));
        let key = (split.to_string(), ids.to_vec());
        let r = match (read_eval(&path)?, self.done.get(&key)) {
            (Some(r), _) => r,
            (None, Some(r)) => {
                let r = r.clone();
                write_eval(&path, &r)?;
                r
            }
            (None, None) => {
                let run = self.run;
                run.observer.message(&format!("evaluating {label} prompt on {split} ({} examples)", examples.len()));
                let prompt = PromptInput::Ids(ids.to_vec());
                let known = if split == "train" { self.state.reasoning_of(ids) } else { None };
                let draft = known.or_else(|| self.drafts.get(split).map(Vec::as_slice)).unwrap_or(&[]);
                let r =
                    evaluate_drafted(run.loaded, &run.task.spec, examples, &prompt, &self.opts, draft, run.observer)?;
                self.seconds += r.seconds;
                write_eval(&path, &r)?;
                r
            }
        };
        if r.records.iter().all(|rec| !rec.reasoning_ids.is_empty() || rec.reasoning_tokens == 0) {
            self.drafts.insert(split.to_string(), r.records.iter().map(|rec| rec.reasoning_ids.clone()).collect());
        }
        self.done.insert(key, r.clone());
        Ok(r)
    }
}

fn write_eval(path: &Path, r: &EvalResult) -> Result<(), OptError> {
    crate::optimize::state::write_atomic(path, &serde_json::to_vec(r).expect("serialises"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(train_score: f32, dev_accuracy: f64) -> DevCandidate {
        DevCandidate { text: String::new(), ids: Vec::new(), train_score, dev_accuracy }
    }

    #[test]
    fn the_final_prompt_is_the_best_on_dev() {
        assert_eq!(best_on_dev(&[]), None);
        assert_eq!(best_on_dev(&[cand(0.1, 0.2), cand(0.2, 0.4), cand(0.3, 0.3)]), Some(1));
        // Equal dev accuracy: the lower training score wins, wherever it stands.
        assert_eq!(best_on_dev(&[cand(0.1, 0.4), cand(0.2, 0.4)]), Some(0));
        assert_eq!(best_on_dev(&[cand(0.5, 0.4), cand(0.2, 0.4), cand(0.3, 0.4)]), Some(1));
        // Equal on both: the earlier.
        assert_eq!(best_on_dev(&[cand(0.2, 0.4), cand(0.2, 0.4)]), Some(0));
    }
}
