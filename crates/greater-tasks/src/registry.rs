//! The task registry: names, specs and loading.
//!
//! Names: `bbh/<task>` (27 BBH tasks), `gsm8k`, `folio`, `gen/<generator>` (seeded generated tasks), and any
//! path ending in `.jsonl` (a custom task, relative to the working directory). Built-in data lives under a data
//! root passed in by the caller (the CLI reads `$GREATER_DATA`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::custom;
use crate::custom_spec::{CustomOptions, CustomSpec};
use crate::error::TaskError;
use crate::example::Task;
use crate::loaders::{Fields, parse_bbh, parse_folio, parse_gsm8k, read_data_file, rows_to_examples};
use crate::spec::{AnswerKind, Source, SpecFile, SplitRule, TASKS_TOML, TaskSpec};
use crate::split::{split_pool, split_separate};

struct Registry {
    file: SpecFile,
    specs: BTreeMap<String, TaskSpec>,
}

static REGISTRY: LazyLock<Result<Registry, String>> = LazyLock::new(|| {
    let file = SpecFile::parse(TASKS_TOML).map_err(|e| e.to_string())?;
    let specs = file.resolve_all().map_err(|e| e.to_string())?;
    Ok(Registry { file, specs })
});

fn registry() -> Result<&'static Registry, TaskError> {
    REGISTRY.as_ref().map_err(|message| TaskError::Spec { task: "tasks.toml".into(), message: message.clone() })
}

/// Every built-in task name, sorted (`bbh/…`, `folio`, `gen/…`, `gsm8k`).
pub fn task_names() -> Vec<String> {
    registry().map(|r| r.specs.keys().cloned().collect()).unwrap_or_default()
}

/// Whether `name` is taken as a custom JSONL or CSV file rather than a registry name.
pub fn is_custom_name(name: &str) -> bool {
    name.ends_with(".jsonl") || name.ends_with(".csv")
}

/// The spec of a built-in task; an unknown name is an error listing the closest names.
pub fn spec(name: &str) -> Result<TaskSpec, TaskError> {
    let registry = registry()?;
    registry
        .specs
        .get(name)
        .cloned()
        .ok_or_else(|| TaskError::UnknownTask { name: name.to_owned(), suggestions: closest_names(name, 3) })
}

/// Loads a task by name: a built-in task from `data_root`, or a custom `.jsonl` or `.csv` file.
///
/// Generated tasks (`gen/…`) need no data. A missing data file is a [`TaskError::MissingData`] that says how to
/// get the datasets.
pub fn load_task(name: &str, data_root: &Path) -> Result<Task, TaskError> {
    if is_custom_name(name) {
        return load_custom(Path::new(name));
    }
    load(spec(name)?, data_root)
}

/// Loads the rows of `spec` (possibly edited, e.g. another extractor or generator seed) and splits them.
pub fn load(spec: TaskSpec, data_root: &Path) -> Result<Task, TaskError> {
    let name = spec.name.clone();
    let [train, dev, test] = match (&spec.source, &spec.split) {
        (Source::Bbh { file }, SplitRule::Pool { train, dev }) => {
            let (path, text) = read_data_file(data_root, file)?;
            let examples = rows_to_examples(&spec, &path, parse_bbh(&path, &text)?)?;
            split_pool(&name, &path, examples, *train, *dev)?
        }
        (Source::Gsm8k { train_file, test_file }, SplitRule::SeparateTest { train, dev }) => {
            let (pool_path, pool_text) = read_data_file(data_root, train_file)?;
            let (test_path, test_text) = read_data_file(data_root, test_file)?;
            // Only the head of the (large) train file is used; parse just as many lines as needed.
            let head: String = pool_text.lines().take(train + dev).flat_map(|l| [l, "\n"]).collect();
            let pool = rows_to_examples(&spec, &pool_path, parse_gsm8k(&pool_path, &head)?)?;
            let test = rows_to_examples(&spec, &test_path, parse_gsm8k(&test_path, &test_text)?)?;
            split_separate(&name, (&pool_path, pool), (&test_path, test), *train, *dev)?
        }
        (
            Source::Folio { train_file, test_file, template, label_map, choices },
            SplitRule::SeparateTest { train, dev },
        ) => {
            let (pool_path, pool_text) = read_data_file(data_root, train_file)?;
            let (test_path, test_text) = read_data_file(data_root, test_file)?;
            let parse = |path: &Path, text: &str| parse_folio(path, text, template, label_map, choices);
            let pool = rows_to_examples(&spec, &pool_path, parse(&pool_path, &pool_text)?)?;
            let test = rows_to_examples(&spec, &test_path, parse(&test_path, &test_text)?)?;
            split_separate(&name, (&pool_path, pool), (&test_path, test), *train, *dev)?
        }
        (Source::Custom { file }, SplitRule::Pool { train, dev }) => {
            let rows = custom::rows(file, &Fields::default())?;
            let examples = rows_to_examples(&spec, file, rows)?;
            split_pool(&name, file, examples, *train, *dev)?
        }
        (Source::Generated { generator }, SplitRule::Generated { train, dev, test, seed }) => {
            let mut all = generator.distinct(*seed, train + dev + test)?;
            let test_part = all.split_off(train + dev);
            let dev_part = all.split_off(*train);
            [all, dev_part, test_part]
        }
        (source, split) => {
            return Err(TaskError::Spec {
                task: name,
                message: format!("split rule {split:?} does not apply to source {source:?}"),
            });
        }
    };
    tracing::debug!(task = %name, train = train.len(), dev = dev.len(), test = test.len(), "loaded task");
    Ok(Task { name, spec, train, dev, test })
}

