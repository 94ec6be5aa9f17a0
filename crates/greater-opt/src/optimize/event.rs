//! The record of one step: a line of `events.jsonl`, and the phase timings kept in the checkpoint.

/// Seconds spent in each phase of a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "PhaseSecondsRepr")]
pub struct PhaseSeconds {
    /// Reasoning with the current prompt (0 when the last winner's reasoning is reused).
    pub generation: f64,
    /// Candidate proposal from the prefix forwards.
    pub proposal: f64,
    /// One-hot gradients through the reasoning.
    pub gradient: f64,
    /// Re-scoring the top-μ candidates with regenerated reasoning.
    pub selection: f64,
}

impl PhaseSeconds {
    /// The whole step.
    pub fn total(&self) -> f64 {
        self.generation + self.proposal + self.gradient + self.selection
    }

    /// Time spent generating reasoning: the current prompt's pass and selection.
    pub fn generating(&self) -> f64 {
        self.generation + self.selection
    }
}

/// Checkpoints written before the phases were named stored `[generation, proposal, gradient,
/// selection]`; both forms read.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PhaseSecondsRepr {
    Named { generation: f64, proposal: f64, gradient: f64, selection: f64 },
    Array([f64; 4]),
}

impl From<PhaseSecondsRepr> for PhaseSeconds {
    fn from(r: PhaseSecondsRepr) -> Self {
        match r {
            PhaseSecondsRepr::Named { generation, proposal, gradient, selection } => {
                Self { generation, proposal, gradient, selection }
            }
            PhaseSecondsRepr::Array([generation, proposal, gradient, selection]) => {
                Self { generation, proposal, gradient, selection }
            }
        }
    }
}

/// One top-μ candidate as selection scored it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CandidateScore {
    /// Token id.
    pub token: u32,
    /// Its text.
    pub text: String,
    /// Selection score: mistake rate + w · prompt NLL.
    pub score: f32,
    /// Share of train examples whose answer is a mistake.
    pub mistake_rate: f32,
    /// Mean prompt NLL of the candidate prompt.
    pub prompt_nll: f32,
    /// Teacher-forced mistake rate, when measured (always, unless the graded flag alone was).
    #[serde(default)]
    pub teacher_forced_mistake_rate: Option<f32>,
    /// Graded mistake rate (the evaluation's verdict), when `selection_mistake = "graded"`.
    #[serde(default)]
    pub graded_mistake_rate: Option<f32>,
    /// Examples whose teacher-forced and graded flags disagree, when both are measured.
    #[serde(default)]
    pub flag_disagreements: Option<usize>,
    /// Set when pruning dropped the candidate after this many examples: it could no longer win,
    /// and `score`, `mistake_rate` and `prompt_nll` are then the lower bound at that point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_after: Option<usize>,
}

/// What a step's generation cost, and what the selection speed-ups saved (issue 11).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StepCost {
    /// Tokens generated (reasoning, all passes).
    pub decoded_tokens: usize,
    /// Draft tokens verified.
    pub drafted_tokens: usize,
    /// Draft tokens accepted (each the greedy choice at its position).
    pub accepted_tokens: usize,
    /// Accepted ÷ drafted.
    pub acceptance_rate: f64,
    /// Decode and verification forwards.
    pub forwards: usize,
    /// Candidates dropped by pruning.
    pub pruned_candidates: usize,
    /// Candidates not evaluated because a '.'-like candidate wins by the rule.
    pub skipped_candidates: usize,
    /// Train examples left unevaluated by pruning and skipping.
    pub pruned_examples: usize,
    /// Seconds of selection spent generating (with one-pass scoring, scoring too).
    pub selection_generation: f64,
    /// Seconds of selection spent in separate scoring forwards.
    pub selection_scoring: f64,
}

