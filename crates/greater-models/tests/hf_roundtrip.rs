//! Tiny random models written by the test as Hugging Face folders (`config.json`,
//! safetensors, `tokenizer.json`, `tokenizer_config.json`) load back through
//! [`LoadedModel::load`] and give the logits of the same weights built in memory, for Llama,
//! Qwen2, Gemma 2 and Gemma 3; in f32, bf16 and f16, single-file and sharded. Also the errors a
//! broken folder must give.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::LoadError;
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::cache::KvCache;
use greater_models::config::{Family, ModelConfig};
use greater_models::layers::download;
use greater_models::loading::memory::MemoryWeights;
use greater_models::loading::{HostTensor, WeightSource};
use greater_models::model::{Format, LoadedModel};
use safetensors::Dtype;
use serde_json::json;

const FAMILIES: [Family; 4] = [Family::Llama, Family::Qwen2, Family::Gemma2, Family::Gemma3];

/// Ids of every tiny vocabulary entry below 64, each tested family's special tokens among them.
const IDS: [u32; 9] = [2, 17, 42, 5, 9, 63, 33, 8, 50];

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Storage {
    F32,
    Bf16,
    F16,
}

/// The `config.json` transformers writes for `ModelConfig::tiny(family)` (its `model_type`, the
/// tiny sizes and every convention that differs from the class default).
fn hf_config(family: Family) -> serde_json::Value {
    let mut v = json!({
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "max_position_embeddings": 128,
        "torch_dtype": "float32",
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
    });
    let extra = match family {
        Family::Llama => json!({
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "hidden_act": "silu",
            "tie_word_embeddings": true,
        }),
        Family::Qwen2 => json!({
            "model_type": "qwen2",
            "architectures": ["Qwen2ForCausalLM"],
            "rms_norm_eps": 1e-5,
            "rope_theta": 1000000.0,
            "hidden_act": "silu",
            "tie_word_embeddings": false,
            "use_sliding_window": false,
            "sliding_window": 128,
            "max_window_layers": 2,
        }),
        Family::Gemma2 => json!({
            "model_type": "gemma2",
            "architectures": ["Gemma2ForCausalLM"],
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": 8,
            "sliding_window": 4,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
            "tie_word_embeddings": true,
        }),
        Family::Gemma3 => json!({
            "model_type": "gemma3_text",
            "architectures": ["Gemma3ForCausalLM"],
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "rope_scaling": null,
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": 8,
            "sliding_window": 4,
            "layer_types": ["sliding_attention", "full_attention"],
            "attn_logit_softcapping": null,
            "final_logit_softcapping": null,
            "tie_word_embeddings": true,
        }),
    };
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

/// A word-level tokenizer over 64 tokens: `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3, the
/// turn markers 4–7 (special), then `w8` … `w63`; words are split on whitespace.
fn write_tokenizer(dir: &Path, vocab_size: u32, family: Family) {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    use tokenizers::{AddedToken, Tokenizer};
    const SPECIAL: [&str; 8] =
        ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>"];
    let token = |i: u32| SPECIAL.get(i as usize).map_or_else(|| format!("w{i}"), |s| s.to_string());
    let model = WordLevel::builder()
        .vocab((0..vocab_size).map(|i| (token(i), i)).collect())
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(WhitespaceSplit));
    tok.add_special_tokens(SPECIAL.iter().map(|s| AddedToken::from(*s, true))).unwrap();
    tok.save(dir.join("tokenizer.json"), true).unwrap();
    let gemma = family.is_gemma();
    let template = if gemma {
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }} {{ m.content }} <end_of_turn> {% endfor %}\
         {% if add_generation_prompt %}<start_of_turn>model {% endif %}"
    } else {
        "{% for m in messages %}<|im_start|>{{ m.role }} {{ m.content }} <|im_end|> {% endfor %}\
         {% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
    };
    let config = json!({
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "add_bos_token": gemma,
        "chat_template": template,
    });
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// Little-endian bytes of `data` in `storage`.
fn encode(data: &[f32], storage: Storage) -> Vec<u8> {
    match storage {
        Storage::F32 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Storage::Bf16 => data.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        Storage::F16 => data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
    }
}

