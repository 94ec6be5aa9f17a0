//! The evaluation runner (SPEC A6): greedy reasoning with the prompt, the extractor appended,
//! a greedy answer continuation, and three scores — exact, flexible (from the reasoning) and,
//! for closed label sets, constrained (the label with the highest log-probability).

use std::time::Instant;

use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::engine::{DraftOptions, EngineOptions, EngineStats, Job, label_logprobs};
use greater_models::generate::{GenerateOptions, decode, try_prefill};
use greater_models::layers::download;
use greater_models::model::LoadedModel;
use greater_tasks::ScoreSummary;
use greater_tasks::{Example, TaskSpec};

use crate::layout::{ExampleLayout, Layouter, Placement};
use crate::rollout::{generate_all, generate_with_engine, reasoning_jobs};
use crate::{Observer, OptError};

/// Cap on answer tokens after the extractor (SPEC A6: 16); one constant for every caller.
pub const MAX_ANSWER_TOKENS: usize = 16;

/// How to evaluate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalOptions {
    /// Cap on reasoning tokens (SPEC A4: 512).
    pub max_reasoning_tokens: usize,
    /// Cap on answer tokens after the extractor (SPEC A6: 16).
    pub max_answer_tokens: usize,
    /// Sequences generated together.
    pub batch_size: usize,
    /// Placement of the prompt in the user turn.
    pub placement: Placement,
    /// Draft tokens verified per forward when a draft is given ([`evaluate_drafted`]; 0: off).
    #[serde(default)]
    pub draft_chunk: usize,
    /// Tokens looked up in the draft to re-synchronise after a miss.
    #[serde(default)]
    pub draft_ngram: usize,
    /// Refill a generation row as soon as its sequence stops.
    #[serde(default)]
    pub continuous: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            max_reasoning_tokens: 512,
            max_answer_tokens: MAX_ANSWER_TOKENS,
            batch_size: 8,
            placement: Placement::default(),
            draft_chunk: 8,
            draft_ngram: 3,
            continuous: true,
        }
    }
}

/// The prompt to evaluate: text (split into ids per example) or ids (an optimised prompt).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PromptInput {
    /// Prompt text, laid out after the frozen prefix.
    Text(String),
    /// Prompt token ids, used as they are.
    Ids(Vec<u32>),
}

/// Everything about one evaluated example (a line of `examples.jsonl`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExampleRecord {
    /// Index in the evaluated list.
    pub index: usize,
    /// The question.
    pub input: String,
    /// The rendered user turn (question, joiner, frozen prefix, prompt).
    pub user_turn: String,
    /// The model's reasoning.
    pub reasoning: String,
    /// Reasoning length in tokens.
    pub reasoning_tokens: usize,
    /// The reasoning ids (a draft for evaluating another prompt on the same example).
    #[serde(default)]
    pub reasoning_ids: Vec<u32>,
    /// The greedy continuation after the extractor, cut at its first newline.
    pub raw_answer: String,
    /// Its canonical form, `None` when unparseable.
    pub parsed: Option<String>,
    /// The normalised gold.
    pub gold: String,
    /// Exact match.
    pub correct: bool,
    /// The flexible reading of the reasoning.
    pub flexible: Option<String>,
    /// Whether the flexible reading is right.
    pub flexible_correct: bool,
    /// The constrained prediction (closed label sets).
    pub constrained: Option<String>,
    /// Whether the constrained prediction is right.
    pub constrained_correct: Option<bool>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalResult {
    /// Per example, in input order.
    pub records: Vec<ExampleRecord>,
    /// Accuracy with interval, flexible, unparseable rate, constrained.
    pub scores: ScoreSummary,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Reasoning and answer tokens generated.
    pub generated_tokens: usize,
    /// Draft tokens fed for verification, and how many of them were the greedy choice.
    #[serde(default)]
    pub drafted_tokens: usize,
    #[serde(default)]
    pub accepted_tokens: usize,
}

impl EvalResult {
    /// Exact-match correctness per example.
    pub fn correct(&self) -> Vec<bool> {
        self.records.iter().map(|r| r.correct).collect()
    }
}

/// Evaluate `prompt` on `examples`.
pub fn evaluate(
    loaded: &LoadedModel,
    spec: &TaskSpec,
    examples: &[Example],
    prompt: &PromptInput,
    opts: &EvalOptions,
    observer: &dyn Observer,
) -> Result<EvalResult, OptError> {
    evaluate_drafted(loaded, spec, examples, prompt, opts, &[], observer)
}

