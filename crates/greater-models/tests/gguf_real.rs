//! The GGUF reader on the three cached real models, against the golden fingerprints.
//!
//! Models come from `$GREATER_CACHE` (else `<cache dir>/greater`), `models/<name>.gguf`; golden
//! data from `$GREATER_GOLDEN` (else `<repo>/../shared/golden`). When either is absent the test
//! says so and passes, unless `GREATER_REQUIRE_MODELS=1`.

use std::path::PathBuf;

use greater_models::loading::{GgufFile, GgufWeights, MetaValue, WeightSource};
use serde_json::Value;

const MODELS: [&str; 3] = ["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"];

fn skip<T>(what: &str) -> Option<T> {
    greater_testkit::unavailable(&format!("{what} is missing"));
    None
}

fn model(name: &str) -> Option<PathBuf> {
    greater_testkit::existing(greater_testkit::cached_model(name))
}

fn golden(name: &str, file: &str) -> Option<Value> {
    let path = greater_testkit::golden_root().join(name).join(file);
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap()),
        Err(_) => skip(&path.display().to_string()),
    }
}

/// Whether `a` and `b` are equal or neighbouring `f32`s.
fn within_one_ulp(a: f32, b: f32) -> bool {
    a == b || (a.is_sign_positive() == b.is_sign_positive() && a.to_bits().abs_diff(b.to_bits()) <= 1)
}

