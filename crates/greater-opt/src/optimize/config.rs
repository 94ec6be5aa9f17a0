//! The optimiser's configuration: every constant of the official code is a field whose default
//! is the official effective value (SPEC A1). Written to the output folder as `config.toml`.

use std::path::Path;

use crate::OptError;
use crate::layout::{Placement, PromptPlace};

/// Everything that determines a run. Flags override a TOML file, which overrides these defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizeConfig {
    /// Model name (registry) or path.
    pub model: String,
    /// Task name (`bbh/<task>`, `gsm8k`, `folio`, `gen/<task>`, or a JSONL path).
    pub task: String,
    /// A custom task's spec file (default: the data file's `.toml` beside it, if any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_spec: Option<std::path::PathBuf>,
    /// A custom task's question field or column (default `input`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_field: Option<String>,
    /// A custom task's gold-answer field or column (default `target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_field: Option<String>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Optimisation steps.
    pub steps: usize,
    /// Training examples used (the first of the train split).
    pub train: usize,
    /// Initial prompt text.
    pub initial_prompt: String,
    /// Text between question and frozen prefix.
    pub joiner: String,
    /// Fixed text before the prompt.
    pub frozen_prefix: String,
    /// Where the prompt goes: after the question (the paper's), before it, or as the system turn;
    /// absent: the task's (a custom task's spec may say), else after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_placement: Option<PromptPlace>,
    /// The system turn's text: absent keeps the chat template's default, `""` asks for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Per-example top-k of the next-token distribution at the position (11).
    pub top_k: usize,
    /// Number of intersections whose union gives the candidates (6).
    pub top_q: usize,
    /// Examples per intersection (5).
    pub intersection_size: usize,
    /// Minimum candidates; k grows until reached (6).
    pub min_candidates: usize,
    /// Growth of k (2).
    pub k_growth: usize,
    /// Candidates re-scored with regenerated reasoning (μ = 3).
    pub mu: usize,
    /// Answer temperature τ in the gradient loss (0.2).
    pub answer_temperature: f32,
    /// Prompt-NLL weight in the gradient loss (0.2).
    pub control_weight: f32,
    /// Prompt-NLL weight in the selection score (0.02).
    pub selection_nll_weight: f32,
    /// The '.' rule applies from this fraction of the initial prompt length (0.5).
    pub dot_rule_fraction: f32,
    /// Allow non-ASCII, digits and most punctuation as candidates (false).
    pub allow_non_ascii: bool,
    /// Token texts allowed as candidates besides letters and spaces (the official `.`, `,`, ` `).
    pub allowed_punctuation: Vec<String>,
    /// The slot the prompt grows by (the official `encode("_")[-1]`).
    pub placeholder: String,
    /// Stop when the best selection score drops below this (0.12).
    pub loss_threshold: f32,
    /// Steps without improvement before restarting from the best prompt (150).
    pub patience: usize,
    /// Prompts kept for the dev selection (10).
    pub top_prompts: usize,
    /// Reasoning cap during optimisation and evaluation (SPEC A4: 512).
    pub max_reasoning_tokens: usize,
    /// Generation batch size.
    pub batch_size: usize,
    /// Gradient batch size (examples per forward+backward).
    pub grad_batch_size: usize,
    /// Evaluate on dev/test at the end (off for quick runs).
    pub final_eval: bool,
    /// Cap on dev and test examples at the end (0: all).
    pub eval_limit: usize,
    /// The gradient's answer target: the official single tokenisation, or every accepted spelling.
    pub answer_target: AnswerTarget,
    /// The mistake flag of the selection score: teacher-forced (official) or the graded answer.
    pub selection_mistake: SelectionMistake,
    /// What the gradient is taken through: the reasoning (the method) or nothing, the answer right
    /// after the prompt (the paper's Fig. 3 ablation). Selection always regenerates reasoning; an
    /// event's `current_*` loss and mistake rate are then those of the sequence without it.
    pub gradient_through: GradientThrough,
    /// Not the paper's rule (off by default): also score the current token when the top-μ left it
    /// out (free with one-pass scoring: its flags and NLLs come from the gradient pass) and keep
    /// it when no candidate beats it strictly; a '.' win still stands. The position advances either
    /// way. An experiment of issue 13: the paper's selection always changes the token and can take
    /// a prompt worse on train than the one it replaces.
    pub keep_current: bool,
    /// Selection speed-ups that change no decision (each can be turned off to compare paths).
    /// One pass per candidate: the prompt NLL from the generation's own prefill, and the answer
    /// teacher-forced through its KV cache (or, graded, decoded from it).
    pub one_pass: bool,
    /// Verify the current prompt's reasoning for the same example as a draft.
    pub draft: bool,
    /// Draft tokens verified per forward.
    pub draft_chunk: usize,
    /// Tokens looked up in the draft to re-synchronise after a miss (0: never).
    pub draft_ngram: usize,
    /// Evaluate the current token first and drop a candidate once it cannot win; with a '.'-like
    /// candidate in the top-μ, evaluate only the one the '.' rule makes the winner.
    pub prune: bool,
    /// Refill a generation row as soon as its sequence stops.
    pub continuous_batching: bool,
    /// Run the prompt up to the optimised position once per example (the proposal's forward) and
    /// prefill only the rest for every candidate.
    pub prefix_cache: bool,
    /// Recompute memory-bound activations in the gradient's backward pass instead of keeping
    /// them: less peak memory on long sequences, more time. Changes no value.
    pub gradient_checkpointing: bool,
    /// Refuse to start a run whose predicted peak memory ([`crate::memory`]) is above this many
    /// bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<u64>,
}

