//! Prefill and the output head's reads: which positions' next-token −log p and which last
//! positions a forward hands back.

use std::ops::Range;

use burn::tensor::{Int, Tensor, TensorData};

use crate::arch::CausalLm;
use crate::cache::KvCache;
use crate::generate::left_pad;
use crate::layers::download;
use crate::layers::log_softmax::log_softmax;

/// Prefill left-padded `prompts` into `cache`; return each row's −log p of its `scored` tokens
/// and the host logits of every row's last position (`[batch · vocab]`).
pub(crate) fn prefill(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    scored: &[Range<usize>],
    cache: &mut KvCache,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let (ids, valid) = left_pad(prompts);
    let (b, s) = (prompts.len(), valid[0].len());
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, s]), model.device());
    let all_valid = valid.iter().all(|r| r.iter().all(|&v| v));
    let hidden = model.forward_hidden(model.embed(x), (!all_valid).then_some(&valid[..]), cache);
    let mut reads = Reads::default();
    for (r, (p, range)) in prompts.iter().zip(scored).enumerate() {
        let pad = s - p.len();
        reads.row(range.clone().map(|t| (r * s + pad + t - 1, p[t])), r * s + s - 1);
    }
    reads.read(model, hidden)
}

/// Which rows of a forward's hidden states the output head reads: positions whose next token's
/// −log p is wanted, and each sequence's last position.
#[derive(Default)]
pub(crate) struct Reads {
    picked: Vec<i64>,
    targets: Vec<i64>,
    counts: Vec<usize>,
    last: Vec<i64>,
}

impl Reads {
    /// One sequence: `(flat position, token it predicts)` pairs, and its last flat position.
    pub(crate) fn row(&mut self, scored: impl Iterator<Item = (usize, u32)>, last: usize) {
        let before = self.picked.len();
        for (at, target) in scored {
            self.picked.push(at as i64);
            self.targets.push(i64::from(target));
        }
        self.counts.push(self.picked.len() - before);
        self.last.push(last as i64);
    }

    /// Run the head over the read rows of `hidden` (`[batch, seq, hidden]`): per sequence the
    /// −log p values, and the host logits of every last position (`[sequences · vocab]`).
    pub(crate) fn read(self, model: &dyn CausalLm, hidden: Tensor<3>) -> (Vec<Vec<f32>>, Vec<f32>) {
        let [b, s, h] = hidden.dims();
        let device = model.device();
        let v = model.config().vocab_size;
        let (n, m) = (self.picked.len(), self.last.len());
        let rows: Vec<i64> = self.picked.iter().chain(&self.last).copied().collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(rows, [n + m]), device);
        let logits =
            model.lm_head(hidden.reshape([b * s, h]).select(0, idx).reshape([1, n + m, h])).reshape([n + m, v]);
        let last = download(logits.clone().slice([n..n + m, 0..v]));
        let mut nll = Vec::new();
        if n > 0 {
            let tgt = Tensor::<2, Int>::from_data(TensorData::new(self.targets, [n, 1]), device);
            nll = download(log_softmax(logits.slice([0..n, 0..v]), 1).gather(1, tgt).neg().reshape([n]));
        }
        let mut rest = &nll[..];
        let per_row = self
            .counts
            .iter()
            .map(|&c| {
                let (mine, tail) = rest.split_at(c);
                rest = tail;
                mine.to_vec()
            })
            .collect();
        (per_row, last)
    }
}
