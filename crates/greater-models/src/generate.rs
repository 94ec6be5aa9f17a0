//! Greedy generation: batched, left-padded, KV-cached, stopping per sequence.
//!
//! Finished rows are dropped from the batch (and from the cache) at once, so a batch costs what
//! its live rows cost rather than what its longest chain costs.

use burn::tensor::{Int, Tensor, TensorData};

use crate::arch::CausalLm;
use crate::cache::KvCache;
use crate::layers::download;

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// The most new tokens per sequence.
    pub max_new_tokens: usize,
    /// Token ids that end a sequence (EOS, end-of-turn). Empty: only `max_new_tokens` stops.
    pub stop_ids: Vec<u32>,
}

/// One finished sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// New token ids, without the stop token.
    pub ids: Vec<u32>,
    /// The stop token that ended it, if one did.
    pub stop: Option<u32>,
}

/// Errors before any work is done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GenerateError {
    /// A prompt plus the new tokens would pass the model's context length.
    #[error("prompt {index} has {prompt} tokens; with {new} new tokens that exceeds the model's context of {context}")]
    ContextOverflow {
        /// Which prompt.
        index: usize,
        /// Its length.
        prompt: usize,
        /// `max_new_tokens`.
        new: usize,
        /// The model's `max_position_embeddings`.
        context: usize,
    },
    /// A scored range of prompt positions starts at 0 (nothing predicts it) or passes the prompt.
    #[error("prompt {index} has {prompt} tokens; positions {start}..{end} cannot be scored")]
    ScoredRange {
        /// Which prompt.
        index: usize,
        /// First scored position.
        start: usize,
        /// One past the last.
        end: usize,
        /// The prompt's length.
        prompt: usize,
    },
    /// A job's cached prefix is longer than its prompt, does not cover the scored positions before
    /// its end, or only some jobs of a run have one.
    #[error("job {index}: its cached prefix does not fit its prompt")]
    Prefix {
        /// Which job.
        index: usize,
    },
    /// An empty prompt has no position to predict from.
    #[error("prompt {index} is empty")]
    EmptyPrompt {
        /// Which prompt.
        index: usize,
    },
}

/// Run a left-padded batch of prompts through the model, leaving the cache filled.
///
/// Returns the logits of the last position of every row, `[batch, vocab]`, on the device; an
/// empty batch gives `[0, vocab]`. An empty prompt is an error (it has no position to predict
/// from), not a panic.
pub fn try_prefill(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    cache: &mut KvCache,
) -> Result<Tensor<2>, GenerateError> {
    if let Some(index) = prompts.iter().position(Vec::is_empty) {
        return Err(GenerateError::EmptyPrompt { index });
    }
    let v = model.config().vocab_size;
    if prompts.is_empty() {
        return Ok(Tensor::<2>::zeros([0, v], model.device()));
    }
    Ok(prefill_rows(model, prompts, cache))
}

/// The body of [`try_prefill`]: `prompts` is non-empty and has no empty row.
fn prefill_rows(model: &dyn CausalLm, prompts: &[Vec<u32>], cache: &mut KvCache) -> Tensor<2> {
    let (ids, valid) = left_pad(prompts);
    let b = prompts.len();
    let s = valid[0].len();
    let device = model.device();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, s]), device);
    let all_valid = valid.iter().all(|r| r.iter().all(|&v| v));
    let hidden = model.forward_hidden(model.embed(ids), (!all_valid).then_some(&valid[..]), cache);
    let h = hidden.dims()[2];
    let last = hidden.slice([0..b, s - 1..s, 0..h]);
    let v = model.config().vocab_size;
    model.lm_head(last).reshape([b, v])
}

/// Greedily continue every prompt. `on_token(row, id)` sees each new token as it is chosen
/// (stop tokens included), e.g. to stream text.
pub fn generate(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    on_token: impl FnMut(usize, u32),
) -> Result<Vec<Generation>, GenerateError> {
    let context = model.config().max_position_embeddings;
    for (index, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(GenerateError::EmptyPrompt { index });
        }
        if p.len() + opts.max_new_tokens > context {
            return Err(GenerateError::ContextOverflow { index, prompt: p.len(), new: opts.max_new_tokens, context });
        }
    }
    if prompts.is_empty() || opts.max_new_tokens == 0 {
        return Ok(prompts.iter().map(|_| Generation { ids: Vec::new(), stop: None }).collect());
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut cache = KvCache::new(prompts.len(), longest + opts.max_new_tokens);
    let logits = try_prefill(model, prompts, &mut cache)?;
    Ok(decode(model, cache, logits, opts, on_token))
}

/// Greedily continue from a filled cache whose last-position logits are `logits` (`[batch, vocab]`).
/// The cache needs room for `opts.max_new_tokens - 1` more slots.
pub fn decode(
    model: &dyn CausalLm,
    mut cache: KvCache,
    mut logits: Tensor<2>,
    opts: &GenerateOptions,
    mut on_token: impl FnMut(usize, u32),
) -> Vec<Generation> {
    let batch = cache.batch();
    let mut out: Vec<Generation> = (0..batch).map(|_| Generation { ids: Vec::new(), stop: None }).collect();
    // `live[i]` is the original index of the cache's row `i`.
    let mut live: Vec<usize> = (0..batch).collect();
    for step in 0..opts.max_new_tokens {
        let next = argmax_rows(logits);
        let mut keep = Vec::with_capacity(live.len());
        for (row, (&orig, &tok)) in live.iter().zip(&next).enumerate() {
            on_token(orig, tok);
            if opts.stop_ids.contains(&tok) {
                out[orig].stop = Some(tok);
            } else {
                out[orig].ids.push(tok);
                keep.push(row);
            }
        }
        if keep.is_empty() || step + 1 == opts.max_new_tokens {
            break;
        }
        let tokens: Vec<i64> = keep.iter().map(|&r| next[r] as i64).collect();
        cache.retain_rows(&keep);
        live = keep.iter().map(|&r| live[r]).collect();
        let b = live.len();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(tokens, [b, 1]), model.device());
        let hidden = model.forward_hidden(model.embed(ids), None, &mut cache);
        logits = model.lm_head(hidden).reshape([b, model.config().vocab_size]);
    }
    out
}

/// Left-pad `prompts` with id 0; returns ids `[batch · seq]` row-major and the validity mask.
pub fn left_pad(prompts: &[Vec<u32>]) -> (Vec<i64>, Vec<Vec<bool>>) {
    let s = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(prompts.len() * s);
    let mut valid = Vec::with_capacity(prompts.len());
    for p in prompts {
        let pad = s - p.len();
        ids.extend(std::iter::repeat_n(0i64, pad));
        ids.extend(p.iter().map(|&t| t as i64));
        valid.push((0..s).map(|i| i >= pad).collect());
    }
    (ids, valid)
}

/// Index of the largest value of each row of `[batch, vocab]` (the first on ties).
pub fn argmax_rows(logits: Tensor<2>) -> Vec<u32> {
    let v = logits.dims()[1];
    download(logits).chunks(v).map(argmax).collect()
}

/// Index of the largest value of `row` (the first on ties).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}
