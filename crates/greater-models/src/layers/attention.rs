//! Multi-head attention with grouped-query heads, RoPE, a KV cache, and the Gemma options
//! (q/k RMSNorm, score soft-capping, a custom score scale).

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use super::linear::Linear;
use super::rms_norm::RmsNorm;
use super::rope::RopeAngles;
use crate::cache::KvCache;

/// Self-attention of one decoder layer. Field names follow `model.layers.{i}.self_attn.*`.
#[derive(Debug, Clone)]
pub struct Attention {
    /// `q_proj`
    pub q_proj: Linear,
    /// `k_proj`
    pub k_proj: Linear,
    /// `v_proj`
    pub v_proj: Linear,
    /// `o_proj`
    pub o_proj: Linear,
    /// `q_norm` (Gemma 3): RMSNorm over each query head.
    pub q_norm: Option<RmsNorm>,
    /// `k_norm` (Gemma 3): RMSNorm over each key head.
    pub k_norm: Option<RmsNorm>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads; `num_heads` is a multiple of it.
    pub num_kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Multiplier of `q·k` (usually `head_dim^-0.5`).
    pub scale: f32,
    /// `tanh` soft-cap of the scores (Gemma 2); 0 is off.
    pub softcap: f32,
}

impl Attention {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    /// - `mask`: additive, `[batch, 1, 1, seq, cached + seq]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        angles: &RopeAngles,
        mask: &Tensor<5>,
        layer: usize,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (nh, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let group = nh / nkv;
        let split = |t: Tensor<3>, heads: usize| t.reshape([b, s, heads, d]).swap_dims(1, 2);
        let mut q = split(self.q_proj.forward(x.clone()), nh);
        let mut k = split(self.k_proj.forward(x.clone()), nkv);
        let v = split(self.v_proj.forward(x), nkv);
        if let Some(norm) = &self.q_norm {
            q = norm.forward(q);
        }
        if let Some(norm) = &self.k_norm {
            k = norm.forward(k);
        }
        let q = angles.apply(q);
        let k = angles.apply(k);
        let (k, v) = cache.update(layer, k, v);
        let t = k.dims()[2];
        // Query heads sharing a key/value head are stacked along the sequence axis, so one
        // batched matmul serves a whole group without repeating keys and values.
        let q = q.reshape([b, nkv, group * s, d]);
        let mut scores = q.matmul(k.swap_dims(2, 3)) * self.scale;
        if self.softcap > 0.0 {
            scores = (scores / self.softcap).tanh() * self.softcap;
        }
        let scores = scores.reshape([b, nkv, group, s, t]) + mask.clone();
        let probs = softmax(scores, 4).reshape([b, nkv, group * s, t]);
        let out = probs.matmul(v).reshape([b, nh, s, d]).swap_dims(1, 2).reshape([b, s, nh * d]);
        self.o_proj.forward(out)
    }
}
