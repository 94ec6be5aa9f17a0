//! GGUF tensor names → Hugging Face names, one table per family, and the named fix-ups that undo
//! what llama.cpp's converter
//! ([`convert_hf_to_gguf.py`](https://github.com/ggml-org/llama.cpp/blob/master/convert_hf_to_gguf.py))
//! did to the values.
//!
//! Per-layer patterns contain `{i}`, the layer index. Each row names the fix-up that turns the
//! stored values into Hugging Face's; nothing is guessed from a name at load time. One GGUF
//! tensor may feed several rows: a fused `attn_qkv` (Phi-3) is three rows, one per projection,
//! each taking its block of rows ([`Fix::FusedQkv`]).

use crate::config::Family;

/// One GGUF tensor (pattern) → one Hugging Face tensor (pattern), with its fix-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRule {
    /// The GGUF name pattern.
    pub gguf: &'static str,
    /// The Hugging Face name pattern.
    pub hf: &'static str,
    /// How the stored values become Hugging Face's.
    pub fix: Fix,
}

/// A fix-up as a table states it. [`Fix::resolve`] turns it into a [`FixUp`] once the head
/// counts of the file are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// Stored as Hugging Face has it.
    None,
    /// [`FixUp::UnpermuteRope`] over the query heads (`attn_q`) or the key/value heads (`attn_k`).
    UnpermuteRope(Heads),
    /// [`FixUp::GemmaNormOffset`].
    GemmaNormOffset,
    /// One block of a fused `[q; k; v]` projection ([`FixUp::Rows`]).
    FusedQkv(Qkv),
}

/// Which head count a fix-up needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heads {
    /// `attention.head_count`.
    Query,
    /// `attention.head_count_kv`.
    KeyValue,
}

/// A block of a fused attention projection, stacked `[q; k; v]` along the output rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qkv {
    /// Rows `0 .. heads · head_dim`.
    Q,
    /// The next `kv_heads · head_dim` rows.
    K,
    /// The last `kv_heads · head_dim` rows.
    V,
}

/// What [`Fix::resolve`] needs from the file's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadCounts {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl Fix {
    /// Whether resolving needs [`HeadCounts`].
    pub fn needs_heads(self) -> bool {
        matches!(self, Self::UnpermuteRope(_) | Self::FusedQkv(_))
    }

    /// The concrete fix-up for a file with `heads`; `None` when it needs head counts and has none.
    pub fn resolve(self, heads: Option<HeadCounts>) -> Option<FixUp> {
        Some(match self {
            Self::None => FixUp::None,
            Self::GemmaNormOffset => FixUp::GemmaNormOffset,
            Self::UnpermuteRope(Heads::Query) => FixUp::UnpermuteRope { n_head: heads?.heads },
            Self::UnpermuteRope(Heads::KeyValue) => FixUp::UnpermuteRope { n_head: heads?.kv_heads },
            Self::FusedQkv(part) => {
                let h = heads?;
                let (q, kv) = (h.heads * h.head_dim, h.kv_heads * h.head_dim);
                let (start, len) = match part {
                    Qkv::Q => (0, q),
                    Qkv::K => (q, kv),
                    Qkv::V => (q + kv, kv),
                };
                FixUp::Rows { start, len }
            }
        })
    }
}

const fn rule(gguf: &'static str, hf: &'static str, fix: Fix) -> NameRule {
    NameRule { gguf, hf, fix }
}

/// The embedding and the untied output head, shared by every family.
const EMBEDDINGS: &[NameRule] = &[
    rule("token_embd.weight", "model.embed_tokens.weight", Fix::None),
    rule("output.weight", "lm_head.weight", Fix::None),
];

/// The v/o projections and the MLP, shared by every family.
const PROJECTIONS: &[NameRule] = &[
    rule("blk.{i}.attn_v.weight", "model.layers.{i}.self_attn.v_proj.weight", Fix::None),
    rule("blk.{i}.attn_output.weight", "model.layers.{i}.self_attn.o_proj.weight", Fix::None),
    rule("blk.{i}.ffn_gate.weight", "model.layers.{i}.mlp.gate_proj.weight", Fix::None),
    rule("blk.{i}.ffn_up.weight", "model.layers.{i}.mlp.up_proj.weight", Fix::None),
    rule("blk.{i}.ffn_down.weight", "model.layers.{i}.mlp.down_proj.weight", Fix::None),
];

