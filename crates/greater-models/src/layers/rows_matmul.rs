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
//! The layout: each output is a dot product over one contiguous weight row. Tiles of 2 input
//! rows × 4 weight rows keep 8 accumulators of 8 lanes in registers (AVX2 + FMA), so the four
//! weight rows are read from memory once and from L1 for the other input rows; the output
//! columns are split over the rayon pool, so every core streams its own share of the weights.
//!
//! Every output is summed in one fixed order — 8 lanes over the multiple-of-8 body, the lanes
//! folded as a tree, then the tail — whatever the tile, the split or the instruction set (the
//! portable kernel uses the same fused multiply-adds). So a row's result is bit for bit the same
//! in any batch and on any thread count, which is not true of `gemm`'s blocking. The order differs
//! from `gemm`'s, so results match burn's matmul to rounding (see the tests), not bit for bit.

use rayon::prelude::*;

/// Largest number of rows of `x` this path takes; more rows go to `gemm`, whose packed kernels
/// then have enough work per weight byte to win. Measured on the 2-core AMD EPYC (AVX2), 2
/// threads, in Qwen2.5-0.5B's and SmolLM2's shapes: this kernel leads `gemm` (on one thread or on
/// both) by 2–4× at 8 rows, 1.2–1.5× at 24–32 rows, ties at 48 and trails by ~10 % at 80.
pub const MAX_ROWS: usize = 40;

/// Below this many multiply-adds a call runs on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 16;

/// Weight rows per tile.
const TILE_OUT: usize = 4;
/// Input rows per tile.
const TILE_ROWS: usize = 2;
/// Lanes of one accumulator.
const LANES: usize = 8;

/// `y[r·n + o] = Σ_i x[r·k + i] · w[o·k + i] (+ bias[o])` for `x` `[m, k]`, `w` `[n, k]`, all
/// row-major; returns `y` `[m, n]`.
///
/// # Panics
/// When a slice is shorter than its shape says.
pub fn matmul_rows(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f32> {
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

/// The instruction set the tiles run on, detected at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Self::Avx2;
        }
        Self::Portable
    }
}

/// One call's operands.
struct Job<'a> {
    x: &'a [f32],
    w: &'a [f32],
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
                let rows = (self.m - r).min(TILE_ROWS);
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
                let w = &job.w[j * k..(j + 1) * k];
                let mut acc = [0.0f32; LANES];
                for (xc, wc) in x[..body].chunks_exact(LANES).zip(w[..body].chunks_exact(LANES)) {
                    for l in 0..LANES {
                        acc[l] = xc[l].mul_add(wc[l], acc[l]);
                    }
                }
                let mut s = fold(acc);
                for t in body..k {
                    s = x[t].mul_add(w[t], s);
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

    use super::{Job, LANES, TILE_OUT, TILE_ROWS};

    /// Rows `r..r + rows` × outputs `o..o + outs`.
    ///
    /// # Safety
    /// AVX2 and FMA are available; the tile lies inside `[m, n]`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(job: &Job<'_>, r: usize, o: usize, rows: usize, outs: usize) {
        // SAFETY: as the caller promises; the const-shaped tiles read rows `r..r+R` of `x` and
        // `o..o+C` of `w`, each `k` long.
        unsafe {
            match (rows, outs) {
                (TILE_ROWS, TILE_OUT) => fixed::<TILE_ROWS, TILE_OUT>(job, r, o),
                (1, TILE_OUT) => fixed::<1, TILE_OUT>(job, r, o),
                (TILE_ROWS, _) => (o..o + outs).for_each(|j| fixed::<TILE_ROWS, 1>(job, r, j)),
                _ => (o..o + outs).for_each(|j| fixed::<1, 1>(job, r, j)),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fixed<const R: usize, const C: usize>(job: &Job<'_>, r: usize, o: usize) {
        let (k, body) = (job.k, job.k / LANES * LANES);
        let xp: [*const f32; R] = std::array::from_fn(|i| job.x[(r + i) * k..].as_ptr());
        let wp: [*const f32; C] = std::array::from_fn(|j| job.w[(o + j) * k..].as_ptr());
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let mut t = 0;
        while t < body {
            // SAFETY: `t + 8 <= body <= k`, inside each row.
            unsafe {
                let xv: [__m256; R] = std::array::from_fn(|i| _mm256_loadu_ps(xp[i].add(t)));
                for j in 0..C {
                    let wv = _mm256_loadu_ps(wp[j].add(t));
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
                    s = unsafe { (*xp[i].add(t)).mul_add(*wp[j].add(t), s) };
                }
                // SAFETY: `r + i < m`, `o + j < n`; this task alone writes column `o + j`.
                unsafe { *job.y.0.add((r + i) * job.n + o + j) = s };
            }
        }
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
        let (m, k, n) = (3, 70, 11);
        let x = random(&mut rng, m * k);
        let w = random(&mut rng, n * k);
        let mut y = vec![0.0f32; m * n];
        let job = Job { x: &x, w: &w, m, k, n, y: SharedOut(y.as_mut_ptr()), kernel: Kernel::Portable };
        job.run(0..n);
        assert_eq!(y, matmul_rows(&x, &w, None, m, k, n));
    }

    #[test]
    #[should_panic(expected = "operands shorter")]
    fn short_operands_are_refused() {
        matmul_rows(&[1.0; 3], &[1.0; 4], None, 2, 2, 2);
    }
}
