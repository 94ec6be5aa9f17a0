//! A frozen linear layer.

use burn::tensor::{Device, Tensor};

use super::upload;
use crate::loading::HostTensor;

/// `y = x Wᵀ + b` with `W` stored `[out, in]`, the checkpoint (PyTorch) layout.
///
/// Products of a few rows (decode steps, [`rows_matmul::MAX_ROWS`](super::rows_matmul::MAX_ROWS)
/// or fewer) of inference tensors on the CPU backend go to [`super::rows_matmul`], which reads
/// each weight row contiguously on every core; everything else (prefill, autodiff tensors, GPU
/// backends) is burn's matmul against the transposed view, which `gemm` reads through strides
/// without a copy.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    /// The weight rounded to bfloat16 for the few-rows path, when [`bf16_weights`] is on.
    weight_bf16: Option<Bf16Weights>,
}

/// A weight matrix rounded to bfloat16, `[out, in]` row-major (see [`bf16_weights`]).
pub type Bf16Weights = std::sync::Arc<Vec<u16>>;

/// The opt-in switch of [`bf16_weights`]; unset: read `GREATER_BF16_WEIGHTS` on first use.
static BF16_WEIGHTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether models loaded from now on give their few-rows products (decode steps) weights
/// rounded to bfloat16: half the bytes to stream per token, which is what bounds decoding at
/// batch 1 on a CPU. **Changes results** (each weight loses its low 16 bits; prefill and gradients
/// keep f32), so it is off unless [`use_bf16_weights`] or `GREATER_BF16_WEIGHTS=1` turns it on.
/// CPU backend only; the weights are kept in f32 as well.
pub fn bf16_weights() -> bool {
    cfg!(feature = "flex")
        && *BF16_WEIGHTS.get_or_init(|| std::env::var("GREATER_BF16_WEIGHTS").is_ok_and(|v| v == "1"))
}

/// Turn [`bf16_weights`] on or off for every model loaded afterwards; the first call (or the
/// first load) fixes it for the process. Returns whether `on` took effect.
pub fn use_bf16_weights(on: bool) -> bool {
    BF16_WEIGHTS.set(on).is_ok() || *BF16_WEIGHTS.get().expect("set") == on
}

/// `data` rounded to bfloat16 when [`bf16_weights`] is on.
pub(crate) fn bf16_copy(data: &[f32]) -> Option<Bf16Weights> {
    #[cfg(feature = "flex")]
    if bf16_weights() {
        return Some(std::sync::Arc::new(super::rows_matmul::to_bf16(data)));
    }
    let _ = data;
    None
}

impl Linear {
    /// Build from a PyTorch-layout weight `[out, in]` and an optional bias `[out]`.
    pub fn from_host(weight: HostTensor, bias: Option<HostTensor>, device: &Device) -> Self {
        assert_eq!(weight.shape.len(), 2, "a linear weight is a matrix, got shape {:?}", weight.shape);
        let weight_bf16 = bf16_copy(&weight.data);
        Self { weight: upload(weight, device), bias: bias.map(|b| upload(b, device)), weight_bf16 }
    }

    /// Layers that read the same input as one (q/k/v, gate/up): their weights stacked along the
    /// output axis, `[Σ out, in]`, so one product serves them all and its output holds theirs side
    /// by side, in the order given. Biases are all present or all absent.
    ///
    /// # Panics
    /// When `parts` is empty, the input widths differ, or some parts have a bias and others not.
    pub fn from_host_stacked(parts: Vec<(HostTensor, Option<HostTensor>)>, device: &Device) -> Self {
        let inp = parts.first().expect("stacking no layers").0.shape[1];
        let with_bias = parts[0].1.is_some();
        let (mut w, mut b, mut out) = (Vec::new(), Vec::new(), 0);
        for (weight, bias) in parts {
            assert!(
                weight.shape.len() == 2 && weight.shape[1] == inp,
                "stacked layers read {inp} inputs, got shape {:?}",
                weight.shape
            );
            assert_eq!(bias.is_some(), with_bias, "stacked layers have a bias each or none");
            out += weight.shape[0];
            w.extend(weight.data);
            b.extend(bias.map(|b| b.data).unwrap_or_default());
        }
        let weight = HostTensor { shape: vec![out, inp], data: w };
        let bias = with_bias.then(|| HostTensor { shape: vec![out], data: b });
        Self::from_host(weight, bias, device)
    }

    /// The stored weight, `[out, in]`, and its bfloat16 copy when [`bf16_weights`] is on.
    pub fn into_weights(self) -> (Tensor<2>, Option<Bf16Weights>) {
        (self.weight, self.weight_bf16)
    }

    /// Output features.
    pub fn d_output(&self) -> usize {
        self.weight.dims()[0]
    }

