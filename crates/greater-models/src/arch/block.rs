//! What every family builds the same way, written once: the names and shapes of the shared
//! tensors, the loading of attention, MLP and norms from a [`WeightSource`], the embedding and
//! tied-or-untied output head, and the masks of one step (one per window size).
//!
//! A family file lists only what differs (its norms, its residual wiring, its extra scaling).
//! Config fields, not the family, choose the options: `attention_bias` adds q/k/v biases,
//! `qk_norm` adds per-head norms, `norm_unit_offset` folds Gemma's `1 + w` into the gains.

use burn::tensor::{Device, Int, Tensor};

use crate::LoadError;
use crate::config::{LayerAttention, ModelConfig};
use crate::layers::attention::Attention;
use crate::layers::linear::Linear;
use crate::layers::mask::{self, Slot};
use crate::layers::mlp::GatedMlp;
use crate::layers::rms_norm::RmsNorm;
use crate::layers::upload;
use crate::loading::{HostTensor, WeightSource};

/// Canonical names and shapes, in loading order.
pub type TensorList = Vec<(String, Vec<usize>)>;

/// The model-level tensors: embedding, final norm, and the output head when untied.
pub fn model_tensors(c: &ModelConfig) -> TensorList {
    let h = c.hidden_size;
    let mut v = vec![
        ("model.embed_tokens.weight".to_string(), vec![c.vocab_size, h]),
        ("model.norm.weight".to_string(), vec![h]),
    ];
    if !c.tie_word_embeddings {
        v.push(("lm_head.weight".into(), vec![c.vocab_size, h]));
    }
    v
}

/// The tensors of layer `i`: the `norms` (each `[hidden]`, in the order given), then
/// `self_attn` (q/k/v/o, biases when `attention_bias`, head norms when `qk_norm`) and `mlp`.
pub fn layer_tensors(c: &ModelConfig, i: usize, norms: &[&str]) -> TensorList {
    let (h, qd, kvd) = (c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    let p = format!("model.layers.{i}");
    let mut v: TensorList = norms.iter().map(|n| (format!("{p}.{n}.weight"), vec![h])).collect();
    v.push((format!("{p}.self_attn.q_proj.weight"), vec![qd, h]));
    v.push((format!("{p}.self_attn.k_proj.weight"), vec![kvd, h]));
    v.push((format!("{p}.self_attn.v_proj.weight"), vec![kvd, h]));
    v.push((format!("{p}.self_attn.o_proj.weight"), vec![h, qd]));
    if c.attention_bias {
        v.push((format!("{p}.self_attn.q_proj.bias"), vec![qd]));
        v.push((format!("{p}.self_attn.k_proj.bias"), vec![kvd]));
        v.push((format!("{p}.self_attn.v_proj.bias"), vec![kvd]));
    }
    if c.qk_norm {
        v.push((format!("{p}.self_attn.q_norm.weight"), vec![c.head_dim]));
        v.push((format!("{p}.self_attn.k_norm.weight"), vec![c.head_dim]));
    }
    v.push((format!("{p}.mlp.gate_proj.weight"), vec![c.intermediate_size, h]));
    v.push((format!("{p}.mlp.up_proj.weight"), vec![c.intermediate_size, h]));
    v.push((format!("{p}.mlp.down_proj.weight"), vec![h, c.intermediate_size]));
    v
}

/// Builds modules from checked weights (the caller has run `check_tensors`).
#[derive(Clone, Copy)]
pub struct Builder<'a> {
    c: &'a ModelConfig,
    w: &'a dyn WeightSource,
    device: &'a Device,
}

impl std::fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("path", &self.w.path()).finish_non_exhaustive()
    }
}

impl<'a> Builder<'a> {
    /// A builder over `w` for `c`, placing tensors on `device`.
    pub fn new(c: &'a ModelConfig, w: &'a dyn WeightSource, device: &'a Device) -> Self {
        Self { c, w, device }
    }

    /// The RMSNorm stored at `name` (a full tensor name); Gemma's `1 + w` is folded in here.
    pub fn norm(&self, name: &str) -> Result<RmsNorm, LoadError> {
        Ok(RmsNorm::from_host(self.w.tensor(name)?, self.c.rms_norm_eps, self.c.norm_unit_offset, self.device))
    }

    /// The RMSNorm `model.layers.{i}.{name}.weight`.
    pub fn layer_norm(&self, i: usize, name: &str) -> Result<RmsNorm, LoadError> {
        self.norm(&format!("model.layers.{i}.{name}.weight"))
    }

