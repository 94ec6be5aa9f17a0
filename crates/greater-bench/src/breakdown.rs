//! Where the time of one decode step goes.
//!
//! The model's layers are private to `greater-models`, so one decoder layer is rebuilt here from
//! the public building blocks (`Linear`, `RmsNorm`, `Attention`, `GatedMlp`, `Rope`, `mask`,
//! `KvCache`) with random weights in the model's shapes: for timing only the shapes matter. Each
//! part is timed alone (median of `reps`) and multiplied by how often a step runs it; the sum is
//! set against a measured full step of the real model at the same batch and cache length.
//!
//! The attention core (scores, mask, softmax, weighted values) is not re-implemented here: it is
//! the time of the layer's own `Attention::forward` less its separately timed parts
//! (projections, head norms, RoPE, cache update), so the figure follows the real code.
//!
//! A few *experiments* time an alternative to a part next to the current code, as evidence for
//! changes in `greater-models`.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::activation::{gelu_approximate, silu};
use burn::tensor::{Device, Distribution, FloatDType, Int, Tensor, TensorData};
use greater_models::KvCache;
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::config::{Activation, LayerAttention, ModelConfig};
use greater_models::generate::{argmax_rows, try_prefill};
use greater_models::layers::attention::Attention;
use greater_models::layers::linear::Linear;
use greater_models::layers::mask;
use greater_models::layers::mlp::GatedMlp;
use greater_models::layers::rms_norm::RmsNorm;
use greater_models::layers::rope::Rope;
use greater_models::loading::HostTensor;
use greater_models::rng::SplitMix64;

use crate::machine;

/// One part of a decode step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Part {
    /// What it is.
    pub name: &'static str,
    /// How many times one step runs it.
    pub calls_per_step: usize,
    /// Median microseconds of one call.
    pub per_call_us: f64,
    /// `calls_per_step · per_call_us`, in milliseconds.
    pub per_step_ms: f64,
}

/// An alternative implementation of a part, timed next to the current one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Experiment {
    /// What changes.
    pub name: &'static str,
    /// Microseconds of one call of the current code.
    pub current_us: f64,
    /// Microseconds of one call of the alternative.
    pub alternative_us: f64,
    /// Calls per step.
    pub calls_per_step: usize,
    /// What a step would save, milliseconds.
    pub saving_ms: f64,
}

/// The parts of one decode step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Breakdown {
    /// Rows decoded together.
    pub batch: usize,
    /// Tokens already in the cache.
    pub cached: usize,
    /// Median milliseconds of a real step (`forward_hidden`, `lm_head`, argmax) of the model.
    pub step_ms: f64,
    /// Sum of the parts, milliseconds.
    pub parts_ms: f64,
    /// Every part, largest first.
    pub parts: Vec<Part>,
    /// Weight bytes the layer matmuls stream per second at this batch (GB/s): compare with
    /// the memory bandwidth to see whether they are bandwidth- or compute-bound.
    pub layer_matmul_gbps: f64,
    /// Alternatives, timed.
    pub experiments: Vec<Experiment>,
}

