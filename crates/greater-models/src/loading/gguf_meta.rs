//! GGUF metadata: typed key/value pairs, with lookups that accept any compatible number type.
//!
//! [`Metadata::scoped`] gives the `"{arch}.{key}"` view that config builders use, so the
//! architecture prefix is written once and every missing key is reported at once:
//!
//! ```
//! use greater_models::loading::{MetaValue, Metadata};
//! let mut meta = Metadata::new("model.gguf");
//! meta.insert("llama.block_count".into(), MetaValue::U32(30));
//! let md = meta.scoped("llama");
//! let err = md.require_all(&["block_count", "embedding_length", "attention.head_count"]).unwrap_err();
//! assert!(err.to_string().contains("llama.embedding_length, llama.attention.head_count"), "{err}");
//! assert_eq!(md.f32_or("rope.freq_base", 10_000.0), 10_000.0);
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::LoadError;

/// One GGUF metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `GGUF_TYPE_UINT8`.
    U8(u8),
    /// `GGUF_TYPE_INT8`.
    I8(i8),
    /// `GGUF_TYPE_UINT16`.
    U16(u16),
    /// `GGUF_TYPE_INT16`.
    I16(i16),
    /// `GGUF_TYPE_UINT32`.
    U32(u32),
    /// `GGUF_TYPE_INT32`.
    I32(i32),
    /// `GGUF_TYPE_UINT64`.
    U64(u64),
    /// `GGUF_TYPE_INT64`.
    I64(i64),
    /// `GGUF_TYPE_FLOAT32`.
    F32(f32),
    /// `GGUF_TYPE_FLOAT64`.
    F64(f64),
    /// `GGUF_TYPE_BOOL`.
    Bool(bool),
    /// `GGUF_TYPE_STRING` (UTF-8).
    String(String),
    /// `GGUF_TYPE_ARRAY`: values of one type.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an integer, for any integer type.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Self::U8(v) => v.into(),
            Self::I8(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U64(v) => v.into(),
            Self::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as a non-negative `usize`, for any integer type.
    pub fn as_usize(&self) -> Option<usize> {
        self.as_i128().and_then(|v| usize::try_from(v).ok())
    }

    /// The value as `f32`, for any float or integer type (`F64` and large integers are rounded).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Self::F32(v) => Some(v),
            Self::F64(v) => Some(v as f32),
            _ => self.as_i128().map(|v| v as f32),
        }
    }

    /// The value as `f64`, for any float or integer type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }

    /// GGUF's name of the value type (`"u32"`, `"string"`, `"array"`), for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F32(_) => "f32",
            Self::F64(_) => "f64",
            Self::Bool(_) => "bool",
            Self::String(_) => "string",
            Self::Array(_) => "array",
        }
    }
}

/// All metadata of one GGUF file, in file order, with the file's path for error messages.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    path: PathBuf,
    entries: Vec<(String, MetaValue)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Empty metadata for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), entries: Vec::new(), index: HashMap::new() }
    }

    /// Adds `key`; a repeated key replaces the earlier value (GGUF forbids duplicates).
    pub fn insert(&mut self, key: String, value: MetaValue) {
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    /// The file the metadata came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Every key with its value, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// `key` as a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// `key` as a non-negative integer of any integer type.
    pub fn get_usize(&self, key: &str) -> Option<usize> {
        self.get(key)?.as_usize()
    }

    /// `key` as `f32`, from any float or integer type.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key)?.as_f32()
    }

    /// `key` as a boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// `key` as an array of strings (`None` if absent, not an array, or any element is not a string).
    pub fn get_str_array(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key)?.as_array()?.iter().map(MetaValue::as_str).collect()
    }

    /// `key` as an array of `f32`, from any float or integer element type.
    pub fn get_f32_array(&self, key: &str) -> Option<Vec<f32>> {
        self.get(key)?.as_array()?.iter().map(MetaValue::as_f32).collect()
    }

    /// `key` as an array of `i32`, from any integer element type whose values fit.
    pub fn get_i32_array(&self, key: &str) -> Option<Vec<i32>> {
        let items = self.get(key)?.as_array()?;
        items.iter().map(|v| v.as_i128().and_then(|i| i32::try_from(i).ok())).collect()
    }

    /// The view whose keys are `"{prefix}.{key}"` (`prefix` is usually `general.architecture`).
    pub fn scoped<'a>(&'a self, prefix: &str) -> ScopedMeta<'a> {
        ScopedMeta { meta: self, prefix: prefix.to_owned() }
    }
}

