//! The attention core of a prefill on the CPU: `softmax(q · kᵀ · scale + mask) · v`, skipping the
//! keys a block of queries cannot see.
//!
//! burn-flex's fused kernel computes every query against every key and masks afterwards, with a
//! scalar softmax loop: a causal prefill pays for twice the products it needs, and `perf` put the
//! loop at 15 % of a 512-token SmolLM2 prefill. Here each job is one head's block of
//! [`QUERY_BLOCK`] queries. It reads from the mask which keys any of its queries sees (under a
//! causal mask with left padding, a contiguous span ending at the block's last query), multiplies
//! only that span with `gemm` (one thread per job; jobs run on every core), and applies scale,
//! soft-cap, mask and softmax row by row with an AVX2 `exp`. Keys outside the span are blocked
//! for every query of the block, so the result equals the full product to rounding.

use rayon::prelude::*;

use super::Kernel;

/// Queries per job: 64 rows of scores over a 512-token span are 128 KiB, within L2.
const QUERY_BLOCK: usize = 64;

/// Shapes and options of one call.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    /// Batch rows.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (query heads share them in groups).
    pub kv_heads: usize,
    /// New tokens (queries) per row.
    pub queries: usize,
    /// Keys per row (cached and new).
    pub keys: usize,
    /// Head width.
    pub head_dim: usize,
    /// Multiplies the scores.
    pub scale: f32,
    /// Soft-cap of the scores (`cap · tanh(x / cap)`), 0 for none.
    pub softcap: f32,
}

/// `q` `[batch, heads, queries, head_dim]`, `k` and `v` `[batch, kv_heads, keys, head_dim]`, the
/// additive `mask` `[batch, queries, keys]` (0 open, −∞ blocked; every query row has an open key):
/// the attention output `[batch, heads, queries, head_dim]`.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], mask: &[f32], dims: Dims) -> Vec<f32> {
    let Dims { batch, heads, kv_heads, queries, keys, head_dim, .. } = dims;
    assert_eq!(q.len(), batch * heads * queries * head_dim, "query shape");
    assert_eq!(k.len(), batch * kv_heads * keys * head_dim, "key shape");
    assert_eq!(v.len(), k.len(), "value shape");
    assert_eq!(mask.len(), batch * queries * keys, "mask shape");
    assert!(kv_heads > 0 && heads.is_multiple_of(kv_heads), "query heads come in groups");
    let spans = block_spans(mask, batch, queries, keys);
    let blocks = queries.div_ceil(QUERY_BLOCK);
    let kernel = Kernel::detect();
    let mut out = vec![0.0f32; q.len()];
    let jobs: Vec<(usize, &mut [f32])> = out
        .chunks_mut(queries * head_dim)
        .enumerate()
        .flat_map(|(bh, head)| {
            head.chunks_mut(QUERY_BLOCK * head_dim).enumerate().map(move |(blk, o)| (bh * blocks + blk, o))
        })
        .collect();
    jobs.into_par_iter().for_each_init(Vec::new, |scores, (job, o)| {
        let (bh, blk) = (job / blocks, job % blocks);
        let (b, h) = (bh / heads, bh % heads);
        let kvh = b * kv_heads + h / (heads / kv_heads);
        let i0 = blk * QUERY_BLOCK;
        let rows = o.len() / head_dim;
        let (start, end) = spans[b * blocks + blk];
        let n = end - start;
        scores.clear();
        scores.resize(rows * n, 0.0);
        let qs = &q[(bh * queries + i0) * head_dim..(bh * queries + i0 + rows) * head_dim];
        let ks = &k[(kvh * keys + start) * head_dim..(kvh * keys + end) * head_dim];
        let vs = &v[(kvh * keys + start) * head_dim..(kvh * keys + end) * head_dim];
        // scores[rows, n] = qs[rows, d] · ks[n, d]ᵀ
        product(scores, qs, ks, rows, n, head_dim, true);
        for (r, row) in scores.chunks_mut(n).enumerate() {
            let m = &mask[(b * queries + i0 + r) * keys + start..(b * queries + i0 + r) * keys + end];
            softmax_row(row, m, dims.scale, dims.softcap, kernel);
        }
        // o[rows, d] = scores[rows, n] · vs[n, d]
        product(o, scores, vs, rows, head_dim, n, false);
    });
    out
}

