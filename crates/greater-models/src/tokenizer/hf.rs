//! Loading a Hugging Face `tokenizer.json` with its `tokenizer_config.json`.

use std::path::Path;

use serde_json::Value;

use super::{SpecialIds, Tokenizer};
use crate::LoadError;

/// Loads `tokenizer_json`; `config` (a `tokenizer_config.json`) names the special tokens and says
/// whether BOS is added.
pub(super) fn load(tokenizer_json: &Path, config: Option<&Path>) -> Result<Tokenizer, LoadError> {
    let inner = tokenizers::Tokenizer::from_file(tokenizer_json)
        .map_err(|e| LoadError::Tokenizer { path: tokenizer_json.into(), reason: e.to_string() })?;
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
    Tokenizer::from_parts(inner, tokenizer_json.to_path_buf(), special, add_bos, vocab_size)
}

/// Reads a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
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
