//! What follows a finished job's tail, read from its own cache: the greedy answer and the
//! log-probability of each label. The engine gathers finished rows until a batch is full, then
//! decodes their answers together ([`Answers::flush`]); evaluation scores labels after its own
//! prefill with the same [`label_logprobs`].

use burn::tensor::{Int, Tensor, TensorData};

use super::Finished;
use crate::arch::CausalLm;
use crate::cache::KvCache;
use crate::generate::{GenerateOptions, decode};
use crate::layers::download;
use crate::layers::log_softmax::log_softmax;

/// Finished jobs waiting for their answers, with the caches that end at their tails.
#[derive(Default)]
pub(super) struct Answers {
    /// Job index, its result so far, and the host logits after its tail.
    waiting: Vec<(usize, Finished, Vec<f32>)>,
    caches: Vec<KvCache>,
}

impl Answers {
    /// Jobs waiting.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Add the rows of `cache` (in order) as the jobs `jobs`.
    pub(super) fn add(&mut self, jobs: Vec<(usize, Finished, Vec<f32>)>, cache: KvCache) {
        debug_assert_eq!(jobs.len(), cache.batch());
        if jobs.is_empty() {
            return;
        }
        self.waiting.extend(jobs);
        self.caches.push(cache);
    }

    /// Decode every waiting job's answer (at most `max_tokens`, ending at a stop id) and score
    /// `labels`; the jobs in the order they were added.
    pub(super) fn flush(
        &mut self,
        model: &dyn CausalLm,
        max_tokens: usize,
        stop_ids: &[u32],
        labels: &[Vec<u32>],
    ) -> Vec<(usize, Finished)> {
        let waiting = std::mem::take(&mut self.waiting);
        let caches = std::mem::take(&mut self.caches);
        if waiting.is_empty() {
            return Vec::new();
        }
        let longest = caches.iter().map(KvCache::len).max().unwrap_or(0);
        let cache = KvCache::stack(caches, longest + max_tokens.max(1));
        let v = model.config().vocab_size;
        let b = waiting.len();
        let last: Vec<f32> = waiting.iter().flat_map(|w| w.2.iter().copied()).collect();
        let scores = if labels.is_empty() { vec![Vec::new(); b] } else { label_logprobs(model, &cache, &last, labels) };
        let answers = if max_tokens == 0 {
            vec![Vec::new(); b]
        } else {
            let logits = Tensor::<2>::from_data(TensorData::new(last, [b, v]), model.device());
            let opts = GenerateOptions { max_new_tokens: max_tokens, stop_ids: stop_ids.to_vec() };
            decode(model, cache, logits, &opts, |_, _| {}).into_iter().map(|g| g.ids).collect()
        };
        waiting
            .into_iter()
            .zip(answers.into_iter().zip(scores))
            .map(|((job, mut done, _), (answer, label_logprob))| {
                done.answer = answer;
                done.label_logprob = label_logprob;
                (job, done)
            })
            .collect()
    }
}

/// For each row of `cache` whose next-token logits are `first` (host, `[rows · vocab]`), the total
/// log-probability of each label's tokens after the row's context.
pub fn label_logprobs(model: &dyn CausalLm, cache: &KvCache, first: &[f32], labels: &[Vec<u32>]) -> Vec<Vec<f64>> {
    let v = model.config().vocab_size;
    let b = first.len() / v;
    let n_l = labels.len();
    let mut scores: Vec<Vec<f64>> = first
        .chunks(v)
        .map(|row| {
            let lse = log_sum_exp(row);
            labels.iter().map(|l| l.first().map_or(f64::NEG_INFINITY, |&t| f64::from(row[t as usize]) - lse)).collect()
        })
        .collect();
    let longest = labels.iter().map(Vec::len).max().unwrap_or(0);
    if longest <= 1 {
        return scores;
    }
    // Feed every label's tokens but the last after its row's context; the log-probability of
    // token k+1 is read at token k.
    let m = longest - 1;
    let mut c = cache.clone();
    let rows: Vec<usize> = (0..b).flat_map(|r| std::iter::repeat_n(r, n_l)).collect();
    c.retain_rows(&rows);
    if c.len() + m > c.capacity() {
        c.compact(c.longest_row() + m);
    }
    let mut ids = Vec::with_capacity(b * n_l * m);
    let mut valid = Vec::with_capacity(b * n_l);
    for _ in 0..b {
        for lab in labels {
            let fed = &lab[..lab.len().saturating_sub(1)];
            ids.extend((0..m).map(|k| fed.get(k).map_or(0, |&t| i64::from(t))));
            valid.push((0..m).map(|k| k < fed.len()).collect::<Vec<bool>>());
        }
    }
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b * n_l, m]), model.device());
    let logits = model.forward_embeds(model.embed(x), Some(&valid), &mut c);
    let lp = download(log_softmax(logits, 2));
    for (r, row) in scores.iter_mut().enumerate() {
        for (l, lab) in labels.iter().enumerate() {
            let at = r * n_l + l;
            for k in 1..lab.len() {
                row[l] += f64::from(lp[(at * m + k - 1) * v + lab[k] as usize]);
            }
        }
    }
    scores
}

/// log Σ exp(row), in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().map(|&x| f64::from(x)).fold(f64::NEG_INFINITY, f64::max);
    max + row.iter().map(|&x| (f64::from(x) - max).exp()).sum::<f64>().ln()
}
