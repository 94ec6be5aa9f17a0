//! [`ModelConfig::from_gguf`]: GGUF metadata (`{arch}.block_count`, …) to a resolved config.
//!
//! GGUF stores fewer facts than a `config.json`; what it leaves out is filled in here, each
//! with where the value comes from:
//! - the vocabulary size is the length of `tokenizer.ggml.tokens` (else `{arch}.vocab_size`);
//! - a tied output head is the absence of an `output.weight` tensor, which the caller knows;
//! - Gemma 3's sliding-layer RoPE base (10 000) and layer pattern (every 6th layer global) are
//!   transformers' `Gemma3TextConfig` defaults: the GGUF only has the global `rope.freq_base`;
//! - Gemma's `query_pre_attn_scalar` is the head width, except for the 27B models, whose scale
//!   is `hidden / heads` as in llama.cpp's
//!   [`llama-model.cpp`](https://github.com/ggml-org/llama.cpp/blob/master/src/llama-model.cpp)
//!   (and their Hugging Face configs: 144 for Gemma 2 27B, 168 for Gemma 3 27B).
//!
//! Llama 3.1's frequency-dependent RoPE scaling is stored by llama.cpp as a `rope_freqs.weight`
//! tensor, not as metadata, so it is not read here.

use super::families;
use super::{Dims, Family, ModelConfig, RopeScaling};
use super::{gemma2_layers, interleaved_layers};
use crate::LoadError;
use crate::loading::{Metadata, ScopedMeta};

/// Gemma 2's default `sliding_window` (`Gemma2Config`).
const GEMMA2_SLIDING_WINDOW: usize = 4096;
/// Gemma 3's default `sliding_window` (`Gemma3TextConfig`).
const GEMMA3_SLIDING_WINDOW: usize = 4096;
/// Gemma 3: every sixth layer is global (`sliding_window_pattern`).
const GEMMA3_SLIDING_WINDOW_PATTERN: usize = 6;
/// Gemma 3's RoPE base of sliding layers (`rope_local_base_freq`), absent from GGUF.
const GEMMA3_LOCAL_ROPE_THETA: f32 = 10_000.0;
/// Layer counts of the 27B Gemma models, whose attention scale is `(hidden / heads)^-0.5`.
const GEMMA2_27B_LAYERS: usize = 46;
const GEMMA3_27B_LAYERS: usize = 62;

impl ModelConfig {
    /// Builds the config of a GGUF checkpoint from its metadata.
    ///
    /// `has_output_weight`: whether the file has an `output.weight` tensor (an untied head).
    /// Supported `general.architecture`s: `llama` (Llama, SmolLM2, Mistral), `qwen2`, `gemma2`,
    /// `gemma3`. Every missing required key is reported at once; the result is
    /// [`validate`](Self::validate)d against the metadata's file.
    pub fn from_gguf(meta: &Metadata, has_output_weight: bool) -> Result<Self, LoadError> {
        let path = meta.path();
        let Some(arch) = meta.get_str("general.architecture") else {
            return Err(LoadError::MissingFields {
                path: path.to_path_buf(),
                fields: vec!["general.architecture".into()],
            });
        };
        let Some(family) = families::gguf_family(arch) else {
            return Err(LoadError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: arch.to_owned(),
                supported: families::supported_text(families::GGUF_ARCHITECTURES, arch),
            });
        };
        let md = meta.scoped(arch);
        let dims = dims(meta, &md)?;
        let theta_default = if family == Family::Gemma3 { 1_000_000.0 } else { 10_000.0 };
        let mut c = ModelConfig::with_family_conventions(family, dims, md.f32_or("rope.freq_base", theta_default));
        c.rope_scaling = rope_scaling(meta, &md)?;
        c.tie_word_embeddings = !has_output_weight;
        match family {
            Family::Llama | Family::Qwen2 => {}
            Family::Gemma2 => {
                let window = md.usize_or("attention.sliding_window", GEMMA2_SLIDING_WINDOW);
                c.layer_attention = gemma2_layers(dims.num_hidden_layers, window);
                c.attn_logit_softcapping = md.f32_or("attn_logit_softcapping", 50.0);
                c.final_logit_softcapping = md.f32_or("final_logit_softcapping", 30.0);
                c.query_pre_attn_scalar = gemma_query_scale(&dims, GEMMA2_27B_LAYERS);
            }
            Family::Gemma3 => {
                let window = md.usize_or("attention.sliding_window", GEMMA3_SLIDING_WINDOW);
                c.layer_attention = interleaved_layers(dims.num_hidden_layers, window, GEMMA3_SLIDING_WINDOW_PATTERN);
                c.rope_local_theta = GEMMA3_LOCAL_ROPE_THETA;
                c.attn_logit_softcapping = md.f32_or("attn_logit_softcapping", 0.0);
                c.final_logit_softcapping = md.f32_or("final_logit_softcapping", 0.0);
                c.query_pre_attn_scalar = gemma_query_scale(&dims, GEMMA3_27B_LAYERS);
            }
        }
        c.validate(path)?;
        Ok(c)
    }
}

