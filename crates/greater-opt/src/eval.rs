//! The evaluation runner (SPEC A6): greedy reasoning with the prompt, the extractor appended,
//! a greedy answer continuation, and three scores — exact, flexible (from the reasoning) and,
//! for closed label sets, constrained (the label with the highest log-probability).

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::engine::{DraftOptions, EngineOptions};
use greater_models::generate::{GenerateOptions, decode, try_prefill};
use greater_models::layers::download;
use greater_models::layers::log_softmax::log_softmax;
use greater_models::model::LoadedModel;
use greater_tasks::ScoreSummary;
use greater_tasks::{Example, TaskSpec};

use crate::layout::{ExampleLayout, Layouter, Placement};
use crate::rollout::{generate_all, generate_with_engine};
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
    let prompts: Vec<Vec<u32>> = layouts.iter().map(|(l, c)| l.generation_prompt(c)).collect();
    observer.phase("reasoning", examples.len());
    let reasoning = reasoning(model, &prompts, tok.stop_ids(), opts, drafts, observer)?;
    let contexts: Vec<Vec<u32>> = layouts.iter().zip(&reasoning).map(|((l, c), r)| l.answer_context(c, r)).collect();
    let labels = layouter.label_ids()?;
    observer.phase("answers", examples.len());
    let mut answers = vec![Vec::new(); examples.len()];
    let mut constrained: Vec<Option<usize>> = vec![None; examples.len()];
    let mut order: Vec<usize> = (0..contexts.len()).collect();
    order.sort_by_key(|&i| (contexts[i].len(), i));
    let answer_opts = GenerateOptions { max_new_tokens: opts.max_answer_tokens, stop_ids: tok.stop_ids().to_vec() };
    for chunk in order.chunks(opts.batch_size.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| contexts[i].clone()).collect();
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0);
        let extra =
            opts.max_answer_tokens.max(labels.as_ref().map_or(0, |l| l.iter().map(Vec::len).max().unwrap_or(0)));
        let mut cache = KvCache::new(batch.len(), longest + extra);
        let logits = try_prefill(model, &batch, &mut cache)?;
        if let Some(labels) = &labels {
            let best = constrained_choice(model, &cache, logits.clone(), labels);
            for (&i, b) in chunk.iter().zip(best) {
                constrained[i] = Some(b);
            }
        }
        let gens = decode(model, cache, logits, &answer_opts, |_, _| {});
        for (&i, g) in chunk.iter().zip(gens) {
            answers[i] = g.ids;
        }
        observer.advance(chunk.len());
    }

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
    Ok(EvalResult { records, scores, seconds: start.elapsed().as_secs_f64(), generated_tokens })
}

/// Greedy reasoning for `prompts`: by the engine (drafted, continuously batched) when the options
/// ask for it, otherwise batch by batch.
fn reasoning(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    stop_ids: &[u32],
    opts: &EvalOptions,
    drafts: &[Vec<u32>],
    observer: &dyn Observer,
) -> Result<Vec<Vec<u32>>, OptError> {
    let drafted = opts.draft_chunk > 0 && !drafts.is_empty();
    if !opts.continuous && !drafted {
        return generate_all(model, prompts, opts.max_reasoning_tokens, stop_ids, opts.batch_size, observer);
    }
    let eopts = EngineOptions {
        max_new_tokens: opts.max_reasoning_tokens,
        stop_ids: stop_ids.to_vec(),
        batch_size: opts.batch_size,
        draft: drafted.then_some(DraftOptions { chunk: opts.draft_chunk, ngram: opts.draft_ngram }),
        continuous: opts.continuous,
        tail_temperature: 1.0,
    };
    let stopped = || OptError::Invalid("stopped by the user".into());
    Ok(generate_with_engine(model, prompts, drafts, &eopts, observer, &stopped)?.0)
}

/// For each row of a prefilled batch, the index of the label whose tokens have the highest total
/// log-probability after the context (ties: the first label).
fn constrained_choice(
    model: &dyn CausalLm,
    cache: &KvCache,
    last_logits: Tensor<2>,
    labels: &[Vec<u32>],
) -> Vec<usize> {
    let [b, v] = last_logits.dims();
    let first = download(log_softmax(last_logits, 1));
    let n_l = labels.len();
    let mut scores = vec![0.0f64; b * n_l];
    for r in 0..b {
        for (l, ids) in labels.iter().enumerate() {
            scores[r * n_l + l] = ids.first().map_or(f64::NEG_INFINITY, |&t| first[r * v + t as usize] as f64);
        }
    }
    let longest = labels.iter().map(Vec::len).max().unwrap_or(0);
    if longest > 1 {
        // Feed every label's tokens but the last after its row's context; the log-probability of
        // token k+1 is read at token k.
        let mut c = cache.clone();
        let rows: Vec<usize> = (0..b).flat_map(|r| std::iter::repeat_n(r, n_l)).collect();
        c.retain_rows(&rows);
        let m = longest - 1;
        let mut ids = Vec::with_capacity(b * n_l * m);
        let mut valid = Vec::with_capacity(b * n_l);
        for _ in 0..b {
            for lab in labels {
                let fed = &lab[..lab.len().saturating_sub(1)];
                ids.extend((0..m).map(|k| fed.get(k).map_or(0, |&t| t as i64)));
                valid.push((0..m).map(|k| k < fed.len()).collect::<Vec<bool>>());
            }
        }
        let device = model.device();
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b * n_l, m]), device);
        let logits = model.forward_embeds(model.embed(x), Some(&valid), &mut c);
        let lp = download(log_softmax(logits, 2));
        for r in 0..b {
            for (l, lab) in labels.iter().enumerate() {
                let row = r * n_l + l;
                for k in 1..lab.len() {
                    scores[row] += lp[(row * m + k - 1) * v + lab[k] as usize] as f64;
                }
            }
        }
    }
    (0..b)
        .map(|r| {
            let row = &scores[r * n_l..(r + 1) * n_l];
            (0..n_l).fold(0, |best, l| if row[l] > row[best] { l } else { best })
        })
        .collect()
}
