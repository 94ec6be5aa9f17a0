//! The checkpoint: everything needed to continue a run exactly, written atomically after each step.

use std::path::{Path, PathBuf};

use crate::{OptError, faults};

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
    /// The training examples that pushed hardest for the change (most negative attribution
    /// delta first, at most three).
    #[serde(default)]
    pub drivers: Vec<Driver>,
}

/// A training example that drove a step's change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Driver {
    /// Its index among the training examples.
    pub example: usize,
    /// Its attribution delta (negative: it pushed for the chosen token).
    pub delta: f32,
    /// τ-scaled CE of each of its answer tokens under the prompt before the change.
    pub answer_token_nll: Vec<f32>,
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
    /// The train reasoning of the initial prompt and of every prompt in `top`, as generated when
    /// each was current: a perfect draft for their train evaluations at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_reasoning: Vec<KnownReasoning>,
}

/// A prompt's greedy reasoning on every train example.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KnownReasoning {
    /// Prompt ids.
    pub ids: Vec<u32>,
    /// Reasoning ids per train example.
    pub reasoning: Vec<Vec<u32>>,
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
            known_reasoning: Vec::new(),
        }
    }

    /// Keep `reasoning` as the train reasoning of `ids` when `ids` is `initial` or in `top`, and
    /// forget every prompt that is neither.
    pub fn remember_reasoning(&mut self, ids: &[u32], reasoning: &[Vec<u32>], initial: &[u32]) {
        if !self.known_reasoning.iter().any(|k| k.ids == ids) {
            self.known_reasoning.push(KnownReasoning { ids: ids.to_vec(), reasoning: reasoning.to_vec() });
        }
        let top = &self.top;
        self.known_reasoning.retain(|k| k.ids == initial || top.iter().any(|t| t.ids == k.ids));
    }

    /// The train reasoning of `ids`, if known.
    pub fn reasoning_of(&self, ids: &[u32]) -> Option<&[Vec<u32>]> {
        self.known_reasoning.iter().find(|k| k.ids == ids).map(|k| &k.reasoning[..])
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

/// Write `bytes` to `path` atomically: a temporary file in the same folder, synced, renamed over
/// `path`, and the folder synced. On any failure the temporary file is removed and `path` keeps
/// its previous contents (or stays absent).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OptError> {
    let tmp: PathBuf = path.with_extension("tmp");
    let result = write_then_rename(&tmp, path, bytes);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), OptError> {
    let mut f = faults::io("create", tmp, || std::fs::File::create(tmp)).map_err(|e| OptError::io(tmp, e))?;
    faults::write_all(&mut f, tmp, bytes).map_err(|e| OptError::io(tmp, e))?;
    faults::io("sync", tmp, || f.sync_all()).map_err(|e| OptError::io(tmp, e))?;
    drop(f);
    faults::io("rename", path, || std::fs::rename(tmp, path)).map_err(|e| OptError::io(path, e))?;
    sync_parent(path)
}

/// Makes a rename in `path`'s folder durable (a no-op where folders cannot be opened).
fn sync_parent(path: &Path) -> Result<(), OptError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    let Ok(handle) = std::fs::File::open(dir) else { return Ok(()) };
    faults::io("sync dir of", path, || handle.sync_all()).map_err(|e| OptError::io(dir, e))
}

/// Save the state as `state.json` in `dir`.
pub fn save(dir: &Path, state: &RunState) -> Result<(), OptError> {
    let json = serde_json::to_vec(state).expect("state serialises");
    write_atomic(&dir.join("state.json"), &json)
}

/// Load `state.json` from `dir`. A truncated or corrupt file is an error naming it and the line.
pub fn load(dir: &Path) -> Result<RunState, OptError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| OptError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| OptError::BadFile {
        reason: format!(
            "line {}, column {}: {e}; the checkpoint is damaged (not restarting over it)",
            e.line(),
            e.column()
        ),
        path,
    })
}

/// Whether `dir` holds a checkpoint to resume from. A folder with events but no `state.json` is
/// damaged: an error, never a silent restart that would discard the events.
pub fn has_checkpoint(dir: &Path) -> Result<bool, OptError> {
    if dir.join("state.json").exists() {
        return Ok(true);
    }
    let events = dir.join("events.jsonl");
    match std::fs::metadata(&events) {
        Ok(m) if m.len() > 0 => Err(OptError::BadFile {
            path: dir.join("state.json"),
            reason: format!(
                "missing, but {} holds {} bytes of events; the run folder is damaged (not restarting over it)",
                events.display(),
                m.len()
            ),
        }),
        _ => Ok(false),
    }
}

