//! The GReaTer gradient case of the golden data: three losses, both one-hot gradients and the
//! ranking of the candidates, against HF transformers in float32.

use std::path::PathBuf;

use greater_grad::{GradExample, GradOptions, TrainSequence, token_gradients};
use greater_models::model::LoadedModel;

fn required() -> bool {
    std::env::var("GREATER_REQUIRE_MODELS").is_ok_and(|v| v == "1")
}

fn locate(name: &str) -> Option<(PathBuf, PathBuf)> {
    let cache = std::env::var_os("GREATER_CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("greater")))?;
    let model = cache.join("models").join(format!("{name}.gguf"));
    let golden = std::env::var_os("GREATER_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden"))
        .join(name);
    if model.exists() && golden.exists() {
        return Some((model, golden));
    }
    let optional = name != "smollm2-135m-instruct"
        && !std::env::var("GREATER_MODELS").is_ok_and(|v| v.split(',').any(|m| m.trim() == name));
    assert!(optional || !required(), "{} or {} missing (GREATER_REQUIRE_MODELS=1)", model.display(), golden.display());
    eprintln!("note: {name} model or golden data missing; skipping");
    None
}

fn check(name: &str) {
    let Some((model_path, golden)) = locate(name) else { return };
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden.join("gradient.json")).unwrap()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
    };
    let f = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    };
    let all = ids(&g["ids"]);
    let slice = |k: &str| -> (usize, usize) {
        let s = &g["slices"][k];
        (s[0].as_u64().unwrap() as usize, s[1].as_u64().unwrap() as usize)
    };
    let (c0, c1) = slice("control");
    let (r0, r1) = slice("reasoning");
    let (e0, e1) = slice("extractor");
    let (a0, a1) = slice("answer");
    assert_eq!(a1, all.len());
    let seq = TrainSequence::join([&all[..c0], &all[c0..c1], &all[c1..r0], &all[r0..r1], &all[e0..e1], &all[a0..a1]]);
    assert_eq!(seq.ids, all, "the golden slices tile the sequence");
    let candidates = ids(&g["candidates"]);
    let p = g["p"].as_u64().unwrap() as usize;
    let loaded = LoadedModel::load(&model_path, &greater_models::default_device()).unwrap();
    let ex = [GradExample { seq: &seq, position: p }];
    let total = token_gradients(&loaded.model, &ex, &candidates, &GradOptions::default()).unwrap();
    let e = &total.examples[0];
    let near = |what: &str, got: f32, want: f64| {
        let tol = 2e-4f64.max(1e-5 * want.abs()) * 2.0;
        assert!((got as f64 - want).abs() <= tol, "{name} {what}: {got} vs {want}");
    };
    eprintln!(
        "{name}: loss_answer {} (golden {}), loss_control {} (golden {}), loss_total {} (golden {})",
        e.loss_answer, g["loss_answer"], e.loss_control, g["loss_control"], e.loss_total, g["loss_total"]
    );
    near("loss_answer", e.loss_answer, g["loss_answer"].as_f64().unwrap());
    near("loss_control", e.loss_control, g["loss_control"].as_f64().unwrap());
    near("loss_total", e.loss_total, g["loss_total"].as_f64().unwrap());
    let compare = |what: &str, got: &[f32], want: &[f32]| {
        let max_abs = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let norm = want.iter().map(|x| x * x).sum::<f32>().sqrt();
        let rel = got.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt() / norm.max(1e-12);
        eprintln!("{name} {what}: max |diff| {max_abs:.3e}, rel L2 {rel:.3e}");
        assert!(
            max_abs <= 1e-4 || rel <= 2e-4,
            "{name} {what}: max |diff| {max_abs:e}, rel L2 {rel:e}\n got {got:?}\nwant {want:?}"
        );
    };
    compare("grad_total_onehot", &e.grad_total, &f(&g["grad_total_onehot"]));
    // The answer-only gradient: the same pass with the prompt-NLL weight at zero.
    let answer_only = GradOptions { control_weight: 0.0, ..GradOptions::default() };
    let ans = token_gradients(&loaded.model, &ex, &candidates, &answer_only).unwrap();
    compare("grad_answer_onehot", &ans.examples[0].grad_total, &f(&g["grad_answer_onehot"]));
    // The official selection takes the top 3 of −grad.
    let top3: Vec<u32> = total.ranking().iter().take(3).map(|&i| candidates[i]).collect();
    let mut want = ids(&g["top3_candidates_by_neg_grad_total"]);
    let mut got = top3.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{name}: top-3 candidates by −gradient");
}

#[test]
fn smollm2_gradient_matches_golden() {
    check("smollm2-135m-instruct");
}

#[test]
fn qwen_gradient_matches_golden() {
    check("qwen2.5-coder-0.5b-instruct");
}

#[test]
fn gemma3_gradient_matches_golden() {
    check("gemma3-270m");
}