/// [`evaluate`], the reasoning of example `i` drafted from `drafts[i]` (another prompt's
/// reasoning for it; empty: none). The records are those of [`evaluate`]: a draft only saves work.
pub fn evaluate_drafted(
    loaded: &LoadedModel,
    spec: &TaskSpec,
    examples: &[Example],
    prompt: &PromptInput,
    opts: &EvalOptions,
    drafts: &[Vec<u32>],
    observer: &dyn Observer,
) -> Result<EvalResult, OptError> {
    let start = Instant::now();
    let model = &loaded.model;
    let tok = &loaded.tokenizer;
    let layouter = Layouter::new(loaded, spec, opts.placement.clone());
    let text_for_split = match prompt {
        PromptInput::Text(t) => t.clone(),
        PromptInput::Ids(ids) => tok.decode(ids, false)?,
    };
    let mut layouts: Vec<(ExampleLayout, Vec<u32>)> = Vec::with_capacity(examples.len());
    for (i, ex) in examples.iter().enumerate() {
        let (layout, ids) = layouter.example(i, ex, text_for_split.trim_start())?;
        let control = match prompt {
            PromptInput::Text(_) => ids,
            PromptInput::Ids(ids) => ids.clone(),
        };
        layouts.push((layout, control));
    }
    let labels = layouter.label_ids()?;
    let engine = opts.continuous || (opts.draft_chunk > 0 && !drafts.is_empty());
    let Answered { reasoning, answers, constrained, stats } = if engine {
        one_pass(model, tok.stop_ids(), &layouts, labels.as_deref(), opts, drafts, observer)?
    } else {
        two_pass(model, tok.stop_ids(), &layouts, labels.as_deref(), opts, observer)?
    };

    let mut records = Vec::with_capacity(examples.len());
    let (mut exact, mut flexible, mut cons) = (Vec::new(), Vec::new(), Vec::new());
    let mut generated_tokens = 0;
    let label_texts = spec.label_texts();
    for (i, ex) in examples.iter().enumerate() {
        let reasoning_text = tok.decode(&reasoning[i], true)?;
        let raw = tok.decode(&answers[i], true)?;
        let raw_answer = greater_tasks::cut_continuation(&raw).to_string();
        let score = spec.score_answer(ex, &raw);
        let flex = spec.score_flexible(ex, &reasoning_text);
        let cpred = constrained[i].and_then(|b| label_texts.as_ref().map(|l| greater_tasks::normalise(&l[b])));
        let ccorrect = cpred.as_ref().map(|p| *p == ex.target);
        if let Some(c) = ccorrect {
            cons.push(c);
        }
        generated_tokens += reasoning[i].len() + answers[i].len();
        records.push(ExampleRecord {
            index: i,
            input: ex.input.clone(),
            user_turn: layouter.user_turn(&ex.input, text_for_split.trim_start()),
            reasoning: reasoning_text,
            reasoning_tokens: reasoning[i].len(),
            reasoning_ids: reasoning[i].clone(),
            raw_answer,
            parsed: score.prediction.clone(),
            gold: ex.target.clone(),
            correct: score.correct,
            flexible: flex.prediction.clone(),
            flexible_correct: flex.correct,
            constrained: cpred,
            constrained_correct: ccorrect,
        });
        exact.push(score);
        flexible.push(flex);
    }
    let constrained_results = (labels.is_some() && !examples.is_empty()).then_some(&cons[..]);
    let scores = ScoreSummary::new(&exact, &flexible, constrained_results);
    Ok(EvalResult {
        records,
        scores,
        seconds: start.elapsed().as_secs_f64(),
        generated_tokens,
        drafted_tokens: stats.drafted,
        accepted_tokens: stats.accepted,
    })
}

/// Every example's reasoning, greedy answer after the extractor, and constrained label choice.
struct Answered {
    reasoning: Vec<Vec<u32>>,
    answers: Vec<Vec<u32>>,
    constrained: Vec<Option<usize>>,
    stats: EngineStats,
}

