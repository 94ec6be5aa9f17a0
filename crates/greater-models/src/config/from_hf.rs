//! [`ModelConfig::from_hf_config`]: a Hugging Face `config.json`, with transformers' defaults.
//!
//! Every default below is the one of the transformers config class named beside it
//! (`LlamaConfig`, `MistralConfig`, `Qwen2Config`, `Gemma2Config`, `Gemma3TextConfig`), because
//! released `config.json` files leave fields out: Gemma 3 4B's `text_config` omits its head
//! counts, vocabulary and head width. Both the transformers 4 layout (`rope_theta`,
//! `rope_scaling`, `sliding_window_pattern`, `rope_local_base_freq`) and the transformers 5
//! layout (`rope_parameters`, possibly per layer type, and `layer_types`) are read.
//!
//! A JSON `null` is not the same as an absent key: `"sliding_window": null` turns sliding
//! attention off and `"attn_logit_softcapping": null` turns soft-capping off, while an absent key
//! takes the class default.

use std::path::Path;

use serde_json::{Map, Value};

use super::families::{self, HfClass};
use super::{Dims, Family, LayerAttention, Llama3RopeScaling, ModelConfig, RopeScaling};
use super::{gemma2_layers, interleaved_layers};
use crate::LoadError;

impl ModelConfig {
    /// Reads a Hugging Face `config.json` (or the `config.json` inside a folder).
    ///
    /// Supported `model_type`s: `llama` (also SmolLM/SmolLM2), `mistral`, `qwen2`, `gemma2`,
    /// `gemma3_text` and the multimodal `gemma3`, whose `text_config` is read. Absent fields take
    /// transformers' defaults for that class. The result is [`validate`](Self::validate)d.
    pub fn from_hf_config(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let mut path = path.as_ref().to_path_buf();
        if path.is_dir() {
            path.push("config.json");
        }
        let text = std::fs::read_to_string(&path).map_err(|e| LoadError::io(&path, e))?;
        let root: Value =
            serde_json::from_str(&text).map_err(|e| LoadError::format(&path, format!("invalid JSON: {e}")))?;
        let config = Self::from_hf_json(&root, &path)?;
        config.validate(&path)?;
        Ok(config)
    }

    /// [`from_hf_config`](Self::from_hf_config) on already parsed JSON; `path` names the source
    /// in errors. The result is not validated.
    pub fn from_hf_json(root: &Value, path: &Path) -> Result<Self, LoadError> {
        let top = Fields::new(root, "", path)?;
        let Some(model_type) = top.str("model_type")? else {
            return Err(LoadError::MissingFields { path: path.to_path_buf(), fields: vec!["model_type".into()] });
        };
        let Some(class) = families::hf_class(model_type) else {
            return Err(LoadError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: model_type.to_owned(),
                supported: families::supported_text(families::HF_MODEL_TYPES, model_type),
            });
        };
        let family = class.family();
        match class {
            HfClass::Llama => llama_like(&top, family, &LLAMA),
            HfClass::Mistral => llama_like(&top, family, &MISTRAL),
            HfClass::Qwen2 => llama_like(&top, family, &QWEN2),
            HfClass::Gemma2 | HfClass::Gemma3Text => gemma(&top, family, None),
            HfClass::Gemma3 => match root.get("text_config") {
                // The multimodal wrapper: the language model's fields sit in `text_config`, and
                // `tie_word_embeddings` may sit at the top.
                Some(text) => gemma(&Fields::new(text, "text_config.", path)?, family, Some(&top)),
                None => gemma(&top, family, None),
            },
        }
    }
}

/// The defaults of one transformers config class (only the ones that differ between classes).
struct ClassDefaults {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    /// `None`: equal to `num_attention_heads`.
    num_key_value_heads: Option<usize>,
    /// `None`: `hidden_size / num_attention_heads`.
    head_dim: Option<usize>,
    max_position_embeddings: usize,
    rope_theta: f32,
    tie_word_embeddings: bool,
    /// Default `sliding_window` (`None`: no sliding attention unless the file asks).
    sliding_window: Option<usize>,
}

