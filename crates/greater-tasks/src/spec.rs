//! Task specifications: answer kind, labels, extractor, flexible pattern, data source and split rule.
//!
//! The specifications are data: `datasets/tasks.toml` at the repository root, embedded with `include_str!` so the
//! binary works anywhere. This module turns its tables into resolved [`TaskSpec`]s; label oddities of the data
//! (labels beyond an extractor's list, targets that fit no label) are expressed there, not in code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::generate::Generator;

/// The embedded task specification file (`datasets/tasks.toml`).
pub const TASKS_TOML: &str = include_str!("../../../datasets/tasks.toml");

/// What an answer looks like, which decides normalisation, matching and the flexible pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// One letter of a closed set, e.g. `A`–`E`; gold `(C)` normalises to `C`.
    Letter,
    /// `Yes` / `No` (spelling per task), matched case-insensitively.
    YesNo,
    /// `True` / `False`, matched case-insensitively.
    TrueFalse,
    /// `valid` / `invalid`, matched case-insensitively.
    ValidInvalid,
    /// An integer such as `-50`.
    Integer,
    /// A decimal number such as `1,080` or `2.5` (thousands separators removed, trailing zeros dropped).
    Number,
    /// Any non-empty text, compared exactly after normalisation.
    FreeText,
}

impl AnswerKind {
    /// Every kind, in declaration order.
    pub const ALL: [AnswerKind; 7] = [
        AnswerKind::Letter,
        AnswerKind::YesNo,
        AnswerKind::TrueFalse,
        AnswerKind::ValidInvalid,
        AnswerKind::Integer,
        AnswerKind::Number,
        AnswerKind::FreeText,
    ];

    /// The snake_case name used in `tasks.toml` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            AnswerKind::Letter => "letter",
            AnswerKind::YesNo => "yes_no",
            AnswerKind::TrueFalse => "true_false",
            AnswerKind::ValidInvalid => "valid_invalid",
            AnswerKind::Integer => "integer",
            AnswerKind::Number => "number",
            AnswerKind::FreeText => "free_text",
        }
    }

    /// Whether the kind has a closed label set (letters or a two-word set).
    pub fn is_closed(self) -> bool {
        matches!(self, AnswerKind::Letter | AnswerKind::YesNo | AnswerKind::TrueFalse | AnswerKind::ValidInvalid)
    }

    /// Whether answers are matched to labels ignoring ASCII case (SPEC A6).
    pub fn is_case_insensitive(self) -> bool {
        matches!(self, AnswerKind::YesNo | AnswerKind::TrueFalse | AnswerKind::ValidInvalid)
    }
}

/// How rows become train, dev and test splits (SPEC A7), deterministic in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitRule {
    /// One file: train = first `train` rows, dev = next `dev`, test = the rest. With fewer than
    /// `train + 2 * dev` rows, the rows after train are halved: dev = the first ⌊rest/2⌋, test = the others.
    Pool {
        /// Train rows.
        train: usize,
        /// Dev rows (when the pool is large enough).
        dev: usize,
    },
    /// Two files: train and dev from the head of the first, test = the whole second file.
    SeparateTest {
        /// Train rows.
        train: usize,
        /// Dev rows.
        dev: usize,
    },
    /// Fresh generated examples: one seeded stream gives train, then dev, then test, inputs never repeated.
    Generated {
        /// Train examples.
        train: usize,
        /// Dev examples.
        dev: usize,
        /// Test examples.
        test: usize,
        /// Seed of the stream.
        seed: u64,
    },
}

/// Where a task's rows come from. Paths of built-in tasks are relative to the data root.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub enum Source {
    /// A BBH file `{"examples": [{"input", "target"}]}`.
    Bbh {
        /// Relative path, e.g. `bbh/navigate.json`.
        file: PathBuf,
    },
    /// GSM8K JSONL files `{"question", "answer"}`; the gold follows the last `####`.
    Gsm8k {
        /// Train (and dev) file.
        train_file: PathBuf,
        /// Test file.
        test_file: PathBuf,
    },
    /// FOLIO JSONL files `{"premises": [..], "conclusion", "label"}`.
    Folio {
        /// Train (and dev) file.
        train_file: PathBuf,
        /// Test file.
        test_file: PathBuf,
        /// Rendering of one item, with `{premises}` (one per line) and `{conclusion}`.
        template: String,
        /// Data label → letter.
        label_map: BTreeMap<String, String>,
        /// Option texts, in letter order.
        choices: Vec<String>,
    },
    /// A user JSONL file `{"input", "target", "choices"?}` (absolute or relative to the working directory).
    Custom {
        /// The file.
        file: PathBuf,
    },
    /// A built-in generator.
    Generated {
        /// The generator.
        generator: Generator,
    },
}