/// Time one decode step of `model` at `batch` rows with `cached` tokens in a cache of
/// `capacity` slots, part by part, each part the median of `reps` calls.
pub fn decode_step(model: &AnyModel, batch: usize, cached: usize, capacity: usize, reps: usize) -> Breakdown {
    let c = model.config().clone();
    let dev = model.device().clone();
    let b = batch;
    let (h, nh, nkv, d) = (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
    let (layers, vocab) = (c.num_hidden_layers, c.vocab_size);
    let time = |f: &mut dyn FnMut()| -> f64 {
        machine::median_s(&machine::time_runs(2, reps, || {
            f();
            dev.sync().expect("device sync");
        }))
    };
    let mut w = Weights { rng: SplitMix64(7), device: dev.clone() };
    // The real step streams every layer's weights from memory; one layer timed over and over
    // would sit in the last-level cache. Rotating through enough layers to exceed it keeps the
    // matmul timings honest.
    let rotation = (COLD_BYTES / layer_weight_bytes(&c)).clamp(1, 16) + 1;
    let stack: Vec<Layer> = (0..rotation).map(|_| w.layer(&c)).collect();
    let turn = AtomicUsize::new(0);
    let next = || &stack[turn.fetch_add(1, Ordering::Relaxed) % stack.len()];
    let layer = &stack[0];

    // A real cache at `cached` tokens, for the full step and for the layer-0 parts.
    let (step, cache, ids) = real_step(model, b, cached, capacity, &time);

    let x = Tensor::<3>::random([b, 1, h], Distribution::Default, &dev);
    let plan = cache.plan(1, None);
    let angles = layer.rope.angles(&plan.positions, &dev);
    let step_mask = mask::build(&plan.keys, 1, None, &dev);
    let q = Tensor::<4>::random([b, nh, 1, d], Distribution::Default, &dev);
    let k1 = Tensor::<4>::random([b, nkv, 1, d], Distribution::Default, &dev);
    let hidden = Tensor::<3>::random([b, 1, h], Distribution::Default, &dev);
    let logits = model.lm_head(hidden.clone()).reshape([b, vocab]);
    let kinds = mask_kinds(&c);
    let norms_per_layer = if c.sandwich_norms { 4 } else { 2 };

    let mut parts = Vec::new();
    let mut part = |name, calls, secs: f64| {
        parts.push(Part {
            name,
            calls_per_step: calls,
            per_call_us: secs * 1e6,
            per_step_ms: calls as f64 * secs * 1e3,
        })
    };
    part("host: cache plan", 1, time(&mut || drop(cache.plan(1, None))));
    part("host: mask build + upload", kinds, time(&mut || drop(mask::build(&plan.keys, 1, None, &dev))));
    part("host: rope angles + upload", kinds, time(&mut || drop(layer.rope.angles(&plan.positions, &dev))));
    part("embed (row select)", 1, time(&mut || drop(model.embed(ids.clone()))));
    part("rms norm", layers * norms_per_layer + 1, time(&mut || drop(layer.norm.forward(x.clone()))));
    let head_norms = if c.qk_norm {
        let t = time(&mut || drop((layer.norm_d.forward(q.clone()), layer.norm_d.forward(k1.clone()))));
        part("q/k head norms", layers, t);
        t
    } else {
        0.0
    };
    let qkv = time(&mut || {
        let a = &next().attn;
        drop(a.qkv.forward(x.clone()))
    });
    part("q/k/v projections", layers, qkv);
    let rope = time(&mut || drop((angles.apply(q.clone()), angles.apply(k1.clone()))));
    part("rope apply (q and k, cat)", layers, rope);
    let mut c0 = cache.clone();
    let update = time(&mut || drop(c0.update(0, k1.clone(), k1.clone())));
    part("kv cache update (slice_assign)", layers, update);
    let o_in = Tensor::<3>::random([b, 1, nh * d], Distribution::Default, &dev);
    let o = time(&mut || drop(next().attn.o_proj.forward(o_in.clone())));
    part("o projection", layers, o);
    // The whole layer attention as the model runs it, on a cache at `cached` tokens; what its
    // parts above do not explain is the core (a difference of medians, floored at 0).
    let mut c1 = cache.clone();
    let whole = time(&mut || drop(next().attn.forward(x.clone(), &angles, &step_mask, 0, &mut c1)));
    let core = (whole - qkv - head_norms - rope - update - o).max(0.0);
    part("attention core (q·k, mask, softmax, ·v; derived)", layers, core);
    let mlp = time(&mut || drop(next().mlp.forward(x.clone())));
    part("mlp (gate, up, act, down)", layers, mlp);
    part("residual add", 2 * layers, time(&mut || drop(x.clone() + x.clone())));
    part("lm_head", 1, time(&mut || drop(model.lm_head(hidden.clone()))));
    part("argmax (download logits)", 1, time(&mut || drop(argmax_rows(logits.clone()))));
    parts.sort_by(|x, y| y.per_step_ms.total_cmp(&x.per_step_ms));
    let parts_ms = parts.iter().map(|p| p.per_step_ms).sum();

    let layer_matmul_gbps = layer_weight_bytes(&c) as f64 / (qkv + o + mlp) / 1e9;
    drop(c1);
    let mut experiments = experiments(&mut w, &c, b, &time, model);
    experiments.extend(mlp_experiments(&mut w, &c, &x, mlp, rotation, &time, &|| &next().mlp));
    experiments.sort_by(|x, y| y.saving_ms.total_cmp(&x.saving_ms));
    Breakdown { batch: b, cached, step_ms: step * 1e3, parts_ms, parts, layer_matmul_gbps, experiments }
}

/// A real decode step of `model` (`forward_hidden`, `lm_head`, argmax) at `b` rows over a cache
/// prefilled with `cached` random tokens: its time, the cache, and the fed ids.
fn real_step(
    model: &AnyModel,
    b: usize,
    cached: usize,
    capacity: usize,
    time: &dyn Fn(&mut dyn FnMut()) -> f64,
) -> (f64, KvCache, Tensor<2, Int>) {
    let (dev, vocab) = (model.device().clone(), model.config().vocab_size);
    let mut rng = SplitMix64(11);
    let prompts: Vec<Vec<u32>> =
        (0..b).map(|_| crate::token_ids(&mut rng, cached, 100, (vocab as u32).min(30_000))).collect();
    let mut cache = KvCache::new(b, capacity);
    drop(try_prefill(model, &prompts, &mut cache).expect("the breakdown's prompts are not empty"));
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![42i64; b], [b, 1]), &dev);
    // Each timed step is undone with `truncate`, so the cache's buffers stay uniquely owned and
    // are written in place, as in real decoding (a clone per step would share, then copy, them).
    let mut live = cache.clone();
    let step = time(&mut || {
        let hidden = model.forward_hidden(model.embed(ids.clone()), None, &mut live);
        argmax_rows(model.lm_head(hidden).reshape([b, vocab]));
        live.truncate(cached);
    });
    (step, cache, ids)
}

