//! Custom tasks: JSONL `{"input", "target", "choices"?}` rows, or CSV with a header naming the
//! `input` and `target` columns (and optionally `choices`, separated by `|`); other field names
//! come from [`Fields`]. The answer kind is inferred from the targets unless a spec names it
//! ([`crate::custom_spec`]).

use std::path::Path;

use crate::answer::{canonical_number, normalise};
use crate::error::TaskError;
use crate::loaders::{Fields, Row, parse_custom, read_file};
use crate::spec::AnswerKind;

/// Reads a custom file; rows with `choices` get BBH-style options appended to the input
/// (`\nOptions:\n(A) …\n(B) …`) and a target equal to one of the choices becomes its letter.
pub(crate) fn rows(path: &Path, fields: &Fields<'_>) -> Result<Vec<Row>, TaskError> {
    let text = read_file(path)?;
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut rows = if is_csv { parse_csv(path, &text, fields)? } else { parse_custom(path, &text, fields)? };
    for row in &mut rows {
        if row.choices.is_empty() {
            continue;
        }
        let mut input = format!("{}\nOptions:", row.input);
        for (letter, choice) in letters().zip(&row.choices) {
            input.push_str(&format!("\n({letter}) {choice}"));
        }
        row.input = input;
        if let Some((letter, _)) = letters().zip(&row.choices).find(|(_, c)| **c == row.target) {
            row.target = letter.to_string();
        }
    }
    Ok(rows)
}

/// Infers the answer kind from the targets, in this order: letters (any row has choices, or every target is
/// one uppercase letter, optionally in parentheses), yes/no, true/false, valid/invalid (case-insensitive),
/// integer, number, and free text otherwise. For letters, the set runs from `A` to the largest letter seen
/// (or the longest choice list).
pub(crate) fn infer_kind(rows: &[Row]) -> (AnswerKind, Option<String>) {
    let targets: Vec<String> = rows.iter().map(|r| normalise(&r.target)).collect();
    let is_letter = |t: &String| t.len() == 1 && t.chars().all(|c| c.is_ascii_uppercase());
    let has_choices = rows.iter().any(|r| !r.choices.is_empty());
    if !rows.is_empty() && (has_choices || targets.iter().all(is_letter)) {
        let max_choice = rows.iter().map(|r| r.choices.len()).max().unwrap_or(0);
        let max_target = targets.iter().filter(|t| is_letter(t)).map(|t| (t.as_bytes()[0] - b'A') as usize + 1).max();
        let count = max_choice.max(max_target.unwrap_or(0)).clamp(1, 26);
        return (AnswerKind::Letter, Some(letters().take(count).collect()));
    }
    let all_in =
        |set: [&str; 2]| !targets.is_empty() && targets.iter().all(|t| set.iter().any(|s| s.eq_ignore_ascii_case(t)));
    let kind = if all_in(["yes", "no"]) {
        AnswerKind::YesNo
    } else if all_in(["true", "false"]) {
        AnswerKind::TrueFalse
    } else if all_in(["valid", "invalid"]) {
        AnswerKind::ValidInvalid
    } else {
        let numbers: Option<Vec<String>> = targets.iter().map(|t| canonical_number(t)).collect();
        match numbers {
            Some(n) if !n.is_empty() && n.iter().all(|x| !x.contains('.')) => AnswerKind::Integer,
            Some(n) if !n.is_empty() => AnswerKind::Number,
            _ => AnswerKind::FreeText,
        }
    };
    (kind, None)
}

/// CSV rows: the header names the columns (`input`, `target`, optional `choices` with `|` between
/// choices, or the names `fields` gives); a row's place is its line in the file.
fn parse_csv(path: &Path, text: &str, fields: &Fields<'_>) -> Result<Vec<Row>, TaskError> {
    let csv_error = |e: csv::Error| TaskError::Csv {
        path: path.to_owned(),
        line: e.position().map_or(1, |p| p.line()),
        message: match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("{len} fields where the header has {expected_len}")
            }
            _ => e.to_string(),
        },
    };
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let header = reader.headers().map_err(csv_error)?.clone();
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let missing = |field: &str| TaskError::Field {
        path: path.to_owned(),
        at: "line 1 (the header)".into(),
        field: field.into(),
        expected: "a column of the header".into(),
    };
    let input = column(fields.input).ok_or_else(|| missing(fields.input))?;
    let target = column(fields.target).ok_or_else(|| missing(fields.target))?;
    let choices = column(fields.choices);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let at = format!("line {}", record.position().map_or(0, |p| p.line()));
        let get = |i: usize| record.get(i).unwrap_or_default().to_string();
        let choices = choices
            .map(&get)
            .filter(|c| !c.trim().is_empty())
            .map_or(Vec::new(), |c| c.split('|').map(|x| x.trim().to_string()).collect());
        rows.push(Row { input: get(input), raw_target: get(target), target: get(target), choices, at });
    }
    Ok(rows)
}

