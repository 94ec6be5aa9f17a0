//! Helpers shared by the integration tests: where models and golden data live, and comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

#[allow(unused_imports)] // each test file uses a different subset
pub use greater_testkit::{assert_close, assert_close_rel, cache_dir, models_required as required};

/// The cached GGUF of a registry model, or `None` (after saying so) when absent and not required.
pub fn model_path(name: &str) -> Option<PathBuf> {
    let p = cache_dir().join("models").join(format!("{name}.gguf"));
    if p.exists() {
        return Some(p);
    }
    assert!(!required(), "model {name} is required (GREATER_REQUIRE_MODELS=1) but {} is missing", p.display());
    eprintln!("note: {} not found; skipping (run `greater models fetch {name}`)", p.display());
    None
}

/// Whether the run names `name` in `GREATER_MODELS` (comma separated), for optional big models.
pub fn model_selected(name: &str) -> bool {
    std::env::var("GREATER_MODELS").is_ok_and(|v| v.split(',').any(|m| m.trim() == name))
}

/// The cached GGUF of an optional model (Gemma, Qwen: CI only requires SmolLM2).
///
/// It runs whenever it is cached. When it is missing, the test skips with a note, unless
/// `GREATER_REQUIRE_MODELS=1` *and* `GREATER_MODELS` names it, which makes the test fail.
pub fn optional_model_path(name: &str) -> Option<PathBuf> {
    let p = cache_dir().join("models").join(format!("{name}.gguf"));
    if p.exists() {
        return Some(p);
    }
    assert!(
        !(required() && model_selected(name)),
        "model {name} is named in GREATER_MODELS with GREATER_REQUIRE_MODELS=1 but {} is missing",
        p.display()
    );
    eprintln!("note: optional model {} not found; skipping (run `greater models fetch {name}`)", p.display());
    None
}

/// The golden folder of a model.
pub fn golden_dir(name: &str) -> Option<PathBuf> {
    let p = greater_testkit::golden_root().join(name);
    if p.exists() {
        return Some(p);
    }
    assert!(!required(), "golden data {} is required but missing", p.display());
    eprintln!("note: golden data {} not found; skipping", p.display());
    None
}

/// Read a JSON file.
pub fn json(path: PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A golden tensor: shape and values widened to f64.
#[derive(Debug, Clone)]
pub struct Golden {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Read every tensor of a golden safetensors file (F32 and I64 only).
pub fn safetensors(path: PathBuf) -> HashMap<String, Golden> {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
                }
                safetensors::Dtype::I64 => {
                    view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect()
                }
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, Golden { shape: view.shape().to_vec(), data })
        })
        .collect()
}
