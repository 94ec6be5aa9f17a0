//! `ModelConfig::from_gguf` on hand-built metadata and on the three cached GGUF files, whose
//! configs must equal the transformers configs recorded in the golden `meta.json` files.

mod common;

use greater_models::LoadError;
use greater_models::config::{Activation, Family, LayerAttention, ModelConfig, RopeScaling};
use greater_models::loading::{GgufFile, MetaValue, Metadata};

/// Metadata with the keys every architecture needs, for `arch`.
fn base_meta(arch: &str) -> Metadata {
    let mut m = Metadata::new("hand.gguf");
    m.insert("general.architecture".into(), MetaValue::String(arch.into()));
    let k = |s: &str| format!("{arch}.{s}");
    m.insert(k("block_count"), MetaValue::U32(4));
    m.insert(k("embedding_length"), MetaValue::U32(64));
    m.insert(k("feed_forward_length"), MetaValue::U32(128));
    m.insert(k("attention.head_count"), MetaValue::U32(4));
    m.insert(k("attention.head_count_kv"), MetaValue::U32(2));
    m.insert(k("context_length"), MetaValue::U64(256));
    m.insert(k("attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-5));
    let tokens = (0..10).map(|i| MetaValue::String(format!("t{i}"))).collect();
    m.insert("tokenizer.ggml.tokens".into(), MetaValue::Array(tokens));
    m
}

#[test]
fn llama_defaults_from_minimal_metadata() {
    let c = ModelConfig::from_gguf(&base_meta("llama"), false).unwrap();
    assert_eq!(c.family, Family::Llama);
    assert_eq!((c.num_hidden_layers, c.hidden_size, c.intermediate_size), (4, 64, 128));
    assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.head_dim), (4, 2, 16));
    assert_eq!(c.vocab_size, 10);
    assert_eq!(c.max_position_embeddings, 256);
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert_eq!((c.rope_theta, c.rope_local_theta), (10_000.0, 10_000.0));
    assert_eq!(c.rope_scaling, RopeScaling::None);
    assert!(c.tie_word_embeddings, "no output.weight means a tied head");
    assert!(!c.attention_bias && !c.qk_norm && !c.sandwich_norms && !c.norm_unit_offset);
    assert_eq!(c.hidden_act, Activation::Silu);
    assert_eq!(c.embed_scale, 1.0);
    assert_eq!(c.query_pre_attn_scalar, 16.0);
    assert_eq!(c.layer_attention, vec![LayerAttention::Global; 4]);
    let untied = ModelConfig::from_gguf(&base_meta("llama"), true).unwrap();
    assert!(!untied.tie_word_embeddings);
}

#[test]
fn vocab_size_falls_back_to_arch_key_and_linear_scaling_is_read() {
    let mut m = Metadata::new("v.gguf");
    for (k, v) in base_meta("llama").iter() {
        if k != "tokenizer.ggml.tokens" {
            m.insert(k.into(), v.clone());
        }
    }
    m.insert("llama.vocab_size".into(), MetaValue::U32(77));
    m.insert("llama.rope.scaling.type".into(), MetaValue::String("linear".into()));
    m.insert("llama.rope.scaling.factor".into(), MetaValue::F32(8.0));
    m.insert("llama.attention.key_length".into(), MetaValue::U32(32));
    let c = ModelConfig::from_gguf(&m, true).unwrap();
    assert_eq!(c.vocab_size, 77);
    assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 8.0 });
    assert_eq!(c.head_dim, 32);

    m.insert("llama.rope.scaling.type".into(), MetaValue::String("yarn".into()));
    let err = ModelConfig::from_gguf(&m, true).unwrap_err();
    assert!(matches!(&err, LoadError::BadField { field, .. } if field == "llama.rope.scaling.type"), "{err}");
}

#[test]
fn qwen2_has_biases() {
    let c = ModelConfig::from_gguf(&base_meta("qwen2"), true).unwrap();
    assert_eq!(c.family, Family::Qwen2);
    assert!(c.attention_bias);
    assert!(!c.tie_word_embeddings);
}

