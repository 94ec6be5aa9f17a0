//! `y = x · Wᵀ (+ b)` for a few rows of `x` (decode steps, small batches) on every core.
//!
//! Why this is written here rather than taken from a crate: burn-flex hands every matmul under
//! 192³ multiply-adds to `gemm` on one thread, and `gemm`'s small-M path (it packs neither
//! operand there) reads a large weight matrix at 1–4 GB/s. Measured on the 2-core AMD EPYC of
//! benches/README.md, `[8, 896] × [896, 151 936]` (Qwen's output head at batch 8): `gemm` 19–36
//! GFLOP/s on one or both cores, this kernel 67 GFLOP/s (17 GB/s of weights, near the machine's
//! copy bandwidth). No crate we know of offers a threaded f32 product of a handful of rows with a
//! weight kept in the checkpoint's `[out, in]` layout.
//!
//! The layout: each output is a dot product over one contiguous weight row. Tiles of 3 input
//! rows × 4 weight rows keep 12 accumulators of 8 lanes in registers (AVX2 + FMA; enough
//! independent chains to keep both multiply-add pipes busy), so the four weight rows are read
//! from memory once and from cache for the other input rows; the output columns are split over
//! the rayon pool, so every core streams its own share of the weights. Against 2 × 4 tiles,
//! measured side by side on the 2-core AMD EPYC (benches/README.md, session 27): decode at batch 8
//! 7–8 % faster (SmolLM2, Qwen2.5-0.5B), verification forwards of 2–4 tokens × 10 rows 6–13 %
//! faster, batch 1 level.
//!
//! Each tile prefetches the same place in the next tile's weight rows: its rows are streams too
//! short for the hardware prefetcher (measured: bf16 decode of SmolLM2 at batch 1, 51 → 58 tok/s;
//! at batch 8, 180 → 205). With [`matmul_rows_bf16`] the weights are bfloat16, widened to f32 in
//! registers (the opt-in `GREATER_BF16_WEIGHTS` path of [`super::linear`]).
//!
//! Every output is summed in one fixed order — 8 lanes over the multiple-of-8 body, the lanes
//! folded as a tree, then the tail — whatever the tile, the split or the instruction set (the
//! portable kernel uses the same fused multiply-adds). So a row's result is bit for bit the same
//! in any batch and on any thread count, which is not true of `gemm`'s blocking. The order differs
//! from `gemm`'s, so results match burn's matmul to rounding (see the tests), not bit for bit.

use rayon::prelude::*;

use super::Kernel;

/// Largest number of rows of `x` this path takes; more rows go to `gemm`, whose packed kernels
/// then have enough work per weight byte to win. Measured on the 2-core AMD EPYC (AVX2), 2
/// threads, in Qwen2.5-0.5B's and SmolLM2's shapes: this kernel leads `gemm` (on one thread or on
/// both) by 2–4× at 8 rows, 1.2–1.5× at 24–32 rows, ties at 48 and trails by ~10 % at 80.
pub const MAX_ROWS: usize = 40;

/// Below this many multiply-adds a call runs on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 16;

/// Weight rows per tile.
const TILE_OUT: usize = 4;
/// Input rows per tile (four rows left run as two pairs, not three and one).
const TILE_ROWS: usize = 3;
/// Lanes of one accumulator.
const LANES: usize = 8;

/// `y[r·n + o] = Σ_i x[r·k + i] · w[o·k + i] (+ bias[o])` for `x` `[m, k]`, `w` `[n, k]`, all
/// row-major; returns `y` `[m, n]`.
///
/// # Panics
/// When a slice is shorter than its shape says.
pub fn matmul_rows(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f32> {
    matmul(x, Weights::F32(w), bias, m, k, n)
}

/// [`matmul_rows`] with the weights in bfloat16 ([`to_bf16`]): half the bytes streamed per row,
/// each weight widened to f32 before the same fused multiply-adds in the same order.
///
/// # Panics
/// When a slice is shorter than its shape says.
pub fn matmul_rows_bf16(x: &[f32], w: &[u16], bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f32> {
    matmul(x, Weights::Bf16(w), bias, m, k, n)
}

/// `x` rounded to the nearest bfloat16 (ties to even): the upper 16 bits of an f32.
pub fn to_bf16(x: &[f32]) -> Vec<u16> {
    x.iter()
        .map(|v| {
            if v.is_nan() {
                return 0x7fc0;
            }
            let b = v.to_bits();
            ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
        })
        .collect()
}

/// The weight matrix in one of the element types the kernels read.
#[derive(Debug, Clone, Copy)]
enum Weights<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u16]),
}

