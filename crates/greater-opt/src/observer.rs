//! Progress reporting without printing: the CLI draws bars from these calls.

/// Receives progress. Every method has an empty default.
pub trait Observer {
    /// A phase started: `name` (e.g. "reasoning", "proposal", "gradient", "selection", "eval dev")
    /// with `total` units of work.
    fn phase(&self, _name: &str, _total: usize) {}
    /// `n` more units of the current phase are done.
    fn advance(&self, _n: usize) {}
    /// A one-line message worth showing (e.g. the prompt after a step).
    fn message(&self, _text: &str) {}
    /// Whether the user asked to stop (checked between units of work).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {}
