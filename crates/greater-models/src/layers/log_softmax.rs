//! A log-softmax whose normaliser stays accurate over a 262k-entry vocabulary.
//!
//! `burn::tensor::activation::log_softmax` sums `exp(x - max)` with one f32 reduction along the
//! whole row. On the flex backend that is a few long sequential (SIMD-lane) sums, and over Gemma's
//! 262 144 logits the small terms get lost: the log-sum-exp comes out 3e-4 to 1e-3 too small,
//! every token NLL too small by as much, and the GReaTer prompt loss misses the float32 reference
//! by 4e-4 (10 times its own float32-vs-float64 error). Summing in two stages, over chunks of
//! [`CHUNK`] entries and then over the chunk sums, keeps every sequential run short.

use burn::tensor::Tensor;

/// Entries summed in one first-stage chunk.
pub const CHUNK: usize = 1024;

/// `x - logsumexp(x)` along `dim`, with the max subtracted first (and detached, as in burn) and
/// the exponentials summed in two stages.
///
/// # Shapes
/// - `x`: any shape → the same shape
pub fn log_softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    assert!(dim < D, "log_softmax: dim {dim} out of range for rank {D}");
    let x = if dim == D - 1 { x } else { x.swap_dims(dim, D - 1) };
    let dims = x.dims();
    let v = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let x2: Tensor<2> = x.reshape([rows, v]);
    let max = x2.clone().detach().max_dim(1);
    let shifted = x2 - max;
    let sum = chunked_row_sum(shifted.clone().exp());
    let out: Tensor<D> = (shifted - sum.log()).reshape(dims);
    if dim == D - 1 { out } else { out.swap_dims(dim, D - 1) }
}

/// Row sums of `e` (`[rows, v]` → `[rows, 1]`) over chunks of [`CHUNK`], zero-padded.
fn chunked_row_sum(e: Tensor<2>) -> Tensor<2> {
    let [rows, v] = e.dims();
    if v <= CHUNK {
        return e.sum_dim(1);
    }
    let k = v.div_ceil(CHUNK);
    let e = if k * CHUNK == v {
        e
    } else {
        let pad = Tensor::<2>::zeros([rows, k * CHUNK - v], &e.device());
        Tensor::cat(vec![e, pad], 1)
    };
    e.reshape([rows, k, CHUNK]).sum_dim(2).reshape([rows, k]).sum_dim(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::download;
    use burn::tensor::TensorData;

    #[test]
    fn small_rows_by_hand() {
        let device = crate::device::default_device();
        // [0, ln 3]: softmax (1/4, 3/4), log-softmax (-ln 4, ln 3 - ln 4).
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 3f32.ln(), 5.0, 5.0], [2, 2]), &device);
        let got = download(log_softmax(x.clone(), 1));
        let want = [-(4f32.ln()), 3f32.ln() - 4f32.ln(), -(2f32.ln()), -(2f32.ln())];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // Along dim 0: columns (0, 5) and (ln 3, 5).
        let got = download(log_softmax(x, 0));
        let lse0 = (1.0f64 + 5f64.exp()).ln();
        assert!((got[0] as f64 + lse0).abs() < 1e-6 && (got[2] as f64 - 5.0 + lse0).abs() < 1e-6, "{got:?}");
    }

    /// A Gemma-sized row of mostly tiny probabilities: the two-stage sum matches f64 to 1e-5,
    /// and the padding (262 145 is not a multiple of the chunk) adds nothing.
    #[test]
    fn large_vocabulary_matches_f64() {
        let device = crate::device::default_device();
        for v in [262_144usize, 262_145] {
            // A few large logits and a long tail about 17 below them, like a real LM: each tail
            // term (~4e-8) is under half an ulp of a running sum ≥ 1, so one long f32 sum drops
            // them all (a relative error of ~2e-3 in the normaliser).
            let row: Vec<f32> = (0..v)
                .map(|i| if i % 50_000 == 0 { 25.0 } else { 8.0 + ((i * 2_654_435_761) % 1000) as f32 * 1e-3 })
                .collect();
            let m = 25.0f64;
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            let x = Tensor::<2>::from_data(TensorData::new(row.clone(), [1, v]), &device);
            let got = download(log_softmax(x, 1));
            for i in [0usize, 1, 777, v - 1] {
                let want = row[i] as f64 - lse;
                assert!((got[i] as f64 - want).abs() < 1e-5, "v {v} i {i}: {} vs {want}", got[i]);
            }
        }
    }
}