/// What the gradient's answer loss rewards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerTarget {
    /// The paper's target: the extractor's trailing space + the gold label, one tokenisation.
    #[default]
    Official,
    /// −log Σ p(v) over the spellings the evaluation grades as the gold (with or without the
    /// leading space, case variants, `(A)` for `A`).
    Variants,
}

/// The sequence the token gradient is taken over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientThrough {
    /// prompt · reasoning · extractor · answer: the gradient flows through the reasoning tokens.
    #[default]
    Reasoning,
    /// prompt · extractor · answer: the reasoning left out (the paper's ablation, Fig. 3).
    None,
}

/// Which mistake flag the selection score counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMistake {
    /// The paper's flag: some official answer token is not the argmax, teacher-forced.
    #[default]
    TeacherForced,
    /// The evaluation's verdict: the greedy answer after the extractor does not grade as the gold.
    /// Both flags are then reported per candidate.
    Graded,
}

impl Default for OptimizeConfig {
    fn default() -> Self {
        let placement = Placement::default();
        Self {
            model: "smollm2-135m-instruct".into(),
            task: "gen/boolean_expressions".into(),
            task_spec: None,
            input_field: None,
            target_field: None,
            seed: 0,
            steps: 100,
            train: 50,
            initial_prompt: greater_tasks::DEFAULT_INITIAL_PROMPT.into(),
            joiner: placement.joiner,
            frozen_prefix: placement.frozen_prefix,
            prompt_placement: placement.place,
            system_prompt: placement.system,
            top_k: 11,
            top_q: 6,
            intersection_size: 5,
            min_candidates: 6,
            k_growth: 2,
            mu: 3,
            answer_temperature: 0.2,
            control_weight: 0.2,
            selection_nll_weight: 0.02,
            dot_rule_fraction: 0.5,
            allow_non_ascii: false,
            allowed_punctuation: [".", ",", " "].map(String::from).to_vec(),
            placeholder: "_".into(),
            loss_threshold: 0.12,
            patience: 150,
            top_prompts: 10,
            max_reasoning_tokens: 512,
            batch_size: 10,
            grad_batch_size: 4,
            final_eval: true,
            eval_limit: 0,
            answer_target: AnswerTarget::Official,
            selection_mistake: SelectionMistake::TeacherForced,
            gradient_through: GradientThrough::Reasoning,
            keep_current: false,
            one_pass: true,
            draft: true,
            draft_chunk: 8,
            draft_ngram: 3,
            prune: true,
            continuous_batching: true,
            prefix_cache: true,
            gradient_checkpointing: false,
            max_memory: None,
        }
    }
}

