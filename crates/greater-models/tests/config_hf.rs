//! `ModelConfig::from_hf_config` with transformers' defaults, `validate`, `tiny` and
//! `num_parameters`.

use greater_models::LoadError;
use greater_models::config::{Activation, Family, LayerAttention, Llama3RopeScaling, ModelConfig, RopeScaling};
use serde_json::json;

/// Writes `value` as `config.json` in a fresh folder and reads it back (through the folder).
fn parse(value: serde_json::Value) -> Result<ModelConfig, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), value.to_string()).unwrap();
    ModelConfig::from_hf_config(dir.path())
}

fn sliding(w: usize) -> LayerAttention {
    LayerAttention::Sliding { window: w }
}

const G: LayerAttention = LayerAttention::Global;

#[test]
fn smollm2_style_llama_config() {
    let c = parse(json!({
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
        "tie_word_embeddings": true, "hidden_act": "silu", "rope_scaling": null
    }))
    .unwrap();
    assert_eq!(c.family, Family::Llama);
    assert_eq!(c.head_dim, 64, "576 / 9");
    assert_eq!((c.rope_theta, c.rope_local_theta, c.rope_scaling), (100_000.0, 100_000.0, RopeScaling::None));
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert!(c.tie_word_embeddings && !c.attention_bias);
    assert_eq!(c.layer_attention, vec![G; 30]);
    assert_eq!(c.query_pre_attn_scalar, 64.0);
}