/// q/k as stored by families whose converter leaves them alone (Qwen2, Gemma).
const QK_PLAIN: &[NameRule] = &[
    rule("blk.{i}.attn_q.weight", "model.layers.{i}.self_attn.q_proj.weight", Fix::None),
    rule("blk.{i}.attn_k.weight", "model.layers.{i}.self_attn.k_proj.weight", Fix::None),
];

/// Llama: q/k rows interleaved by the converter, one norm before attention, one before the MLP.
const LLAMA_LAYER: &[NameRule] = &[
    rule("output_norm.weight", "model.norm.weight", Fix::None),
    rule("blk.{i}.attn_q.weight", "model.layers.{i}.self_attn.q_proj.weight", Fix::UnpermuteRope(Heads::Query)),
    rule("blk.{i}.attn_k.weight", "model.layers.{i}.self_attn.k_proj.weight", Fix::UnpermuteRope(Heads::KeyValue)),
    rule("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight", Fix::None),
    rule("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight", Fix::None),
];

/// Qwen2: Llama's norms plus q/k/v biases; q/k rows as Hugging Face has them.
const QWEN2_LAYER: &[NameRule] = &[
    rule("output_norm.weight", "model.norm.weight", Fix::None),
    rule("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight", Fix::None),
    rule("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight", Fix::None),
    rule("blk.{i}.attn_q.bias", "model.layers.{i}.self_attn.q_proj.bias", Fix::None),
    rule("blk.{i}.attn_k.bias", "model.layers.{i}.self_attn.k_proj.bias", Fix::None),
    rule("blk.{i}.attn_v.bias", "model.layers.{i}.self_attn.v_proj.bias", Fix::None),
];

/// Gemma 2/3: sandwich norms (GGUF's `ffn_norm` is Hugging Face's *pre*-feedforward norm) and,
/// in Gemma 3, q/k norms; every norm stored as `1 + w`.
const GEMMA_LAYER: &[NameRule] = &[
    rule("output_norm.weight", "model.norm.weight", Fix::GemmaNormOffset),
    rule("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight", Fix::GemmaNormOffset),
    rule(
        "blk.{i}.post_attention_norm.weight",
        "model.layers.{i}.post_attention_layernorm.weight",
        Fix::GemmaNormOffset,
    ),
    rule("blk.{i}.ffn_norm.weight", "model.layers.{i}.pre_feedforward_layernorm.weight", Fix::GemmaNormOffset),
    rule("blk.{i}.post_ffw_norm.weight", "model.layers.{i}.post_feedforward_layernorm.weight", Fix::GemmaNormOffset),
    rule("blk.{i}.attn_q_norm.weight", "model.layers.{i}.self_attn.q_norm.weight", Fix::GemmaNormOffset),
    rule("blk.{i}.attn_k_norm.weight", "model.layers.{i}.self_attn.k_norm.weight", Fix::GemmaNormOffset),
];

/// Every rule of `family`: model-level tensors first, then the per-layer ones.
pub fn rules(family: Family) -> Vec<NameRule> {
    match family {
        Family::Llama => [EMBEDDINGS, LLAMA_LAYER, PROJECTIONS].concat(),
        Family::Qwen2 => [EMBEDDINGS, QWEN2_LAYER, QK_PLAIN, PROJECTIONS].concat(),
        Family::Gemma2 | Family::Gemma3 => [EMBEDDINGS, GEMMA_LAYER, QK_PLAIN, PROJECTIONS].concat(),
    }
}

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
    /// The tensor is rows `start .. start + len` of a fused one (e.g. `k_proj` of `attn_qkv`:
    /// with 4 query and 2 kv heads of width 8, rows 32..48); [`take_rows`] cuts them out.
    Rows {
        /// First row.
        start: usize,
        /// Rows taken.
        len: usize,
    },
}