/// A resolved task specification.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSpec {
    /// Registry name, e.g. `bbh/navigate`, `gsm8k`, `gen/word_sorting` or a `.jsonl` path.
    pub name: String,
    /// Answer kind.
    pub kind: AnswerKind,
    /// Closed label set in canonical spelling (e.g. `["A", "B"]`, `["yes", "no"]`); empty for open kinds.
    pub labels: Vec<String>,
    /// Extractor text, appended after the reasoning; trailing whitespace significant (see [`crate::split_extractor`]).
    pub extractor: String,
    /// Regex of the flexible score (last match in the reasoning); `None` for free text without a pattern.
    pub pattern: Option<String>,
    /// Raw targets that fit no label of the kind; kept and compared as free text.
    pub odd_targets: Vec<String>,
    /// Where the rows come from.
    pub source: Source,
    /// How rows become splits.
    pub split: SplitRule,
    /// Where the prompt goes, when the task says (a custom task's spec file); else the run's.
    pub placement: Option<crate::prompt::PromptPlace>,
    #[serde(skip)]
    pub(crate) flexible: Option<Regex>,
}

impl TaskSpec {
    /// Replaces the extractor (SPEC A8: a task may override its extractor).
    pub fn with_extractor(mut self, extractor: impl Into<String>) -> Self {
        self.extractor = extractor.into();
        self
    }

    /// Replaces the flexible pattern; `{letters}` expands to the task's letters.
    pub fn with_pattern(mut self, pattern: &str) -> Result<Self, TaskError> {
        let (source, regex) = compile_pattern(&self.name, pattern, &self.labels)?;
        self.pattern = Some(source);
        self.flexible = Some(regex);
        Ok(self)
    }
}

/// Parses and resolves a task-spec file with the layout of `tasks.toml`; returns the task names.
/// The registry does this for the built-in file; this entry point lets tools (the fuzzer, a
/// check of an edited copy) run the same checks on any text.
pub fn check_spec_file(text: &str) -> Result<Vec<String>, TaskError> {
    Ok(SpecFile::parse(text)?.resolve_all()?.into_keys().collect())
}

/// Per-kind defaults (`[kinds.*]` of `tasks.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KindDefaults {
    pub labels: Option<Vec<String>>,
    pub pattern: Option<String>,
    pub extractor: String,
}

/// The parsed `tasks.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpecFile {
    pub kinds: BTreeMap<String, KindDefaults>,
    pub splits: BTreeMap<String, SplitRule>,
    pub bbh: BTreeMap<String, RawTable>,
    pub gsm8k: RawTable,
    pub folio: RawTable,
    pub generated: BTreeMap<String, RawGenerated>,
}

/// One task table of `tasks.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTable {
    answer: AnswerKind,
    letters: Option<String>,
    labels: Option<Vec<String>>,
    extractor: String,
    pattern: Option<String>,
    #[serde(default)]
    odd_targets: Vec<String>,
    train_file: Option<PathBuf>,
    test_file: Option<PathBuf>,
    choices: Option<Vec<String>>,
    template: Option<String>,
    label_map: Option<BTreeMap<String, String>>,
}

/// One `[generated."gen/…"]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGenerated {
    like: String,
}

impl SpecFile {
    /// Parses `text` (the contents of `tasks.toml`).
    pub fn parse(text: &str) -> Result<Self, TaskError> {
        let file: SpecFile =
            toml::from_str(text).map_err(|e| TaskError::Spec { task: "tasks.toml".into(), message: e.to_string() })?;
        for kind in AnswerKind::ALL {
            if !file.kinds.contains_key(kind.name()) {
                return Err(spec_error("tasks.toml", format!("[kinds.{}] is missing", kind.name())));
            }
        }
        Ok(file)
    }

    /// The split rule `[splits.<name>]`.
    pub fn split(&self, name: &str) -> Result<SplitRule, TaskError> {
        self.splits.get(name).cloned().ok_or_else(|| spec_error("tasks.toml", format!("[splits.{name}] is missing")))
    }