impl OptimizeConfig {
    /// Read a TOML file (unknown keys are errors naming the key).
    pub fn from_toml_file(path: &Path) -> Result<Self, OptError> {
        let text = std::fs::read_to_string(path).map_err(|e| OptError::io(path, e))?;
        toml::from_str(&text).map_err(|e| OptError::BadFile { path: path.into(), reason: e.to_string() })
    }

    /// The TOML text of this config.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// This config with every selection speed-up off: today's plain path, for comparisons.
    pub fn without_accelerations(self) -> Self {
        Self { one_pass: false, draft: false, prune: false, continuous_batching: false, prefix_cache: false, ..self }
    }

    /// Whether any selection speed-up is on.
    pub fn accelerated(&self) -> bool {
        self.one_pass || self.draft || self.prune || self.continuous_batching || self.prefix_cache
    }

    /// The gradient's options.
    pub fn grad_options(&self) -> greater_grad::GradOptions {
        greater_grad::GradOptions {
            answer_temperature: self.answer_temperature,
            control_weight: self.control_weight,
            checkpointing: self.gradient_checkpointing,
            ..greater_grad::GradOptions::default()
        }
    }

    /// How a custom task file is read.
    pub fn custom_options(&self) -> greater_tasks::CustomOptions {
        greater_tasks::CustomOptions {
            spec: self.task_spec.clone(),
            input_field: self.input_field.clone(),
            target_field: self.target_field.clone(),
        }
    }

    /// The prompt placement.
    pub fn placement(&self) -> Placement {
        Placement {
            joiner: self.joiner.clone(),
            frozen_prefix: self.frozen_prefix.clone(),
            place: self.prompt_placement,
            system: self.system_prompt.clone(),
        }
    }

    /// Check the values make sense together.
    pub fn validate(&self) -> Result<(), OptError> {
        let bad = |m: &str| Err(OptError::Invalid(format!("config: {m}")));
        if self.train == 0 {
            return bad("train must be at least 1");
        }
        if self.top_k == 0 || self.top_q == 0 || self.intersection_size == 0 || self.mu == 0 {
            return bad("top_k, top_q, intersection_size and mu must be at least 1");
        }
        if self.batch_size == 0 || self.grad_batch_size == 0 {
            return bad("batch sizes must be at least 1");
        }
        if self.answer_temperature.is_nan() || self.answer_temperature <= 0.0 {
            return bad("answer_temperature must be positive");
        }
        if self.draft && self.draft_chunk == 0 {
            return bad("draft_chunk must be at least 1 when draft is on");
        }
        if self.initial_prompt.trim().is_empty() {
            return bad("initial_prompt is empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_official_effective_values() {
        // SPEC A1 (and A5's ten best prompts, C.8's loss threshold, the placeholder `_`).
        let c = OptimizeConfig::default();
        let counts = (c.top_k, c.top_q, c.intersection_size, c.min_candidates, c.k_growth, c.mu);
        assert_eq!(counts, (11, 6, 5, 6, 2, 3));
        let weights = (c.answer_temperature, c.control_weight, c.selection_nll_weight, c.dot_rule_fraction);
        assert_eq!(weights, (0.2, 0.2, 0.02, 0.5));
        assert_eq!((c.train, c.steps, c.top_prompts), (50, 100, 10));
        assert!(!c.allow_non_ascii);
        assert_eq!(c.allowed_punctuation, [".", ",", " "]);
        assert_eq!(c.placeholder, "_");
        assert_eq!(c.loss_threshold, 0.12);
        assert_eq!(c.answer_target, AnswerTarget::Official);
        assert_eq!(c.selection_mistake, SelectionMistake::TeacherForced);
        assert_eq!(c.gradient_through, GradientThrough::Reasoning);
        assert!(!c.keep_current, "the paper's selection changes the token every step");
    }
}
