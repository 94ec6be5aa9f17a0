//! Root-mean-square layer norm.

use burn::tensor::{Device, Tensor};

use super::upload;
use crate::loading::HostTensor;

/// `y = x / sqrt(mean(x²) + eps) · g`, computed in `f32`.
///
/// Gemma multiplies by `1 + w` rather than `w`; the offset is folded into `g` at load
/// ([`RmsNorm::from_host`] with `unit_offset`), so the forward is the same for every family.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    gain: Tensor<1>,
    eps: f32,
}

impl RmsNorm {
    /// Build from a Hugging Face norm weight; `unit_offset` adds 1 (Gemma's `1 + w`).
    pub fn from_host(mut weight: HostTensor, eps: f32, unit_offset: bool, device: &Device) -> Self {
        if unit_offset {
            weight.data.iter_mut().for_each(|w| *w += 1.0);
        }
        Self { gain: upload(weight, device), eps }
    }

    /// # Shapes
    /// - `x`: `[..., dim]` → same shape; the statistic runs over the last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let ms = x.clone().square().mean_dim(D - 1);
        let normed = x * (ms + self.eps).sqrt().recip();
        normed * self.gain.clone().unsqueeze::<D>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::download;

    #[test]
    fn normalises_by_rms_and_scales() {
        let device = crate::device::default_device();
        // x = [1, 2, 3, 4]: mean(x²) = 30/4 = 7.5, rms = sqrt(7.5 + 0) = 2.7386128.
        let w = HostTensor { shape: vec![4], data: vec![1.0, 1.0, 2.0, 0.5] };
        let norm = RmsNorm::from_host(w, 0.0, false, &device);
        let y = download(norm.forward(Tensor::<2>::from_floats([[1.0, 2.0, 3.0, 4.0]], &device)));
        let r = 7.5f32.sqrt();
        let want = [1.0 / r, 2.0 / r, 6.0 / r, 2.0 / r];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn unit_offset_adds_one() {
        let device = crate::device::default_device();
        // Gemma: gain 1 + w with w = 0 is the identity scale; x = [3, 4], rms = sqrt(12.5).
        let w = HostTensor { shape: vec![2], data: vec![0.0, 0.0] };
        let norm = RmsNorm::from_host(w, 0.0, true, &device);
        let y = download(norm.forward(Tensor::<1>::from_floats([3.0, 4.0], &device)));
        let r = 12.5f32.sqrt();
        assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 4.0 / r).abs() < 1e-6);
    }
}