/// `LlamaConfig` (transformers `models/llama/configuration_llama.py`).
const LLAMA: ClassDefaults = ClassDefaults {
    vocab_size: 32_000,
    hidden_size: 4096,
    intermediate_size: 11_008,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: None,
    head_dim: None,
    max_position_embeddings: 2048,
    rope_theta: 10_000.0,
    tie_word_embeddings: false,
    sliding_window: None,
};

/// `MistralConfig`: every layer slides over `sliding_window` (4096) unless it is `null`.
const MISTRAL: ClassDefaults = ClassDefaults {
    intermediate_size: 14_336,
    num_key_value_heads: Some(8),
    max_position_embeddings: 4096 * 32,
    sliding_window: Some(4096),
    ..LLAMA
};

/// `Qwen2Config`: sliding attention only with `use_sliding_window`, from `max_window_layers` on.
const QWEN2: ClassDefaults = ClassDefaults {
    vocab_size: 151_936,
    intermediate_size: 22_016,
    num_key_value_heads: Some(32),
    max_position_embeddings: 32_768,
    sliding_window: Some(4096),
    ..LLAMA
};

/// `Gemma2Config`.
const GEMMA2: ClassDefaults = ClassDefaults {
    vocab_size: 256_000,
    hidden_size: 2304,
    intermediate_size: 9216,
    num_hidden_layers: 26,
    num_attention_heads: 8,
    num_key_value_heads: Some(4),
    head_dim: Some(256),
    max_position_embeddings: 8192,
    rope_theta: 10_000.0,
    tie_word_embeddings: true,
    sliding_window: Some(4096),
};

/// `Gemma3TextConfig`.
const GEMMA3: ClassDefaults =
    ClassDefaults { vocab_size: 262_208, max_position_embeddings: 131_072, rope_theta: 1_000_000.0, ..GEMMA2 };

/// `rms_norm_eps` default of every class above.
const RMS_NORM_EPS: f32 = 1e-6;
/// `Gemma2Config.query_pre_attn_scalar` and `Gemma3TextConfig.query_pre_attn_scalar`.
const GEMMA_QUERY_PRE_ATTN_SCALAR: f32 = 256.0;
/// `Gemma3TextConfig.rope_local_base_freq`.
const GEMMA3_LOCAL_ROPE_THETA: f32 = 10_000.0;
/// `Gemma3TextConfig.sliding_window_pattern`.
const GEMMA3_SLIDING_WINDOW_PATTERN: usize = 6;
/// `Gemma2Config.attn_logit_softcapping`.
const GEMMA2_ATTN_SOFTCAP: f32 = 50.0;
/// `Gemma2Config.final_logit_softcapping`.
const GEMMA2_FINAL_SOFTCAP: f32 = 30.0;

/// Llama, Mistral and Qwen2.
fn llama_like(f: &Fields<'_>, family: Family, d: &ClassDefaults) -> Result<ModelConfig, LoadError> {
    let dims = f.dims(d)?;
    let rope = f.rope(d.rope_theta, None)?;
    let mut c = ModelConfig::with_family_conventions(family, dims, rope.theta);
    c.rope_scaling = rope.scaling;
    c.tie_word_embeddings = f.bool("tie_word_embeddings")?.unwrap_or(d.tie_word_embeddings);
    if family == Family::Llama {
        c.attention_bias = f.bool("attention_bias")?.unwrap_or(false);
    }
    if f.bool("mlp_bias")? == Some(true) {
        return Err(f.bad("mlp_bias", "MLP biases are not supported"));
    }
    c.hidden_act = f.activation("hidden_act", "silu")?;
    let window = f.sliding_window(d.sliding_window)?;
    c.layer_attention = match f.layer_types(dims.num_hidden_layers, window)? {
        Some(layers) => layers,
        None => {
            let first_sliding = match (family, window) {
                (_, None) => dims.num_hidden_layers,
                // Mistral slides on every layer.
                (Family::Llama, Some(_)) => 0,
                (_, Some(_)) if !f.bool("use_sliding_window")?.unwrap_or(false) => dims.num_hidden_layers,
                (_, Some(_)) => f.usize("max_window_layers")?.unwrap_or(28),
            };
            (0..dims.num_hidden_layers)
                .map(|i| match window {
                    Some(window) if i >= first_sliding => LayerAttention::Sliding { window },
                    _ => LayerAttention::Global,
                })
                .collect()
        }
    };
    Ok(c)
}

