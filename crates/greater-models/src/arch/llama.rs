//! The Llama family: Llama 2/3/3.1, SmolLM/SmolLM2, Mistral, and Qwen2 (Llama plus q/k/v biases).
//!
//! Pre-norm decoder: `x += attn(rms(x)); x += mlp(rms(x))`, RMSNorm, rotate-half RoPE (GGUF
//! rows are un-permuted at load), grouped-query attention, SwiGLU, tied or untied output head.
//! Layers attend globally or through a sliding window, per layer as `layer_attention` says
//! (Mistral: every layer; Qwen2 with `use_sliding_window`: from `max_window_layers` on).
//! Upstream: transformers `models/llama/modeling_llama.py`, `models/qwen2/modeling_qwen2.py`.

use burn::tensor::{Device, Int, Tensor};

use super::block::{self, Builder, Embeddings, Masks, TensorList};
use super::{CausalLm, Valid, check_tensors};
use crate::LoadError;
use crate::cache::KvCache;
use crate::config::{Family, ModelConfig};
use crate::layers::attention::Attention;
use crate::layers::mlp::GatedMlp;
use crate::layers::rms_norm::RmsNorm;
use crate::layers::rope::Rope;
use crate::loading::WeightSource;

/// One decoder layer, `model.layers.{i}`.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    /// `self_attn`
    pub self_attn: Attention,
    /// `mlp`
    pub mlp: GatedMlp,
    /// `input_layernorm`
    pub input_layernorm: RmsNorm,
    /// `post_attention_layernorm` (before the MLP, despite its name)
    pub post_attention_layernorm: RmsNorm,
}

/// The per-layer norms, in the order of [`DecoderLayer`].
const NORMS: [&str; 2] = ["input_layernorm", "post_attention_layernorm"];

/// A Llama-family causal LM with frozen weights.
#[derive(Debug, Clone)]
pub struct Llama {
    config: ModelConfig,
    device: Device,
    /// `model.embed_tokens` and `lm_head`
    embeddings: Embeddings,
    /// `model.layers`
    layers: Vec<DecoderLayer>,
    /// `model.norm`
    norm: RmsNorm,
    rope: Rope,
}

impl Llama {
    /// The canonical tensor names and shapes this config needs.
    pub fn expected_tensors(c: &ModelConfig) -> TensorList {
        let mut v = block::model_tensors(c);
        (0..c.num_hidden_layers).for_each(|i| v.extend(block::layer_tensors(c, i, &NORMS)));
        v
    }

    /// Load every tensor from `w`, after checking names and shapes.
    pub fn load(c: &ModelConfig, w: &dyn WeightSource, device: &Device) -> Result<Self, LoadError> {
        if !matches!(c.family, Family::Llama | Family::Qwen2) {
            return Err(LoadError::UnsupportedArchitecture {
                path: w.path().to_path_buf(),
                arch: format!("{:?}", c.family),
                supported: "llama, qwen2".into(),
            });
        }
        check_tensors(w, &Self::expected_tensors(c))?;
        let b = Builder::new(c, w, device);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                Ok(DecoderLayer {
                    self_attn: b.attention(i)?,
                    mlp: b.mlp(i)?,
                    input_layernorm: b.layer_norm(i, NORMS[0])?,
                    post_attention_layernorm: b.layer_norm(i, NORMS[1])?,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        Ok(Self {
            config: c.clone(),
            device: device.clone(),
            embeddings: b.embeddings()?,
            layers,
            norm: b.norm("model.norm.weight")?,
            rope: Rope::new(c.head_dim, c.rope_theta, &c.rope_scaling),
        })
    }
}

impl CausalLm for Llama {
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
        let angles = self.rope.angles(&plan.positions, &self.device);
        let mut masks = Masks::new(&plan.keys, s, &self.device);
        let mut x = embeds;
        for (i, (layer, &attention)) in self.layers.iter().zip(&self.config.layer_attention).enumerate() {
            let mask = masks.get(attention);
            let h = layer.self_attn.forward(layer.input_layernorm.forward(x.clone()), &angles, &mask, i, cache);
            x = x + h;
            let h = layer.mlp.forward(layer.post_attention_layernorm.forward(x.clone()));
            x = x + h;
        }
        drop(masks);
        cache.commit(plan);
        self.norm.forward(x)
    }

    fn lm_head(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.embeddings.logits(hidden)
    }
}