fn letters() -> impl Iterator<Item = char> {
    'A'..='Z'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::load_custom;

    fn row(target: &str, choices: &[&str]) -> Row {
        Row {
            input: "q".into(),
            raw_target: target.into(),
            target: target.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            at: "line 1".into(),
        }
    }

    #[test]
    fn kinds_are_inferred_from_targets() {
        let kind = |targets: &[&str]| infer_kind(&targets.iter().map(|t| row(t, &[])).collect::<Vec<_>>());
        assert_eq!(kind(&["(A)", "C"]), (AnswerKind::Letter, Some("ABC".into())));
        assert_eq!(kind(&["yes", "No"]), (AnswerKind::YesNo, None));
        assert_eq!(kind(&["True", "false"]), (AnswerKind::TrueFalse, None));
        assert_eq!(kind(&["valid", "invalid"]), (AnswerKind::ValidInvalid, None));
        assert_eq!(kind(&["12", "-3", "1,000"]), (AnswerKind::Integer, None));
        assert_eq!(kind(&["12", "2.5"]), (AnswerKind::Number, None));
        assert_eq!(kind(&["12", "cat"]), (AnswerKind::FreeText, None));
        assert_eq!(infer_kind(&[row("x", &["x", "y", "z"])]), (AnswerKind::Letter, Some("ABC".into())));
    }

    fn write(lines: &[String]) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".jsonl").tempfile().unwrap();
        std::fs::write(file.path(), lines.join("\n")).unwrap();
        file
    }

    #[test]
    fn custom_file_with_choices_loads_and_splits() {
        let lines: Vec<String> = (0..60)
            .map(|i| {
                format!(r#"{{"input": "q{i}", "target": "{}", "choices": ["red", "blue"]}}"#, ["red", "blue"][i % 2])
            })
            .collect();
        let file = write(&lines);
        let task = load_custom(file.path()).unwrap();
        assert_eq!((task.train.len(), task.dev.len(), task.test.len()), (50, 5, 5));
        assert_eq!(task.spec.labels, ["A", "B"]);
        assert_eq!(task.spec.extractor, "Therefore, the final answer (use exact format: '$A' or '$B') is $");
        assert_eq!(task.train[1].input, "q1\nOptions:\n(A) red\n(B) blue");
        assert_eq!((task.train[1].target.as_str(), task.train[1].raw_target.as_str()), ("B", "blue"));
    }

    #[test]
    fn custom_target_that_does_not_fit_names_file_and_line() {
        let mut lines: Vec<String> = (0..60).map(|i| format!(r#"{{"input": "q{i}", "target": "(B)"}}"#)).collect();
        lines[7] = r#"{"input": "q7", "target": "(B)", "choices": ["a", "b"]}"#.into();
        lines[9] = r#"{"input": "q9", "target": "maybe"}"#.into();
        let file = write(&lines);
        let err = load_custom(file.path()).unwrap_err().to_string();
        let expected = format!("{}: line 10: target `maybe` does not fit answer kind letter", file.path().display());
        assert!(err.starts_with(&expected), "{err}");
    }

    fn write_csv(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn csv_file_loads_like_jsonl_with_quotes_and_choices() {
        let mut text = String::from("id,target,input,choices\n");
        for i in 0..60 {
            let t = ["red", "blue"][i % 2];
            text.push_str(&format!("{i},{t},\"q{i}, with a comma\",red|blue\n"));
        }
        let task = load_custom(write_csv(&text).path()).unwrap();
        assert_eq!((task.train.len(), task.dev.len(), task.test.len()), (50, 5, 5));
        assert_eq!(task.train[1].input, "q1, with a comma\nOptions:\n(A) red\n(B) blue");
        assert_eq!(task.train[1].target, "B");
    }

    #[test]
    fn bad_csv_files_name_file_line_and_column() {
        let file = write_csv("question,target\nq,1\n");
        let err = load_custom(file.path()).unwrap_err().to_string();
        assert!(err.contains("line 1 (the header): field `input`"), "{err}");
        let file = write_csv("input,target\nq0,1\nq1,2,extra\n");
        let err = load_custom(file.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("{}: line 3: 3 fields where the header has 2", file.path().display())), "{err}");
    }

    #[test]
    fn tiny_custom_file_has_an_empty_split() {
        let lines: Vec<String> = (0..51).map(|i| format!(r#"{{"input": "q{i}", "target": "{i}"}}"#)).collect();
        let file = write(&lines);
        let err = load_custom(file.path()).unwrap_err().to_string();
        assert!(err.contains("the dev split is empty (51 rows"), "{err}");
    }
}
