//! ggml tensor types and their dequantisation to `f32`.
//!
//! Every decoder follows ggml's reference `dequantize_row_*` in
//! [`ggml-quants.c`](https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-quants.c)
//! with the same `f32` operations in the same order (`d * q`, `d * q + m`, `(d * sc) * q - dmin * m`),
//! so results match `gguf.quants.dequantize` of the Python `gguf` package bit for bit. Rust never
//! fuses a multiply and an add on its own, so no operation is rounded differently.
//!
//! Large tensors are decoded on all cores with scoped threads; each thread writes whole blocks.

use std::borrow::Cow;
use std::fmt;

/// Elements per super-block of the k-quants.
const QK_K: usize = 256;
/// Tensors with at least this many elements are decoded on several threads.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 20;

/// A ggml tensor type, by its id in `enum ggml_type`.
///
/// Only the types listed by name can be decoded; every other id is kept as
/// [`GgmlType::Unsupported`], so that a file holding one exotic tensor can still be opened.
#[allow(non_camel_case_types)] // the names are ggml's own
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// IEEE single precision (id 0).
    F32,
    /// IEEE half precision (id 1).
    F16,
    /// 32 weights: `f16 d`, 16 bytes of 4-bit `q`; `x = d * (q - 8)` (id 2).
    Q4_0,
    /// 32 weights: `f16 d, m`, 16 bytes of 4-bit `q`; `x = d * q + m` (id 3).
    Q4_1,
    /// 32 weights: `f16 d`, 32 high bits, 16 bytes of low nibbles; `x = d * (q - 16)` (id 6).
    Q5_0,
    /// 32 weights: `f16 d, m`, 32 high bits, 16 bytes of low nibbles; `x = d * q + m` (id 7).
    Q5_1,
    /// 32 weights: `f16 d`, 32 `i8`; `x = d * q` (id 8).
    Q8_0,
    /// 256 weights, 2-bit, 16 groups with 4-bit scale and min (id 10).
    Q2_K,
    /// 256 weights, 3-bit, 16 groups with 6-bit signed scales (id 11).
    Q3_K,
    /// 256 weights, 4-bit, 8 groups with 6-bit scale and min (id 12).
    Q4_K,
    /// 256 weights, 5-bit, 8 groups with 6-bit scale and min (id 13).
    Q5_K,
    /// 256 weights, 6-bit, 16 groups with `i8` scales (id 14).
    Q6_K,
    /// bfloat16 (id 30).
    BF16,
    /// Any other ggml type id (quantisations this crate does not decode, or an unknown id).
    Unsupported(u32),
}

/// Why a buffer could not be dequantised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DequantError {
    /// The type has no decoder here.
    #[error("unsupported tensor type {0}")]
    Unsupported(GgmlType),
    /// The element count is not a whole number of blocks.
    #[error("{n_elements} elements is not a multiple of the {ty} block size {block_size}")]
    PartialBlock {
        /// The tensor type.
        ty: GgmlType,
        /// Elements requested.
        n_elements: usize,
        /// Elements per block of `ty`.
        block_size: usize,
    },
    /// The byte buffer does not hold exactly the requested elements.
    #[error("{ty} data for {n_elements} elements needs {expected} bytes, got {got}")]
    Length {
        /// The tensor type.
        ty: GgmlType,
        /// Elements requested.
        n_elements: usize,
        /// Bytes the elements occupy.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
}

