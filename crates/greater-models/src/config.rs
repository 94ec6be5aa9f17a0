//! [`ModelConfig`]: one resolved description of a causal LM, with Hugging Face field names.
//!
//! It is built by [`ModelConfig::from_hf_config`] (a `config.json`) or
//! [`ModelConfig::from_gguf`] (GGUF metadata), then [`ModelConfig::validate`]d, so that no
//! `forward` ever checks a shape. Conventions are explicit fields, never guessed at run time.
//!
//! The front doors live in submodules: `from_hf` (`config.json`, with transformers' defaults),
//! `from_gguf` (GGUF metadata) and `derived` (validation, parameter count, tiny test configs);
//! both look architecture names up in the one table of [`families`].

mod derived;
pub mod families;
mod from_gguf;
mod from_hf;

/// The architecture family. Family and format are runtime data, never cargo features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// Llama 2/3/3.1, SmolLM/SmolLM2, Mistral: RMSNorm, RoPE, GQA, SwiGLU.
    Llama,
    /// Qwen2 / Qwen2.5: Llama plus q/k/v biases.
    Qwen2,
    /// Gemma 2: GeGLU, sandwich norms, soft-capping, alternating sliding-window layers.
    Gemma2,
    /// Gemma 3: Gemma 2 without soft-capping, plus q/k norm and two RoPE bases.
    Gemma3,
}

/// Llama 3.1-style frequency-dependent RoPE scaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Llama3RopeScaling {
    /// `factor`.
    pub factor: f32,
    /// `low_freq_factor`.
    pub low_freq_factor: f32,
    /// `high_freq_factor`.
    pub high_freq_factor: f32,
    /// `original_max_position_embeddings`.
    pub original_max_position_embeddings: usize,
}

/// How RoPE frequencies are adjusted.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (`rope_type = "linear"`, used by larger Gemma 3 models).
    Linear {
        /// The divisor.
        factor: f32,
    },
    /// Llama 3.1 scaling.
    Llama3(Llama3RopeScaling),
}

/// The gated MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// `silu` (Llama, Qwen2): SwiGLU.
    Silu,
    /// `gelu_pytorch_tanh` (Gemma): GeGLU with the tanh approximation.
    GeluTanh,
}

/// What one decoder layer attends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LayerAttention {
    /// Full causal attention; RoPE base `rope_theta`.
    Global,
    /// Causal attention to the last `window` positions (the query's own included); RoPE base
    /// `rope_local_theta`.
    Sliding {
        /// Number of positions visible, the query's own included (Hugging Face `sliding_window`).
        window: usize,
    },
}

/// A resolved model configuration. Field names follow Hugging Face; no `Option` is left to resolve.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// The architecture family.
    pub family: Family,
    /// Rows of the embedding matrix and of the output head.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Inner width of the gated MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head (not always `hidden_size / num_attention_heads`: Gemma 3 270M uses 256).
    pub head_dim: usize,
    /// The longest context the model was trained for.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base of global layers.
    pub rope_theta: f32,
    /// RoPE base of sliding-window layers (Gemma 3: 10 000); equals `rope_theta` elsewhere.
    pub rope_local_theta: f32,
    /// RoPE frequency scaling (applies to global layers).
    pub rope_scaling: RopeScaling,
    /// MLP activation.
    pub hidden_act: Activation,
    /// Whether q/k/v projections have biases (Qwen2).
    pub attention_bias: bool,
    /// Whether the output head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Attention kind of every layer, `num_hidden_layers` entries.
    pub layer_attention: Vec<LayerAttention>,
    /// Attention scores are multiplied by `query_pre_attn_scalar^-0.5` (Llama: `head_dim`).
    pub query_pre_attn_scalar: f32,
    /// Gemma 2: `tanh` soft-cap of attention scores; 0 means off.
    pub attn_logit_softcapping: f32,
    /// Gemma 2: `tanh` soft-cap of the final logits; 0 means off.
    pub final_logit_softcapping: f32,
    /// Gemma 3: RMSNorm over each query and key head.
    pub qk_norm: bool,
    /// Gemma: extra norms after attention and after the MLP (`post_attention_layernorm`
    /// is then the *post*-attention norm and `pre_feedforward_layernorm` precedes the MLP).
    pub sandwich_norms: bool,
    /// Embedding output multiplier (Gemma: `f32(sqrt(hidden_size))`; others 1).
    pub embed_scale: f32,
    /// Gemma: RMSNorm multiplies by `1 + w` (weights are stored in Hugging Face convention).
    pub norm_unit_offset: bool,
}

