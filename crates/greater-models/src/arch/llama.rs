//! The Llama family: Llama 2/3/3.1, SmolLM/SmolLM2, Mistral, and Qwen2 (Llama plus q/k/v biases).
//!
//! Pre-norm decoder: `x += attn(rms(x)); x += mlp(rms(x))`, RMSNorm, rotate-half RoPE (GGUF
//! rows are un-permuted at load), grouped-query attention, SwiGLU, tied or untied output head.
//! Upstream: transformers `models/llama/modeling_llama.py`, `models/qwen2/modeling_qwen2.py`.

use burn::tensor::{Device, Int, Tensor};

use super::{CausalLm, Valid, check_tensors};
use crate::LoadError;
use crate::cache::KvCache;
use crate::config::{Family, LayerAttention, ModelConfig};
use crate::layers::attention::Attention;
use crate::layers::linear::Linear;
use crate::layers::mask;
use crate::layers::mlp::GatedMlp;
use crate::layers::rms_norm::RmsNorm;
use crate::layers::rope::Rope;
use crate::layers::upload;
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

/// A Llama-family causal LM with frozen weights.
#[derive(Debug, Clone)]
pub struct Llama {
    config: ModelConfig,
    device: Device,
    /// `model.embed_tokens.weight`, `[vocab, hidden]`
    embed_tokens: Tensor<2>,
    /// `model.layers`
    layers: Vec<DecoderLayer>,
    /// `model.norm`
    norm: RmsNorm,
    /// `lm_head.weight`, stored `[hidden, vocab]`; `None` when tied to the embedding.
    lm_head: Option<Tensor<2>>,
    rope: Rope,
}

impl Llama {
    /// The canonical tensor names and shapes this config needs.
    pub fn expected_tensors(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let (h, qd, kvd) = (c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let mut v = vec![
            ("model.embed_tokens.weight".to_string(), vec![c.vocab_size, h]),
            ("model.norm.weight".to_string(), vec![h]),
        ];
        if !c.tie_word_embeddings {
            v.push(("lm_head.weight".into(), vec![c.vocab_size, h]));
        }
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            v.push((format!("{p}.input_layernorm.weight"), vec![h]));
            v.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            v.push((format!("{p}.self_attn.q_proj.weight"), vec![qd, h]));
            v.push((format!("{p}.self_attn.k_proj.weight"), vec![kvd, h]));
            v.push((format!("{p}.self_attn.v_proj.weight"), vec![kvd, h]));
            v.push((format!("{p}.self_attn.o_proj.weight"), vec![h, qd]));
            if c.attention_bias {
                v.push((format!("{p}.self_attn.q_proj.bias"), vec![qd]));
                v.push((format!("{p}.self_attn.k_proj.bias"), vec![kvd]));
                v.push((format!("{p}.self_attn.v_proj.bias"), vec![kvd]));
            }
            v.push((format!("{p}.mlp.gate_proj.weight"), vec![c.intermediate_size, h]));
            v.push((format!("{p}.mlp.up_proj.weight"), vec![c.intermediate_size, h]));
            v.push((format!("{p}.mlp.down_proj.weight"), vec![h, c.intermediate_size]));
        }
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
        let linear = |name: &str, bias: bool| -> Result<Linear, LoadError> {
            let weight = w.tensor(&format!("{name}.weight"))?;
            let bias = if bias { Some(w.tensor(&format!("{name}.bias"))?) } else { None };
            Ok(Linear::from_host(weight, bias, device))
        };
        let norm = |name: &str| -> Result<RmsNorm, LoadError> {
            Ok(RmsNorm::from_host(w.tensor(name)?, c.rms_norm_eps, false, device))
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let self_attn = Attention {
                q_proj: linear(&format!("{p}.self_attn.q_proj"), c.attention_bias)?,
                k_proj: linear(&format!("{p}.self_attn.k_proj"), c.attention_bias)?,
                v_proj: linear(&format!("{p}.self_attn.v_proj"), c.attention_bias)?,
                o_proj: linear(&format!("{p}.self_attn.o_proj"), false)?,
                q_norm: None,
                k_norm: None,
                num_heads: c.num_attention_heads,
                num_kv_heads: c.num_key_value_heads,
                head_dim: c.head_dim,
                scale: c.query_pre_attn_scalar.powf(-0.5),
                softcap: 0.0,
            };
            let mlp = GatedMlp {
                gate_proj: linear(&format!("{p}.mlp.gate_proj"), false)?,
                up_proj: linear(&format!("{p}.mlp.up_proj"), false)?,
                down_proj: linear(&format!("{p}.mlp.down_proj"), false)?,
                act: c.hidden_act,
            };
            layers.push(DecoderLayer {
                self_attn,
                mlp,
                input_layernorm: norm(&format!("{p}.input_layernorm.weight"))?,
                post_attention_layernorm: norm(&format!("{p}.post_attention_layernorm.weight"))?,
            });
        }
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(Linear::from_host(w.tensor("lm_head.weight")?, None, device).weight_in_out())
        };
        Ok(Self {
            config: c.clone(),
            device: device.clone(),
            embed_tokens: upload(w.tensor("model.embed_tokens.weight")?, device),
            layers,
            norm: norm("model.norm.weight")?,
            lm_head,
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
        let [b, s] = ids.dims();
        let h = self.config.hidden_size;
        self.embed_tokens.clone().select(0, ids.reshape([b * s])).reshape([b, s, h])
    }

    fn embedding_matrix(&self) -> Tensor<2> {
        self.embed_tokens.clone()
    }

    fn forward_hidden(&self, embeds: Tensor<3>, valid: Valid<'_>, cache: &mut KvCache) -> Tensor<3> {
        let s = embeds.dims()[1];
        let plan = cache.plan(s, valid);
        let angles = self.rope.angles(&plan.positions, &self.device);
        // Llama-family models attend globally; a Mistral-style window is honoured if configured.
        let window = match self.config.layer_attention.first() {
            Some(LayerAttention::Sliding { window }) => Some(*window),
            _ => None,
        };
        let mask = mask::build(&plan.keys, s, window, &self.device);
        let mut x = embeds;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.self_attn.forward(layer.input_layernorm.forward(x.clone()), &angles, &mask, i, cache);
            x = x + h;
            let h = layer.mlp.forward(layer.post_attention_layernorm.forward(x.clone()));
            x = x + h;
        }
        cache.commit(plan);
        self.norm.forward(x)
    }

    fn lm_head(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, h] = hidden.dims();
        let w = match &self.lm_head {
            Some(w) => w.clone(),
            None => self.embed_tokens.clone().transpose(),
        };
        hidden.reshape([b * s, h]).matmul(w).reshape([b, s, self.config.vocab_size])
    }
}
