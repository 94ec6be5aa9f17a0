//! Dequantisation of one hand-built block per ggml type.
//!
//! Every expectation is computed here, from ggml's reference `dequantize_row_*` written out in
//! its own loop structure, plus spot values worked out by hand in comments.

use greater_models::loading::dequant::{DequantError, GgmlType, dequantize};
use half::f16;

fn h(x: f32) -> [u8; 2] {
    let v = f16::from_f32(x);
    assert_eq!(v.to_f32(), x, "{x} is not exact in f16");
    v.to_le_bytes()
}

fn decode(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    dequantize(ty, bytes, n).unwrap_or_else(|e| panic!("{ty}: {e}"))
}

fn assert_bits_eq(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "element {i}: got {g}, want {w}");
    }
}

#[test]
fn f32_f16_bf16() {
    let mut b = Vec::new();
    b.extend(1.5f32.to_le_bytes());
    b.extend((-2.0f32).to_le_bytes());
    assert_eq!(decode(GgmlType::F32, &b, 2), [1.5, -2.0]);

    // f16 0x3555 = 2^-2 * (1 + 341/1024) = 0.333251953125.
    let b = [0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35];
    assert_eq!(decode(GgmlType::F16, &b, 3), [1.0, -2.0, 1.0 / 4.0 * (1.0 + 341.0 / 1024.0)]);

    // bf16 is the top 16 bits of an f32: 0x3FC0 → 0x3FC00000 = 1.5, 0xC040 → -3.0.
    let b = [0xC0, 0x3F, 0x40, 0xC0];
    assert_eq!(decode(GgmlType::BF16, &b, 2), [1.5, -3.0]);
}

/// qs[j] = j | (15 - j) << 4: element j is j, element j + 16 is 15 - j.
fn nibbles() -> Vec<u8> {
    (0..16u8).map(|j| j | ((15 - j) << 4)).collect()
}

#[test]
fn q4_0() {
    let mut b = h(0.5).to_vec();
    b.extend(nibbles());
    let mut want = vec![0.0f32; 32];
    for j in 0..16 {
        want[j] = 0.5 * (j as f32 - 8.0);
        want[j + 16] = 0.5 * ((15 - j) as f32 - 8.0);
    }
    // Spot: element 0 → 0.5 * (0 - 8) = -4; element 16 → 0.5 * (15 - 8) = 3.5.
    assert_eq!((want[0], want[16]), (-4.0, 3.5));
    assert_bits_eq(&decode(GgmlType::Q4_0, &b, 32), &want);
}

#[test]
fn q4_1() {
    let mut b = h(0.5).to_vec();
    b.extend(h(-1.0));
    b.extend(nibbles());
    let mut want = vec![0.0f32; 32];
    for j in 0..16 {
        want[j] = 0.5 * j as f32 + -1.0;
        want[j + 16] = 0.5 * (15 - j) as f32 + -1.0;
    }
    // Spot: element 3 → 0.5 * 3 - 1 = 0.5; element 16 → 0.5 * 15 - 1 = 6.5.
    assert_eq!((want[3], want[16]), (0.5, 6.5));
    assert_bits_eq(&decode(GgmlType::Q4_1, &b, 32), &want);
}

/// Fifth bits for Q5: bit j set for even j < 16 (0x5555) and odd j >= 16 (0xAAAA << 16).
const QH5: u32 = 0xAAAA_5555;

fn q5_expected(j: usize) -> u32 {
    let low = if j < 16 { j as u32 } else { 15 - (j as u32 - 16) };
    low | (((QH5 >> j) & 1) << 4)
}

#[test]
fn q5_0() {
    let mut b = h(0.25).to_vec();
    b.extend(QH5.to_le_bytes());
    b.extend(nibbles());
    let want: Vec<f32> = (0..32).map(|j| 0.25 * (q5_expected(j) as f32 - 16.0)).collect();
    // Spot: element 0 → 0 | 16 → 0.25 * 0 = 0; element 1 → 1 → 0.25 * -15 = -3.75;
    // element 16 → 15 → -0.25; element 17 → 14 | 16 = 30 → 3.5.
    assert_eq!(&want[..2], [0.0, -3.75]);
    assert_eq!(&want[16..18], [-0.25, 3.5]);
    assert_bits_eq(&decode(GgmlType::Q5_0, &b, 32), &want);
}