/// Reasoning, answer and labels in one engine pass per example (drafted, continuously batched):
/// the extractor is fed through the reasoning's own cache and the answer decoded from there.
fn one_pass(
    model: &dyn CausalLm,
    stop_ids: &[u32],
    layouts: &[(ExampleLayout, Vec<u32>)],
    labels: Option<&[Vec<u32>]>,
    opts: &EvalOptions,
    drafts: &[Vec<u32>],
    observer: &dyn Observer,
) -> Result<Answered, OptError> {
    let drafted = opts.draft_chunk > 0 && !drafts.is_empty();
    let eopts = EngineOptions {
        max_new_tokens: opts.max_reasoning_tokens,
        stop_ids: stop_ids.to_vec(),
        batch_size: opts.batch_size,
        draft: drafted.then_some(DraftOptions { chunk: opts.draft_chunk, ngram: opts.draft_ngram }),
        continuous: opts.continuous,
        tail_temperature: 1.0,
        answer_tokens: opts.max_answer_tokens,
        labels: labels.map(<[Vec<u32>]>::to_vec).unwrap_or_default(),
    };
    let prompts: Vec<Vec<u32>> = layouts.iter().map(|(l, c)| l.generation_prompt(c)).collect();
    let jobs: Vec<Job> = reasoning_jobs(&prompts, drafts)
        .into_iter()
        .zip(layouts)
        .map(|(j, (l, _))| Job { tail: l.extractor.clone(), ..j })
        .collect();
    observer.phase("reasoning", layouts.len());
    let stopped = || OptError::Invalid("stopped by the user".into());
    let (done, stats) = generate_with_engine(model, &jobs, &eopts, observer, &stopped)?;
    let constrained = done.iter().map(|f| labels.map(|_| best_label(&f.label_logprob))).collect();
    let (reasoning, answers) = done.into_iter().map(|f| (f.ids, f.answer)).unzip();
    Ok(Answered { reasoning, answers, constrained, stats })
}

/// Reasoning batch by batch, then a second pass that prefills prompt · reasoning · extractor and
/// answers: the plain path the one-pass results are checked against.
fn two_pass(
    model: &dyn CausalLm,
    stop_ids: &[u32],
    layouts: &[(ExampleLayout, Vec<u32>)],
    labels: Option<&[Vec<u32>]>,
    opts: &EvalOptions,
    observer: &dyn Observer,
) -> Result<Answered, OptError> {
    let prompts: Vec<Vec<u32>> = layouts.iter().map(|(l, c)| l.generation_prompt(c)).collect();
    observer.phase("reasoning", layouts.len());
    let reasoning = generate_all(model, &prompts, opts.max_reasoning_tokens, stop_ids, opts.batch_size, observer)?;
    let contexts: Vec<Vec<u32>> = layouts.iter().zip(&reasoning).map(|((l, c), r)| l.answer_context(c, r)).collect();
    observer.phase("answers", layouts.len());
    let mut answers = vec![Vec::new(); layouts.len()];
    let mut constrained: Vec<Option<usize>> = vec![None; layouts.len()];
    let mut order: Vec<usize> = (0..contexts.len()).collect();
    order.sort_by_key(|&i| (contexts[i].len(), i));
    let answer_opts = GenerateOptions { max_new_tokens: opts.max_answer_tokens, stop_ids: stop_ids.to_vec() };
    let longest_label = labels.map_or(0, |l| l.iter().map(Vec::len).max().unwrap_or(0));
    for chunk in order.chunks(opts.batch_size.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| contexts[i].clone()).collect();
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = KvCache::new(batch.len(), longest + opts.max_answer_tokens.max(longest_label));
        let logits = try_prefill(model, &batch, &mut cache)?;
        if let Some(labels) = labels {
            let scores = label_logprobs(model, &cache, &download(logits.clone()), labels);
            for (&i, s) in chunk.iter().zip(scores) {
                constrained[i] = Some(best_label(&s));
            }
        }
        let gens = decode(model, cache, logits, &answer_opts, |_, _| {});
        for (&i, g) in chunk.iter().zip(gens) {
            answers[i] = g.ids;
        }
        observer.advance(chunk.len());
    }
    Ok(Answered { reasoning, answers, constrained, stats: EngineStats::default() })
}

/// The label with the highest log-probability (ties: the first).
fn best_label(scores: &[f64]) -> usize {
    (0..scores.len()).fold(0, |best, l| if scores[l] > scores[best] { l } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constrained_prediction_is_the_most_likely_label_first_on_ties() {
        assert_eq!(best_label(&[-3.0, -1.0, -1.0, -2.0]), 1);
        assert_eq!(best_label(&[-0.5, -4.0]), 0);
        assert_eq!(best_label(&[-4.0]), 0);
    }

    #[test]
    fn answers_are_capped_at_sixteen_tokens() {
        // SPEC A6: greedy answer continuation of at most 16 tokens.
        assert_eq!(MAX_ANSWER_TOKENS, 16);
        assert_eq!(EvalOptions::default().max_answer_tokens, 16);
    }
}
