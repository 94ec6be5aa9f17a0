//! The one place that maps cargo features to a burn [`Device`]. No other code names a backend.
//!
//! Order of preference when several features are on: `cuda`, `wgpu`, `flex`, `ndarray`.

pub use burn::tensor::Device;

/// The device selected by this build's cargo features.
#[cfg(feature = "cuda")]
pub fn default_device() -> Device {
    Device::cuda(0)
}

/// The device selected by this build's cargo features.
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub fn default_device() -> Device {
    Device::wgpu(Default::default())
}

/// The device selected by this build's cargo features.
#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
pub fn default_device() -> Device {
    Device::flex()
}

/// The device selected by this build's cargo features.
#[cfg(all(feature = "ndarray", not(any(feature = "cuda", feature = "wgpu", feature = "flex"))))]
#[allow(deprecated)] // burn 0.22 deprecates the ndarray device in favour of flex
pub fn default_device() -> Device {
    Device::ndarray()
}

/// A CPU device, whichever CPU backend this build has (used to compare against a GPU run).
#[cfg(feature = "flex")]
pub fn cpu_device() -> Device {
    Device::flex()
}

/// A CPU device, whichever CPU backend this build has (used to compare against a GPU run).
#[cfg(all(feature = "ndarray", not(feature = "flex")))]
#[allow(deprecated)] // burn 0.22 deprecates the ndarray device in favour of flex
pub fn cpu_device() -> Device {
    Device::ndarray()
}

/// A short name of the backend behind [`default_device`], for logs and reports.
pub fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else if cfg!(feature = "flex") {
        "flex"
    } else {
        "ndarray"
    }
}

/// Whether `device` is the `flex` CPU device (tensors there can take the CPU kernels of
/// `layers`); always false in builds without `flex`.
pub fn is_flex(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    return *device == Device::flex();
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}