    /// # Shapes
    /// - `x`: `[batch, seq, in]` → `[batch, seq, out]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let x = x.reshape([b * s, d]);
        project_with(x, &self.weight, self.weight_bf16.as_deref().map(Vec::as_slice), self.bias.as_ref()).reshape([
            b,
            s,
            self.d_output(),
        ])
    }
}

/// `x · wᵀ (+ bias)` for `x` `[rows, in]` and `w` `[out, in]`: the few-rows path when it applies
/// (see [`Linear`]), else [`project_plain`].
pub fn project(x: Tensor<2>, w: &Tensor<2>, bias: Option<&Tensor<1>>) -> Tensor<2> {
    project_with(x, w, None, bias)
}

/// [`project`], the few-rows path reading `w16` (`w` rounded to bfloat16) when given.
pub fn project_with(x: Tensor<2>, w: &Tensor<2>, w16: Option<&[u16]>, bias: Option<&Tensor<1>>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if let Some(y) = flex::project_rows(&x, w, w16, bias) {
        return y;
    }
    let _ = w16;
    project_plain(x, w, bias)
}

/// `x · wᵀ (+ bias)` through burn's matmul alone.
pub fn project_plain(x: Tensor<2>, w: &Tensor<2>, bias: Option<&Tensor<1>>) -> Tensor<2> {
    let y = x.matmul(w.clone().transpose());
    match bias {
        Some(b) => y + b.clone().unsqueeze::<2>(),
        None => y,
    }
}

/// Whether the few-rows path is switched on: it is unless `GREATER_PLAIN_MATMUL` is set to
/// anything but `0` (for measuring one against the other).
pub fn rows_path_enabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !super::switched_off(&OFF, "GREATER_PLAIN_MATMUL")
}

#[cfg(feature = "flex")]
mod flex {
    use burn::tensor::{Tensor, TensorData};
    use burn_flex::{Flex, FlexTensor};

    use super::super::f32_flex;
    use super::super::rows_matmul::{MAX_ROWS, matmul_rows, matmul_rows_bf16};

