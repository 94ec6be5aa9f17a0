//! A data file with a line of 1 GB (or a file over 1 GiB) is an error naming the file and the
//! line before memory is allocated for it; a counting allocator in this test binary checks.

use greater_tasks::{MAX_FILE_BYTES, MAX_LINE_BYTES};
use greater_testkit::alloc::{CountingAlloc, peak_of};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

#[test]
fn a_one_gigabyte_line_is_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jsonl");
    // Two good lines, then a line of 1 GB (a sparse file: no disk is used for it).
    let good = "{\"input\": \"1+1?\", \"target\": 2}\n";
    std::fs::write(&path, good.repeat(2)).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1_000_000_000).unwrap();
    drop(f);
    let (err, peak) = peak_of(|| greater_tasks::load_custom(&path).unwrap_err().to_string());
    assert!(err.contains("huge.jsonl") && err.contains("line 3") && err.contains("limit"), "{err}");
    // Bounded by the line limit (a growing buffer and its copy), not by the 1 GB claim.
    assert!(peak < 4 * MAX_LINE_BYTES as usize, "allocated {peak} bytes");
    // Over the file limit: refused from its size alone.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    drop(f);
    let (err, peak) = peak_of(|| greater_tasks::load_custom(&path).unwrap_err().to_string());
    assert!(err.contains("huge.jsonl") && err.contains("the file is longer"), "{err}");
    assert!(peak < 1 << 20);
}

#[test]
fn lines_at_the_limit_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.jsonl");
    let rows: String = (0..60).map(|i| format!("{{\"input\": \"{i}+1?\", \"target\": {}}}\n", i + 1)).collect();
    std::fs::write(&path, rows).unwrap();
    let task = greater_tasks::load_custom(&path).unwrap();
    assert_eq!(task.train.len() + task.dev.len() + task.test.len(), 60);
}
