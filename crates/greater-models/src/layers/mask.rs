//! Additive attention masks, built on the host from the cache's bookkeeping.
//!
//! ```text
//! causal, 4 tokens          sliding window 2          left padding (row starts with a pad)
//!   k: 0 1 2 3                k: 0 1 2 3                k: 0 1 2 3
//! q0   x . . .              q0   x . . .              q0   x . . .   (a pad sees itself only)
//! q1   x x . .              q1   x x . .              q1   . x . .
//! q2   x x x .              q2   . x x .              q2   . x x .
//! q3   x x x x              q3   . . x x              q3   . x x x
//! ```

use burn::tensor::{Device, Tensor, TensorData};

/// The value added to a blocked score: −∞, whose `exp` is an exact 0 on libm's fast path. A
/// finite `f32::MIN` gives the same 0, but through `expf`'s underflow path (errno and all), which
/// `perf` showed as 3 % of a gradient pass. Every row of a mask keeps at least one open entry (a
/// pad sees itself), so a softmax never meets −∞ − (−∞).
pub const BLOCKED: f32 = f32::NEG_INFINITY;

/// What each key slot and each new query is, for one row of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Whether the token is real (not padding).
    pub valid: bool,
    /// Its position id (RoPE position), meaningful when `valid`.
    pub pos: usize,
}

/// Build an additive mask `[batch, 1, 1, new, total]`.
///
/// `keys[r]` describes every key slot of row `r` (cached slots followed by the `new` ones);
/// the query `i` is key slot `total - new + i`. `window` limits attention to keys whose position
/// is within `window - 1` of the query's (Hugging Face `sliding_window` semantics).
pub fn build(keys: &[Vec<Slot>], new: usize, window: Option<usize>, device: &Device) -> Tensor<5> {
    let b = keys.len();
    let total = keys.first().map_or(0, Vec::len);
    let mut m = vec![BLOCKED; b * new * total];
    for (r, row) in keys.iter().enumerate() {
        for i in 0..new {
            let qslot = total - new + i;
            let q = row[qslot];
            let out = &mut m[(r * new + i) * total..(r * new + i + 1) * total];
            if !q.valid {
                out[qslot] = 0.0;
                continue;
            }
            for (j, k) in row[..=qslot].iter().enumerate() {
                let in_window = window.is_none_or(|w| q.pos < k.pos + w);
                if k.valid && k.pos <= q.pos && in_window {
                    out[j] = 0.0;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [b, 1, 1, new, total]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::download;

    fn row(valid: &[bool]) -> Vec<Slot> {
        let mut pos = 0;
        valid
            .iter()
            .map(|&v| {
                let s = Slot { valid: v, pos: if v { pos } else { 0 } };
                pos += v as usize;
                s
            })
            .collect()
    }

    fn pattern(m: Tensor<5>, n: usize) -> Vec<String> {
        let v = download(m);
        v.chunks(n).map(|r| r.iter().map(|&x| if x == 0.0 { 'x' } else { '.' }).collect()).collect()
    }

    #[test]
    fn causal_sliding_and_padding_match_the_drawing() {
        let device = crate::device::default_device();
        let causal = build(&[row(&[true; 4])], 4, None, &device);
        assert_eq!(pattern(causal, 4), ["x...", "xx..", "xxx.", "xxxx"]);
        let sliding = build(&[row(&[true; 4])], 4, Some(2), &device);
        assert_eq!(pattern(sliding, 4), ["x...", "xx..", ".xx.", "..xx"]);
        let padded = build(&[row(&[false, true, true, true])], 4, None, &device);
        assert_eq!(pattern(padded, 4), ["x...", ".x..", ".xx.", ".xxx"]);
    }

    /// `BLOCKED` is −∞, so a query row without an open entry would make its softmax NaN: every
    /// row of every mask keeps one, whatever the padding, holes and window.
    #[test]
    fn every_query_row_keeps_an_open_entry() {
        let device = crate::device::default_device();
        let patterns: [&[bool]; 4] = [
            &[false, false, true, true, false, true],
            &[false; 6],
            &[true, false, false, false, false, true],
            &[true; 6],
        ];
        for window in [None, Some(1), Some(2)] {
            for new in 1..=6 {
                let keys: Vec<Vec<Slot>> = patterns.iter().map(|p| row(p)).collect();
                let v = download(build(&keys, new, window, &device));
                for (q, r) in v.chunks(6).enumerate() {
                    assert!(r.contains(&0.0), "window {window:?}, {new} new: query row {q} is fully blocked");
                    assert!(r.iter().all(|&x| x == 0.0 || x == BLOCKED), "only 0 and BLOCKED");
                }
            }
        }
    }

    #[test]
    fn decode_step_sees_all_cached_keys() {
        let device = crate::device::default_device();
        let m = build(&[row(&[false, true, true])], 1, None, &device);
        assert_eq!(pattern(m, 3), [".xx"]);
    }
}
