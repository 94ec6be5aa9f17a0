//! Errors of the optimisation layer.

use std::path::PathBuf;

/// Why an evaluation or optimisation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptError {
    /// The model layer failed (loading, tokenizer, template).
    #[error(transparent)]
    Model(#[from] greater_models::LoadError),
    /// The task layer failed (data, specs).
    #[error(transparent)]
    Task(#[from] greater_tasks::TaskError),
    /// Generation refused its input.
    #[error(transparent)]
    Generate(#[from] greater_models::generate::GenerateError),
    /// The gradient pass refused its input.
    #[error(transparent)]
    Grad(#[from] greater_grad::GradError),
    /// The rendered conversation cannot be split into parts cleanly.
    #[error("example {example}: {reason}")]
    Layout {
        /// Which example (index in its split).
        example: usize,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A config, checkpoint or report file is malformed.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The run was interrupted (Ctrl-C) after its last checkpoint was written.
    #[error("interrupted; resume with --resume {0}")]
    Interrupted(PathBuf),
    /// Anything else the user must fix, in words.
    #[error("{0}")]
    Invalid(String),
}

impl OptError {
    /// Shorthand for [`OptError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
