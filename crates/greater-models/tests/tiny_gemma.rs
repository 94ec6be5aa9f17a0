//! Tiny random Gemma 2 and Gemma 3: cached decoding, padding and batching agree with one full
//! forward, and the whole model (sliding window included) matches a plain-loop reference.

use burn::tensor::{Int, Tensor, TensorData};
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::cache::KvCache;
use greater_models::config::{Family, LayerAttention, ModelConfig};
use greater_models::generate::{GenerateOptions, generate};
use greater_models::layers::download;
use greater_models::loading::WeightSource;
use greater_models::loading::memory::MemoryWeights;

/// The sliding window of the tiny models: short enough that ten tokens leave it.
const WINDOW: usize = 3;

/// `ModelConfig::tiny` (2 layers, hidden 32, vocab 64, grouped query heads, layer 0 sliding,
/// layer 1 global) made stricter: head_dim 16 ≠ hidden / heads, `query_pre_attn_scalar` ≠
/// head_dim, a window of 3, RoPE bases small enough to turn far within ten tokens (and distinct
/// for Gemma 3), and Gemma 2 soft-caps small enough to bite, so mixing up any of them changes
/// the logits.
fn tiny_config(family: Family) -> ModelConfig {
    let gemma2 = family == Family::Gemma2;
    let mut c = ModelConfig::tiny(family);
    c.head_dim = 16;
    c.query_pre_attn_scalar = 12.0;
    c.layer_attention = vec![LayerAttention::Sliding { window: WINDOW }, LayerAttention::Global];
    c.rope_theta = if gemma2 { 100.0 } else { 1000.0 };
    c.rope_local_theta = if gemma2 { 100.0 } else { 10.0 };
    if gemma2 {
        c.attn_logit_softcapping = 2.0;
        c.final_logit_softcapping = 1.5;
    }
    c.validate("<tiny gemma>").unwrap();
    c
}

fn tiny(family: Family) -> (ModelConfig, MemoryWeights, AnyModel) {
    let config = tiny_config(family);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 11, 0.3, true);
    let model = AnyModel::load(&config, &weights, &greater_models::default_device()).unwrap();
    (config, weights, model)
}

fn ids_tensor(model: &AnyModel, ids: &[u32]) -> Tensor<2, Int> {
    let data: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [1, ids.len()]), model.device())
}

fn full_logits(model: &AnyModel, ids: &[u32]) -> Vec<f32> {
    download(model.forward_embeds(model.embed(ids_tensor(model, ids)), None, &mut KvCache::uncached(1)))
}

/// The largest `|a - b|`, with its index.
fn max_diff(a: &[f32], b: &[f32]) -> (usize, f32) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .enumerate()
        .fold((0, 0.0f32), |m, (i, d)| if d > m.1 || d.is_nan() { (i, d) } else { m })
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    greater_testkit::assert_close_f32("logits", a, b, tol);
}

const IDS: [u32; 10] = [3, 17, 42, 5, 9, 61, 2, 33, 8, 50];

#[test]
fn cached_decoding_equals_full_forward() {
    for family in [Family::Gemma2, Family::Gemma3] {
        let (config, _, model) = tiny(family);
        let full = full_logits(&model, &IDS);
        let mut cache = KvCache::new(1, 16);
        // Prefill 4 tokens, then decode the rest one by one (past the window of 3).
        let mut got = download(model.forward_embeds(model.embed(ids_tensor(&model, &IDS[..4])), None, &mut cache));
        for &t in &IDS[4..] {
            got.extend(download(model.forward_embeds(model.embed(ids_tensor(&model, &[t])), None, &mut cache)));
        }
        assert_eq!(got.len(), IDS.len() * config.vocab_size);
        assert_close(&got, &full, 1e-4);
    }
}

