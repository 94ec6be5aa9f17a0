//! What follows from a [`ModelConfig`]: validation, the parameter count, the cost formulas of
//! the benchmarks (FLOPs of a prefill, weight bytes a decode step reads), and tiny test configs.

use std::path::Path;

use super::{Dims, Family, LayerAttention, ModelConfig, RopeScaling, interleaved_layers};
use crate::LoadError;

/// Upper limits on the sizes a checkpoint may claim, checked as soon as they are read and
/// before anything is allocated from them (per-layer tables, weights). Each is several times the
/// largest released model's.
pub const SIZE_LIMITS: [(&str, usize); 7] = [
    ("vocab_size", 1 << 22),
    ("hidden_size", 1 << 17),
    ("intermediate_size", 1 << 20),
    ("num_hidden_layers", 1024),
    ("num_attention_heads", 1024),
    ("num_key_value_heads", 1024),
    ("head_dim", 4096),
];

impl Dims {
    /// `self` when every size is within [`SIZE_LIMITS`]; else an error naming the file's field
    /// (`key` turns a config name into the file's key, e.g. `llama.block_count` in a GGUF).
    pub(crate) fn within_limits(self, path: &Path, key: impl Fn(&str) -> String) -> Result<Self, LoadError> {
        let values = [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.head_dim,
        ];
        for ((field, limit), value) in SIZE_LIMITS.into_iter().zip(values) {
            if value > limit {
                return Err(LoadError::BadField {
                    path: path.to_path_buf(),
                    field: key(field),
                    reason: format!("{value} is over the limit of {limit}; the file is corrupt or not a model config"),
                });
            }
        }
        Ok(self)
    }
}

impl ModelConfig {
    /// Checks every invariant the architectures rely on, so that `forward` never has to.
    ///
    /// Sizes are positive, query heads are a multiple of key/value heads, the head width is even
    /// (RoPE rotates pairs), `layer_attention` has one entry per layer with positive windows, and
    /// every float is finite with the right sign. `path` names the source in the error, whose
    /// `field` is the config field at fault.
    pub fn validate(&self, path: impl AsRef<Path>) -> Result<(), LoadError> {
        let bad = |(field, reason): (&str, String)| LoadError::BadField {
            path: path.as_ref().to_path_buf(),
            field: field.to_owned(),
            reason,
        };
        self.check_shapes().and_then(|()| self.check_scalars()).and_then(|()| self.check_rope_scaling()).map_err(bad)
    }

    /// Sizes are positive, heads group evenly, RoPE pairs fit the head, every layer has its
    /// attention kind.
    fn check_shapes(&self) -> Result<(), (&'static str, String)> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, value) in sizes {
            if value == 0 {
                return Err((field, "must be positive, found 0".into()));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err((
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads = {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(("head_dim", format!("must be even for RoPE, found {}", self.head_dim)));
        }
        if self.layer_attention.len() != self.num_hidden_layers {
            return Err((
                "layer_attention",
                format!(
                    "has {} entries for num_hidden_layers = {}",
                    self.layer_attention.len(),
                    self.num_hidden_layers
                ),
            ));
        }
        if let Some(i) = self.layer_attention.iter().position(|a| *a == LayerAttention::Sliding { window: 0 }) {
            return Err(("layer_attention", format!("layer {i} has a sliding window of 0")));
        }
        Ok(())
    }

    /// Norm epsilon, RoPE bases and scales are positive; soft-caps are non-negative.
    fn check_scalars(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_theta", self.rope_theta),
            ("rope_local_theta", self.rope_local_theta),
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("embed_scale", self.embed_scale),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err((field, format!("must be finite and positive, found {value}")));
            }
        }
        let non_negative = [
            ("attn_logit_softcapping", self.attn_logit_softcapping),
            ("final_logit_softcapping", self.final_logit_softcapping),
        ];
        for (field, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err((field, format!("must be finite and non-negative (0 = off), found {value}")));
            }
        }
        Ok(())
    }

