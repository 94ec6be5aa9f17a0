//! Examples, splits and loaded tasks.

use serde::{Deserialize, Serialize};

use crate::spec::TaskSpec;

/// One question with its gold answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The question text as shown to the model (FOLIO items already rendered).
    pub input: String,
    /// The normalised gold label, e.g. `C` for a raw `(C)`, `1080` for `1,080`.
    pub target: String,
    /// The target as it appears in the data file (for FOLIO, the data label such as `Unknown`).
    pub raw_target: String,
    /// Option texts in letter order when the data provides them (FOLIO, custom `choices`); else empty.
    pub choices: Vec<String>,
}

/// One of the three splits (SPEC A7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Optimisation examples.
    Train,
    /// Examples that choose the final prompt.
    Dev,
    /// Held-out examples for the reported accuracy.
    Test,
}

impl Split {
    /// Every split, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    /// `"train"`, `"dev"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// A task with its specification and its three splits.
#[derive(Debug, Clone)]
pub struct Task {
    /// Registry name (or the custom file's path).
    pub name: String,
    /// The specification.
    pub spec: TaskSpec,
    /// Train split.
    pub train: Vec<Example>,
    /// Dev split.
    pub dev: Vec<Example>,
    /// Test split.
    pub test: Vec<Example>,
}

impl Task {
    /// The examples of `split`.
    pub fn split(&self, split: Split) -> &[Example] {
        match split {
            Split::Train => &self.train,
            Split::Dev => &self.dev,
            Split::Test => &self.test,
        }
    }
}
