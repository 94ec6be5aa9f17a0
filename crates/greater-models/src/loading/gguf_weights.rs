//! [`GgufWeights`]: a GGUF file seen through [`WeightSource`], with Hugging Face names and values.
//!
//! Names come from the family's table in [`names`](super::names); values are dequantised to
//! `f32` and corrected by the table's named [`FixUp`]s (llama q/k row order, Gemma norm offset).

use std::collections::BTreeMap;
use std::path::Path;

use super::gguf::GgufFile;
use super::names::{self, FixUp};
use super::{HostTensor, WeightSource};
use crate::LoadError;
use crate::config::Family;

/// One canonical tensor: where it is in the file and how to correct it.
#[derive(Debug, Clone)]
struct Entry {
    gguf: String,
    fix: FixUp,
}

/// A GGUF checkpoint whose tensors are read by Hugging Face name.
#[derive(Debug)]
pub struct GgufWeights {
    file: GgufFile,
    family: Family,
    entries: BTreeMap<String, Entry>,
    unmapped: Vec<String>,
}

impl GgufWeights {
    /// Maps the tensors of `file` for a `family` model of `num_layers` decoder layers.
    ///
    /// Canonical names whose GGUF tensor is absent (such as `lm_head.weight` with tied
    /// embeddings) are simply not listed. Fails when the llama q/k fix-up needs head counts the
    /// metadata lacks.
    pub fn new(file: GgufFile, family: Family, num_layers: usize) -> Result<Self, LoadError> {
        let arch = file.architecture()?.to_owned();
        let rope_heads = if arch == "llama" { Some(llama_head_counts(&file, &arch)?) } else { None };
        let gemma = matches!(family, Family::Gemma2 | Family::Gemma3);
        let mut entries = BTreeMap::new();
        for (gguf_pattern, hf_pattern) in names::rules(family) {
            let layers = if gguf_pattern.contains("{i}") { 0..num_layers } else { 0..1 };
            for i in layers {
                let gguf = names::expand(gguf_pattern, i);
                if file.tensor_info(&gguf).is_none() {
                    continue;
                }
                let fix = match rope_heads {
                    Some((q, _)) if gguf.ends_with("attn_q.weight") => FixUp::UnpermuteRope { n_head: q },
                    Some((_, k)) if gguf.ends_with("attn_k.weight") => FixUp::UnpermuteRope { n_head: k },
                    _ if gemma && gguf.ends_with("norm.weight") => FixUp::GemmaNormOffset,
                    _ => FixUp::None,
                };
                entries.insert(names::expand(hf_pattern, i), Entry { gguf, fix });
            }
        }
        let mapped: std::collections::HashSet<&str> = entries.values().map(|e| e.gguf.as_str()).collect();
        let unmapped = file.tensors().iter().map(|t| t.name.clone()).filter(|n| !mapped.contains(n.as_str())).collect();
        Ok(Self { file, family, entries, unmapped })
    }

    /// Maps `file` using its own metadata: the family from `general.architecture`, the layer count
    /// from `{arch}.block_count`.
    pub fn from_metadata(file: GgufFile) -> Result<Self, LoadError> {
        let arch = file.architecture()?.to_owned();
        let family = names::family_for_architecture(&arch).ok_or_else(|| LoadError::UnsupportedArchitecture {
            path: file.path().to_path_buf(),
            arch: arch.clone(),
            supported: names::SUPPORTED_ARCHITECTURES.into(),
        })?;
        let num_layers = file.metadata().scoped(&arch).usize("block_count")?;
        Self::new(file, family, num_layers)
    }

    /// The underlying file (metadata, raw tensors).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The family whose table maps the names.
    pub fn family(&self) -> Family {
        self.family
    }

    /// GGUF tensors no canonical name maps to (e.g. llama.cpp's `rope_freqs.weight`).
    pub fn unmapped(&self) -> &[String] {
        &self.unmapped
    }

    /// The GGUF name behind canonical `name`.
    pub fn gguf_name(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|e| e.gguf.as_str())
    }

    /// The fix-up applied to canonical `name`.
    pub fn fix_up(&self, name: &str) -> Option<FixUp> {
        self.entries.get(name).map(|e| e.fix)
    }

    fn entry(&self, name: &str) -> Result<&Entry, LoadError> {
        self.entries.get(name).ok_or_else(|| LoadError::MissingTensors {
            path: self.file.path().to_path_buf(),
            names: vec![name.to_owned()],
        })
    }
}

impl WeightSource for GgufWeights {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        let entry = self.entry(name)?;
        // Entries are only made for tensors the file holds, so this lookup succeeds.
        let info = self.file.tensor_info(&entry.gguf).ok_or_else(|| LoadError::MissingTensors {
            path: self.file.path().to_path_buf(),
            names: vec![entry.gguf.clone()],
        })?;
        Ok(info.shape())
    }

    fn tensor(&self, name: &str) -> Result<HostTensor, LoadError> {
        let entry = self.entry(name)?;
        let mut t = self.file.tensor_f32(&entry.gguf)?;
        match entry.fix {
            FixUp::None => {}
            FixUp::GemmaNormOffset => names::subtract_one(&mut t.data),
            FixUp::UnpermuteRope { n_head } => {
                let rows = t.shape.first().copied().unwrap_or(1);
                let cols = t.shape.iter().skip(1).product();
                t.data = names::unpermute_rope_rows(&t.data, rows, cols, n_head).ok_or_else(|| {
                    LoadError::format(
                        self.file.path(),
                        format!(
                            "tensor `{}` (`{name}`): {rows} rows cannot be split into {n_head} heads of \
                             rotary pairs",
                            entry.gguf
                        ),
                    )
                })?;
            }
        }
        Ok(t)
    }
}

/// `(head_count, head_count_kv)` of a llama file; `head_count_kv` defaults to `head_count`.
fn llama_head_counts(file: &GgufFile, arch: &str) -> Result<(usize, usize), LoadError> {
    let md = file.metadata().scoped(arch);
    let q = md.usize("attention.head_count")?;
    let kv = md.usize_or("attention.head_count_kv", q);
    Ok((q, kv))
}
