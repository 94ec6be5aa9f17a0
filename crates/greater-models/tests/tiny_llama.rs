//! A tiny random Llama: cached decoding, padding and batching agree with one full forward.

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::cache::KvCache;
use greater_models::config::{Family, LayerAttention, ModelConfig};
use greater_models::generate::{GenerateError, GenerateOptions, generate, try_prefill};
use greater_models::layers::download;
use greater_models::loading::memory::MemoryWeights;

fn tiny(family: Family) -> (ModelConfig, AnyModel) {
    let config = ModelConfig::tiny(family);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 7, 0.3, false);
    let model = AnyModel::load(&config, &weights, &greater_models::default_device()).unwrap();
    (config, model)
}

fn full_logits(model: &AnyModel, ids: &[u32]) -> Vec<f32> {
    let device = model.device();
    let t = Tensor::<2, Int>::from_data(
        TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, ids.len()]),
        device,
    );
    download(model.forward_embeds(model.embed(t), None, &mut KvCache::uncached(1)))
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    greater_testkit::assert_close_f32("logits", a, b, tol);
}

#[test]
fn cached_decoding_equals_full_forward() {
    for family in [Family::Llama, Family::Qwen2] {
        let (config, model) = tiny(family);
        let v = config.vocab_size;
        let ids: Vec<u32> = vec![3, 17, 42, 5, 9, 61, 2];
        let full = full_logits(&model, &ids);
        let mut cache = KvCache::new(1, 16);
        let device = model.device();
        let mut got = Vec::new();
        // Prefill 4 tokens, then decode the rest one by one.
        let first = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64, 17, 42, 5], [1, 4]), device);
        got.extend(download(model.forward_embeds(model.embed(first), None, &mut cache)));
        for &t in &ids[4..] {
            let x = Tensor::<2, Int>::from_data(TensorData::new(vec![t as i64], [1, 1]), device);
            got.extend(download(model.forward_embeds(model.embed(x), None, &mut cache)));
        }
        assert_eq!(got.len(), ids.len() * v);
        assert_close(&got, &full, 1e-4);
    }
}

#[test]
fn left_padded_batch_equals_single_runs() {
    let (_, model) = tiny(Family::Llama);
    let prompts = vec![vec![5u32, 6, 7, 8, 9], vec![11u32, 12], vec![1u32, 2, 3]];
    let opts = GenerateOptions { max_new_tokens: 6, stop_ids: vec![] };
    let batched = generate(&model, &prompts, &opts, |_, _| {}).unwrap();
    for (p, g) in prompts.iter().zip(&batched) {
        let single = generate(&model, std::slice::from_ref(p), &opts, |_, _| {}).unwrap();
        assert_eq!(single[0], *g, "prompt {p:?}");
        assert_eq!(g.ids.len(), 6);
    }
}

#[test]
fn generation_stops_per_sequence() {
    let (_, model) = tiny(Family::Llama);
    let prompts = vec![vec![5u32, 6, 7], vec![11u32, 12]];
    let free = generate(&model, &prompts, &GenerateOptions { max_new_tokens: 5, stop_ids: vec![] }, |_, _| {}).unwrap();
    // Make the first row's third token a stop id: that row ends there, the other runs on.
    let stop = free[0].ids[2];
    let opts = GenerateOptions { max_new_tokens: 5, stop_ids: vec![stop] };
    let got = generate(&model, &prompts, &opts, |_, _| {}).unwrap();
    let cut = free[0].ids.iter().position(|&t| t == stop).unwrap();
    assert_eq!(got[0].ids, free[0].ids[..cut]);
    assert_eq!(got[0].stop, Some(stop));
    if !free[1].ids.contains(&stop) {
        assert_eq!(got[1].ids, free[1].ids);
    }
}

#[test]
fn context_overflow_is_an_error() {
    let (config, model) = tiny(Family::Llama);
    let prompt = vec![vec![1u32; config.max_position_embeddings]];
    let err =
        generate(&model, &prompt, &GenerateOptions { max_new_tokens: 1, stop_ids: vec![] }, |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("exceeds the model's context"), "{err}");
}

