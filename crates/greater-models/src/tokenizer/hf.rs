//! Loading a Hugging Face `tokenizer.json` with its `tokenizer_config.json`.

use std::path::Path;

use serde_json::Value;

use super::{SpecialIds, Tokenizer};
use crate::LoadError;

/// Loads `tokenizer_json`; `config` (a `tokenizer_config.json`) names the special tokens and says
/// whether BOS is added.
pub(super) fn load(tokenizer_json: &Path, config: Option<&Path>) -> Result<Tokenizer, LoadError> {
    let text = read_limited(tokenizer_json, super::MAX_TOKENIZER_JSON_BYTES)?;
    check_sizes(tokenizer_json, &text)?;
    let inner: tokenizers::Tokenizer = text
        .parse()
        .map_err(|e: tokenizers::Error| LoadError::Tokenizer { path: tokenizer_json.into(), reason: e.to_string() })?;
    drop(text);
    let config = match config {
        Some(path) => Some((path, read_json(path)?)),
        None => None,
    };

    let mut special = SpecialIds::default();
    let mut add_bos = None;
    if let Some((path, json)) = &config {
        let id_of = |field: &str| -> Result<Option<u32>, LoadError> {
            let Some(content) = token_content(json, field) else {
                return Ok(None);
            };
            inner.token_to_id(content).map(Some).ok_or_else(|| LoadError::BadField {
                path: path.to_path_buf(),
                field: field.into(),
                reason: format!("token `{content}` is not in {}", tokenizer_json.display()),
            })
        };
        special = SpecialIds {
            bos: id_of("bos_token")?,
            eos: id_of("eos_token")?,
            pad: id_of("pad_token")?,
            unk: id_of("unk_token")?,
        };
        add_bos = match json.get("add_bos_token") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(LoadError::BadField {
                    path: path.to_path_buf(),
                    field: "add_bos_token".into(),
                    reason: format!("expected a boolean, found {other}"),
                });
            }
        };
    }
    // Without an explicit flag, BOS is added exactly when the file's own post-processor adds it
    // (Llama 3's TemplateProcessing does; GPT-2-style ByteLevel processors do not).
    let add_bos = match add_bos {
        Some(flag) => flag,
        None => match special.bos {
            Some(bos) => inner.encode("", true).map(|e| e.get_ids().first() == Some(&bos)).unwrap_or(false),
            None => false,
        },
    };
    let vocab_size = inner.get_vocab_size(true);
    Tokenizer::from_pipeline(inner, tokenizer_json.to_path_buf(), special, add_bos, vocab_size)
}

/// Reads `path` as UTF-8 after checking its size against `limit` (before reading).
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<String, LoadError> {
    let size = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?.len();
    if size > limit {
        return Err(LoadError::format(path, format!("file is {size} bytes, over the limit of {limit}")));
    }
    std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))
}

/// Counts `model.vocab` and `model.merges` without building anything, and refuses sizes over
/// [`super::MAX_VOCAB`] / [`super::MAX_MERGES`] naming the field.
fn check_sizes(path: &Path, text: &str) -> Result<(), LoadError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        model: Option<ProbeModel>,
    }
    #[derive(serde::Deserialize)]
    struct ProbeModel {
        #[serde(default)]
        vocab: Count,
        #[serde(default)]
        merges: Count,
    }
    // Malformed JSON is refused here: `tokenizers` panics on some syntax errors (inside a
    // `decoder`) instead of returning them. A well-formed file of the wrong shape is left to it.
    let model = match serde_json::from_str::<Probe>(text) {
        Ok(Probe { model: Some(model) }) => model,
        Err(e) if e.is_syntax() || e.is_eof() => {
            let reason = format!("invalid JSON at line {}, column {}: {e}", e.line(), e.column());
            return Err(LoadError::Tokenizer { path: path.into(), reason });
        }
        _ => return Ok(()),
    };
    for (field, n, limit) in
        [("model.vocab", model.vocab.0, super::MAX_VOCAB), ("model.merges", model.merges.0, super::MAX_MERGES)]
    {
        if n > limit {
            let reason = format!("has {n} entries, over the limit of {limit}");
            return Err(LoadError::BadField { path: path.into(), field: field.into(), reason });
        }
    }
    // Within the limits, the merges may be read in full.
    if model.merges.0 > 0 {
        check_merges(path, text)?;
    }
    Ok(())
}

/// `tokenizers` builds BPE merges unchecked in two ways that panic on a hostile file: it slices
/// the `continuing_subword_prefix` off each merge's second token without checking that it is
/// there, and it copies each merged token into a buffer as long as the longest vocabulary entry.
/// So here every merge's second token must start with the prefix, and every merge's result must
/// be in the vocabulary (which `tokenizers` would require anyway, after the copy).
fn check_merges(path: &Path, text: &str) -> Result<(), LoadError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Merge {
        Pair(String, String),
        Text(String),
    }
    #[derive(serde::Deserialize)]
    struct Bpe {
        #[serde(default)]
        merges: Vec<Merge>,
        vocab: std::collections::HashMap<String, serde::de::IgnoredAny>,
        #[serde(default)]
        continuing_subword_prefix: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        model: Bpe,
    }
    let Ok(File { model }) = serde_json::from_str::<File>(text) else { return Ok(()) };
    let prefix = model.continuing_subword_prefix.unwrap_or_default();
    for (i, merge) in model.merges.iter().enumerate() {
        let (first, second) = match merge {
            Merge::Pair(a, b) => (a.as_str(), b.as_str()),
            Merge::Text(t) => t.split_once(' ').unwrap_or((t, "")),
        };
        let bad =
            |reason: String| LoadError::BadField { path: path.into(), field: format!("model.merges[{i}]"), reason };
        let Some(rest) = second.strip_prefix(prefix.as_str()) else {
            return Err(bad(format!("`{second}` does not start with the continuing_subword_prefix `{prefix}`")));
        };
        let merged = format!("{first}{rest}");
        if !model.vocab.contains_key(&merged) {
            return Err(bad(format!("merges `{first}` and `{second}` into `{merged}`, which is not in model.vocab")));
        }
    }
    Ok(())
}

/// The number of entries of a JSON array or object (0 for anything else), counted without
/// keeping them.
#[derive(Default)]
struct Count(usize);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a JSON file (at most 512 MiB).
pub(crate) fn read_json(path: &Path) -> Result<Value, LoadError> {
    let text = read_limited(path, super::MAX_TOKENIZER_JSON_BYTES)?;
    serde_json::from_str(&text).map_err(|e| LoadError::format(path, format!("invalid JSON: {e}")))
}

/// A special token in `tokenizer_config.json`: either a string or an object with `content`.
fn token_content<'a>(json: &'a Value, field: &str) -> Option<&'a str> {
    match json.get(field)? {
        Value::String(s) => Some(s),
        Value::Object(map) => map.get("content")?.as_str(),
        _ => None,
    }
}