impl Weights<'_> {
    fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::Bf16(w) => w.len(),
        }
    }

    /// Element `i` as f32.
    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        match self {
            Weights::F32(w) => w[i],
            Weights::Bf16(w) => f32::from_bits(u32::from(w[i]) << 16),
        }
    }
}

fn matmul(x: &[f32], w: Weights<'_>, bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(x.len() >= m * k && w.len() >= n * k, "matmul_rows: operands shorter than [{m}, {k}] x [{n}, {k}]");
    if let Some(b) = bias {
        assert!(b.len() >= n, "matmul_rows: bias shorter than {n}");
    }
    let mut y = vec![0.0f32; m * n];
    if m == 0 || n == 0 {
        return y;
    }
    let job = Job { x, w, m, k, n, y: SharedOut(y.as_mut_ptr()), kernel: Kernel::detect() };
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * k * n < PARALLEL_MIN_WORK {
        job.run(0..n);
    } else {
        // A few blocks per thread balance the load; each is a multiple of the tile width.
        let block = n.div_ceil(4 * threads).next_multiple_of(TILE_OUT);
        (0..n.div_ceil(block)).into_par_iter().for_each(|b| job.run(b * block..((b + 1) * block).min(n)));
    }
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(n) {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
    }
    y
}

/// The output buffer, shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint elements (see `Job::run`), and `y` outlives them.
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

/// One call's operands.
struct Job<'a> {
    x: &'a [f32],
    w: Weights<'a>,
    m: usize,
    k: usize,
    n: usize,
    y: SharedOut,
    kernel: Kernel,
}

impl Job<'_> {
    /// Output columns `cols` of every row. Callers give disjoint ranges, so each output element
    /// has one writer.
    fn run(&self, cols: std::ops::Range<usize>) {
        assert!(cols.end <= self.n);
        match self.kernel {
            // SAFETY: `detect` found AVX2 and FMA on this CPU.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { self.run_avx2(cols) },
            Kernel::Portable => self.tiles(cols, portable::tile),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, cols: std::ops::Range<usize>) {
        // SAFETY: the caller checked the features; `tile` is called in bounds by `tiles`.
        self.tiles(cols, |job, r, o, rows, outs| unsafe { avx2::tile(job, r, o, rows, outs) });
    }

    /// Walk `cols` in tiles of up to [`TILE_ROWS`] × [`TILE_OUT`].
    #[inline(always)]
    fn tiles(&self, cols: std::ops::Range<usize>, tile: impl Fn(&Self, usize, usize, usize, usize)) {
        let mut o = cols.start;
        while o < cols.end {
            let outs = (cols.end - o).min(TILE_OUT);
            let mut r = 0;
            while r < self.m {
                // Four left are two pairs rather than three and a single row.
                let rows = if self.m - r == 4 { 2 } else { (self.m - r).min(TILE_ROWS) };
                tile(self, r, o, rows, outs);
                r += rows;
            }
            o += outs;
        }
    }
}

/// Fold 8 lanes in the order the AVX2 kernel does: halves, then quarters, then the last pair.
#[inline(always)]
fn fold(v: [f32; LANES]) -> f32 {
    let h: [f32; 4] = std::array::from_fn(|i| v[i] + v[i + 4]);
    let q = [h[0] + h[2], h[1] + h[3]];
    q[0] + q[1]
}

/// The reference kernel for CPUs without AVX2: the same sums in the same order.
mod portable {
    use super::{Job, LANES, fold};

