//! A counting global allocator with a cap on live bytes.
//!
//! The fuzz binary (and the CI test) install [`CapAlloc`] as the global allocator. The driver
//! sets the cap before each input ([`set_budget`]); an allocation that would take the live total
//! over it is refused (null), which Rust turns into an abort. The input that did it is already on
//! disk (the driver writes every input before running it), so the abort is a finding with its
//! reproducer. Parsers must reject absurd claims before allocating for them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The allocator: [`System`] with live-byte counting and a cap.
#[derive(Debug)]
pub struct CapAlloc;

fn grow(by: usize) -> bool {
    let cap = CAP.load(Ordering::Relaxed);
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    if live > cap {
        LIVE.fetch_sub(by, Ordering::Relaxed);
        // Stderr is unbuffered; writing a static message does not allocate.
        let _ = std::io::stderr().write_all(b"greater-fuzz: allocation over the per-input cap refused\n");
        return false;
    }
    PEAK.fetch_max(live, Ordering::Relaxed);
    true
}

// SAFETY: every method forwards to `System` with the caller's layout; the bookkeeping never
// touches the memory.
unsafe impl GlobalAlloc for CapAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !grow(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Ordering::Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Bytes live now (0 when [`CapAlloc`] is not the global allocator).
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Allows `bytes` more than are live now, and resets the peak; returns the live baseline.
pub fn set_budget(bytes: usize) -> usize {
    let base = live();
    PEAK.store(base, Ordering::Relaxed);
    CAP.store(base.saturating_add(bytes), Ordering::Relaxed);
    base
}

/// Lifts the cap.
pub fn clear_budget() {
    CAP.store(usize::MAX, Ordering::Relaxed);
}

/// The highest live total since the last [`set_budget`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}
