//! Splitting rows into train, dev and test (SPEC A7), deterministic in file order.

use std::ops::Range;
use std::path::Path;

use crate::error::TaskError;
use crate::example::Example;

/// Row ranges of a single-file pool: train = first `train` rows, dev = next `dev`, test = the rest; when the
/// pool has fewer than `train + 2 * dev` rows, the rows after train are halved (dev = the first ⌊rest/2⌋).
///
/// ```
/// // causal_judgement: 187 rows → train 0..50, rest 137 → dev 50..118 (68 rows), test 118..187 (69 rows)
/// assert_eq!(greater_tasks::pool_ranges(187, 50, 100), [0..50, 50..118, 118..187]);
/// ```
pub fn pool_ranges(rows: usize, train: usize, dev: usize) -> [Range<usize>; 3] {
    let train_end = train.min(rows);
    let rest = rows - train_end;
    let dev_len = if rows >= train + 2 * dev { dev } else { rest / 2 };
    let dev_end = train_end + dev_len;
    [0..train_end, train_end..dev_end, dev_end..rows]
}

/// Row ranges of a two-file task: train and dev from the head of the first file's `rows`.
pub fn head_ranges(rows: usize, train: usize, dev: usize) -> [Range<usize>; 2] {
    let train_end = train.min(rows);
    let dev_end = (train_end + dev).min(rows);
    [0..train_end, train_end..dev_end]
}

/// Splits one pool of examples by [`pool_ranges`]; an empty split is an error naming `path`.
pub(crate) fn split_pool(
    task: &str,
    path: &Path,
    examples: Vec<Example>,
    train: usize,
    dev: usize,
) -> Result<[Vec<Example>; 3], TaskError> {
    let rows = examples.len();
    let ranges = pool_ranges(rows, train, dev);
    let parts = ranges.map(|r| examples[r].to_vec());
    for (part, name) in parts.iter().zip(["train", "dev", "test"]) {
        if part.is_empty() {
            return Err(empty(task, name, path, rows, train + 2));
        }
    }
    Ok(parts)
}

/// Splits a two-file task: train and dev from the head of `pool`, test = all of `test`.
pub(crate) fn split_separate(
    task: &str,
    (pool_path, pool): (&Path, Vec<Example>),
    (test_path, test): (&Path, Vec<Example>),
    train: usize,
    dev: usize,
) -> Result<[Vec<Example>; 3], TaskError> {
    let rows = pool.len();
    let [train_range, dev_range] = head_ranges(rows, train, dev);
    if train_range.is_empty() {
        return Err(empty(task, "train", pool_path, rows, train + 1));
    }
    if dev_range.is_empty() {
        return Err(empty(task, "dev", pool_path, rows, train + 1));
    }
    if test.is_empty() {
        return Err(empty(task, "test", test_path, 0, 1));
    }
    Ok([pool[train_range].to_vec(), pool[dev_range].to_vec(), test])
}

fn empty(task: &str, split: &'static str, path: &Path, rows: usize, needed: usize) -> TaskError {
    TaskError::EmptySplit { task: task.to_owned(), split, path: path.to_owned(), rows, needed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example { input: i.to_string(), target: "A".into(), raw_target: "(A)".into(), choices: vec![] })
            .collect()
    }

    #[test]
    fn pool_rule_of_a7() {
        assert_eq!(pool_ranges(250, 50, 100), [0..50, 50..150, 150..250]);
        assert_eq!(pool_ranges(300, 50, 100), [0..50, 50..150, 150..300]);
        // penguins_in_a_table 146: rest 96 → 48 / 48; snarks 178: rest 128 → 64 / 64.
        assert_eq!(pool_ranges(146, 50, 100), [0..50, 50..98, 98..146]);
        assert_eq!(pool_ranges(178, 50, 100), [0..50, 50..114, 114..178]);
        assert_eq!(pool_ranges(249, 50, 100), [0..50, 50..149, 149..249]);
        assert_eq!(pool_ranges(30, 50, 100), [0..30, 30..30, 30..30]);
    }

    #[test]
    fn head_rule_of_a7() {
        assert_eq!(head_ranges(7473, 100, 100), [0..100, 100..200]);
        assert_eq!(head_ranges(150, 100, 100), [0..100, 100..150]);
    }

    #[test]
    fn empty_splits_are_errors() {
        let err = split_pool("t", Path::new("t.jsonl"), examples(51), 50, 100).unwrap_err();
        assert_eq!(err.to_string(), "task `t`: the dev split is empty (51 rows in t.jsonl; at least 52 needed)");
        let [a, b, c] = split_pool("t", Path::new("t.jsonl"), examples(52), 50, 100).unwrap();
        assert_eq!((a.len(), b.len(), c.len()), (50, 1, 1));
        assert_eq!(c[0].input, "51");
        let err = split_separate("t", (Path::new("a"), examples(10)), (Path::new("b"), vec![]), 5, 5).unwrap_err();
        assert!(err.to_string().contains("test split is empty"), "{err}");
    }
}