    /// The RoPE scaling's factors are usable.
    fn check_rope_scaling(&self) -> Result<(), (&'static str, String)> {
        match self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => {
                if !(factor.is_finite() && factor > 0.0) {
                    return Err(("rope_scaling.factor", format!("must be finite and positive, found {factor}")));
                }
            }
            RopeScaling::Llama3(s) => {
                if !(s.factor.is_finite() && s.factor > 0.0 && s.low_freq_factor > 0.0) {
                    return Err((
                        "rope_scaling",
                        format!("factor {} and low_freq_factor {} must be positive", s.factor, s.low_freq_factor),
                    ));
                }
                // The smoothing between the two wavelength limits divides by their difference.
                if s.high_freq_factor.partial_cmp(&s.low_freq_factor) != Some(std::cmp::Ordering::Greater) {
                    return Err((
                        "rope_scaling.high_freq_factor",
                        format!("{} must exceed low_freq_factor {}", s.high_freq_factor, s.low_freq_factor),
                    ));
                }
                if s.original_max_position_embeddings == 0 {
                    return Err(("rope_scaling.original_max_position_embeddings", "must be positive, found 0".into()));
                }
            }
        }
        Ok(())
    }

    /// Number of parameters: embedding, every layer's projections, biases and norms, the final
    /// norm, and the output head when it is not tied.
    pub fn num_parameters(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let attention = h * q + 2 * h * kv + q * h + if self.attention_bias { q + 2 * kv } else { 0 };
        let mlp = 3 * h * self.intermediate_size;
        let norms = if self.sandwich_norms { 4 * h } else { 2 * h } + if self.qk_norm { 2 * self.head_dim } else { 0 };
        let embedding = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embedding };
        embedding + self.num_hidden_layers * (attention + mlp + norms) + h + head
    }

    /// Multiply-adds of one token through one layer's linear projections (q, k, v, o and the
    /// gated MLP), biases and norms left out.
    pub fn layer_linear_macs(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        2 * h * q + 2 * h * kv + 3 * h * self.intermediate_size
    }

    /// Floating-point operations of a batch-1 prefill of `tokens` as `generate::prefill` runs
    /// it: every linear layer (`2·in·out` per token), the attention products over the full
    /// `tokens × tokens` square (the causal half is masked, not skipped), and the output head for
    /// the last position only. Norms, RoPE and softmax are left out.
    pub fn prefill_flops(&self, tokens: usize) -> f64 {
        let q = (self.num_attention_heads * self.head_dim) as f64;
        let s = tokens as f64;
        let linear = 2.0 * s * self.layer_linear_macs() as f64;
        let attention = 4.0 * q * s * s;
        let head = 2.0 * (self.hidden_size * self.vocab_size) as f64;
        self.num_hidden_layers as f64 * (linear + attention) + head
    }

    /// Bytes of weights one decode step reads at `bytes_per_weight` (4 for f32): every layer,
    /// the final norm and the output head (the embedding itself when tied); the embedding lookup
    /// reads a few rows only.
    pub fn weight_bytes_per_step(&self, bytes_per_weight: usize) -> usize {
        let untied_embedding = if self.tie_word_embeddings { 0 } else { self.vocab_size * self.hidden_size };
        bytes_per_weight * (self.num_parameters() - untied_embedding)
    }

    /// A tiny config of `family` for tests: 2 layers, hidden 32, vocab 64, 4 query heads,
    /// 2 key/value heads, head width 8, MLP width 64, context 128.
    ///
    /// Each family keeps its distinguishing features so tests exercise them: Qwen2 has q/k/v
    /// biases and an untied head; Gemma 2 and 3 have layer 0 sliding over 4 positions and
    /// layer 1 global (Gemma 2 also soft-caps, Gemma 3 has two RoPE bases); Llama is tied like
    /// SmolLM2.
    pub fn tiny(family: Family) -> Self {
        let dims = Dims {
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 8,
            max_position_embeddings: 128,
            rms_norm_eps: if family.is_gemma() { 1e-6 } else { 1e-5 },
        };
        let theta = if family == Family::Gemma2 { 10_000.0 } else { 1_000_000.0 };
        let mut c = Self::with_family_conventions(family, dims, theta);
        match family {
            Family::Llama => {
                c.rope_theta = 10_000.0;
                c.rope_local_theta = 10_000.0;
                c.tie_word_embeddings = true;
            }
            Family::Qwen2 => c.tie_word_embeddings = false,
            Family::Gemma2 => {
                c.tie_word_embeddings = true;
                c.layer_attention = interleaved_layers(2, 4, 2);
                c.attn_logit_softcapping = 50.0;
                c.final_logit_softcapping = 30.0;
            }
            Family::Gemma3 => {
                c.tie_word_embeddings = true;
                c.layer_attention = interleaved_layers(2, 4, 2);
                c.rope_local_theta = 10_000.0;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_flops_of_the_tiny_llama() {
        // Tiny Llama: hidden 32, MLP 64, 2 layers, 4 query heads and 2 kv heads of width 8,
        // vocab 64. Per token and layer the linears are q 32·32, k and v 32·16 each, o 32·32 and
        // the MLP 3·32·64: 9216 multiply-adds, 18432 flops; 4 tokens and 2 layers: 147456.
        // Attention: 4·32·4² = 2048 per layer, 4096 in all. Head: 2·32·64 = 4096.
        let c = ModelConfig::tiny(Family::Llama);
        assert_eq!(c.layer_linear_macs(), 9216);
        assert_eq!(c.prefill_flops(4), 147_456.0 + 4096.0 + 4096.0);
    }

    #[test]
    fn weight_bytes_count_a_tied_embedding_once() {
        // Tiny Llama (tied): embedding 64·32 = 2048; per layer attention 3072 (q and o 32·32,
        // k and v 32·16), MLP 3·32·64 = 6144 and two norms 64; final norm 32.
        // 2048 + 2·9280 + 32 = 20640 parameters, all read per step.
        let c = ModelConfig::tiny(Family::Llama);
        assert_eq!(c.num_parameters(), 20_640);
        assert_eq!(c.weight_bytes_per_step(4), 4 * 20_640);
        assert_eq!(c.weight_bytes_per_step(2), 2 * 20_640);
        // Tiny Qwen2 (untied, q/k/v biases 32 + 2·16): the input embedding is not streamed.
        let q = ModelConfig::tiny(Family::Qwen2);
        assert_eq!(q.weight_bytes_per_step(4), 4 * (q.num_parameters() - 2048));
    }
}