/// Keep only the first `n` lines of `events.jsonl` (lines of a step that did not finish go, and
/// so does a line cut short by a crash). Each kept line must be a complete JSON line: a file with
/// fewer, or a damaged one, is an error naming the file and line.
pub fn truncate_events(dir: &Path, n: usize) -> Result<(), OptError> {
    let path = dir.join("events.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && n == 0 => return Ok(()),
        Err(e) => return Err(OptError::io(&path, e)),
    };
    let mut kept = String::new();
    let mut lines = text.split_inclusive('\n');
    for i in 1..=n {
        let bad = |reason: String| OptError::BadFile { path: path.clone(), reason: format!("line {i}: {reason}") };
        let line = lines
            .next()
            .ok_or_else(|| bad(format!("missing; state.json records {n} events (the file was truncated)")))?;
        let Some(body) = line.strip_suffix('\n') else {
            return Err(bad(format!("cut short; state.json records {n} complete events")));
        };
        serde_json::from_str::<serde::de::IgnoredAny>(body).map_err(|e| bad(format!("not a JSON event: {e}")))?;
        kept.push_str(line);
    }
    if kept.len() == text.len() {
        return Ok(());
    }
    write_atomic(&path, kept.as_bytes())
}

/// Append one line to `events.jsonl` (written with one `write`, then synced).
pub fn append_event(dir: &Path, event: &impl serde::Serialize) -> Result<(), OptError> {
    let path = dir.join("events.jsonl");
    let mut line = serde_json::to_vec(event).expect("events serialise");
    line.push(b'\n');
    let open = || std::fs::OpenOptions::new().create(true).append(true).open(&path);
    let mut f = faults::io("open", &path, open).map_err(|e| OptError::io(&path, e))?;
    faults::write_all(&mut f, &path, &line).map_err(|e| OptError::io(&path, e))?;
    faults::io("sync", &path, || f.sync_all()).map_err(|e| OptError::io(&path, e))
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
    fn an_equal_score_is_no_improvement_and_keeps_the_earlier_prompt_first() {
        let mut s = RunState::new(vec![1]);
        assert!(s.record(p(0.5, &[1]), 3));
        assert!(!s.record(p(0.5, &[2]), 3), "equal is not better");
        assert_eq!(s.best.as_ref().unwrap().ids, [1]);
        assert!(!s.record(p(0.5, &[3]), 3));
        let order: Vec<u32> = s.top.iter().map(|t| t.ids[0]).collect();
        assert_eq!(order, [1, 2, 3]);
        // Kept to `keep`: a fourth equal score is dropped, not the earlier ones.
        s.record(p(0.5, &[4]), 3);
        let order: Vec<u32> = s.top.iter().map(|t| t.ids[0]).collect();
        assert_eq!(order, [1, 2, 3]);
    }

    #[test]
    fn known_reasoning_follows_the_initial_and_top_prompts() {
        let mut s = RunState::new(vec![9]);
        let r = |t: u32| vec![vec![t, t]];
        s.remember_reasoning(&[9], &r(9), &[9]);
        s.record(p(0.5, &[1]), 2);
        s.remember_reasoning(&[1], &r(1), &[9]);
        // Not in `top`: not kept.
        s.remember_reasoning(&[5], &r(5), &[9]);
        assert_eq!(s.reasoning_of(&[5]), None);
        s.record(p(0.3, &[2]), 2);
        s.remember_reasoning(&[2], &r(2), &[9]);
        // Known already: the first reasoning stays.
        s.remember_reasoning(&[2], &r(7), &[9]);
        assert_eq!(s.reasoning_of(&[2]), Some(&r(2)[..]));
        // [3] pushes [1] out of the top two: its reasoning goes, the initial prompt's stays.
        s.record(p(0.1, &[3]), 2);
        s.remember_reasoning(&[3], &r(3), &[9]);
        assert_eq!(s.reasoning_of(&[1]), None);
        assert_eq!(s.reasoning_of(&[9]), Some(&r(9)[..]));
        let kept: Vec<Vec<u32>> = s.known_reasoning.iter().map(|k| k.ids.clone()).collect();
        assert_eq!(kept, [vec![9], vec![2], vec![3]]);
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