    /// Resolves every built-in task, keyed by registry name.
    pub fn resolve_all(&self) -> Result<BTreeMap<String, TaskSpec>, TaskError> {
        let mut specs = BTreeMap::new();
        for (task, table) in &self.bbh {
            let name = format!("bbh/{task}");
            let source = Source::Bbh { file: PathBuf::from(format!("bbh/{task}.json")) };
            let spec = self.resolve(&name, table, source, self.split("bbh")?)?;
            specs.insert(name, spec);
        }
        let (train_file, test_file) = two_files("gsm8k", &self.gsm8k)?;
        let spec = self.resolve("gsm8k", &self.gsm8k, Source::Gsm8k { train_file, test_file }, self.split("gsm8k")?)?;
        specs.insert("gsm8k".into(), spec);

        let folio = &self.folio;
        let (train_file, test_file) = two_files("folio", folio)?;
        let missing = |field: &str| spec_error("folio", format!("`{field}` is missing"));
        let source = Source::Folio {
            train_file,
            test_file,
            template: folio.template.clone().ok_or_else(|| missing("template"))?,
            label_map: folio.label_map.clone().ok_or_else(|| missing("label_map"))?,
            choices: folio.choices.clone().ok_or_else(|| missing("choices"))?,
        };
        specs.insert("folio".into(), self.resolve("folio", folio, source, self.split("folio")?)?);

        for (name, generated) in &self.generated {
            let generator = Generator::from_task_name(name)
                .ok_or_else(|| spec_error(name, "no built-in generator has this name".into()))?;
            let like = self
                .bbh
                .get(&generated.like)
                .ok_or_else(|| spec_error(name, format!("`like = \"{}\"` names no BBH task", generated.like)))?;
            let spec = self.resolve(name, like, Source::Generated { generator }, self.split("generated")?)?;
            specs.insert(name.clone(), spec);
        }
        Ok(specs)
    }

    /// A spec for a custom file whose kind and letters were inferred from its targets.
    pub fn custom(
        &self,
        name: &str,
        kind: AnswerKind,
        letters: Option<String>,
        file: PathBuf,
        custom: &crate::custom_spec::CustomSpec,
    ) -> Result<TaskSpec, TaskError> {
        let defaults = &self.kinds[kind.name()];
        let mut extractor = custom.extractor.clone().unwrap_or_else(|| defaults.extractor.clone());
        if let Some(letters) = &letters {
            let options: Vec<String> = letters.chars().map(|c| format!("'${c}'")).collect();
            extractor = extractor.replace("{options}", &options.join(" or "));
        }
        let table = RawTable {
            answer: kind,
            letters,
            labels: custom.labels.clone(),
            extractor,
            pattern: custom.pattern.clone(),
            odd_targets: Vec::new(),
            train_file: None,
            test_file: None,
            choices: None,
            template: None,
            label_map: None,
        };
        let split = match (self.split("custom")?, custom.train, custom.dev) {
            (SplitRule::Pool { train, dev }, t, d) => {
                SplitRule::Pool { train: t.unwrap_or(train), dev: d.unwrap_or(dev) }
            }
            (other, _, _) => other,
        };
        let mut spec = self.resolve(name, &table, Source::Custom { file }, split)?;
        spec.placement = custom.placement;
        Ok(spec)
    }

    fn resolve(&self, name: &str, table: &RawTable, source: Source, split: SplitRule) -> Result<TaskSpec, TaskError> {
        let kind = table.answer;
        let defaults = &self.kinds[kind.name()];
        let labels: Vec<String> = match kind {
            AnswerKind::Letter => {
                let letters =
                    table.letters.as_deref().ok_or_else(|| spec_error(name, "letter task without `letters`".into()))?;
                if letters.is_empty() || !letters.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(spec_error(name, format!("`letters = \"{letters}\"` must be uppercase ASCII letters")));
                }
                letters.chars().map(String::from).collect()
            }
            _ if kind.is_closed() => table
                .labels
                .clone()
                .or_else(|| defaults.labels.clone())
                .ok_or_else(|| spec_error(name, format!("no labels for kind {}", kind.name())))?,
            _ => Vec::new(),
        };
        if kind != AnswerKind::Letter && table.letters.is_some() {
            return Err(spec_error(name, format!("`letters` given for kind {}", kind.name())));
        }
        let pattern_text = table.pattern.as_deref().or(defaults.pattern.as_deref());
        let (pattern, flexible) = match pattern_text {
            Some(p) => {
                let (source, regex) = compile_pattern(name, p, &labels)?;
                (Some(source), Some(regex))
            }
            None => (None, None),
        };
        if table.extractor.trim().is_empty() {
            return Err(spec_error(name, "empty extractor".into()));
        }
        Ok(TaskSpec {
            name: name.to_owned(),
            kind,
            labels,
            extractor: table.extractor.clone(),
            pattern,
            odd_targets: table.odd_targets.clone(),
            source,
            split,
            placement: None,
            flexible,
        })
    }
}

