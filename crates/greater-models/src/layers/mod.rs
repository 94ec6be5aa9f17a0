//! Layers shared by every family: each is tested once, here.
//!
//! All weights are plain tensors on the model's (non-autodiff) device: they never join an
//! autodiff graph, so gradient passes only track what the caller marks with `require_grad`.

pub mod attention;
pub mod linear;
pub mod log_softmax;
pub mod mask;
pub mod mlp;
pub mod rms_norm;
pub mod rope;
#[cfg(feature = "flex")]
pub mod rows_matmul;

use burn::tensor::{Device, Tensor, TensorData};

use crate::loading::HostTensor;

/// Whether the environment variable `var` turns a kernel off: set to anything but `0`. Read once
/// into `cache`, so a hot path pays for the lookup only on its first call.
fn switched_off(cache: &std::sync::OnceLock<bool>, var: &str) -> bool {
    *cache.get_or_init(|| std::env::var(var).is_ok_and(|v| v != "0"))
}

/// Upload a host tensor of rank `D` to `device`.
pub fn upload<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data, t.shape), device)
}

/// Read any float tensor back as a `Vec<f32>`.
pub fn download<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("reading a float tensor back from the device")
}