/// Rows `start .. start + len` of a row-major `[rows, cols]` tensor; `None` when out of range.
///
/// # Shapes
/// - `data`: `[rows, cols]` (or `[rows]`, `cols = 1`) → `[len, cols]`
pub fn take_rows(data: &[f32], cols: usize, start: usize, len: usize) -> Option<Vec<f32>> {
    let end = start.checked_add(len)?.checked_mul(cols)?;
    (end <= data.len()).then(|| data[start * cols..end].to_vec())
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
        let has = |f: Family, gguf: &str, hf: &str, fix: Fix| {
            rules(f).iter().any(|r| r.gguf == gguf && r.hf == hf && r.fix == fix)
        };
        let pre_ffn = "model.layers.{i}.pre_feedforward_layernorm.weight";
        assert!(has(Family::Gemma3, "blk.{i}.ffn_norm.weight", pre_ffn, Fix::GemmaNormOffset));
        assert!(has(Family::Gemma3, "output_norm.weight", "model.norm.weight", Fix::GemmaNormOffset));
        assert!(has(Family::Gemma3, "output.weight", "lm_head.weight", Fix::None));
        assert!(has(Family::Qwen2, "blk.{i}.attn_q.bias", "model.layers.{i}.self_attn.q_proj.bias", Fix::None));
        assert!(has(Family::Qwen2, "blk.{i}.attn_q.weight", "model.layers.{i}.self_attn.q_proj.weight", Fix::None));
        let post_attn = "model.layers.{i}.post_attention_layernorm.weight";
        assert!(has(Family::Llama, "blk.{i}.ffn_norm.weight", post_attn, Fix::None));
        let k = "model.layers.{i}.self_attn.k_proj.weight";
        assert!(has(Family::Llama, "blk.{i}.attn_k.weight", k, Fix::UnpermuteRope(Heads::KeyValue)));
        assert!(!rules(Family::Llama).iter().any(|r| r.gguf.ends_with(".bias")));
        for family in [Family::Llama, Family::Qwen2, Family::Gemma2, Family::Gemma3] {
            let r = rules(family);
            let mut hf: Vec<_> = r.iter().map(|r| r.hf).collect();
            hf.sort_unstable();
            hf.dedup();
            assert_eq!(hf.len(), r.len(), "{family:?} maps two GGUF names to one HF name");
        }
        assert_eq!(expand("blk.{i}.attn_q.weight", 12), "blk.12.attn_q.weight");
    }

    /// A Phi-3-style table: one fused `attn_qkv` tensor feeds three Hugging Face tensors.
    const FUSED: &[NameRule] = &[
        rule("blk.{i}.attn_qkv.weight", "model.layers.{i}.self_attn.q_proj.weight", Fix::FusedQkv(Qkv::Q)),
        rule("blk.{i}.attn_qkv.weight", "model.layers.{i}.self_attn.k_proj.weight", Fix::FusedQkv(Qkv::K)),
        rule("blk.{i}.attn_qkv.weight", "model.layers.{i}.self_attn.v_proj.weight", Fix::FusedQkv(Qkv::V)),
    ];

    #[test]
    fn a_fused_qkv_tensor_splits_into_its_three_projections() {
        // 2 query heads and 1 kv head of width 2: q has 4 rows, k and v 2 each; 3 columns.
        // Row r of the fused tensor holds (r, r, r), so each block is recognisable.
        let heads = HeadCounts { heads: 2, kv_heads: 1, head_dim: 2 };
        let fused: Vec<f32> = (0..8).flat_map(|r| [r as f32; 3]).collect();
        let rows = |r: std::ops::Range<usize>| -> Vec<f32> { r.flat_map(|r| [r as f32; 3]).collect() };
        let mut got = Vec::new();
        for r in FUSED {
            let Some(FixUp::Rows { start, len }) = r.fix.resolve(Some(heads)) else { panic!("{r:?}") };
            got.push((expand(r.hf, 0), take_rows(&fused, 3, start, len).unwrap()));
        }
        assert_eq!(got[0], ("model.layers.0.self_attn.q_proj.weight".into(), rows(0..4)));
        assert_eq!(got[1], ("model.layers.0.self_attn.k_proj.weight".into(), rows(4..6)));
        assert_eq!(got[2], ("model.layers.0.self_attn.v_proj.weight".into(), rows(6..8)));
        // Without head counts the split cannot be made; out of range rows are refused.
        assert_eq!(FUSED[0].fix.resolve(None), None);
        assert!(FUSED[0].fix.needs_heads() && !Fix::GemmaNormOffset.needs_heads());
        assert_eq!(take_rows(&fused, 3, 6, 3), None);
    }
}
