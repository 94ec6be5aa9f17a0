//! The gated MLP: SwiGLU (Llama, Qwen2) or GeGLU with tanh-approximated GELU (Gemma).

use burn::tensor::Tensor;
use burn::tensor::activation::{gelu_approximate, silu};

use super::linear::Linear;
use crate::config::Activation;

/// `down(act(gate(x)) · up(x))`.
#[derive(Debug, Clone)]
pub struct GatedMlp {
    /// `mlp.gate_proj`
    pub gate_proj: Linear,
    /// `mlp.up_proj`
    pub up_proj: Linear,
    /// `mlp.down_proj`
    pub down_proj: Linear,
    /// The gate's activation.
    pub act: Activation,
}

impl GatedMlp {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone());
        let gate = match self.act {
            Activation::Silu => silu(gate),
            Activation::GeluTanh => gelu_approximate(gate),
        };
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