/// The weights as they read back from `storage` (rounded to nearest even for 16-bit types).
fn rounded(w: &MemoryWeights, storage: Storage) -> MemoryWeights {
    let mut out = MemoryWeights::new("<rounded>");
    for (name, t) in w.iter() {
        let data = t
            .data
            .iter()
            .map(|&x| match storage {
                Storage::F32 => x,
                Storage::Bf16 => half::bf16::from_f32(x).to_f32(),
                Storage::F16 => half::f16::from_f32(x).to_f32(),
            })
            .collect();
        out.insert(name.clone(), HostTensor { shape: t.shape.clone(), data });
    }
    out
}

/// Write `tensors` to one safetensors file.
fn write_safetensors(path: &Path, tensors: &[(&String, &HostTensor)], storage: Storage) {
    let dtype = match storage {
        Storage::F32 => Dtype::F32,
        Storage::Bf16 => Dtype::BF16,
        Storage::F16 => Dtype::F16,
    };
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(n, t)| (n.to_string(), t.shape.clone(), encode(&t.data, storage))).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(n, shape, b)| (n.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), b).unwrap()))
        .collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path).unwrap();
}

/// A complete Hugging Face folder for `w`: `shards` = 1 writes `model.safetensors`, 2 writes two
/// shards and `model.safetensors.index.json`.
fn write_folder(dir: &Path, family: Family, w: &MemoryWeights, storage: Storage, shards: usize) {
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&hf_config(family)).unwrap()).unwrap();
    write_tokenizer(dir, 64, family);
    let all: Vec<(&String, &HostTensor)> = w.iter().collect();
    if shards == 1 {
        write_safetensors(&dir.join("model.safetensors"), &all, storage);
        return;
    }
    let (first, second) = all.split_at(all.len() / 2);
    let names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    let mut weight_map = serde_json::Map::new();
    for (part, file) in [first, second].into_iter().zip(names) {
        write_safetensors(&dir.join(file), part, storage);
        for (name, _) in part {
            weight_map.insert(name.to_string(), json!(file));
        }
    }
    let index = json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

fn logits(model: &AnyModel, ids: &[u32]) -> Vec<f32> {
    let data: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let x = Tensor::<2, Int>::from_data(TensorData::new(data, [1, ids.len()]), model.device());
    download(model.forward_embeds(model.embed(x), None, &mut KvCache::uncached(1)))
}

fn random_weights(config: &ModelConfig) -> MemoryWeights {
    MemoryWeights::random(&AnyModel::expected_tensors(config), 7, 0.3, config.family.is_gemma())
}

/// Write, load, and compare with the in-memory model of the (rounded) same weights.
fn round_trip(family: Family, storage: Storage, shards: usize) {
    let device = greater_models::default_device();
    let config = ModelConfig::tiny(family);
    let weights = random_weights(&config);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), family, &weights, storage, shards);

    let loaded = LoadedModel::load(dir.path(), &device).unwrap();
    let what = format!("{family:?} {storage:?} {shards} shard(s)");
    assert_eq!(loaded.format, Format::HuggingFace);
    assert_eq!(loaded.config(), &config, "{what}: config.json must resolve to ModelConfig::tiny");
    assert_eq!(loaded.tokenizer.vocab_size(), 64);

    let want = logits(&AnyModel::load(&config, &rounded(&weights, storage), &device).unwrap(), &IDS);
    let got = logits(&loaded.model, &IDS);
    assert_eq!(got.len(), IDS.len() * 64);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "{what}: max |logit diff| {worst:e}");
    // The rounding is visible: the unrounded weights give other logits for 16-bit storage.
    if storage != Storage::F32 {
        let exact = logits(&AnyModel::load(&config, &weights, &device).unwrap(), &IDS);
        let d = got.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d > 1e-5, "{what}: rounding changed the logits by only {d:e}");
    }
}

#[test]
fn f32_folders_match_in_memory_models() {
    for family in FAMILIES {
        round_trip(family, Storage::F32, 1);
    }
}

#[test]
fn half_precision_folders_match_rounded_weights() {
    for family in FAMILIES {
        round_trip(family, if family.is_gemma() { Storage::Bf16 } else { Storage::F16 }, 1);
    }
}

#[test]
fn sharded_folders_match_in_memory_models() {
    for family in FAMILIES {
        round_trip(family, Storage::F32, 2);
    }
    round_trip(Family::Gemma3, Storage::Bf16, 2);
}

