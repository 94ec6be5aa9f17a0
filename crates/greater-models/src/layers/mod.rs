//! Layers shared by every family: each is tested once, here.
//!
//! All weights are plain tensors on the model's (non-autodiff) device: they never join an
//! autodiff graph, so gradient passes only track what the caller marks with `require_grad`.

pub mod attention;
#[cfg(feature = "flex")]
pub mod causal_attention;
pub mod linear;
pub mod log_softmax;
pub mod mask;
pub mod mlp;
pub mod rms_norm;
pub mod rope;
#[cfg(feature = "flex")]
pub mod rows_matmul;
#[cfg(feature = "flex")]
pub mod swiglu;

use burn::tensor::{Device, Tensor, TensorData};

use crate::loading::HostTensor;

/// Whether the environment variable `var` turns a kernel off: set to anything but `0`. Read once
/// into `cache`, so a hot path pays for the lookup only on its first call.
fn switched_off(cache: &std::sync::OnceLock<bool>, var: &str) -> bool {
    *cache.get_or_init(|| std::env::var(var).is_ok_and(|v| v != "0"))
}

/// The instruction set the hand-written CPU kernels run on, detected at run time. Each kernel
/// has an AVX2 + FMA path and a portable one that computes the same operations in the same order.
#[cfg(feature = "flex")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

#[cfg(feature = "flex")]
impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Self::Avx2;
        }
        Self::Portable
    }
}

/// The contiguous f32 Flex primitive behind `t`, or `None` (another backend, autodiff, dtype):
/// what the hand-written CPU kernels take.
#[cfg(feature = "flex")]
fn f32_flex<const D: usize>(t: Tensor<D>) -> Option<burn_flex::FlexTensor> {
    if t.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    let t = t.try_into_primitive::<burn_flex::Flex>().ok()?;
    Some(if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() })
}

/// Upload a host tensor of rank `D` to `device`.
pub fn upload<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data, t.shape), device)
}

/// Read any float tensor back as a `Vec<f32>`.
pub fn download<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("reading a float tensor back from the device")
}
