//! The spec of a custom task: a TOML file beside the data (`mytask.jsonl` → `mytask.toml`) or
//! named with `--spec`, with the keys of a `datasets/tasks.toml` table, all optional:
//!
//! ```toml
//! answer = "letter"          # else inferred from the targets
//! letters = "ABCD"           # letter tasks
//! labels = ["Yes", "No"]     # yes/no-like tasks: the canonical spelling
//! extractor = "Therefore, the final answer is $"
//! pattern = '\(([{letters}])\)'   # the flexible score's regex
//! input_field = "question"   # field (JSONL) or column (CSV) names
//! target_field = "answer"
//! choices_field = "options"
//! train = 50                 # the pool split: train rows, then dev rows, test the rest
//! dev = 100
//! placement = "before"       # where the prompt goes: after (default), before, system
//! ```
//!
//! Unknown keys and wrong types are errors naming the file, the key and its line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::loaders::Fields;
use crate::prompt::PromptPlace;
use crate::spec::AnswerKind;

/// How a custom task file is read; each field overrides the spec file's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomOptions {
    /// The spec file; default: the data file with extension `.toml`, when it exists.
    pub spec: Option<PathBuf>,
    /// Name of the question field or column (default `input`).
    pub input_field: Option<String>,
    /// Name of the gold-answer field or column (default `target`).
    pub target_field: Option<String>,
}

impl CustomOptions {
    /// Whether nothing is set (the plain JSONL/CSV conventions).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A parsed spec file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomSpec {
    pub answer: Option<AnswerKind>,
    pub letters: Option<String>,
    pub labels: Option<Vec<String>>,
    pub extractor: Option<String>,
    pub pattern: Option<String>,
    pub input_field: Option<String>,
    pub target_field: Option<String>,
    pub choices_field: Option<String>,
    pub train: Option<usize>,
    pub dev: Option<usize>,
    pub placement: Option<PromptPlace>,
}

impl CustomSpec {
    /// The spec for data file `data`: `options.spec`, else `data` with extension `.toml` when
    /// it exists, else the empty spec. Returns it with the path it was read from.
    pub fn find(data: &Path, options: &CustomOptions) -> Result<(Self, Option<PathBuf>), TaskError> {
        let path = match &options.spec {
            Some(p) => p.clone(),
            None => {
                let beside = data.with_extension("toml");
                if !beside.is_file() {
                    return Ok((Self::default(), None));
                }
                beside
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TaskError::Spec { task: path.display().to_string(), message: format!("cannot read: {e}") })?;
        let spec = toml::from_str(&text)
            .map_err(|e| TaskError::Spec { task: path.display().to_string(), message: e.to_string() })?;
        Ok((spec, Some(path)))
    }

    /// The field names: `options` first, then the spec, then the defaults.
    pub fn fields<'a>(&'a self, options: &'a CustomOptions) -> Fields<'a> {
        let d = Fields::default();
        let pick = |flag: &'a Option<String>, key: &'a Option<String>, default: &'a str| {
            flag.as_deref().or(key.as_deref()).unwrap_or(default)
        };
        Fields {
            input: pick(&options.input_field, &self.input_field, d.input),
            target: pick(&options.target_field, &self.target_field, d.target),
            choices: self.choices_field.as_deref().unwrap_or(d.choices),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{load_custom, load_custom_with};

    /// A folder with `task.jsonl` of 40 yes/no rows under other field names, and `task.toml`.
    fn folder(spec: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"question": "is {i} even?", "answer": "{}"}}"#, ["yes", "no"][i % 2]))
            .collect();
        let data = dir.path().join("task.jsonl");
        std::fs::write(&data, rows.join("\n")).unwrap();
        std::fs::write(dir.path().join("task.toml"), spec).unwrap();
        (dir, data)
    }

    #[test]
    fn a_spec_beside_the_file_sets_fields_kind_extractor_split_and_placement() {
        let (_dir, data) = folder(
            r#"
            answer = "yes_no"
            labels = ["Yes", "No"]
            extractor = "So the answer is $ "
            input_field = "question"
            target_field = "answer"
            train = 10
            dev = 5
            placement = "before"
            "#,
        );
        let task = load_custom(&data).unwrap();
        assert_eq!((task.train.len(), task.dev.len(), task.test.len()), (10, 5, 25));
        assert_eq!(task.spec.kind, AnswerKind::YesNo);
        assert_eq!(task.spec.labels, ["Yes", "No"]);
        assert_eq!(task.spec.extractor, "So the answer is $ ");
        assert_eq!(task.spec.placement, Some(PromptPlace::Before));
        assert_eq!((task.train[1].input.as_str(), task.train[1].target.as_str()), ("is 1 even?", "No"));
    }

    #[test]
    fn flags_override_the_spec_and_name_missing_fields() {
        let (dir, data) = folder("input_field = \"nope\"\ntarget_field = \"answer\"\ntrain = 10\n");
        let err = load_custom(&data).unwrap_err().to_string();
        assert!(err.contains("field `nope`"), "{err}");
        let options = CustomOptions { input_field: Some("question".into()), ..Default::default() };
        let task = load_custom_with(&data, &options).unwrap();
        assert_eq!(task.spec.kind, AnswerKind::YesNo, "inferred from the targets");
        // Another spec file, named explicitly, replaces the one beside the data.
        let other = dir.path().join("other.toml");
        std::fs::write(&other, "input_field = \"question\"\ntarget_field = \"answer\"\ntrain = 20\n").unwrap();
        let task = load_custom_with(&data, &CustomOptions { spec: Some(other), ..Default::default() }).unwrap();
        assert_eq!(task.train.len(), 20);
    }

    #[test]
    fn a_bad_spec_names_the_file_the_key_and_the_line() {
        let (_dir, data) = folder("input_field = \"question\"\nextrator = \"x\"\n");
        let err = load_custom(&data).unwrap_err().to_string();
        assert!(err.contains("task.toml") && err.contains("extrator") && err.contains("line 2"), "{err}");
        let (_dir, data) = folder("train = \"ten\"\n");
        let err = load_custom(&data).unwrap_err().to_string();
        assert!(err.contains("task.toml") && err.contains("train"), "{err}");
        let (_dir, data) = folder("placement = \"middle\"\n");
        let err = load_custom(&data).unwrap_err().to_string();
        assert!(err.contains("placement") || err.contains("middle"), "{err}");
    }
}