#[test]
fn gemma2_alternates_layers_and_soft_caps() {
    let c = ModelConfig::from_gguf(&base_meta("gemma2"), false).unwrap();
    assert_eq!(c.family, Family::Gemma2);
    let s = LayerAttention::Sliding { window: 4096 };
    assert_eq!(c.layer_attention, [s, LayerAttention::Global, s, LayerAttention::Global]);
    assert_eq!((c.attn_logit_softcapping, c.final_logit_softcapping), (50.0, 30.0));
    assert_eq!(c.query_pre_attn_scalar, 16.0, "the head width for non-27B models");
    assert_eq!(c.embed_scale, 8.0, "sqrt(64)");
    assert!(c.sandwich_norms && c.norm_unit_offset && !c.qk_norm);
    assert_eq!(c.hidden_act, Activation::GeluTanh);

    let mut m = base_meta("gemma2");
    m.insert("gemma2.attention.sliding_window".into(), MetaValue::U32(16));
    m.insert("gemma2.attn_logit_softcapping".into(), MetaValue::F32(20.0));
    let c = ModelConfig::from_gguf(&m, false).unwrap();
    assert_eq!(c.layer_attention[0], LayerAttention::Sliding { window: 16 });
    assert_eq!(c.attn_logit_softcapping, 20.0);
}

#[test]
fn gemma3_every_sixth_layer_is_global() {
    let mut m = base_meta("gemma3");
    m.insert("gemma3.block_count".into(), MetaValue::U32(12));
    m.insert("gemma3.attention.sliding_window".into(), MetaValue::U32(8));
    m.insert("gemma3.attention.key_length".into(), MetaValue::U32(32));
    let c = ModelConfig::from_gguf(&m, false).unwrap();
    let global: Vec<usize> = (0..12).filter(|&i| c.layer_attention[i] == LayerAttention::Global).collect();
    assert_eq!(global, [5, 11]);
    assert_eq!(c.layer_attention[0], LayerAttention::Sliding { window: 8 });
    assert_eq!((c.rope_theta, c.rope_local_theta), (1_000_000.0, 10_000.0));
    assert_eq!(c.query_pre_attn_scalar, 32.0);
    assert_eq!((c.attn_logit_softcapping, c.final_logit_softcapping), (0.0, 0.0));
    assert!(c.qk_norm && c.sandwich_norms && c.norm_unit_offset);
}

#[test]
fn unknown_architectures_are_named() {
    for arch in ["gemma3n", "gemma", "phi3"] {
        let err = ModelConfig::from_gguf(&base_meta(arch), false).unwrap_err();
        match &err {
            LoadError::UnsupportedArchitecture { arch: got, supported, path } => {
                assert_eq!(got, arch);
                assert!(supported.contains("gemma3") && supported.contains("qwen2"), "{supported}");
                assert_eq!(path.to_str(), Some("hand.gguf"));
            }
            other => panic!("{arch}: unexpected {other:?}"),
        }
        if arch.starts_with("gemma") {
            assert!(err.to_string().contains(&format!("`{arch}`")), "{err}");
        }
    }
}

