//! Real-model parity: logits and greedy generations against the golden HF float32 run.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::CausalLm;
use greater_models::cache::KvCache;
use greater_models::generate::{GenerateOptions, generate};
use greater_models::layers::download;
use greater_models::model::LoadedModel;

fn check_forward(name: &str) {
    let (Some(path), Some(golden)) = (common::model_path(name), common::golden_dir(name)) else { return };
    let loaded = LoadedModel::load(&path, &greater_models::default_device()).unwrap();
    let model = &loaded.model;
    let meta = common::json(golden.join("forward.json"));
    let tensors = common::safetensors(golden.join("forward.safetensors"));
    let v = model.config().vocab_size;
    for (k, prompt) in meta["prompts"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<i64> = prompt["ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        let t = ids.len();
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, t]), model.device());
        let logits = download(model.forward_embeds(model.embed(x), None, &mut KvCache::uncached(1)));
        assert_eq!(logits.len(), t * v);
        let last = &logits[(t - 1) * v..];
        common::assert_close(&format!("{name} p{k} last logits"), last, &tensors[&format!("p{k}.last_logits")].data, 5e-4);
        // Log-sum-exp and top-10 at every position.
        let lse_want = &tensors[&format!("p{k}.logsumexp")].data;
        let top_ids = &tensors[&format!("p{k}.top10_ids")].data;
        let top_vals = &tensors[&format!("p{k}.top10_values")].data;
        let mut lse = Vec::with_capacity(t);
        for pos in 0..t {
            let row = &logits[pos * v..(pos + 1) * v];
            let m = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
            lse.push((m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()) as f32);
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap());
            for j in 0..10 {
                let want_id = top_ids[pos * 10 + j] as usize;
                let want_val = top_vals[pos * 10 + j];
                assert!(
                    (row[want_id] as f64 - want_val).abs() <= 5e-4,
                    "{name} p{k} pos {pos}: logit of top-{j} id {want_id} is {} want {want_val}",
                    row[want_id]
                );
                if order[j] != want_id {
                    // Only a near-tie may swap neighbours.
                    let gap = (row[order[j]] - row[want_id]).abs() as f64;
                    assert!(gap < 5e-4, "{name} p{k} pos {pos}: top-{j} id {} != golden {want_id} (gap {gap})", order[j]);
                }
            }
        }
        common::assert_close(&format!("{name} p{k} logsumexp"), &lse, lse_want, 5e-4);
    }
}

fn check_generate(name: &str) {
    let (Some(path), Some(golden)) = (common::model_path(name), common::golden_dir(name)) else { return };
    let loaded = LoadedModel::load(&path, &greater_models::default_device()).unwrap();
    let meta = common::json(golden.join("generate.json"));
    let gens = meta["generations"].as_array().unwrap();
    let n = meta["new_tokens"].as_u64().unwrap() as usize;
    let to_ids = |v: &serde_json::Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
    let prompts: Vec<Vec<u32>> = gens.iter().map(|g| to_ids(&g["prompt_ids"])).collect();
    // All three prompts in one left-padded batch: padding must not change any choice.
    let got = generate(&loaded.model, &prompts, &GenerateOptions { max_new_tokens: n, stop_ids: vec![] }, |_, _| {}).unwrap();
    for (g, out) in gens.iter().zip(&got) {
        assert_eq!(out.ids, to_ids(&g["generated_ids"]), "{name} prompt {}", g["name"]);
    }
    // With stop ids, generation ends where the golden run says an EOS-stopping decoder would.
    let stop_ids = to_ids(&meta["stop_ids"]);
    let got = generate(&loaded.model, &prompts, &GenerateOptions { max_new_tokens: n, stop_ids }, |_, _| {}).unwrap();
    for (g, out) in gens.iter().zip(&got) {
        let want = to_ids(&g["generated_ids"]);
        match g["first_stop_token_index"].as_u64() {
            Some(i) => assert_eq!(out.ids, want[..i as usize], "{name} prompt {} with stops", g["name"]),
            None => assert_eq!(out.ids, want),
        }
    }
}

#[test]
fn smollm2_logits_match_golden() {
    check_forward("smollm2-135m-instruct");
}

#[test]
fn smollm2_greedy_generation_matches_golden() {
    check_generate("smollm2-135m-instruct");
}

#[test]
fn qwen_logits_and_generation_match_golden() {
    let name = "qwen2.5-coder-0.5b-instruct";
    if !common::model_selected(name) && common::required() {
        // Big model: required only when GREATER_MODELS names it; run anyway when cached.
    }
    if common::model_selected(name) || std::env::var("GREATER_CACHE").is_ok() || dirs::cache_dir().is_some() {
        let cached = dirs_model_exists(name);
        if cached || common::model_selected(name) {
            check_forward(name);
            check_generate(name);
        } else {
            eprintln!("note: {name} not cached and not named in GREATER_MODELS; skipping");
        }
    }
}

fn dirs_model_exists(name: &str) -> bool {
    let cache = std::env::var_os("GREATER_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("greater")));
    cache.is_some_and(|c| c.join("models").join(format!("{name}.gguf")).exists())
}
