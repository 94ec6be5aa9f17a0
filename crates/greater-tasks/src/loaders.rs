//! Readers for the data files: BBH JSON, GSM8K JSONL, FOLIO JSONL and custom JSONL.
//!
//! Readers return [`Row`]s in file order, each with its location for messages; turning a row's raw target into
//! a normalised gold (and rejecting targets that do not fit the answer kind) is done by [`rows_to_examples`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::TaskError;
use crate::example::Example;
use crate::spec::TaskSpec;

/// One data row before its target is checked against the answer kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// The question as shown to the model.
    pub input: String,
    /// The target as written in the file.
    pub raw_target: String,
    /// The target to normalise (differs from `raw_target` when a label map or choice list applies).
    pub target: String,
    /// Option texts, if any.
    pub choices: Vec<String>,
    /// Location for messages, e.g. `line 12` or `examples[3]`.
    pub at: String,
}

/// The longest data file read (1 GiB); checked from the file's size before reading.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// The longest line of a data file (16 MiB): a BBH file is a few hundred KiB, a JSONL row a few KiB.
pub const MAX_LINE_BYTES: u64 = 16 << 20;

/// Reads a file of a built-in task under `root`; a missing file is a [`TaskError::MissingData`].
pub(crate) fn read_data_file(root: &Path, relative: &Path) -> Result<(PathBuf, String), TaskError> {
    let path = root.join(relative);
    match read_limited(&path) {
        Err(TaskError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(TaskError::MissingData { root: root.to_owned(), missing: path })
        }
        Ok(text) => Ok((path, text)),
        Err(e) => Err(e),
    }
}

/// Reads any file, e.g. a custom task's JSONL.
pub(crate) fn read_file(path: &Path) -> Result<String, TaskError> {
    read_limited(path)
}

/// Reads `path` as UTF-8, refusing a file over [`MAX_FILE_BYTES`] (by its size, before reading)
/// and a line over [`MAX_LINE_BYTES`] (while streaming, before the line is held), so a corrupt or
/// hostile file is an error naming the file and line instead of an allocation of its size.
fn read_limited(path: &Path) -> Result<String, TaskError> {
    use std::io::{BufRead, Read};
    let io = |source| TaskError::Io { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        let (at, limit, what) = ("the file".into(), MAX_FILE_BYTES, "MAX_FILE_BYTES");
        return Err(TaskError::TooLarge { path: path.to_owned(), at, limit, what });
    }
    let mut reader = std::io::BufReader::new(file);
    let mut text = Vec::with_capacity(size.min(MAX_LINE_BYTES) as usize);
    for line in 1.. {
        let start = text.len();
        let n = (&mut reader).take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut text).map_err(io)?;
        if n == 0 {
            break;
        }
        let body = text[start..].strip_suffix(b"\n").unwrap_or(&text[start..]).len() as u64;
        if body > MAX_LINE_BYTES {
            let (at, limit, what) = (format!("line {line}"), MAX_LINE_BYTES, "MAX_LINE_BYTES");
            return Err(TaskError::TooLarge { path: path.to_owned(), at, limit, what });
        }
    }
    String::from_utf8(text).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {line} is not valid UTF-8")))
    })
}

/// Parses a BBH file `{"examples": [{"input", "target"}, ..]}`.
pub(crate) fn parse_bbh(path: &Path, text: &str) -> Result<Vec<Row>, TaskError> {
    let value: Value = serde_json::from_str(text).map_err(|source| TaskError::Json {
        path: path.to_owned(),
        line: source.line(),
        source,
    })?;
    let examples = value.get("examples").and_then(Value::as_array).ok_or_else(|| TaskError::Field {
        path: path.to_owned(),
        at: "top level".into(),
        field: "examples".into(),
        expected: "an array".into(),
    })?;
    examples
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("examples[{i}]");
            let input = string_field(path, &at, item, "input")?;
            let target = string_field(path, &at, item, "target")?;
            Ok(Row { input, raw_target: target.clone(), target, choices: Vec::new(), at })
        })
        .collect()
}