/// Metadata keys under one prefix: `scoped("llama").usize("block_count")` reads `llama.block_count`.
///
/// The `*_or` methods return the default when the key is absent; a key of the wrong type is a
/// [`LoadError::BadField`] in the strict methods and logs a warning (then uses the default) in the
/// `*_or` and `opt_*` ones.
#[derive(Debug, Clone)]
pub struct ScopedMeta<'a> {
    meta: &'a Metadata,
    prefix: String,
}

impl<'a> ScopedMeta<'a> {
    /// The full key of `suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// The raw value of `suffix`.
    pub fn get(&self, suffix: &str) -> Option<&'a MetaValue> {
        self.meta.get(&self.key(suffix))
    }

    /// Whether `suffix` is present.
    pub fn contains(&self, suffix: &str) -> bool {
        self.get(suffix).is_some()
    }

    /// Succeeds when every suffix is present; otherwise lists **all** missing full keys.
    pub fn require_all(&self, suffixes: &[&str]) -> Result<(), LoadError> {
        let missing: Vec<String> =
            suffixes.iter().map(|s| self.key(s)).filter(|k| self.meta.get(k).is_none()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(LoadError::MissingFields { path: self.meta.path.clone(), fields: missing })
        }
    }

    /// A required non-negative integer.
    pub fn usize(&self, suffix: &str) -> Result<usize, LoadError> {
        self.required(suffix, "a non-negative integer", MetaValue::as_usize)
    }

    /// A required number, as `f32`.
    pub fn f32(&self, suffix: &str) -> Result<f32, LoadError> {
        self.required(suffix, "a number", MetaValue::as_f32)
    }

    /// A required string.
    pub fn str(&self, suffix: &str) -> Result<&'a str, LoadError> {
        self.required(suffix, "a string", MetaValue::as_str)
    }

    /// A required boolean.
    pub fn bool(&self, suffix: &str) -> Result<bool, LoadError> {
        self.required(suffix, "a boolean", MetaValue::as_bool)
    }

    /// An optional non-negative integer.
    pub fn opt_usize(&self, suffix: &str) -> Option<usize> {
        self.optional(suffix, "a non-negative integer", MetaValue::as_usize)
    }

    /// An optional number, as `f32`.
    pub fn opt_f32(&self, suffix: &str) -> Option<f32> {
        self.optional(suffix, "a number", MetaValue::as_f32)
    }

    /// An optional string.
    pub fn opt_str(&self, suffix: &str) -> Option<&'a str> {
        self.optional(suffix, "a string", MetaValue::as_str)
    }

    /// An optional boolean.
    pub fn opt_bool(&self, suffix: &str) -> Option<bool> {
        self.optional(suffix, "a boolean", MetaValue::as_bool)
    }

    /// An integer, or `default` when absent.
    pub fn usize_or(&self, suffix: &str, default: usize) -> usize {
        self.opt_usize(suffix).unwrap_or(default)
    }

    /// A number as `f32`, or `default` when absent.
    pub fn f32_or(&self, suffix: &str, default: f32) -> f32 {
        self.opt_f32(suffix).unwrap_or(default)
    }

    fn required<T>(&self, suffix: &str, what: &str, conv: impl Fn(&'a MetaValue) -> Option<T>) -> Result<T, LoadError> {
        let key = self.key(suffix);
        let Some(value) = self.meta.get(&key) else {
            return Err(LoadError::MissingFields { path: self.meta.path.clone(), fields: vec![key] });
        };
        conv(value).ok_or_else(|| LoadError::BadField {
            path: self.meta.path.clone(),
            field: key,
            reason: format!("expected {what}, found {} {}", value.type_name(), brief(value)),
        })
    }

    fn optional<T>(&self, suffix: &str, what: &str, conv: impl Fn(&'a MetaValue) -> Option<T>) -> Option<T> {
        let key = self.key(suffix);
        let value = self.meta.get(&key)?;
        let out = conv(value);
        if out.is_none() {
            tracing::warn!(
                path = %self.meta.path.display(),
                key,
                "expected {what}, found {} {}; ignoring it",
                value.type_name(),
                brief(value)
            );
        }
        out
    }
}

/// A short rendering of a value for messages (arrays by length only).
fn brief(value: &MetaValue) -> String {
    match value {
        MetaValue::Array(v) => format!("of {} elements", v.len()),
        MetaValue::String(s) if s.len() > 40 => format!("{:?}…", &s[..s.floor_char_boundary(40)]),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut m = Metadata::new("model.gguf");
        m.insert("general.architecture".into(), MetaValue::String("llama".into()));
        m.insert("llama.block_count".into(), MetaValue::U32(30));
        m.insert("llama.context_length".into(), MetaValue::I64(8192));
        m.insert("llama.bad".into(), MetaValue::I32(-1));
        m.insert("llama.rope.freq_base".into(), MetaValue::F32(100_000.0));
        m.insert("llama.eps".into(), MetaValue::F64(1e-5));
        m.insert("llama.flag".into(), MetaValue::Bool(true));
        let toks = ["a", "b"].iter().map(|s| MetaValue::String((*s).into())).collect();
        m.insert("tok".into(), MetaValue::Array(toks));
        m.insert("ids".into(), MetaValue::Array(vec![MetaValue::U8(3), MetaValue::I64(-2)]));
        m
    }

    #[test]
    fn typed_lookups_accept_compatible_types() {
        let m = sample();
        assert_eq!(m.get_str("general.architecture"), Some("llama"));
        assert_eq!(m.get_usize("llama.block_count"), Some(30));
        assert_eq!(m.get_usize("llama.context_length"), Some(8192));
        assert_eq!(m.get_usize("llama.bad"), None);
        assert_eq!(m.get_f32("llama.block_count"), Some(30.0));
        assert_eq!(m.get_f32("llama.eps"), Some(1e-5f64 as f32));
        assert_eq!(m.get_bool("llama.flag"), Some(true));
        assert_eq!(m.get_str_array("tok"), Some(vec!["a", "b"]));
        assert_eq!(m.get_i32_array("ids"), Some(vec![3, -2]));
        assert_eq!(m.get_f32_array("ids"), Some(vec![3.0, -2.0]));
        assert_eq!(m.get_str_array("ids"), None);
        assert_eq!(m.keys().count(), 9);
    }

    #[test]
    fn scoped_view_reports_every_missing_key() {
        let m = sample();
        let md = m.scoped("llama");
        assert!(md.require_all(&["block_count", "rope.freq_base"]).is_ok());
        let err = md.require_all(&["block_count", "embedding_length", "attention.head_count"]);
        match err {
            Err(LoadError::MissingFields { path, fields }) => {
                assert_eq!(path, PathBuf::from("model.gguf"));
                assert_eq!(fields, ["llama.embedding_length", "llama.attention.head_count"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(md.usize("block_count").unwrap(), 30);
        assert_eq!(md.f32_or("rope.freq_base", 10_000.0), 100_000.0);
        assert_eq!(md.f32_or("rope.scale", 1.5), 1.5);
        assert_eq!(md.usize_or("missing", 7), 7);
        assert_eq!(md.opt_f32("missing"), None);
        let bad = md.usize("bad").unwrap_err().to_string();
        assert!(bad.contains("model.gguf") && bad.contains("llama.bad"), "{bad}");
    }
}
