//! Peak memory of a run, predicted from the model's shapes and the config before the first step
//! (issue 16), so that a run that cannot fit is refused at once ([`OptimizeConfig::max_memory`])
//! instead of being killed hours in.
//!
//! The peak is the weights plus the largest of the phases, each a sum of tensors whose sizes
//! follow from the shapes:
//! - **generation** (reasoning, selection, evaluation): the KV cache of a batch at its longest,
//!   the copies the engine makes of it (stacking, compaction, the answer's sub-cache), the
//!   prefix caches of every training example, and the transient activations of the widest
//!   prefill (attention scores are `heads × tokens²` per row);
//! - **gradient**: the activations autodiff keeps for the backward pass of one gradient batch
//!   (per token and layer a multiple of the hidden, projection and MLP widths, plus the attention
//!   probabilities), the logits at the read positions and their softmaxes, the one-hot embedding.
//!
//! The per-element counts are fitted to `greater bench grad` peaks (benches/README.md, issue 16);
//! `bench grad` prints the prediction next to the measured peak so the fit stays honest.

use greater_models::config::ModelConfig;

use crate::optimize::OptimizeConfig;

/// Bytes per f32 element.
const F32: u64 = 4;

/// Resident memory of the process before any model is loaded (runtime, tokenizer, thread pool).
pub const BASE_BYTES: u64 = 150 << 20;

/// Floats autodiff keeps per token and layer, in units of each width: hidden, attention
/// projections (q + k + v + o), MLP width, and attention probabilities (`heads × tokens`).
/// Fitted to `greater bench grad` peaks of SmolLM2-135M (4 × 130, 8 × 200, 8 × 400 tokens) and
/// Qwen2.5-Coder-0.5B (4 × 200, 4 × 400) on flex: every prediction within 2.2 % (2.6 %
/// checkpointed); the projection widths did not improve the fit.
/// With burn's balanced checkpointing the memory-bound intermediates (norms, activations,
/// softmax) are recomputed, so less grows with the MLP width and the attention square.
const KEPT: [f64; 4] = [2.0, 0.0, 4.0, 3.4];
const KEPT_CHECKPOINTED: [f64; 4] = [10.5, 0.0, 1.5, 2.4];

/// What one run's phases need, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemoryEstimate {
    /// The weights as loaded (f32).
    pub weights: u64,
    /// Generation's peak above the weights.
    pub generation: u64,
    /// The gradient's peak above the weights.
    pub gradient: u64,
    /// The process's predicted peak: base, weights and the larger phase.
    pub peak: u64,
}

/// The shapes of a run's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Tokens of the longest generation prompt (chat prefix, question, prompt, suffix).
    pub prompt_tokens: usize,
    /// Tokens generation adds after the prompt: reasoning cap, extractor, answer cap.
    pub new_tokens: usize,
    /// Tokens of the longest gradient sequence: prompt, reasoning cap, extractor, gold answer.
    pub grad_tokens: usize,
    /// Tokens of the prompt prefix cached per training example (0: no prefix cache).
    pub prefix_tokens: usize,
    /// Training examples.
    pub train: usize,
    /// Generation rows per forward.
    pub batch_size: usize,
    /// Tokens fed per row in one verification forward.
    pub verify_width: usize,
    /// Examples per gradient forward+backward.
    pub grad_batch_size: usize,
    /// Positions whose logits the gradient reads per example (prompt and answer tokens).
    pub read_positions: usize,
    /// Candidate tokens of the one-hot.
    pub candidates: usize,
    /// Gradient checkpointing.
    pub checkpointing: bool,
}

impl Workload {
    /// A run of `cfg` whose longest generation prompt is `prompt_tokens` with `prompt_len` prompt
    /// tokens, and whose extractor + answer is `tail_tokens`.
    pub fn of_run(cfg: &OptimizeConfig, prompt_tokens: usize, prompt_len: usize, tail_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            new_tokens: cfg.max_reasoning_tokens + tail_tokens + crate::eval::MAX_ANSWER_TOKENS,
            grad_tokens: prompt_tokens + cfg.max_reasoning_tokens + tail_tokens,
            prefix_tokens: if cfg.prefix_cache { prompt_tokens } else { 0 },
            train: cfg.train,
            batch_size: cfg.batch_size,
            verify_width: if cfg.draft { cfg.draft_chunk + 1 } else { 1 },
            grad_batch_size: cfg.grad_batch_size,
            read_positions: prompt_len + tail_tokens,
            candidates: cfg.top_k * 2 + cfg.min_candidates.max(1) + 1,
            checkpointing: cfg.gradient_checkpointing,
        }
    }
}

/// The prediction for `w` on a model of shape `m`.
pub fn estimate(m: &ModelConfig, w: &Workload) -> MemoryEstimate {
    let weights = F32 * m.num_parameters() as u64;
    let generation = generation_bytes(m, w);
    let gradient = gradient_bytes(m, w.grad_batch_size, w.grad_tokens, w.read_positions, w.candidates, w.checkpointing);
    MemoryEstimate { weights, generation, gradient, peak: BASE_BYTES + weights + generation.max(gradient) }
}

/// Bytes of one row's keys and values over `slots` positions.
fn kv_row_bytes(m: &ModelConfig, slots: usize) -> u64 {
    F32 * (2 * m.num_hidden_layers * m.num_key_value_heads * m.head_dim * slots) as u64
}

