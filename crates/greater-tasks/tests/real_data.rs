//! Tests on the real datasets (SPEC A7 split sizes, every BBH target fits its answer kind, FOLIO rendering).
//!
//! Data: `$GREATER_DATA`, else `<CARGO_MANIFEST_DIR>/../../../shared/datasets`. When absent the tests print a
//! note and pass, unless `GREATER_REQUIRE_MODELS=1`, which makes them fail.

use std::path::{Path, PathBuf};

use greater_tasks::{AnswerKind, Split, TaskError, load_task, task_names};

fn data_root() -> Option<PathBuf> {
    let root = greater_testkit::data_root();
    if root.join("bbh").is_dir() {
        return Some(root);
    }
    greater_testkit::unavailable(&format!("datasets not found at {} (set GREATER_DATA)", root.display()));
    None
}

fn sizes(name: &str, root: &Path) -> (usize, usize, usize) {
    let task = load_task(name, root).unwrap_or_else(|e| panic!("{name}: {e}"));
    (task.train.len(), task.dev.len(), task.test.len())
}

#[test]
fn bbh_split_sizes_follow_a7() {
    let Some(root) = data_root() else { return };
    assert_eq!(sizes("bbh/navigate", &root), (50, 100, 100));
    // 187 rows: rest 137 → dev ⌊137/2⌋ = 68, test 69.
    assert_eq!(sizes("bbh/causal_judgement", &root), (50, 68, 69));
    // 146 rows: rest 96 → 48 / 48.
    assert_eq!(sizes("bbh/penguins_in_a_table", &root), (50, 48, 48));
    // 178 rows: rest 128 → 64 / 64.
    assert_eq!(sizes("bbh/snarks", &root), (50, 64, 64));
}

