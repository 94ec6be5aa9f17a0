//! Random models in real shapes: for benchmarks and GPU checks where real weights cannot travel
//! (the device machine has no network and receives at most 64 MiB per call).
//!
//! Each [`RandomShape`] is the `config.json` of a published checkpoint (sizes and conventions
//! only), read through the same front door as a downloaded model, so a random "llama3-8b" has
//! exactly Llama-3-8B's shapes. Weights come from a seed ([`MemoryWeights::random`]).
//! [`export`] writes the model as a Hugging Face folder (`config.json`, `model.safetensors`,
//! a byte-level `tokenizer.json`, `tokenizer_config.json`) that our loader and transformers both
//! read, so the identical weights can be compared across implementations.

use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::{Value, json};

use burn::tensor::Device;

use crate::LoadError;
use crate::arch::AnyModel;
use crate::chat::ChatTemplate;
use crate::config::ModelConfig;
use crate::loading::memory::{MemoryWeights, random_values};
use crate::model::{Format, LoadedModel};
use crate::rng::SplitMix64;
use crate::tokenizer::Tokenizer;

/// The precision random weights are drawn in.
///
/// `F16` and `Bf16` round every weight to that format, and [`export`] stores it in that format,
/// so a peer loading the folder in half precision sees the same numbers. Our backends compute in
/// f32 on every device (burn 0.22 has no mixed-precision matmul of half weights with f32
/// activations), so in memory the rounded values are held as f32: the results are those of a
/// half-precision checkpoint upcast at load time, which is what `greater` does with a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightDtype {
    /// 32-bit floats (4 bytes per parameter on disk).
    #[default]
    F32,
    /// IEEE half precision (2 bytes per parameter on disk).
    F16,
    /// bfloat16 (2 bytes per parameter on disk).
    Bf16,
}

impl std::str::FromStr for WeightDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            _ => Err(format!("unknown weight dtype `{s}` (f32, f16 or bf16)")),
        }
    }
}

impl WeightDtype {
    /// `v` rounded to this precision (to nearest, ties to even), as f32.
    pub fn round(self, v: f32) -> f32 {
        match self {
            Self::F32 => v,
            Self::F16 => half::f16::from_f32(v).to_f32(),
            Self::Bf16 => half::bf16::from_f32(v).to_f32(),
        }
    }

    /// Bytes per value on disk.
    pub fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
        }
    }

    /// The safetensors `dtype` and the transformers `torch_dtype` names.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::F32 => ("F32", "float32"),
            Self::F16 => ("F16", "float16"),
            Self::Bf16 => ("BF16", "bfloat16"),
        }
    }

    /// `v` in this format, little-endian.
    fn push_bytes(self, v: f32, out: &mut Vec<u8>) {
        match self {
            Self::F32 => out.extend_from_slice(&v.to_le_bytes()),
            Self::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            Self::Bf16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
        }
    }
}

/// A named model shape.
#[derive(Debug, Clone, Copy)]
pub struct RandomShape {
    /// The name used on the command line (`greater bench step --random NAME`).
    pub name: &'static str,
    /// What it is the shape of.
    pub about: &'static str,
    /// Half-width of the uniform weight distribution (norms are drawn near their neutral value).
    pub scale: f32,
    /// The `config.json` fields (class defaults fill the rest).
    config: &'static str,
}