/// How many masks (and RoPE tables) a step builds: two when sliding and global layers mix.
fn mask_kinds(c: &ModelConfig) -> usize {
    let sliding = c.layer_attention.iter().any(|a| matches!(a, LayerAttention::Sliding { .. }));
    if sliding && c.layer_attention.contains(&LayerAttention::Global) { 2 } else { 1 }
}

/// The MLP against its alternatives: on one thread, and with `[out, in]` weights on `xᵀ`
/// (`[features, batch]`) until one transpose at the end. `mlp` is the current MLP's time; `next`
/// rotates through cold layers, and the alternative rotates through as many.
fn mlp_experiments<'l>(
    w: &mut Weights,
    c: &ModelConfig,
    x: &Tensor<3>,
    mlp: f64,
    rotation: usize,
    time: &dyn Fn(&mut dyn FnMut()) -> f64,
    next: &(dyn Fn() -> &'l GatedMlp + Sync),
) -> Vec<Experiment> {
    let (b, h, layers) = (x.dims()[0], c.hidden_size, c.num_hidden_layers);
    let mut experiments = Vec::new();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    if rayon::current_num_threads() > 1 {
        let on_one = time(&mut || one.install(|| drop(next().forward(x.clone()))));
        experiments.push(Experiment::new("mlp on one thread (rayon pool of 1)", layers, mlp, on_one));
    }
    // The MLP with weights kept in checkpoint layout `[out, in]` and used as the left operand,
    // working on `xᵀ` (`[features, batch]`) until one transpose at the end; as cold as above.
    let oi: Vec<[Tensor<2>; 3]> = (0..rotation)
        .map(|_| {
            let i = c.intermediate_size;
            [w.raw(&[i, h]), w.raw(&[i, h]), w.raw(&[h, i])]
        })
        .collect();
    let xt = x.clone().reshape([b, h]).transpose();
    let turn_oi = AtomicUsize::new(0);
    let transposed = time(&mut || {
        let [g, u, dn] = &oi[turn_oi.fetch_add(1, Ordering::Relaxed) % oi.len()];
        let gate = g.clone().matmul(xt.clone());
        let gate = match c.hidden_act {
            Activation::Silu => silu(gate),
            Activation::GeluTanh => gelu_approximate(gate),
        };
        drop(dn.clone().matmul(gate * u.clone().matmul(xt.clone())).transpose().reshape([b, 1, h]));
    });
    experiments.push(Experiment::new("mlp with [out, in] weights: (W · xᵀ)ᵀ", layers, mlp, transposed));
    experiments
}