impl GgmlType {
    /// The type with ggml id `id` ([`GgmlType::Unsupported`] for ids without a decoder).
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            30 => Self::BF16,
            other => Self::Unsupported(other),
        }
    }

    /// The ggml id (`enum ggml_type`).
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q2_K => 10,
            Self::Q3_K => 11,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::BF16 => 30,
            Self::Unsupported(id) => id,
        }
    }

    /// ggml's name of the type (`"Q4_K"`); unsupported ids get ggml's name too where known,
    /// else `"type {id}"`.
    pub fn name(self) -> Cow<'static, str> {
        let known = match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q2_K => "Q2_K",
            Self::Q3_K => "Q3_K",
            Self::Q4_K => "Q4_K",
            Self::Q5_K => "Q5_K",
            Self::Q6_K => "Q6_K",
            Self::BF16 => "BF16",
            Self::Unsupported(id) => match id {
                4 => "Q4_2",
                5 => "Q4_3",
                9 => "Q8_1",
                15 => "Q8_K",
                16 => "IQ2_XXS",
                17 => "IQ2_XS",
                18 => "IQ3_XXS",
                19 => "IQ1_S",
                20 => "IQ4_NL",
                21 => "IQ3_S",
                22 => "IQ2_S",
                23 => "IQ4_XS",
                24 => "I8",
                25 => "I16",
                26 => "I32",
                27 => "I64",
                28 => "F64",
                29 => "IQ1_M",
                34 => "TQ1_0",
                35 => "TQ2_0",
                39 => "MXFP4",
                _ => return Cow::Owned(format!("type {id}")),
            },
        };
        Cow::Borrowed(known)
    }

    /// Whether [`dequantize`] can decode this type.
    pub fn is_supported(self) -> bool {
        !matches!(self, Self::Unsupported(_))
    }

    /// Elements per block (`None` when unsupported).
    pub fn block_size(self) -> Option<usize> {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => Some(1),
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => Some(32),
            Self::Q2_K | Self::Q3_K | Self::Q4_K | Self::Q5_K | Self::Q6_K => Some(QK_K),
            Self::Unsupported(_) => None,
        }
    }

    /// Bytes per block (`None` when unsupported), as ggml's `block_*` structs lay them out.
    pub fn type_size(self) -> Option<usize> {
        match self {
            Self::F32 => Some(4),
            Self::F16 | Self::BF16 => Some(2),
            Self::Q4_0 => Some(2 + 16),
            Self::Q4_1 => Some(2 + 2 + 16),
            Self::Q5_0 => Some(2 + 4 + 16),
            Self::Q5_1 => Some(2 + 2 + 4 + 16),
            Self::Q8_0 => Some(2 + 32),
            // scales[16], qs[64], d, dmin
            Self::Q2_K => Some(16 + 64 + 2 + 2),
            // hmask[32], qs[64], scales[12], d
            Self::Q3_K => Some(32 + 64 + 12 + 2),
            // d, dmin, scales[12], qs[128]
            Self::Q4_K => Some(2 + 2 + 12 + 128),
            // d, dmin, scales[12], qh[32], qs[128]
            Self::Q5_K => Some(2 + 2 + 12 + 32 + 128),
            // ql[128], qh[64], scales[16], d
            Self::Q6_K => Some(128 + 64 + 16 + 2),
            Self::Unsupported(_) => None,
        }
    }

    /// Bytes taken by `n_elements` values of this type.
    pub fn byte_len(self, n_elements: usize) -> Result<usize, DequantError> {
        let (Some(block), Some(size)) = (self.block_size(), self.type_size()) else {
            return Err(DequantError::Unsupported(self));
        };
        if !n_elements.is_multiple_of(block) {
            return Err(DequantError::PartialBlock { ty: self, n_elements, block_size: block });
        }
        // Overflow is impossible for a real buffer; saturate so the length check reports it.
        Ok((n_elements / block).saturating_mul(size))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Decodes `n_elements` values of type `ty` from `bytes` (exactly their size) into a new vector.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>, DequantError> {
    // Check before allocating, so a bad length never asks for a huge buffer.
    check_len(ty, bytes, n_elements)?;
    let mut out = vec![0.0f32; n_elements];
    dequantize_into(ty, bytes, &mut out)?;
    Ok(out)
}

/// Decodes `out.len()` values of type `ty` from `bytes` (exactly their size) into `out`.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), DequantError> {
    check_len(ty, bytes, out.len())?;
    let (Some(block), Some(size)) = (ty.block_size(), ty.type_size()) else {
        return Err(DequantError::Unsupported(ty));
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if out.len() < PARALLEL_MIN_ELEMENTS || threads < 2 {
        decode_blocks(ty, bytes, out);
        return Ok(());
    }
    let n_blocks = out.len() / block;
    let blocks_per_thread = n_blocks.div_ceil(threads);
    std::thread::scope(|scope| {
        for (src, dst) in bytes.chunks(blocks_per_thread * size).zip(out.chunks_mut(blocks_per_thread * block)) {
            scope.spawn(move || decode_blocks(ty, src, dst));
        }
    });
    Ok(())
}

fn check_len(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<(), DequantError> {
    let expected = ty.byte_len(n_elements)?;
    if bytes.len() != expected {
        return Err(DequantError::Length { ty, n_elements, expected, got: bytes.len() });
    }
    Ok(())
}

/// Decodes whole blocks; the caller has checked that the lengths agree.
fn decode_blocks(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (x, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (x, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *x = f16_at(b, 0);
            }
        }
        GgmlType::BF16 => {
            for (x, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                // bf16 is the top half of an f32.
                *x = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
        }
        GgmlType::Q4_0 => each_block(bytes, out, 18, 32, q4_0),
        GgmlType::Q4_1 => each_block(bytes, out, 20, 32, q4_1),
        GgmlType::Q5_0 => each_block(bytes, out, 22, 32, q5_0),
        GgmlType::Q5_1 => each_block(bytes, out, 24, 32, q5_1),
        GgmlType::Q8_0 => each_block(bytes, out, 34, 32, q8_0),
        GgmlType::Q2_K => each_block(bytes, out, 84, QK_K, q2_k),
        GgmlType::Q3_K => each_block(bytes, out, 110, QK_K, q3_k),
        GgmlType::Q4_K => each_block(bytes, out, 144, QK_K, q4_k),
        GgmlType::Q5_K => each_block(bytes, out, 176, QK_K, q5_k),
        GgmlType::Q6_K => each_block(bytes, out, 210, QK_K, q6_k),
        GgmlType::Unsupported(_) => unreachable!("checked by check_len"),
    }
}

fn each_block(bytes: &[u8], out: &mut [f32], size: usize, block: usize, f: fn(&[u8], &mut [f32])) {
    for (b, y) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(block)) {
        f(b, y);
    }
}

/// The little-endian `f16` at `b[at..at + 2]`, widened exactly.
#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `block_q4_0`: `d`, then `qs[16]`; element `j` is the low nibble of `qs[j]`, element `j + 16`
/// its high nibble.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = d * ((qs[j] & 0x0F) as i32 - 8) as f32;
        y[j + 16] = d * ((qs[j] >> 4) as i32 - 8) as f32;
    }
}