#[test]
fn left_padded_batch_equals_single_runs() {
    for family in [Family::Gemma2, Family::Gemma3] {
        let (_, _, model) = tiny(family);
        let prompts = vec![vec![5u32, 6, 7, 8, 9], vec![11u32, 12], vec![1u32, 2, 3]];
        let opts = GenerateOptions { max_new_tokens: 6, stop_ids: vec![] };
        let batched = generate(&model, &prompts, &opts, |_, _| {}).unwrap();
        for (p, g) in prompts.iter().zip(&batched) {
            let single = generate(&model, std::slice::from_ref(p), &opts, |_, _| {}).unwrap();
            assert_eq!(single[0], *g, "{family:?} prompt {p:?}");
            assert_eq!(g.ids.len(), 6);
        }
    }
}

#[test]
fn matches_plain_loop_reference_past_the_window() {
    for family in [Family::Gemma2, Family::Gemma3] {
        let (config, weights, model) = tiny(family);
        let got = full_logits(&model, &IDS);
        let want = reference_logits(&config, &weights, &IDS, true);
        assert_close(&got, &want, 2e-4);
        // The check can see the window: without it the later positions change well beyond the
        // tolerance, while the first WINDOW positions (which see every key anyway) do not.
        let unwindowed = reference_logits(&config, &weights, &IDS, false);
        let v = config.vocab_size;
        assert_close(&want[..WINDOW * v], &unwindowed[..WINDOW * v], 1e-6);
        let (_, d) = max_diff(&want[WINDOW * v..], &unwindowed[WINDOW * v..]);
        assert!(d > 1e-2, "{family:?}: window changes logits by only {d}");
    }
}