#[test]
fn every_missing_key_is_reported_at_once() {
    let mut m = Metadata::new("bare.gguf");
    m.insert("general.architecture".into(), MetaValue::String("llama".into()));
    m.insert("llama.block_count".into(), MetaValue::U32(2));
    match ModelConfig::from_gguf(&m, false).unwrap_err() {
        LoadError::MissingFields { fields, .. } => assert_eq!(
            fields,
            [
                "llama.embedding_length",
                "llama.feed_forward_length",
                "llama.attention.head_count",
                "llama.context_length",
                "llama.attention.layer_norm_rms_epsilon",
                "tokenizer.ggml.tokens (or llama.vocab_size)",
            ]
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn invalid_metadata_fails_validation() {
    let mut m = base_meta("llama");
    m.insert("llama.attention.head_count_kv".into(), MetaValue::U32(3));
    let err = ModelConfig::from_gguf(&m, false).unwrap_err();
    assert!(matches!(&err, LoadError::BadField { field, .. } if field == "num_key_value_heads"), "{err}");
}

/// Parses the cached GGUF of `name` and the golden transformers config of the same file.
fn cached_and_golden(name: &str) -> Option<(ModelConfig, ModelConfig, serde_json::Value)> {
    let path = common::model_path(name)?;
    let golden = common::golden_dir(name)?;
    let file = GgufFile::open(&path).unwrap();
    let from_gguf = ModelConfig::from_gguf(file.metadata(), file.tensor_info("output.weight").is_some()).unwrap();
    let meta = common::json(golden.join("meta.json"));
    let hf = meta["hf_config"].clone();
    let from_hf = ModelConfig::from_hf_json(&hf, &golden.join("meta.json")).unwrap();
    from_hf.validate("meta.json").unwrap();
    Some((from_gguf, from_hf, hf))
}

#[test]
fn smollm2_gguf_matches_golden_config() {
    let Some((c, hf_c, hf)) = cached_and_golden("smollm2-135m-instruct") else { return };
    assert_eq!(c, hf_c);
    assert_eq!(c.family, Family::Llama);
    assert_eq!((c.num_hidden_layers, c.hidden_size, c.intermediate_size), (30, 576, 1536));
    assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.head_dim), (9, 3, 64));
    assert_eq!(c.vocab_size, 49_152);
    assert_eq!(c.rms_norm_eps as f64, hf["rms_norm_eps"].as_f64().unwrap());
    assert_eq!(c.rope_theta, 100_000.0);
    assert!(c.tie_word_embeddings);
    assert_eq!(c.layer_attention, vec![LayerAttention::Global; 30]);
    assert_eq!(c.num_parameters(), 134_515_008);
}

#[test]
fn qwen25_coder_gguf_matches_golden_config() {
    let Some((c, hf_c, _)) = cached_and_golden("qwen2.5-coder-0.5b-instruct") else { return };
    assert_eq!(c, hf_c);
    assert_eq!(c.family, Family::Qwen2);
    assert_eq!((c.num_hidden_layers, c.hidden_size, c.intermediate_size), (24, 896, 4864));
    assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.head_dim), (14, 2, 64));
    assert_eq!(c.vocab_size, 151_936);
    assert_eq!(c.rope_theta, 1_000_000.0);
    assert!(c.attention_bias);
    assert!(!c.tie_word_embeddings, "this conversion has its own output.weight");
    // Qwen2.5-0.5B has 494,032,768 parameters with a tied head; this file adds a separate one.
    assert_eq!(c.num_parameters(), 494_032_768 + 151_936 * 896);
}

#[test]
fn gemma3_270m_gguf_matches_golden_config() {
    let Some((c, hf_c, hf)) = cached_and_golden("gemma3-270m") else { return };
    assert_eq!(c, hf_c);
    assert_eq!(c.family, Family::Gemma3);
    assert_eq!((c.num_hidden_layers, c.hidden_size, c.intermediate_size), (18, 640, 2048));
    assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.head_dim), (4, 1, 256));
    assert_eq!(c.vocab_size, 262_144);
    assert_eq!((c.rope_theta, c.rope_local_theta), (1_000_000.0, 10_000.0));
    assert_eq!(c.query_pre_attn_scalar, 256.0);
    assert_eq!(c.embed_scale, 640f64.sqrt() as f32);
    assert_eq!((c.attn_logit_softcapping, c.final_logit_softcapping), (0.0, 0.0));
    let global: Vec<usize> = (0..18).filter(|&i| c.layer_attention[i] == LayerAttention::Global).collect();
    assert_eq!(global, [5, 11, 17]);
    assert!(
        c.layer_attention.iter().all(|a| matches!(a, LayerAttention::Global | LayerAttention::Sliding { window: 512 }))
    );
    assert_eq!(hf["sliding_window"], 512);
    assert!(c.tie_word_embeddings && c.qk_norm && c.sandwich_norms && c.norm_unit_offset);
    assert_eq!(c.hidden_act, Activation::GeluTanh);
    assert_eq!(c.num_parameters(), 268_098_176);
}