#[test]
fn q5_1() {
    let mut b = h(0.5).to_vec();
    b.extend(h(-8.0));
    b.extend(QH5.to_le_bytes());
    b.extend(nibbles());
    let want: Vec<f32> = (0..32).map(|j| 0.5 * q5_expected(j) as f32 + -8.0).collect();
    // Spot: element 0 → 0.5 * 16 - 8 = 0; element 17 → 0.5 * 30 - 8 = 7.
    assert_eq!((want[0], want[17]), (0.0, 7.0));
    assert_bits_eq(&decode(GgmlType::Q5_1, &b, 32), &want);
}

#[test]
fn q8_0() {
    let mut b = h(0.125).to_vec();
    // q_j = 8 j - 128, so x_j = 0.125 * q_j = j - 16.
    b.extend((0..32).map(|j| (8 * j - 128) as i8 as u8));
    let want: Vec<f32> = (0..32).map(|j| j as f32 - 16.0).collect();
    assert_bits_eq(&decode(GgmlType::Q8_0, &b, 32), &want);
}

fn qs29(n: usize) -> Vec<u8> {
    (0..n).map(|k| (k as u8).wrapping_mul(29)).collect()
}

#[test]
fn q2_k() {
    let scales: Vec<u8> = (0..16u8).map(|g| g | ((15 - g) << 4)).collect();
    let qs = qs29(64);
    let mut b = scales.clone();
    b.extend(&qs);
    b.extend(h(0.5));
    b.extend(h(0.25));
    // ggml's loop: two 128-element halves, four 2-bit shifts, two runs of 16.
    let mut want = Vec::new();
    let mut is = 0;
    for n in 0..2 {
        for j in 0..4 {
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = 0.5 * (sc & 0xF) as f32;
                let ml = 0.25 * (sc >> 4) as f32;
                for l in 0..16 {
                    want.push(dl * ((qs[32 * n + 16 * half + l] >> (2 * j)) & 3) as f32 - ml);
                }
            }
        }
    }
    // Spots: e0: scale byte 0x F0 → dl 0, ml 3.75 → -3.75. e17: qs[17] = 237, q = 1, byte 0xE1 →
    // 0.5 - 3.5 = -3. e200 (half 1, shift 4, l 8): qs[40] = 136 → q 0, byte 12 → -0.75.
    // e99 (shift 6, l 3): qs[3] = 87 → q 1, byte 6 (0x96) → 3 - 2.25 = 0.75.
    assert_eq!([want[0], want[17], want[200], want[99]], [-3.75, -3.0, -0.75, 0.75]);
    assert_bits_eq(&decode(GgmlType::Q2_K, &b, 256), &want);
}

#[test]
fn q3_k() {
    let hmask: Vec<u8> = (0..32u8).map(|l| l.wrapping_mul(37)).collect();
    let qs = qs29(64);
    let mut sb: Vec<u8> = (0..8u8).map(|k| k | ((7 - k) << 4)).collect();
    sb.extend([0x1B, 0x00, 0x00, 0xFF]);
    let mut b = hmask.clone();
    b.extend(&qs);
    b.extend(&sb);
    b.extend(h(0.5));
    // ggml unpacks the sixteen 6-bit scales with 32-bit masks.
    let word = |i: usize| u32::from_le_bytes([sb[4 * i], sb[4 * i + 1], sb[4 * i + 2], sb[4 * i + 3]]);
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    let (k1, k2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
    let aux = [
        (a0 & k2) | ((tmp & k1) << 4),
        (a1 & k2) | (((tmp >> 2) & k1) << 4),
        ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4),
        ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4),
    ];
    let scales: Vec<i8> = aux.iter().flat_map(|w| w.to_le_bytes()).map(|b| b as i8).collect();
    let mut want = Vec::new();
    let (mut is, mut m) = (0, 1u8);
    for n in 0..2 {
        for j in 0..4 {
            for half in 0..2 {
                let dl = 0.5 * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 16 * half..16 * half + 16 {
                    let q = ((qs[32 * n + l] >> (2 * j)) & 3) as i32;
                    let sub = if hmask[l] & m != 0 { 0 } else { 4 };
                    want.push(dl * (q - sub) as f32);
                }
            }
            m <<= 1;
        }
    }
    // Spots (scale g = low nibble | high bits << 4, minus 32):
    // e0: scale 0 = 0 | 3 << 4 = 48 → 16, dl 8; qs[0] = 0, hmask[0] bit 0 clear → q -4 → -32.
    // e17: scale 1 = 1 → -31, dl -15.5; qs[17] = 237 → 1, hmask[17] = 117 bit 0 set → -15.5.
    // e200: scale 12 = 3 → -29, dl -14.5; qs[40] = 136 >> 4 → 0, hmask[8] = 40 bit 6 clear → 58.
    // e99: scale 6 = 6 → -26, dl -13; qs[3] = 87 >> 6 → 1, hmask[3] = 111 bit 3 set → -13.
    assert_eq!([want[0], want[17], want[200], want[99]], [-32.0, -15.5, 58.0, -13.0]);
    assert_bits_eq(&decode(GgmlType::Q3_K, &b, 256), &want);
}