fn check_fingerprints(name: &str) {
    let (Some(path), Some(fp)) = (model(name), golden(name, "weights_fingerprint.json")) else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let tensors = fp["tensors"].as_array().unwrap();
    assert_eq!(file.tensors().len(), tensors.len(), "{name}: tensor count");
    let (mut exact, mut one_ulp) = (0usize, 0usize);
    for t in tensors {
        let tname = t["name"].as_str().unwrap();
        let info = file.tensor_info(tname).unwrap_or_else(|| panic!("{name}: no tensor {tname}"));
        assert_eq!(info.ty.name(), t["type"].as_str().unwrap(), "{tname}: type");
        let dims: Vec<usize> =
            t["gguf_shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(info.dims, dims, "{tname}: ggml dims");
        let n = t["n"].as_u64().unwrap() as usize;
        let data = file.tensor_f32(tname).unwrap().data;
        assert_eq!(data.len(), n, "{tname}: element count");

        // Sums in f64. The golden sums come from numpy's pairwise summation, ours are sequential;
        // both are f64, so they agree far below 1e-6 of the absolute sum.
        let (mut sum, mut abs_sum, mut sq_sum) = (0f64, 0f64, 0f64);
        for &x in &data {
            let x = f64::from(x);
            sum += x;
            abs_sum += x.abs();
            sq_sum += x * x;
        }
        let want_abs = t["abs_sum"].as_f64().unwrap();
        let scale = want_abs.max(f64::MIN_POSITIVE);
        for (what, got, want) in [
            ("sum", sum, t["sum"].as_f64().unwrap()),
            ("abs_sum", abs_sum, want_abs),
            ("sq_sum", sq_sum, t["sq_sum"].as_f64().unwrap()),
        ] {
            let tol = 1e-6 * if what == "sq_sum" { want.abs().max(f64::MIN_POSITIVE) } else { scale };
            assert!((got - want).abs() <= tol, "{name} {tname}: {what} {got} vs golden {want}");
        }

        let probes = t["probe_index"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize);
        let probe_values = t["probe_value"].as_array().unwrap();
        let first8 = t["first8"].as_array().unwrap();
        let checks = (0..first8.len()).zip(first8).chain(probes.zip(probe_values));
        for (i, want) in checks {
            let want = want.as_f64().unwrap() as f32;
            let got = data[i];
            assert!(within_one_ulp(got, want), "{name} {tname}[{i}]: {got:e} vs golden {want:e}");
            if got.to_bits() == want.to_bits() { exact += 1 } else { one_ulp += 1 }
        }
    }
    eprintln!("{name}: {} tensors match; {exact} probe values exact, {one_ulp} within 1 ulp", tensors.len());
}

#[test]
fn smollm2_fingerprints() {
    check_fingerprints(MODELS[0]);
}

#[test]
fn gemma3_fingerprints() {
    check_fingerprints(MODELS[1]);
}

#[test]
fn qwen2_fingerprints() {
    check_fingerprints(MODELS[2]);
}

/// Compares one metadata value with its JSON rendering by the Python `gguf` package.
fn same_value(ours: &MetaValue, json: &Value) -> bool {
    match (ours, json) {
        (MetaValue::Bool(b), Value::Bool(j)) => b == j,
        (MetaValue::String(s), Value::String(j)) => s == j,
        (MetaValue::Array(items), Value::Array(js)) => {
            items.len() == js.len() && items.iter().zip(js).all(|(a, b)| same_value(a, b))
        }
        (MetaValue::F32(_) | MetaValue::F64(_), Value::Number(j)) => ours.as_f64() == j.as_f64(),
        (v, Value::Number(j)) => v.as_i128().is_some() && v.as_i128() == j.as_i128(),
        _ => false,
    }
}

#[test]
fn metadata_matches_golden_meta() {
    for name in MODELS {
        let (Some(path), Some(meta)) = (model(name), golden(name, "meta.json")) else {
            return;
        };
        let file = GgufFile::open(&path).unwrap();
        let md = file.metadata();
        assert_eq!(file.architecture().unwrap(), meta["gguf_architecture"].as_str().unwrap());
        let golden_md = meta["gguf_metadata"].as_object().unwrap();
        for (key, want) in golden_md {
            match key.as_str() {
                "GGUF.version" => assert_eq!(u64::from(file.version()), want.as_u64().unwrap()),
                "GGUF.tensor_count" => {
                    assert_eq!(file.tensors().len() as u64, want.as_u64().unwrap())
                }
                "GGUF.kv_count" => assert_eq!(md.len() as u64, want.as_u64().unwrap()),
                _ => {
                    let ours = md.get(key).unwrap_or_else(|| panic!("{name}: no key {key}"));
                    assert!(same_value(ours, want), "{name}: {key} = {ours:?}, golden {want}");
                }
            }
        }
        assert_eq!(md.get_str("general.name"), meta["gguf_general_name"].as_str());
        let arch = file.architecture().unwrap();
        let scoped = md.scoped(arch);
        let hf = &meta["hf_config"];
        assert_eq!(scoped.usize("block_count").unwrap() as u64, hf["num_hidden_layers"].as_u64().unwrap());
        assert_eq!(scoped.usize("embedding_length").unwrap() as u64, hf["hidden_size"].as_u64().unwrap());
        assert_eq!(
            scoped.usize("attention.head_count_kv").unwrap() as u64,
            hf["num_key_value_heads"].as_u64().unwrap()
        );
        // The tokenizer vocabulary is an array of strings as long as the model's vocabulary.
        let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
        assert_eq!(tokens.len() as u64, hf["vocab_size"].as_u64().unwrap(), "{name}: vocabulary");
        assert_eq!(md.get_i32_array("tokenizer.ggml.token_type").map(|v| v.len()), Some(tokens.len()));
    }
}

#[test]
fn weights_map_every_tensor_with_fix_ups() {
    for name in MODELS {
        let Some(path) = model(name) else { return };
        let w = GgufWeights::from_metadata(GgufFile::open(&path).unwrap()).unwrap();
        assert!(w.unmapped().is_empty(), "{name}: unmapped {:?}", w.unmapped());
        assert_eq!(w.names().len(), w.file().tensors().len(), "{name}");
        let raw = |gguf: &str| w.file().tensor_f32(gguf).unwrap();
        match name {
            "smollm2-135m-instruct" => {
                assert!(!w.contains("lm_head.weight"), "tied embeddings");
                assert_eq!(w.shape("model.layers.3.self_attn.k_proj.weight").unwrap(), [192, 576]);
                // k: 3 heads of 64 rows. HF row (h, s, i) is GGUF row (h, i, s): HF row 64 h + 32 s + i
                // = GGUF row 64 h + 2 i + s.
                let hf = w.tensor("model.layers.3.self_attn.k_proj.weight").unwrap();
                let gg = raw("blk.3.attn_k.weight");
                for (hf_row, gguf_row) in [(0, 0), (1, 2), (32, 1), (33, 3), (64 + 31, 64 + 62), (191, 191)] {
                    assert_eq!(hf.data[hf_row * 576..][..576], gg.data[gguf_row * 576..][..576], "row {hf_row}");
                }
            }
            "gemma3-270m" => {
                let hf = w.tensor("model.layers.0.self_attn.k_norm.weight").unwrap();
                let gg = raw("blk.0.attn_k_norm.weight");
                assert!(hf.data.iter().zip(&gg.data).all(|(h, g)| *h == *g - 1.0));
                let q = w.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
                assert_eq!(q, raw("blk.0.attn_q.weight"), "gemma3 q is not permuted");
                assert_eq!(q.shape, [1024, 640]);
            }
            _ => {
                assert_eq!(w.shape("lm_head.weight").unwrap(), w.shape("model.embed_tokens.weight").unwrap());
                assert_eq!(w.tensor("model.layers.0.self_attn.q_proj.bias").unwrap(), raw("blk.0.attn_q.bias"));
            }
        }
    }
}

#[test]
fn truncated_and_corrupted_real_headers_fail_cleanly() {
    let Some(path) = model(MODELS[0]) else { return };
    let file = GgufFile::open(&path).unwrap();
    let data_offset = file.data_offset();
    let data_end = file.tensors().iter().map(|t| data_offset + t.offset + t.byte_len().unwrap()).max().unwrap();
    drop(file);
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");

    for len in [
        0,
        3,
        4,
        8,
        20,
        24,
        25,
        100,
        1000,
        100_000,
        data_offset / 2,
        data_offset - 1,
        data_offset,
        data_offset + 4096,
        data_end - 1,
    ] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let err = GgufFile::open(&cut).expect_err(&format!("prefix of {len} bytes opened"));
        assert!(err.to_string().contains("cut.gguf"), "{err}");
    }

    let header = &bytes[..data_offset];
    let mut corrupt = header.to_vec();
    corrupt[..4].copy_from_slice(b"GGML");
    std::fs::write(&cut, &corrupt).unwrap();
    assert!(GgufFile::open(&cut).unwrap_err().to_string().contains("magic"));

    // Random byte flips anywhere in the header, and more in the tensor directory at its end:
    // whatever they do, opening (and reading every tensor of a file that opens) must not panic.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..48 {
        let mut m = header.to_vec();
        for _ in 0..4 {
            let pos = if round % 2 == 0 {
                next() as usize % m.len()
            } else {
                m.len() - 1 - next() as usize % 8192.min(m.len())
            };
            m[pos] ^= 1 << (next() % 8);
        }
        std::fs::write(&cut, &m).unwrap();
        if let Ok(f) = GgufFile::open(&cut) {
            for t in f.tensors() {
                let _ = f.tensor_f32(&t.name);
            }
        }
    }
}
