//! A data file with a line of 1 GB (or a file over 1 GiB) is an error naming the file and the
//! line before memory is allocated for it; a counting allocator in this test binary checks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use greater_tasks::{MAX_FILE_BYTES, MAX_LINE_BYTES};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System`; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

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
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let err = greater_tasks::load_custom(&path).unwrap_err().to_string();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(err.contains("huge.jsonl") && err.contains("line 3") && err.contains("limit"), "{err}");
    // Bounded by the line limit (a growing buffer and its copy), not by the 1 GB claim.
    assert!(peak < 4 * MAX_LINE_BYTES as usize, "allocated {peak} bytes");
    // Over the file limit: refused from its size alone.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    drop(f);
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = LIVE.load(Ordering::Relaxed);
    let err = greater_tasks::load_custom(&path).unwrap_err().to_string();
    assert!(err.contains("huge.jsonl") && err.contains("the file is longer"), "{err}");
    assert!(PEAK.load(Ordering::Relaxed) - base < 1 << 20);
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