impl StepCost {
    /// Add `other`'s counts and seconds (the acceptance rate recomputed from the sums).
    pub fn add(&mut self, other: &StepCost) {
        self.decoded_tokens += other.decoded_tokens;
        self.drafted_tokens += other.drafted_tokens;
        self.accepted_tokens += other.accepted_tokens;
        self.forwards += other.forwards;
        self.pruned_candidates += other.pruned_candidates;
        self.skipped_candidates += other.skipped_candidates;
        self.pruned_examples += other.pruned_examples;
        self.selection_generation += other.selection_generation;
        self.selection_scoring += other.selection_scoring;
        let drafted = self.drafted_tokens.max(1) as f64;
        self.acceptance_rate = self.accepted_tokens as f64 / drafted;
    }
}

/// One line of `events.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepEvent {
    /// Step index (0-based).
    pub step: usize,
    /// The prompt position optimised.
    pub position: usize,
    /// Proposed candidate ids (sorted by id, the current token last when it was absent).
    pub candidates: Vec<u32>,
    /// Their texts.
    pub candidate_text: Vec<String>,
    /// Summed gradient per candidate (lower is better).
    pub gradient: Vec<f32>,
    /// The top-μ candidate ids, best gradient first.
    pub top_mu: Vec<u32>,
    /// The candidates scored by selection, in top-μ order; with `keep_current`, then the current
    /// token when the top-μ left it out (unless a '.' win ended selection).
    pub selection: Vec<CandidateScore>,
    /// The token at the position before the step (absent in events written before it was kept).
    #[serde(default)]
    pub current_token: Option<u32>,
    /// The chosen token.
    pub chosen: u32,
    /// Its text.
    pub chosen_text: String,
    /// Its selection score.
    pub score: f32,
    /// Its mistake rate.
    pub mistake_rate: f32,
    /// Its prompt NLL.
    pub prompt_nll: f32,
    /// Teacher-forced mistake rate of the current prompt (from the gradient pass).
    pub current_teacher_forced_mistake_rate: f32,
    /// Mean gradient loss of the current prompt.
    pub current_mean_loss: f32,
    /// The prompt the next step starts from.
    pub prompt_ids: Vec<u32>,
    /// Its text.
    pub prompt_text: String,
    /// The best score so far.
    pub best_score: f32,
    /// Seconds per phase.
    pub seconds: PhaseSeconds,
    /// Reasoning tokens generated in this step.
    pub generated_tokens: usize,
    /// Whether the current prompt's reasoning was the previous step's winner's, reused rather
    /// than generated (SPEC A2); false after growth, a restart, or at the first step.
    #[serde(default)]
    pub reasoning_reused: bool,
    /// Generation cost and speed-up accounting.
    #[serde(default)]
    pub cost: StepCost,
    /// Per training example, what it said about the change (attribution; `greater explain`).
    #[serde(default)]
    pub attribution: Vec<Attribution>,
}

/// One training example's part in a step's change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attribution {
    /// `g[chosen] − g[current]` of this example's loss gradient: the first-order change of its
    /// loss from the swap (negative: it pushed for the chosen token).
    pub delta: f32,
    /// Its teacher-forced mistake flag under the current prompt.
    pub teacher_forced_mistake: bool,
    /// Its gradient loss under the current prompt (answer CE at τ + w · prompt NLL).
    pub loss: f32,
    /// τ-scaled CE of each official answer token under the current prompt.
    pub answer_token_nll: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_seconds_read_named_and_legacy_arrays() {
        let named: PhaseSeconds =
            serde_json::from_str(r#"{"generation":1.0,"proposal":2.0,"gradient":3.0,"selection":4.0}"#).unwrap();
        let legacy: PhaseSeconds = serde_json::from_str("[1.0, 2.0, 3.0, 4.0]").unwrap();
        assert_eq!(named, legacy);
        assert_eq!(named.gradient, 3.0);
        assert_eq!(named.total(), 10.0);
        assert_eq!(serde_json::to_value(named).unwrap()["selection"], 4.0);
    }
}
