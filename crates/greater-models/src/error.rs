//! The one error type of the model layer. Every variant names the file, tensor or field at fault.

use std::path::PathBuf;

/// Why a model, tokenizer or weight file could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// An I/O error while reading `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the format it claims to be, or is cut short.
    #[error("{path}: {reason}")]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A tensor type this crate cannot decode.
    #[error("{path}: tensor `{tensor}` has unsupported type {kind}")]
    UnsupportedTensorType {
        /// The offending file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The type, as the file names it.
        kind: String,
    },
    /// An architecture (or variant) this crate does not implement.
    #[error("{path}: unsupported architecture `{arch}` (supported: {supported})")]
    UnsupportedArchitecture {
        /// The offending file.
        path: PathBuf,
        /// The architecture named by the file.
        arch: String,
        /// The architectures this crate knows, comma separated.
        supported: String,
    },
    /// Required metadata or config fields are absent (all of them are listed at once).
    #[error("{path}: missing required field(s): {}", fields.join(", "))]
    MissingFields {
        /// The offending file.
        path: PathBuf,
        /// Every missing key.
        fields: Vec<String>,
    },
    /// A metadata or config field has the wrong type or an impossible value.
    #[error("{path}: field `{field}`: {reason}")]
    BadField {
        /// The offending file.
        path: PathBuf,
        /// The field's key.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("{path}: missing tensor(s): {}", names.join(", "))]
    MissingTensors {
        /// The checkpoint.
        path: PathBuf,
        /// Every missing tensor (canonical Hugging Face names).
        names: Vec<String>,
    },
    /// A tensor's shape differs from what the config implies.
    #[error("{path}: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    TensorShape {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor's canonical name.
        name: String,
        /// Its shape in the file (PyTorch order).
        got: Vec<usize>,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// The tokenizer could not be built or used.
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer {
        /// Where the tokenizer came from.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The chat template could not be parsed or rendered.
    #[error("{path}: chat template: {reason}")]
    Template {
        /// Where the template came from.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A name that is neither an existing file nor a model of the registry ([`crate::hub`]).
    #[error("`{name}` is neither an existing file nor a known model (known: {known})")]
    UnknownModel {
        /// The name or path given.
        name: String,
        /// The registry's model names, comma separated.
        known: String,
    },
    /// A registry model that has not been fetched into the cache yet.
    #[error("model `{model}` is not downloaded yet ({path} does not exist); fetch it first")]
    NotFetched {
        /// The registry name.
        model: String,
        /// Where the fetched file would be.
        path: PathBuf,
    },
    /// No cache folder: `$GREATER_CACHE` is unset and the platform has no cache directory.
    #[error("no cache directory: set GREATER_CACHE to a writable folder")]
    NoCacheDir,
}

impl LoadError {
    /// Shorthand for [`LoadError::Format`].
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format { path: path.into(), reason: reason.into() }
    }

    /// Shorthand for [`LoadError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
