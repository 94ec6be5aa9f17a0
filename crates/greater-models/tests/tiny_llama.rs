//! A tiny random Llama: cached decoding, padding and batching agree with one full forward.

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::cache::KvCache;
use greater_models::config::{Family, ModelConfig};
use greater_models::generate::{GenerateOptions, generate};
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
    assert_eq!(a.len(), b.len());
    let (i, d) = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .enumerate()
        .fold((0, 0.0f32), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    assert!(d <= tol, "max diff {d} at {i}: {} vs {}", a[i], b[i]);
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