/// Q4_K/Q5_K scales: groups 0..3 scale = s[g] & 63, min = s[g + 4] & 63; groups 4..7 take their
/// low four bits from s[g + 4] and their top two from the top bits of s[g - 4] / s[g].
fn k4_scales() -> Vec<u8> {
    // s[0] = 1 | 0x40: group 0 scale 1, and group 4 scale gains (0x40 >> 6) << 4 = 16.
    vec![0x41, 2, 3, 4, 5, 6, 7, 8, 0x21, 0x43, 0x65, 0x87]
}

fn k4_expected_scale_min() -> ([u8; 8], [u8; 8]) {
    // Worked out by hand from k4_scales: groups 4..7 scale = s[8..12] & 15 (+16 for group 4),
    // min = s[8..12] >> 4.
    ([1, 2, 3, 4, 17, 3, 5, 7], [5, 6, 7, 8, 2, 4, 6, 8])
}

fn k4_qs() -> Vec<u8> {
    (0..128usize).map(|k| (k % 16) as u8 | ((15 - (k % 16) as u8) << 4)).collect()
}

#[test]
fn q4_k() {
    let qs = k4_qs();
    let mut b = h(1.0).to_vec();
    b.extend(h(0.5));
    b.extend(k4_scales());
    b.extend(&qs);
    let (sc, mn) = k4_expected_scale_min();
    let mut want = Vec::new();
    for c in 0..4 {
        for s in 0..2 {
            let g = 2 * c + s;
            let (d1, m1) = (1.0 * sc[g] as f32, 0.5 * mn[g] as f32);
            for l in 0..32 {
                want.push(d1 * ((qs[32 * c + l] >> (4 * s)) & 0xF) as f32 - m1);
            }
        }
    }
    // Spots: e0: 1 * 0 - 2.5 = -2.5. e33 (group 1, high nibble of qs[1] = 14): 2 * 14 - 3 = 25.
    // e133 (group 4, low nibble of qs[69] = 5): 17 * 5 - 1 = 84. e255: 7 * 0 - 4 = -4.
    assert_eq!([want[0], want[33], want[133], want[255]], [-2.5, 25.0, 84.0, -4.0]);
    assert_bits_eq(&decode(GgmlType::Q4_K, &b, 256), &want);
}

#[test]
fn q5_k() {
    let qs = k4_qs();
    let qh: Vec<u8> = (0..32u8).collect();
    let mut b = h(1.0).to_vec();
    b.extend(h(0.5));
    b.extend(k4_scales());
    b.extend(&qh);
    b.extend(&qs);
    let (sc, mn) = k4_expected_scale_min();
    let mut want = Vec::new();
    let (mut u1, mut u2) = (1u8, 2u8);
    for c in 0..4 {
        let (d1, m1) = (1.0 * sc[2 * c] as f32, 0.5 * mn[2 * c] as f32);
        let (d2, m2) = (1.0 * sc[2 * c + 1] as f32, 0.5 * mn[2 * c + 1] as f32);
        for l in 0..32 {
            let hi = if qh[l] & u1 != 0 { 16 } else { 0 };
            want.push(d1 * ((qs[32 * c + l] & 0xF) + hi) as f32 - m1);
        }
        for l in 0..32 {
            let hi = if qh[l] & u2 != 0 { 16 } else { 0 };
            want.push(d2 * ((qs[32 * c + l] >> 4) + hi) as f32 - m2);
        }
        u1 <<= 2;
        u2 <<= 2;
    }
    // Spots: e33: qh[1] bit 1 clear → 25 as in Q4_K. e35: qh[3] bit 1 set, nibble 12 → 28 →
    // 2 * 28 - 3 = 53. e133: qh[5] bit 4 clear → 84. e144: qh[16] bit 4 set, nibble 0 → 16 →
    // 17 * 16 - 1 = 271.
    assert_eq!([want[33], want[35], want[133], want[144]], [25.0, 53.0, 84.0, 271.0]);
    assert_bits_eq(&decode(GgmlType::Q5_K, &b, 256), &want);
}