/// Gemma 2 and Gemma 3 (`outer`: the multimodal wrapper around a `text_config`).
fn gemma(f: &Fields<'_>, family: Family, outer: Option<&Fields<'_>>) -> Result<ModelConfig, LoadError> {
    let d = if family == Family::Gemma2 { &GEMMA2 } else { &GEMMA3 };
    let dims = f.dims(d)?;
    let local_default = (family == Family::Gemma3).then_some(GEMMA3_LOCAL_ROPE_THETA);
    let rope = f.rope(d.rope_theta, local_default)?;
    let mut c = ModelConfig::with_family_conventions(family, dims, rope.theta);
    c.rope_local_theta = rope.local_theta;
    c.rope_scaling = rope.scaling;
    let tie = match f.bool("tie_word_embeddings")? {
        Some(tie) => Some(tie),
        None => outer.map(|o| o.bool("tie_word_embeddings")).transpose()?.flatten(),
    };
    c.tie_word_embeddings = tie.unwrap_or(d.tie_word_embeddings);
    c.attention_bias = f.bool("attention_bias")?.unwrap_or(false);
    let act_key = if f.get("hidden_activation").is_some() { "hidden_activation" } else { "hidden_act" };
    c.hidden_act = f.activation(act_key, "gelu_pytorch_tanh")?;
    c.query_pre_attn_scalar = f.f32("query_pre_attn_scalar")?.unwrap_or(GEMMA_QUERY_PRE_ATTN_SCALAR);
    let (attn_cap, final_cap) = match family {
        Family::Gemma2 => (GEMMA2_ATTN_SOFTCAP, GEMMA2_FINAL_SOFTCAP),
        _ => (0.0, 0.0),
    };
    c.attn_logit_softcapping = f.softcap("attn_logit_softcapping", attn_cap)?;
    c.final_logit_softcapping = f.softcap("final_logit_softcapping", final_cap)?;
    let window = f.sliding_window(d.sliding_window)?;
    c.layer_attention = match f.layer_types(dims.num_hidden_layers, window)? {
        Some(layers) => layers,
        None => {
            let Some(window) = window else {
                return Err(f.bad("sliding_window", "Gemma needs a sliding window when `layer_types` is absent"));
            };
            if family == Family::Gemma2 {
                gemma2_layers(dims.num_hidden_layers, window)
            } else {
                let key = if f.get("sliding_window_pattern").is_some() {
                    "sliding_window_pattern"
                } else {
                    "_sliding_window_pattern"
                };
                let pattern = f.usize(key)?.unwrap_or(GEMMA3_SLIDING_WINDOW_PATTERN);
                interleaved_layers(dims.num_hidden_layers, window, pattern)
            }
        }
    };
    Ok(c)
}

/// RoPE settings read from either config layout.
struct Rope {
    theta: f32,
    local_theta: f32,
    scaling: RopeScaling,
}

