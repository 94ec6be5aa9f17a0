//! Reading checkpoints: GGUF and Hugging Face safetensors, into one canonical form.
//!
//! Every format is read through [`WeightSource`]: tensors come out by their **Hugging Face name**
//! (`model.layers.{i}.self_attn.q_proj.weight`), as `f32`, in PyTorch layout and with Hugging Face
//! value conventions. Whatever a converter did to a tensor (GGUF's permuted llama q/k rows, Gemma's
//! `w + 1` norms) is undone inside the format's reader, by a named fix-up, so architectures only
//! ever see one convention.

use std::path::Path;

use crate::LoadError;

/// A dense `f32` tensor in host memory, row-major, shape in PyTorch order (`[out, in]` for a linear).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

/// A checkpoint whose tensors can be read by canonical (Hugging Face) name.
pub trait WeightSource {
    /// The file (or folder) the weights come from, for error messages.
    fn path(&self) -> &Path;
    /// Whether the checkpoint holds `name`.
    fn contains(&self, name: &str) -> bool;
    /// Every canonical tensor name in the checkpoint.
    fn names(&self) -> Vec<String>;
    /// The shape of `name` (PyTorch order), without reading its data.
    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError>;
    /// The tensor `name`, dequantised or converted to `f32`, with fix-ups applied.
    fn tensor(&self, name: &str) -> Result<HostTensor, LoadError>;
    /// The file that holds `name`, for error messages (a shard of a sharded checkpoint);
    /// [`path`](Self::path) unless the source has several files.
    fn file_of(&self, name: &str) -> &Path {
        let _ = name;
        self.path()
    }
}

pub mod dequant;
pub mod gguf;
pub mod gguf_meta;
pub mod gguf_weights;
pub mod memory;
pub mod names;
pub mod safetensors;

pub use dequant::GgmlType;
pub use gguf::{GgufFile, TensorInfo};
pub use gguf_meta::{MetaValue, Metadata, ScopedMeta};
pub use gguf_weights::GgufWeights;
pub use safetensors::SafetensorsWeights;