/// For each row and query block, the span of keys `[start, end)` outside which every query of the
/// block is blocked.
fn block_spans(mask: &[f32], batch: usize, queries: usize, keys: usize) -> Vec<(usize, usize)> {
    let blocks = queries.div_ceil(QUERY_BLOCK);
    let mut spans = Vec::with_capacity(batch * blocks);
    for b in 0..batch {
        for blk in 0..blocks {
            let (mut start, mut end) = (keys, 0);
            for i in blk * QUERY_BLOCK..((blk + 1) * QUERY_BLOCK).min(queries) {
                let row = &mask[(b * queries + i) * keys..(b * queries + i + 1) * keys];
                if let Some(first) = row.iter().position(|&x| x == 0.0) {
                    let last = row.iter().rposition(|&x| x == 0.0).expect("an open key exists");
                    start = start.min(first);
                    end = end.max(last + 1);
                }
            }
            // A block with no open key at all cannot come from our masks; keep it well-formed.
            if start >= end {
                (start, end) = (0, keys);
            }
            spans.push((start, end));
        }
    }
    spans
}

/// `dst[m, n] = a[m, k] · b` with `b` `[n, k]` (`transposed`) or `[k, n]`, row-major, on this
/// thread.
fn product(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize, transposed: bool) {
    let (b_cs, b_rs) = if transposed { (k as isize, 1) } else { (1, n as isize) };
    // SAFETY: the slices hold m·n, m·k and k·n elements at the strides given.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Scale, soft-cap and mask one row of scores, then softmax it in place.
fn softmax_row(row: &mut [f32], mask: &[f32], scale: f32, softcap: f32, kernel: Kernel) {
    let mut max = f32::NEG_INFINITY;
    for (s, &m) in row.iter_mut().zip(mask) {
        let mut x = *s * scale;
        if softcap > 0.0 {
            x = softcap * (x / softcap).tanh();
        }
        *s = x + m;
        max = max.max(*s);
    }
    let sum = match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` is detected only where AVX2 and FMA run.
        Kernel::Avx2 => unsafe { avx2::exp_sub_sum(row, max) },
        Kernel::Portable => row.iter_mut().fold(0.0, |acc, s| {
            *s = exp_or_zero(*s - max);
            acc + *s
        }),
    };
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|s| *s *= inv);
}

/// `e^x`, and an exact 0 for blocked scores (−∞) and anything below the smallest normal float.
#[inline(always)]
fn exp_or_zero(x: f32) -> f32 {
    if x < EXP_FLOOR { 0.0 } else { super::swiglu::exp(x) }
}

use super::swiglu::EXP_FLOOR;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::EXP_FLOOR;

    /// `row[i] = exp(row[i] − max)` and their sum, eight lanes at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_sub_sum(row: &mut [f32], max: f32) -> f32 {
        let m = _mm256_set1_ps(max);
        let floor = _mm256_set1_ps(EXP_FLOOR);
        let mut acc = _mm256_setzero_ps();
        let mut chunks = row.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds eight floats.
            unsafe {
                let x = _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), m);
                let open = _mm256_cmp_ps::<_CMP_GE_OQ>(x, floor);
                let e = _mm256_and_ps(super::super::swiglu::exp8(x), open);
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                acc = _mm256_add_ps(acc, e);
            }
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        let mut sum: f32 = lanes.iter().sum();
        for s in chunks.into_remainder() {
            *s = super::exp_or_zero(*s - max);
            sum += *s;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The plain definition, in f64.
    fn reference(q: &[f32], k: &[f32], v: &[f32], mask: &[f32], d: Dims) -> Vec<f32> {
        let mut out = vec![0.0f32; q.len()];
        for b in 0..d.batch {
            for h in 0..d.heads {
                let kvh = b * d.kv_heads + h / (d.heads / d.kv_heads);
                for i in 0..d.queries {
                    let qi = &q[((b * d.heads + h) * d.queries + i) * d.head_dim..][..d.head_dim];
                    let mut s: Vec<f64> = (0..d.keys)
                        .map(|j| {
                            let kj = &k[(kvh * d.keys + j) * d.head_dim..][..d.head_dim];
                            let mut x = qi.iter().zip(kj).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>()
                                * f64::from(d.scale);
                            if d.softcap > 0.0 {
                                let c = f64::from(d.softcap);
                                x = c * (x / c).tanh();
                            }
                            x + f64::from(mask[(b * d.queries + i) * d.keys + j])
                        })
                        .collect();
                    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    s.iter_mut().for_each(|x| *x = (*x - max).exp());
                    let sum: f64 = s.iter().sum();
                    for c in 0..d.head_dim {
                        let o: f64 =
                            (0..d.keys).map(|j| s[j] / sum * f64::from(v[(kvh * d.keys + j) * d.head_dim + c])).sum();
                        out[((b * d.heads + h) * d.queries + i) * d.head_dim + c] = o as f32;
                    }
                }
            }
        }
        out
    }

    fn random(rng: &mut SplitMix64, len: usize) -> Vec<f32> {
        (0..len).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// A causal mask over `cached + queries` keys, rows left-padded by `pad[b]` key slots, an
    /// optional window.
    fn causal(pad: &[usize], queries: usize, cached: usize, window: Option<usize>) -> Vec<f32> {
        let keys = cached + queries;
        let mut m = vec![f32::NEG_INFINITY; pad.len() * queries * keys];
        for (b, &p) in pad.iter().enumerate() {
            for i in 0..queries {
                let qs = cached + i;
                for j in 0..=qs {
                    let open = if qs < p { j == qs } else { j >= p && window.is_none_or(|w| qs - j < w) };
                    if open {
                        m[(b * queries + i) * keys + j] = 0.0;
                    }
                }
            }
        }
        m
    }

    /// Blocks of queries, spans that skip keys, grouped heads, left padding that blocks a whole
    /// query block's keys except its own, a window, soft-capping and a cached prefix: all equal
    /// the definition.
    #[test]
    fn equals_the_definition() {
        let mut rng = SplitMix64(7);
        let cases = [
            (vec![0], 150, 0, None, 0.0),
            (vec![0, 70, 3], 130, 0, None, 0.0),
            (vec![5, 0], 100, 40, Some(33), 0.0),
            (vec![0], 65, 0, None, 5.0),
        ];
        for (pad, queries, cached, window, softcap) in cases {
            let dims = Dims {
                batch: pad.len(),
                heads: 6,
                kv_heads: 2,
                queries,
                keys: cached + queries,
                head_dim: 16,
                scale: 0.25,
                softcap,
            };
            let q = random(&mut rng, dims.batch * dims.heads * queries * dims.head_dim);
            let k = random(&mut rng, dims.batch * dims.kv_heads * dims.keys * dims.head_dim);
            let v = random(&mut rng, k.len());
            let mask = causal(&pad, queries, cached, window);
            let got = attention(&q, &k, &v, &mask, dims);
            let want = reference(&q, &k, &v, &mask, dims);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-5, "{dims:?} pad {pad:?}: element {i}: {a} vs {b}");
            }
        }
    }

    /// Both softmax paths give blocked scores an exact 0 and agree on the rest (their sums run in
    /// different orders, so to rounding); rows longer and shorter than a vector.
    #[test]
    fn softmax_paths_agree_and_block_exactly() {
        let mut rng = SplitMix64(3);
        for n in [1, 7, 8, 19, 130] {
            let scores = random(&mut rng, n);
            let mask: Vec<f32> = (0..n).map(|j| if j % 3 == 1 { f32::NEG_INFINITY } else { 0.0 }).collect();
            let mut rows = Vec::new();
            for kernel in [Kernel::detect(), Kernel::Portable] {
                let mut row = scores.clone();
                softmax_row(&mut row, &mask, 0.7, 0.0, kernel);
                assert!(row.iter().zip(&mask).all(|(p, m)| m.is_finite() || *p == 0.0), "a blocked key got weight");
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                rows.push(row);
            }
            for (a, b) in rows[0].iter().zip(&rows[1]) {
                assert!((a - b).abs() <= 1e-6, "n {n}: {a} vs {b}");
            }
        }
    }

    /// The spans of a causal mask end at each block's last query and start at the padding.
    #[test]
    fn spans_cover_exactly_the_open_keys() {
        let mask = causal(&[0, 70], 130, 0, None);
        let spans = block_spans(&mask, 2, 130, 130);
        // Row 1's first 70 slots are padding, each open to itself only.
        assert_eq!(spans, [(0, 64), (0, 128), (0, 130), (0, 64), (64, 128), (70, 130)]);
    }
}