fn two_files(task: &str, table: &RawTable) -> Result<(PathBuf, PathBuf), TaskError> {
    let train = table.train_file.clone().ok_or_else(|| spec_error(task, "`train_file` is missing".into()))?;
    let test = table.test_file.clone().ok_or_else(|| spec_error(task, "`test_file` is missing".into()))?;
    Ok((train, test))
}

fn compile_pattern(task: &str, pattern: &str, labels: &[String]) -> Result<(String, Regex), TaskError> {
    let letters: String = labels.iter().filter(|l| l.len() == 1).map(String::as_str).collect();
    let source = pattern.replace("{letters}", &letters);
    let regex = Regex::new(&source).map_err(|e| spec_error(task, format!("bad pattern `{source}`: {e}")))?;
    Ok((source, regex))
}

fn spec_error(task: &str, message: String) -> TaskError {
    TaskError::Spec { task: task.to_owned(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> BTreeMap<String, TaskSpec> {
        SpecFile::parse(TASKS_TOML).unwrap().resolve_all().unwrap()
    }

    #[test]
    fn embedded_file_has_27_bbh_tasks_and_the_others() {
        let specs = specs();
        assert_eq!(specs.keys().filter(|k| k.starts_with("bbh/")).count(), 27);
        assert_eq!(specs.keys().filter(|k| k.starts_with("gen/")).count(), 4);
        assert!(specs.contains_key("gsm8k") && specs.contains_key("folio"));
        assert_eq!(specs.len(), 33);
    }

    #[test]
    fn extractor_trailing_spaces_follow_b21() {
        let specs = specs();
        // SPEC B.2.1: Yes/No/True/False/valid/yes extractors end with "$ ", the others with "$".
        for (name, spec) in &specs {
            let ends_with_space = spec.extractor.ends_with("$ ");
            assert_eq!(ends_with_space, spec.kind.is_case_insensitive(), "{name}: {:?}", spec.extractor);
            assert!(spec.extractor.starts_with("Therefore, the final answer ("), "{name}");
        }
        assert_eq!(
            specs["bbh/sports_understanding"].extractor,
            "Therefore, the final answer (use exact format: '$ yes' or '$ no') is $ "
        );
        assert_eq!(specs["bbh/sports_understanding"].labels, ["yes", "no"]);
        assert_eq!(specs["bbh/web_of_lies"].labels, ["Yes", "No"]);
    }

    #[test]
    fn label_oddities_live_in_the_data() {
        let specs = specs();
        assert_eq!(specs["bbh/date_understanding"].labels.concat(), "ABCDEF");
        assert!(specs["bbh/date_understanding"].extractor.contains("'$E') is $"));
        assert_eq!(specs["bbh/movie_recommendation"].odd_targets, ["Monsters, Inc"]);
        assert_eq!(specs["bbh/ruin_names"].odd_targets.len(), 2);
        assert_eq!(specs["bbh/geometric_shapes"].labels.len(), 11);
    }

    #[test]
    fn letter_pattern_expands_letters() {
        let specs = specs();
        let spec = &specs["bbh/hyperbaton"];
        assert!(spec.pattern.as_deref().unwrap().starts_with(r"\(([AB])\)"), "{:?}", spec.pattern);
        assert!(specs["bbh/word_sorting"].pattern.is_none());
    }

    #[test]
    fn bad_tables_are_reported() {
        let broken = TASKS_TOML.replacen("answer = \"letter\"\nletters = \"ABC\"\n", "answer = \"letter\"\n", 1);
        let err = SpecFile::parse(&broken).unwrap().resolve_all().unwrap_err();
        assert!(err.to_string().contains("without `letters`"), "{err}");
        let typo = TASKS_TOML.replacen("answer = \"yes_no\"", "answer = \"yesno\"", 1);
        assert!(SpecFile::parse(&typo).is_err());
    }
}