/// Parses GSM8K JSONL `{"question", "answer"}`; the target is the text after the last `####`.
pub(crate) fn parse_gsm8k(path: &Path, text: &str) -> Result<Vec<Row>, TaskError> {
    jsonl_values(path, text)?
        .into_iter()
        .map(|(at, item)| {
            let input = string_field(path, &at, &item, "question")?;
            let answer = string_field(path, &at, &item, "answer")?;
            let target =
                answer.rsplit_once("####").map(|(_, t)| t.trim().to_owned()).ok_or_else(|| TaskError::Field {
                    path: path.to_owned(),
                    at: at.clone(),
                    field: "answer".into(),
                    expected: "text ending in a `#### <answer>` line".into(),
                })?;
            Ok(Row { input, raw_target: target.clone(), target, choices: Vec::new(), at })
        })
        .collect()
}

/// Parses FOLIO JSONL, rendering each item with `template` and mapping its label through `label_map`.
pub(crate) fn parse_folio(
    path: &Path,
    text: &str,
    template: &str,
    label_map: &BTreeMap<String, String>,
    choices: &[String],
) -> Result<Vec<Row>, TaskError> {
    jsonl_values(path, text)?
        .into_iter()
        .map(|(at, item)| {
            let premises = match item.get("premises") {
                Some(Value::Array(list)) => {
                    list.iter().map(|p| p.as_str().map(str::trim)).collect::<Option<Vec<_>>>().map(|v| v.join("\n"))
                }
                Some(Value::String(s)) => Some(s.trim().to_owned()),
                _ => None,
            }
            .ok_or_else(|| TaskError::Field {
                path: path.to_owned(),
                at: at.clone(),
                field: "premises".into(),
                expected: "an array of strings".into(),
            })?;
            let conclusion = string_field(path, &at, &item, "conclusion")?;
            let label = string_field(path, &at, &item, "label")?;
            let letter = label_map.get(&label).cloned().ok_or_else(|| TaskError::TargetDoesNotFit {
                path: path.to_owned(),
                at: at.clone(),
                target: label.clone(),
                kind: "FOLIO label".into(),
                expected: format!("one of {}", label_map.keys().cloned().collect::<Vec<_>>().join(", ")),
            })?;
            let input = template.replace("{premises}", &premises).replace("{conclusion}", conclusion.trim());
            Ok(Row { input, raw_target: label, target: letter, choices: choices.to_vec(), at })
        })
        .collect()
}

/// Parses custom JSONL `{"input", "target", "choices"?}`. A numeric target is read as its JSON text.
pub(crate) fn parse_custom(path: &Path, text: &str, fields: &Fields<'_>) -> Result<Vec<Row>, TaskError> {
    jsonl_values(path, text)?
        .into_iter()
        .map(|(at, item)| {
            let input = string_field(path, &at, &item, fields.input)?;
            let target = match item.get(fields.target) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_owned(),
                _ => string_field(path, &at, &item, fields.target)?,
            };
            let choices = match item.get(fields.choices) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => {
                    list.iter().map(|c| c.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().ok_or_else(|| {
                        TaskError::Field {
                            path: path.to_owned(),
                            at: at.clone(),
                            field: fields.choices.into(),
                            expected: "an array of strings".into(),
                        }
                    })?
                }
                Some(_) => {
                    return Err(TaskError::Field {
                        path: path.to_owned(),
                        at,
                        field: fields.choices.into(),
                        expected: "an array of strings".into(),
                    });
                }
            };
            Ok(Row { input, raw_target: target.clone(), target, choices, at })
        })
        .collect()
}

/// The field (JSONL) or column (CSV) names of a custom file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    /// The question.
    pub input: &'a str,
    /// The gold answer.
    pub target: &'a str,
    /// Optional answer options.
    pub choices: &'a str,
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Self { input: "input", target: "target", choices: "choices" }
    }
}

/// Checks every row's target against `spec` and builds examples.
pub(crate) fn rows_to_examples(spec: &TaskSpec, path: &Path, rows: Vec<Row>) -> Result<Vec<Example>, TaskError> {
    rows.into_iter()
        .map(|row| {
            let target = spec.gold(&row.target).map_err(|expected| TaskError::TargetDoesNotFit {
                path: path.to_owned(),
                at: row.at.clone(),
                target: row.raw_target.clone(),
                kind: spec.kind.name().into(),
                expected,
            })?;
            Ok(Example { input: row.input, target, raw_target: row.raw_target, choices: row.choices })
        })
        .collect()
}