/// The tokenizer and the chat template come from the folder: BOS is added for Gemma only, and
/// the rendered prompt encodes to the expected ids.
#[test]
fn folder_tokenizer_and_chat_template_are_used() {
    let device = greater_models::default_device();
    for family in [Family::Llama, Family::Gemma3] {
        let config = ModelConfig::tiny(family);
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), family, &random_weights(&config), Storage::F32, 1);
        let loaded = LoadedModel::load(dir.path(), &device).unwrap();
        assert_eq!(loaded.tokenizer.encode("w9 w10 w63", false).unwrap(), [9, 10, 63]);
        let ids = loaded.encode_chat("w20 w21").unwrap();
        if family.is_gemma() {
            assert_eq!(loaded.tokenizer.encode("w9", true).unwrap(), [2, 9]);
            // <bos> <start_of_turn> user(unk) w20 w21 <end_of_turn> <start_of_turn> model(unk)
            assert_eq!(ids, [2, 4, 3, 20, 21, 5, 4, 3]);
        } else {
            assert_eq!(loaded.tokenizer.encode("w9", true).unwrap(), [9]);
            // <|im_start|> user(unk) w20 w21 <|im_end|> <|im_start|> assistant(unk)
            assert_eq!(ids, [6, 3, 20, 21, 7, 6, 3]);
        }
    }
}

/// A tokenizer with more tokens than the model has embedding rows is refused, naming both sizes.
#[test]
fn tokenizer_larger_than_model_vocab_is_an_error() {
    let family = Family::Llama;
    let mut config = ModelConfig::tiny(family);
    config.vocab_size = 48;
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), family, &random_weights(&config), Storage::F32, 1);
    let mut hf = hf_config(family);
    hf["vocab_size"] = json!(48);
    std::fs::write(dir.path().join("config.json"), hf.to_string()).unwrap();
    let err = LoadedModel::load(dir.path(), &greater_models::default_device()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(&err, LoadError::Tokenizer { path, .. } if path.ends_with("tokenizer.json")), "{msg}");
    assert!(msg.contains("64 tokens") && msg.contains("only 48 rows"), "{msg}");
    // A model with *more* rows than tokens (Qwen2 pads its embedding) is fine.
    config.vocab_size = 80;
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), family, &random_weights(&config), Storage::F32, 1);
    hf["vocab_size"] = json!(80);
    std::fs::write(dir.path().join("config.json"), hf.to_string()).unwrap();
    assert!(LoadedModel::load(dir.path(), &greater_models::default_device()).is_ok());
}

/// A `config.json` naming an architecture outside the supported set is refused by name.
#[test]
fn unsupported_architecture_in_folder_is_an_error() {
    let config = ModelConfig::tiny(Family::Llama);
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), Family::Llama, &random_weights(&config), Storage::F32, 1);
    let mut hf = hf_config(Family::Llama);
    hf["model_type"] = json!("gemma3n");
    std::fs::write(dir.path().join("config.json"), hf.to_string()).unwrap();
    let err = LoadedModel::load(dir.path(), &greater_models::default_device()).unwrap_err();
    match &err {
        LoadError::UnsupportedArchitecture { path, arch, .. } => {
            assert!(path.ends_with("config.json"), "{err}");
            assert_eq!(arch, "gemma3n");
        }
        other => panic!("unexpected {other}"),
    }
}

/// A tensor of the wrong shape is named with the file that holds it, also inside a shard.
#[test]
fn misshapen_tensor_names_tensor_and_file() {
    let family = Family::Gemma3;
    let config = ModelConfig::tiny(family);
    for shards in [1, 2] {
        let mut w = random_weights(&config);
        let name = "model.layers.1.self_attn.k_norm.weight";
        w.insert(name, HostTensor { shape: vec![7], data: vec![0.0; 7] });
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), family, &w, Storage::F32, shards);
        let err = LoadedModel::load(dir.path(), &greater_models::default_device()).unwrap_err();
        let msg = err.to_string();
        let file = if shards == 1 { "model.safetensors" } else { "model-00002-of-00002.safetensors" };
        match &err {
            LoadError::TensorShape { path, name: got, got: shape, expected } => {
                assert!(path.ends_with(file), "{msg}");
                assert_eq!((got.as_str(), shape.as_slice(), expected.as_slice()), (name, &[7][..], &[8][..]));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(msg.contains(name) && msg.contains(file), "{msg}");
        // The checkpoint reader agrees on where the tensor lives.
        let st = greater_models::loading::SafetensorsWeights::open(dir.path()).unwrap();
        assert!(st.file_of(name).ends_with(file));
    }
}
