//! The engine's host-side reading of logits, and the forward that feeds finished rows' tails.

use burn::tensor::{Int, Tensor, TensorData};

use super::Ending;
use crate::arch::CausalLm;
use crate::cache::KvCache;
use crate::layers::download;

pub(super) use crate::generate::argmax;

/// −log softmax(row / t)[target], computed in f64.
pub(super) fn nll(row: &[f32], target: u32, t: f32) -> f32 {
    let t = f64::from(t);
    let max = row.iter().map(|&x| f64::from(x) / t).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|&x| (f64::from(x) / t - max).exp()).sum();
    (max + sum.ln() - f64::from(row[target as usize]) / t) as f32
}

/// The ids an ending row feeds: its pending token, then the tail — every tail token but the last
/// when nothing is read past the tail, all of it when something is (`whole`). With no pending
/// token the first tail token is predicted by the logits the row already has.
fn feed(e: &Ending, tail: &[u32], whole: bool) -> Vec<u32> {
    let fed = if whole { tail } else { &tail[..tail.len().saturating_sub(1)] };
    if tail.is_empty() && !whole {
        return Vec::new();
    }
    e.pending.into_iter().chain(fed.iter().copied()).collect()
}

/// Feed every ending's tail through its own rows of `cache` in one forward (the whole tail when
/// `whole`); per ending, the host logits of each fed position, and — when `whole` — the endings'
/// rows of the cache after the feed, with room for `room` more tokens.
pub(super) fn tail_logits(
    model: &dyn CausalLm,
    cache: &KvCache,
    endings: &[Ending],
    tails: &[&[u32]],
    whole: bool,
    room: usize,
) -> (Vec<Vec<Vec<f32>>>, Option<KvCache>) {
    let feeds: Vec<Vec<u32>> = endings.iter().zip(tails).map(|(e, t)| feed(e, t, whole)).collect();
    let f = feeds.iter().map(Vec::len).max().unwrap_or(0);
    if f == 0 && !whole {
        return (vec![Vec::new(); endings.len()], None);
    }
    let mut sub = cache.clone();
    sub.retain_rows(&endings.iter().map(|e| e.row).collect::<Vec<_>>());
    let room = if whole { room } else { 0 };
    if sub.len() + f + room > sub.capacity() {
        sub.compact(sub.longest_row() + f + room);
    }
    if f == 0 {
        return (vec![Vec::new(); endings.len()], Some(sub));
    }
    let b = feeds.len();
    let mut ids = Vec::with_capacity(b * f);
    let mut valid = Vec::with_capacity(b);
    let mut picked = Vec::new();
    for (r, fd) in feeds.iter().enumerate() {
        ids.extend(fd.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(0i64, f - fd.len()));
        valid.push((0..f).map(|i| i < fd.len()).collect::<Vec<bool>>());
        picked.extend((0..fd.len()).map(|i| (r * f + i) as i64));
    }
    let device = model.device();
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, f]), device);
    let all_valid = valid.iter().all(|r| r.iter().all(|&x| x));
    let hidden = model.forward_hidden(model.embed(x), (!all_valid).then_some(&valid[..]), &mut sub);
    let (h, v, n) = (hidden.dims()[2], model.config().vocab_size, picked.len());
    let idx = Tensor::<1, Int>::from_data(TensorData::new(picked, [n]), device);
    let logits = download(model.lm_head(hidden.reshape([b * f, h]).select(0, idx).reshape([1, n, h])).reshape([n, v]));
    let mut rows = logits.chunks(v).map(<[f32]>::to_vec);
    let per_ending = feeds.iter().map(|fd| rows.by_ref().take(fd.len()).collect()).collect();
    (per_ending, whole.then_some(sub))
}
