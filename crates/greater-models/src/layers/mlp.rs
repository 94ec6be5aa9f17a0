//! The gated MLP: SwiGLU (Llama, Qwen2) or GeGLU with tanh-approximated GELU (Gemma).

use burn::tensor::Tensor;
use burn::tensor::activation::{gelu_approximate, silu};

use super::linear::Linear;
use crate::config::Activation;

/// `down(act(gate(x)) · up(x))`, with `gate` and `up` stacked into one projection.
#[derive(Debug, Clone)]
pub struct GatedMlp {
    /// `mlp.gate_proj` and `mlp.up_proj` stacked ([`Linear::from_host_stacked`]): the output
    /// holds the gate's features, then the up projection's.
    pub gate_up: Linear,
    /// `mlp.down_proj`
    pub down_proj: Linear,
    /// The gate's activation.
    pub act: Activation,
}

impl GatedMlp {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gu = self.gate_up.forward(x);
        let inter = gu.dims()[2] / 2;
        let h = match self.act {
            Activation::Silu => swiglu(gu, inter),
            Activation::GeluTanh => gelu_approximate(gu.clone().narrow(2, 0, inter)) * gu.narrow(2, inter, inter),
        };
        self.down_proj.forward(h)
    }
}

/// `silu(gate) · up` of a stacked `[batch, seq, 2 · inter]` projection: one pass of
/// [`super::swiglu`] on plain CPU tensors, burn's ops otherwise.
fn swiglu(gu: Tensor<3>, inter: usize) -> Tensor<3> {
    #[cfg(feature = "flex")]
    if let Some(h) = flex::swiglu(&gu, inter) {
        return h;
    }
    swiglu_plain(gu, inter)
}

/// [`swiglu`] through burn's ops alone.
fn swiglu_plain(gu: Tensor<3>, inter: usize) -> Tensor<3> {
    silu(gu.clone().narrow(2, 0, inter)) * gu.narrow(2, inter, inter)
}

/// Whether the fused SwiGLU kernel is switched on: it is unless `GREATER_PLAIN_SWIGLU` is set to
/// anything but `0`.
pub fn fused_swiglu_enabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !super::switched_off(&OFF, "GREATER_PLAIN_SWIGLU")
}

#[cfg(feature = "flex")]
mod flex {
    use burn::tensor::{Tensor, TensorData};
    use burn_flex::{Flex, FlexTensor};

    use super::super::f32_flex;
    use super::super::swiglu::swiglu_rows;

    /// The fused kernel when `gu` is a plain f32 Flex tensor; `None` otherwise.
    pub(super) fn swiglu(gu: &Tensor<3>, inter: usize) -> Option<Tensor<3>> {
        if !super::fused_swiglu_enabled() {
            return None;
        }
        let [b, s, _] = gu.dims();
        let t = f32_flex(gu.clone())?;
        let h = swiglu_rows(t.as_slice::<f32>()?, b * s, inter);
        Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(h, [b, s, inter]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{download, upload};
    use crate::loading::HostTensor;

    /// The fused kernel (plain tensors) and burn's ops agree, and autodiff inputs take burn's ops
    /// and get gradients.
    #[test]
    fn fused_swiglu_matches_burn_and_autodiff_falls_back() {
        let device = crate::device::default_device();
        let (b, s, inter) = (2, 3, 13);
        let data: Vec<f32> = (0..b * s * 2 * inter).map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0).collect();
        let gu = upload::<3>(HostTensor { shape: vec![b, s, 2 * inter], data }, &device);
        let got = download(swiglu(gu.clone(), inter));
        let want = download(swiglu_plain(gu.clone(), inter));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "element {i}: {g} vs {w}");
        }
        #[cfg(feature = "flex")]
        assert!(flex::swiglu(&gu, inter).is_some(), "the fused kernel refused a plain f32 tensor");

        let ad = device.clone().autodiff();
        let x: Tensor<3> = Tensor::from_data(gu.to_data(), &ad).require_grad();
        #[cfg(feature = "flex")]
        assert!(flex::swiglu(&x, inter).is_none(), "an autodiff input must take burn's ops");
        let grads = swiglu(x.clone(), inter).sum().backward();
        let g = download(x.grad(&grads).expect("gradient of the stacked projection"));
        // d/du (silu(g) · u) = silu(g): the up half of the gradient is the plain activation.
        let act = download(silu(gu.narrow(2, 0, inter)));
        for r in 0..b * s {
            for i in 0..inter {
                let (got, want) = (g[r * 2 * inter + inter + i], act[r * inter + i]);
                assert!((got - want).abs() <= 1e-5, "row {r}, up {i}: {got} vs {want}");
            }
        }
    }
}
