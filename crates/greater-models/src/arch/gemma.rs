//! The Gemma family: Gemma 2 and Gemma 3 (text).
//!
//! How it differs from Llama ([`super::llama`]):
//! - the embedding is multiplied by `embed_scale = f32(sqrt(hidden))` on the way in, while the
//!   tied output head uses the *unscaled* matrix;
//! - sandwich norms: every block output is normed before it joins the residual stream
//!   (`post_attention_layernorm`, `post_feedforward_layernorm`), and the MLP input has its own
//!   `pre_feedforward_layernorm`;
//! - every RMSNorm multiplies by `1 + w` (folded into the gain at load);
//! - GeGLU with the tanh-approximated GELU;
//! - attention scores are scaled by `query_pre_attn_scalar^-0.5`, not `head_dim^-0.5`;
//! - layers alternate between sliding-window and global attention; in Gemma 3 they also use two
//!   RoPE bases (`rope_local_theta` for sliding layers, `rope_theta` plus any scaling for global);
//! - Gemma 2: `tanh` soft-capping of attention scores and of the final logits;
//! - Gemma 3: RMSNorm over each query and key head (`q_norm`, `k_norm`) before RoPE.
//!
//! Upstream: transformers `models/gemma2/modeling_gemma2.py`, `models/gemma3/modeling_gemma3.py`.

use burn::tensor::{Device, Int, Tensor};

use super::block::{self, Builder, Embeddings, Masks, TensorList};
use super::{CausalLm, Valid, check_tensors};
use crate::LoadError;
use crate::cache::KvCache;
use crate::config::{Family, LayerAttention, ModelConfig, RopeScaling};
use crate::layers::attention::Attention;
use crate::layers::mlp::GatedMlp;
use crate::layers::rms_norm::RmsNorm;
use crate::layers::rope::{Rope, RopeAngles};
use crate::loading::WeightSource;

/// One decoder layer, `model.layers.{i}`.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    /// `self_attn`
    pub self_attn: Attention,
    /// `mlp`
    pub mlp: GatedMlp,
    /// `input_layernorm` (before attention)
    pub input_layernorm: RmsNorm,
    /// `post_attention_layernorm` (on the attention output, before the residual add)
    pub post_attention_layernorm: RmsNorm,
    /// `pre_feedforward_layernorm` (before the MLP)
    pub pre_feedforward_layernorm: RmsNorm,
    /// `post_feedforward_layernorm` (on the MLP output, before the residual add)
    pub post_feedforward_layernorm: RmsNorm,
    /// Whether this layer attends globally or through a sliding window.
    pub attention: LayerAttention,
}

/// The per-layer norms, in the order of [`DecoderLayer`].
const NORMS: [&str; 4] =
    ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"];

/// A Gemma 2 or Gemma 3 causal LM with frozen weights.
#[derive(Debug, Clone)]
pub struct Gemma {
    config: ModelConfig,
    device: Device,
    /// `model.embed_tokens` (unscaled) and `lm_head` (tied, for released Gemma checkpoints).
    embeddings: Embeddings,
    /// `model.layers`
    layers: Vec<DecoderLayer>,
    /// `model.norm`
    norm: RmsNorm,
    /// RoPE of global layers: base `rope_theta`, with `rope_scaling`.
    global_rope: Rope,
    /// RoPE of sliding layers: base `rope_local_theta`.
    local_rope: Rope,
}

impl Gemma {
    /// The canonical tensor names and shapes this config needs.
    pub fn expected_tensors(c: &ModelConfig) -> TensorList {
        let mut v = block::model_tensors(c);
        (0..c.num_hidden_layers).for_each(|i| v.extend(block::layer_tensors(c, i, &NORMS)));
        v
    }

    /// Load every tensor from `w`, after checking names and shapes.
    pub fn load(c: &ModelConfig, w: &dyn WeightSource, device: &Device) -> Result<Self, LoadError> {
        if !c.family.is_gemma() {
            return Err(LoadError::UnsupportedArchitecture {
                path: w.path().to_path_buf(),
                arch: format!("{:?}", c.family),
                supported: "gemma2, gemma3".into(),
            });
        }
        check_tensors(w, &Self::expected_tensors(c))?;
        // Weights arrive in Hugging Face convention (`w`); the builder folds in `1 + w`.
        let b = Builder::new(c, w, device);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                Ok(DecoderLayer {
                    self_attn: b.attention(i)?,
                    mlp: b.mlp(i)?,
                    input_layernorm: b.layer_norm(i, NORMS[0])?,
                    post_attention_layernorm: b.layer_norm(i, NORMS[1])?,
                    pre_feedforward_layernorm: b.layer_norm(i, NORMS[2])?,
                    post_feedforward_layernorm: b.layer_norm(i, NORMS[3])?,
                    attention: c.layer_attention.get(i).copied().unwrap_or(LayerAttention::Global),
                })
            })
            .collect::<Result<_, LoadError>>()?;
        // Gemma 3 has a second rotary embedding for sliding layers, built from
        // `rope_local_base_freq` without scaling; Gemma 2 uses one rotary embedding everywhere.
        let local_scaling = if c.family == Family::Gemma2 { c.rope_scaling } else { RopeScaling::None };
        Ok(Self {
            config: c.clone(),
            device: device.clone(),
            embeddings: b.embeddings()?,
            layers,
            norm: b.norm("model.norm.weight")?,
            global_rope: Rope::new(c.head_dim, c.rope_theta, &c.rope_scaling),
            local_rope: Rope::new(c.head_dim, c.rope_local_theta, &local_scaling),
        })
    }
}

