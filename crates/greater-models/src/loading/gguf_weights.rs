//! [`GgufWeights`]: a GGUF file seen through [`WeightSource`], with Hugging Face names and values.
//!
//! Names come from the family's table in [`names`](super::names); values are dequantised to
//! `f32` and corrected by the [`FixUp`] each row of the table names (llama q/k row order, Gemma
//! norm offset, a block of a fused tensor).

use std::collections::BTreeMap;
use std::path::Path;

use super::gguf::GgufFile;
use super::names::{self, FixUp, HeadCounts};
use super::{HostTensor, WeightSource};
use crate::LoadError;
use crate::config::{Family, families};

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
        let rules = names::rules(family);
        // Head counts are read only when a row's fix-up needs them, so files of families
        // without such rows do not need the keys.
        let heads = if rules.iter().any(|r| r.fix.needs_heads()) { Some(head_counts(&file, &arch)?) } else { None };
        let mut entries = BTreeMap::new();
        for rule in rules {
            let layers = if rule.gguf.contains("{i}") { 0..num_layers } else { 0..1 };
            for i in layers {
                let gguf = names::expand(rule.gguf, i);
                if file.tensor_info(&gguf).is_none() {
                    continue;
                }
                let fix = rule.fix.resolve(heads).ok_or_else(|| {
                    LoadError::format(file.path(), format!("tensor `{gguf}` needs the attention head counts"))
                })?;
                entries.insert(names::expand(rule.hf, i), Entry { gguf, fix });
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
        let family = families::gguf_family(&arch).ok_or_else(|| LoadError::UnsupportedArchitecture {
            path: file.path().to_path_buf(),
            supported: families::supported_text(families::GGUF_ARCHITECTURES, &arch),
            arch: arch.clone(),
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
        let mut shape = info.shape();
        if let (FixUp::Rows { len, .. }, Some(rows)) = (entry.fix, shape.first_mut()) {
            *rows = len;
        }
        Ok(shape)
    }

    fn tensor(&self, name: &str) -> Result<HostTensor, LoadError> {
        let entry = self.entry(name)?;
        let mut t = self.file.tensor_f32(&entry.gguf)?;
        match entry.fix {
            FixUp::None => {}
            FixUp::GemmaNormOffset => names::subtract_one(&mut t.data),
            FixUp::Rows { start, len } => {
                let cols: usize = t.shape.iter().skip(1).product();
                t.data = names::take_rows(&t.data, cols, start, len).ok_or_else(|| {
                    LoadError::format(
                        self.file.path(),
                        format!("tensor `{}` (`{name}`) has no rows {start}..{}", entry.gguf, start + len),
                    )
                })?;
                if let Some(rows) = t.shape.first_mut() {
                    *rows = len;
                }
            }
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

/// The head counts of a file: `head_count_kv` defaults to `head_count`, the head width to
/// `attention.key_length`, else `embedding_length / head_count`.
fn head_counts(file: &GgufFile, arch: &str) -> Result<HeadCounts, LoadError> {
    let md = file.metadata().scoped(arch);
    let heads = md.usize("attention.head_count")?;
    let kv_heads = md.usize_or("attention.head_count_kv", heads);
    let width = md.usize_or("embedding_length", 0);
    let head_dim = md.usize_or("attention.key_length", width / heads.max(1));
    Ok(HeadCounts { heads, kv_heads, head_dim })
}
