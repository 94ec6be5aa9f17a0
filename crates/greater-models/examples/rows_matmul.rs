//! GFLOP/s of the few-rows kernel (`layers::rows_matmul`) and of burn's matmul on the shapes of
//! Qwen2.5-0.5B's projections and output head, from 1 to 128 rows:
//! `cargo run --release -p greater-models --example rows_matmul` (benches/README.md, session 27).
use burn::tensor::{Tensor, TensorData};
use greater_models::layers::linear::project_plain;
use greater_models::layers::rows_matmul::matmul_rows;
use std::time::Instant;
fn main() {
    let device = greater_models::device::default_device();
    let shapes = [(896usize, 9728usize), (4864, 896), (896, 1152), (896, 151936)];
    for &(k, n) in &shapes {
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [n, k]), &device);
        for &m in &[1usize, 8, 10, 20, 30, 40, 64, 90, 128] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 31) % 100) as f32 / 100.0).collect();
            let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [m, k]), &device);
            let reps = (2e9 / (2.0 * (m * k * n) as f64)).ceil().max(2.0) as usize;
            let flops = 2.0 * (m * k * n) as f64 * reps as f64;
            let t = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(matmul_rows(&x, &w, None, m, k, n));
            }
            let rows = flops / t.elapsed().as_secs_f64() / 1e9;
            let t = Instant::now();
            for _ in 0..reps {
                let y = project_plain(xt.clone(), &wt, None);
                std::hint::black_box(y.into_data());
            }
            let g = flops / t.elapsed().as_secs_f64() / 1e9;
            println!("k {k:5} n {n:6} m {m:4}: rows {rows:6.1} GFLOP/s  burn {g:6.1} GFLOP/s");
        }
    }
}