impl CausalLm for Gemma {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embeddings.embed(ids)
    }

    fn embedding_matrix(&self) -> Tensor<2> {
        self.embeddings.matrix()
    }

    fn forward_hidden(&self, embeds: Tensor<3>, valid: Valid<'_>, cache: &mut KvCache) -> Tensor<3> {
        let s = embeds.dims()[1];
        let plan = cache.plan(s, valid);
        // Masks and angles are built once per step, for each kind of layer present.
        let mut masks = Masks::new(&plan.keys, s, &self.device);
        let (mut global, mut local): (Option<RopeAngles>, Option<RopeAngles>) = (None, None);
        let mut x = embeds * self.config.embed_scale;
        for (i, layer) in self.layers.iter().enumerate() {
            let angles = match layer.attention {
                LayerAttention::Global => {
                    &*global.get_or_insert_with(|| self.global_rope.angles(&plan.positions, &self.device))
                }
                LayerAttention::Sliding { .. } => {
                    &*local.get_or_insert_with(|| self.local_rope.angles(&plan.positions, &self.device))
                }
            };
            let mask = masks.get(layer.attention);
            let h = layer.self_attn.forward(layer.input_layernorm.forward(x.clone()), angles, &mask, i, cache);
            x = x + layer.post_attention_layernorm.forward(h);
            let h = layer.mlp.forward(layer.pre_feedforward_layernorm.forward(x.clone()));
            x = x + layer.post_feedforward_layernorm.forward(h);
        }
        drop(masks);
        cache.commit(plan);
        self.norm.forward(x)
    }

    fn lm_head(&self, hidden: Tensor<3>) -> Tensor<3> {
        let logits = self.embeddings.logits(hidden);
        let cap = self.config.final_logit_softcapping;
        if cap > 0.0 { (logits / cap).tanh() * cap } else { logits }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dims;
    use crate::layers::download;
    use crate::loading::memory::MemoryWeights;

    fn config(family: Family) -> ModelConfig {
        let dims = Dims {
            vocab_size: 8,
            hidden_size: 4,
            intermediate_size: 6,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            head_dim: 2,
            max_position_embeddings: 16,
            rms_norm_eps: 1e-6,
        };
        let mut c = ModelConfig::with_family_conventions(family, dims, 10_000.0);
        c.tie_word_embeddings = true;
        c
    }

    #[test]
    fn only_gemma3_expects_qk_norms() {
        let has_qk = |f| Gemma::expected_tensors(&config(f)).iter().any(|(n, _)| n.contains("q_norm"));
        assert!(has_qk(Family::Gemma3));
        assert!(!has_qk(Family::Gemma2));
        // Tied head: 2 model-level tensors + 4 norms + 4 projections + 3 MLP (+ 2 q/k norms).
        assert_eq!(Gemma::expected_tensors(&config(Family::Gemma2)).len(), 2 + 11);
        assert_eq!(Gemma::expected_tensors(&config(Family::Gemma3)).len(), 2 + 13);
    }

    #[test]
    fn final_softcap_bounds_logits() {
        let device = crate::device::default_device();
        let mut c = config(Family::Gemma2);
        let w = MemoryWeights::random(&Gemma::expected_tensors(&c), 3, 0.5, true);
        c.final_logit_softcapping = 0.5;
        let capped = Gemma::load(&c, &w, &device).unwrap();
        c.final_logit_softcapping = 0.0;
        let plain = Gemma::load(&c, &w, &device).unwrap();
        // A hidden state of 2s: raw logits are 2 × (row sums of E), capped ones 0.5·tanh(raw/0.5).
        let h = Tensor::<3>::full([1, 1, 4], 2.0, &device);
        let raw = download(plain.lm_head(h.clone()));
        let got = download(capped.lm_head(h));
        assert!(raw.iter().any(|r| r.abs() > 0.5), "the cap must bite somewhere: {raw:?}");
        for (r, g) in raw.iter().zip(&got) {
            assert!((g - 0.5 * (r / 0.5).tanh()).abs() < 1e-5, "{g} vs cap of {r}");
            assert!(g.abs() <= 0.5);
        }
    }

    #[test]
    fn rejects_llama_config() {
        let device = crate::device::default_device();
        let c = config(Family::Llama);
        let w = MemoryWeights::random(&Gemma::expected_tensors(&c), 3, 0.5, false);
        let err = Gemma::load(&c, &w, &device).unwrap_err().to_string();
        assert!(err.contains("gemma2, gemma3"), "{err}");
    }
}