/// The sizes, with every missing required key reported at once.
fn dims(meta: &Metadata, md: &ScopedMeta<'_>) -> Result<Dims, LoadError> {
    let required = [
        "block_count",
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "context_length",
        "attention.layer_norm_rms_epsilon",
    ];
    let vocab_size = match meta.get("tokenizer.ggml.tokens") {
        Some(tokens) => Some(tokens.as_array().map(<[_]>::len).ok_or_else(|| LoadError::BadField {
            path: meta.path().to_path_buf(),
            field: "tokenizer.ggml.tokens".into(),
            reason: format!("expected an array, found {}", tokens.type_name()),
        })?),
        None => md.opt_usize("vocab_size"),
    };
    let mut missing = match md.require_all(&required) {
        Ok(()) => Vec::new(),
        Err(LoadError::MissingFields { fields, .. }) => fields,
        Err(e) => return Err(e),
    };
    if vocab_size.is_none() {
        missing.push(format!("tokenizer.ggml.tokens (or {})", md.key("vocab_size")));
    }
    let Some(vocab_size) = vocab_size.filter(|_| missing.is_empty()) else {
        return Err(LoadError::MissingFields { path: meta.path().to_path_buf(), fields: missing });
    };
    let hidden_size = md.usize("embedding_length")?;
    let num_attention_heads = md.usize("attention.head_count")?;
    if num_attention_heads == 0 {
        return Err(LoadError::BadField {
            path: meta.path().to_path_buf(),
            field: md.key("attention.head_count"),
            reason: "must be positive".into(),
        });
    }
    (Dims {
        vocab_size,
        hidden_size,
        intermediate_size: md.usize("feed_forward_length")?,
        num_hidden_layers: md.usize("block_count")?,
        num_attention_heads,
        num_key_value_heads: md.usize_or("attention.head_count_kv", num_attention_heads),
        head_dim: md.usize_or("attention.key_length", hidden_size / num_attention_heads),
        max_position_embeddings: md.usize("context_length")?,
        rms_norm_eps: md.f32("attention.layer_norm_rms_epsilon")?,
    })
    .within_limits(meta.path(), |field| match field {
        "vocab_size" => "tokenizer.ggml.tokens".into(),
        "hidden_size" => md.key("embedding_length"),
        "intermediate_size" => md.key("feed_forward_length"),
        "num_hidden_layers" => md.key("block_count"),
        "num_attention_heads" => md.key("attention.head_count"),
        "num_key_value_heads" => md.key("attention.head_count_kv"),
        "head_dim" => md.key("attention.key_length"),
        other => md.key(other),
    })
}

/// `{arch}.rope.scaling.type` / `.factor`, or the older `{arch}.rope.scale_linear`.
fn rope_scaling(meta: &Metadata, md: &ScopedMeta<'_>) -> Result<RopeScaling, LoadError> {
    let factor = md.opt_f32("rope.scaling.factor");
    match md.opt_str("rope.scaling.type") {
        None | Some("none") => Ok(match md.opt_f32("rope.scale_linear") {
            Some(factor) if factor != 1.0 => RopeScaling::Linear { factor },
            _ => RopeScaling::None,
        }),
        Some("linear") => match factor {
            Some(factor) => Ok(RopeScaling::Linear { factor }),
            None => Err(LoadError::MissingFields {
                path: meta.path().to_path_buf(),
                fields: vec![md.key("rope.scaling.factor")],
            }),
        },
        Some(other) => Err(LoadError::BadField {
            path: meta.path().to_path_buf(),
            field: md.key("rope.scaling.type"),
            reason: format!("unsupported RoPE scaling `{other}` (supported: none, linear)"),
        }),
    }
}

/// Gemma's `query_pre_attn_scalar`: the head width, or `hidden / heads` for the 27B model.
fn gemma_query_scale(dims: &Dims, layers_27b: usize) -> f32 {
    if dims.num_hidden_layers == layers_27b {
        (dims.hidden_size / dims.num_attention_heads) as f32
    } else {
        dims.head_dim as f32
    }
}
