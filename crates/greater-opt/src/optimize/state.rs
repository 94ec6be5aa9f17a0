//! The checkpoint: everything needed to continue a run exactly, written atomically after each step.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::OptError;

/// A prompt with its training score (lower is better).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoredPrompt {
    /// Selection score: mistake rate + w · prompt NLL.
    pub score: f32,
    /// Prompt ids.
    pub ids: Vec<u32>,
    /// Prompt text (for people; the ids are authoritative).
    pub text: String,
    /// The step that produced it.
    pub step: usize,
}

/// Per-step figures kept for the report's plots.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepSummary {
    /// Step index (0-based).
    pub step: usize,
    /// Selection score of the chosen prompt.
    pub score: f32,
    /// Its teacher-forced mistake rate.
    pub mistake_rate: f32,
    /// The prompt after the step.
    pub text: String,
    /// Seconds in each phase.
    pub seconds: super::event::PhaseSeconds,
}

/// The run's state after `step` completed steps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// Completed steps.
    pub step: usize,
    /// Current prompt ids.
    pub control: Vec<u32>,
    /// Position optimised next (within the prompt).
    pub position: usize,
    /// Prompt length at the start (for the '.' rule).
    pub initial_len: usize,
    /// Reasoning ids per train example for the current prompt, when known.
    pub reasoning: Option<Vec<Vec<u32>>>,
    /// The best prompt so far.
    pub best: Option<ScoredPrompt>,
    /// The best distinct prompts, ascending score.
    pub top: Vec<ScoredPrompt>,
    /// Steps since `best` improved.
    pub since_improvement: usize,
    /// Lines in `events.jsonl` that belong to completed steps.
    pub events: usize,
    /// Whether the loop has finished (steps done or threshold reached).
    pub finished: bool,
    /// Per-step summaries.
    pub history: Vec<StepSummary>,
}

impl RunState {
    /// The state before the first step.
    pub fn new(control: Vec<u32>) -> Self {
        Self {
            step: 0,
            initial_len: control.len(),
            control,
            position: 0,
            reasoning: None,
            best: None,
            top: Vec::new(),
            since_improvement: 0,
            events: 0,
            finished: false,
            history: Vec::new(),
        }
    }

    /// Record a scored prompt in `best` and `top` (distinct ids, `keep` of them); returns whether
    /// it improved the best.
    pub fn record(&mut self, p: ScoredPrompt, keep: usize) -> bool {
        let improved = self.best.as_ref().is_none_or(|b| p.score < b.score);
        if improved {
            self.best = Some(p.clone());
        }
        match self.top.iter_mut().find(|t| t.ids == p.ids) {
            Some(t) if p.score < t.score => *t = p,
            Some(_) => {}
            None => self.top.push(p),
        }
        // Stable: equal scores keep the earlier prompt first.
        self.top.sort_by(|a, b| a.score.total_cmp(&b.score));
        self.top.truncate(keep);
        improved
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, synced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OptError> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| OptError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| OptError::io(&tmp, e))?;
    f.sync_all().map_err(|e| OptError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| OptError::io(path, e))
}

/// Save the state as `state.json` in `dir`.
pub fn save(dir: &Path, state: &RunState) -> Result<(), OptError> {
    let json = serde_json::to_vec(state).expect("state serialises");
    write_atomic(&dir.join("state.json"), &json)
}

/// Load `state.json` from `dir`.
pub fn load(dir: &Path) -> Result<RunState, OptError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| OptError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| OptError::BadFile { path, reason: e.to_string() })
}

/// Keep only the first `n` lines of `events.jsonl` (lines of a step that did not finish go).
pub fn truncate_events(dir: &Path, n: usize) -> Result<(), OptError> {
    let path = dir.join("events.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let kept: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
    write_atomic(&path, kept.as_bytes())
}

/// Append one line to `events.jsonl`.
pub fn append_event(dir: &Path, event: &impl serde::Serialize) -> Result<(), OptError> {
    let line = serde_json::to_string(event).expect("events serialise");
    let path = dir.join("events.jsonl");
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| OptError::io(&path, e))?;
    writeln!(f, "{line}").map_err(|e| OptError::io(&path, e))?;
    f.sync_all().map_err(|e| OptError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(score: f32, ids: &[u32]) -> ScoredPrompt {
        ScoredPrompt { score, ids: ids.to_vec(), text: String::new(), step: 0 }
    }

    #[test]
    fn top_keeps_distinct_best_prompts() {
        let mut s = RunState::new(vec![1, 2]);
        assert!(s.record(p(0.5, &[1]), 2));
        assert!(!s.record(p(0.7, &[2]), 2));
        assert!(s.record(p(0.3, &[3]), 2));
        assert!(!s.record(p(0.4, &[1]), 2));
        let scores: Vec<f32> = s.top.iter().map(|t| t.score).collect();
        assert_eq!(scores, [0.3, 0.4]);
        assert_eq!(s.best.unwrap().ids, [3]);
    }

    #[test]
    fn events_truncate_to_completed_steps() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            append_event(dir.path(), &serde_json::json!({ "step": i })).unwrap();
        }
        truncate_events(dir.path(), 2).unwrap();
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