/// Bytes the rotation of timed layers must exceed: twice a typical 32 MiB last-level cache.
const COLD_BYTES: usize = 64 << 20;

/// f32 bytes of one decoder layer's linear weights (one f32 per multiply-add of a token).
fn layer_weight_bytes(c: &ModelConfig) -> usize {
    4 * c.layer_linear_macs()
}

impl Experiment {
    fn new(name: &'static str, calls: usize, current_s: f64, alternative_s: f64) -> Self {
        Experiment {
            name,
            current_us: current_s * 1e6,
            alternative_us: alternative_s * 1e6,
            calls_per_step: calls,
            saving_ms: calls as f64 * (current_s - alternative_s) * 1e3,
        }
    }
}

/// Print a breakdown as an indented table.
pub fn print(bd: &Breakdown) {
    println!(
        "  decode step at batch {}, {} cached tokens: {:.2} ms measured; parts sum to {:.2} ms; \
         layer matmuls stream weights at {:.1} GB/s",
        bd.batch, bd.cached, bd.step_ms, bd.parts_ms, bd.layer_matmul_gbps
    );
    println!("    {:<42} {:>6} {:>10} {:>9} {:>6}", "part", "calls", "µs/call", "ms/step", "share");
    for p in &bd.parts {
        println!(
            "    {:<42} {:>6} {:>10.1} {:>9.2} {:>5.1}%",
            p.name,
            p.calls_per_step,
            p.per_call_us,
            p.per_step_ms,
            100.0 * p.per_step_ms / bd.step_ms
        );
    }
    for e in &bd.experiments {
        println!(
            "    try: {:<50} {:>8.1} → {:>8.1} µs/call × {:>3} = {:+.2} ms/step",
            e.name, e.current_us, e.alternative_us, e.calls_per_step, -e.saving_ms
        );
    }
}

/// One decoder layer's worth of modules with random weights in the model's shapes.
struct Layer {
    attn: Attention,
    mlp: GatedMlp,
    norm: RmsNorm,
    norm_d: RmsNorm,
    rope: Rope,
}

struct Weights {
    rng: SplitMix64,
    device: Device,
}

impl Weights {
    fn host(&mut self, shape: &[usize], scale: f32) -> HostTensor {
        let n = shape.iter().product();
        let data = (0..n).map(|_| scale * (self.rng.next_f32() * 2.0 - 1.0)).collect();
        HostTensor { shape: shape.to_vec(), data }
    }

    /// A random `shape` tensor on the device, as stored (no layout change).
    fn raw(&mut self, shape: &[usize]) -> Tensor<2> {
        let t = self.host(shape, 0.05);
        Tensor::from_data(TensorData::new(t.data, t.shape), &self.device)
    }

    /// A linear layer `in → out` (PyTorch layout `[out, in]`, as checkpoints store it).
    fn linear(&mut self, out: usize, inp: usize) -> Linear {
        let w = self.host(&[out, inp], 0.05);
        Linear::from_host(w, None, &self.device)
    }

    fn norm(&mut self, n: usize, eps: f32) -> RmsNorm {
        RmsNorm::from_host(HostTensor { shape: vec![n], data: vec![1.0; n] }, eps, false, &self.device)
    }