#[test]
fn llama_defaults_and_llama3_scaling() {
    let c = parse(json!({
        "model_type": "llama", "hidden_size": 2048, "num_attention_heads": 32, "num_key_value_heads": 8,
        "num_hidden_layers": 16, "intermediate_size": 8192, "vocab_size": 128256, "head_dim": 64,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    }))
    .unwrap();
    assert_eq!(
        c.rope_scaling,
        RopeScaling::Llama3(Llama3RopeScaling {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192
        })
    );
    // Defaults of LlamaConfig: untied, eps 1e-6, 2048 positions.
    assert!(!c.tie_word_embeddings);
    assert_eq!((c.rms_norm_eps, c.max_position_embeddings), (1e-6, 2048));

    let linear = parse(json!({"model_type": "llama", "rope_scaling": {"type": "linear", "factor": 2.0}})).unwrap();
    assert_eq!(linear.rope_scaling, RopeScaling::Linear { factor: 2.0 });
    // Everything else from LlamaConfig.
    assert_eq!(
        (linear.vocab_size, linear.hidden_size, linear.num_key_value_heads, linear.head_dim),
        (32000, 4096, 32, 128)
    );

    let err =
        parse(json!({"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})).unwrap_err();
    match err {
        LoadError::MissingFields { fields, .. } => assert_eq!(
            fields,
            [
                "rope_scaling.low_freq_factor",
                "rope_scaling.high_freq_factor",
                "rope_scaling.original_max_position_embeddings"
            ]
        ),
        other => panic!("unexpected {other:?}"),
    }
    let err = parse(json!({"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})).unwrap_err();
    assert!(matches!(&err, LoadError::BadField { field, .. } if field == "rope_scaling.rope_type"), "{err}");
}

#[test]
fn transformers5_rope_parameters() {
    let c = parse(json!({
        "model_type": "llama", "num_hidden_layers": 2,
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}
    }))
    .unwrap();
    assert_eq!((c.rope_theta, c.rope_scaling), (100_000.0, RopeScaling::None));
}

#[test]
fn mistral_slides_on_every_layer_unless_null() {
    let c = parse(json!({"model_type": "mistral", "num_hidden_layers": 3})).unwrap();
    assert_eq!(c.family, Family::Llama);
    assert_eq!(c.layer_attention, [sliding(4096); 3], "MistralConfig's default window");
    assert_eq!((c.num_key_value_heads, c.intermediate_size), (8, 14336));
    let c = parse(json!({"model_type": "mistral", "num_hidden_layers": 3, "sliding_window": null})).unwrap();
    assert_eq!(c.layer_attention, [G; 3]);
}

#[test]
fn qwen2_biases_and_optional_sliding() {
    let c = parse(json!({
        "model_type": "qwen2", "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
        "num_hidden_layers": 4, "sliding_window": 32768, "use_sliding_window": false,
        "max_window_layers": 2, "rope_theta": 1000000.0, "tie_word_embeddings": true
    }))
    .unwrap();
    assert_eq!(c.family, Family::Qwen2);
    assert!(c.attention_bias && c.tie_word_embeddings);
    assert_eq!((c.head_dim, c.rope_theta), (64, 1_000_000.0));
    assert_eq!(c.layer_attention, [G; 4]);
    let c = parse(json!({
        "model_type": "qwen2", "num_hidden_layers": 4, "sliding_window": 16, "use_sliding_window": true,
        "max_window_layers": 2
    }))
    .unwrap();
    assert_eq!(c.layer_attention, [G, G, sliding(16), sliding(16)]);
    assert_eq!(c.vocab_size, 151_936);
}

#[test]
fn gemma2_defaults() {
    let c = parse(json!({"model_type": "gemma2", "num_hidden_layers": 4})).unwrap();
    assert_eq!(c.family, Family::Gemma2);
    assert_eq!(c.layer_attention, [sliding(4096), G, sliding(4096), G]);
    assert_eq!((c.attn_logit_softcapping, c.final_logit_softcapping), (50.0, 30.0));
    assert_eq!(c.query_pre_attn_scalar, 256.0);
    assert_eq!((c.vocab_size, c.hidden_size, c.head_dim, c.num_key_value_heads), (256_000, 2304, 256, 4));
    assert_eq!(c.embed_scale, 48.0, "sqrt(2304)");
    assert!(c.tie_word_embeddings && c.sandwich_norms && c.norm_unit_offset && !c.qk_norm);
    assert_eq!(c.hidden_act, Activation::GeluTanh);
    // An explicit null switches soft-capping off.
    let c = parse(json!({"model_type": "gemma2", "num_hidden_layers": 2, "attn_logit_softcapping": null,
                         "final_logit_softcapping": 15.0}))
    .unwrap();
    assert_eq!((c.attn_logit_softcapping, c.final_logit_softcapping), (0.0, 15.0));
}

#[test]
fn gemma3_multimodal_config_takes_text_defaults() {
    // The shape of google/gemma-3-4b-it's config.json: the text config omits most fields.
    let c = parse(json!({
        "model_type": "gemma3",
        "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
                        "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                        "sliding_window": 1024},
        "vision_config": {"hidden_size": 1152}
    }))
    .unwrap();
    assert_eq!(c.family, Family::Gemma3);
    assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.head_dim), (8, 4, 256));
    assert_eq!(c.vocab_size, 262_208);
    assert_eq!((c.rope_theta, c.rope_local_theta), (1_000_000.0, 10_000.0));
    assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 8.0 });
    let global: Vec<usize> = (0..34).filter(|&i| c.layer_attention[i] == G).collect();
    assert_eq!(global, [5, 11, 17, 23, 29]);
    assert_eq!(c.layer_attention[0], sliding(1024));
    assert!(c.tie_word_embeddings && c.qk_norm);
    assert_eq!((c.attn_logit_softcapping, c.final_logit_softcapping), (0.0, 0.0));
}

#[test]
fn gemma3_text_layer_types_and_per_type_rope() {
    let c = parse(json!({
        "model_type": "gemma3_text", "num_hidden_layers": 3, "sliding_window": 512,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
        "rope_parameters": {"full_attention": {"rope_theta": 2000000.0, "rope_type": "default"},
                            "sliding_attention": {"rope_theta": 5000.0, "rope_type": "default"}}
    }))
    .unwrap();
    assert_eq!(c.layer_attention, [sliding(512), G, sliding(512)]);
    assert_eq!((c.rope_theta, c.rope_local_theta), (2_000_000.0, 5_000.0));
    // transformers 4: `sliding_window_pattern` and `rope_local_base_freq`.
    let c = parse(json!({"model_type": "gemma3_text", "num_hidden_layers": 4, "sliding_window": 8,
                         "sliding_window_pattern": 2, "rope_local_base_freq": 20000.0}))
    .unwrap();
    assert_eq!(c.layer_attention, [sliding(8), G, sliding(8), G]);
    assert_eq!(c.rope_local_theta, 20_000.0);
}

#[test]
fn unsupported_and_malformed_configs_are_named() {
    for ty in ["gemma3n", "gemma", "phi3"] {
        match parse(json!({"model_type": ty})).unwrap_err() {
            LoadError::UnsupportedArchitecture { arch, supported, path } => {
                assert_eq!(arch, ty);
                assert!(supported.contains("gemma3_text"), "{supported}");
                assert!(path.ends_with("config.json"));
            }
            other => panic!("{ty}: unexpected {other:?}"),
        }
    }
    assert!(matches!(parse(json!({"hidden_size": 8})).unwrap_err(),
        LoadError::MissingFields { fields, .. } if fields == ["model_type"]));
    let err = parse(json!({"model_type": "llama", "hidden_size": "big"})).unwrap_err();
    assert!(matches!(&err, LoadError::BadField { field, .. } if field == "hidden_size"), "{err}");
    let err = parse(json!({"model_type": "gemma3", "text_config": {"num_attention_heads": 1.5}})).unwrap_err();
    assert!(matches!(&err, LoadError::BadField { field, .. } if field == "text_config.num_attention_heads"), "{err}");
    let err =
        parse(json!({"model_type": "llama", "num_hidden_layers": 2, "layer_types": ["full_attention"]})).unwrap_err();
    assert!(matches!(&err, LoadError::BadField { field, .. } if field == "layer_types"), "{err}");
    let err = parse(json!({"model_type": "llama", "hidden_act": "relu"})).unwrap_err();
    assert!(matches!(&err, LoadError::BadField { field, .. } if field == "hidden_act"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(ModelConfig::from_hf_config(dir.path()).unwrap_err(), LoadError::Io { .. }));
}

#[test]
fn validate_rejects_impossible_configs() {
    let field_of = |c: &ModelConfig| match c.validate("x.json").unwrap_err() {
        LoadError::BadField { field, path, .. } => {
            assert_eq!(path.to_str(), Some("x.json"));
            field
        }
        other => panic!("unexpected {other:?}"),
    };
    let mut c = ModelConfig::tiny(Family::Llama);
    c.num_key_value_heads = 3;
    assert_eq!(field_of(&c), "num_key_value_heads");
    let mut c = ModelConfig::tiny(Family::Llama);
    c.layer_attention.pop();
    assert_eq!(field_of(&c), "layer_attention");
    let mut c = ModelConfig::tiny(Family::Gemma3);
    c.layer_attention[0] = sliding(0);
    assert_eq!(field_of(&c), "layer_attention");
    let mut c = ModelConfig::tiny(Family::Qwen2);
    c.vocab_size = 0;
    assert_eq!(field_of(&c), "vocab_size");
    let mut c = ModelConfig::tiny(Family::Llama);
    c.head_dim = 7;
    assert_eq!(field_of(&c), "head_dim");
    let mut c = ModelConfig::tiny(Family::Llama);
    c.rms_norm_eps = f32::NAN;
    assert_eq!(field_of(&c), "rms_norm_eps");
    let mut c = ModelConfig::tiny(Family::Gemma2);
    c.final_logit_softcapping = -1.0;
    assert_eq!(field_of(&c), "final_logit_softcapping");
    let mut c = ModelConfig::tiny(Family::Llama);
    c.rope_scaling = RopeScaling::Llama3(Llama3RopeScaling {
        factor: 8.0,
        low_freq_factor: 4.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    });
    assert_eq!(field_of(&c), "rope_scaling.high_freq_factor");
}

#[test]
fn tiny_configs_are_valid_and_keep_family_features() {
    for family in [Family::Llama, Family::Qwen2, Family::Gemma2, Family::Gemma3] {
        let c = ModelConfig::tiny(family);
        c.validate("tiny").unwrap();
        assert_eq!(c.family, family);
        assert_eq!((c.num_hidden_layers, c.hidden_size, c.vocab_size), (2, 32, 64));
        assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size), (4, 2, 8, 64));
    }
    let g3 = ModelConfig::tiny(Family::Gemma3);
    assert_eq!(g3.layer_attention, [sliding(4), G]);
    assert_ne!(g3.rope_theta, g3.rope_local_theta);
    assert_eq!(g3.embed_scale, 32f32.sqrt());
    let g2 = ModelConfig::tiny(Family::Gemma2);
    assert_eq!(g2.layer_attention, [sliding(4), G]);
    assert!(g2.attn_logit_softcapping > 0.0 && g2.final_logit_softcapping > 0.0);
    assert!(ModelConfig::tiny(Family::Qwen2).attention_bias);
}

#[test]
fn parameter_counts_by_hand() {
    // Per layer: q 32·32 + k,v 2·32·16 + o 32·32 = 3072; MLP 3·32·64 = 6144; two norms 64.
    // Embedding 64·32 = 2048, final norm 32, tied head.
    assert_eq!(ModelConfig::tiny(Family::Llama).num_parameters(), 2 * (3072 + 6144 + 64) + 2048 + 32);
    // Qwen2 adds q/k/v biases (32 + 16 + 16) and an untied head (2048).
    assert_eq!(ModelConfig::tiny(Family::Qwen2).num_parameters(), 2 * (3072 + 64 + 6144 + 64) + 2048 + 32 + 2048);
    // Gemma 3: four norms (128) and q/k norms (2·8) per layer.
    assert_eq!(ModelConfig::tiny(Family::Gemma3).num_parameters(), 2 * (3072 + 6144 + 128 + 16) + 2048 + 32);
}
