//! How glibc's `malloc` hands memory back, tuned for tensor work.
//!
//! By default glibc serves every allocation above a (dynamic) threshold with a fresh `mmap` and
//! trims the heap top as soon as 128 KiB or more are free there. A forward or backward pass frees
//! and re-allocates tensors of the same few sizes hundreds of times, so the kernel hands out and
//! zero-fills the same amount of memory again and again: `perf` on `greater bench grad` showed
//! `clear_page_rep` and page faults as 11 % of the gradient pass. Keeping freed memory in the
//! process (allocations up to glibc's largest mmap threshold, 32 MiB; the heap never trimmed)
//! removes that: the
//! gradient pass ran about 1.3× faster (benches/README.md, issue 12), with the same peak RSS, which the
//! largest pass sets anyway. Allocations above 32 MiB still go back to the system when freed.
//!
//! `GREATER_MALLOC=default` keeps glibc's own behaviour. Elsewhere than Linux with glibc this is a
//! no-op. A crate could replace the allocator (mimalloc, jemalloc), but both return freed pages
//! to the system on a timer as well and build C code; two `mallopt` calls do what is needed.

/// glibc's upper bound for `M_MMAP_THRESHOLD` on 64-bit targets (`DEFAULT_MMAP_THRESHOLD_MAX`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Tune the allocator once, before the first large allocation.
pub fn tune() {
    if !wanted(std::env::var("GREATER_MALLOC").ok().as_deref()) {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; it is called before any other thread
    // exists (first thing in `main`).
    unsafe {
        // Setting either value turns off glibc's dynamic adjustment, so both are set; a trim
        // threshold of -1 turns trimming off (an `int` cannot hold a threshold above the 5 GB
        // that a gradient pass frees at once).
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

/// Whether `GREATER_MALLOC` (its value, if set) asks for the tuning: anything but `default`.
fn wanted(var: Option<&str>) -> bool {
    var != Some("default")
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn only_greater_malloc_default_keeps_glibc_behaviour() {
        assert!(wanted(None));
        assert!(wanted(Some("")) && wanted(Some("tuned")));
        assert!(!wanted(Some("default")));
    }
}
