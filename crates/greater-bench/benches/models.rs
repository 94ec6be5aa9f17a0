//! Criterion micro-benchmarks of the operations a decode step and a prefill are made of, in
//! SmolLM2-135M shapes, plus whole steps of a tiny random model and (when cached) the real one.
//!
//! `cargo bench -p greater-bench --bench models -- --quick`. End-to-end figures with goals come
//! from `greater bench models` (`cargo xtask bench models`), not from here.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use burn::tensor::{Distribution, Int, Tensor, TensorData};
use greater_models::KvCache;
use greater_models::arch::{AnyModel, CausalLm};
use greater_models::config::{Family, ModelConfig};
use greater_models::generate::try_prefill;
use greater_models::loading::memory::MemoryWeights;
use greater_models::model::LoadedModel;

/// SmolLM2-135M: hidden 576, MLP 1536, 3 kv heads of 64, vocab 49152.
const HIDDEN: usize = 576;
const MLP: usize = 1536;
const VOCAB: usize = 49_152;

fn gemm(c: &mut Criterion) {
    let dev = greater_models::default_device();
    let mut g = c.benchmark_group("gemm_576x1536");
    let w = Tensor::<2>::random([HIDDEN, MLP], Distribution::Default, &dev);
    for m in [1usize, 8, 64, 512] {
        let x = Tensor::<2>::random([m, HIDDEN], Distribution::Default, &dev);
        g.throughput(Throughput::Elements((2 * m * HIDDEN * MLP) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(m), &m, |b, _| b.iter(|| x.clone().matmul(w.clone())));
    }
    g.finish();
}

/// `out[i, :] = Σ_k x[i, k] · w[k, :]` for a few rows `i` and a row-major `[k, n]` weight: the
/// plain reference the panel kernel is checked against.
fn few_rows_matmul(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    out.fill(0.0);
    for kk in 0..k {
        let row = &w[kk * n..(kk + 1) * n];
        for i in 0..m {
            let a = x[i * k + kk];
            for (o, &wv) in out[i * n..(i + 1) * n].iter_mut().zip(row) {
                *o += a * wv;
            }
        }
    }
}

/// Repack a row-major `[k, n]` weight into column panels of 16: panel `p` holds
/// `w[0..k, 16p..16p+16]` contiguously, so a tiled product streams it front to back.
fn pack_panels(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(k * n);
    for j0 in (0..n).step_by(16) {
        for kk in 0..k {
            out.extend_from_slice(&w[kk * n + j0..kk * n + j0 + 16]);
        }
    }
    out
}

/// `out = x · w` for exactly `M` rows over a [`pack_panels`] weight: `M × 16` accumulators stay
/// in registers for a whole panel.
#[inline(always)]
fn panels_matmul<const M: usize>(x: &[f32], packed: &[f32], k: usize, n: usize, out: &mut [f32]) {
    for (p, panel) in packed.chunks_exact(16 * k).enumerate() {
        let mut acc = [[0.0f32; 16]; M];
        for (kk, wrow) in panel.chunks_exact(16).enumerate() {
            for (i, a) in acc.iter_mut().enumerate() {
                let xv = x[i * k + kk];
                for (o, &wv) in a.iter_mut().zip(wrow) {
                    *o = xv.mul_add(wv, *o);
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            out[i * n + 16 * p..i * n + 16 * p + 16].copy_from_slice(a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panels_matmul_avx2<const M: usize>(x: &[f32], packed: &[f32], k: usize, n: usize, out: &mut [f32]) {
    panels_matmul::<M>(x, packed, k, n, out)
}

fn few_rows_fast(x: &[f32], m: usize, packed: &[f32], k: usize, n: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe {
            match m {
                1 => panels_matmul_avx2::<1>(x, packed, k, n, out),
                8 => panels_matmul_avx2::<8>(x, packed, k, n, out),
                _ => unimplemented!("prototype: 1 or 8 rows"),
            }
        }
        return;
    }
    match m {
        1 => panels_matmul::<1>(x, packed, k, n, out),
        8 => panels_matmul::<8>(x, packed, k, n, out),
        _ => unimplemented!("prototype: 1 or 8 rows"),
    }
}

/// Decode-shaped products with the weight cold (rotating over more matrices than the last-level
/// cache holds): burn's matmul with the weight stored `[in, out]` (today) or `[out, in]`, against
/// a hand-written loop over prepacked panels that streams the weight exactly once (a bound).
fn few_rows(c: &mut Criterion) {
    let dev = greater_models::default_device();
    let mut g = c.benchmark_group("cold_576x1536");
    let copies = 12; // 12 · 3.5 MB = 42 MB, above a 32 MB L3
    let host: Vec<Vec<f32>> =
        (0..copies).map(|j| (0..HIDDEN * MLP).map(|i| ((i + j) % 17) as f32 * 0.01).collect()).collect();
    let packed: Vec<Vec<f32>> = host.iter().map(|h| pack_panels(h, HIDDEN, MLP)).collect();
    let dev_w: Vec<Tensor<2>> =
        host.iter().map(|h| Tensor::from_data(TensorData::new(h.clone(), [HIDDEN, MLP]), &dev)).collect();
    // PyTorch layout `[out, in]`, as checkpoints store it.
    let dev_wt: Vec<Tensor<2>> = host
        .iter()
        .map(|h| {
            let t: Vec<f32> = (0..MLP * HIDDEN).map(|i| h[(i % HIDDEN) * MLP + i / HIDDEN]).collect();
            Tensor::from_data(TensorData::new(t, [MLP, HIDDEN]), &dev)
        })
        .collect();
    for m in [1usize, 8] {
        let x = Tensor::<2>::random([m, HIDDEN], Distribution::Default, &dev);
        let xh: Vec<f32> = (0..m * HIDDEN).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut turn = 0;
        g.bench_with_input(BenchmarkId::new("burn_matmul", m), &m, |b, _| {
            b.iter(|| {
                turn = (turn + 1) % copies;
                x.clone().matmul(dev_w[turn].clone())
            })
        });
        g.bench_with_input(BenchmarkId::new("burn_w_out_in_times_xT", m), &m, |b, _| {
            b.iter(|| {
                turn = (turn + 1) % copies;
                dev_wt[turn].clone().matmul(x.clone().transpose()).transpose()
            })
        });
        let mut out = vec![0.0f32; m * MLP];
        g.bench_with_input(BenchmarkId::new("packed_panels_1_thread", m), &m, |b, _| {
            b.iter(|| {
                turn = (turn + 1) % copies;
                few_rows_fast(&xh, m, &packed[turn], HIDDEN, MLP, &mut out);
            })
        });
        let mut check = vec![0.0f32; m * MLP];
        few_rows_matmul(&xh, m, &host[0], HIDDEN, MLP, &mut out);
        few_rows_fast(&xh, m, &packed[0], HIDDEN, MLP, &mut check);
        let worst = out.iter().zip(&check).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "tiled kernel disagrees with the plain loop by {worst}");
    }
    g.finish();
}

/// Weight layouts of a linear layer at every row count: stored `[in, out]` (`x · W`, today),
/// stored `[out, in]` as checkpoints are and used as a transposed view (`x · Wᵀ`), or used as
/// the left operand (`(W · xᵀ)ᵀ`).
fn layouts(c: &mut Criterion) {
    let dev = greater_models::default_device();
    let mut g = c.benchmark_group("layout_576x1536");
    g.sample_size(10);
    let w_io = Tensor::<2>::random([HIDDEN, MLP], Distribution::Default, &dev);
    let w_oi = Tensor::<2>::random([MLP, HIDDEN], Distribution::Default, &dev);
    for m in [8usize, 64, 512] {
        let x = Tensor::<2>::random([m, HIDDEN], Distribution::Default, &dev);
        g.bench_with_input(BenchmarkId::new("x_w_in_out", m), &m, |b, _| b.iter(|| x.clone().matmul(w_io.clone())));
        g.bench_with_input(BenchmarkId::new("x_wT_view", m), &m, |b, _| {
            b.iter(|| x.clone().matmul(w_oi.clone().transpose()))
        });
        // `+ 0.0` materialises the transposed product, as the next layer's input would.
        g.bench_with_input(BenchmarkId::new("w_xT_transposed", m), &m, |b, _| {
            b.iter(|| w_oi.clone().matmul(x.clone().transpose()).transpose() + 0.0)
        });
    }
    g.finish();
}

fn lm_head(c: &mut Criterion) {
    let dev = greater_models::default_device();
    let mut g = c.benchmark_group("lm_head_576x49152");
    g.sample_size(20);
    let e = Tensor::<2>::random([VOCAB, HIDDEN], Distribution::Default, &dev);
    let host = e.clone().try_into_vec_as::<f32>().expect("embedding to host");
    let mut t = vec![0.0f32; host.len()];
    for r in 0..VOCAB {
        for k in 0..HIDDEN {
            t[k * VOCAB + r] = host[r * HIDDEN + k];
        }
    }
    let et = Tensor::<2>::from_data(TensorData::new(t, [HIDDEN, VOCAB]), &dev);
    for m in [1usize, 8] {
        let x = Tensor::<2>::random([m, HIDDEN], Distribution::Default, &dev);
        g.bench_with_input(BenchmarkId::new("transposed_view", m), &m, |b, _| {
            b.iter(|| x.clone().matmul(e.clone().transpose()))
        });
        g.bench_with_input(BenchmarkId::new("contiguous", m), &m, |b, _| b.iter(|| x.clone().matmul(et.clone())));
    }
    g.finish();
}

fn kv_update(c: &mut Criterion) {
    let dev = greater_models::default_device();
    let mut g = c.benchmark_group("kv_update_b8_cap160");
    let (b, h, cap, d, at) = (8, 3, 160, 64, 96);
    let k1 = Tensor::<4>::random([b, h, 1, d], Distribution::Default, &dev);
    let stored = Tensor::<4>::zeros([b, h, cap, d], &dev);
    g.bench_function("shared_buffer", |bench| {
        bench.iter(|| stored.clone().slice_assign([0..b, 0..h, at..at + 1, 0..d], k1.clone()))
    });
    let mut owned = Some(Tensor::<4>::zeros([b, h, cap, d], &dev));
    g.bench_function("owned_buffer", |bench| {
        bench.iter(|| {
            let t = owned.take().expect("put back");
            owned = Some(t.slice_assign([0..b, 0..h, at..at + 1, 0..d], k1.clone()));
        })
    });
    let mut cache = KvCache::new(b, cap);
    let plan = cache.plan(at, None);
    let kt = Tensor::<4>::random([b, h, at, d], Distribution::Default, &dev);
    drop(cache.update(0, kt.clone(), kt));
    cache.commit(plan);
    g.bench_function("kv_cache_update", |bench| bench.iter(|| drop(cache.update(0, k1.clone(), k1.clone()))));
    g.finish();
}

/// A decode step of `model` at `batch` rows after `cached` tokens.
fn bench_decode(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    model: &AnyModel,
    label: &str,
) {
    let dev = model.device().clone();
    let vocab = model.config().vocab_size;
    for batch in [1usize, 8] {
        let cached = 96;
        let prompts: Vec<Vec<u32>> =
            (0..batch).map(|r| (0..cached).map(|i| ((r * 131 + i * 7) % vocab) as u32).collect()).collect();
        let mut cache = KvCache::new(batch, cached + 32);
        drop(try_prefill(model, &prompts, &mut cache).expect("prompts are not empty"));
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![3i64; batch], [batch, 1]), &dev);
        g.bench_with_input(BenchmarkId::new(format!("{label}_decode_step"), batch), &batch, |b, _| {
            // Undo each step with `truncate`: a clone per step would make every cache write a copy.
            b.iter(|| {
                let h = model.forward_hidden(model.embed(ids.clone()), None, &mut cache);
                let logits = model.lm_head(h).try_into_vec_as::<f32>().expect("logits");
                cache.truncate(cached);
                logits
            })
        });
    }
}

fn bench_prefill(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    model: &AnyModel,
    label: &str,
    lens: &[usize],
) {
    let vocab = model.config().vocab_size;
    for &s in lens {
        let prompt = vec![(0..s).map(|i| ((i * 7 + 1) % vocab) as u32).collect::<Vec<u32>>()];
        g.throughput(Throughput::Elements(s as u64));
        g.bench_with_input(BenchmarkId::new(format!("{label}_prefill"), s), &s, |b, _| {
            b.iter(|| {
                let logits = try_prefill(model, &prompt, &mut KvCache::new(1, s)).expect("a non-empty prompt");
                logits.try_into_vec_as::<f32>().expect("logits")
            })
        });
    }
}

fn tiny_model(c: &mut Criterion) {
    let dev = greater_models::default_device();
    let config = ModelConfig::tiny(Family::Llama);
    let weights = MemoryWeights::random(&AnyModel::expected_tensors(&config), 1, 0.1, false);
    let model = AnyModel::load(&config, &weights, &dev).expect("tiny model loads");
    let mut g = c.benchmark_group("tiny_llama");
    bench_prefill(&mut g, &model, "tiny", &[16, 64]);
    bench_decode(&mut g, &model, "tiny");
    g.finish();
}

fn real_model(c: &mut Criterion) {
    let Ok(path) = greater_models::hub::resolve("smollm2-135m-instruct") else {
        eprintln!("note: smollm2-135m-instruct is not cached; skipping the real-model benches");
        return;
    };
    let dev = greater_models::default_device();
    let loaded = LoadedModel::load(&path, &dev).expect("smollm2 loads");
    let mut g = c.benchmark_group("smollm2");
    g.sample_size(10);
    bench_decode(&mut g, &loaded.model, "smollm2");
    bench_prefill(&mut g, &loaded.model, "smollm2", &[64, 512]);
    g.finish();
}

criterion_group!(benches, gemm, few_rows, layouts, lm_head, kv_update, tiny_model, real_model);
criterion_main!(benches);
