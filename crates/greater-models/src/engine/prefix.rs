//! Prefix caching: the prompts of one optimisation step share their first tokens (chat header,
//! question, the prompt up to the optimised position), so those are run once per example and
//! every candidate prefills only the rest of its prompt.

use std::ops::Range;
use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData};

use super::{Reads, host, prefill};
use crate::arch::CausalLm;
use crate::cache::KvCache;
use crate::generate::left_pad;

/// The state after one prompt prefix: its keys and values, the logits at its last position and
/// the −log p of its scored tokens.
#[derive(Debug, Clone)]
pub struct Prefix {
    /// The prefix's ids.
    pub ids: Vec<u32>,
    /// One row, no padding.
    cache: KvCache,
    /// Host logits at the last position: they predict the token after the prefix.
    pub last_logits: Vec<f32>,
    /// The first scored position.
    scored_from: usize,
    /// −log p of tokens `scored_from..ids.len()`.
    nll: Vec<f32>,
}

impl Prefix {
    /// Whether this prefix can start `prompt`, whose `scored` positions it covers up to its end.
    pub(super) fn fits(&self, prompt: &[u32], scored: &Range<usize>) -> bool {
        prompt.len() > self.ids.len()
            && prompt.starts_with(&self.ids)
            && (scored.is_empty()
                || scored.start == self.scored_from.min(self.ids.len())
                || scored.start > self.ids.len())
    }
}

/// Run every prefix (`batch_size` at a time); `scored_from[i]` is the first position of prefix
/// `i` whose −log p its users will ask for (≥ 1).
pub fn prefill_prefixes(
    model: &dyn CausalLm,
    prefixes: &[Vec<u32>],
    scored_from: &[usize],
    batch_size: usize,
) -> Vec<Arc<Prefix>> {
    let mut order: Vec<usize> = (0..prefixes.len()).collect();
    order.sort_by_key(|&i| (prefixes[i].len(), i));
    let v = model.config().vocab_size;
    let mut out: Vec<Option<Arc<Prefix>>> = vec![None; prefixes.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| prefixes[i].clone()).collect();
        let scored: Vec<Range<usize>> = chunk.iter().map(|&i| scored_from[i].max(1)..prefixes[i].len()).collect();
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = KvCache::new(batch.len(), longest);
        let (nll, last) = prefill(model, &batch, &scored, &mut cache);
        for (k, (&i, nll)) in chunk.iter().zip(nll).enumerate() {
            let mut row = cache.clone();
            row.retain_rows(&[k]);
            row.compact(prefixes[i].len());
            let last_logits = last[k * v..(k + 1) * v].to_vec();
            let ids = prefixes[i].clone();
            out[i] = Some(Arc::new(Prefix { ids, cache: row, last_logits, scored_from: scored[k].start, nll }));
        }
    }
    out.into_iter().map(|p| p.expect("every prefix is run")).collect()
}

/// Stack the prefixes' rows into one cache of `capacity` slots and prefill the rest of every
/// prompt through it: what [`prefill`] returns for the whole prompts, and the cache.
pub(super) fn prefill_rest(
    model: &dyn CausalLm,
    prefixes: &[&Prefix],
    prompts: &[Vec<u32>],
    scored: &[Range<usize>],
    capacity: usize,
) -> (KvCache, Vec<Vec<f32>>, Vec<f32>) {
    let mut cache = KvCache::stack(prefixes.iter().map(|p| p.cache.clone()).collect(), capacity);
    let rests: Vec<Vec<u32>> = prefixes.iter().zip(prompts).map(|(p, q)| q[p.ids.len()..].to_vec()).collect();
    let (ids, valid) = left_pad(&rests);
    let (b, s) = (rests.len(), valid[0].len());
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, s]), model.device());
    let all_valid = valid.iter().all(|r| r.iter().all(|&v| v));
    let hidden = model.forward_hidden(model.embed(x), (!all_valid).then_some(&valid[..]), &mut cache);
    let mut reads = Reads::default();
    for (r, (p, q)) in prefixes.iter().zip(prompts).enumerate() {
        let (len, pad) = (p.ids.len(), s - rests[r].len());
        // Tokens after the prefix's first successor are predicted inside the rest.
        let inside = scored[r].clone().filter(|&t| t > len);
        reads.row(inside.map(|t| (r * s + pad + t - 1 - len, q[t])), r * s + s - 1);
    }
    let (inside, last) = reads.read(model, hidden);
    let nll = prefixes
        .iter()
        .zip(prompts)
        .zip(scored)
        .zip(inside)
        .map(|(((p, q), range), inside)| {
            let len = p.ids.len();
            let before = range.end.min(len).saturating_sub(range.start);
            let mut nll: Vec<f32> = p.nll[..before.min(p.nll.len())].to_vec();
            if range.contains(&len) {
                nll.push(host::nll(&p.last_logits, q[len], 1.0));
            }
            nll.extend(inside);
            nll
        })
        .collect();
    (cache, nll, last)
}
