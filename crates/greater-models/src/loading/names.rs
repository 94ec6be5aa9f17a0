//! GGUF tensor names → Hugging Face names, one table per family, and the named fix-ups that undo
//! what llama.cpp's converter
//! ([`convert_hf_to_gguf.py`](https://github.com/ggml-org/llama.cpp/blob/master/convert_hf_to_gguf.py))
//! did to the values.
//!
//! Per-layer patterns contain `{i}`, the layer index.

use crate::config::Family;

/// A GGUF name pattern and the Hugging Face name it becomes.
pub type NameRule = (&'static str, &'static str);

/// Tensors outside the decoder layers, shared by every family.
const GLOBAL: &[NameRule] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// Attention and MLP projections, shared by every family.
const PROJECTIONS: &[NameRule] = &[
    ("blk.{i}.attn_q.weight", "model.layers.{i}.self_attn.q_proj.weight"),
    ("blk.{i}.attn_k.weight", "model.layers.{i}.self_attn.k_proj.weight"),
    ("blk.{i}.attn_v.weight", "model.layers.{i}.self_attn.v_proj.weight"),
    ("blk.{i}.attn_output.weight", "model.layers.{i}.self_attn.o_proj.weight"),
    ("blk.{i}.ffn_gate.weight", "model.layers.{i}.mlp.gate_proj.weight"),
    ("blk.{i}.ffn_up.weight", "model.layers.{i}.mlp.up_proj.weight"),
    ("blk.{i}.ffn_down.weight", "model.layers.{i}.mlp.down_proj.weight"),
];

/// Llama: one norm before attention, one before the MLP.
const LLAMA_LAYER: &[NameRule] = &[
    ("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
];

/// Qwen2: Llama's norms plus q/k/v biases.
const QWEN2_LAYER: &[NameRule] = &[
    ("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("blk.{i}.attn_q.bias", "model.layers.{i}.self_attn.q_proj.bias"),
    ("blk.{i}.attn_k.bias", "model.layers.{i}.self_attn.k_proj.bias"),
    ("blk.{i}.attn_v.bias", "model.layers.{i}.self_attn.v_proj.bias"),
];

/// Gemma 2/3: sandwich norms (GGUF's `ffn_norm` is Hugging Face's *pre*-feedforward norm) and,
/// in Gemma 3, q/k norms.
const GEMMA_LAYER: &[NameRule] = &[
    ("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("blk.{i}.post_attention_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("blk.{i}.ffn_norm.weight", "model.layers.{i}.pre_feedforward_layernorm.weight"),
    ("blk.{i}.post_ffw_norm.weight", "model.layers.{i}.post_feedforward_layernorm.weight"),
    ("blk.{i}.attn_q_norm.weight", "model.layers.{i}.self_attn.q_norm.weight"),
    ("blk.{i}.attn_k_norm.weight", "model.layers.{i}.self_attn.k_norm.weight"),
];

/// Every rule of `family`: global tensors first, then the per-layer ones.
pub fn rules(family: Family) -> Vec<NameRule> {
    let layer = match family {
        Family::Llama => LLAMA_LAYER,
        Family::Qwen2 => QWEN2_LAYER,
        Family::Gemma2 | Family::Gemma3 => GEMMA_LAYER,
    };
    [GLOBAL, PROJECTIONS, layer].concat()
}

/// The family of a GGUF `general.architecture`, if this crate implements it.
pub fn family_for_architecture(arch: &str) -> Option<Family> {
    match arch {
        "llama" => Some(Family::Llama),
        "qwen2" => Some(Family::Qwen2),
        "gemma2" => Some(Family::Gemma2),
        "gemma3" => Some(Family::Gemma3),
        _ => None,
    }
}

/// Architectures [`family_for_architecture`] accepts, for error messages.
pub const SUPPORTED_ARCHITECTURES: &str = "llama, qwen2, gemma2, gemma3";

/// `pattern` with `{i}` replaced by `layer`.
pub fn expand(pattern: &str, layer: usize) -> String {
    pattern.replace("{i}", &layer.to_string())
}

/// A correction applied to a GGUF tensor so that it holds Hugging Face values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixUp {
    /// Stored as Hugging Face has it.
    None,
    /// llama.cpp's converter reorders the rows of llama `q_proj`/`k_proj` so that each head's
    /// rotary pairs are adjacent (interleaved RoPE); [`unpermute_rope_rows`] restores
    /// Hugging Face's half-split order, so the model always uses rotate-half RoPE.
    UnpermuteRope {
        /// Heads in the projection: `attention.head_count` for q, `attention.head_count_kv` for k.
        n_head: usize,
    },
    /// Gemma GGUF stores RMSNorm weights as `w + 1` (llama.cpp's Gemma norm multiplies by the
    /// stored value); Hugging Face stores `w` and multiplies by `1 + w`. [`subtract_one`] undoes it.
    GemmaNormOffset,
}

/// Undoes llama.cpp's `LlamaModel.permute` on the rows of a `[rows, cols]` projection (or a
/// `[rows]` bias, `cols = 1`).
///
/// With `head_dim = rows / n_head`, the converter stores Hugging Face row `(h, s, i)` — head `h`,
/// half `s ∈ {0, 1}`, index `i < head_dim / 2` — at GGUF row `(h, i, s)`, i.e. it views the rows
/// as `[n_head, 2, head_dim / 2]` and swaps the last two axes. This function views the GGUF rows
/// as `[n_head, head_dim / 2, 2]` and swaps back (transformers' `reverse_permute_weights`).
///
/// # Shapes
/// - `data`: `[rows, cols]` row-major, `rows` a multiple of `2 * n_head` → same shape.
pub fn unpermute_rope_rows(data: &[f32], rows: usize, cols: usize, n_head: usize) -> Option<Vec<f32>> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) || data.len() != rows * cols {
        return None;
    }
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = vec![0.0f32; data.len()];
    for h in 0..n_head {
        for s in 0..2 {
            for i in 0..half {
                let hf_row = h * head_dim + s * half + i;
                let gguf_row = h * head_dim + 2 * i + s;
                out[hf_row * cols..][..cols].copy_from_slice(&data[gguf_row * cols..][..cols]);
            }
        }
    }
    Some(out)
}

