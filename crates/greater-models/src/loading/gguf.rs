//! A memory-mapped, defensive reader of GGUF v2/v3 files (little-endian).
//!
//! Layout ([spec](https://github.com/ggml-org/ggml/blob/master/docs/gguf.md)):
//!
//! ```text
//! "GGUF"  u32 version  u64 tensor_count  u64 kv_count
//! kv_count ×     { string key, u32 value_type, value }
//! tensor_count × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor at data_start + offset
//! ```
//!
//! Strings are a `u64` byte length and UTF-8 bytes. Every count and length is checked against the
//! bytes left before anything is allocated, and every tensor's data against the file's end, so a
//! truncated or corrupt file is a [`LoadError`] naming the file (and tensor), never a panic.
//!
//! Tensor dimensions are kept in ggml order (`ne[0]` is the fastest axis); [`TensorInfo::shape`]
//! and [`GgufFile::tensor_f32`] give PyTorch order (`ne = [in, out]` becomes `[out, in]`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::HostTensor;
use super::dequant::{self, GgmlType};
use super::gguf_meta::{MetaValue, Metadata};
use crate::LoadError;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: usize = 4;
/// Arrays nested deeper than this are treated as corruption.
const MAX_ARRAY_DEPTH: usize = 8;
/// The longest metadata array accepted (2^22 entries; the largest real one, a vocabulary, has
/// 262 144). Each entry takes 32 bytes in memory however few it takes in the file.
pub const MAX_ARRAY_LEN: usize = 1 << 22;

/// Where one tensor lives in a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// The storage type.
    pub ty: GgmlType,
    /// Dimensions in ggml order: `dims[0]` (`ne[0]`) is the fastest-varying axis.
    pub dims: Vec<usize>,
    /// Byte offset of the data from the start of the data section.
    pub offset: usize,
}

impl TensorInfo {
    /// Number of elements (1 for a scalar).
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The shape in PyTorch order (ggml dims reversed): `[out, in]` for a linear weight.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Bytes of data, or why they cannot be known (unsupported type, partial block).
    pub fn byte_len(&self) -> Result<usize, dequant::DequantError> {
        self.ty.byte_len(self.n_elements())
    }
}

/// An open GGUF file: parsed header, metadata and tensor directory over a memory map.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
    mmap: Mmap,
}