/// Every shape, smallest first.
pub const SHAPES: &[RandomShape] = &[
    RandomShape {
        name: "tiny",
        about: "a 2-layer Llama, hidden 32, vocab 320 (tests and CI)",
        scale: 0.3,
        config: r#"{"model_type": "llama", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "tie_word_embeddings": true}"#,
    },
    RandomShape {
        name: "tiny-qwen2",
        about: "a 2-layer Qwen2 (q/k/v biases), hidden 32, vocab 320 (peer checks)",
        scale: 0.3,
        config: r#"{"model_type": "qwen2", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 1024, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "tie_word_embeddings": true, "use_sliding_window": false, "sliding_window": 1024,
            "max_window_layers": 2}"#,
    },
    RandomShape {
        name: "tiny-gemma2",
        about: "a 2-layer Gemma-2 (sandwich norms, soft-capping, a sliding layer of window 4), vocab 320",
        scale: 0.3,
        config: r#"{"model_type": "gemma2", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "max_position_embeddings": 1024, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "query_pre_attn_scalar": 8, "sliding_window": 4, "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0, "hidden_activation": "gelu_pytorch_tanh",
            "tie_word_embeddings": true}"#,
    },
    RandomShape {
        name: "smollm2-135m",
        about: "SmolLM2-135M (Llama family, tied head)",
        scale: 0.02,
        config: r#"{"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
            "tie_word_embeddings": true}"#,
    },
    RandomShape {
        name: "qwen2.5-0.5b",
        about: "Qwen2.5-0.5B (q/k/v biases, tied head)",
        scale: 0.02,
        config: r#"{"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
            "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "tie_word_embeddings": true, "use_sliding_window": false, "sliding_window": 32768,
            "max_window_layers": 21}"#,
    },
    RandomShape {
        name: "llama3-8b",
        about: "Llama-3-8B (untied head, 8 kv heads)",
        scale: 0.02,
        config: r#"{"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "tie_word_embeddings": false}"#,
    },
    RandomShape {
        name: "gemma2-9b",
        about: "Gemma-2-9B (sandwich norms, soft-capping, alternating sliding layers)",
        scale: 0.02,
        config: r#"{"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 3584, "intermediate_size": 14336,
            "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "query_pre_attn_scalar": 256, "sliding_window": 4096, "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0, "hidden_activation": "gelu_pytorch_tanh",
            "tie_word_embeddings": true}"#,
    },
];

/// The shape called `name`, or an error listing every name.
pub fn shape(name: &str) -> Result<&'static RandomShape, LoadError> {
    SHAPES.iter().find(|s| s.name == name).ok_or_else(|| LoadError::UnknownModel {
        name: format!("random:{name}"),
        known: SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
    })
}

impl RandomShape {
    /// The `config.json` this shape is written as (with f32 weights).
    pub fn config_json(&self) -> Value {
        let mut v: Value = serde_json::from_str(self.config).expect("the shape tables are valid JSON");
        let extra = json!({"torch_dtype": WeightDtype::F32.names().1, "bos_token_id": SPECIAL_BOS, "eos_token_id": SPECIAL_EOS,
            "pad_token_id": SPECIAL_PAD});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    }

    /// The resolved, validated config.
    pub fn config(&self) -> Result<ModelConfig, LoadError> {
        let label = Path::new(self.name);
        let c = ModelConfig::from_hf_json(&self.config_json(), label)?;
        c.validate(label)?;
        Ok(c)
    }

    /// Seeded random weights in memory (f32: 4 bytes per parameter).
    pub fn weights(&self, config: &ModelConfig, seed: u64) -> MemoryWeights {
        self.weights_in(config, seed, WeightDtype::F32)
    }

    /// [`RandomShape::weights`] rounded to `dtype` (held as f32, see [`WeightDtype`]).
    pub fn weights_in(&self, config: &ModelConfig, seed: u64, dtype: WeightDtype) -> MemoryWeights {
        let mut w =
            MemoryWeights::random(&AnyModel::expected_tensors(config), seed, self.scale, config.norm_unit_offset);
        if dtype != WeightDtype::F32 {
            w.map_values(|v| dtype.round(v));
        }
        w
    }
}