#[test]
fn splits_are_in_file_order() {
    let Some(root) = data_root() else { return };
    let text = std::fs::read_to_string(root.join("bbh/navigate.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = value["examples"].as_array().unwrap();
    let task = load_task("bbh/navigate", &root).unwrap();
    let all: Vec<_> = Split::ALL.iter().flat_map(|&s| task.split(s).to_vec()).collect();
    assert_eq!(all.len(), rows.len());
    for (example, row) in all.iter().zip(rows) {
        assert_eq!(example.input, row["input"].as_str().unwrap());
        assert_eq!(example.raw_target, row["target"].as_str().unwrap());
    }
    assert_eq!(load_task("bbh/navigate", &root).unwrap().dev, task.dev, "deterministic");
}

#[test]
fn every_bbh_task_loads_and_every_target_fits() {
    let Some(root) = data_root() else { return };
    let names: Vec<String> = task_names().into_iter().filter(|n| n.starts_with("bbh/")).collect();
    assert_eq!(names.len(), 27);
    for name in names {
        let task = load_task(&name, &root).unwrap_or_else(|e| panic!("{name}: {e}"));
        let spec = &task.spec;
        for example in Split::ALL.iter().flat_map(|&s| task.split(s)) {
            let fits = spec.canonical(&example.target).as_deref() == Some(example.target.as_str());
            let odd = spec.odd_targets.contains(&example.raw_target);
            assert!(fits || odd, "{name}: target {:?} (raw {:?})", example.target, example.raw_target);
            if spec.kind == AnswerKind::Letter && !odd {
                assert_eq!(example.raw_target, format!("({})", example.target), "{name}");
            }
            assert!(!example.input.is_empty());
        }
    }
}

#[test]
fn label_oddities_are_kept_in_place() {
    let Some(root) = data_root() else { return };
    let date = load_task("bbh/date_understanding", &root).unwrap();
    assert_eq!(date.train.iter().filter(|e| e.target == "F").count(), 5, "SPEC B.2.1: 5 × (F) in the first 50");
    let movie = load_task("bbh/movie_recommendation", &root).unwrap();
    assert_eq!(movie.train.iter().filter(|e| e.target == "E").count(), 1);
    // Row 163 = test index 13.
    assert_eq!(movie.test[13].target, "Monsters, Inc");
    let ruin = load_task("bbh/ruin_names", &root).unwrap();
    // Rows 99 and 144 are dev indices 49 and 94.
    assert_eq!(ruin.dev[49].target, "dearth, wind, & fire");
    assert_eq!(ruin.dev[94].target, "rita, sue and bob poo");
}

#[test]
fn gsm8k_splits_and_numbers() {
    let Some(root) = data_root() else { return };
    let task = load_task("gsm8k", &root).unwrap();
    assert_eq!((task.train.len(), task.dev.len(), task.test.len()), (100, 100, 1319));
    // First train row: "... #### 72".
    assert_eq!(task.train[0].target, "72");
    assert!(task.train[0].input.starts_with("Natalia sold clips"));
    for example in task.train.iter().chain(&task.dev).chain(&task.test) {
        assert!(!example.target.contains(','), "{}", example.raw_target);
        assert_eq!(task.spec.canonical(&example.raw_target).as_deref(), Some(example.target.as_str()));
    }
    assert!(task.test.iter().any(|e| e.raw_target.contains(',')), "thousands separators exist in the test file");
}

#[test]
fn folio_is_rendered_as_a7_says() {
    let Some(root) = data_root() else { return };
    let task = load_task("folio", &root).unwrap();
    let test_rows = std::fs::read_to_string(root.join("folio/folio-validation.jsonl")).unwrap().lines().count();
    assert_eq!((task.train.len(), task.dev.len(), task.test.len()), (100, 100, test_rows));
    let first = &task.train[0];
    assert!(first.input.starts_with("Premise:\nAll people who regularly drink coffee are dependent on caffeine.\n"));
    assert!(first.input.contains(
        "\n\nQuestion:\nGiven the premise above, is the following statement true, false, or uncertain?\n\n\
         Statement: Rina is a person who jokes about being addicted to caffeine or unaware that caffeine is a drug.\n\n\
         Options:\n(A) True\n(B) False\n(C) Uncertain"
    ));
    assert!(first.input.ends_with("(C) Uncertain"));
    assert_eq!((first.target.as_str(), first.raw_target.as_str()), ("A", "True"));
    for example in task.train.iter().chain(&task.dev).chain(&task.test) {
        let expected = match example.raw_target.as_str() {
            "True" => "A",
            "False" => "B",
            "Uncertain" | "Unknown" => "C",
            other => panic!("label {other}"),
        };
        assert_eq!(example.target, expected);
        assert_eq!(example.choices, ["True", "False", "Uncertain"]);
    }
}

#[test]
fn bad_bbh_target_names_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bbh")).unwrap();
    let mut rows: Vec<String> = (0..250).map(|i| format!(r#"{{"input": "q{i}", "target": "Yes"}}"#)).collect();
    rows[3] = r#"{"input": "q3", "target": "Maybe"}"#.into();
    let file = dir.path().join("bbh/navigate.json");
    std::fs::write(&file, format!("{{\"examples\": [{}]}}", rows.join(",\n"))).unwrap();
    let err = load_task("bbh/navigate", dir.path()).unwrap_err();
    assert!(matches!(err, TaskError::TargetDoesNotFit { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: examples[3]: target `Maybe` does not fit answer kind yes_no (expected one of Yes, No)",
            file.display()
        )
    );
    std::fs::write(
        &file,
        "{\"examples\": [\n{\"input\": \"q\", \"target\": \"Yes\"},\n{\"input\": \"q\" \"target\": \"No\"}]}",
    )
    .unwrap();
    let err = load_task("bbh/navigate", dir.path()).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:3: malformed JSON", file.display())), "{err}");
    std::fs::write(&file, "{\"examples\": []}").unwrap();
    let err = load_task("bbh/navigate", dir.path()).unwrap_err().to_string();
    assert!(err.contains("the train split is empty (0 rows"), "{err}");
}