impl GgufFile {
    /// Maps and parses `path`. Tensor data is not read until asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| LoadError::io(&path, e))?;
        let len = file.metadata().map_err(|e| LoadError::io(&path, e))?.len();
        if len < 24 {
            return Err(LoadError::format(
                &path,
                format!("file is {len} bytes, too short for a GGUF header (24 bytes)"),
            ));
        }
        // SAFETY: the map is read-only. Like every mmap-based reader we rely on the file not
        // being truncated or rewritten by another process while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(&path, e))?;
        let header = parse(&mmap, &path)?;
        tracing::debug!(
            path = %path.display(),
            version = header.version,
            tensors = header.tensors.len(),
            keys = header.metadata.len(),
            "opened GGUF"
        );
        let index = header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Self {
            path,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            index,
            alignment: header.alignment,
            data_offset: header.data_offset,
            mmap,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata key/value pairs.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// `general.architecture` (`"llama"`, `"qwen2"`, `"gemma3"`).
    pub fn architecture(&self) -> Result<&str, LoadError> {
        self.metadata.scoped("general").str("architecture")
    }

    /// Alignment of the tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Byte offset of the data section from the start of the file.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name` (GGUF name).
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The stored bytes of tensor `name`, exactly as in the file.
    pub fn raw_bytes(&self, name: &str) -> Result<&[u8], LoadError> {
        let info = self.require(name)?;
        let len = info.byte_len().map_err(|e| self.tensor_error(info, e))?;
        // `open` checked that the data lies inside the file for every supported type.
        let start = self.data_offset + info.offset;
        Ok(&self.mmap[start..start + len])
    }

    /// Tensor `name` as `f32`, shape in PyTorch order, values exactly as stored (no fix-ups).
    pub fn tensor_f32(&self, name: &str) -> Result<HostTensor, LoadError> {
        let info = self.require(name)?;
        let bytes = self.raw_bytes(name)?;
        let data = dequant::dequantize(info.ty, bytes, info.n_elements()).map_err(|e| self.tensor_error(info, e))?;
        Ok(HostTensor { shape: info.shape(), data })
    }

    fn require(&self, name: &str) -> Result<&TensorInfo, LoadError> {
        self.tensor_info(name)
            .ok_or_else(|| LoadError::MissingTensors { path: self.path.clone(), names: vec![name.to_owned()] })
    }

    fn tensor_error(&self, info: &TensorInfo, err: dequant::DequantError) -> LoadError {
        match err {
            dequant::DequantError::Unsupported(ty) => LoadError::UnsupportedTensorType {
                path: self.path.clone(),
                tensor: info.name.clone(),
                kind: format!("{ty} (ggml type {})", ty.id()),
            },
            other => LoadError::format(&self.path, format!("tensor `{}`: {other}", info.name)),
        }
    }
}

/// Everything before the data section.
struct Header {
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    alignment: usize,
    data_offset: usize,
}

fn parse(bytes: &[u8], path: &Path) -> Result<Header, LoadError> {
    let mut r = Reader { bytes, pos: 0, path };
    let magic = r.take(4, "magic")?;
    if magic != GGUF_MAGIC {
        return Err(r.err(format!("not a GGUF file (magic {magic:02x?}, expected \"GGUF\")")));
    }
    let version = r.u32("version")?;
    if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
        return Err(r.err("big-endian GGUF files are not supported".into()));
    }
    if version != 2 && version != 3 {
        return Err(r.err(format!("unsupported GGUF version {version} (supported: 2, 3)")));
    }
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.u64("metadata count")?;
    // The smallest key/value is 8 (key length) + 4 (type) + 1 (u8) bytes; the smallest tensor
    // info is 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
    let n_kv = r.count(n_kv, 13, "metadata count")?;
    let n_tensors = r.count(n_tensors, 24, "tensor count")?;

    let mut metadata = Metadata::new(path);
    for _ in 0..n_kv {
        let key = r.string("metadata key")?;
        let ty = r.u32("metadata value type")?;
        let value = r.value(ty, &key, 0)?;
        if metadata.get(&key).is_some() {
            return Err(r.err(format!("duplicate metadata key `{key}`")));
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_usize() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(LoadError::BadField {
                    path: path.to_path_buf(),
                    field: "general.alignment".into(),
                    reason: format!("expected a power of two, found {v:?}"),
                });
            }
        },
    };

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors);
    let mut names = HashMap::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = r.string("tensor name")?;
        let info = r.tensor_info(name, alignment)?;
        if names.insert(info.name.clone(), ()).is_some() {
            return Err(r.err(format!("duplicate tensor `{}`", info.name)));
        }
        tensors.push(info);
    }

    let data_offset = r.pos.next_multiple_of(alignment);
    for info in &tensors {
        check_extent(info, data_offset, bytes.len(), path)?;
    }
    Ok(Header { version, metadata, tensors, alignment, data_offset })
}