/// Loads a custom JSONL or CSV task `{"input", "target", "choices"?}` with the spec beside it
/// (`<file>.toml`, when there is one), inferring what the spec leaves out from the targets.
pub fn load_custom(path: &Path) -> Result<Task, TaskError> {
    load_custom_with(path, &CustomOptions::default())
}

/// [`load_custom`] with another spec file or field names.
pub fn load_custom_with(path: &Path, options: &CustomOptions) -> Result<Task, TaskError> {
    let registry = registry()?;
    let (file_spec, _) = CustomSpec::find(path, options)?;
    let rows = custom::rows(path, &file_spec.fields(options))?;
    let (inferred, inferred_letters) = custom::infer_kind(&rows);
    let kind = file_spec.answer.unwrap_or(inferred);
    let letters = match kind {
        AnswerKind::Letter => file_spec.letters.clone().or(inferred_letters),
        _ => None,
    };
    let name = path.display().to_string();
    let spec = registry.file.custom(&name, kind, letters, PathBuf::from(path), &file_spec)?;
    let examples = rows_to_examples(&spec, path, rows)?;
    let SplitRule::Pool { train, dev } = spec.split else {
        return Err(TaskError::Spec { task: spec.name, message: "custom tasks need a pool split rule".into() });
    };
    let [train, dev, test] = split_pool(&spec.name, path, examples, train, dev)?;
    Ok(Task { name: spec.name.clone(), spec, train, dev, test })
}

/// The `n` registry names closest to `name` by edit distance (also against the part after `bbh/` or `gen/`).
pub fn closest_names(name: &str, n: usize) -> Vec<String> {
    let mut scored: Vec<(usize, String)> = task_names()
        .into_iter()
        .map(|candidate| {
            let short = candidate.rsplit('/').next().unwrap_or(&candidate);
            let d = edit_distance(name, &candidate).min(edit_distance(name, short));
            (d, candidate)
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_by_hand() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("snarks", "snarks"), 0);
        assert_eq!(edit_distance("navigte", "navigate"), 1);
    }

    #[test]
    fn unknown_task_lists_closest_names() {
        let err = spec("bbh/navigte").unwrap_err();
        assert!(matches!(&err, TaskError::UnknownTask { suggestions, .. } if suggestions[0] == "bbh/navigate"));
        assert!(err.to_string().starts_with("unknown task `bbh/navigte`; closest: bbh/navigate"), "{err}");
        let names = closest_names("boolean_expressions", 2);
        assert_eq!(names, ["bbh/boolean_expressions", "gen/boolean_expressions"]);
        assert_eq!(closest_name_of("gsm8"), "gsm8k");
    }

    fn closest_name_of(name: &str) -> String {
        closest_names(name, 1).remove(0)
    }

    #[test]
    fn missing_data_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_task("bbh/snarks", dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TaskError::MissingData { .. }));
        assert!(text.contains("bbh/snarks.json") && text.contains("cargo xtask fetch-data --from DIR"), "{text}");
        assert!(text.contains("GREATER_DATA"), "{text}");
    }

    #[test]
    fn generated_tasks_need_no_data() {
        let task = load_task("gen/word_sorting", Path::new("/nonexistent")).unwrap();
        assert_eq!((task.train.len(), task.dev.len(), task.test.len()), (50, 100, 100));
    }
}