    pub(super) fn tile(job: &Job<'_>, r: usize, o: usize, rows: usize, outs: usize) {
        let (k, body) = (job.k, job.k / LANES * LANES);
        for i in r..r + rows {
            let x = &job.x[i * k..(i + 1) * k];
            for j in o..o + outs {
                let w = |t: usize| job.w.get(j * k + t);
                let mut acc = [0.0f32; LANES];
                for (c, xc) in x[..body].chunks_exact(LANES).enumerate() {
                    for l in 0..LANES {
                        acc[l] = xc[l].mul_add(w(c * LANES + l), acc[l]);
                    }
                }
                let mut s = fold(acc);
                for (t, xt) in x.iter().enumerate().skip(body) {
                    s = xt.mul_add(w(t), s);
                }
                // SAFETY: `i < m`, `j < n`; this task alone writes column `j`.
                unsafe { *job.y.0.add(i * job.n + j) = s };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Job, LANES, TILE_OUT, Weights};

    /// Rows `r..r + rows` × outputs `o..o + outs`.
    ///
    /// # Safety
    /// AVX2 and FMA are available; the tile lies inside `[m, n]`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(job: &Job<'_>, r: usize, o: usize, rows: usize, outs: usize) {
        // SAFETY: as the caller promises; the const-shaped tiles read rows `r..r+R` of `x` and
        // `o..o+C` of `w`, each `k` long.
        unsafe {
            match job.w {
                Weights::F32(w) => shaped::<false>(job, w.as_ptr().cast(), r, o, rows, outs),
                Weights::Bf16(w) => shaped::<true>(job, w.as_ptr().cast(), r, o, rows, outs),
            }
        }
    }

    /// The tile of `rows × outs` by its const shape; `w` points at the weights, bf16 when `BF16`.
    ///
    /// # Safety
    /// As [`tile`].
    #[inline(always)]
    unsafe fn shaped<const BF16: bool>(job: &Job<'_>, w: *const u8, r: usize, o: usize, rows: usize, outs: usize) {
        // SAFETY: as the caller promises.
        unsafe {
            match (rows, outs) {
                (3, TILE_OUT) => fixed::<3, TILE_OUT, BF16>(job, w, r, o),
                (2, TILE_OUT) => fixed::<2, TILE_OUT, BF16>(job, w, r, o),
                (1, TILE_OUT) => fixed::<1, TILE_OUT, BF16>(job, w, r, o),
                (3, _) => (o..o + outs).for_each(|j| fixed::<3, 1, BF16>(job, w, r, j)),
                (2, _) => (o..o + outs).for_each(|j| fixed::<2, 1, BF16>(job, w, r, j)),
                _ => (o..o + outs).for_each(|j| fixed::<1, 1, BF16>(job, w, r, j)),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fixed<const R: usize, const C: usize, const BF16: bool>(job: &Job<'_>, w: *const u8, r: usize, o: usize) {
        let (k, body) = (job.k, job.k / LANES * LANES);
        let size = if BF16 { 2 } else { 4 };
        let xp: [*const f32; R] = std::array::from_fn(|i| job.x[(r + i) * k..].as_ptr());
        // SAFETY: rows `o..o + C` lie inside the `[n, k]` weights (`tiles` keeps `o + C <= n`).
        let wp: [*const u8; C] = std::array::from_fn(|j| unsafe { w.add((o + j) * k * size) });
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        // The same place in the next tile's weight rows, fetched one cache line at a time: the
        // tile reads C rows side by side, streams too short for the hardware prefetcher to ramp
        // up on. A prefetch never faults, so running past the last row is harmless. A single
        // input row of f32 weights is bound by memory bandwidth already, and there it cost
        // Qwen2.5-0.5B's batch-1 decode 17 → 15 tok/s, so it goes without.
        let prefetch = BF16 || R > 1;
        let (ahead, line) = (C * k * size, 64 / size);
        let mut t = 0;
        while t < body {
            // SAFETY: `t + 8 <= body <= k`, inside each row.
            unsafe {
                if prefetch && t % line == 0 {
                    for p in wp {
                        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(t * size + ahead).cast());
                    }
                }
                let xv: [__m256; R] = std::array::from_fn(|i| _mm256_loadu_ps(xp[i].add(t)));
                for j in 0..C {
                    let wv = load::<BF16>(wp[j], t);
                    for i in 0..R {
                        acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
                    }
                }
            }
            t += LANES;
        }
        for i in 0..R {
            for j in 0..C {
                let mut s = fold(acc[i][j]);
                for t in body..k {
                    // SAFETY: `t < k`, inside the rows.
                    s = unsafe { (*xp[i].add(t)).mul_add(get::<BF16>(wp[j], t), s) };
                }
                // SAFETY: `r + i < m`, `o + j < n`; this task alone writes column `o + j`.
                unsafe { *job.y.0.add((r + i) * job.n + o + j) = s };
            }
        }
    }

    /// Weights `t..t + 8` of the row at `p` as f32 lanes (bf16 widened by a shift).
    ///
    /// # Safety
    /// AVX2 is available; the 8 elements are inside the row.
    #[inline(always)]
    unsafe fn load<const BF16: bool>(p: *const u8, t: usize) -> __m256 {
        // SAFETY: as the caller promises.
        unsafe {
            if BF16 {
                let h = _mm_loadu_si128(p.cast::<u16>().add(t).cast());
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            } else {
                _mm256_loadu_ps(p.cast::<f32>().add(t))
            }
        }
    }

    /// Weight `t` of the row at `p` as f32.
    ///
    /// # Safety
    /// The element is inside the row.
    #[inline(always)]
    unsafe fn get<const BF16: bool>(p: *const u8, t: usize) -> f32 {
        // SAFETY: as the caller promises.
        unsafe { if BF16 { f32::from_bits(u32::from(*p.cast::<u16>().add(t)) << 16) } else { *p.cast::<f32>().add(t) } }
    }

    /// The lanes folded as [`super::fold`] does.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fold(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(quarter, _mm_movehdup_ps(quarter)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random(rng: &mut SplitMix64, len: usize) -> Vec<f32> {
        (0..len).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// The textbook sum in f64.
    fn reference(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; m * n];
        for r in 0..m {
            for o in 0..n {
                let dot: f64 = (0..k).map(|i| f64::from(x[r * k + i]) * f64::from(w[o * k + i])).sum();
                y[r * n + o] = dot + bias.map_or(0.0, |b| f64::from(b[o]));
            }
        }
        y
    }

    #[test]
    fn matches_the_textbook_sum_on_every_edge_shape() {
        let mut rng = SplitMix64(7);
        // Rows odd and even, k below, at and off the lane width, n off the tile width, and
        // products large enough to run in parallel.
        for &(m, k, n) in &[(1, 1, 1), (1, 5, 3), (2, 16, 4), (3, 17, 5), (5, 40, 9), (16, 64, 33), (7, 300, 257)] {
            let x = random(&mut rng, m * k);
            let w = random(&mut rng, n * k);
            let b = random(&mut rng, n);
            let got = matmul_rows(&x, &w, Some(&b), m, k, n);
            let want = reference(&x, &w, Some(&b), m, k, n);
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(*g) - e).abs() <= 1e-5 * (k as f64).sqrt(),
                    "[{m},{k}]x[{n},{k}] element {i}: {g} vs {e}"
                );
            }
        }
    }

    #[test]
    fn a_row_does_not_depend_on_its_batch() {
        let mut rng = SplitMix64(11);
        let (m, k, n) = (9, 203, 130);
        let x = random(&mut rng, m * k);
        let w = random(&mut rng, n * k);
        let all = matmul_rows(&x, &w, None, m, k, n);
        for r in 0..m {
            let one = matmul_rows(&x[r * k..(r + 1) * k], &w, None, 1, k, n);
            assert_eq!(one, all[r * n..(r + 1) * n], "row {r}");
        }
    }

    /// The portable kernel and the detected one (AVX2 here) sum in the same order with the same
    /// fused multiply-adds, so they agree bit for bit.
    #[test]
    fn the_portable_kernel_agrees_bit_for_bit_with_the_detected_one() {
        let mut rng = SplitMix64(3);
        // Seven rows: tiles of three, two and two rows; 70 columns: a lane body and a tail.
        let (m, k, n) = (7, 70, 11);
        let x = random(&mut rng, m * k);
        let w = random(&mut rng, n * k);
        let mut y = vec![0.0f32; m * n];
        let job = Job { x: &x, w: Weights::F32(&w), m, k, n, y: SharedOut(y.as_mut_ptr()), kernel: Kernel::Portable };
        job.run(0..n);
        assert_eq!(y, matmul_rows(&x, &w, None, m, k, n));
        let w16 = to_bf16(&w);
        let job =
            Job { x: &x, w: Weights::Bf16(&w16), m, k, n, y: SharedOut(y.as_mut_ptr()), kernel: Kernel::Portable };
        job.run(0..n);
        assert_eq!(y, matmul_rows_bf16(&x, &w16, None, m, k, n), "bf16 weights");
    }

    /// bf16 weights give the f32 product of the rounded weights: rounding to nearest (ties to
    /// even), within a bf16 step of the exact weights.
    #[test]
    fn bf16_weights_are_the_rounded_f32_weights() {
        assert_eq!(to_bf16(&[1.0, -2.5, 0.0]), [0x3f80, 0xc020, 0]);
        // 1 + 2^-8 lies halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(&[1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0]), [0x3f80, 0x3f82]);
        let mut rng = SplitMix64(13);
        let (m, k, n) = (5, 83, 29);
        let x = random(&mut rng, m * k);
        let w = random(&mut rng, n * k);
        let w16 = to_bf16(&w);
        let rounded: Vec<f32> = w16.iter().map(|&h| f32::from_bits(u32::from(h) << 16)).collect();
        for (a, b) in w.iter().zip(&rounded) {
            assert!((a - b).abs() <= a.abs() / 256.0, "{a} rounded to {b}");
        }
        assert_eq!(matmul_rows_bf16(&x, &w16, None, m, k, n), matmul_rows(&x, &rounded, None, m, k, n));
    }

    #[test]
    #[should_panic(expected = "operands shorter")]
    fn short_operands_are_refused() {
        matmul_rows(&[1.0; 3], &[1.0; 4], None, 2, 2, 2);
    }
}