    fn layer(&mut self, c: &ModelConfig) -> Layer {
        let (h, nh, nkv, d) = (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let attn = Attention {
            qkv: self.linear((nh + 2 * nkv) * d, h),
            o_proj: self.linear(h, nh * d),
            q_norm: c.qk_norm.then(|| self.norm(d, c.rms_norm_eps)),
            k_norm: c.qk_norm.then(|| self.norm(d, c.rms_norm_eps)),
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: d,
            scale: c.query_pre_attn_scalar.powf(-0.5),
            softcap: c.attn_logit_softcapping,
        };
        let mlp = GatedMlp {
            gate_up: self.linear(2 * c.intermediate_size, h),
            down_proj: self.linear(h, c.intermediate_size),
            act: c.hidden_act,
        };
        Layer {
            attn,
            mlp,
            norm: self.norm(h, c.rms_norm_eps),
            norm_d: self.norm(d, c.rms_norm_eps),
            rope: Rope::new(d, c.rope_theta, &c.rope_scaling),
        }
    }
}

fn experiments(
    w: &mut Weights,
    c: &ModelConfig,
    b: usize,
    time: &dyn Fn(&mut dyn FnMut()) -> f64,
    model: &AnyModel,
) -> Vec<Experiment> {
    let dev = w.device.clone();
    let (h, nh, nkv, d, i) =
        (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size);
    let layers = c.num_hidden_layers;
    let mut out = Vec::new();
    let mut exp = |name, calls: usize, current: f64, alternative: f64| {
        out.push(Experiment::new(name, calls, current, alternative))
    };

    // Output head: the current path is `linear::project` over the tied embedding `[vocab, hidden]`.
    let x = Tensor::<2>::random([b, h], Distribution::Default, &dev);
    let e = model.embedding_matrix();
    let view = time(&mut || drop(greater_models::layers::linear::project(x.clone(), &e, None)));
    let vocab = e.dims()[0];
    let host = e.clone().try_into_vec_as::<f32>().expect("reading the embedding");
    let mut t = vec![0.0f32; host.len()];
    for r in 0..vocab {
        for (k, &val) in host[r * h..(r + 1) * h].iter().enumerate() {
            t[k * vocab + r] = val;
        }
    }
    let contiguous = Tensor::<2>::from_data(TensorData::new(t, [h, vocab]), &dev);
    let copied = time(&mut || drop(x.clone().matmul(contiguous.clone())));
    exp("lm_head: contiguous [hidden, vocab] copy of E", 1, view, copied);
    let swapped = time(&mut || drop(e.clone().matmul(x.clone().transpose()).transpose()));
    exp("lm_head: E · xᵀ (vocab rows) then transpose", 1, view, swapped);
    // Half the bytes to stream: f16 weights (gemm widens them to f32 while packing).
    let e16 = e.clone().cast(FloatDType::F16);
    let half =
        time(&mut || drop(x.clone().cast(FloatDType::F16).matmul(e16.clone().transpose()).cast(FloatDType::F32)));
    exp("lm_head: f16 copy of E (x cast to f16 and back)", 1, view, half);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    if rayon::current_num_threads() > 1 {
        let on_one = time(&mut || one.install(|| drop(x.clone().matmul(e.clone().transpose()))));
        exp("lm_head on one thread (rayon pool of 1)", 1, view, on_one);
    }

    // The layers stack projections that read the same input into one wider matmul; what the
    // separate products they replaced would cost.
    let x3 = Tensor::<3>::random([b, 1, h], Distribution::Default, &dev);
    let (q, k, v) = (w.linear(nh * d, h), w.linear(nkv * d, h), w.linear(nkv * d, h));
    let qkv = w.linear((nh + 2 * nkv) * d, h);
    let apart = time(&mut || drop((q.forward(x3.clone()), k.forward(x3.clone()), v.forward(x3.clone()))));
    let stacked = time(&mut || drop(qkv.forward(x3.clone())));
    exp("q/k/v as three matmuls instead of one stacked", layers, stacked, apart);
    let (g, u) = (w.linear(i, h), w.linear(i, h));
    let gu = w.linear(2 * i, h);
    let apart = time(&mut || drop((g.forward(x3.clone()), u.forward(x3.clone()))));
    let stacked = time(&mut || drop(gu.forward(x3.clone())));
    exp("gate/up as two matmuls instead of one stacked", layers, stacked, apart);
    out
}