/// `block_q4_1`: `d`, `m`, then `qs[16]` laid out as in Q4_0; `x = d * q + m`.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = d * (qs[j] & 0x0F) as f32 + m;
        y[j + 16] = d * (qs[j] >> 4) as f32 + m;
    }
}

/// The fifth bits of a Q5 block: bit `j` of the little-endian `u32` belongs to element `j`.
#[inline(always)]
fn q5_value(qh: u32, qs: &[u8], j: usize) -> (u8, u8) {
    let lo = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
    let hi = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    (lo, hi)
}

/// `block_q5_0`: `d`, `qh` (u32), `qs[16]`; `x = d * (q - 16)`.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let (lo, hi) = q5_value(qh, qs, j);
        y[j] = d * (lo as i32 - 16) as f32;
        y[j + 16] = d * (hi as i32 - 16) as f32;
    }
}

/// `block_q5_1`: `d`, `m`, `qh` (u32), `qs[16]`; `x = d * q + m`.
fn q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let (lo, hi) = q5_value(qh, qs, j);
        y[j] = d * lo as f32 + m;
        y[j + 16] = d * hi as f32 + m;
    }
}

/// `block_q8_0`: `d`, `qs[32]` (i8); `x = d * q`.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (x, &q) in y.iter_mut().zip(&b[2..34]) {
        *x = d * (q as i8) as f32;
    }
}

/// `block_q2_K`: `scales[16]` (low nibble scale, high nibble min), `qs[64]`, `d`, `dmin`.
/// Element `128 h + 32 j + l` is bits `2j..2j+2` of `qs[32 h + l]`, in group `(128 h + 32 j + l) / 16`;
/// `x = (d * sc) * q - dmin * m`.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    for (g, ys) in y.chunks_exact_mut(16).enumerate() {
        let sc = scales[g];
        let dl = d * (sc & 0x0F) as f32;
        let ml = dmin * (sc >> 4) as f32;
        let (h, j, half) = (g / 8, (g / 2) % 4, g % 2);
        let q = &qs[32 * h + 16 * half..][..16];
        for (x, &qb) in ys.iter_mut().zip(q) {
            *x = dl * ((qb >> (2 * j)) & 3) as f32 - ml;
        }
    }
}