    /// The few-rows product when `x` has at most [`MAX_ROWS`] rows and every operand is a plain
    /// (not autodiff-tracked) f32 Flex tensor; `None` otherwise.
    pub(super) fn project_rows(
        x: &Tensor<2>,
        w: &Tensor<2>,
        w16: Option<&[u16]>,
        bias: Option<&Tensor<1>>,
    ) -> Option<Tensor<2>> {
        let [m, k] = x.dims();
        let [n, kw] = w.dims();
        if m > MAX_ROWS || k != kw || !super::rows_path_enabled() {
            return None;
        }
        let x = f32_flex(x.clone())?;
        let w = f32_flex(w.clone())?;
        let bias = match bias {
            Some(b) => Some(f32_flex(b.clone())?),
            None => None,
        };
        let y = {
            let xs = x.as_slice::<f32>()?;
            let ws = w.as_slice::<f32>()?;
            let bs = match &bias {
                Some(b) => Some(b.as_slice::<f32>()?),
                None => None,
            };
            match w16 {
                Some(w16) => matmul_rows_bf16(xs, w16, bs, m, k, n),
                None => matmul_rows(xs, ws, bs, m, k, n),
            }
        };
        let y = FlexTensor::from_data(TensorData::new(y, [m, n]));
        Some(Tensor::from_primitive::<Flex>(y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::download;
    use crate::rng::SplitMix64;

    #[test]
    fn applies_pytorch_layout() {
        let device = crate::device::default_device();
        // W = [[1, 2], [3, 4], [5, 6]] maps 2 inputs to 3 outputs; b = [0.5, 0, -1].
        let w = HostTensor { shape: vec![3, 2], data: vec![1., 2., 3., 4., 5., 6.] };
        let b = HostTensor { shape: vec![3], data: vec![0.5, 0., -1.] };
        let lin = Linear::from_host(w, Some(b), &device);
        let x = Tensor::<3>::from_floats([[[1.0, -1.0]]], &device);
        // [1-2+0.5, 3-4, 5-6-1]
        assert_eq!(download(lin.forward(x)), vec![-0.5, -1.0, -2.0]);
    }

    fn random(rng: &mut SplitMix64, shape: Vec<usize>) -> HostTensor {
        let len = shape.iter().product();
        HostTensor { shape, data: (0..len).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect() }
    }

    /// Every row count across the few-rows limit, a transposed (non-contiguous) input, with and
    /// without bias: the result equals burn's matmul to rounding.
    #[test]
    fn few_rows_path_matches_burn_matmul() {
        let device = crate::device::default_device();
        let mut rng = SplitMix64(5);
        let (k, n) = (96, 70);
        let w = upload::<2>(random(&mut rng, vec![n, k]), &device);
        let b = upload::<1>(random(&mut rng, vec![n]), &device);
        for m in [1, 2, 3, 8, 16, 17, 40, 41, 64] {
            let x = upload::<2>(random(&mut rng, vec![m, k]), &device);
            let xt = upload::<2>(random(&mut rng, vec![k, m]), &device).transpose();
            for (x, bias) in [(x.clone(), None), (x, Some(&b)), (xt, Some(&b))] {
                let got = download(project(x.clone(), &w, bias));
                let want = download(project_plain(x, &w, bias));
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-5, "m = {m}, element {i}: {g} vs {e}");
                }
            }
        }
    }

    /// A stacked layer's output holds each part's output, in order, with its bias.
    #[test]
    fn stacked_layers_give_their_outputs_side_by_side() {
        let device = crate::device::default_device();
        let mut rng = SplitMix64(23);
        let k = 12;
        let parts: Vec<(HostTensor, Option<HostTensor>)> =
            [5, 3, 3].iter().map(|&n| (random(&mut rng, vec![n, k]), Some(random(&mut rng, vec![n])))).collect();
        let x = upload::<3>(random(&mut rng, vec![2, 4, k]), &device);
        let stacked = download(Linear::from_host_stacked(parts.clone(), &device).forward(x.clone()));
        let apart: Vec<Vec<f32>> =
            parts.into_iter().map(|(w, b)| download(Linear::from_host(w, b, &device).forward(x.clone()))).collect();
        for row in 0..8 {
            let want: Vec<f32> =
                [(0, 5), (1, 3), (2, 3)].iter().flat_map(|&(p, n)| apart[p][row * n..(row + 1) * n].to_vec()).collect();
            assert_eq!(stacked[row * 11..(row + 1) * 11], want[..], "row {row}");
        }
    }

    #[test]
    #[should_panic(expected = "a bias each or none")]
    fn stacking_layers_with_and_without_bias_is_refused() {
        let device = crate::device::default_device();
        let mut rng = SplitMix64(29);
        let with = (random(&mut rng, vec![2, 4]), Some(random(&mut rng, vec![2])));
        let without = (random(&mut rng, vec![2, 4]), None);
        Linear::from_host_stacked(vec![with, without], &device);
    }

    /// The bfloat16 switch is fixed by its first use: a later call cannot flip it for models
    /// already loaded with the other setting.
    #[test]
    fn the_bf16_switch_is_fixed_once_read() {
        let now = bf16_weights();
        assert!(use_bf16_weights(now), "confirming the current setting succeeds");
        assert!(!use_bf16_weights(!now), "the setting cannot change once read");
        assert_eq!(bf16_weights(), now);
    }

    /// With bfloat16 weights the few-rows path reads the rounded weights: bit for bit the f32
    /// path over weights rounded the same way, and not the f32 result.
    #[cfg(feature = "flex")]
    #[test]
    fn bf16_weights_are_read_by_the_few_rows_path() {
        use crate::layers::rows_matmul::to_bf16;
        let device = crate::device::default_device();
        let mut rng = SplitMix64(17);
        let (m, k, n) = (3, 40, 24);
        let x = upload::<2>(random(&mut rng, vec![m, k]), &device);
        let w = random(&mut rng, vec![n, k]);
        let w16 = to_bf16(&w.data);
        let rounded = HostTensor {
            shape: w.shape.clone(),
            data: w16.iter().map(|&h| f32::from_bits(u32::from(h) << 16)).collect(),
        };
        let (w, rounded) = (upload::<2>(w, &device), upload::<2>(rounded, &device));
        let got = download(project_with(x.clone(), &w, Some(&w16), None));
        assert_eq!(got, download(project(x.clone(), &rounded, None)));
        assert_ne!(got, download(project(x, &w, None)), "the bf16 weights were not read");
    }

    /// The few-rows path really runs (its result is batch-invariant bit for bit, which gemm's
    /// blocking does not promise), and autodiff inputs still get gradients.
    #[cfg(feature = "flex")]
    #[test]
    fn few_rows_path_is_taken_and_autodiff_falls_back() {
        use burn::tensor::Tensor;
        let device = crate::device::default_device();
        let mut rng = SplitMix64(9);
        let (m, k, n) = (4, 64, 48);
        let x = upload::<2>(random(&mut rng, vec![m, k]), &device);
        let w = upload::<2>(random(&mut rng, vec![n, k]), &device);
        assert!(flex::project_rows(&x, &w, None, None).is_some(), "the few-rows path refused a plain f32 input");

        let ad = device.clone().autodiff();
        let xa: Tensor<2> = Tensor::from_data(x.to_data(), &ad).require_grad();
        assert!(flex::project_rows(&xa, &w, None, None).is_none(), "an autodiff input must take burn's matmul");
        let grads = project(xa.clone(), &w, None).sum().backward();
        let g = download(xa.grad(&grads).expect("gradient of x"));
        // d(sum(x·wᵀ))/dx[r, i] = Σ_o w[o, i].
        let col = download(w.sum_dim(0));
        for r in 0..m {
            for i in 0..k {
                assert!((g[r * k + i] - col[i]).abs() <= 1e-4, "grad[{r},{i}]");
            }
        }
    }
}