impl Family {
    /// The family's lower-case name (`"llama"`, `"qwen2"`, `"gemma2"`, `"gemma3"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Gemma2 => "gemma2",
            Self::Gemma3 => "gemma3",
        }
    }

    /// Whether this is a Gemma family (GeGLU, sandwich norms, `1 + w` norms, scaled embedding).
    pub fn is_gemma(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The sizes every front door reads before the family's fixed conventions are applied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f32,
}

impl ModelConfig {
    /// A config with `dims` and the conventions that are fixed for `family`.
    ///
    /// Everything a checkpoint may vary starts at the plain value and is set by the caller:
    /// every layer global, RoPE base `rope_theta` for both kinds of layer and unscaled, no
    /// soft-capping, untied head, `query_pre_attn_scalar = head_dim`.
    pub(crate) fn with_family_conventions(family: Family, dims: Dims, rope_theta: f32) -> Self {
        let gemma = family.is_gemma();
        Self {
            family,
            vocab_size: dims.vocab_size,
            hidden_size: dims.hidden_size,
            intermediate_size: dims.intermediate_size,
            num_hidden_layers: dims.num_hidden_layers,
            num_attention_heads: dims.num_attention_heads,
            num_key_value_heads: dims.num_key_value_heads,
            head_dim: dims.head_dim,
            max_position_embeddings: dims.max_position_embeddings,
            rms_norm_eps: dims.rms_norm_eps,
            rope_theta,
            rope_local_theta: rope_theta,
            rope_scaling: RopeScaling::None,
            hidden_act: if gemma { Activation::GeluTanh } else { Activation::Silu },
            // Qwen2's q/k/v projections always have biases (no config switch upstream).
            attention_bias: family == Family::Qwen2,
            tie_word_embeddings: false,
            layer_attention: vec![LayerAttention::Global; dims.num_hidden_layers],
            query_pre_attn_scalar: dims.head_dim as f32,
            attn_logit_softcapping: 0.0,
            final_logit_softcapping: 0.0,
            qk_norm: family == Family::Gemma3,
            sandwich_norms: gemma,
            // transformers keeps `hidden_size ** 0.5` in the weights' dtype: f32(sqrt(hidden)).
            embed_scale: if gemma { (dims.hidden_size as f64).sqrt() as f32 } else { 1.0 },
            norm_unit_offset: gemma,
        }
    }
}

/// Gemma 2's layer pattern: even layers slide over `window` positions, odd layers are global.
///
/// transformers: `"sliding_attention" if (i + 1) % 2 else "full_attention"`.
pub(crate) fn gemma2_layers(num_layers: usize, window: usize) -> Vec<LayerAttention> {
    interleaved_layers(num_layers, window, 2)
}

/// Gemma 3's layer pattern: layer `i` is global when `(i + 1) % pattern == 0`, else sliding.
///
/// transformers' `sliding_window_pattern` (6 for every released Gemma 3), so with 18 layers
/// layers 5, 11 and 17 are global.
pub(crate) fn interleaved_layers(num_layers: usize, window: usize, pattern: usize) -> Vec<LayerAttention> {
    (0..num_layers)
        .map(|i| {
            if pattern != 0 && (i + 1) % pattern == 0 {
                LayerAttention::Global
            } else {
                LayerAttention::Sliding { window }
            }
        })
        .collect()
}
