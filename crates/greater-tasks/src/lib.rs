//! Tasks for greater: datasets, splits, prompts, answer extraction and scoring. Plain Rust (no burn).
//!
//! - [`load_task`] resolves a name — `bbh/<task>` (27 BBH tasks), `gsm8k`, `folio`, `gen/<generator>` or a
//!   `.jsonl` path — and returns a [`Task`] with train/dev/test splits (SPEC A7). Built-in data lives under a
//!   data root passed in by the caller (the CLI reads `$GREATER_DATA`).
//! - [`TaskSpec`] holds the answer kind, labels, extractor (SPEC A8, B.2.1 Llama-3 column) and flexible pattern,
//!   read from `datasets/tasks.toml`, which is embedded in the binary.
//! - [`user_turn`] builds `{question}{joiner}{frozen_prefix}{prompt}` (SPEC A3).
//! - Answers (SPEC A6): [`normalise`], [`TaskSpec::score_answer`], [`TaskSpec::flexible_answer`],
//!   [`split_extractor`] (token healing) and [`TaskSpec::training_target`].
//! - Statistics: [`Accuracy`] (95% Wilson interval), [`PairedComparison`] (exact McNemar), [`ScoreSummary`].

mod answer;
mod custom;
mod custom_spec;
mod error;
mod example;
mod generate;
mod loaders;
mod prompt;
mod registry;
mod spec;
mod split;
mod stats;
mod variants;

pub use answer::{AnswerScore, cut_continuation, normalise, split_extractor};
pub use custom_spec::CustomOptions;
pub use error::TaskError;
pub use example::{Example, Split, Task};
pub use generate::{COUNTING_CATEGORIES, COUNTING_ITEMS, CountingItem, Generator, word_list};
pub use loaders::{MAX_FILE_BYTES, MAX_LINE_BYTES};
pub use prompt::{DEFAULT_FROZEN_PREFIX, DEFAULT_INITIAL_PROMPT, DEFAULT_JOINER, PromptLayout, PromptPlace, user_turn};
pub use registry::{
    closest_names, edit_distance, is_custom_name, load, load_custom, load_custom_with, load_task, spec, task_names,
};
pub use spec::{AnswerKind, Source, SplitRule, TASKS_TOML, TaskSpec, check_spec_file};
pub use split::{head_ranges, pool_ranges};
pub use stats::{Accuracy, PairedComparison, ScoreSummary, Z_95, mcnemar_exact, wilson_interval};