/// `block_q3_K`: `hmask[32]`, `qs[64]`, `scales[12]` (sixteen 6-bit values), `d`.
/// Element `e = 128 h + 32 j + l` has low bits `2j..2j+2` of `qs[32 h + l]` and high bit `e / 32` of
/// `hmask[l]`; a *clear* high bit subtracts 4. `x = (d * (sc - 32)) * q`.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let sb = &b[96..108];
    let d = f16_at(b, 108);
    for (g, ys) in y.chunks_exact_mut(16).enumerate() {
        // Scale g: low 4 bits from byte g % 8 (low nibble for g < 8, high nibble after),
        // high 2 bits from byte 8 + g % 4 at bit 2 * (g / 4).
        let low = (sb[g % 8] >> (4 * (g / 8))) & 0x0F;
        let high = (sb[8 + g % 4] >> (2 * (g / 4))) & 0x03;
        let sc = (low | (high << 4)) as i32 - 32;
        let dl = d * sc as f32;
        let (h, j, half) = (g / 8, (g / 2) % 4, g % 2);
        let bit = g / 2; // = 4 h + j, the hmask bit of this 32-element run
        let start = 16 * half;
        for (l, x) in (start..start + 16).zip(ys.iter_mut()) {
            let lo = ((qs[32 * h + l] >> (2 * j)) & 3) as i32;
            let sub = if hmask[l] & (1 << bit) != 0 { 0 } else { 4 };
            *x = dl * (lo - sub) as f32;
        }
    }
}

/// The eight 6-bit (scale, min) pairs of Q4_K/Q5_K (`get_scale_min_k4` in ggml).
#[inline(always)]
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// `block_q4_K`: `d`, `dmin`, `scales[12]`, `qs[128]`. Element `64 c + 32 s + l` is nibble `s` of
/// `qs[32 c + l]`, in group `2 c + s`; `x = (d * sc) * q - dmin * m`.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (g, ys) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(g, scales);
        let d1 = d * sc as f32;
        let m1 = dmin * m as f32;
        let q = &qs[32 * (g / 2)..][..32];
        let shift = 4 * (g % 2);
        for (x, &qb) in ys.iter_mut().zip(q) {
            *x = d1 * ((qb >> shift) & 0x0F) as f32 - m1;
        }
    }
}

/// `block_q5_K`: `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]`. As Q4_K, plus bit `g` of `qh[l]` as
/// the fifth bit of element `32 g + l`.
fn q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for (g, ys) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(g, scales);
        let d1 = d * sc as f32;
        let m1 = dmin * m as f32;
        let q = &qs[32 * (g / 2)..][..32];
        let shift = 4 * (g % 2);
        for ((x, &qb), &hb) in ys.iter_mut().zip(q).zip(qh) {
            let v = ((qb >> shift) & 0x0F) | (((hb >> g) & 1) << 4);
            *x = d1 * v as f32 - m1;
        }
    }
}

/// `block_q6_K`: `ql[128]`, `qh[64]`, `scales[16]` (i8), `d`. Element `128 h + 32 c + l` takes
/// nibble `c / 2` of `ql[64 h + 32 (c % 2) + l]` and bits `2c..2c+2` of `qh[32 h + l]`;
/// `x = (d * sc) * (q - 32)`.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    for (r, ys) in y.chunks_exact_mut(32).enumerate() {
        let (h, c) = (r / 4, r % 4);
        let lo = &ql[64 * h + 32 * (c % 2)..][..32];
        let hi = &qh[32 * h..][..32];
        let nib = 4 * (c / 2);
        for (l, x) in ys.iter_mut().enumerate() {
            let q = ((lo[l] >> nib) & 0x0F) | (((hi[l] >> (2 * c)) & 3) << 4);
            let sc = scales[2 * r + l / 16] as i8;
            *x = (d * sc as f32) * (q as i32 - 32) as f32;
        }
    }
}
