//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while resolving, loading or scoring a task.
///
/// Messages start lowercase, name the file (and line or row) and carry what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The data folder (or one file in it) does not exist.
    #[error(
        "data file {missing} not found (data folder {root}); get the datasets with \
         `cargo xtask fetch-data --from DIR`, or set GREATER_DATA to a folder that holds bbh/, gsm8k/ and folio/"
    )]
    MissingData {
        /// The data root that was searched.
        root: PathBuf,
        /// The file that was expected under it.
        missing: PathBuf,
    },
    /// The task name is not in the registry and is not a `.jsonl` path.
    #[error("unknown task `{name}`; closest: {}", suggestions.join(", "))]
    UnknownTask {
        /// The name as given.
        name: String,
        /// The closest registered names by edit distance, closest first.
        suggestions: Vec<String>,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON or JSONL file is malformed.
    #[error("{path}:{line}: malformed JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A CSV file could not be read (unbalanced quotes, a row with the wrong number of fields).
    #[error("{path}: line {line}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: u64,
        /// The parser's message.
        message: String,
    },
    /// A data file, or one line of it, is larger than the reader accepts; nothing was allocated for it.
    #[error("{path}: {at} is longer than the {limit}-byte limit ({what}); the file is not a task file or is corrupt")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// `the file` or `line N`.
        at: String,
        /// The limit in bytes.
        limit: u64,
        /// Which limit (e.g. "MAX_LINE_BYTES").
        what: &'static str,
    },
    /// A row lacks a field (or the field has the wrong type).
    #[error("{path}: {at}: field `{field}` is missing or not {expected}")]
    Field {
        /// The file.
        path: PathBuf,
        /// Where in the file, e.g. "line 12" or "examples[3]".
        at: String,
        /// The field name.
        field: String,
        /// What the field should be, e.g. "a string".
        expected: String,
    },
    /// A gold target does not fit the task's answer kind.
    #[error("{path}: {at}: target `{target}` does not fit answer kind {kind} (expected {expected})")]
    TargetDoesNotFit {
        /// The file (or the generator, for generated tasks).
        path: PathBuf,
        /// Where in the file, e.g. "line 12" or "examples[3]".
        at: String,
        /// The raw target.
        target: String,
        /// The answer kind's name.
        kind: String,
        /// What would fit, e.g. "one of A, B, C".
        expected: String,
    },
    /// A split came out empty.
    #[error("task `{task}`: the {split} split is empty ({rows} rows in {path}; at least {needed} needed)")]
    EmptySplit {
        /// The task name.
        task: String,
        /// "train", "dev" or "test".
        split: &'static str,
        /// The file the split comes from.
        path: PathBuf,
        /// Rows found.
        rows: usize,
        /// Rows needed for every split to be non-empty.
        needed: usize,
    },
    /// The embedded (or a custom) task specification is invalid.
    #[error("task spec `{task}`: {message}")]
    Spec {
        /// The task (or table) name.
        task: String,
        /// What is wrong.
        message: String,
    },
    /// A generator could not produce enough distinct examples.
    #[error("generator `{generator}`: only {made} distinct examples after {tries} tries, {wanted} wanted")]
    GeneratorExhausted {
        /// The generator's name.
        generator: String,
        /// Distinct examples made.
        made: usize,
        /// Examples wanted.
        wanted: usize,
        /// Draws tried.
        tries: usize,
    },
    /// Two result lists that must be paired have different lengths.
    #[error("paired comparison: {left} results against {right}; both prompts must score the same examples")]
    LengthMismatch {
        /// Length of the first list.
        left: usize,
        /// Length of the second list.
        right: usize,
    },
}