/// Write shape `shape` with weights from `seed` as a Hugging Face folder `dir` (created if
/// missing): the weights are exactly [`RandomShape::weights_in`] `dtype`, stored in `dtype` and
/// written tensor by tensor so the largest tensor, not the model, bounds the memory used.
pub fn export(shape: &RandomShape, seed: u64, dtype: WeightDtype, dir: &Path) -> Result<(), LoadError> {
    let config = export_config(shape, dtype, dir)?;
    let expected = AnyModel::expected_tensors(&config);
    write_safetensors(
        &dir.join("model.safetensors"),
        &expected,
        |rng, name, n| random_values(rng, name, n, shape.scale, config.norm_unit_offset),
        seed,
        dtype,
    )
}

/// The folder of [`export`] without `model.safetensors`: `config.json` (with `torch_dtype`
/// `dtype`) and the tokenizer files, so a peer can build the shape with its own random weights
/// (transformers' `from_config`) where the weights are too large to write or carry.
pub fn export_config(shape: &RandomShape, dtype: WeightDtype, dir: &Path) -> Result<ModelConfig, LoadError> {
    let config = shape.config()?;
    std::fs::create_dir_all(dir).map_err(|e| LoadError::io(dir, e))?;
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| LoadError::io(&p, e))
    };
    let mut config_json = architectures(shape.config_json());
    config_json["torch_dtype"] = json!(dtype.names().1);
    write("config.json", pretty(&config_json))?;
    write("tokenizer.json", pretty(&tokenizer_json(config.vocab_size)))?;
    write("tokenizer_config.json", pretty(&tokenizer_config()))?;
    Ok(config)
}

/// Build shape `shape` with weights from `seed` rounded to `dtype` on `device`, with the
/// byte-level tokenizer and ChatML template of [`export`], without writing the weights anywhere
/// (the tokenizer files go to `scratch`, which is created if missing).
pub fn load(
    shape: &RandomShape,
    seed: u64,
    dtype: WeightDtype,
    device: &Device,
    scratch: &Path,
) -> Result<LoadedModel, LoadError> {
    let config = shape.config()?;
    std::fs::create_dir_all(scratch).map_err(|e| LoadError::io(scratch, e))?;
    let (tok_json, tok_config) = (scratch.join("tokenizer.json"), scratch.join("tokenizer_config.json"));
    std::fs::write(&tok_json, pretty(&tokenizer_json(config.vocab_size))).map_err(|e| LoadError::io(&tok_json, e))?;
    std::fs::write(&tok_config, pretty(&tokenizer_config())).map_err(|e| LoadError::io(&tok_config, e))?;
    let tokenizer = Tokenizer::from_file(&tok_json, Some(&tok_config))?;
    tokenizer.check_model_vocab(config.vocab_size)?;
    let chat = ChatTemplate::from_tokenizer_config(&tok_config, config.family, &tokenizer)?;
    let model = AnyModel::load(&config, &shape.weights_in(&config, seed, dtype), device)?;
    let source = format!("random:{}", shape.name).into();
    Ok(LoadedModel { model, tokenizer, chat, source, format: Format::HuggingFace })
}

/// Token ids of the special tokens of the exported tokenizer.
const SPECIAL_PAD: u32 = 0;
const SPECIAL_EOS: u32 = 1;
const SPECIAL_BOS: u32 = 2;
const SPECIALS: [&str; 5] = ["<pad>", "<|im_end|>", "<bos>", "<unk>", "<|im_start|>"];

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON values serialise") + "\n"
}

/// `config.json` with the `architectures` transformers uses to pick the model class.
fn architectures(mut v: Value) -> Value {
    let class = match v["model_type"].as_str() {
        Some("qwen2") => "Qwen2ForCausalLM",
        Some("gemma2") => "Gemma2ForCausalLM",
        Some("gemma3_text") => "Gemma3ForCausalLM",
        _ => "LlamaForCausalLM",
    };
    v["architectures"] = json!([class]);
    v
}

/// GPT-2's byte ↔ character map: printable Latin-1 bytes stand for themselves, the others are
/// shifted to 256 and up, so every byte sequence is a string of visible characters.
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut shifted = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("Latin-1")
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).expect("a Latin Extended character")
            }
        })
        .collect()
}

