//! What the machine itself can do, measured with the same backend the models use: f32 GEMM
//! GFLOP/s, memory copy bandwidth, thread count and load average.
//!
//! These are the yardsticks of the model figures: prefill is compared with the GEMM rate of the
//! same shapes, and batch-1 decode with the time it takes just to stream the weights once.
//!
//! The criterion benches use it as `greater_bench::machine`.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// Median of `xs` (the mean of the two middle values for an even count); `None` when empty,
/// so each caller states what "no runs" means for it. The one median of the workspace.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Median seconds of timed runs; `NaN` when there were none (`--runs 0`), which prints as
/// `NaN` and never passes a goal.
pub fn median_s(times: &[f64]) -> f64 {
    median(times).unwrap_or(f64::NAN)
}

/// Run `f` `warmup` times untimed, then `runs` times, and return each timed run in seconds.
pub fn time_runs(warmup: usize, runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// One GEMM measurement `[m, k] × [k, n]`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GemmRate {
    /// A label (`"512x576 * 576x1536"`).
    pub shape: String,
    /// Rows of the left operand.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of the right operand.
    pub n: usize,
    /// Median seconds of one product.
    pub median_s: f64,
    /// `2·m·k·n / median_s / 1e9`.
    pub gflops: f64,
}

/// Measure an f32 `[m, k] × [k, n]` matmul on `device`: one warm-up, median of `runs`.
///
/// The right operand is contiguous `[k, n]`, as the models store their linear weights.
pub fn gemm_rate(device: &Device, m: usize, k: usize, n: usize, runs: usize) -> GemmRate {
    let a = Tensor::<2>::random([m, k], Distribution::Default, device);
    let b = Tensor::<2>::random([k, n], Distribution::Default, device);
    let times = time_runs(1, runs, || {
        let c = a.clone().matmul(b.clone());
        device.sync().expect("device sync");
        drop(c);
    });
    let median_s = median_s(&times);
    GemmRate {
        shape: format!("{m}x{k} * {k}x{n}"),
        m,
        k,
        n,
        median_s,
        gflops: 2.0 * (m * k * n) as f64 / median_s / 1e9,
    }
}

/// Memory bandwidth, STREAM-style: a copy moves its bytes twice (read and write).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bandwidth {
    /// Size of the source buffer in bytes (well above the last-level cache).
    pub bytes: usize,
    /// `copy_from_slice` on one thread, GB/s of read + write traffic.
    pub copy_gbps_1t: f64,
    /// The same copy split over `threads` threads.
    pub copy_gbps: f64,
    /// A read-only pass (a sum) on one thread, GB/s.
    pub read_gbps_1t: f64,
    /// The read-only pass over `threads` threads.
    pub read_gbps: f64,
    /// Threads of the parallel runs.
    pub threads: usize,
}

/// Measure copy and read bandwidth over `bytes`-sized `f32` buffers, median of `runs`.
pub fn bandwidth(bytes: usize, threads: usize, runs: usize) -> Bandwidth {
    let n = bytes / 4;
    let src: Vec<f32> = (0..n).map(|i| (i % 1024) as f32).collect();
    let mut dst = vec![0.0f32; n];
    let threads = threads.max(1);
    let chunk = n.div_ceil(threads);
    let copy_1t = median_s(&time_runs(1, runs, || dst.copy_from_slice(&src)));
    let copy_nt = median_s(&time_runs(1, runs, || {
        std::thread::scope(|s| {
            for (d, c) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(c));
            }
        })
    }));
    let mut sink = 0.0f32;
    let read_1t = median_s(&time_runs(1, runs, || sink += sum_lanes(&src)));
    let read_nt = median_s(&time_runs(1, runs, || {
        sink += std::thread::scope(|s| {
            let hs: Vec<_> = src.chunks(chunk).map(|c| s.spawn(move || sum_lanes(c))).collect();
            hs.into_iter().map(|h| h.join().expect("reader thread")).sum::<f32>()
        })
    }));
    std::hint::black_box((sink, &dst));
    let b = (n * 4) as f64;
    Bandwidth {
        bytes: n * 4,
        copy_gbps_1t: 2.0 * b / copy_1t / 1e9,
        copy_gbps: 2.0 * b / copy_nt / 1e9,
        read_gbps_1t: b / read_1t / 1e9,
        read_gbps: b / read_nt / 1e9,
        threads,
    }
}

/// The three load averages of `/proc/loadavg` (1, 5 and 15 minutes); `None` off Linux.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Where the worker-thread count of the CPU backends comes from.
///
/// burn's `flex` backend parallelises through the global rayon pool: `gemm` with
/// `Parallelism::Rayon(0)` (all of the pool's threads) for products of at least 192³
/// multiply-adds, rayon batch loops for batched matmuls and reductions; smaller products run on
/// the calling thread.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Threads {
    /// `rayon::current_num_threads()` of the global pool.
    pub rayon: usize,
    /// `RAYON_NUM_THREADS`, if set.
    pub rayon_env: Option<String>,
    /// `std::thread::available_parallelism()`.
    pub available: usize,
}

/// The thread counts, see [`Threads`].
pub fn threads() -> Threads {
    Threads {
        rayon: rayon::current_num_threads(),
        rayon_env: std::env::var("RAYON_NUM_THREADS").ok(),
        available: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// The CPU model name from `/proc/cpuinfo`, if readable.
pub fn cpu_name() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// A `/proc/self/status` field in bytes (`VmHWM`, `VmRSS`: the file gives kB); `None` off Linux.
pub fn status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reset this process's peak RSS (`VmHWM`) to its current RSS, so the next peak is local to
/// what runs after. Returns whether the kernel accepted it (Linux ≥ 4.0, `clear_refs` value 5).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Sum with eight independent accumulators, so the loop vectorises and the pass is bound by
/// memory rather than by one floating-point add chain.
fn sum_lanes(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert!(median_s(&[]).is_nan());
    }

    #[test]
    fn sum_lanes_matches_a_plain_sum() {
        // 1 + 2 + … + 19 = 190: two full chunks of eight and a remainder of three.
        let xs: Vec<f32> = (1..20).map(|i| i as f32).collect();
        assert_eq!(sum_lanes(&xs), 190.0);
    }

    #[test]
    fn gemm_rate_counts_two_flops_per_multiply_add() {
        let device = greater_models::default_device();
        let r = gemm_rate(&device, 4, 8, 16, 3);
        assert_eq!(r.shape, "4x8 * 8x16");
        assert!((r.gflops - 2.0 * 512.0 / r.median_s / 1e9).abs() < 1e-9 * r.gflops.max(1.0));
    }

    #[test]
    fn proc_readers_parse_this_process() {
        if let Some(rss) = status_bytes("VmRSS") {
            assert!(rss > 0 && rss % 1024 == 0);
        }
        if let Some([a, b, c]) = load_average() {
            assert!(a >= 0.0 && b >= 0.0 && c >= 0.0);
        }
    }
}
