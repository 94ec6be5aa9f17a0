//! The GGUF reader and `GgufWeights` on small files written by the test itself.

use std::path::PathBuf;

use greater_models::LoadError;
use greater_models::config::Family;
use greater_models::loading::names::FixUp;
use greater_models::loading::{GgmlType, GgufFile, GgufWeights, MetaValue, WeightSource};

/// A minimal GGUF writer: metadata in insertion order, tensors packed at `alignment`.
struct Writer {
    version: u32,
    alignment: usize,
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

impl Writer {
    fn new(version: u32) -> Self {
        Self { version, alignment: 32, kv: Vec::new(), n_kv: 0, tensors: Vec::new() }
    }

    fn key(&mut self, key: &str, ty: u32) {
        put_str(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.n_kv += 1;
    }

    fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.key(key, 4);
        self.kv.extend(v.to_le_bytes());
        self
    }

    fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key, 8);
        put_str(&mut self.kv, v);
        self
    }

    /// A raw value of type `ty` whose encoding the caller provides.
    fn raw(&mut self, key: &str, ty: u32, bytes: &[u8]) -> &mut Self {
        self.key(key, ty);
        self.kv.extend(bytes);
        self
    }

    fn f32_tensor(&mut self, name: &str, ggml_dims: &[u64], values: &[f32]) -> &mut Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors.push((name.into(), ggml_dims.to_vec(), 0, data));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let mut offset = 0usize;
        let mut offsets = Vec::new();
        for (name, dims, ty, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len()).next_multiple_of(self.alignment);
        }
        out.resize(out.len().next_multiple_of(self.alignment), 0);
        let start = out.len();
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            out.resize(start + off, 0);
            out.extend(data);
        }
        out
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open_err(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "bad.gguf", bytes);
    let err = GgufFile::open(&path).expect_err("corrupt file must not open").to_string();
    assert!(err.contains("bad.gguf"), "error does not name the file: {err}");
    err
}

#[test]
fn every_metadata_type_round_trips_in_v2_and_v3() {
    for version in [2, 3] {
        let mut w = Writer::new(version);
        w.str("general.architecture", "llama")
            .raw("u8", 0, &[200])
            .raw("i8", 1, &[0xFE])
            .raw("u16", 2, &60_000u16.to_le_bytes())
            .raw("i16", 3, &(-300i16).to_le_bytes())
            .u32("u32", 4_000_000_000)
            .raw("i32", 5, &(-7i32).to_le_bytes())
            .raw("f32", 6, &0.5f32.to_le_bytes())
            .raw("bool", 7, &[1])
            .raw("u64", 10, &(1u64 << 40).to_le_bytes())
            .raw("i64", 11, &(-5i64).to_le_bytes())
            .raw("f64", 12, &0.1f64.to_le_bytes());
        let mut arr = 8u32.to_le_bytes().to_vec(); // element type string
        arr.extend(2u64.to_le_bytes());
        put_str(&mut arr, "<s>");
        put_str(&mut arr, "▁the");
        w.raw("tokens", 9, &arr);
        let mut ints = 5u32.to_le_bytes().to_vec(); // element type i32
        ints.extend(3u64.to_le_bytes());
        for v in [1i32, -2, 3] {
            ints.extend(v.to_le_bytes());
        }
        w.raw("types", 9, &ints);
        w.f32_tensor("v", &[3], &[1.0, 2.0, 3.0]);

        let dir = tempfile::tempdir().unwrap();
        let f = GgufFile::open(write(&dir, "m.gguf", &w.bytes())).unwrap();
        let m = f.metadata();
        assert_eq!(f.version(), version);
        assert_eq!(f.architecture().unwrap(), "llama");
        assert_eq!(m.get("u8"), Some(&MetaValue::U8(200)));
        assert_eq!(m.get("i8"), Some(&MetaValue::I8(-2)));
        assert_eq!(m.get_usize("u16"), Some(60_000));
        assert_eq!(m.get("i16"), Some(&MetaValue::I16(-300)));
        assert_eq!(m.get_usize("u32"), Some(4_000_000_000));
        assert_eq!(m.get("i32"), Some(&MetaValue::I32(-7)));
        assert_eq!(m.get_f32("f32"), Some(0.5));
        assert_eq!(m.get_bool("bool"), Some(true));
        assert_eq!(m.get_usize("u64"), Some(1 << 40));
        assert_eq!(m.get("i64"), Some(&MetaValue::I64(-5)));
        assert_eq!(m.get("f64"), Some(&MetaValue::F64(0.1)));
        assert_eq!(m.get_str_array("tokens"), Some(vec!["<s>", "▁the"]));
        assert_eq!(m.get_i32_array("types"), Some(vec![1, -2, 3]));
        assert_eq!(m.keys().collect::<Vec<_>>()[..3], ["general.architecture", "u8", "i8"]);
        assert_eq!(f.tensor_f32("v").unwrap().data, [1.0, 2.0, 3.0]);
    }
}