/// One JSON object of a config, with its key prefix (`"text_config."`) and file for messages.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'static str,
    path: &'a Path,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, prefix: &'static str, path: &'a Path) -> Result<Self, LoadError> {
        match value.as_object() {
            Some(obj) => Ok(Self { obj, prefix, path }),
            None => Err(LoadError::BadField {
                path: path.to_path_buf(),
                field: if prefix.is_empty() { "(root)".into() } else { prefix.trim_end_matches('.').into() },
                reason: "expected a JSON object".into(),
            }),
        }
    }

    /// The raw value of `key`; `Some(Value::Null)` for an explicit `null`.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    fn bad(&self, key: &str, reason: impl Into<String>) -> LoadError {
        LoadError::BadField {
            path: self.path.to_path_buf(),
            field: format!("{}{key}", self.prefix),
            reason: reason.into(),
        }
    }

    /// `key` converted by `conv`; absent or `null` gives `None`, a wrong type an error.
    fn typed<T>(&self, key: &str, what: &str, conv: impl Fn(&'a Value) -> Option<T>) -> Result<Option<T>, LoadError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => conv(v).map(Some).ok_or_else(|| self.bad(key, format!("expected {what}, found {v}"))),
        }
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, LoadError> {
        self.typed(key, "a non-negative integer", |v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
    }

    fn f32(&self, key: &str) -> Result<Option<f32>, LoadError> {
        self.typed(key, "a number", |v| v.as_f64().map(|x| x as f32))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, LoadError> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, LoadError> {
        self.typed(key, "a string", Value::as_str)
    }

    /// The sizes, each from the file or the class default.
    fn dims(&self, d: &ClassDefaults) -> Result<Dims, LoadError> {
        let hidden_size = self.usize("hidden_size")?.unwrap_or(d.hidden_size);
        let num_attention_heads = self.usize("num_attention_heads")?.unwrap_or(d.num_attention_heads);
        let head_dim = match self.usize("head_dim")?.or(d.head_dim) {
            Some(h) => h,
            None if num_attention_heads == 0 => {
                return Err(self.bad("num_attention_heads", "must be positive"));
            }
            None => hidden_size / num_attention_heads,
        };
        (Dims {
            vocab_size: self.usize("vocab_size")?.unwrap_or(d.vocab_size),
            hidden_size,
            intermediate_size: self.usize("intermediate_size")?.unwrap_or(d.intermediate_size),
            num_hidden_layers: self.usize("num_hidden_layers")?.unwrap_or(d.num_hidden_layers),
            num_attention_heads,
            num_key_value_heads: self
                .usize("num_key_value_heads")?
                .or(d.num_key_value_heads)
                .unwrap_or(num_attention_heads),
            head_dim,
            max_position_embeddings: self.usize("max_position_embeddings")?.unwrap_or(d.max_position_embeddings),
            rms_norm_eps: self.f32("rms_norm_eps")?.unwrap_or(RMS_NORM_EPS),
        })
        .within_limits(self.path, |field| format!("{}{field}", self.prefix))
    }

    fn activation(&self, key: &str, default: &str) -> Result<super::Activation, LoadError> {
        match self.str(key)?.unwrap_or(default) {
            "silu" | "swish" => Ok(super::Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_tanh" => Ok(super::Activation::GeluTanh),
            other => {
                Err(self.bad(key, format!("unsupported activation `{other}` (supported: silu, gelu_pytorch_tanh)")))
            }
        }
    }

    /// `sliding_window`: absent gives the class default, `null` gives none.
    fn sliding_window(&self, default: Option<usize>) -> Result<Option<usize>, LoadError> {
        match self.get("sliding_window") {
            None => Ok(default),
            _ => self.usize("sliding_window"),
        }
    }

    /// A soft-cap: absent gives `default`, `null` gives 0 (off).
    fn softcap(&self, key: &str, default: f32) -> Result<f32, LoadError> {
        match self.get(key) {
            None => Ok(default),
            _ => Ok(self.f32(key)?.unwrap_or(0.0)),
        }
    }

    /// `layer_types` (`"full_attention"` / `"sliding_attention"`), when the file has it.
    fn layer_types(&self, num_layers: usize, window: Option<usize>) -> Result<Option<Vec<LayerAttention>>, LoadError> {
        let Some(types) = self.typed("layer_types", "an array", Value::as_array)? else {
            return Ok(None);
        };
        if types.len() != num_layers {
            return Err(self.bad("layer_types", format!("has {} entries for {num_layers} layers", types.len())));
        }
        types
            .iter()
            .map(|t| match t.as_str() {
                Some("full_attention") => Ok(LayerAttention::Global),
                Some("sliding_attention") => match window {
                    Some(window) => Ok(LayerAttention::Sliding { window }),
                    None => Err(self.bad("sliding_window", "is null but `layer_types` has sliding layers")),
                },
                _ => Err(self.bad(
                    "layer_types",
                    format!("unsupported layer type {t} (supported: full_attention, sliding_attention)"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// RoPE bases and scaling. `local_default`: the class's separate base for sliding layers.
    fn rope(&self, theta_default: f32, local_default: Option<f32>) -> Result<Rope, LoadError> {
        let Some(params) = self.get("rope_parameters").filter(|v| !v.is_null()) else {
            // transformers 4: `rope_theta`, `rope_scaling` (global layers), `rope_local_base_freq`.
            let theta = self.f32("rope_theta")?.unwrap_or(theta_default);
            let local_theta = match local_default {
                Some(d) => self.f32("rope_local_base_freq")?.unwrap_or(d),
                None => theta,
            };
            let scaling = match self.get("rope_scaling") {
                None | Some(Value::Null) => RopeScaling::None,
                Some(v) => self.rope_scaling(v, "rope_scaling")?,
            };
            return Ok(Rope { theta, local_theta, scaling });
        };
        // transformers 5: `rope_parameters`, either one set or one per layer type.
        let Some(obj) = params.as_object() else {
            return Err(self.bad("rope_parameters", "expected a JSON object"));
        };
        let (global, global_key) = match obj.get("full_attention") {
            Some(g) => (g, "rope_parameters.full_attention"),
            None => (params, "rope_parameters"),
        };
        let theta_of = |v: &Value, key: &str| -> Result<f32, LoadError> {
            match v.get("rope_theta") {
                None | Some(Value::Null) => Ok(theta_default),
                Some(t) => t
                    .as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| self.bad(&format!("{key}.rope_theta"), format!("expected a number, found {t}"))),
            }
        };
        let theta = theta_of(global, global_key)?;
        let scaling = self.rope_scaling(global, global_key)?;
        let local_theta = match obj.get("sliding_attention") {
            Some(local) => {
                let key = "rope_parameters.sliding_attention";
                if self.rope_scaling(local, key)? != RopeScaling::None {
                    return Err(self.bad(key, "RoPE scaling of sliding layers is not supported"));
                }
                theta_of(local, key)?
            }
            None => match local_default {
                Some(d) => self.f32("rope_local_base_freq")?.unwrap_or(d),
                None => theta,
            },
        };
        Ok(Rope { theta, local_theta, scaling })
    }

    /// A `rope_scaling` object (transformers 4) or one `rope_parameters` set (transformers 5).
    fn rope_scaling(&self, v: &Value, key: &str) -> Result<RopeScaling, LoadError> {
        let field = |name: &str| -> Result<Option<f64>, LoadError> {
            match v.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| self.bad(&format!("{key}.{name}"), format!("expected a number, found {x}"))),
            }
        };
        let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(Value::as_str).unwrap_or("default");
        let required = |names: &[&str]| -> Result<Vec<f64>, LoadError> {
            let mut missing = Vec::new();
            let mut out = Vec::new();
            for name in names {
                match field(name)? {
                    Some(x) => out.push(x),
                    None => missing.push(format!("{}{key}.{name}", self.prefix)),
                }
            }
            if missing.is_empty() {
                Ok(out)
            } else {
                Err(LoadError::MissingFields { path: self.path.to_path_buf(), fields: missing })
            }
        };
        match kind {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear { factor: required(&["factor"])?[0] as f32 }),
            "llama3" => {
                let v =
                    required(&["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"])?;
                Ok(RopeScaling::Llama3(Llama3RopeScaling {
                    factor: v[0] as f32,
                    low_freq_factor: v[1] as f32,
                    high_freq_factor: v[2] as f32,
                    original_max_position_embeddings: v[3] as usize,
                }))
            }
            other => Err(self.bad(
                &format!("{key}.rope_type"),
                format!("unsupported RoPE scaling `{other}` (supported: default, linear, llama3)"),
            )),
        }
    }
}
