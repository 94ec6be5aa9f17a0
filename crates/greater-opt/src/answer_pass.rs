//! One forward over prompt · reasoning · extractor per example, then a greedy answer from its KV
//! cache: the prompt NLL (from the same forward's logits at the prompt positions), the graded
//! verdict (the evaluation's exact match, SPEC A6) and the teacher-forced mistake flag, read off
//! the greedy path: the greedy answer starts with the official answer tokens exactly when every
//! official token is the argmax given the official tokens before it.

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::generate::{GenerateOptions, decode, left_pad};
use greater_models::layers::download;
use greater_models::layers::log_softmax::log_softmax;
use greater_models::tokenizer::Tokenizer;
use greater_tasks::{Example, TaskSpec};

use crate::OptError;
use crate::layout::ExampleLayout;

pub use crate::eval::MAX_ANSWER_TOKENS;

/// What the pass learns about one example.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnswerOutcome {
    /// Mean −log p of the prompt tokens.
    pub prompt_nll: f32,
    /// Some official answer token is not the greedy choice (teacher-forced mistake).
    pub teacher_forced_mistake: bool,
    /// The greedy answer does not grade as the gold (the evaluation's verdict).
    pub graded_mistake: bool,
    /// The greedy answer ids.
    pub answer: Vec<u32>,
}

/// The pass for every example with prompt `control` and its `reasoning`, `batch_size` at a time.
#[allow(clippy::too_many_arguments)]
pub fn answer_pass(
    model: &dyn CausalLm,
    tok: &Tokenizer,
    spec: &TaskSpec,
    layouts: &[ExampleLayout],
    examples: &[Example],
    control: &[u32],
    reasoning: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<AnswerOutcome>, OptError> {
    let contexts: Vec<Vec<u32>> = layouts.iter().zip(reasoning).map(|(l, r)| l.answer_context(control, r)).collect();
    let mut order: Vec<usize> = (0..contexts.len()).collect();
    order.sort_by_key(|&i| (contexts[i].len(), i));
    let mut out = vec![None; contexts.len()];
    let opts = GenerateOptions { max_new_tokens: MAX_ANSWER_TOKENS, stop_ids: tok.stop_ids().to_vec() };
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&[u32]> = chunk.iter().map(|&i| &contexts[i][..]).collect();
        let starts: Vec<usize> = chunk.iter().map(|&i| layouts[i].prefix.len()).collect();
        let (nll, cache, last) = prefill_with_prompt_nll(model, &batch, &starts, control.len());
        let gens = decode(model, cache, last, &opts, |_, _| {});
        for ((&i, g), nll) in chunk.iter().zip(gens).zip(nll) {
            let official = &layouts[i].answer;
            let teacher_forced_mistake = !g.ids.starts_with(official);
            let text = tok.decode(&g.ids, true)?;
            let graded_mistake = !spec.score_answer(&examples[i], &text).correct;
            out[i] = Some(AnswerOutcome { prompt_nll: nll, teacher_forced_mistake, graded_mistake, answer: g.ids });
        }
    }
    Ok(out.into_iter().map(|o| o.expect("every example is answered")).collect())
}

/// Prefill a left-padded batch into a cache with room for the answer, and return each row's mean
/// prompt NLL (prompt `control_len` tokens from `starts[r]`), the cache, and the last logits.
fn prefill_with_prompt_nll(
    model: &dyn CausalLm,
    rows: &[&[u32]],
    starts: &[usize],
    control_len: usize,
) -> (Vec<f32>, KvCache, Tensor<2>) {
    let owned: Vec<Vec<u32>> = rows.iter().map(|r| r.to_vec()).collect();
    let (ids, valid) = left_pad(&owned);
    let (b, s) = (rows.len(), valid[0].len());
    let device = model.device();
    let mut cache = KvCache::new(b, s + MAX_ANSWER_TOKENS);
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, s]), device);
    let all_valid = valid.iter().all(|r| r.iter().all(|&v| v));
    let hidden = model.forward_hidden(model.embed(x), (!all_valid).then_some(&valid[..]), &mut cache);
    let h = hidden.dims()[2];
    // Rows read: the position before each prompt token, then each row's last position.
    let (mut picked, mut targets) = (Vec::new(), Vec::new());
    for (r, row) in rows.iter().enumerate() {
        let pad = s - row.len();
        for t in starts[r]..starts[r] + control_len {
            picked.push((r * s + pad + t - 1) as i64);
            targets.push(row[t] as i64);
        }
    }
    let n = picked.len();
    picked.extend((0..b).map(|r| (r * s + s - 1) as i64));
    let idx = Tensor::<1, Int>::from_data(TensorData::new(picked, [n + b]), device);
    let v = model.config().vocab_size;
    let logits = model.lm_head(hidden.reshape([b * s, h]).select(0, idx).reshape([1, n + b, h])).reshape([n + b, v]);
    let last = logits.clone().slice([n..n + b, 0..v]);
    let tgt = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), device);
    let nll = download(log_softmax(logits.slice([0..n, 0..v]), 1).gather(1, tgt).neg().reshape([n]));
    let per_row = nll.chunks(control_len.max(1)).map(|c| c.iter().sum::<f32>() / control_len as f32).collect();
    (per_row, cache, last)
}