#[test]
fn missing_qk_norm_is_named() {
    let config = tiny_config(Family::Gemma3);
    let mut w = MemoryWeights::random(&AnyModel::expected_tensors(&config), 1, 0.3, true);
    w.remove("model.layers.1.self_attn.k_norm.weight");
    let err = AnyModel::load(&config, &w, &greater_models::default_device()).unwrap_err().to_string();
    assert!(err.contains("model.layers.1.self_attn.k_norm.weight"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// An independent reference: plain loops over the host weights, one token at a time, following
// transformers' Gemma2/Gemma3 modelling code literally (no shared layer code).

fn reference_logits(c: &ModelConfig, w: &MemoryWeights, ids: &[u32], use_window: bool) -> Vec<f32> {
    let get = |name: &str| w.tensor(name).unwrap().data;
    let (h, d, nh, nkv) = (c.hidden_size, c.head_dim, c.num_attention_heads, c.num_key_value_heads);
    let n = ids.len();
    let embed = get("model.embed_tokens.weight");
    let mut x: Vec<Vec<f32>> = ids
        .iter()
        .map(|&t| embed[t as usize * h..(t as usize + 1) * h].iter().map(|e| e * c.embed_scale).collect())
        .collect();
    for (l, kind) in c.layer_attention.iter().enumerate() {
        let p = |s: &str| get(&format!("model.layers.{l}.{s}.weight"));
        let (window, theta) = match kind {
            LayerAttention::Global => (None, c.rope_theta),
            LayerAttention::Sliding { window } => (use_window.then_some(*window), c.rope_local_theta),
        };
        let (wq, wk, wv, wo) =
            (p("self_attn.q_proj"), p("self_attn.k_proj"), p("self_attn.v_proj"), p("self_attn.o_proj"));
        // q, k (normed per head, then rotated) and v of every position, per head.
        let mut q = vec![vec![vec![0.0f32; d]; nh]; n];
        let mut k = vec![vec![vec![0.0f32; d]; nkv]; n];
        let mut v = vec![vec![vec![0.0f32; d]; nkv]; n];
        for t in 0..n {
            let xn = rms_norm(&x[t], &p("input_layernorm"), c.rms_norm_eps);
            let (qt, kt, vt) = (matvec(&wq, &xn), matvec(&wk, &xn), matvec(&wv, &xn));
            for hh in 0..nh {
                let mut head = qt[hh * d..(hh + 1) * d].to_vec();
                if c.qk_norm {
                    head = rms_norm(&head, &p("self_attn.q_norm"), c.rms_norm_eps);
                }
                q[t][hh] = rope(&head, t, theta);
            }
            for hh in 0..nkv {
                let mut head = kt[hh * d..(hh + 1) * d].to_vec();
                if c.qk_norm {
                    head = rms_norm(&head, &p("self_attn.k_norm"), c.rms_norm_eps);
                }
                k[t][hh] = rope(&head, t, theta);
                v[t][hh] = vt[hh * d..(hh + 1) * d].to_vec();
            }
        }
        let scale = 1.0 / c.query_pre_attn_scalar.sqrt();
        let group = nh / nkv;
        for t in 0..n {
            // Banded causal mask: key j is visible when j <= t and t - j < window.
            let visible: Vec<usize> = (0..=t).filter(|&j| window.is_none_or(|win| t - j < win)).collect();
            let mut attn = vec![0.0f32; nh * d];
            for hh in 0..nh {
                let kv = hh / group;
                let scores: Vec<f32> = visible
                    .iter()
                    .map(|&j| {
                        let s = dot(&q[t][hh], &k[j][kv]) * scale;
                        let cap = c.attn_logit_softcapping;
                        if cap > 0.0 { (s / cap).tanh() * cap } else { s }
                    })
                    .collect();
                let probs = softmax(&scores);
                for (&j, pr) in visible.iter().zip(&probs) {
                    for e in 0..d {
                        attn[hh * d + e] += pr * v[j][kv][e];
                    }
                }
            }
            let o = rms_norm(&matvec(&wo, &attn), &p("post_attention_layernorm"), c.rms_norm_eps);
            let mut xt: Vec<f32> = x[t].iter().zip(&o).map(|(a, b)| a + b).collect();
            let xn = rms_norm(&xt, &p("pre_feedforward_layernorm"), c.rms_norm_eps);
            let (g, u) = (matvec(&p("mlp.gate_proj"), &xn), matvec(&p("mlp.up_proj"), &xn));
            let hidden: Vec<f32> = g.iter().zip(&u).map(|(g, u)| gelu_tanh(*g) * u).collect();
            let m = rms_norm(&matvec(&p("mlp.down_proj"), &hidden), &p("post_feedforward_layernorm"), c.rms_norm_eps);
            xt.iter_mut().zip(&m).for_each(|(a, b)| *a += b);
            x[t] = xt;
        }
    }
    let norm = get("model.norm.weight");
    let mut logits = Vec::with_capacity(n * c.vocab_size);
    for xt in &x {
        let hn = rms_norm(xt, &norm, c.rms_norm_eps);
        // Tied head: the unscaled embedding matrix, `[vocab, hidden]`, is the output projection.
        for z in matvec(&embed, &hn) {
            let cap = c.final_logit_softcapping;
            logits.push(if cap > 0.0 { (z / cap).tanh() * cap } else { z });
        }
    }
    logits
}

/// Gemma RMSNorm: `x / sqrt(mean(x²) + eps) · (1 + w)`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, g)| v * r * (1.0 + g)).collect()
}

/// `W x` with `W` in PyTorch layout `[out, in]`.
fn matvec(w: &[f32], x: &[f32]) -> Vec<f32> {
    w.chunks(x.len()).map(|row| dot(row, x)).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rotate-half RoPE: dimension `i` pairs with `i + d/2`, angle `pos / theta^(2i/d)`.
fn rope(x: &[f32], pos: usize, theta: f32) -> Vec<f32> {
    let half = x.len() / 2;
    let mut out = x.to_vec();
    for i in 0..half {
        let a = pos as f32 / theta.powf(2.0 * i as f32 / x.len() as f32);
        let (c, s) = (a.cos(), a.sin());
        out[i] = x[i] * c - x[i + half] * s;
        out[i + half] = x[i + half] * c + x[i] * s;
    }
    out
}

fn softmax(s: &[f32]) -> Vec<f32> {
    let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = s.iter().map(|v| (v - m).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

/// `gelu_pytorch_tanh`: `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`.
fn gelu_tanh(x: f32) -> f32 {
    let k = (2.0 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
}