/// Checks that a tensor's data lies inside the file (for types whose size is known).
fn check_extent(info: &TensorInfo, data_offset: usize, file_len: usize, path: &Path) -> Result<(), LoadError> {
    if !info.ty.is_supported() {
        tracing::debug!(tensor = info.name, ty = %info.ty, "tensor of unsupported type");
        return Ok(());
    }
    let block = info.ty.block_size().unwrap_or(1);
    if info.dims.first().is_some_and(|ne0| ne0 % block != 0) {
        return Err(LoadError::format(
            path,
            format!(
                "tensor `{}`: row length {} is not a multiple of the {} block size {block}",
                info.name, info.dims[0], info.ty
            ),
        ));
    }
    let len = info.byte_len().map_err(|e| LoadError::format(path, format!("tensor `{}`: {e}", info.name)))?;
    let end = data_offset.checked_add(info.offset).and_then(|s| s.checked_add(len));
    match end {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(LoadError::format(
            path,
            format!(
                "tensor `{}`: data ({len} bytes at {} + {}) runs past the end of the file ({file_len} bytes); \
                 the file is truncated or corrupt",
                info.name, data_offset, info.offset
            ),
        )),
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: String) -> LoadError {
        LoadError::format(self.path, reason)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], LoadError> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "file ends while reading {what} at byte {} ({n} bytes needed, {} left); it is truncated or corrupt",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], LoadError> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, LoadError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, LoadError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count of items each at least `min_size` bytes long, checked against the bytes left.
    fn count(&self, n: u64, min_size: usize, what: &str) -> Result<usize, LoadError> {
        match usize::try_from(n) {
            Ok(n) if n.checked_mul(min_size).is_some_and(|b| b <= self.remaining()) => Ok(n),
            _ => Err(self.err(format!(
                "{what} {n} at byte {} is impossible: only {} bytes follow; the file is corrupt",
                self.pos,
                self.remaining()
            ))),
        }
    }

    fn string_bytes(&mut self, what: &str) -> Result<&'a [u8], LoadError> {
        let len = self.u64(what)?;
        let len = self.count(len, 1, &format!("{what} length"))?;
        self.take(len, what)
    }

    /// A string that must be valid UTF-8 (keys, tensor names).
    fn string(&mut self, what: &str) -> Result<String, LoadError> {
        let at = self.pos;
        let b = self.string_bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format!("{what} at byte {at} is not valid UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<MetaValue, LoadError> {
        let what = format!("value of `{key}`");
        Ok(match ty {
            0 => MetaValue::U8(u8::from_le_bytes(self.array(&what)?)),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(&what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match u8::from_le_bytes(self.array(&what)?) {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(self.err(format!("{what}: bool byte {b} is neither 0 nor 1"))),
            },
            8 => {
                let b = self.string_bytes(&what)?;
                // Values (tokenizer pieces) are kept even when not UTF-8, as llama.cpp does.
                MetaValue::String(String::from_utf8(b.to_vec()).unwrap_or_else(|e| {
                    tracing::warn!(key, "metadata string is not valid UTF-8; replacing bad bytes");
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }))
            }
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.err(format!("{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}")));
                }
                let elem_ty = self.u32(&what)?;
                let n = self.u64(&what)?;
                let n = self.count(n, min_value_size(elem_ty), &format!("{what}: array length"))?;
                if n > MAX_ARRAY_LEN {
                    return Err(self.err(format!("{what}: array of {n} entries, over the limit of {MAX_ARRAY_LEN}")));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem_ty, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => {
                return Err(self.err(format!("{what}: unknown metadata value type {other}")));
            }
        })
    }

    fn tensor_info(&mut self, name: String, alignment: usize) -> Result<TensorInfo, LoadError> {
        let n_dims = self.u32("tensor dimension count")? as usize;
        if n_dims > MAX_DIMS {
            return Err(self.err(format!("tensor `{name}`: {n_dims} dimensions (ggml allows at most {MAX_DIMS})")));
        }
        let mut dims = Vec::with_capacity(n_dims);
        let mut n_elements: usize = 1;
        for _ in 0..n_dims {
            let d = self.u64("tensor dimension")?;
            // The element count must fit in memory (ggml also caps it at i64::MAX).
            let checked = usize::try_from(d).ok().and_then(|d| Some((d, n_elements.checked_mul(d)?)));
            let Some((d, n)) = checked.filter(|&(_, n)| n <= i64::MAX as usize) else {
                return Err(self.err(format!("tensor `{name}`: impossible dimension {d}")));
            };
            n_elements = n;
            dims.push(d);
        }
        let ty = GgmlType::from_id(self.u32("tensor type")?);
        let offset = self.u64("tensor offset")?;
        let offset = usize::try_from(offset).ok().filter(|o| o.is_multiple_of(alignment)).ok_or_else(|| {
            self.err(format!("tensor `{name}`: offset {offset} is not a multiple of the alignment {alignment}"))
        })?;
        Ok(TensorInfo { name, ty, dims, offset })
    }
}

/// The fewest bytes a value of metadata type `ty` takes (1 for unknown types, which fail later).
fn min_value_size(ty: u32) -> usize {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}
