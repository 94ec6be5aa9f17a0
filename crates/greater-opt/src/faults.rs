//! Write-failure injection for the run folder, so tests can prove that a failed write at any
//! point leaves the folder at a checkpoint a resumed run can continue from.
//!
//! Every file operation of [`crate::optimize::state`] (and so of `evals/` and the reports, which
//! write through it) passes through [`io`]. Normally that is a thread-local lookup that finds
//! nothing. A test arms a plan on its own thread with [`arm`]: the `n`-th operation from then on
//! fails with the chosen [`Fault`]; [`count`] only counts. Other threads are never affected.

use std::cell::RefCell;
use std::io::{Error, Write};
use std::path::Path;

/// What an injected failure looks like to the code that writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `ENOSPC`: the disk is full; nothing of this operation is written.
    NoSpace,
    /// `EIO`: the device failed.
    Io,
    /// A write that stores only the first half of its bytes, then fails with `ENOSPC`.
    Short,
}

impl Fault {
    /// Every kind, for tests that try them all.
    pub const ALL: [Fault; 3] = [Fault::NoSpace, Fault::Io, Fault::Short];

    fn error(self) -> Error {
        match self {
            Fault::Io => Error::from_raw_os_error(5),
            Fault::NoSpace | Fault::Short => Error::from_raw_os_error(28),
        }
    }
}

#[derive(Debug, Default)]
struct Plan {
    fail_at: Option<(usize, Fault)>,
    seen: Vec<String>,
}

thread_local! {
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

/// Fails the `n`-th (0-based) file operation of this thread from now on with `fault`.
pub fn arm(n: usize, fault: Fault) {
    PLAN.with(|p| *p.borrow_mut() = Some(Plan { fail_at: Some((n, fault)), seen: Vec::new() }));
}

/// Counts this thread's file operations from now on without failing any.
pub fn count() {
    PLAN.with(|p| *p.borrow_mut() = Some(Plan::default()));
}

/// Ends the plan; returns the operations seen (`"write state.json"`, …), in order.
pub fn disarm() -> Vec<String> {
    PLAN.with(|p| p.borrow_mut().take()).map(|p| p.seen).unwrap_or_default()
}

/// The fault planned for this operation, if any (and records the operation).
fn planned(op: &str, path: &Path) -> Option<Fault> {
    PLAN.with(|p| {
        let mut p = p.borrow_mut();
        let plan = p.as_mut()?;
        let i = plan.seen.len();
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        plan.seen.push(format!("{op} {name}"));
        match plan.fail_at {
            Some((n, fault)) if n == i => Some(fault),
            _ => None,
        }
    })
}

/// Runs one file operation `op` on `path`, unless a fault is planned for it.
pub(crate) fn io<T>(op: &str, path: &Path, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    match planned(op, path) {
        Some(fault) => Err(fault.error()),
        None => f(),
    }
}

/// Writes all of `bytes` to `file` (a [`Fault::Short`] writes half of them first).
pub(crate) fn write_all(file: &mut std::fs::File, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match planned("write", path) {
        Some(Fault::Short) => {
            file.write_all(&bytes[..bytes.len() / 2])?;
            Err(Fault::Short.error())
        }
        Some(fault) => Err(fault.error()),
        None => file.write_all(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_planned_operation_fails() {
        let p = Path::new("x/state.json");
        arm(1, Fault::Io);
        assert!(io("open", p, || Ok(())).is_ok());
        let e = io("sync", p, || Ok(())).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(5));
        assert!(io("rename", p, || Ok(())).is_ok());
        assert_eq!(disarm(), ["open state.json", "sync state.json", "rename state.json"]);
        // Disarmed: nothing is recorded or failed.
        assert!(io("open", p, || Ok(())).is_ok());
        assert!(disarm().is_empty());
    }
}