/// Parses JSONL into `(location, value)` pairs, skipping blank lines; errors name the 1-based line.
fn jsonl_values(path: &Path, text: &str) -> Result<Vec<(String, Value)>, TaskError> {
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|source| TaskError::Json {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        values.push((format!("line {}", i + 1), value));
    }
    Ok(values)
}

fn string_field(path: &Path, at: &str, item: &Value, field: &str) -> Result<String, TaskError> {
    item.get(field).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| TaskError::Field {
        path: path.to_owned(),
        at: at.to_owned(),
        field: field.to_owned(),
        expected: "a string".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbh_rows_keep_file_order() {
        let text = r#"{"examples": [{"input": "q1", "target": "(A)"}, {"input": "q2", "target": "No"}]}"#;
        let rows = parse_bbh(Path::new("t.json"), text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].input.as_str(), rows[1].target.as_str(), rows[1].at.as_str()), ("q2", "No", "examples[1]"));
    }

    #[test]
    fn malformed_json_names_file_and_line() {
        let err = parse_bbh(Path::new("x/t.json"), "{\n\"examples\": [\n{\"input\": }\n]}").unwrap_err();
        assert!(err.to_string().starts_with("x/t.json:3: malformed JSON"), "{err}");
        let err =
            parse_custom(Path::new("c.jsonl"), "{\"input\":\"a\",\"target\":\"b\"}\n\n{oops}\n", &Fields::default())
                .unwrap_err();
        assert!(err.to_string().starts_with("c.jsonl:3: malformed JSON"), "{err}");
        let err = parse_bbh(Path::new("t.json"), r#"{"examples": [{"input": "q"}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "t.json: examples[0]: field `target` is missing or not a string");
    }

    #[test]
    fn gsm8k_target_follows_the_last_marker() {
        let text = "{\"question\": \"q\", \"answer\": \"a #### b\\n#### 1,080\"}\n";
        let rows = parse_gsm8k(Path::new("g.jsonl"), text).unwrap();
        assert_eq!(rows[0].target, "1,080");
        let err = parse_gsm8k(Path::new("g.jsonl"), "{\"question\": \"q\", \"answer\": \"72\"}").unwrap_err();
        assert!(err.to_string().contains("g.jsonl: line 1: field `answer`"), "{err}");
    }

    #[test]
    fn folio_items_are_rendered_and_mapped() {
        let map: BTreeMap<String, String> = [("True", "A"), ("Unknown", "C")].map(|(k, v)| (k.into(), v.into())).into();
        let text = r#"{"premises": ["P1.", "P2. "], "conclusion": "C.", "label": "Unknown"}"#;
        let rows = parse_folio(Path::new("f.jsonl"), text, "{premises}|{conclusion}", &map, &[]).unwrap();
        assert_eq!(
            (rows[0].input.as_str(), rows[0].target.as_str(), rows[0].raw_target.as_str()),
            ("P1.\nP2.|C.", "C", "Unknown")
        );
        let bad = r#"{"premises": ["P"], "conclusion": "C", "label": "Maybe"}"#;
        let err = parse_folio(Path::new("f.jsonl"), bad, "", &map, &[]).unwrap_err();
        assert!(err.to_string().contains("line 1: target `Maybe`"), "{err}");
    }

    #[test]
    fn custom_rows_accept_numbers_and_choices() {
        let text =
            "{\"input\": \"q\", \"target\": 42}\n{\"input\": \"r\", \"target\": \"x\", \"choices\": [\"x\", \"y\"]}";
        let rows = parse_custom(Path::new("c.jsonl"), text, &Fields::default()).unwrap();
        assert_eq!(rows[0].target, "42");
        assert_eq!(rows[1].choices, ["x", "y"]);
        let err = parse_custom(
            Path::new("c.jsonl"),
            "{\"input\": \"q\", \"target\": \"t\", \"choices\": 3}",
            &Fields::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("field `choices`"), "{err}");
    }
}