    /// `model.layers.{i}.self_attn`.
    pub fn attention(&self, i: usize) -> Result<Attention, LoadError> {
        let c = self.c;
        let p = format!("model.layers.{i}.self_attn");
        let head_norm = |n: &str| -> Result<Option<RmsNorm>, LoadError> {
            if c.qk_norm { Ok(Some(self.norm(&format!("{p}.{n}.weight"))?)) } else { Ok(None) }
        };
        Ok(Attention {
            qkv: self
                .stacked(&[&format!("{p}.q_proj"), &format!("{p}.k_proj"), &format!("{p}.v_proj")], c.attention_bias)?,
            o_proj: self.linear(&format!("{p}.o_proj"), false)?,
            q_norm: head_norm("q_norm")?,
            k_norm: head_norm("k_norm")?,
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            scale: c.query_pre_attn_scalar.powf(-0.5),
            softcap: c.attn_logit_softcapping,
        })
    }

    /// `model.layers.{i}.mlp`.
    pub fn mlp(&self, i: usize) -> Result<GatedMlp, LoadError> {
        let p = format!("model.layers.{i}.mlp");
        Ok(GatedMlp {
            gate_up: self.stacked(&[&format!("{p}.gate_proj"), &format!("{p}.up_proj")], false)?,
            down_proj: self.linear(&format!("{p}.down_proj"), false)?,
            act: self.c.hidden_act,
        })
    }

    /// The embedding and the output head (`lm_head.weight` when untied).
    pub fn embeddings(&self) -> Result<Embeddings, LoadError> {
        let embed = self.w.tensor("model.embed_tokens.weight")?;
        let (lm_head, head_bf16) = if self.c.tie_word_embeddings {
            (None, crate::layers::linear::bf16_copy(&embed.data))
        } else {
            let (head, head_bf16) =
                Linear::from_host(self.w.tensor("lm_head.weight")?, None, self.device).into_weights();
            (Some(head), head_bf16)
        };
        let embed_tokens = upload(embed, self.device);
        Ok(Embeddings { embed_tokens, lm_head, head_bf16, vocab: self.c.vocab_size })
    }

    fn linear(&self, name: &str, bias: bool) -> Result<Linear, LoadError> {
        let (weight, bias) = self.linear_parts(name, bias)?;
        Ok(Linear::from_host(weight, bias, self.device))
    }

    /// The layers `names`, which read the same input, as one ([`Linear::from_host_stacked`]).
    fn stacked(&self, names: &[&str], bias: bool) -> Result<Linear, LoadError> {
        let parts = names.iter().map(|n| self.linear_parts(n, bias)).collect::<Result<_, _>>()?;
        Ok(Linear::from_host_stacked(parts, self.device))
    }

    fn linear_parts(&self, name: &str, bias: bool) -> Result<(HostTensor, Option<HostTensor>), LoadError> {
        let weight = self.w.tensor(&format!("{name}.weight"))?;
        let bias = if bias { Some(self.w.tensor(&format!("{name}.bias"))?) } else { None };
        Ok((weight, bias))
    }
}

/// The embedding matrix and the output head, tied or not.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// `model.embed_tokens.weight`, `[vocab, hidden]`, unscaled.
    embed_tokens: Tensor<2>,
    /// `lm_head.weight`, stored `[vocab, hidden]`; `None` when tied to the embedding.
    lm_head: Option<Tensor<2>>,
    /// The output head rounded to bfloat16 when [`crate::layers::linear::bf16_weights`] is on.
    head_bf16: Option<crate::layers::linear::Bf16Weights>,
    vocab: usize,
}

impl Embeddings {
    /// Raw embedding rows.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]` → `[batch, seq, hidden]`
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, s] = ids.dims();
        let h = self.embed_tokens.dims()[1];
        self.embed_tokens.clone().select(0, ids.reshape([b * s])).reshape([b, s, h])
    }

    /// `[vocab, hidden]`.
    pub fn matrix(&self) -> Tensor<2> {
        self.embed_tokens.clone()
    }

    /// Logits before any soft-capping.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]` → `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, h] = hidden.dims();
        let w = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        let w16 = self.head_bf16.as_deref().map(Vec::as_slice);
        crate::layers::linear::project_with(hidden.reshape([b * s, h]), w, w16, None).reshape([b, s, self.vocab])
    }
}

/// The additive masks of one step, built on first use for each window size present.
#[derive(Debug)]
pub struct Masks<'a> {
    keys: &'a [Vec<Slot>],
    queries: usize,
    device: &'a Device,
    built: Vec<(Option<usize>, Tensor<5>)>,
}

impl<'a> Masks<'a> {
    /// Masks over the cache plan's `keys` for `queries` new tokens.
    pub fn new(keys: &'a [Vec<Slot>], queries: usize, device: &'a Device) -> Self {
        Self { keys, queries, device, built: Vec::new() }
    }

    /// The mask of a layer attending as `attention` (global, or a window).
    pub fn get(&mut self, attention: LayerAttention) -> Tensor<5> {
        let window = match attention {
            LayerAttention::Global => None,
            LayerAttention::Sliding { window } => Some(window),
        };
        if let Some((_, m)) = self.built.iter().find(|(w, _)| *w == window) {
            return m.clone();
        }
        let m = mask::build(self.keys, self.queries, window, self.device);
        self.built.push((window, m.clone()));
        m
    }
}
