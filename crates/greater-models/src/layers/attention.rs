//! Multi-head attention with grouped-query heads, RoPE, a KV cache, and the Gemma options
//! (q/k RMSNorm, score soft-capping, a custom score scale).

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::linear::Linear;
use super::rms_norm::RmsNorm;
use super::rope::RopeAngles;
use crate::cache::KvCache;

/// Self-attention of one decoder layer. Field names follow `model.layers.{i}.self_attn.*`.
#[derive(Debug, Clone)]
pub struct Attention {
    /// `q_proj`, `k_proj` and `v_proj` stacked ([`Linear::from_host_stacked`]): the output holds
    /// the query heads, then the key heads, then the value heads.
    pub qkv: Linear,
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
        let fused = fused_for(&x);
        self.forward_with(x, angles, mask, layer, cache, fused)
    }

    /// [`Attention::forward`] with the attention core chosen by `fused` (see [`fused_applies`]).
    fn forward_with(
        &self,
        x: Tensor<3>,
        angles: &RopeAngles,
        mask: &Tensor<5>,
        layer: usize,
        cache: &mut KvCache,
        fused: bool,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (nh, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let group = nh / nkv;
        let split = |t: Tensor<3>, heads: usize| t.reshape([b, s, heads, d]).swap_dims(1, 2);
        let qkv = self.qkv.forward(x);
        let mut q = split(qkv.clone().narrow(2, 0, nh * d), nh);
        let mut k = split(qkv.clone().narrow(2, nh * d, nkv * d), nkv);
        let v = split(qkv.narrow(2, (nh + nkv) * d, nkv * d), nkv);
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
        if fused {
            #[cfg(feature = "flex")]
            if let Some(out) = self.causal_kernel(&q, &k, &v, mask) {
                return self.o_proj.forward(out.swap_dims(1, 2).reshape([b, s, nh * d]));
            }
            let options = AttentionModuleOptions {
                scale: Some(f64::from(self.scale)),
                softcap: (self.softcap > 0.0).then_some(f64::from(self.softcap)),
                is_causal: false,
            };
            // The kernel takes the mask as booleans (blocked scores become −∞ inside it).
            let blocked = mask.clone().reshape([mask.dims()[0], 1, s, t]).lower_elem(BLOCKED_BELOW);
            let out = attention(q, k, v, Some(blocked), None, options);
            return self.o_proj.forward(out.swap_dims(1, 2).reshape([b, s, nh * d]));
        }
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

impl Attention {
    /// The attention core as [`super::causal_attention`] (plain f32 Flex tensors; `None`
    /// otherwise, or when `GREATER_BURN_ATTENTION=1` asks for burn's fused kernel instead).
    #[cfg(feature = "flex")]
    fn causal_kernel(&self, q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, mask: &Tensor<5>) -> Option<Tensor<4>> {
        static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if super::switched_off(&OFF, "GREATER_BURN_ATTENTION") {
            return None;
        }
        let [b, nh, s, d] = q.dims();
        let [_, nkv, t, _] = k.dims();
        let (qf, kf, vf) = (super::f32_flex(q.clone())?, super::f32_flex(k.clone())?, super::f32_flex(v.clone())?);
        let mf = super::f32_flex(mask.clone())?;
        let dims = super::causal_attention::Dims {
            batch: b,
            heads: nh,
            kv_heads: nkv,
            queries: s,
            keys: t,
            head_dim: d,
            scale: self.scale,
            softcap: self.softcap,
        };
        let out = super::causal_attention::attention(
            qf.as_slice::<f32>()?,
            kf.as_slice::<f32>()?,
            vf.as_slice::<f32>()?,
            mf.as_slice::<f32>()?,
            dims,
        );
        let out = burn_flex::FlexTensor::from_data(burn::tensor::TensorData::new(out, [b, nh, s, d]));
        Some(Tensor::from_primitive::<burn_flex::Flex>(out))
    }
}

/// Mask entries below this are blocked ([`mask::BLOCKED`](super::mask::BLOCKED) is −∞, open
/// entries are 0).
const BLOCKED_BELOW: f32 = f32::MIN;

/// Fewest new tokens per row for which the fused kernel runs. It copies the cached keys and
/// values into one contiguous block first, which a decode step (one token per row, or a few while
/// verifying a draft) does not earn back: measured on 2 cores, SmolLM2 decode at batch 8 ran at
/// 167 tokens/s decomposed and 122 fused, while a 512-token prefill ran at 255 and 305 (Qwen2.5-0.5B:
/// 62 against 58 decoding, 137 against 152 in prefill).
const FUSED_MIN_QUERIES: usize = 16;

/// Whether the attention of `x` (`[batch, new, hidden]`) runs as the fused kernel: at least
/// [`FUSED_MIN_QUERIES`] new tokens, on tensors where [`fused_applies`].
fn fused_for(x: &Tensor<3>) -> bool {
    x.dims()[1] >= FUSED_MIN_QUERIES && fused_applies(x)
}

/// Whether the attention core can run fused: on plain (not autodiff-tracked) CPU tensors. The
/// fused core is [`super::causal_attention`] (scores only over the keys each block of queries
/// sees, a vectorised softmax, one job per head and query block on every core); burn-flex's
/// kernel stands in where that one does not apply, and `GREATER_BURN_ATTENTION=1` picks it, for
/// measuring one against the other. The decomposed path (scores, mask, softmax, weighted values
/// as separate ops) stays for gradients and the GPU backends. `GREATER_PLAIN_ATTENTION=1` turns
/// the fused core off altogether.
fn fused_applies<const D: usize>(x: &Tensor<D>) -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !super::switched_off(&OFF, "GREATER_PLAIN_ATTENTION") && !x.is_autodiff() && crate::device::is_flex(&x.device())
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::config::RopeScaling;
    use crate::layers::download;
    use crate::layers::mask::{self, Slot};
    use crate::layers::rope::Rope;
    use crate::loading::HostTensor;
    use crate::rng::SplitMix64;

    fn parts(rng: &mut SplitMix64, inp: usize, out: usize, bias: bool) -> (HostTensor, Option<HostTensor>) {
        let mut random = |len: usize| (0..len).map(|_| (rng.next_u64() % 2001) as f32 / 2000.0 - 0.5).collect();
        let w = HostTensor { shape: vec![out, inp], data: random(out * inp) };
        let b = bias.then(|| HostTensor { shape: vec![out], data: random(out) });
        (w, b)
    }

    fn linear(rng: &mut SplitMix64, inp: usize, out: usize, bias: bool) -> Linear {
        let (w, b) = parts(rng, inp, out, bias);
        Linear::from_host(w, b, &crate::device::default_device())
    }

    /// The fused path (our causal kernel) and the decomposed ops give the same outputs: grouped heads, a
    /// left-padded row, a sliding window, soft-capping, a custom scale, a prefill and then one
    /// cached decode step.
    #[test]
    fn the_fused_kernel_equals_the_decomposed_attention() {
        let device = crate::device::default_device();
        let mut rng = SplitMix64(21);
        let (hidden, nh, nkv, d) = (24, 6, 2, 4);
        let x = Tensor::<3>::random([2, 6, hidden], Distribution::Default, &device);
        assert!(fused_applies(&x), "the fused kernel must run on plain CPU tensors");
        let ad: Tensor<3> = Tensor::from_data(x.to_data(), &device.clone().autodiff()).require_grad();
        assert!(!fused_applies(&ad), "autodiff tensors take the decomposed path");
        let prefill = Tensor::<3>::zeros([1, FUSED_MIN_QUERIES, hidden], &device);
        assert!(fused_for(&prefill), "a prefill takes the fused kernel");
        assert!(!fused_for(&x.clone().slice([0..2, 0..1])), "a decode step keeps the separate ops");
        for (softcap, window) in [(0.0, None), (2.0, Some(3))] {
            let attn = Attention {
                qkv: Linear::from_host_stacked(
                    vec![
                        parts(&mut rng, hidden, nh * d, true),
                        parts(&mut rng, hidden, nkv * d, true),
                        parts(&mut rng, hidden, nkv * d, true),
                    ],
                    &device,
                ),
                o_proj: linear(&mut rng, nh * d, hidden, false),
                q_norm: None,
                k_norm: None,
                num_heads: nh,
                num_kv_heads: nkv,
                head_dim: d,
                scale: 0.37,
                softcap,
            };
            // Plain CPU tensors take our causal kernel (not burn's fused one) on the fused path.
            let probe = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Default, &device);
            let slots = vec![(0..3).map(|pos| Slot { valid: true, pos }).collect::<Vec<_>>()];
            let taken = attn
                .causal_kernel(
                    &probe([1, nh, 3, d]),
                    &probe([1, nkv, 3, d]),
                    &probe([1, nkv, 3, d]),
                    &mask::build(&slots, 3, None, &device),
                )
                .is_some();
            assert!(taken || std::env::var_os("GREATER_BURN_ATTENTION").is_some(), "the causal kernel refused");
            let rope = Rope::new(d, 10_000.0, &RopeScaling::None);
            let mut caches = [KvCache::new(2, 8), KvCache::new(2, 8)];
            for (new, x) in [(5, x.clone().slice([0..2, 0..5])), (1, x.clone().slice([0..2, 5..6]))] {
                let valid = [vec![true; new], (0..new).map(|i| caches[0].len() + i >= 2).collect::<Vec<_>>()];
                let plan = caches[0].plan(new, Some(&valid));
                let keys: &[Vec<Slot>] = &plan.keys;
                let m = mask::build(keys, new, window, &device);
                let angles = rope.angles(&plan.positions, &device);
                let outs: Vec<Vec<f32>> = caches
                    .iter_mut()
                    .zip([true, false])
                    .map(|(cache, fused)| {
                        let y = attn.forward_with(x.clone(), &angles, &m, 0, cache, fused);
                        cache.commit(plan.clone());
                        download(y)
                    })
                    .collect();
                for (i, (f, p)) in outs[0].iter().zip(&outs[1]).enumerate() {
                    assert!((f - p).abs() <= 1e-5, "softcap {softcap}, {new} new, element {i}: {f} vs {p}");
                }
            }
        }
    }
}