#[test]
fn tensors_come_out_in_pytorch_order_at_any_alignment() {
    let mut w = Writer::new(3);
    w.alignment = 64;
    w.u32("general.alignment", 64).str("general.architecture", "llama");
    // ggml ne = [3, 2]: 2 rows of 3; PyTorch shape [2, 3].
    w.f32_tensor("a", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    w.f32_tensor("b", &[1], &[9.0]);
    let dir = tempfile::tempdir().unwrap();
    let f = GgufFile::open(write(&dir, "m.gguf", &w.bytes())).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    let a = f.tensor_info("a").unwrap();
    assert_eq!((a.dims.clone(), a.shape(), a.ty), (vec![3, 2], vec![2, 3], GgmlType::F32));
    assert_eq!(f.tensor_info("b").unwrap().offset, 64);
    let t = f.tensor_f32("a").unwrap();
    assert_eq!((t.shape, t.data), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    assert_eq!(f.raw_bytes("b").unwrap(), 9.0f32.to_le_bytes());
    let missing = f.tensor_f32("zzz").unwrap_err().to_string();
    assert!(missing.contains("zzz") && missing.contains("m.gguf"), "{missing}");
}

#[test]
fn unsupported_tensor_type_opens_but_fails_by_name() {
    let mut w = Writer::new(3);
    w.str("general.architecture", "llama");
    w.tensors.push(("odd".into(), vec![256], 16, vec![0; 66])); // IQ2_XXS
    w.f32_tensor("ok", &[1], &[1.0]);
    let dir = tempfile::tempdir().unwrap();
    let f = GgufFile::open(write(&dir, "m.gguf", &w.bytes())).unwrap();
    assert_eq!(f.tensor_f32("ok").unwrap().data, [1.0]);
    let err = f.tensor_f32("odd").unwrap_err();
    assert!(matches!(err, LoadError::UnsupportedTensorType { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("odd") && msg.contains("IQ2_XXS") && msg.contains("m.gguf"), "{msg}");
}

#[test]
fn corrupt_headers_are_errors_naming_the_file() {
    let mut w = Writer::new(3);
    w.str("general.architecture", "llama");
    w.f32_tensor("t", &[4], &[1.0, 2.0, 3.0, 4.0]);
    let good = w.bytes();

    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(open_err(&bad).contains("magic"));
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(open_err(&bad).contains("version 1"));
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(open_err(&bad).contains("big-endian"));
    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open_err(&bad).contains("tensor count"));
    let mut bad = good.clone();
    bad[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(open_err(&bad).contains("metadata count"));
    // The first key's length.
    let mut bad = good.clone();
    bad[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(open_err(&bad).contains("length"));
    // Data cut short: the tensor runs past the end.
    let msg = open_err(&good[..good.len() - 1]);
    assert!(msg.contains("`t`") && msg.contains("past the end"), "{msg}");
    // Every shorter prefix fails too, without panicking.
    for n in 0..good.len() - 1 {
        open_err(&good[..n]);
    }
}

#[test]
fn impossible_values_are_errors() {
    let build = |f: &dyn Fn(&mut Writer)| {
        let mut w = Writer::new(3);
        f(&mut w);
        w.bytes()
    };
    let mut huge = 8u32.to_le_bytes().to_vec();
    huge.extend(u64::MAX.to_le_bytes());
    assert!(
        open_err(&build(&|w| {
            w.raw("a", 9, &huge);
        }))
        .contains("array length")
    );
    assert!(
        open_err(&build(&|w| {
            w.raw("a", 13, &[0; 8]);
        }))
        .contains("unknown metadata value type 13")
    );
    assert!(
        open_err(&build(&|w| {
            w.raw("a", 7, &[2]);
        }))
        .contains("bool")
    );
    assert!(
        open_err(&build(&|w| {
            w.u32("general.alignment", 48);
        }))
        .contains("general.alignment")
    );
    assert!(
        open_err(&build(&|w| {
            w.tensors.push(("five".into(), vec![1; 5], 0, vec![0; 4]));
        }))
        .contains("five")
    );
    assert!(
        open_err(&build(&|w| {
            w.tensors.push(("huge".into(), vec![u64::MAX / 2, 4], 0, vec![0; 4]));
        }))
        .contains("huge")
    );
    assert!(
        open_err(&build(&|w| {
            w.f32_tensor("dup", &[1], &[1.0]).f32_tensor("dup", &[1], &[2.0]);
        }))
        .contains("duplicate tensor")
    );
    // A Q8_0 row of 16 elements is half a block.
    assert!(
        open_err(&build(&|w| {
            w.tensors.push(("half".into(), vec![16], 8, vec![0; 34]));
        }))
        .contains("block size")
    );
}

/// A two-layer model of `arch` with F32 tensors whose values are `base + index`.
fn tiny(arch: &str, names: &[(&str, &[u64])]) -> Vec<u8> {
    let mut w = Writer::new(3);
    w.str("general.architecture", arch);
    w.u32(&format!("{arch}.block_count"), 2);
    w.u32(&format!("{arch}.attention.head_count"), 2);
    w.u32(&format!("{arch}.attention.head_count_kv"), 1);
    for (k, (name, dims)) in names.iter().enumerate() {
        let n: u64 = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (100 * k) as f32 + i as f32).collect();
        w.f32_tensor(name, dims, &values);
    }
    w.bytes()
}

#[test]
fn llama_q_and_k_rows_are_unpermuted_per_head() {
    let bytes = tiny(
        "llama",
        &[
            ("token_embd.weight", &[2, 5]),
            ("blk.0.attn_q.weight", &[1, 8]), // 2 heads of head_dim 4, one input column
            ("blk.0.attn_k.weight", &[1, 4]), // 1 KV head of head_dim 4
            ("blk.0.attn_v.weight", &[1, 4]),
            ("blk.1.attn_norm.weight", &[2]),
            ("rope_freqs.weight", &[2]),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let w = GgufWeights::from_metadata(GgufFile::open(write(&dir, "l.gguf", &bytes)).unwrap()).unwrap();
    assert_eq!(
        w.names(),
        [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.v_proj.weight",
            "model.layers.1.input_layernorm.weight",
        ]
    );
    assert!(!w.contains("lm_head.weight"));
    assert_eq!(w.unmapped(), ["rope_freqs.weight"]);
    assert_eq!(w.shape("model.embed_tokens.weight").unwrap(), [5, 2]);
    // q rows in the file are 100..108. Per head the GGUF order is [x0, y0, x1, y1]; HF wants
    // [x0, x1, y0, y1], i.e. file rows 0, 2, 1, 3 then 4, 6, 5, 7.
    let q = w.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.shape, [8, 1]);
    assert_eq!(q.data, [100.0, 102.0, 101.0, 103.0, 104.0, 106.0, 105.0, 107.0]);
    assert_eq!(w.fix_up("model.layers.0.self_attn.k_proj.weight"), Some(FixUp::UnpermuteRope { n_head: 1 }));
    let k = w.tensor("model.layers.0.self_attn.k_proj.weight").unwrap();
    assert_eq!(k.data, [200.0, 202.0, 201.0, 203.0]);
    // v is not permuted.
    assert_eq!(w.tensor("model.layers.0.self_attn.v_proj.weight").unwrap().data, [300.0, 301.0, 302.0, 303.0]);
    let err = w.tensor("lm_head.weight").unwrap_err().to_string();
    assert!(err.contains("lm_head.weight") && err.contains("l.gguf"), "{err}");
}

#[test]
fn gemma_norms_lose_their_offset_and_qwen2_keeps_rows_and_biases() {
    let bytes = tiny(
        "gemma3",
        &[
            ("blk.0.ffn_norm.weight", &[2]),
            ("blk.0.attn_q_norm.weight", &[2]),
            ("blk.1.post_ffw_norm.weight", &[2]),
            ("blk.1.attn_q.weight", &[1, 8]),
            ("output_norm.weight", &[2]),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let w = GgufWeights::new(GgufFile::open(write(&dir, "g.gguf", &bytes)).unwrap(), Family::Gemma3, 2).unwrap();
    // Stored 0.0 and 1.0 (tensor 0) become -1 and 0; tensor 4 stores 400, 401.
    assert_eq!(w.tensor("model.layers.0.pre_feedforward_layernorm.weight").unwrap().data, [-1.0, 0.0]);
    assert_eq!(w.tensor("model.layers.0.self_attn.q_norm.weight").unwrap().data, [99.0, 100.0]);
    assert_eq!(w.tensor("model.layers.1.post_feedforward_layernorm.weight").unwrap().data, [199.0, 200.0]);
    assert_eq!(w.tensor("model.norm.weight").unwrap().data, [399.0, 400.0]);
    // Gemma q rows are stored in Hugging Face order already.
    assert_eq!(w.tensor("model.layers.1.self_attn.q_proj.weight").unwrap().data[..3], [300.0, 301.0, 302.0]);

    let bytes =
        tiny("qwen2", &[("blk.0.attn_q.weight", &[1, 4]), ("blk.0.attn_q.bias", &[4]), ("output.weight", &[2, 3])]);
    let w = GgufWeights::from_metadata(GgufFile::open(write(&dir, "q.gguf", &bytes)).unwrap()).unwrap();
    assert_eq!(w.family(), Family::Qwen2);
    assert_eq!(w.tensor("model.layers.0.self_attn.q_proj.weight").unwrap().data, [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(w.tensor("model.layers.0.self_attn.q_proj.bias").unwrap().data, [100.0, 101.0, 102.0, 103.0]);
    assert_eq!(w.shape("lm_head.weight").unwrap(), [3, 2]);

    let bytes = tiny("phi3", &[]);
    let err = GgufWeights::from_metadata(GgufFile::open(write(&dir, "p.gguf", &bytes)).unwrap()).unwrap_err();
    assert!(matches!(err, LoadError::UnsupportedArchitecture { .. }), "{err:?}");
}