/// A byte-level BPE tokenizer without merges: five special tokens, one token per byte, so any
/// text encodes (one token per byte) and decodes back exactly, then `<unused_i>` fillers up to
/// `vocab_size`, so every id a random model can emit decodes.
fn tokenizer_json(vocab_size: usize) -> Value {
    let mut vocab = serde_json::Map::new();
    for (i, s) in SPECIALS.iter().enumerate() {
        vocab.insert((*s).to_owned(), json!(i));
    }
    for (b, c) in byte_chars().into_iter().enumerate() {
        vocab.insert(c.to_string(), json!(SPECIALS.len() + b));
    }
    for i in SPECIALS.len() + 256..vocab_size {
        vocab.insert(format!("<unused_{i}>"), json!(i));
    }
    let added: Vec<Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []}
    })
}

/// Special tokens and a ChatML template.
fn tokenizer_config() -> Value {
    json!({
        "bos_token": "<bos>", "eos_token": "<|im_end|>", "pad_token": "<pad>", "unk_token": "<unk>",
        "add_bos_token": false,
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    })
}

/// A safetensors file of `dtype` tensors `expected`, in that order, values from `values(rng, name, n)`.
///
/// Layout: an 8-byte little-endian header length, the JSON header (`dtype`, `shape`,
/// `data_offsets` per tensor), then the tensors' bytes back to back.
fn write_safetensors(
    path: &Path,
    expected: &[(String, Vec<usize>)],
    mut values: impl FnMut(&mut SplitMix64, &str, usize) -> Vec<f32>,
    seed: u64,
    dtype: WeightDtype,
) -> Result<(), LoadError> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in expected {
        let bytes = dtype.bytes() * shape.iter().product::<usize>();
        let entry = json!({"dtype": dtype.names().0, "shape": shape, "data_offsets": [offset, offset + bytes]});
        header.insert(name.clone(), entry);
        offset += bytes;
    }
    let mut text = serde_json::to_string(&Value::Object(header)).expect("JSON values serialise");
    // Pad the header with spaces so the data starts 8-byte aligned.
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let io = |e| LoadError::io(path, e);
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    out.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(text.as_bytes()).map_err(io)?;
    let mut rng = SplitMix64(seed);
    let mut bytes = Vec::new();
    for (name, shape) in expected {
        bytes.clear();
        values(&mut rng, name, shape.iter().product()).into_iter().for_each(|v| dtype.push_bytes(v, &mut bytes));
        out.write_all(&bytes).map_err(io)?;
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_resolves_with_its_published_size() {
        // Parameter counts of the released checkpoints (embedding counted once when tied).
        let want = [
            ("tiny", None),
            ("tiny-qwen2", None),
            ("tiny-gemma2", None),
            ("smollm2-135m", Some(134_515_008)),
            ("qwen2.5-0.5b", Some(494_032_768)),
            ("llama3-8b", Some(8_030_261_248)),
            ("gemma2-9b", Some(9_241_705_984)),
        ];
        assert_eq!(SHAPES.len(), want.len());
        for (s, (name, params)) in SHAPES.iter().zip(want) {
            assert_eq!(s.name, name);
            let c = s.config().unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(p) = params {
                assert_eq!(c.num_parameters(), p, "{name}");
            }
        }
        assert!(shape("llama3-8b").is_ok());
        let err = shape("gpt-5").unwrap_err().to_string();
        assert!(err.contains("random:gpt-5") && err.contains("llama3-8b, gemma2-9b"), "{err}");
    }

    #[test]
    fn byte_map_is_a_bijection_onto_visible_characters() {
        let chars = byte_chars();
        let mut sorted = chars.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        assert_eq!(chars[b'A' as usize], 'A');
        // The space (byte 32) is the 33rd byte outside the printable ranges: U+0120 'Ġ'.
        assert_eq!(chars[b' ' as usize], '\u{120}');
    }
}
