//! Hugging Face safetensors checkpoints: one `model.safetensors` or shards listed by
//! `model.safetensors.index.json`, memory-mapped, read as `f32` from `F32`, `F16`, `BF16` or `F64`.
//!
//! Safetensors checkpoints already use Hugging Face names, layouts and value conventions (Gemma
//! norms store `w`, not `w + 1`), so tensors are returned unchanged. Only the name prefix is
//! normalised to the causal LM's (`model.layers.0…`, `lm_head.weight`), see [`canonical_name`]:
//! multimodal Gemma 3 checkpoints wrap the language model (`language_model.model.…` in
//! transformers < 4.52, `model.language_model.…` since), and a bare `LlamaModel` has no `model.`.
//! Vision-tower and projector tensors are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use ::safetensors::{Dtype, SafeTensors};
use memmap2::Mmap;

use super::{HostTensor, WeightSource};
use crate::LoadError;

/// The single-file checkpoint name inside a model folder.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The shard index name inside a model folder.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A memory-mapped safetensors checkpoint (one file or several shards).
#[derive(Debug)]
pub struct SafetensorsWeights {
    /// What was opened (folder, file or index), for messages.
    path: PathBuf,
    shards: Vec<Shard>,
    /// Canonical name → where its bytes are.
    tensors: BTreeMap<String, Entry>,
}

/// One mapped `.safetensors` file.
#[derive(Debug)]
struct Shard {
    path: PathBuf,
    mmap: Mmap,
}

/// Where one tensor lives.
#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    /// The name in the file (may differ from the canonical one).
    stored_name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range in the shard's map.
    bytes: std::ops::Range<usize>,
}

impl SafetensorsWeights {
    /// Opens a model folder, a `.safetensors` file, or a `*.safetensors.index.json`.
    ///
    /// In a folder, `model.safetensors.index.json` is preferred, then `model.safetensors`, then
    /// the folder's only `*.safetensors` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let (files, weight_map) = if path.is_dir() {
            let index = path.join(INDEX_FILE);
            if index.is_file() {
                read_index(&index)?
            } else if path.join(SINGLE_FILE).is_file() {
                (vec![path.join(SINGLE_FILE)], None)
            } else {
                (vec![only_safetensors_in(path)?], None)
            }
        } else if path.to_string_lossy().ends_with(".json") {
            read_index(path)?
        } else {
            (vec![path.to_path_buf()], None)
        };

        let mut shards = Vec::with_capacity(files.len());
        let mut stored: Vec<BTreeMap<String, Entry>> = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            let shard = map_file(file)?;
            stored.push(read_header(&shard, i)?);
            shards.push(shard);
        }

        // With an index, its weight map decides which shard serves each name.
        let chosen: Vec<Entry> = match weight_map {
            None => stored.into_iter().flat_map(BTreeMap::into_values).collect(),
            Some(map) => {
                let mut out = Vec::with_capacity(map.len());
                for (name, shard) in map {
                    match stored[shard].remove(&name) {
                        Some(entry) => out.push(entry),
                        None => {
                            return Err(LoadError::MissingTensors {
                                path: shards[shard].path.clone(),
                                names: vec![format!("{name} (listed in {INDEX_FILE})")],
                            });
                        }
                    }
                }
                out
            }
        };

        let mut tensors = BTreeMap::new();
        for entry in chosen {
            let Some(name) = canonical_name(&entry.stored_name) else { continue };
            if let Some(previous) = tensors.get(&name) {
                let previous: &Entry = previous;
                return Err(LoadError::format(
                    &shards[entry.shard].path,
                    format!("tensors `{}` and `{}` both map to `{name}`", previous.stored_name, entry.stored_name),
                ));
            }
            tensors.insert(name, entry);
        }
        Ok(Self { path: path.to_path_buf(), shards, tensors })
    }

    /// The `.safetensors` files, in index order.
    pub fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// The stored dtype of `name` (as safetensors spells it: `F32`, `BF16`…).
    pub fn dtype(&self, name: &str) -> Result<String, LoadError> {
        Ok(format!("{:?}", self.entry(name)?.dtype))
    }

    fn entry(&self, name: &str) -> Result<&Entry, LoadError> {
        self.tensors
            .get(name)
            .ok_or_else(|| LoadError::MissingTensors { path: self.path.clone(), names: vec![name.to_owned()] })
    }
}