#[test]
fn prefill_refuses_an_empty_prompt_and_accepts_an_empty_batch() {
    let (config, model) = tiny(Family::Llama);
    let mut cache = KvCache::new(2, 8);
    let err = try_prefill(&model, &[vec![1, 2], vec![]], &mut cache).unwrap_err();
    assert_eq!(err, GenerateError::EmptyPrompt { index: 1 });
    let none = try_prefill(&model, &[], &mut KvCache::new(0, 8)).unwrap();
    assert_eq!(none.dims(), [0, config.vocab_size]);
    let one = try_prefill(&model, &[vec![3, 4, 5]], &mut KvCache::new(1, 8)).unwrap();
    assert_eq!(one.dims(), [1, config.vocab_size]);
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let config = ModelConfig::tiny(Family::Llama);
    let expected = AnyModel::expected_tensors(&config);
    let mut w = MemoryWeights::random(&expected, 1, 0.3, false);
    w.remove("model.layers.1.mlp.up_proj.weight");
    let err = AnyModel::load(&config, &w, &greater_models::default_device()).unwrap_err().to_string();
    assert!(err.contains("model.layers.1.mlp.up_proj.weight"), "{err}");
    let mut w = MemoryWeights::random(&expected, 1, 0.3, false);
    let mut t = w.remove("model.norm.weight").unwrap();
    t.shape = vec![t.data.len() - 1];
    t.data.pop();
    w.insert("model.norm.weight", t);
    let err = AnyModel::load(&config, &w, &greater_models::default_device()).unwrap_err().to_string();
    assert!(err.contains("model.norm.weight") && err.contains("expected"), "{err}");
}

/// A Qwen2 `config.json` asking for sliding attention from layer 1 on (`use_sliding_window`,
/// `max_window_layers = 1`, a window of 2) must give a model whose layer 0 attends globally and
/// whose layer 1 slides: different from both an all-global and an all-sliding model once the
/// sequence is longer than the window, and equal to both inside it.
#[test]
fn qwen2_per_layer_sliding_pattern_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{"model_type": "qwen2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
        "sliding_window": 2, "use_sliding_window": true, "max_window_layers": 1}"#;
    std::fs::write(dir.path().join("config.json"), json).unwrap();
    let config = ModelConfig::from_hf_config(dir.path()).unwrap();
    let sliding = LayerAttention::Sliding { window: 2 };
    assert_eq!(config.layer_attention, [LayerAttention::Global, sliding]);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 7, 0.3, false);
    let device = greater_models::default_device();
    let logits_with = |layers: [LayerAttention; 2]| {
        let mut c = config.clone();
        c.layer_attention = layers.to_vec();
        full_logits(&AnyModel::load(&c, &weights, &device).unwrap(), &[3, 17, 42, 5, 9, 61])
    };
    let mixed = logits_with([LayerAttention::Global, sliding]);
    let global = logits_with([LayerAttention::Global; 2]);
    let all_sliding = logits_with([sliding; 2]);
    let v = config.vocab_size;
    // Positions 0 and 1 see at most 2 keys: the window cannot bite there.
    assert_close(&mixed[..2 * v], &global[..2 * v], 1e-5);
    assert_close(&mixed[..2 * v], &all_sliding[..2 * v], 1e-5);
    let differs = |a: &[f32], b: &[f32]| a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-4);
    assert!(differs(&mixed[2 * v..], &global[2 * v..]), "layer 1's window was ignored");
    assert!(differs(&mixed[2 * v..], &all_sliding[2 * v..]), "layer 0 must attend globally");
}

#[test]
fn load_validates_the_config() {
    let mut config = ModelConfig::tiny(Family::Llama);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 7, 0.3, false);
    // 4 query heads cannot share 3 key/value heads; `load` must say so instead of panicking later.
    config.num_key_value_heads = 3;
    let err = AnyModel::load(&config, &weights, &greater_models::default_device()).unwrap_err().to_string();
    assert!(err.contains("num_key_value_heads") && err.contains("random weights"), "{err}");
}