/// Generation's peak above the weights: the cache (three copies at the moment the engine stacks
/// or compacts it), the prefix caches, and the widest prefill's activations.
pub fn generation_bytes(m: &ModelConfig, w: &Workload) -> u64 {
    let b = w.batch_size.max(1);
    let slots = w.prompt_tokens + w.new_tokens + w.verify_width;
    let cache = 3 * b as u64 * kv_row_bytes(m, slots);
    let prefixes = w.train as u64 * kv_row_bytes(m, w.prefix_tokens);
    let s = w.prompt_tokens as u64;
    let (h, i, heads) = (m.hidden_size as u64, m.intermediate_size as u64, m.num_attention_heads as u64);
    let prefill = F32 * b as u64 * (s * (4 * h + 3 * i) + 3 * heads * s * s);
    let logits = F32 * (b * w.verify_width.max(1) * m.vocab_size) as u64 * 2;
    cache + prefixes + prefill + logits
}

/// The gradient's peak above the weights for `batch` sequences of `tokens`, `read` logit positions
/// each and `candidates` one-hot columns.
pub fn gradient_bytes(
    m: &ModelConfig,
    batch: usize,
    tokens: usize,
    read: usize,
    candidates: usize,
    checkpointing: bool,
) -> u64 {
    let k = if checkpointing { KEPT_CHECKPOINTED } else { KEPT };
    let (b, s) = (batch.max(1) as f64, tokens as f64);
    let h = m.hidden_size as f64;
    let proj = (2 * m.num_attention_heads * m.head_dim + 2 * m.num_key_value_heads * m.head_dim) as f64;
    let mlp = m.intermediate_size as f64;
    let heads = m.num_attention_heads as f64;
    let per_token_layer = k[0] * h + k[1] * proj + k[2] * mlp + k[3] * heads * s;
    let kept = b * s * m.num_hidden_layers as f64 * per_token_layer;
    // Logits at the read positions, their two log-softmaxes and the gradients flowing back.
    let logits = 4.0 * b * read as f64 * m.vocab_size as f64;
    let onehot = b * candidates as f64 * h + b * s * h * 2.0;
    (F32 as f64 * (kept + logits + onehot)) as u64
}

/// Parse a memory size: `12G`, `512M`, `1.5GiB`, `800MB` or plain bytes (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.trim().parse().map_err(|_| format!("{text:?} is not a size such as 12G or 512M"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use K, M, G or T)")),
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{text:?}: a size must be positive"));
    }
    Ok((value * scale as f64) as u64)
}

/// A byte count for people: `1.23 GiB`, `456 MiB`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// Refuse `e` when it is above `budget`, saying what to change.
pub fn check_budget(e: &MemoryEstimate, budget: Option<u64>) -> Result<(), crate::OptError> {
    let Some(budget) = budget else { return Ok(()) };
    if e.peak <= budget {
        return Ok(());
    }
    Err(crate::OptError::Invalid(format!(
        "the run is predicted to need {} at peak (weights {}, generation {}, gradient {}) but max_memory is {}; \
         lower grad_batch_size or batch_size, cap max_reasoning_tokens, or turn on gradient_checkpointing",
        human(e.peak),
        human(e.weights),
        human(e.generation),
        human(e.gradient),
        human(budget)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use greater_models::config::Family;

    fn workload() -> Workload {
        Workload {
            prompt_tokens: 100,
            new_tokens: 300,
            grad_tokens: 390,
            prefix_tokens: 90,
            train: 10,
            batch_size: 8,
            verify_width: 9,
            grad_batch_size: 4,
            read_positions: 20,
            candidates: 30,
            checkpointing: false,
        }
    }

    #[test]
    fn memory_grows_with_every_size_and_checkpointing_saves() {
        let m = ModelConfig::tiny(Family::Llama);
        let base = estimate(&m, &workload());
        assert_eq!(base.weights, 4 * m.num_parameters() as u64);
        assert_eq!(base.peak, BASE_BYTES + base.weights + base.generation.max(base.gradient));
        let bigger = |f: fn(&mut Workload)| {
            let mut w = workload();
            f(&mut w);
            estimate(&m, &w)
        };
        assert!(bigger(|w| w.grad_batch_size *= 2).gradient > base.gradient);
        assert!(bigger(|w| w.grad_tokens *= 2).gradient > base.gradient);
        assert!(bigger(|w| w.new_tokens *= 2).generation > base.generation);
        assert!(bigger(|w| w.batch_size *= 2).generation > base.generation);
        assert!(bigger(|w| w.train *= 2).generation > base.generation);
        assert!(bigger(|w| w.checkpointing = true).gradient < base.gradient);
        // Attention probabilities make the gradient quadratic in the sequence length.
        let g = |s| gradient_bytes(&m, 1, s, 1, 1, false) as f64;
        assert!(g(2000) / g(1000) > 2.05);
    }

    #[test]
    fn sizes_parse_with_units_and_bad_ones_are_refused() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("12 g").unwrap(), 12 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0G").is_err());
    }

    #[test]
    fn a_run_above_the_budget_is_refused_with_what_to_change() {
        let m = ModelConfig::tiny(Family::Llama);
        let e = estimate(&m, &workload());
        assert!(check_budget(&e, None).is_ok());
        assert!(check_budget(&e, Some(e.peak)).is_ok());
        let err = check_budget(&e, Some(e.peak - 1)).unwrap_err().to_string();
        assert!(err.contains("max_memory") && err.contains("gradient_checkpointing"), "{err}");
    }
}