impl WeightSource for SafetensorsWeights {
    fn path(&self) -> &Path {
        &self.path
    }

    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        Ok(self.entry(name)?.shape.clone())
    }

    fn tensor(&self, name: &str) -> Result<HostTensor, LoadError> {
        let entry = self.entry(name)?;
        let shard = &self.shards[entry.shard];
        let bytes = &shard.mmap[entry.bytes.clone()];
        let data: Vec<f32> = match entry.dtype {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F64 => {
                bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")) as f32).collect()
            }
            other => {
                return Err(LoadError::UnsupportedTensorType {
                    path: shard.path.clone(),
                    tensor: entry.stored_name.clone(),
                    kind: format!("{other:?} (supported: F32, F16, BF16, F64)"),
                });
            }
        };
        Ok(HostTensor { shape: entry.shape.clone(), data })
    }

    fn file_of(&self, name: &str) -> &Path {
        match self.tensors.get(name) {
            Some(entry) => &self.shards[entry.shard].path,
            None => &self.path,
        }
    }
}

/// The causal LM's name for a stored tensor name, or `None` for tensors outside the language
/// model (vision tower, multimodal projector).
///
/// - `language_model.model.X` and `model.language_model.X` become `model.X`;
/// - `language_model.lm_head.X` becomes `lm_head.X`;
/// - `layers.*`, `embed_tokens.*` and `norm.*` (a bare base model) gain `model.`;
/// - everything else is kept.
pub fn canonical_name(stored: &str) -> Option<String> {
    const SKIPPED: [&str; 4] =
        ["vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector."];
    if SKIPPED.iter().any(|p| stored.starts_with(p)) {
        return None;
    }
    let renamed = [
        ("language_model.model.", "model."),
        ("model.language_model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("layers.", "model.layers."),
        ("embed_tokens.", "model.embed_tokens."),
        ("norm.", "model.norm."),
    ];
    for (from, to) in renamed {
        if let Some(rest) = stored.strip_prefix(from) {
            return Some(format!("{to}{rest}"));
        }
    }
    Some(stored.to_owned())
}

/// Reads an index: the distinct shard files (in first-use order) and each tensor's shard.
type IndexContents = (Vec<PathBuf>, Option<BTreeMap<String, usize>>);

fn read_index(index: &Path) -> Result<IndexContents, LoadError> {
    let text = std::fs::read_to_string(index).map_err(|e| LoadError::io(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| LoadError::format(index, format!("invalid JSON: {e}")))?;
    let Some(map) = json.get("weight_map").and_then(serde_json::Value::as_object) else {
        return Err(LoadError::MissingFields { path: index.to_path_buf(), fields: vec!["weight_map".into()] });
    };
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen = BTreeMap::new();
    let mut weight_map = BTreeMap::new();
    for (name, file) in map {
        let Some(file) = file.as_str() else {
            return Err(LoadError::BadField {
                path: index.to_path_buf(),
                field: format!("weight_map.{name}"),
                reason: format!("expected a file name, found {file}"),
            });
        };
        let shard = *seen.entry(file.to_owned()).or_insert_with(|| {
            files.push(dir.join(file));
            files.len() - 1
        });
        weight_map.insert(name.clone(), shard);
    }
    if files.is_empty() {
        return Err(LoadError::format(index, "`weight_map` is empty"));
    }
    Ok((files, Some(weight_map)))
}

/// The only `*.safetensors` file in `dir`.
fn only_safetensors_in(dir: &Path) -> Result<PathBuf, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
    let found: BTreeSet<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one element")),
        0 => Err(LoadError::format(dir, format!("no {INDEX_FILE}, {SINGLE_FILE} or other *.safetensors file"))),
        n => Err(LoadError::format(dir, format!("{n} *.safetensors files but no {INDEX_FILE} to order them"))),
    }
}

fn map_file(path: &Path) -> Result<Shard, LoadError> {
    let file = File::open(path).map_err(|e| LoadError::io(path, e))?;
    // SAFETY: the map is read-only; like every mmap-based loader we assume the checkpoint is not
    // modified while it is open (a concurrent writer could change the bytes under us).
    let mmap = unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(path, e))?;
    Ok(Shard { path: path.to_path_buf(), mmap })
}

/// Every tensor of one shard, by stored name, with byte ranges in the shard's map.
fn read_header(shard: &Shard, index: usize) -> Result<BTreeMap<String, Entry>, LoadError> {
    let (header_len, meta) = SafeTensors::read_metadata(&shard.mmap)
        .map_err(|e| LoadError::format(&shard.path, format!("not a valid safetensors file: {e}")))?;
    let data_start = 8 + header_len;
    let mut out = BTreeMap::new();
    for (name, info) in meta.tensors() {
        let (start, end) = info.data_offsets;
        out.insert(
            name.clone(),
            Entry {
                shard: index,
                stored_name: name,
                dtype: info.dtype,
                shape: info.shape.clone(),
                bytes: data_start + start..data_start + end,
            },
        );
    }
    Ok(out)
}