#[test]
fn q6_k() {
    let ql: Vec<u8> = (0..128u8).map(|k| k.wrapping_mul(7)).collect();
    let qh: Vec<u8> = (0..64u8).map(|k| k.wrapping_mul(13)).collect();
    let scales: Vec<i8> = (0..16i8).map(|g| g - 8).collect();
    let mut b = ql.clone();
    b.extend(&qh);
    b.extend(scales.iter().map(|&s| s as u8));
    b.extend(h(0.5));
    let mut want = vec![0.0f32; 256];
    for n in 0..2 {
        let (ql, qh, sc, y) = (&ql[64 * n..], &qh[32 * n..], &scales[8 * n..], 128 * n);
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            want[y + l] = 0.5 * sc[is] as f32 * q1 as f32;
            want[y + l + 32] = 0.5 * sc[is + 2] as f32 * q2 as f32;
            want[y + l + 64] = 0.5 * sc[is + 4] as f32 * q3 as f32;
            want[y + l + 96] = 0.5 * sc[is + 6] as f32 * q4 as f32;
        }
    }
    // Spots: e0: q = 0 - 32, scale -8 → (0.5 * -8) * -32 = 128. e40: ql[40] = 24 → 8,
    // qh[8] = 104 → bits 2..4 = 2 → q = 40 - 32 = 8, scale -6 → -24. e200: ql[72] = 248 → high 15,
    // qh[40] = 8 → bits 4..6 = 0 → q = -17, scale 4 → -34.
    assert_eq!([want[0], want[40], want[200]], [128.0, -24.0, -34.0]);
    assert_bits_eq(&decode(GgmlType::Q6_K, &b, 256), &want);
}

#[test]
fn many_blocks_decode_like_one_block_each() {
    // Enough Q8_0 blocks to take the multi-threaded path; block k has d = 2^-(k % 8) and q_j = j - 16 + k % 7.
    let n_blocks = (1 << 20) / 32 + 3;
    let mut bytes = Vec::with_capacity(n_blocks * 34);
    for k in 0..n_blocks {
        bytes.extend(h(1.0 / (1 << (k % 8)) as f32));
        bytes.extend((0..32).map(|j| (j - 16 + (k % 7) as i32) as i8 as u8));
    }
    let got = decode(GgmlType::Q8_0, &bytes, n_blocks * 32);
    for k in [0, 1, 7, n_blocks / 2, n_blocks - 1] {
        let d = 1.0 / (1 << (k % 8)) as f32;
        for j in 0..32 {
            assert_eq!(got[32 * k + j], d * (j as i32 - 16 + (k % 7) as i32) as f32, "block {k}, element {j}");
        }
    }
}

#[test]
fn bad_lengths_and_types_are_errors() {
    assert!(matches!(dequantize(GgmlType::Q8_0, &[0; 33], 32), Err(DequantError::Length { .. })));
    assert!(matches!(dequantize(GgmlType::Q4_K, &[0; 144], 128), Err(DequantError::PartialBlock { .. })));
    let iq = GgmlType::from_id(16);
    assert_eq!(iq.name(), "IQ2_XXS");
    assert!(matches!(dequantize(iq, &[0; 66], 256), Err(DequantError::Unsupported(_))));
    assert_eq!(GgmlType::from_id(999).to_string(), "type 999");
    for id in [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 30] {
        let ty = GgmlType::from_id(id);
        assert!(ty.is_supported(), "{id}");
        assert_eq!(ty.id(), id);
    }
    assert_eq!(GgmlType::Q6_K.type_size(), Some(210));
    assert_eq!(GgmlType::Q5_0.byte_len(64), Ok(44));
}
