//! Rotary position embedding, rotate-half ("NeoX") pairing.
//!
//! Hugging Face checkpoints pair dimension `i` with `i + d/2`. GGUF `llama` files pair adjacent
//! dimensions instead; their q/k rows are un-permuted at load (see `loading::names`), so this is
//! the only pairing the model ever sees. Frequencies follow the reference implementation in `f32`:
//! `inv_freq = 1 / base^(2i/d)`, `angle = f32(pos) · inv_freq`.

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::RopeScaling;

/// The per-dimension inverse frequencies of one RoPE variant.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

/// `cos` and `sin` of every (row, position, frequency), ready to rotate q and k.
#[derive(Debug, Clone)]
pub struct RopeAngles {
    /// `[batch, 1, seq, head_dim / 2]`
    pub cos: Tensor<4>,
    /// `[batch, 1, seq, head_dim / 2]`
    pub sin: Tensor<4>,
}

impl Rope {
    /// Frequencies for heads of width `head_dim` with base `theta`, adjusted by `scaling`.
    pub fn new(head_dim: usize, theta: f32, scaling: &RopeScaling) -> Self {
        let half = head_dim / 2;
        let mut inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
        match scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => inv_freq.iter_mut().for_each(|f| *f /= factor),
            RopeScaling::Llama3(s) => {
                // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, and the
                // band between is interpolated (transformers `_compute_llama3_parameters`).
                let old = s.original_max_position_embeddings as f32;
                let low_wavelen = old / s.low_freq_factor;
                let high_wavelen = old / s.high_freq_factor;
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f32::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= s.factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                        *f = (1.0 - smooth) * *f / s.factor + smooth * *f;
                    }
                }
            }
        }
        Self { inv_freq }
    }

    /// Angles for the given positions (`positions[row][i]` is the position of token `i`).
    pub fn angles(&self, positions: &[Vec<usize>], device: &Device) -> RopeAngles {
        let b = positions.len();
        let s = positions.first().map_or(0, Vec::len);
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(b * s * half);
        let mut sin = Vec::with_capacity(b * s * half);
        for row in positions {
            for &p in row {
                for &f in &self.inv_freq {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let shape = [b, 1, s, half];
        RopeAngles {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

impl RopeAngles {
    /// Rotate `x` (queries or keys).
    ///
    /// # Shapes
    /// - `x`: `[batch, heads, seq, head_dim]` → same
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, s, d] = x.dims();
        let half = d / 2;
        let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..half]);
        let x2 = x.slice([0..b, 0..h, 0..s, half..d]);
        let (cos, sin) = (self.cos.clone(), self.sin.clone());
        let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
        let r2 = x2 * cos + x1 * sin;
        Tensor::cat(vec![r1, r2], 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::download;

    #[test]
    fn position_zero_is_identity() {
        let device = crate::device::default_device();
        let rope = Rope::new(4, 10_000.0, &RopeScaling::None);
        let x = Tensor::<4>::from_floats([[[[1.0, 2.0, 3.0, 4.0]]]], &device);
        let y = download(rope.angles(&[vec![0]], &device).apply(x));
        assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn rotates_halves_by_position_times_frequency() {
        let device = crate::device::default_device();
        // head_dim 4, base 100: inv_freq = [1, 100^(-1/2)] = [1, 0.1]. At position 2 the pair
        // (x0, x2) turns by 2 rad and (x1, x3) by 0.2 rad.
        let rope = Rope::new(4, 100.0, &RopeScaling::None);
        let x = Tensor::<4>::from_floats([[[[1.0, 1.0, 0.0, 0.0]]]], &device);
        let y = download(rope.angles(&[vec![2]], &device).apply(x));
        let want = [2f32.cos(), 0.2f32.cos(), 2f32.sin(), 0.2f32.sin()];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_and_slows_low_frequencies() {
        let s = crate::config::Llama3RopeScaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let plain = Rope::new(128, 500_000.0, &RopeScaling::None);
        let scaled = Rope::new(128, 500_000.0, &RopeScaling::Llama3(s));
        // Highest frequency (wavelength 2π < 8192/4) is unchanged; the lowest is divided by 8.
        assert_eq!(plain.inv_freq[0], scaled.inv_freq[0]);
        let last = plain.inv_freq.len() - 1;
        assert!((scaled.inv_freq[last] - plain.inv_freq[last] / 8.0).abs() < 1e-12);
    }
}
