//! A frozen linear layer.

use burn::tensor::{Device, Tensor};

use super::upload;
use crate::loading::HostTensor;

/// `y = x W + b` with `W` stored `[in, out]`.
///
/// Checkpoints store linear weights `[out, in]` (PyTorch); they are transposed once at load so
/// that every forward is a plain row-major matmul.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl Linear {
    /// Build from a PyTorch-layout weight `[out, in]` and an optional bias `[out]`.
    pub fn from_host(weight: HostTensor, bias: Option<HostTensor>, device: &Device) -> Self {
        let (out, inp) = (weight.shape[0], weight.shape[1]);
        let mut t = vec![0.0f32; out * inp];
        for o in 0..out {
            let row = &weight.data[o * inp..(o + 1) * inp];
            for (i, &w) in row.iter().enumerate() {
                t[i * out + o] = w;
            }
        }
        let weight = upload(HostTensor { shape: vec![inp, out], data: t }, device);
        Self { weight, bias: bias.map(|b| upload(b, device)) }
    }

    /// The stored weight, `[in, out]`.
    pub fn weight_in_out(self) -> Tensor<2> {
        self.weight
    }

    /// Output features.
    pub fn d_output(&self) -> usize {
        self.weight.dims()[1]
    }

    /// # Shapes
    /// - `x`: `[batch, seq, in]` → `[batch, seq, out]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let y = x.reshape([b * s, d]).matmul(self.weight.clone());
        let y = match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze::<2>(),
            None => y,
        };
        y.reshape([b, s, self.d_output()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::download;

    #[test]
    fn transposes_pytorch_layout() {
        let device = crate::device::default_device();
        // W = [[1, 2], [3, 4], [5, 6]] maps 2 inputs to 3 outputs; b = [0.5, 0, -1].
        let w = HostTensor { shape: vec![3, 2], data: vec![1., 2., 3., 4., 5., 6.] };
        let b = HostTensor { shape: vec![3], data: vec![0.5, 0., -1.] };
        let lin = Linear::from_host(w, Some(b), &device);
        let x = Tensor::<3>::from_floats([[[1.0, -1.0]]], &device);
        // [1-2+0.5, 3-4, 5-6-1]
        assert_eq!(download(lin.forward(x)), vec![-0.5, -1.0, -2.0]);
    }
}