/// Subtracts 1 from every value, in `f32` (as transformers does for Gemma norms).
pub fn subtract_one(data: &mut [f32]) {
    for x in data {
        *x -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_restores_half_split_rows() {
        // Two heads of head_dim 4, two columns. Hugging Face rows of head h are
        // [x0, x1, y0, y1] (first half x, second half y); the converter interleaves them to
        // [x0, y0, x1, y1]. Row r of the HF matrix holds (10 r, 10 r + 1).
        let hf: Vec<f32> = (0..8).flat_map(|r| [10.0 * r as f32, 10.0 * r as f32 + 1.0]).collect();
        // GGUF order, written out by hand from the rule above: head 0 rows 0,2,1,3; head 1 rows 4,6,5,7.
        let gguf_rows = [0, 2, 1, 3, 4, 6, 5, 7];
        let gguf: Vec<f32> = gguf_rows.iter().flat_map(|&r| [10.0 * r as f32, 10.0 * r as f32 + 1.0]).collect();
        assert_eq!(unpermute_rope_rows(&gguf, 8, 2, 2).unwrap(), hf);
    }

    #[test]
    fn unpermute_of_a_bias_and_bad_shapes() {
        // One head of head_dim 6: GGUF [x0, y0, x1, y1, x2, y2] → HF [x0, x1, x2, y0, y1, y2].
        let gguf = [1.0, -1.0, 2.0, -2.0, 3.0, -3.0];
        assert_eq!(unpermute_rope_rows(&gguf, 6, 1, 1).unwrap(), [1.0, 2.0, 3.0, -1.0, -2.0, -3.0]);
        assert_eq!(unpermute_rope_rows(&gguf, 6, 1, 2), None); // head_dim 3 is odd
        assert_eq!(unpermute_rope_rows(&gguf, 6, 1, 0), None);
        assert_eq!(unpermute_rope_rows(&gguf, 3, 1, 1), None);
    }

    #[test]
    fn subtract_one_is_plain_f32_subtraction() {
        let mut w = [1.0f32, 1.5, 0.25, 2.0];
        subtract_one(&mut w);
        assert_eq!(w, [0.0, 0.5, -0.75, 1.0]);
    }

    #[test]
    fn tables_cover_each_family() {
        let gemma = rules(Family::Gemma3);
        assert!(gemma.contains(&("blk.{i}.ffn_norm.weight", "model.layers.{i}.pre_feedforward_layernorm.weight")));
        assert!(gemma.contains(&("output.weight", "lm_head.weight")));
        let qwen = rules(Family::Qwen2);
        assert!(qwen.contains(&("blk.{i}.attn_q.bias", "model.layers.{i}.self_attn.q_proj.bias")));
        let llama = rules(Family::Llama);
        assert!(llama.contains(&("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight")));
        assert!(!llama.iter().any(|(g, _)| g.ends_with(".bias")));
        for family in [Family::Llama, Family::Qwen2, Family::Gemma2, Family::Gemma3] {
            let r = rules(family);
            let mut hf: Vec<_> = r.iter().map(|(_, h)| *h).collect();
            hf.sort_unstable();
            hf.dedup();
            assert_eq!(hf.len(), r.len(), "{family:?} maps two GGUF names to one HF name");
        }
        assert_eq!(expand("blk.{i}.attn_q.weight", 12), "blk.12.attn_q.weight");
        assert_eq!(family_for_architecture("gemma3"), Some(Family::Gemma3));
        assert_eq!(family_for_architecture("phi3"), None);
    }
}
